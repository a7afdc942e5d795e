"""Word Counter: a CLAMS app shaped like the clams-python SDK's app template (app.py.template), for
the tests of `clams serve app.py` (tests/e2e/python_adapter/). It runs on the SDK's test double
(tests/e2e/python_adapter/sdk_double) and, for the PyTorch cap, on a fake `torch`.

Per TextDocument it adds a Token per whitespace-separated word. Parameters (metadata.py):
raiseError, oom (torch | runtime: fail as PyTorch does when the GPU is out of memory), holdMs,
diagnostics (an annotation with the process id and how many requests this process runs now).
"""

import argparse
import logging
import os
import re
import threading
import time

from clams import ClamsApp, Restifier

TOKEN = "http://mmif.clams.ai/vocabulary/Token/v1"
ANNOTATION = "http://mmif.clams.ai/vocabulary/Annotation/v6"

_running = 0
_running_lock = threading.Lock()


class WordCounter(ClamsApp):

    def __init__(self):
        super().__init__()

    def _appmetadata(self):
        # metadata.py beside this file is used instead
        pass

    def _annotate(self, mmif, **parameters):
        global _running
        if parameters["raiseError"]:
            raise ValueError("boom")
        if parameters["oom"] == "torch":
            import torch
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 4.00 GiB total capacity)")
        if parameters["oom"] == "runtime":
            raise RuntimeError("CUDA error: out of memory")
        with _running_lock:
            _running += 1
            running = _running
        try:
            time.sleep(parameters["holdMs"] / 1000.0)
        finally:
            with _running_lock:
                _running -= 1
        view = self.new_view(mmif)
        self.sign_view(view, parameters)
        view["metadata"]["contains"] = {}
        n = 0
        for doc in mmif["documents"]:
            if "TextDocument" not in doc.get("@type", ""):
                continue
            text = doc["properties"].get("text", {}).get("@value", "")
            view["metadata"]["contains"][TOKEN] = {"document": doc["properties"]["id"]}
            for m in re.finditer(r"\S+", text):
                n += 1
                view["annotations"].append({"@type": TOKEN, "properties": {
                    "text": m.group(0), "start": m.start(), "end": m.end(),
                    "document": doc["properties"]["id"], "id": "%s:to_%d" % (view["id"], n)}})
        if parameters["diagnostics"]:
            view["metadata"]["contains"][ANNOTATION] = {}
            view["annotations"].append({"@type": ANNOTATION, "properties": {
                "pid": os.getpid(), "running": running, "id": "%s:a_1" % view["id"]}})
        return mmif


def get_app():
    """
    This function effectively creates an instance of the app class, without any arguments passed in, as in the
    SDK's app template.
    """
    return WordCounter()


if __name__ == "__main__":
    # The template's development branch: Flask's debug server with its reloader (two processes, each
    # building the app). Under clams serve this block must never run.
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", action="store", default="5000", help="set port to listen")
    parser.add_argument("--production", action="store_true", help="run gunicorn server")
    parsed_args = parser.parse_args()
    app = get_app()
    http_app = Restifier(app, port=int(parsed_args.port))
    if parsed_args.production:
        http_app.serve_production()
    else:
        app.logger.setLevel(logging.DEBUG)
        http_app.run()
