#!/usr/bin/python3
"""A small Flask app that behaves like a CLAMS app built with the Python
SDK, for the end-to-end tests of `clams serve`.

GET / answers metadata (with est_gpu_mem_min/typ and the universal
parameters); POST/PUT / adds one signed view with a TimeFrame. Parameters:
  allocMiB  hold this much simulated VRAM during the request, through a
            child process (`clams gpu sim-alloc`, path in CLAMS_BIN): the
            front must attribute the child's memory to this worker
  holdMs    how long to hold it
  oom       answer 500 with a CUDA out-of-memory error view
  missing   answer 500 with a FileNotFoundError error view quoting the
            first document's location (as an app that cannot open it does)
  crash     kill this process (SIGKILL) in the middle of the request
Serves one request at a time (threaded=False), like a gunicorn sync worker.

Options for the process lifetime tests:
  --reloader  run under Werkzeug's reloader, as `flask run --debug` does: a
              parent process that holds the listening socket and restarts
              a child, which serves
  --detach    at start, leave a daemon behind (double fork, setsid, stdio on
              /dev/null, as daemons do); answers carry its pid as the
              TimeFrame's property "detached"
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time

from flask import Flask, Response, request

IDENTIFIER = "http://apps.clams.ai/flask-test-app/v1"
METADATA = {
    "name": "Flask Test App",
    "description": "Behaves like a Python SDK app.",
    "app_version": "v1",
    "mmif_version": "1.1.0",
    "app_license": "MIT",
    "identifier": IDENTIFIER,
    "url": "https://example.org/flask-test-app",
    "input": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "required": True}],
    "output": [{"@type": "http://mmif.clams.ai/vocabulary/TimeFrame/v6"}],
    "parameters": [
        {"name": "allocMiB", "description": "simulated VRAM to hold", "type": "integer", "default": 0,
         "multivalued": False},
        {"name": "holdMs", "description": "how long", "type": "integer", "default": 0, "multivalued": False},
        {"name": "oom", "description": "fail with a CUDA OOM", "type": "boolean", "default": False,
         "multivalued": False},
        {"name": "crash", "description": "die", "type": "boolean", "default": False, "multivalued": False},
        {"name": "missing", "description": "fail to open the document", "type": "boolean", "default": False,
         "multivalued": False},
        {"name": "pretty", "description": "indent", "type": "boolean", "default": False, "multivalued": False},
        {"name": "runningTime", "description": "time", "type": "boolean", "default": True, "multivalued": False},
        {"name": "hwFetch", "description": "hardware", "type": "boolean", "default": False, "multivalued": False},
        {"name": "tfSamplingMode", "description": "sampling", "type": "string",
         "choices": ["representatives", "single", "all"], "default": "representatives", "multivalued": False},
    ],
    "est_gpu_mem_min": 1000,
    "est_gpu_mem_typ": 3500,
}

app = Flask(__name__)
# The daemon --detach started (0: none).
DETACHED_PID = 0
# A daemon ends by itself after this long if nothing kills it.
DETACHED_SECONDS = 300


def start_detached():
    """Double-forks a daemon in its own session; returns its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        os.setsid()
        daemon = os.fork()
        if daemon == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv("/bin/sleep", ["sleep", str(DETACHED_SECONDS)])
        os.write(write_end, str(daemon).encode())
        os._exit(0)
    os.close(write_end)
    pid = int(os.read(read_end, 32).decode())
    os.close(read_end)
    os.waitpid(middle, 0)
    return pid


def flag(name):
    v = request.args.get(name)
    return v is not None and v not in ("False", "false", "F", "f", "0")


def error_view(mmif, message):
    views = mmif.setdefault("views", [])
    views.append({"id": "v_%d" % len(views),
                  "metadata": {"timestamp": datetime.datetime.now().isoformat(), "app": IDENTIFIER,
                               "error": {"message": message}},
                  "annotations": []})
    return Response(json.dumps(mmif, indent=2), status=500, mimetype="application/json")


@app.route("/", methods=["GET"])
def metadata():
    return Response(json.dumps(METADATA), mimetype="application/json")


@app.route("/", methods=["POST", "PUT"])
def annotate():
    t0 = time.monotonic()
    try:
        mmif = json.loads(request.get_data(as_text=True))
        if not isinstance(mmif, dict) or "views" not in mmif:
            raise ValueError("not an MMIF document")
    except ValueError as e:
        return Response("Invalid input data. See below for validation error.\n\n" + str(e), status=500,
                        mimetype="text/plain")
    if flag("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if flag("oom"):
        return error_view(mmif, "<class 'torch.OutOfMemoryError'>: CUDA out of memory. Tried to allocate 2.00 GiB")
    if flag("missing"):
        location = mmif["documents"][0]["properties"].get("location", "")
        return error_view(mmif, "<class 'FileNotFoundError'>: " + location)
    alloc = int(request.args.get("allocMiB", "0"))
    hold = int(request.args.get("holdMs", "0"))
    if alloc > 0:
        child = subprocess.Popen([os.environ["CLAMS_BIN"], "gpu", "sim-alloc", "%dMiB" % alloc, "--seconds", "600"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line.startswith("holding"):
            err = child.stderr.read()
            child.wait()
            return error_view(mmif, "<class 'RuntimeError'>: " + (err.strip() or "CUDA out of memory"))
        time.sleep(hold / 1000.0)
        child.terminate()
        child.wait()
    elif hold > 0:
        time.sleep(hold / 1000.0)
    params = {k: v for k, v in request.args.items()}
    profiling = {"runningTime": str(datetime.timedelta(seconds=time.monotonic() - t0))}
    if flag("hwFetch"):
        profiling["hardware"] = {"cpu": "x86_64, 1 cores", "cuda": []}
    md = {"appProfiling": profiling, "timestamp": datetime.datetime.now().isoformat(), "app": IDENTIFIER,
          "contains": {"http://mmif.clams.ai/vocabulary/TimeFrame/v6": {"timeUnit": "milliseconds"}}}
    if params:
        md["parameters"] = params
    views = mmif["views"]
    vid = "v_%d" % len(views)
    views.append({"id": vid, "metadata": md, "annotations": [
        {"@type": "http://mmif.clams.ai/vocabulary/TimeFrame/v6",
         "properties": {"id": vid + ":tf_1", "start": 0, "end": hold, "pid": os.getpid(),
                        "detached": DETACHED_PID}}]})
    return Response(json.dumps(mmif), mimetype="application/json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--socket", help="listen on this Unix socket instead")
    parser.add_argument("--reloader", action="store_true", help="run under Werkzeug's reloader")
    parser.add_argument("--detach", action="store_true", help="leave a daemon behind at start")
    args = parser.parse_args()
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Under the reloader only the child serves (and detaches).
    serving = not args.reloader or os.environ.get("WERKZEUG_RUN_MAIN") == "true"
    if args.detach and serving:
        DETACHED_PID = start_detached()
    if args.socket:
        from werkzeug.serving import run_simple
        run_simple("unix://" + args.socket, 0, app, threaded=False, use_reloader=args.reloader)
    else:
        app.run(host="127.0.0.1", port=args.port, threaded=False, use_reloader=args.reloader)
