#!/usr/bin/env python3
"""clams_worker: one worker process of `clams serve app.py`.

Serves one unmodified Python CLAMS app (built on the clams-python SDK) on a Unix socket for the
clams-cpp front. Installed as <prefix>/share/clams/clams_worker.py; the front starts it as

    PYTHON clams_worker.py --app PATH --socket PATH --threads K [--no-torch-cap]

What it does, in order:
  1. Puts the app's folder first on sys.path (as `python3 app.py` does, so sibling modules such as
     metadata.py import), makes sys.argv[0] and __main__.__file__ name the app file (the SDK's
     app_version from `git describe` then looks where it would for `python3 app.py`), and imports
     the app file as a module under a private name: its `if __name__ == "__main__":` block, which
     would start Flask's debug server with its reloader, does not run.
  2. Gets the app object: `get_app()` when the module has one (the SDK's app template), else the
     single clams.app.ClamsApp subclass of the module, built with no arguments. Anything else
     exits with a message naming what was found (exit codes below).
  3. Wraps it with the SDK's own `clams.restify.Restifier(app).flask_app`, so every answer
     (metadata, annotations, "Invalid input data" texts, error views) is the SDK's.
  4. Serves that WSGI app on the Unix socket with HTTP/1.1 keep-alive, no debugger, no reloader,
     in this one process, running at most K requests at a time (--threads).
Per request:
  * `X-Request-Id` is kept for the duration of the request: every line this module writes to
    stderr carries it.
  * `X-Clams-Vram-Grant: grant=<bytes>; total=<bytes>` caps PyTorch at grant/total of the device
    (torch.cuda.set_per_process_memory_fraction(min(1, grant/total), 0)) before the app runs,
    when torch is installed and sees CUDA, unless --no-torch-cap. A request without the header
    leaves the cap as it is.
  * When the app's annotate fails with a framework out-of-memory error (torch.OutOfMemoryError,
    torch.cuda.OutOfMemoryError, or a RuntimeError whose message begins "CUDA out of memory" or
    "CUDA error: out of memory"), the SDK's error view gets the header `X-Clams-Oom: 1`, or
    `X-Clams-Oom: 1; tried=<bytes>` when the message says "Tried to allocate <n> <unit>".

Why not Werkzeug's server: Werkzeug's development server (2.2 in Debian 12, and 3.x) sends
`Connection: close` on every answer, so each request would pay a new connection; this module
implements the small HTTP/1.1 server the front needs with the standard library only (Python 3.8+).

Exit codes (the front stops `clams serve` at once on 3, 4 and 5 when no worker ever answered):
  0  stopped by SIGTERM or SIGINT
  2  usage error
  3  the app file cannot be imported (missing file, ImportError, SyntaxError, any exception)
  4  no app object: get_app() failed or returned no ClamsApp, or, without get_app(), not exactly
     one ClamsApp subclass, or its constructor needs arguments or failed
  5  this interpreter cannot import the Python SDK (clams.app, clams.restify): pick the right one
     with `clams serve --python PATH`
  6  cannot listen on the socket
"""
import argparse
import datetime
import functools
import importlib
import importlib.util
import inspect
import io
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote_to_bytes, urlsplit

EXIT_USAGE = 2
EXIT_IMPORT_FAILED = 3
EXIT_NO_APP = 4
EXIT_NO_SDK = 5
EXIT_LISTEN_FAILED = 6

# The private module name the app file is imported under (never "__main__").
APP_MODULE_NAME = "_clams_hosted_app"
# HTTP limits: a request line and header block far above what the front sends.
MAX_REQUEST_LINE_BYTES = 65536
# Pending connections on the socket (the front opens a few per worker).
LISTEN_BACKLOG = 64
# Longest request id kept for log lines (longer ones are cut).
MAX_REQUEST_ID_CHARS = 128
# Answers up to this size go out in one write with their headers.
SINGLE_WRITE_BYTES = 65536
# The header the front sends with each request when it manages GPUs, and the one set on OOM.
GRANT_HEADER_ENV = "HTTP_X_CLAMS_VRAM_GRANT"
REQUEST_ID_ENV = "HTTP_X_REQUEST_ID"
OOM_HEADER = "X-Clams-Oom"

_UNITS = {"b": 1, "bytes": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}
_TRIED_RE = re.compile(r"Tried to allocate (\d+(?:\.\d+)?) ?([KMGT]?i?B|bytes)\b", re.IGNORECASE)
_OOM_MESSAGE_PREFIXES = ("CUDA out of memory", "CUDA error: out of memory")
# How far down __cause__/__context__ an OOM is looked for.
MAX_CAUSE_DEPTH = 8

_local = threading.local()
_debug = os.environ.get("CLAMS_LOGLEVEL", "").strip().lower() in ("debug", "trace")
_log_lock = threading.Lock()


# --- logging -------------------------------------------------------------------------------------

def log(message):
    """Writes `message` to stderr, one prefixed line per line, with the current request id."""
    stamp = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="milliseconds")
    request_id = getattr(_local, "request_id", None)
    prefix = "%s clams_worker[%d]%s " % (stamp, os.getpid(),
                                         " request_id=%s" % request_id if request_id else "")
    text = "".join(prefix + line + "\n" for line in str(message).splitlines() or [""])
    with _log_lock:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def fail(code, message, with_traceback=False):
    if with_traceback:
        log(traceback.format_exc().rstrip())
    log(message)
    sys.exit(code)


def clean_request_id(raw):
    if not raw:
        return None
    return re.sub(r"[^\x21-\x7e]", "?", raw)[:MAX_REQUEST_ID_CHARS]


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


# --- finding the app -----------------------------------------------------------------------------

def resolve_app_path(path):
    if os.path.isdir(path):
        path = os.path.join(path, "app.py")
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        fail(EXIT_IMPORT_FAILED, "cannot import the app: %s does not exist" % path)
    return path


def prepare_interpreter(app_path):
    """sys.path, sys.argv and __main__.__file__ as `python3 app.py` would have them."""
    app_dir = os.path.dirname(app_path)
    # sys.path[0] is this file's folder; the app's own folder takes its place.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = app_dir
    else:
        sys.path.insert(0, app_dir)
    sys.argv = [app_path]
    sys.modules["__main__"].__file__ = app_path


def import_sdk():
    try:
        import clams.app  # noqa: F401  (the SDK configures logging on import, as for the app)
        import clams.restify
    except BaseException as e:  # noqa: B902 - any failure means the SDK is unusable here
        fail(EXIT_NO_SDK,
             "this interpreter (%s) cannot import the Python SDK (clams.app, clams.restify): %s; "
             "run `clams serve --python PATH` with the interpreter that has the app's packages "
             "(e.g. its virtualenv's python)" % (sys.executable, describe(e)), with_traceback=True)
    return clams.app.ClamsApp, clams.restify.Restifier


def import_app_module(app_path):
    spec = importlib.util.spec_from_file_location(APP_MODULE_NAME, app_path)
    if spec is None or spec.loader is None:
        fail(EXIT_IMPORT_FAILED, "cannot import the app %s: not a Python source file" % app_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: B902 - SystemExit at import is a failure too
        fail(EXIT_IMPORT_FAILED, "cannot import the app %s: %s" % (app_path, describe(e)),
             with_traceback=True)
    return module


def app_classes(module, clams_app):
    """The ClamsApp subclasses in the module's namespace that are not the SDK's own, leaves only."""
    found = []
    for obj in vars(module).values():
        if not inspect.isclass(obj) or not issubclass(obj, clams_app) or obj in found:
            continue
        owner = getattr(obj, "__module__", "") or ""
        if owner == "clams" or owner.startswith("clams."):
            continue
        found.append(obj)
    return [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]


def needs_arguments(cls):
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           inspect.Parameter.KEYWORD_ONLY)]


def obtain_app(module, app_path, clams_app):
    get_app = getattr(module, "get_app", None)
    if callable(get_app):
        try:
            app = get_app()
        except NotImplementedError:
            fail(EXIT_NO_APP, "get_app() in %s raises NotImplementedError (the app template's "
                              "placeholder): make it return the app object" % app_path)
        except BaseException as e:  # noqa: B902
            fail(EXIT_NO_APP, "get_app() in %s failed: %s" % (app_path, describe(e)), with_traceback=True)
        if not isinstance(app, clams_app):
            fail(EXIT_NO_APP, "get_app() in %s returned %s, not a clams.app.ClamsApp"
                 % (app_path, type(app).__name__))
        return app, "get_app()"
    classes = app_classes(module, clams_app)
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        fail(EXIT_NO_APP, "%s has no get_app() function and %d ClamsApp subclasses (found: %s); "
                          "add get_app() returning the app object, as the SDK's app template does"
             % (app_path, len(classes), found))
    cls = classes[0]
    missing = needs_arguments(cls)
    if missing:
        fail(EXIT_NO_APP, "%s has no get_app() function and its ClamsApp subclass %s needs "
                          "arguments (%s); add get_app() returning the app object"
             % (app_path, cls.__name__, ", ".join(missing)))
    try:
        return cls(), "%s()" % cls.__name__
    except BaseException as e:  # noqa: B902
        fail(EXIT_NO_APP, "%s() in %s failed: %s" % (cls.__name__, app_path, describe(e)),
             with_traceback=True)


# --- out-of-memory marking -----------------------------------------------------------------------

def framework_oom(exc):
    """The exception in `exc`'s cause chain that is a framework OOM, or None."""
    seen = 0
    while exc is not None and seen < MAX_CAUSE_DEPTH:
        for cls in type(exc).__mro__:
            owner = getattr(cls, "__module__", "") or ""
            if cls.__name__ == "OutOfMemoryError" and (owner == "torch" or owner.startswith("torch.")):
                return exc
        if isinstance(exc, RuntimeError) and str(exc).startswith(_OOM_MESSAGE_PREFIXES):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def oom_header_value(exc):
    match = _TRIED_RE.search(str(exc))
    if match is None:
        return "1"
    unit = _UNITS.get(match.group(2).lower())
    if unit is None:
        return "1"
    return "1; tried=%d" % int(float(match.group(1)) * unit)


# --- the PyTorch cap -----------------------------------------------------------------------------

def parse_grant(value):
    """(grant, total) from 'grant=<bytes>; total=<bytes>', or None."""
    fields = {}
    for part in value.split(";"):
        key, sep, number = part.strip().partition("=")
        if sep:
            fields[key.strip().lower()] = number.strip()
    try:
        grant, total = int(fields["grant"]), int(fields["total"])
    except (KeyError, ValueError):
        return None
    if grant < 0 or total <= 0:
        return None
    return grant, total


class TorchCap:
    """Applies the front's grant to PyTorch before each request."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.installed = False
        self.lock = threading.Lock()
        self.reported = set()

    def start(self):
        """Call once the app is imported (its sys.path is in place)."""
        if self.enabled:
            try:
                self.installed = importlib.util.find_spec("torch") is not None
            except (ImportError, ValueError):
                self.installed = False
        return "off (--no-torch-cap)" if not self.enabled else (
            "on" if self.installed else "off (torch is not installed)")

    def report_once(self, message):
        if message not in self.reported:
            self.reported.add(message)
            log(message)

    def apply(self, header):
        if not self.enabled or not header:
            return
        grant = parse_grant(header)
        if grant is None:
            self.report_once("ignoring a malformed X-Clams-Vram-Grant header: %r" % header[:200])
            return
        if not self.installed:
            return
        with self.lock:
            try:
                # Imported here when the app has not imported it yet (an app that loads its model
                # on the first request); never before a grant arrives, so CPU apps never pay.
                torch = sys.modules.get("torch") or importlib.import_module("torch")
                if not torch.cuda.is_available():
                    self.report_once("torch sees no CUDA device: PyTorch is not capped")
                    return
                fraction = min(1.0, float(grant[0]) / float(grant[1]))
                torch.cuda.set_per_process_memory_fraction(fraction, 0)
                if _debug:
                    log("PyTorch capped at %.4f of the device (%d of %d bytes)" % (fraction, grant[0], grant[1]))
            except Exception as e:  # noqa: B902 - a cap that cannot be set must not fail the request
                self.report_once("cannot cap PyTorch: %s" % describe(e))


# --- the WSGI layer around the SDK's Flask app --------------------------------------------------

class WorkerMiddleware:
    """Request id, concurrency bound, torch cap and OOM marking around the SDK's WSGI app."""

    def __init__(self, wsgi_app, threads, torch_cap):
        self.wsgi_app = wsgi_app
        self.slots = threading.BoundedSemaphore(threads)
        self.torch_cap = torch_cap

    def __call__(self, environ, start_response):
        _local.failure = None
        with self.slots:
            self.torch_cap.apply(environ.get(GRANT_HEADER_ENV))

            def start(status, headers, exc_info=None):
                failure = getattr(_local, "failure", None)
                oom = framework_oom(failure) if failure is not None and status[:1] == "5" else None
                if oom is not None:
                    value = oom_header_value(oom)
                    headers = list(headers) + [(OOM_HEADER, value)]
                    log("the app ran out of GPU memory (%s: %s); answered with %s: %s"
                        % (type(oom).__name__, str(oom).splitlines()[0] if str(oom) else "", OOM_HEADER, value))
                return start_response(status, headers, exc_info)

            result = self.wsgi_app(environ, start)
            try:
                return [chunk for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def record_annotate_failures(app):
    """Lets the middleware see the exception behind an error view.

    The SDK's HTTP handler calls `app.record_error(...)` inside the `except` block that caught
    what annotate raised (every SDK version since 0.5), so sys.exc_info() there is that
    exception. Wrapping record_error, not annotate, keeps this module's frames out of the error
    view's stackTrace and out of the SDK's own log of the traceback.
    """
    original = app.record_error

    @functools.wraps(original)
    def record_error(*args, **kwargs):
        _local.failure = sys.exc_info()[1]
        return original(*args, **kwargs)

    app.record_error = record_error


# --- the HTTP/1.1 server -------------------------------------------------------------------------

class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "clams-worker"
    sys_version = ""

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE_BYTES + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE_BYTES:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.run_wsgi()
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    def read_body(self):
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            if coding.strip().lower() != "chunked":
                raise BadRequest("unsupported Transfer-Encoding")
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n < 0:
            raise BadRequest("bad Content-Length")
        body = self.rfile.read(n)
        if len(body) != n:
            raise ConnectionError("the client closed the connection in the body")
        return body

    def read_chunked(self):
        parts = []
        while True:
            line = self.rfile.readline(MAX_REQUEST_LINE_BYTES)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                while self.rfile.readline(MAX_REQUEST_LINE_BYTES) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(MAX_REQUEST_LINE_BYTES)

    def make_environ(self, body):
        target = self.path
        if not target.startswith("/"):
            split = urlsplit(target)
            target = (split.path or "/") + ("?" + split.query if split.query else "")
        path, _, query = target.partition("?")
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "0",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            if "_" in key:
                continue  # would be confused with a dash
            key = key.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue
            value = value.replace("\r\n", "")
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            if key in environ:
                value = environ[key] + "," + value
            environ[key] = value
        return environ

    def call_app(self, environ):
        state = {}
        written = []

        def start_response(status, headers, exc_info=None):
            if exc_info is not None and state.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"] = status
            state["headers"] = headers
            return written.append

        result = self.server.wsgi_app(environ, start_response)
        try:
            for chunk in result:
                written.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if "status" not in state:
            raise RuntimeError("the WSGI app returned without calling start_response")
        return state["status"], state["headers"], b"".join(written)

    def run_wsgi(self):
        started = time.monotonic()
        _local.request_id = clean_request_id(self.headers.get("X-Request-Id"))
        try:
            try:
                body = self.read_body()
            except BadRequest as e:
                self.close_connection = True
                self.send_error(400, str(e))
                return
            environ = self.make_environ(body)
            try:
                status, headers, payload = self.call_app(environ)
            except Exception:  # noqa: B902 - never a traceback page: a plain 500, the trace in the log
                log("the app's WSGI handler failed:\n" + traceback.format_exc().rstrip())
                status = "500 Internal Server Error"
                headers = [("Content-Type", "text/plain; charset=utf-8")]
                payload = b"Internal Server Error"
            self.write_answer(status, headers, payload)
            if _debug:
                log("%s %s %s %d bytes in %.1f ms" % (self.command, self.path[:200], status.split(" ", 1)[0],
                                                      len(payload), (time.monotonic() - started) * 1000))
        finally:
            _local.request_id = None

    def write_answer(self, status, headers, payload):
        code = int(status.split(" ", 1)[0])
        no_body = self.command == "HEAD" or code in (204, 304) or code < 200
        lines = ["HTTP/1.1 " + status]
        has_length = False
        for key, value in headers:
            lower = key.lower()
            if lower in ("connection", "keep-alive", "transfer-encoding"):
                continue
            if lower == "content-length":
                if self.command != "HEAD":
                    continue  # written below from the body actually sent
                has_length = True
            lines.append("%s: %s" % (key, value))
        if not no_body or (self.command == "HEAD" and not has_length):
            lines.append("Content-Length: %d" % len(payload))
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if no_body:
            self.wfile.write(head)
        elif len(payload) <= SINGLE_WRITE_BYTES:
            self.wfile.write(head + payload)
        else:
            self.wfile.write(head)
            self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log(format % args)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, path, wsgi_app):
        self.wsgi_app = wsgi_app
        super().__init__(path, Handler)

    def handle_error(self, request, client_address):
        log("connection error:\n" + traceback.format_exc().rstrip())


def listen(socket_path, wsgi_app):
    try:
        if os.path.exists(socket_path):
            os.unlink(socket_path)  # a previous copy's socket
        old_umask = os.umask(0o077)  # the socket is the front's alone
        try:
            return Server(socket_path, wsgi_app)
        finally:
            os.umask(old_umask)
    except OSError as e:
        fail(EXIT_LISTEN_FAILED, "cannot listen on %s: %s" % (socket_path, describe(e)))


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="clams_worker.py",
        description="Serves one Python CLAMS app on a Unix socket as a worker of `clams serve app.py`.")
    parser.add_argument("--app", required=True, help="the app file (or a folder holding app.py)")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--threads", type=int, default=1, help="requests run at once (default 1)")
    parser.add_argument("--no-torch-cap", action="store_true",
                        help="do not cap PyTorch at the GPU memory the front granted")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app_path = resolve_app_path(args.app)
    prepare_interpreter(app_path)
    clams_app, restifier = import_sdk()
    module = import_app_module(app_path)
    app, how = obtain_app(module, app_path, clams_app)
    record_annotate_failures(app)
    flask_app = restifier(app).flask_app
    # Production semantics whatever FLASK_DEBUG says: errors are the SDK's error views.
    flask_app.debug = False
    torch_cap = TorchCap(enabled=not args.no_torch_cap)
    cap_state = torch_cap.start()
    server = listen(args.socket, WorkerMiddleware(flask_app, args.threads, torch_cap))

    def stop(signo, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    identifier = getattr(getattr(app, "metadata", None), "identifier", "")
    log("serving %s (%s%s) from %s on %s with %d thread(s); PyTorch cap: %s"
        % (type(app).__name__, how, ", " + str(identifier) if identifier else "", app_path, args.socket,
           args.threads, cap_state))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
