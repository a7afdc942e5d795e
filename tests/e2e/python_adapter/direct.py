"""Runs the test app straight through the SDK double's Flask app (Restifier(get_app()).flask_app
with Flask's test client, no server), to compare with what `clams serve app.py` answers.

usage: python3 direct.py APP_PY METHOD TARGET BODY_FILE OUT_FILE
Writes OUT_FILE as JSON: {"status": int, "content_type": str, "body": str}.
"""
import importlib.util
import json
import os
import sys

app_path, method, target, body_file, out_file = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(app_path)))
spec = importlib.util.spec_from_file_location("direct_app", app_path)
module = importlib.util.module_from_spec(spec)
sys.modules["direct_app"] = module
spec.loader.exec_module(module)
from clams.restify import Restifier  # noqa: E402

client = Restifier(module.get_app()).flask_app.test_client()
with open(body_file, "rb") as f:
    body = f.read()
response = client.open(target, method=method, data=body)
with open(out_file, "w") as f:
    json.dump({"status": response.status_code, "content_type": response.content_type,
               "body": response.get_data(as_text=True)}, f)
