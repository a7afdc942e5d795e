#!/usr/bin/env python3
"""Chaos suite and soak for the production server (docs/reliability.md).

Starts `vram-workload --production` on simulated GPUs (and, for the
scenario without a GPU, the test app on none), drives steady load
with keep-alive clients, injects one fault per scenario, and counts every
answer by HTTP status and every request whose connection ended without an
answer as LOST. One row per scenario:

  answers by status, lost, refused connects, front alive, simulated OOM
  (unexpected clams_oom_total + the simulated devices' oom_events), front RSS.

Usage:
  chaos.py --build BUILD [--smoke] [--only NAME,...] [--table FILE]
  chaos.py --build BUILD --soak MINUTES [--table FILE]

Exits 1 if any scenario lost a request, the front crashed, a simulated OOM
happened that no request asked for, or a scenario's own check failed; 2 on
a usage or setup error. Python 3 standard library only.
"""

import argparse
import collections
import ctypes
import datetime
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# How long the driver waits for the server to come up (workers load the app).
STARTUP_TIMEOUT_S = 60
# A request that has no answer after this long is counted as lost (the
# longest scenario-made request, a SIGSTOPped worker's, ends by
# --request-timeout well before).
CLIENT_TIMEOUT_S = 60
# Every request's body: a valid MMIF with one VideoDocument.
MMIF = json.dumps({
    "metadata": {"mmif": "http://mmif.clams.ai/1.1.0"},
    "documents": [{"@type": "http://mmif.clams.ai/vocabulary/VideoDocument/v1",
                   "properties": {"id": "d1", "mime": "video/mp4", "location": "file:///data/a.mp4"}}],
    "views": []})
# What the steady load asks for: the smallest model, a short hold.
LOAD_QUERY = "/?model=tiny&holdMs=100"
# The apps: the GPU-like workload, and the test app for workers without a
# GPU, whose quick requests (mode=sleep, 2 ms) each worker takes one ahead.
WORKLOAD_APP = "apps/vram-workload/vram-workload"
TEST_APP = "tests/e2e/apps/clams-test-app"
CPU_LOAD_QUERY = "/?mode=sleep&sleepMs=2"
PR_SET_PDEATHSIG = 1
# fd exhaustion: the front's descriptor limit, and how many idle connections
# the flood opens (well past it).
FD_FLOOD_LIMIT = 256
FD_FLOOD_CONNECTIONS = 600
# foreign: what the foreign process holds of the simulated 24 GiB.
FOREIGN_SPIKE = "19968MiB"
# How often the driver polls observable state (readiness, idle workers).
POLL_INTERVAL_S = 0.1
# How long a client waits before connecting again after a refused connect.
RECONNECT_DELAY_S = 0.05
# How long a load client waits after a 503 before its next request.
RETRY_BACKOFF_S = 0.1


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the driver dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Server:
    """One production server with its own simulated GPUs and profiles."""

    def __init__(self, build, workers, extra_args=(), gpus="24GiB", prepare=None, nofile=0, app=WORKLOAD_APP):
        """`gpus`: the simulated devices, or None for a machine without a GPU
        (also on one that has a GPU: CUDA_VISIBLE_DEVICES is set and empty)."""
        self.build = build
        self.gpus = gpus
        self.dir = tempfile.mkdtemp(prefix="clams-chaos-")
        self.mounts = []  # unmounted by stop()
        self.profiles = os.path.join(self.dir, "profiles")
        self.env = dict(os.environ)
        self.env.update({"CLAMS_SIM_STATE": os.path.join(self.dir, "sim-state"),
                         "CLAMS_PROFILE_DIR": self.profiles, "CLAMS_APP_VERSION": "v1"})
        if gpus is None:
            self.env.pop("CLAMS_SIM_GPUS", None)
            self.env["CUDA_VISIBLE_DEVICES"] = ""
        else:
            self.env["CLAMS_SIM_GPUS"] = gpus
        if prepare:
            prepare(self)
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "server.log")
        args = [os.path.join(build, app), "--production", "--expose-runtime",
                "--port", "0", "--port-file", port_file, "--host", "127.0.0.1", "--workers", str(workers)]
        args += list(extra_args)
        self.log = open(self.log_path, "wb")
        def setup():
            die_with_parent()
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=setup)
        self.port = 0
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with open(port_file) as f:
                    self.port = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
            if self.port and self.get("/ready")[0] == 200 and self.all_idle(workers):
                return
            time.sleep(POLL_INTERVAL_S)
        raise RuntimeError("the server did not start; its log:\n" + self.tail())

    def tail(self, n=4000):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]

    def get(self, path, timeout=10):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        except (OSError, http.client.HTTPException):
            return 0, b""

    def runtime(self):
        status, body = self.get("/?includeVRAM=true")
        if status != 200:
            return None
        try:
            return json.loads(body).get("runtime")
        except ValueError:
            return None

    def all_idle(self, count=0):
        rt = self.runtime()
        if not rt:
            return False
        workers = rt.get("workers", [])
        return bool(workers) and (count == 0 or len(workers) == count) and all(
            w.get("state") == "idle" for w in workers)

    def workers_ahead(self):
        """How many requests /status.json says each worker takes ahead."""
        status, body = self.get("/status.json")
        if status != 200:
            return []
        try:
            return [w.get("ahead", 0) for w in json.loads(body).get("workers", [])]
        except ValueError:
            return []

    def worker_pids(self):
        rt = self.runtime() or {}
        return [w["pid"] for w in rt.get("workers", []) if w.get("pid")]

    def alive(self):
        return self.proc.poll() is None and self.get("/health")[0] == 200

    def oom_total(self):
        status, body = self.get("/metrics")
        total = 0.0
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("clams_oom_total"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def sim_oom_events(self):
        r = subprocess.run([os.path.join(self.build, "src/cli/clams"), "gpu", "--json"], env=self.env,
                           capture_output=True, text=True, timeout=30)
        try:
            return sum(d.get("oom_events", 0) for d in json.loads(r.stdout)["devices"])
        except (ValueError, KeyError):
            return -1  # unreadable state: reported, and counted as a failure

    def rss_mib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        for m in self.mounts:
            subprocess.run(["umount", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Tally:
    """Answers by status, lost requests and refused connects, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()
        self.lost = 0
        self.refused = 0
        self.lost_detail = collections.Counter()

    def answer(self, status):
        with self.lock:
            self.status[status] += 1

    def lose(self, why):
        with self.lock:
            self.lost += 1
            self.lost_detail[why] += 1

    def refuse(self):
        with self.lock:
            self.refused += 1


class Load:
    """`clients` keep-alive clients, each sending one request after another."""

    def __init__(self, port, clients, tally, query=LOAD_QUERY, queries=None):
        self.port = port
        self.tally = tally
        self.queries = queries or [query]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def client(self, index):
        conn = None
        n = 0
        while not self.stopping.is_set():
            query = self.queries[(index + n) % len(self.queries)]
            n += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_S)
                try:
                    conn.connect()
                except OSError:
                    # A refused connect is not a lost request: nothing was sent.
                    self.tally.refuse()
                    conn = None
                    self.stopping.wait(RECONNECT_DELAY_S)
                    continue
            try:
                conn.request("POST", query, body=MMIF, headers={"Content-Type": "application/json"})
            except OSError:
                # The server closed this connection before it read the request
                # (it had answered the previous one with Connection: close or
                # is shutting down): nothing was sent, the client reconnects.
                self.tally.refuse()
                conn.close()
                conn = None
                continue
            try:
                r = conn.getresponse()
                r.read()
                self.tally.answer(r.status)
                if r.will_close:
                    conn.close()
                    conn = None
                if r.status == 503:
                    # A client's back-off: without it a draining or full
                    # server is asked thousands of times a second.
                    self.stopping.wait(RETRY_BACKOFF_S)
            except socket.timeout:
                self.tally.lose("no answer in %d s" % CLIENT_TIMEOUT_S)
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException) as e:
                self.tally.lose(type(e).__name__)
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(CLIENT_TIMEOUT_S + 5)


def raw_exchange(port, data, want=1, read_timeout=30, chunks=None, gap=0.0):
    """Sends `data` (or `chunks` with `gap` seconds between them) on a fresh
    connection and returns the statuses of the answers read until `want`
    complete answers came, the server closed, or `read_timeout` passed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        for i, piece in enumerate(chunks or [data]):
            if i and gap:
                time.sleep(gap)  # the pace of a slow client, not synchronisation
            s.sendall(piece)
        buf = b""
        while complete_answers(buf) < want:
            try:
                got = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not got:
                break
            buf += got
        return statuses(buf)
    finally:
        s.close()


def statuses(buf):
    out = []
    for part in buf.split(b"HTTP/1.1 ")[1:]:
        try:
            out.append(int(part[:3]))
        except ValueError:
            pass
    return out


def complete_answers(buf):
    """How many complete Content-Length framed answers `buf` holds."""
    n = 0
    rest = buf
    while True:
        head_end = rest.find(b"\r\n\r\n")
        if head_end < 0:
            return n
        length = 0
        for line in rest[:head_end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(rest) < head_end + 4 + length:
            return n
        n += 1
        rest = rest[head_end + 4 + length:]


def post_bytes(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class Scenario:
    def __init__(self, name, what, run, smoke=False):
        self.name, self.what, self.run, self.smoke = name, what, run, smoke


class Result:
    def __init__(self, name):
        self.name = name
        self.tally = Tally()
        self.alive = False
        self.expect_alive = True
        self.oom = 0
        self.rss_start = 0.0
        self.rss_end = 0.0
        self.checks = []  # (ok, text): the scenario's own expectations
        self.rss_series = []
        self.oom_detail = ""

    def check(self, ok, text):
        self.checks.append((bool(ok), text))

    def failed(self):
        return (self.tally.lost > 0 or self.alive != self.expect_alive or self.oom != 0 or
                any(not ok for ok, _ in self.checks))


def finish(result, server, expected_app_oom=0, foreign_ooms=0):
    """Fills the front's state into `result` (before the server stops).

    OOM: the larger of the OOMs /metrics counts beyond `expected_app_oom`
    and the simulated devices' OOM events beyond `foreign_ooms` (those of
    another process): a worker's allocation that does not fit shows in both,
    so the larger one counts it once and misses neither kind."""
    result.rss_end = server.rss_mib()
    result.alive = server.alive()
    metric = int(server.oom_total() - expected_app_oom) if result.alive else 0
    if server.gpus is None:
        result.oom = metric
        result.oom_detail = "clams_oom_total %+d (no GPU)" % metric
        return
    sim = server.sim_oom_events()
    if sim < 0:
        result.check(False, "the simulated GPU state could not be read")
        sim = 1
    result.oom = max(metric, sim - foreign_ooms)
    result.oom_detail = "clams_oom_total %+d, simulated OOM events %d" % (metric, sim)


def run_load(server, result, seconds, clients, fault=None, queries=None):
    """Steady load for `seconds`; `fault(stop_event)` runs beside it."""
    result.rss_start = server.rss_mib()
    load = Load(server.port, clients, result.tally, queries=queries)
    stop = threading.Event()
    ft = None
    if fault:
        ft = threading.Thread(target=fault, args=(stop,), daemon=True)
        ft.start()
    stop.wait(seconds)  # the load's duration
    stop.set()
    if ft:
        ft.join(CLIENT_TIMEOUT_S)
    load.stop()


# --- scenarios ---------------------------------------------------------------

def signal_random_worker(server, signo, sent):
    """Sends `signo` to one of the server's workers, chosen at random, and
    appends its PID to `sent`. Returns the PID, or None if no worker was
    listed or it was gone by then."""
    pids = server.worker_pids()
    if not pids:
        return None
    pid = random.choice(pids)
    try:
        os.kill(pid, signo)
    except ProcessLookupError:
        return None
    sent.append(pid)
    return pid


def sc_baseline(build, seconds):
    r = Result("baseline")
    s = Server(build, 2)
    try:
        run_load(s, r, seconds, 4)
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "every answer is 200")
    finally:
        s.stop()
    return r


def sc_kill9(build, seconds):
    r = Result("kill -9 workers")
    s = Server(build, 3)
    killed = []

    def fault(stop):
        while not stop.wait(2.0):  # one kill every 2 s
            signal_random_worker(s, signal.SIGKILL, killed)
    try:
        run_load(s, r, seconds, 6, fault)
        finish(r, s)
        r.check(killed, "workers were killed (%d)" % len(killed))
        r.check(set(r.tally.status) <= {200, 500, 502, 503}, "answers are 200 or 5xx")
        r.check(wait_for(lambda: s.all_idle(3), 30), "3 workers idle again after the storm")
    finally:
        s.stop()
    return r


def sc_kill9_no_gpu(build, seconds):
    """Workers without a GPU take a request ahead behind the one they run
    (issue 15). When one is killed, only the request it was running fails:
    the one taken ahead had not started, waits again and is answered."""
    r = Result("kill -9 workers without a GPU (taking requests ahead)")
    s = Server(build, 2, gpus=None, app=TEST_APP)
    killed = []
    ahead_seen = []

    def fault(stop):
        while not stop.wait(1.0):  # one kill a second
            ahead_seen.append(sum(s.workers_ahead()))
            signal_random_worker(s, signal.SIGKILL, killed)
    try:
        # Quick requests first, so that the workers are known to be quick.
        load = Load(s.port, 4, r.tally, query=CPU_LOAD_QUERY)
        ok = wait_for(lambda: sum(s.workers_ahead()) == 2, 30)
        load.stop()
        r.check(ok, "both workers take a request ahead once their requests are known to be quick")
        run_load(s, r, seconds, 8, fault, queries=[CPU_LOAD_QUERY])
        finish(r, s)
        failed = sum(n for code, n in r.tally.status.items() if code != 200)
        r.check(killed, "workers were killed (%d)" % len(killed))
        r.check(any(ahead_seen), "requests were taken ahead under the load (ahead per kill: %s)" % ahead_seen)
        r.check(set(r.tally.status) <= {200, 500, 502, 503}, "answers are 200 or 5xx")
        r.check(failed <= len(killed),
                "at most the running request fails per kill: %d failed for %d kills" % (failed, len(killed)))
        r.check(wait_for(lambda: s.all_idle(2), 30), "2 workers idle again after the storm")
    finally:
        s.stop()
    return r


def sc_sigstop(build, seconds):
    r = Result("SIGSTOP worker, --request-timeout 2")
    s = Server(build, 2, ["--request-timeout", "2"])
    stopped = []

    def fault(stop):
        while not stop.wait(3.0):
            signal_random_worker(s, signal.SIGSTOP, stopped)
        for pid in stopped:  # those the front has not replaced yet
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        # One stop every 3 s: fewer means the driver could not see the
        # workers, i.e. the front stopped answering (a worker stopped inside
        # a simulated allocation used to stop the front's admission with it).
        r.check(len(stopped) >= int(seconds / 3.0) - 1,
                "workers were stopped (%d), about one every 3 s" % len(stopped))
        r.check(r.tally.status.get(504, 0) > 0, "stopped workers' requests got 504")
        r.check(set(r.tally.status) <= {200, 500, 502, 503, 504}, "answers are 200 or 5xx")
    finally:
        s.stop()
    return r


def sc_sigstop_no_timeout(build, seconds):
    r = Result("SIGSTOP worker 4 s, no --request-timeout")
    s = Server(build, 2)
    stopped = []

    def fault(stop):
        while not stop.wait(2.0):
            pid = signal_random_worker(s, signal.SIGSTOP, stopped)
            if pid is None:
                continue
            stop.wait(4.0)  # how long the worker stays stopped
            os.kill(pid, signal.SIGCONT)
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        r.check(stopped, "workers were stopped and continued (%d)" % len(stopped))
        r.check(set(r.tally.status) == {200}, "every answer is 200 (a continued worker finishes its request)")
    finally:
        s.stop()
    return r


def sc_sigterm(build, seconds):
    r = Result("SIGTERM mid-load (drain)")
    r.expect_alive = False
    s = Server(build, 2)
    try:
        r.rss_start = s.rss_mib()
        load = Load(s.port, 6, r.tally, queries=["/?model=tiny&holdMs=1000"])
        wait_for(lambda: sum(r.tally.status.values()) >= 6, 30)
        r.rss_end = s.rss_mib()
        s.proc.send_signal(signal.SIGTERM)
        try:
            code = s.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        load.stop()
        r.alive = s.proc.poll() is None
        r.check(code == 0, "the front exits 0 after the drain (exit %s)" % code)
        r.check(set(r.tally.status) <= {200, 503}, "answers are 200 or 503")
        r.oom = max(0, s.sim_oom_events())
    finally:
        s.stop()
    return r


def sc_sighup(build, seconds):
    r = Result("SIGHUP storm (5 in 5 s)")
    s = Server(build, 2)

    def fault(stop):
        for _ in range(5):
            if stop.wait(1.0):
                return
            s.proc.send_signal(signal.SIGHUP)
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "every answer is 200")
    finally:
        s.stop()
    return r


def sc_oom_storm(build, seconds):
    r = Result("failMode=oom storm")
    s = Server(build, 2)
    asking = Tally()  # the failMode=oom requests' own answers
    try:
        before = s.oom_total()
        storm = Load(s.port, 3, asking, query="/?model=tiny&holdMs=100&failMode=oom")
        run_load(s, r, seconds, 3)
        storm.stop()
        plain = dict(r.tally.status)
        asked = sum(asking.status.values())
        r.tally.status.update(asking.status)
        r.tally.lost += asking.lost
        r.tally.lost_detail.update(asking.lost_detail)
        # A confirmed app OOM is counted in clams_oom_total and answered 503
        # (the worker is recycled); an unconfirmed one is a 500. Only OOMs
        # beyond the requests that asked for one count against the scenario.
        r.rss_end = s.rss_mib()
        r.alive = s.alive()
        confirmed = s.oom_total() - before if r.alive else 0
        r.oom = max(int(confirmed - asked), s.sim_oom_events())
        r.check(set(plain) == {200}, "the plain requests are all answered 200: %s" % plain)
        r.check(asked > 0 and set(asking.status) <= {500, 503},
                "failMode=oom requests answered 500 or 503: %s (clams_oom_total +%d)" % (dict(asking.status),
                                                                                       confirmed))
    finally:
        s.stop()
    return r


def sc_foreign(build, seconds):
    r = Result("foreign sim-alloc spikes")
    s = Server(build, 2)
    clams = os.path.join(build, "src/cli/clams")

    spikes = collections.Counter()

    def fault(stop):
        while not stop.is_set():
            # A foreign process takes FOREIGN_SPIKE of the 24 GiB for 1 s:
            # beside the two workers' cached weights (2 x 2 GiB) that leaves
            # room for one request's activations (0.3 GiB), not two.
            done = subprocess.run([clams, "gpu", "sim-alloc", FOREIGN_SPIKE, "--seconds", "1"], env=s.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            spikes["held" if done.returncode == 0 else "did not fit"] += 1
            stop.wait(1.0)
    try:
        run_load(s, r, seconds, 4, fault, queries=["/?model=small&holdMs=100"])
        # A foreign allocation that did not fit is an OOM event of the
        # simulated device too: only the server's own count.
        finish(r, s, foreign_ooms=spikes["did not fit"])
        r.check(spikes["held"] > 0, "foreign allocations held: %s" % dict(spikes))
        r.check(set(r.tally.status) <= {200, 503}, "answers are 200 or 503")
    finally:
        s.stop()
    return r


def sc_readonly_profiles(build, seconds):
    r = Result("unwritable profile directory")

    def prepare(server):
        # Running as root, permissions do not stop writes: the profile
        # directory is under a regular file instead (every write: ENOTDIR).
        blocker = os.path.join(server.dir, "blocker")
        open(blocker, "w").close()
        server.profiles = os.path.join(blocker, "profiles")
        server.env["CLAMS_PROFILE_DIR"] = server.profiles
    s = Server(build, 2, prepare=prepare)
    try:
        run_load(s, r, seconds, 4, queries=[LOAD_QUERY, "/?model=base&holdMs=100&declareVram=false"])
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "every answer is 200")
    finally:
        s.stop()
    return r


def sc_full_profiles(build, seconds):
    r = Result("full profile directory")
    mounted = []  # for a server that did not start

    def prepare(server):
        # A 64 KiB tmpfs filled to the last byte (needs root; skipped otherwise).
        os.makedirs(server.profiles)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", server.profiles],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SkipScenario("cannot mount a small tmpfs: " + done.stderr.strip())
        mounted.append(server.profiles)
        server.mounts.append(server.profiles)
        try:
            with open(os.path.join(server.profiles, "filler"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass  # ENOSPC: the directory is full
    try:
        s = Server(build, 2, prepare=prepare)
        try:
            run_load(s, r, seconds, 4, queries=[LOAD_QUERY, "/?model=base&holdMs=100&declareVram=false"])
            finish(r, s)
            r.check(set(r.tally.status) == {200}, "every answer is 200")
            r.check(not profile_files(s.profiles), "no profile fitted in the full directory")
        finally:
            s.stop()
    except RuntimeError:
        for m in mounted:
            subprocess.run(["umount", m], capture_output=True)
        raise
    return r


class SkipScenario(Exception):
    pass


def sc_corrupt_files(build, seconds):
    r = Result("corrupted profile and sim-state files")
    measured = "/?model=base&holdMs=100&declareVram=false"
    saved = tempfile.mkdtemp(prefix="clams-chaos-profiles-")
    try:
        # Real profiles first: a server measures two classes.
        first = Server(build, 1)
        try:
            warm = Tally()
            load = Load(first.port, 1, warm, queries=[LOAD_QUERY, measured])
            written = wait_for(lambda: len(profile_files(first.profiles)) >= 2, 60)
            load.stop()
            shutil.copytree(first.profiles, saved, dirs_exist_ok=True)
        finally:
            first.stop()
        r.check(written, "the first server wrote its profiles")
        # Then every one corrupted a different way, and one junk file with a
        # profile's name.
        corruptions = [b"", b"{\"peak_bytes\": -1e999, \"samples\": \"many\"}", b"\x00{not json\xff" * 100,
                       b"[" * 100000]
        files = sorted(profile_files(saved))
        if files:
            files.append(os.path.join(os.path.dirname(files[0]), "memory_" + "0" * 32 + ".json"))
        for i, name in enumerate(files):
            with open(name, "wb") as f:
                f.write(corruptions[i % len(corruptions)])

        def prepare(server):
            shutil.copytree(saved, server.profiles)
        s = Server(build, 2, prepare=prepare)

        def fault(stop):
            stop.wait(seconds / 2)
            # The simulated devices' state, overwritten under load: readers
            # must not crash (they may start from an empty state).
            with open(s.env["CLAMS_SIM_STATE"], "r+b") as f:
                f.write(b"\xde\xad\xbe\xef" * 16)
        try:
            run_load(s, r, seconds, 4, fault, queries=[LOAD_QUERY, measured])
            r.rss_end = s.rss_mib()
            r.alive = s.alive()
            r.oom = int(s.oom_total()) if r.alive else 0  # the sim state is garbage on purpose
            r.check(set(r.tally.status) == {200}, "every answer is 200")
        finally:
            s.stop()
    finally:
        shutil.rmtree(saved, ignore_errors=True)
    return r


def profile_files(directory):
    """The profiles under `directory` (one folder per app and version)."""
    return [os.path.join(root, n) for root, _, names in os.walk(directory) for n in names
            if n.startswith("memory_") and n.endswith(".json")]


def sc_slow_clients(build, seconds):
    r = Result("slowloris + slow bodies beside load")
    s = Server(build, 2)
    slow_answers = collections.Counter()

    def slowloris(stop):
        socks = []
        for _ in range(50):
            try:
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
                socks.append(c)
            except OSError:
                break
        while not stop.wait(1.0):  # one header byte a second
            for c in list(socks):
                try:
                    c.sendall(b"X")
                except OSError:
                    socks.remove(c)
                    slow_answers["closed by the server"] += 1
        for c in socks:
            c.close()

    def slow_body(stop):
        body = MMIF.encode()
        while not stop.is_set():
            head = post_bytes(LOAD_QUERY.encode(), body)
            split = len(head) - len(body)
            chunks = [head[:split]] + [body[i:i + 64] for i in range(0, len(body), 64)]
            try:
                for st in raw_exchange(s.port, head, chunks=chunks, gap=0.2):
                    slow_answers[st] += 1
            except OSError:
                slow_answers["connection error"] += 1

    def fault(stop):
        ts = [threading.Thread(target=slowloris, args=(stop,)), threading.Thread(target=slow_body, args=(stop,))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "the steady load is answered 200 throughout")
        r.check(sum(r.tally.status.values()) > 0, "the load got answers")
        r.checks.append((True, "slow clients: %s" % dict(slow_answers)))
    finally:
        s.stop()
    return r


def sc_fd_exhaustion(build, seconds):
    r = Result("fd exhaustion (front limited to %d)" % FD_FLOOD_LIMIT)
    s = Server(build, 2, nofile=FD_FLOOD_LIMIT)
    flood_result = {}

    def fault(stop):
        socks = []
        refused = 0
        for _ in range(FD_FLOOD_CONNECTIONS):
            try:
                socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
            except OSError:
                refused += 1
        stop.wait(seconds / 2)  # the flood holds its connections this long
        for c in socks:
            c.close()
        flood_result.update(opened=len(socks), refused=refused)
        # Once the flood is gone a new client is served again.
        flood_result["recovered"] = wait_for(lambda: s.get("/health", timeout=5)[0] == 200, 30)
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        r.check(flood_result.get("recovered"), "a new client is served after the flood: %s" % flood_result)
        r.check(set(r.tally.status) <= {200, 503}, "answers are 200 or 503")
    finally:
        s.stop()
    return r


def sc_hostile_requests(build, seconds):
    """100 KB headers, Transfer-Encoding edge cases, pipelining, 100k-deep
    JSON and 100k parameters, each sent on its own connection beside load."""
    r = Result("hostile requests beside load")
    s = Server(build, 2)
    body = MMIF.encode()
    cases = {
        "100 KB header": (post_bytes(b"/", body, b"X-Big: " + b"a" * 100 * 1024 + b"\r\n"), {431}),
        "TE chunked + CL": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                            b"0\r\n\r\n", {400}),
        "TE gzip": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", {400, 501}),
        "TE chunked, chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
                                {400, 501}),
        "chunk size overflow": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"ffffffffffffffffffff\r\n", {400, 413}),
        "chunked MMIF": (b"POST " + LOAD_QUERY.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", {200}),
        "pipelined x3": (post_bytes(LOAD_QUERY.encode(), body) * 3, {200}),
        "100k-deep JSON": (post_bytes(b"/", b"[" * 100000 + b"]" * 100000), {400, 413}),
        "100k parameters": (b"POST /?" + b"&".join(b"p%d=1" % i for i in range(100000)) +
                            b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", {400, 414, 431}),
    }
    answers = {}

    def fault(stop):
        for name, (data, _) in cases.items():
            try:
                answers[name] = raw_exchange(s.port, data, want=3 if name.startswith("pipelined") else 1)
            except OSError as e:
                answers[name] = [type(e).__name__]
    try:
        run_load(s, r, seconds, 4, fault)
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "the steady load is answered 200 throughout")
        for name, (data, expected) in cases.items():
            got = answers.get(name, [])
            want = 3 if name.startswith("pipelined") else 1
            ok = len(got) == want and all(g in expected for g in got)
            r.check(ok, "%s: %s (expected %d of %s)" % (name, got, want, sorted(expected)))
    finally:
        s.stop()
    return r


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(POLL_INTERVAL_S)
    return pred()


SCENARIOS = [
    Scenario("baseline", "steady load, no fault", sc_baseline, smoke=True),
    Scenario("kill9", "kill -9 a random worker every 2 s", sc_kill9, smoke=True),
    Scenario("kill9-nogpu", "no GPU, quick requests taken ahead: kill -9 a random worker every 1 s",
             sc_kill9_no_gpu, smoke=True),
    Scenario("sigstop", "SIGSTOP a random worker every 3 s, --request-timeout 2", sc_sigstop, smoke=True),
    Scenario("sigstop-cont", "SIGSTOP a random worker for 4 s, then SIGCONT; no --request-timeout",
             sc_sigstop_no_timeout),
    Scenario("sigterm", "SIGTERM the front under load: drain", sc_sigterm, smoke=True),
    Scenario("sighup", "5 SIGHUPs in 5 s under load", sc_sighup),
    Scenario("oom", "every other request failMode=oom", sc_oom_storm),
    Scenario("foreign", "a foreign sim-alloc of 19.5 of 24 GiB for 1 s, every 2 s", sc_foreign),
    Scenario("readonly", "the profile directory cannot be written", sc_readonly_profiles),
    Scenario("full", "the profile directory is full (a filled 64 KiB tmpfs; root only)", sc_full_profiles),
    Scenario("corrupt", "garbage profile files at start, the sim state overwritten mid-load", sc_corrupt_files),
    Scenario("slow", "50 slowloris connections and slow bodies beside load", sc_slow_clients),
    Scenario("fds", "600 idle connections against a front limited to 256 descriptors", sc_fd_exhaustion),
    Scenario("hostile", "100 KB headers, TE edge cases, pipelining, 100k-deep JSON, 100k params", sc_hostile_requests,
             smoke=True),
]


def fmt_status(counter):
    return " ".join("%s:%d" % (k, v) for k, v in sorted(counter.items())) or "-"


def print_table(results, out):
    head = "| scenario | answers by status | lost | refused | front alive | OOM | front RSS MiB start/end | ok |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append("| %s | %s | %d | %d | %s | %d | %.1f / %.1f | %s |" % (
            r.name, fmt_status(r.tally.status), r.tally.lost, r.tally.refused, "yes" if r.alive else "no",
            r.oom, r.rss_start, r.rss_end, "FAIL" if r.failed() else "ok"))
    text = "\n".join(lines)
    print(text)
    for r in results:
        for ok, what in r.checks:
            print("  %s %s: %s" % ("ok  " if ok else "FAIL", r.name, what))
        if r.tally.lost:
            print("  lost in %s: %s" % (r.name, dict(r.tally.lost_detail)))
        if r.oom:
            print("  OOM in %s: %s" % (r.name, r.oom_detail))
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


def soak(build, minutes, table):
    """2x capacity: twice as many clients as the workers can run at once."""
    workers = 2
    r = Result("soak %d min, 2x capacity" % minutes)
    s = Server(build, workers)
    try:
        r.rss_start = s.rss_mib()
        print("soak: %s minute 0 RSS %.1f MiB" % (datetime.datetime.utcnow().isoformat(), r.rss_start), flush=True)
        load = Load(s.port, 2 * workers, r.tally, queries=[LOAD_QUERY, "/?model=base&holdMs=200"])
        stop = threading.Event()
        for minute in range(1, minutes + 1):
            stop.wait(60)  # one minute of load between samples
            rss = s.rss_mib()
            r.rss_series.append(rss)
            print("soak: %s minute %d RSS %.1f MiB answers %s lost %d" % (
                datetime.datetime.utcnow().isoformat(), minute, rss, fmt_status(r.tally.status), r.tally.lost),
                flush=True)
        load.stop()
        finish(r, s)
        r.check(set(r.tally.status) == {200}, "every answer is 200")
        print("soak: RSS by minute: %s" % " ".join("%.1f" % x for x in r.rss_series))
        print_table([r], table)
    finally:
        s.stop()
    return 1 if r.failed() else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="the build directory (vram-workload, the test app and clams)")
    ap.add_argument("--smoke", action="store_true", help="the short subset for CI (< 90 s)")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--seconds", type=float, default=0, help="load per scenario (default 30, smoke 8)")
    ap.add_argument("--soak", type=int, default=0, metavar="MINUTES", help="run the soak instead")
    ap.add_argument("--table", default="", help="also write the table (markdown) to this file")
    a = ap.parse_args()
    for binary in (WORKLOAD_APP, TEST_APP, "src/cli/clams"):
        if not os.access(os.path.join(a.build, binary), os.X_OK):
            print("chaos.py: %s not built in %s" % (binary, a.build), file=sys.stderr)
            return 2
    if a.soak:
        return soak(a.build, a.soak, a.table)
    names = [n for n in a.only.split(",") if n]
    chosen = [sc for sc in SCENARIOS if (sc.name in names if names else (sc.smoke or not a.smoke))]
    seconds = a.seconds or (8 if a.smoke else 30)
    results = []
    for sc in chosen:
        t0 = time.monotonic()
        print("chaos: %s (%s) ..." % (sc.name, sc.what), flush=True)
        try:
            results.append(sc.run(a.build, seconds))
        except RuntimeError as e:
            r = Result(sc.name)
            r.check(False, str(e))
            results.append(r)
        except SkipScenario as e:
            print("chaos: %s skipped: %s" % (sc.name, e), flush=True)
        print("chaos: %s done in %.0f s" % (sc.name, time.monotonic() - t0), flush=True)
    print_table(results, a.table)
    return 1 if any(r.failed() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
