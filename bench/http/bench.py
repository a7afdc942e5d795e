#!/usr/bin/python3
"""HTTP benchmark driver (bench/http/run.sh runs it; see bench/http/README.md).

Measures, with wrk, requests/s and latency percentiles of
  (1) sentence-splitter in development mode (in-process thread pool, N threads) against the
      Flask baseline (flask_app.py) under gunicorn with N sync workers;
  (2) sentence-splitter --production --workers 2 against gunicorn with 2 sync workers and with
      2 gthread workers x 2 threads (the Python SDK's worker class), and the latency the
      front -> worker hop adds: production vs development with the same worker count at one
      connection (no queueing);
  (3) `clams serve --production --workers 2 -- python3 flask_app.py --port {port}` against the
      same Flask app under gunicorn with 2 sync workers: requests/s overhead and p50 added
      (skipped, with a note, when BUILD/src/cli/clams has no `serve`);
  (3b) `clams serve --workers 2 clams_app.py` (a template-shaped Python SDK app through the worker
      adapter, on the SDK's test double) against the same app's `Restifier(app).flask_app` under
      gunicorn with 2 sync workers: requests/s and p50.
Every pair runs back to back on the same body. Each server is checked once for a valid answer
(status 200, the expected sentences and tokens) before it is measured; any non-2xx answer or
socket error that wrk reports fails the run (exit 1). Targets are printed as PASS/FAIL and do
not change the exit status.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

PYTHON = "/usr/bin/python3"
GUNICORN = "/usr/bin/gunicorn"
WRK = "/usr/bin/wrk"
HERE = os.path.dirname(os.path.abspath(__file__))
POST_LUA = os.path.join(HERE, "post.lua")
FLASK_APP = os.path.join(HERE, "flask_app.py")
# Part (3b): the same splitter as a template-shaped CLAMS app, on the Python SDK's test double
# (clams-python is not a Debian package).
CLAMS_APP = os.path.join(HERE, "clams_app.py")
SDK_DOUBLE = os.path.join(HERE, "..", "..", "tests", "e2e", "python_adapter", "sdk_double")

DEV_MIN_RATIO = 5.0        # development mode vs gunicorn, same worker count
PROD_MIN_RATIO = 3.0       # --production --workers 2 vs gunicorn -w 2 (issue 15)
FRONT_MAX_CPU_PER_REQ = 30e-6  # seconds: the production front's own CPU per request (issue 15)
SERVE_MAX_OVERHEAD = 0.10  # clams serve vs gunicorn, requests/s
SERVE_MAX_P50_ADDED = 300e-6  # seconds (issue 15)

# The body: one TextDocument, a paragraph of five sentences (an abbreviation, a decimal, ! and ?).
TEXT = ("The archive opened in 1952. Dr. Smith catalogued the first reels by hand! "
        "Were the tapes labelled? Most were, but some had only a date. "
        "Today the collection holds 3.5 million items.")
EXPECTED_SENTENCES = ["The archive opened in 1952.", "Dr. Smith catalogued the first reels by hand!",
                      "Were the tapes labelled?", "Most were, but some had only a date.",
                      "Today the collection holds 3.5 million items."]
EXPECTED_TOKENS = 38
SENTENCE = "http://mmif.clams.ai/vocabulary/Sentence/v1"
TOKEN = "http://mmif.clams.ai/vocabulary/Token/v1"


def body_mmif():
    doc = {"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1",
           "properties": {"id": "td1", "text": {"@value": TEXT, "@language": "en"}}}
    return json.dumps({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [doc],
                       "views": []}).encode()


class BenchError(Exception):
    pass


# --- processes -------------------------------------------------------------------------------

def session_pids(sid):
    """Every live process of session `sid` (a server we started and all it started)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state); session is field 6, utime 14, stime 15.
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(name))
    return out


def session_cpu_seconds(sid):
    """CPU time (user + system) used so far by the live processes of session `sid`: (all of
    them, the session leader alone)."""
    ticks = lead = 0
    for pid in session_pids(sid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t = int(fields[11]) + int(fields[12])
        except OSError:
            continue
        ticks += t
        if pid == sid:
            lead = t
    hz = os.sysconf("SC_CLK_TCK")
    return ticks / hz, lead / hz


class Server:
    """A server process in its own session; stop() ends it and everything it started."""

    def __init__(self, name, argv, workdir, pidfile, front=False, env_extra=None):
        self.name = name
        self.front = front  # the session leader is a front whose own CPU is worth showing
        self.log_path = os.path.join(workdir, re.sub(r"[^A-Za-z0-9]+", "-", name) + ".log")
        self.log = open(self.log_path, "wb")
        # No __pycache__ next to flask_app.py (gunicorn imports it as a module).
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env_extra or {}))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.sid = self.proc.pid
        with open(pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        self.port = None

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.sid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Anything of ours left in the session (e.g. workers of a server that did not stop).
        for pid in session_pids(self.sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.log.close()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError):
        return None, b""


def http_post(url, body, timeout=10.0):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(server, check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{server.name} exited while starting:\n{server.log_tail()}")
        if check():
            return
        time.sleep(0.05)
    raise BenchError(f"{server.name}: {what} not reached in {timeout:.0f} s:\n{server.log_tail()}")


def start_clams(name, argv, workers, port_file, workdir, pidfile, production, env_extra=None):
    """Starts one of our servers (--port 0 --port-file F) and waits until every worker is idle."""
    server = Server(name, argv, workdir, pidfile, front=production, env_extra=env_extra)

    def port_known():
        try:
            with open(port_file) as f:
                text = f.read().strip()
        except OSError:
            return False
        if not text:
            return False
        server.port = int(text)
        return True

    wait_until(server, port_known, "the port file")
    wait_until(server, lambda: http_get(server.url("/ready"))[0] == 200, "GET /ready = 200")

    def all_idle():
        status, body = http_get(server.url("/?includeRuntime=true"))
        if status != 200:
            return False
        states = [w.get("state") for w in json.loads(body).get("runtime", {}).get("workers", [])]
        return len(states) == workers and all(s == "idle" for s in states)

    if production:
        wait_until(server, all_idle, f"{workers} idle workers")
    return server


def start_gunicorn(name, workers, workdir, pidfile, worker_class="sync", threads=1, wsgi_app="flask_app:app",
                   env_extra=None):
    port = free_port()
    argv = [GUNICORN, "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--chdir", HERE,
            "--worker-class", worker_class]
    if worker_class == "gthread":
        argv += ["--threads", str(threads)]
    argv.append(wsgi_app)
    server = Server(name, argv, workdir, pidfile, env_extra=env_extra)
    server.port = port
    wait_until(server, lambda: http_get(server.url("/"))[0] == 200, "GET / = 200")
    # The arbiter answers through its first booted worker: wait for all of them.
    wait_until(server, lambda: len(session_pids(server.sid)) >= workers + 1, f"{workers} workers")
    return server


def start_flask_standalone(name, workdir, pidfile):
    port = free_port()
    server = Server(name, [PYTHON, FLASK_APP, "--port", str(port)], workdir, pidfile)
    server.port = port
    wait_until(server, lambda: http_get(server.url("/"))[0] == 200, "GET / = 200")
    return server


def check_answer(server, body):
    """One POST: status 200, a new view with the expected sentences and tokens."""
    status, answer = http_post(server.url("/"), body)
    if status != 200:
        raise BenchError(f"{server.name}: POST / answered {status}: {answer[:300]!r}")
    try:
        out = json.loads(answer)
        view = out["views"][-1]
        anns = view["annotations"]
        sentences = [a["properties"]["text"] for a in anns if a["@type"] == SENTENCE]
        tokens = [a["properties"] for a in anns if a["@type"] == TOKEN]
        meta = view["metadata"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise BenchError(f"{server.name}: the answer is not the expected MMIF ({e!r}): {answer[:300]!r}")
    problems = []
    if sentences != EXPECTED_SENTENCES:
        problems.append(f"sentences {sentences!r}")
    if len(tokens) != EXPECTED_TOKENS:
        problems.append(f"{len(tokens)} tokens, expected {EXPECTED_TOKENS}")
    if any(TEXT[t["start"]:t["end"]] != t["text"] for t in tokens):
        problems.append("a token's text does not match its offsets")
    if not meta.get("app") or not meta.get("timestamp") or "runningTime" not in meta.get("appProfiling", {}):
        problems.append(f"view metadata lacks app/timestamp/appProfiling: {meta!r}")
    if problems:
        raise BenchError(f"{server.name}: invalid answer: " + "; ".join(problems))
    return len(answer)


# --- wrk -------------------------------------------------------------------------------------

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(text):
    def grab(pattern, cast=float, default=None):
        m = re.search(pattern, text, re.M)
        return cast(m.group(1)) if m else default
    r = {"rps": grab(r"^Requests/sec:\s+([\d.]+)"),
         "requests": grab(r"^\s*(\d+) requests in", int, 0),
         "non2xx": grab(r"Non-2xx or 3xx responses:\s+(\d+)", int, 0)}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    r["socket_text"] = m.group(0) if m else ""
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        r["p" + pct] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    return r


class Measure:
    def __init__(self, args, body_path, errors):
        self.a = args
        self.body_path = body_path
        self.errors = errors

    def wrk(self, server, connections, seconds):
        argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", POST_LUA,
                server.url("/"), "--", self.body_path]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = proc.communicate()
        except BaseException:  # interrupted: do not leave wrk running
            proc.kill()
            proc.wait()
            raise
        elapsed = time.perf_counter() - start
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"wrk failed ({proc.returncode}) against {server.name}:\n{text}")
        return text, elapsed

    def run(self, server, connections, label):
        """One measured run (a warm-up first if this server had none); returns the parsed wrk
        numbers plus CPU per request."""
        if not server.alive():
            raise BenchError(f"{server.name} is not running:\n{server.log_tail()}")
        if self.a.warmup > 0 and not getattr(server, "warm", False):
            self.wrk(server, connections, self.a.warmup)
            server.warm = True
        cpu0, lead0 = session_cpu_seconds(server.sid)
        t0 = os.times()
        text, _ = self.wrk(server, connections, self.a.seconds)
        t1 = os.times()
        cpu1, lead1 = session_cpu_seconds(server.sid)
        r = parse_wrk(text)
        r["label"] = label
        r["connections"] = connections
        if r["rps"] is None:
            raise BenchError(f"cannot read wrk's output for {server.name}:\n{text}")
        if r["requests"] > 0:
            r["cpu_per_req"] = (cpu1 - cpu0) / r["requests"]
            r["front_cpu_per_req"] = (lead1 - lead0) / r["requests"] if server.front else None
            r["wrk_cpu_per_req"] = ((t1.children_user - t0.children_user) +
                                    (t1.children_system - t0.children_system)) / r["requests"]
        else:
            r["cpu_per_req"] = r["front_cpu_per_req"] = r["wrk_cpu_per_req"] = None
        if r["non2xx"] or r["socket_errors"] or r["requests"] == 0 or not server.alive():
            msg = (f"{label}: {r['non2xx']} non-2xx answers, {r['socket_text'] or 'no socket errors'}, "
                   f"{r['requests']} requests, server {'alive' if server.alive() else 'DEAD'}")
            print(f"bench/http: ERROR: {msg}\n{server.log_tail()}", file=sys.stderr, flush=True)
            self.errors.append(msg)
            r["error"] = True
        if self.a.verbose:
            print(f"--- wrk: {label} (-c{connections})\n{text}", flush=True)
        return r


    def rounds(self, entries, connections):
        """Measures every (server, label) of `entries` --rounds times, alternating the order
        (A B C, C B A, ...) so that drift in the machine's load hits all alike. Returns, per
        entry, the medians over the rounds, with the rounds' results under "runs"."""
        runs = [[] for _ in entries]
        for i in range(self.a.rounds):
            order = range(len(entries)) if i % 2 == 0 else reversed(range(len(entries)))
            for k in order:
                server, label = entries[k]
                runs[k].append(self.run(server, connections, label))
        out = []
        for (server, label), rs in zip(entries, runs):
            agg = {"label": label, "connections": connections, "runs": rs,
                   "error": any(r.get("error") for r in rs)}
            for key in ("rps", "p50", "p99", "cpu_per_req", "front_cpu_per_req", "wrk_cpu_per_req"):
                values = [r[key] for r in rs if r.get(key) is not None]
                agg[key] = median(values) if values else None
            out.append(agg)
        return out


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def paired_ratio(a, b, key="rps"):
    """Median over the rounds of a[key] / b[key] (round i of a ran next to round i of b), and
    the per-round ratios."""
    ratios = [x[key] / y[key] for x, y in zip(a["runs"], b["runs"]) if x[key] and y[key]]
    return median(ratios), ratios


def paired_diff(a, b, key):
    diffs = [x[key] - y[key] for x, y in zip(a["runs"], b["runs"])
             if x[key] is not None and y[key] is not None]
    return median(diffs), diffs


# --- the table -------------------------------------------------------------------------------

def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    return f"{s * 1e3:.2f} ms"


def fmt_rps(r):
    return f"{r['rps']:,.0f}" + (" ERR" if r.get("error") else "")


class Table:
    def __init__(self):
        self.rows = []  # ("section", text) | ("run", result) | ("ratio", label, value, target, verdict)

    def section(self, text):
        self.rows.append(("section", text))

    def run(self, r):
        self.rows.append(("run", r))

    def ratio(self, label, value, target="", verdict=None):
        self.rows.append(("ratio", label, value, target, verdict))

    def note(self, text):
        self.rows.append(("note", text))

    def print(self):
        head = ("", "req/s", "p50", "p99", "CPU/req", "front", "wrk", "target")
        k = len(head) - 1  # the target column
        lines = []
        for row in self.rows:
            if row[0] == "run":
                r = row[1]
                lines.append(("  " + r["label"], fmt_rps(r), fmt_time(r["p50"]), fmt_time(r["p99"]),
                              fmt_time(r["cpu_per_req"]),
                              fmt_time(r["front_cpu_per_req"]) if r["front_cpu_per_req"] is not None
                              else "", fmt_time(r["wrk_cpu_per_req"]), ""))
            elif row[0] == "ratio":
                _, label, value, target, verdict = row
                lines.append(("    " + label, value) + ("",) * (k - 2)
                             + ((target + (" " + verdict if verdict else "")).strip(),))
        w = [max(len(head[i]), *(len(l[i]) for l in lines)) if lines else len(head[i])
             for i in range(len(head))]
        width = sum(w) + 2 * (len(w) - 1)
        out = [f"{head[0]:<{w[0]}}  " + "  ".join(f"{h:>{w[i]}}" for i, h in enumerate(head[1:k], 1))
               + f"  {head[k]}", "-" * width]
        it = iter(lines)
        for row in self.rows:
            if row[0] in ("section", "note"):
                out.append(row[1] if row[0] == "section" else "    " + row[1])
                continue
            l = next(it)
            out.append((f"{l[0]:<{w[0]}}  " + "  ".join(f"{l[i]:>{w[i]}}" for i in range(1, k))
                        + (f"  {l[k]}" if l[k] else "")).rstrip())
        print("\n".join(out))


def verdict(ok):
    return "PASS" if ok else "FAIL"


# --- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--workdir", required=True, help="scratch folder (logs, body, pid list)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("HTTP_BENCH_WORKERS", "2")),
                    help="N for part (1)")
    ap.add_argument("--connections", type=int,
                    default=int(os.environ.get("HTTP_BENCH_CONNECTIONS", "8")))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("HTTP_BENCH_SECONDS", "5")))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("HTTP_BENCH_WARMUP", "1")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("HTTP_BENCH_ROUNDS", "2")),
                    help="measured runs per server; a pair's runs alternate (A B, B A, ...)")
    ap.add_argument("--verbose", action="store_true", default=bool(os.environ.get("HTTP_BENCH_VERBOSE")))
    ap.add_argument("--parts", default=os.environ.get("HTTP_BENCH_PARTS", "1,2,3"),
                    help="which parts to run: 1 (development), 2 (production and the hop), 3 (clams serve)")
    a = ap.parse_args()

    build = os.path.abspath(a.build)
    splitter = os.path.join(build, "apps", "sentence-splitter", "sentence-splitter")
    clams = os.path.join(build, "src", "cli", "clams")
    for path in (splitter, WRK, GUNICORN, PYTHON):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"bench/http: {path} not found (build the sentence-splitter target; "
                             "wrk, gunicorn and python3-flask come from Debian)")
    pidfile = os.path.join(a.workdir, "pids")
    body = body_mmif()
    body_path = os.path.join(a.workdir, "body.mmif")
    with open(body_path, "wb") as f:
        f.write(body)

    errors = []
    servers = []
    m = Measure(a, body_path, errors)
    table = Table()
    summary = []  # (text, verdict)

    def stop_all():
        while servers:
            servers.pop().stop()

    def on_signal(signo, _frame):
        raise SystemExit(f"bench/http: interrupted by signal {signo}")
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)

    def clams_server(name, workers, production):
        port_file = os.path.join(a.workdir, re.sub(r"[^A-Za-z0-9]+", "-", name) + ".port")
        argv = [splitter, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file,
                "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        if production:
            argv.append("--production")
        s = start_clams(name, argv, workers, port_file, a.workdir, pidfile, production)
        servers.append(s)
        check_answer(s, body)
        return s

    def gunicorn(name, workers, worker_class="sync", threads=1, wsgi_app="flask_app:app", env_extra=None):
        s = start_gunicorn(name, workers, a.workdir, pidfile, worker_class, threads, wsgi_app, env_extra)
        servers.append(s)
        check_answer(s, body)
        return s

    wrk_version = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    flask_version = subprocess.run([PYTHON, "-c", "import importlib.metadata as m; "
                                    "print(m.version('flask'), m.version('werkzeug'))"],
                                   capture_output=True, text=True).stdout.split()
    gunicorn_version = subprocess.run([GUNICORN, "--version"], capture_output=True,
                                      text=True).stdout.strip()
    serve_ok = os.access(clams, os.X_OK) and subprocess.run(
        [clams, "serve", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    C = a.connections
    N = a.workers
    R = a.rounds

    def each(values, fmt):
        return "" if len(values) < 2 else " (" + ", ".join(fmt(v) for v in values) + ")"

    def x(v):
        return f"{v:.2f}x"

    def us(v):
        return f"{v * 1e6:+.0f}"

    parts = set(a.parts.split(","))
    answer_size = 0
    try:
        # (1) development mode vs gunicorn, N workers each.
        if "1" in parts:
            table.section(f"(1) development mode vs gunicorn, {N} workers each, wrk -t1 -c{C}")
            dev_s = clams_server(f"sentence-splitter dev {N}", N, production=False)
            answer_size = check_answer(dev_s, body)
            g_s = gunicorn(f"gunicorn sync {N}", N)
            dev, g = m.rounds([(dev_s, f"clams-cpp development mode ({N} threads)"),
                               (g_s, f"gunicorn + Flask, {N} sync workers")], C)
            stop_all()
            table.run(dev)
            table.run(g)
            ratio, each_ratio = paired_ratio(dev, g)
            table.ratio("clams-cpp / gunicorn, req/s" + each(each_ratio, x), x(ratio),
                        f">= {DEV_MIN_RATIO:.0f}x", verdict(ratio >= DEV_MIN_RATIO))
            cpu_ratio = g["cpu_per_req"] / dev["cpu_per_req"]
            table.ratio("gunicorn / clams-cpp, server CPU per request", x(cpu_ratio), "reference")
            summary.append((f"development mode vs gunicorn ({N} workers): {ratio:.2f}x req/s (target >= "
                            f"{DEV_MIN_RATIO:.0f}x); server CPU per request {cpu_ratio:.2f}x less",
                            verdict(ratio >= DEV_MIN_RATIO)))

        # (2) production, 2 workers, vs gunicorn sync and gthread; then the hop's latency.
        if "2" in parts:
            table.section(f"(2) production mode vs gunicorn, 2 workers each, wrk -t1 -c{C}")
            prod_s = clams_server("sentence-splitter production 2", 2, production=True)
            sync_s = gunicorn("gunicorn sync 2", 2)
            thr_s = gunicorn("gunicorn gthread 2x2", 2, "gthread", 2)
            prod, g_sync, g_thr = m.rounds([(prod_s, "clams-cpp --production --workers 2"),
                                            (sync_s, "gunicorn + Flask, 2 sync workers"),
                                            (thr_s, "gunicorn + Flask, 2 gthread workers x 2 threads")], C)
            stop_all()
            for r in (prod, g_sync, g_thr):
                table.run(r)
            for base, name in ((g_sync, "sync"), (g_thr, "gthread")):
                ratio, each_ratio = paired_ratio(prod, base)
                table.ratio(f"production / gunicorn {name}, req/s" + each(each_ratio, x), x(ratio),
                            f">= {PROD_MIN_RATIO:.0f}x", verdict(ratio >= PROD_MIN_RATIO))
                cpu_ratio = base["cpu_per_req"] / prod["cpu_per_req"]
                summary.append((f"production vs gunicorn {name} (2 workers): {ratio:.2f}x req/s (target >= "
                                f"{PROD_MIN_RATIO:.0f}x); server CPU per request {cpu_ratio:.2f}x less",
                                verdict(ratio >= PROD_MIN_RATIO)))
            table.ratio("gunicorn sync / production, server CPU per request",
                        x(g_sync["cpu_per_req"] / prod["cpu_per_req"]), "reference")
            # The front's own CPU per request, from /proc of the front process over the measured
            # production runs (median over the rounds).
            front_cpu = prod["front_cpu_per_req"]
            if front_cpu is not None:
                front_ok = front_cpu <= FRONT_MAX_CPU_PER_REQ
                each_front = [r["front_cpu_per_req"] for r in prod["runs"] if r["front_cpu_per_req"] is not None]
                plain_us = lambda v: f"{v * 1e6:.0f}"
                table.ratio("front CPU per request (us)" + each(each_front, plain_us), plain_us(front_cpu) + " us",
                            f"<= {FRONT_MAX_CPU_PER_REQ * 1e6:.0f} us", verdict(front_ok))
                summary.append((f"production front CPU per request: {plain_us(front_cpu)} us (target <= "
                                f"{FRONT_MAX_CPU_PER_REQ * 1e6:.0f} us)", verdict(front_ok)))

            table.section("(2b) the worker hop: production vs development, 2 workers, wrk -t1 -c1")
            ldev_s = clams_server("sentence-splitter dev 2 (latency)", 2, production=False)
            lprod_s = clams_server("sentence-splitter production 2 (latency)", 2, production=True)
            lat_prod, lat_dev = m.rounds([(lprod_s, "clams-cpp --production --workers 2"),
                                          (ldev_s, "clams-cpp development mode (2 threads)")], 1)
            stop_all()
            table.run(lat_dev)
            table.run(lat_prod)
            d50, each50 = paired_diff(lat_prod, lat_dev, "p50")
            d99, each99 = paired_diff(lat_prod, lat_dev, "p99")
            table.ratio("hop adds, p50 (production - development)" + each(each50, us), us(d50) + " us",
                        "reported")
            table.ratio("hop adds, p99 (production - development)" + each(each99, us), us(d99) + " us",
                        "reported")
            summary.append((f"worker hop: p50 {us(d50)} us, p99 {us(d99)} us (production - development, "
                            "2 workers, 1 connection)", None))

        # (3) clams serve in front of the unmodified Flask app vs gunicorn.
        if "3" not in parts:
            pass
        elif not serve_ok:
            table.section("(3) clams serve: not available in this build")
            print("clams serve: not available in this build", flush=True)
        else:
            table.section(f"(3) clams serve -- python3 flask_app.py vs gunicorn, 2 workers each, "
                          f"wrk -t1 -c{C} and -c1")

            def serve(name, command, env_extra=None):
                port_file = os.path.join(a.workdir, re.sub(r"[^A-Za-z0-9]+", "-", name) + ".port")
                argv = [clams, "serve", "--production", "--workers", "2", "--host", "127.0.0.1",
                        "--port", "0", "--port-file", port_file, "--no-access-log",
                        "--log-level", "warning"] + command
                s = start_clams(name, argv, 2, port_file, a.workdir, pidfile, True, env_extra)
                servers.append(s)
                check_answer(s, body)
                return s

            sv_s = serve("clams serve 2", ["--", PYTHON, FLASK_APP, "--port", "{port}"])
            answer_size = answer_size or check_answer(sv_s, body)
            gs_s = gunicorn("gunicorn sync 2 (serve baseline)", 2)
            # Reference: the same front with gunicorn's own HTTP server in every worker
            # (`gunicorn -w 1` per port): isolates the front's cost from the difference between
            # Werkzeug's and gunicorn's HTTP servers.
            svg_s = serve("clams serve 2 gunicorn", ["--", GUNICORN, "--workers", "1", "--bind",
                                                      "127.0.0.1:{port}", "--chdir", HERE,
                                                      "flask_app:app"])
            fa_s = start_flask_standalone("flask_app.py standalone", a.workdir, pidfile)
            servers.append(fa_s)
            check_answer(fa_s, body)
            sv, gs, sv_g = m.rounds([(sv_s, "clams serve --workers 2 -- flask_app.py"),
                                     (gs_s, "gunicorn + Flask, 2 sync workers"),
                                     (svg_s, "clams serve --workers 2 -- gunicorn -w 1 (ref.)")], C)
            sv_lat, gs_lat, direct_lat = m.rounds(
                [(sv_s, "clams serve --workers 2 -- flask_app.py (-c1)"),
                 (gs_s, "gunicorn + Flask, 2 sync workers (-c1)"),
                 (fa_s, "flask_app.py alone, no front (-c1)")], 1)
            stop_all()
            for r in (sv, gs, sv_g, sv_lat, gs_lat, direct_lat):
                table.run(r)
            ratio, each_ratio = paired_ratio(sv, gs)
            overhead = 1 - ratio
            added, each_added = paired_diff(sv_lat, gs_lat, "p50")
            hop, each_hop = paired_diff(sv_lat, direct_lat, "p50")
            ref_ratio, each_ref = paired_ratio(sv_g, gs)
            pct = lambda v: f"{1 - v:+.1%}"
            table.ratio("clams serve overhead, req/s (1 - serve/gunicorn)" + each(each_ratio, pct),
                        pct(ratio), f"< {SERVE_MAX_OVERHEAD:.0%}", verdict(overhead < SERVE_MAX_OVERHEAD))
            table.ratio("clams serve p50 added (serve - gunicorn, -c1)" + each(each_added, us),
                        us(added) + " us", f"< {SERVE_MAX_P50_ADDED * 1e6:.0f} us",
                        verdict(added < SERVE_MAX_P50_ADDED))
            table.ratio("front hop, p50 (serve - flask_app.py alone, -c1)" + each(each_hop, us),
                        us(hop) + " us", "reference")
            table.ratio("overhead with gunicorn -w 1 workers (1 - ref./gunicorn)" + each(each_ref, pct),
                        pct(ref_ratio), "reference")
            table.ratio("server CPU per request, serve / gunicorn",
                        x(sv["cpu_per_req"] / gs["cpu_per_req"]), "reference")
            summary.append((f"clams serve vs gunicorn: req/s overhead {overhead:+.1%} (target < "
                            f"{SERVE_MAX_OVERHEAD:.0%})", verdict(overhead < SERVE_MAX_OVERHEAD)))
            summary.append((f"clams serve vs gunicorn: p50 added {us(added)} us (target < "
                            f"{SERVE_MAX_P50_ADDED * 1e6:.0f} us)", verdict(added < SERVE_MAX_P50_ADDED)))

            # (3b) a Python SDK app: `clams serve app.py` (the worker adapter, keep-alive on a Unix
            # socket) vs the SDK's own Flask app under gunicorn, the same app and worker count.
            table.section(f"(3b) clams serve clams_app.py (Python SDK app) vs gunicorn + Restifier(app).flask_app, "
                          f"2 workers each, wrk -t1 -c{C} and -c1")
            sdk_env = {"PYTHONPATH": os.path.abspath(SDK_DOUBLE) + os.pathsep + HERE}
            sa_s = serve("clams serve app.py 2", ["--python", PYTHON, CLAMS_APP], sdk_env)
            ga_s = gunicorn("gunicorn sync 2 clams_wsgi", 2, wsgi_app="clams_wsgi:app", env_extra=sdk_env)
            # Reference: the same app started the generic way, through its template's __main__
            # (Flask's debug server with its reloader: two processes per worker, a new connection
            # per request).
            st_s = serve("clams serve 2 template main", ["--", PYTHON, CLAMS_APP, "--port", "{port}"], sdk_env)
            sa, ga, st = m.rounds([(sa_s, "clams serve --workers 2 clams_app.py"),
                                   (ga_s, "gunicorn, 2 sync workers, Restifier(app).flask_app"),
                                   (st_s, "clams serve --workers 2 -- clams_app.py --port (ref.)")], C)
            sa_lat, ga_lat, st_lat = m.rounds(
                [(sa_s, "clams serve --workers 2 clams_app.py (-c1)"),
                 (ga_s, "gunicorn, 2 sync workers, Restifier(app).flask_app (-c1)"),
                 (st_s, "clams serve --workers 2 -- clams_app.py --port (ref., -c1)")], 1)
            stop_all()
            for r in (sa, ga, st, sa_lat, ga_lat, st_lat):
                table.run(r)
            app_ratio, each_app = paired_ratio(sa, ga)
            app_added, each_app_added = paired_diff(sa_lat, ga_lat, "p50")
            # Issue 15's targets name both forms of `clams serve`: this is the adapter form's row.
            app_overhead = 1 - app_ratio
            pct = lambda v: f"{1 - v:+.1%}"
            table.ratio("clams serve app.py overhead, req/s (1 - serve/gunicorn)" + each(each_app, pct),
                        pct(app_ratio), f"< {SERVE_MAX_OVERHEAD:.0%}", verdict(app_overhead < SERVE_MAX_OVERHEAD))
            table.ratio("clams serve app.py p50 added (serve - gunicorn, -c1)" + each(each_app_added, us),
                        us(app_added) + " us", f"< {SERVE_MAX_P50_ADDED * 1e6:.0f} us",
                        verdict(app_added < SERVE_MAX_P50_ADDED))
            table.ratio("server CPU per request, serve app.py / gunicorn",
                        x(sa["cpu_per_req"] / ga["cpu_per_req"]), "reference")
            tpl_ratio, each_tpl = paired_ratio(sa, st)
            table.ratio("clams serve app.py / the template's own server under clams serve, req/s"
                        + each(each_tpl, x), x(tpl_ratio), "reference")
            summary.append((f"clams serve app.py vs gunicorn (same SDK app, 2 workers): req/s overhead "
                            f"{app_overhead:+.1%} (target < {SERVE_MAX_OVERHEAD:.0%})",
                            verdict(app_overhead < SERVE_MAX_OVERHEAD)))
            summary.append((f"clams serve app.py vs gunicorn: p50 added {us(app_added)} us at one connection "
                            f"(target < {SERVE_MAX_P50_ADDED * 1e6:.0f} us)", verdict(app_added < SERVE_MAX_P50_ADDED)))
    except BenchError as e:
        stop_all()
        print(f"bench/http: ERROR: {e}", file=sys.stderr)
        return 1
    finally:
        stop_all()

    print(f"HTTP benchmark: {wrk_version.split(' [')[0]} -t1; per server {a.rounds} run(s) of {a.seconds} s "
          f"after a {a.warmup} s warm-up, the servers of a pair alternating; medians shown, per-round "
          f"ratios in parentheses; {os.cpu_count()} cores shared by wrk and the servers")
    print(f"baseline: Flask {flask_version[0] if flask_version else '?'} + {gunicorn_version} on CPython "
          f"{sys.version.split()[0]} (bench/http/flask_app.py); clams-cpp: {build}")
    print(f"body: {len(body)}-byte MMIF, one TextDocument of {len(TEXT)} characters, "
          f"{len(EXPECTED_SENTENCES)} sentences, {EXPECTED_TOKENS} tokens; answer {answer_size} bytes")
    print("CPU/req: CPU time of all the server's processes per request over the measured run; front: "
          "of that, the front process alone (production/serve); wrk: the client's CPU per request")
    print()
    table.print()
    print()
    for text, v in summary:
        print(f"  {v or 'info':<4}  {text}")
    if errors:
        print("bench/http: ERRORS during the run (the numbers above are not valid):")
        for e in errors:
            print("  " + e)
        return 1
    failed = [t for t, v in summary if v == "FAIL"]
    print("http bench:", "targets missed: " + str(len(failed)) if failed else "all targets met",
          "(targets do not change the exit status)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
