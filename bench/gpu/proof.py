#!/usr/bin/env python3
"""proof: the GPU proof of clams-cpp, run by bench/gpu/proof.sh (see bench/gpu/README.md).

Phases (each writes raw files under --raw and adds rows to the summary):
  1  NVML: `clams gpu --json --processes` against nvidia-smi (totals, per-process usage), the
     PID-namespace question, and clams_gpu_alloc_check (CUDA context, allocation growth).
  2  vram-workload --production on a scarce card (a foreign process holds all but --leave),
     more workers than fit, the model mix of bench/vram, a closed-loop pilot that measures
     capacity, then open-loop arrivals at twice that: zero OOM, high water within what was free,
     measured peaks against the sizes the app allocated.
  3  clams serve -- python3 torch_app.py on the same scarce card: the same load shape with real
     PyTorch models; learned profiles against max_memory_reserved + context, hwFetch, memory
     utilisation, completions and 503s; then the deliberately under-declared class (OOM
     feedback: 503, estimate raised, no second OOM).
  4  optional, when the build has them and time is left: clams serve --threads 2.

Standard library only. Simulated GPUs with --simulated (CLAMS_SIM_GPUS; nvidia-smi skipped).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402 (bench/gpu/loadgen.py)

GIB = 1 << 30
MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))

# The card is made scarce: a foreign process holds all but this much (the issue's ~24 GiB).
SCARCE_FREE_BYTES = 24 * GIB
# A simulated card of the H200's size (nvidia-smi: 143771 MiB).
SIM_GPUS = "143771MiB"
# Phase 1: what the foreign process holds while the numbers are compared.
PHASE1_HOLD = "2GiB"
ALLOC_CHECK_SIZES = "256MiB,1GiB,4GiB"
# Agreement bounds of the issue.
NVML_TOLERANCE = 0.01          # clams gpu vs nvidia-smi: 1 %
PEAK_TOLERANCE_WORKLOAD = 0.05  # vram-workload peaks vs allocated sizes: 5 %
PROFILE_TOLERANCE = 0.10       # learned profiles vs max_memory_reserved + context: 10 %
OVERLOAD = 2.0                 # arrivals at twice the measured capacity
MIN_CAPACITY = 0.2             # requests/s assumed when the pilot completed nothing
WORKERS = 6                    # the issue's --workers 6
WORKERS_QUICK = 4              # --quick: fewer Python workers to start on a small machine
# vram-workload (DESIGN.md §7): weights per model, activations 15 % of them. Compute time is
# modelled by holdMs (the vram_sim compute times / 5, so that a 2 minute run sees many requests).
WORKLOAD_WEIGHTS = {"tiny": 1 * GIB, "base": 1 * GIB, "small": 2 * GIB, "medium": 5 * GIB,
                    "large": 10 * GIB, "turbo": 6 * GIB}
WORKLOAD_HOLD_MS = {"tiny": 300, "base": 400, "small": 800, "medium": 1600, "large": 3000, "turbo": 1000}
WORKLOAD_ACTIVATION_SHARE = 0.15
# The model mix of bench/vram (vram_sim.cc kModels shares, in %).
MIX_SHARES = {"tiny": 10, "base": 15, "small": 15, "medium": 10, "large": 15, "turbo": 35}
# Phase 3: every model on 300 s of input (10 windows of 30 s in one batch): large needs ~6 GiB
# of weights and activations, so six workers with warm models do not fit in 24 GiB together.
MIX_SECONDS = 300
# The under-declared class: `small` with extra working memory, UNDER_NEED_BYTES in all, sent
# while UNDER_FREE_BYTES are free: it is admitted on the metadata's estimate (est_gpu_mem_typ
# 8000 MB, plus a fresh worker's context) and runs out of memory.
UNDER_MODEL = "small"
UNDER_FREE_BYTES = 10 * GIB
UNDER_NEED_BYTES = 16 * GIB
# How long the under-declared retry may wait before the extra holder is released.
UNDER_RELEASE_AFTER_SECONDS = 8
UNDER_RELEASE_AFTER_SECONDS_QUICK = 3
HWFETCH_SHARE = 0.2
# MMIF answers kept per load run for the schema check (--schema).
ANSWERS_KEPT = 10
SAMPLE_SECONDS = 0.25
STOP_GRACE_SECONDS = 30
START_TIMEOUT_SECONDS = 240

# Waiting requests beyond which the front answers 503: small enough that the queue drains within
# seconds after the overload (at the capacities seen here), large enough to keep every worker fed.
MAX_QUEUE = 40
DURATIONS = {  # seconds: (pilot, overload, drain)
    "full": {"p2": (12, 70, 60), "p3": (15, 110, 60), "p4": (0, 40, 60)},
    "quick": {"p2": (3, 6, 30), "p3": (4, 8, 40), "p4": (0, 6, 30)},
}
# A phase starts only if its estimated cost ends within the budget: on a GPU machine the
# device run's limit (one run and a rerun of some phases fit in 15 minutes of device time);
# simulated runs on a small machine start Python workers slowly.
BUDGET_SECONDS = 400
BUDGET_SECONDS_SIMULATED = 900
# What each phase costs beyond its pilot and overload (start-up, holders, drains, the
# under-declared class), for the budget check before it starts.
PHASE_OVERHEAD_SECONDS = {"1": 30, "2": 40, "3": 90, "4": 40}


# ---- plumbing ------------------------------------------------------------------------------------

class Proof:
    def __init__(self, args):
        self.args = args
        self.raw = args.raw
        os.makedirs(self.raw, exist_ok=True)
        self.t0 = time.monotonic()
        self.bin = args.bin
        self.clams = os.path.join(args.bin, "clams")
        self.workload = os.path.join(args.bin, "vram-workload")
        self.alloc_check = os.path.join(args.bin, "clams_gpu_alloc_check")
        self.python = args.python
        self.sim = args.simulated
        self.durations = DURATIONS["quick" if args.quick else "full"]
        self.workers = WORKERS_QUICK if args.quick else WORKERS
        self.results = {"phases": {}, "checks": []}
        self.rows = []  # (phase, figure, value, target, verdict)
        self.log_file = open(os.path.join(self.raw, "proof.log"), "a", encoding="utf-8")
        self.env = dict(os.environ)
        self.env["CLAMS_BIN"] = self.clams
        self.env.pop("CUDA_VISIBLE_DEVICES", None)
        self.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        if self.sim:
            self.env["CLAMS_SIM_GPUS"] = args.sim_gpus
            self.env["CLAMS_SIM_STATE"] = os.path.join(self.raw, "sim-state")
        else:
            self.env.pop("CLAMS_SIM_GPUS", None)
            self.env.pop("CLAMS_SIM_STATE", None)
        self.children = []

    def log(self, message):
        line = "[%6.1f s] %s" % (time.monotonic() - self.t0, message)
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def elapsed(self):
        return time.monotonic() - self.t0

    def path(self, name):
        return os.path.join(self.raw, name)

    def write(self, name, text):
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)

    def run(self, cmd, name=None, timeout=120, env=None):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or self.env)
            out, err, code = r.stdout, r.stderr, r.returncode
        except (OSError, subprocess.TimeoutExpired) as e:
            out, err, code = "", str(e), -1
        if name:
            self.write(name, "$ %s\n[exit %d]\n%s%s" % (" ".join(cmd), code, out,
                                                          ("\n[stderr]\n" + err) if err else ""))
        return code, out, err

    def row(self, phase, figure, value, target="", ok=None):
        verdict = "" if ok is None else ("ok" if ok else "FAIL")
        self.rows.append((phase, figure, value, target, verdict))
        if ok is not None:
            self.results["checks"].append({"phase": phase, "figure": figure, "value": value, "ok": bool(ok)})
        self.log("%s | %s | %s | %s | %s" % (phase, figure, value, target, verdict))

    def gpus(self, processes=False):
        cmd = [self.clams, "gpu", "--json"] + (["--processes"] if processes else [])
        code, out, err = self.run(cmd)
        if code != 0:
            raise RuntimeError("clams gpu failed: %s" % err.strip())
        return json.loads(out)

    def device(self):
        return self.gpus()["devices"][0]

    def spawn(self, cmd, log_name, env=None):
        log = open(self.path(log_name), "ab")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or self.env, start_new_session=True)
        self.children.append(p)
        return p

    def stop(self, p, grace=STOP_GRACE_SECONDS):
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            self.log("pid %d did not stop in %d s: SIGKILL to its group" % (p.pid, grace))
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def stop_all(self):
        for p in reversed(self.children):
            self.stop(p, grace=10)


class Holder:
    """hold.py as a foreign process; .info is its JSON line."""

    def __init__(self, proof, name, *hold_args):
        self.proof = proof
        self.process = subprocess.Popen([proof.python, os.path.join(HERE, "hold.py")] + list(hold_args),
                                        stdout=subprocess.PIPE, stderr=open(proof.path(name + ".log"), "ab"),
                                        env=proof.env, text=True, start_new_session=True)
        proof.children.append(self.process)
        line = self.process.stdout.readline()
        try:
            self.info = json.loads(line)
        except ValueError:
            self.process.wait()
            self.info = None

    def stop(self):
        self.proof.stop(self.process)


class Sampler:
    """The device's used memory over time, sampled independently of the server: nvidia-smi on a
    GPU, `clams gpu --json` on simulated devices."""

    def __init__(self, proof, name):
        self.proof = proof
        self.samples = []  # (seconds since proof start, used bytes, total bytes)
        self.stopped = threading.Event()
        self.file = open(proof.path(name), "w", encoding="utf-8")
        self.smi = None
        if proof.sim:
            self.thread = threading.Thread(target=self._poll_clams, daemon=True)
        else:
            self.smi = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits",
                                         "-i", "0", "-lms", str(int(SAMPLE_SECONDS * 1000))],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read_smi, daemon=True)
        self.thread.start()

    def _add(self, used, total):
        t = self.proof.elapsed()
        self.samples.append((t, used, total))
        self.file.write("%.3f %d %d\n" % (t, used, total))

    def _poll_clams(self):
        while not self.stopped.is_set():
            try:
                d = self.proof.device()
                self._add(d["used_bytes"], d["total_bytes"])
            except (RuntimeError, ValueError, KeyError, IndexError):
                pass
            self.stopped.wait(SAMPLE_SECONDS)

    def _read_smi(self):
        for line in self.smi.stdout:
            try:
                used, total = [int(x.strip()) * MIB for x in line.split(",")]
            except ValueError:
                continue
            self._add(used, total)
            if self.stopped.is_set():
                break

    def stop(self):
        self.stopped.set()
        if self.smi is not None:
            self.smi.terminate()
            self.smi.wait()
        self.thread.join(5)
        self.file.close()

    def between(self, t_start, t_end):
        return [(t, u, tot) for t, u, tot in self.samples if t_start <= t <= t_end]


def http_get(port, path, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def metrics(port):
    out = {}
    try:
        _, text = http_get(port, "/metrics")
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def runtime(port):
    try:
        _, text = http_get(port, "/?includeVRAM=true")
        return json.loads(text).get("runtime")
    except (OSError, ValueError):
        return None


PORT_FILE = "@PORT_FILE@"


class Server:
    """A clams-cpp front (an app with --production, or clams serve) on a free port; PORT_FILE in
    its command line is replaced by the file it writes its port to."""

    def __init__(self, proof, name, cmd, env=None):
        self.proof = proof
        self.name = name
        self.port_file = proof.path(name + ".port")
        if os.path.exists(self.port_file):
            os.remove(self.port_file)
        cmd = [self.port_file if a == PORT_FILE else a for a in cmd]
        self.process = proof.spawn(cmd, name + ".log", env)
        self.port = None

    def wait_ready(self, workers):
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s.log" % (self.name, self.process.returncode, self.name))
            if self.port is None and os.path.exists(self.port_file):
                text = open(self.port_file).read().strip()
                self.port = int(text) if text else None
            if self.port is not None:
                rt = runtime(self.port)
                if rt and len(rt.get("workers", [])) == workers and all(w["state"] == "idle" for w in rt["workers"]):
                    return rt
            time.sleep(0.25)
        raise RuntimeError("%s: %d workers not idle after %d s" % (self.name, workers, START_TIMEOUT_SECONDS))

    def wait_idle(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rt = runtime(self.port)
            if rt and rt["queue"]["length"] == 0 and rt["queue"]["running"] == 0 and \
                    all(w["state"] == "idle" for w in rt["workers"]):
                return rt
            time.sleep(0.25)
        return runtime(self.port)

    def stop(self):
        self.proof.stop(self.process)


def load(proof, port, name, mix, closed=None, rate=None, duration=0, drain=60, hwfetch=0.0):
    out = proof.path(name + ".jsonl")
    cmd = [proof.python, os.path.join(HERE, "loadgen.py"), "--url", "http://127.0.0.1:%d/" % port,
           "--body", proof.body, "--mix", mix, "--duration", str(duration), "--out", out, "--drain", str(drain),
           "--hwfetch-share", str(hwfetch), "--keep-dir", proof.path("answers-" + name), "--keep", str(ANSWERS_KEPT)]
    cmd += ["--closed", str(closed)] if closed else ["--rate", "%.3f" % rate]
    code, stdout, err = proof.run(cmd, name + ".summary.txt", timeout=duration + drain + 60)
    summary = json.loads(stdout.strip().splitlines()[-1]) if code == 0 and stdout.strip() else {}
    rows = []
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return summary, rows


def mix_spec(extra=""):
    return ",".join("model=%s%s:%d" % (m, extra(m) if callable(extra) else extra, share)
                    for m, share in MIX_SHARES.items())


def pct(x):
    return "%.1f %%" % (100.0 * x)


def gib(b):
    return "%.2f GiB" % (b / GIB)


def mib(b):
    return "%d MiB" % round(b / MIB)


def oom_answers(rows):
    return sum(1 for r in rows if r["status"] in (500, 503) and "out of memory" in (r.get("error") or "").lower())


def statuses(rows):
    out = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def latency(rows, q):
    values = sorted(r["end"] - r["start"] for r in rows if r["status"] == 200)
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


# ---- phase 0 and 1 -------------------------------------------------------------------------------

def environment(proof):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "simulated": proof.sim, "host": platform.node(), "python": platform.python_version()}
    build_info = os.path.join(proof.bin, "BUILD_INFO")
    if os.path.exists(build_info):
        for line in open(build_info, encoding="utf-8"):
            key, _, value = line.partition("=")
            info[key.strip()] = value.strip()
    else:
        code, out, _ = proof.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"])
        info["commit"] = out.strip() if code == 0 else "unknown"
    code, out, _ = proof.run([proof.python, "-c", "import torch, transformers, werkzeug, importlib.metadata as m; "
                              "print(torch.__version__, torch.version.cuda, transformers.__version__, "
                              "m.version('werkzeug'))"], "env-python.txt")
    if code == 0:
        parts = out.split()
        info.update({"torch": parts[0], "cuda_runtime": parts[1], "transformers": parts[2], "werkzeug": parts[3]})
    if not proof.sim:
        code, out, _ = proof.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 "env-nvidia-smi.txt")
        if code == 0 and out.strip():
            name, driver, total = [x.strip() for x in out.strip().splitlines()[0].split(",")]
            info.update({"device": name, "driver": driver, "device_memory": total})
        proof.run(["nvidia-smi"], "env-nvidia-smi-full.txt")
    else:
        d = proof.device()
        info.update({"device": d["name"], "driver": "simulated", "device_memory": mib(d["total_bytes"])})
    code, out, _ = proof.run([proof.clams, "serve", "--help"], "env-serve-help.txt")
    info["serve_threads"] = "--threads" in out
    info["serve_python_adapter"] = "--no-torch-cap" in out
    try:
        info["pid_namespace"] = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        info["pid_namespace"] = None
    proof.results["environment"] = info
    proof.log("environment: %s" % json.dumps(info))
    return info


def phase1(proof):
    phase = "1 NVML"
    holder = Holder(proof, "p1-holder", "--bytes", PHASE1_HOLD)
    if holder.info is None:
        proof.row(phase, "foreign holder", "could not allocate %s" % PHASE1_HOLD, "", False)
        return
    ours = proof.gpus(processes=True)
    proof.write("p1-clams-gpu.json", json.dumps(ours, indent=2))
    proof.run([proof.clams, "gpu"], "p1-clams-gpu.txt")
    d = ours["devices"][0]
    accounting = ours.get("per_process_accounting")
    listed = {p["pid"]: p["used_bytes"] for p in ours.get("processes", []) if p["device"] == 0}
    if proof.sim:
        proof.row(phase, "nvidia-smi comparison", "skipped: simulated GPUs (no nvidia-smi)", "within 1 %")
        ok = listed.get(holder.info["pid"]) == holder.info["bytes"]
        proof.row(phase, "holder pid %d listed by clams gpu" % holder.info["pid"],
                  mib(listed.get(holder.info["pid"], 0)), "= %s" % mib(holder.info["bytes"]), ok)
    else:
        code, out, _ = proof.run(["nvidia-smi", "--query-gpu=memory.total,memory.used,memory.free,memory.reserved",
                                  "--format=csv,noheader,nounits", "-i", "0"], "p1-nvidia-smi-gpu.txt")
        if code != 0:  # older drivers lack memory.reserved
            code, out, _ = proof.run(["nvidia-smi", "--query-gpu=memory.total,memory.used,memory.free",
                                      "--format=csv,noheader,nounits", "-i", "0"], "p1-nvidia-smi-gpu.txt")
        fields = []
        for x in (out.strip().splitlines() or [""])[0].split(","):
            try:
                fields.append(int(float(x)) * MIB)
            except ValueError:  # "[N/A]"
                fields.append(0)
        fields += [0] * (4 - len(fields))
        total, used, free = fields[:3]
        reserved = fields[3] if len(fields) > 3 else 0
        for figure, smi, mine in (("total", total, d["total_bytes"]), ("free", free, d["free_bytes"])):
            diff = abs(smi - mine) / total
            proof.row(phase, "%s: clams %s, nvidia-smi %s" % (figure, mib(mine), mib(smi)), pct(diff),
                      "<= 1 % of total", diff <= NVML_TOLERANCE)
        # NVML's v1 memory info counts the driver's reserved memory as used; nvidia-smi does not.
        diff = abs(used + reserved - d["used_bytes"]) / total
        proof.row(phase, "used: clams %s, nvidia-smi %s + reserved %s" % (mib(d["used_bytes"]), mib(used), mib(reserved)),
                  pct(diff), "<= 1 % of total", diff <= NVML_TOLERANCE)
        code, out, _ = proof.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                 "p1-nvidia-smi-apps.txt")
        smi_procs = {}
        for line in out.strip().splitlines():
            try:
                pid, used_mib = [int(x.strip()) for x in line.split(",")]
                smi_procs[pid] = used_mib * MIB
            except ValueError:
                pass
        if holder.info["pid"] in smi_procs:
            where = "NVML reports our PIDs"
        elif smi_procs:
            where = "NVML reports PIDs of another namespace (%s)" % ",".join(map(str, smi_procs))
        else:
            where = "nvidia-smi lists no compute process"
        proof.row(phase, "PIDs", "%s; clams per-process accounting %s" % (where, "on" if accounting else "off (fallback)"),
                  "", (holder.info["pid"] in smi_procs) == bool(accounting))
        for pid, smi_bytes in sorted(smi_procs.items()):
            if pid in listed:
                diff = abs(listed[pid] - smi_bytes) / max(smi_bytes, 1)
                proof.row(phase, "pid %d: clams %s, nvidia-smi %s" % (pid, mib(listed[pid]), mib(smi_bytes)),
                          pct(diff), "<= 1 %", diff <= NVML_TOLERANCE or abs(listed[pid] - smi_bytes) <= MIB)
            elif accounting:
                proof.row(phase, "pid %d (nvidia-smi %s)" % (pid, mib(smi_bytes)), "not listed by clams gpu", "", False)
    holder.stop()
    code, out, _ = proof.run([proof.alloc_check, "--device", "0", "--sizes", ALLOC_CHECK_SIZES], "p1-alloc-check.txt",
                             timeout=180)
    context = 0
    rows = [l.split() for l in out.splitlines() if re.match(r"^\d", l)]
    for r in rows:
        try:
            size, ctx, growth_minus = float(r[0]), float(r[1]), float(r[4])
        except (ValueError, IndexError):
            continue
        context = max(context, int(ctx * MIB))
        proof.row(phase, "alloc_check %s MiB: growth - size" % r[0], "%+.1f MiB" % growth_minus,
                  "within 1 %", abs(growth_minus) <= NVML_TOLERANCE * size)
    proof.row(phase, "CUDA context of a clams allocator process", mib(context))
    proof.results["phases"]["1"] = {"accounting": accounting, "context_bytes": context}
    proof.context_bytes = context


# ---- phase 2 -------------------------------------------------------------------------------------

def scarce_card(proof, name):
    """Starts the foreign holder that leaves SCARCE_FREE_BYTES free; returns (holder, baseline)."""
    holder = Holder(proof, name, "--leave", str(SCARCE_FREE_BYTES))
    if holder.info is None:
        raise RuntimeError("the foreign holder could not take the card (see %s.log)" % name)
    d = proof.device()
    proof.log("foreign holder pid %d holds %s; %s free of %s" % (holder.info["pid"], gib(holder.info["bytes"]),
                                                                  gib(d["free_bytes"]), gib(d["total_bytes"])))
    return holder, d


def overload(proof, server, name, mix, workers, durations, hwfetch=0.0, capacity=None):
    pilot_s, overload_s, drain_s = durations
    pilot = None
    if capacity is None:
        pilot_summary, pilot_rows = load(proof, server.port, name + "-pilot", mix, closed=2 * workers,
                                         duration=pilot_s, drain=drain_s, hwfetch=hwfetch)
        # Completions over the pilot's whole wall time (its last requests finish after it).
        done = sum(1 for r in pilot_rows if r["status"] == 200)
        capacity = max(done / max(pilot_summary.get("wall", pilot_s), pilot_s), MIN_CAPACITY)
        pilot = (pilot_summary, pilot_rows)
        proof.log("%s: pilot %s -> capacity %.2f requests/s" % (name, pilot_summary.get("by_status"), capacity))
    server.wait_idle(drain_s)
    before = metrics(server.port)
    t_start = proof.elapsed()
    summary, rows = load(proof, server.port, name + "-overload", mix, rate=OVERLOAD * capacity, duration=overload_s,
                         drain=drain_s, hwfetch=hwfetch)
    t_end = t_start + overload_s
    after = metrics(server.port)
    return {"capacity": capacity, "pilot": pilot, "summary": summary, "rows": rows, "before": before,
            "after": after, "t_start": t_start, "t_end": t_end}


def utilisation(sampler, t_start, t_end, base_used, total):
    samples = sampler.between(t_start, t_end)
    if not samples or total <= base_used:
        return 0.0, 0
    values = [max(0, u - base_used) / (total - base_used) for _, u, _ in samples]
    return statistics.mean(values), len(values)


def workload_mix():
    return ",".join("model=%s&holdMs=%d:%d" % (m, WORKLOAD_HOLD_MS[m], MIX_SHARES[m]) for m in MIX_SHARES)


def phase2(proof):
    phase = "2 vram-workload"
    holder, base = scarce_card(proof, "p2-holder")
    free_at_start = base["free_bytes"]
    large_need = WORKLOAD_WEIGHTS["large"] * (1 + WORKLOAD_ACTIVATION_SHARE) + proof.context_bytes
    fit = int(free_at_start // large_need)
    sampler = Sampler(proof, "p2-used.txt")
    env = dict(proof.env, CLAMS_PROFILE_DIR=proof.path("p2-profiles"))
    server = Server(proof, "p2-server", [proof.workload, "--production", "--host", "127.0.0.1", "--port", "0", "--port-file", PORT_FILE,
                                         "--workers", str(proof.workers), "--max-queue", str(MAX_QUEUE), "--queue-timeout", "120",
                                         "--log-level", "warning", "--no-access-log"], env)
    try:
        server.wait_ready(proof.workers)
        proof.row(phase, "workers / large requests that fit at once", "%d / %d" % (proof.workers, fit), "more workers than fit",
                  proof.workers > fit)
        run = overload(proof, server, "p2", workload_mix(), proof.workers, proof.durations["p2"])
        proof.run([proof.clams, "profiles", "list", "--json", "--profile-dir", env["CLAMS_PROFILE_DIR"]],
                  "p2-profiles.json")
        end_device = proof.device()
    finally:
        server.stop()
        sampler.stop()
        holder.stop()
    rows = (run["pilot"][1] if run["pilot"] else []) + run["rows"]
    oom_total = run["after"].get("clams_oom_total", 0)
    ooms = oom_answers(rows)
    sim_ooms = (end_device.get("oom_events", 0) - base.get("oom_events", 0)) if proof.sim else 0
    proof.row(phase, "CUDA OOM (clams_oom_total, OOM answers%s)" % (", device OOM events" if proof.sim else ""),
              "%d, %d%s" % (oom_total, ooms, (", %d" % sim_ooms) if proof.sim else ""), "0",
              oom_total == 0 and ooms == 0 and sim_ooms == 0)
    used = [u for _, u, _ in sampler.samples]
    high = max(used) if used else 0
    if proof.sim:
        high = max(high, end_device.get("high_water_bytes", 0))
    ours = max(0, high - base["used_bytes"])
    proof.row(phase, "high water of our processes (%s)" % ("device high-water mark" if proof.sim else
                                                            "nvidia-smi every %d ms" % (SAMPLE_SECONDS * 1000)),
              gib(ours), "<= free at start, %s" % gib(free_at_start), ours <= free_at_start)
    # Each answered request's measured peak (the front's growth of the worker) against what the app
    # allocated: activations (model cached), weights + activations (loaded), or those plus a
    # CUDA context (the worker's first request).
    devs, kinds = [], {"activations": 0, "weights+activations": 0, "+context": 0}
    for r in rows:
        if r["status"] != 200 or "vram" not in r:
            continue
        model = re.search(r"model=(\w+)", r["query"]).group(1)
        w = WORKLOAD_WEIGHTS[model]
        act = int(w * WORKLOAD_ACTIVATION_SHARE)
        options = {"activations": act, "weights+activations": w + act, "+context": w + act + proof.context_bytes}
        kind, size = min(options.items(), key=lambda kv: abs(r["vram"]["peak"] - kv[1]))
        kinds[kind] += 1
        devs.append(abs(r["vram"]["peak"] - size) / size)
    within = sum(1 for d in devs if d <= PEAK_TOLERANCE_WORKLOAD)
    proof.row(phase, "measured peaks vs allocated sizes (%s)" % ", ".join("%s %d" % kv for kv in kinds.items()),
              "%d/%d within 5 %%, worst %s" % (within, len(devs), pct(max(devs) if devs else 0)), "all within 5 %",
              bool(devs) and within == len(devs))
    st = statuses(run["rows"])
    proof.row(phase, "overload: capacity, arrivals, 200 / 503 / other",
              "%.2f/s, %.2f/s x %d s: %d / %d / %d" % (run["capacity"], OVERLOAD * run["capacity"],
                                                        proof.durations["p2"][1], st.get(200, 0), st.get(503, 0),
                                                        sum(v for k, v in st.items() if k not in (200, 503))))
    util, n = utilisation(sampler, run["t_start"], run["t_end"], base["used_bytes"], base["total_bytes"])
    proof.row(phase, "mean memory utilisation of the free 24 GiB (%d samples)" % n, pct(util))
    proof.results["phases"]["2"] = {"capacity": run["capacity"], "statuses": st, "oom_total": oom_total,
                                    "high_water_ours": ours, "free_at_start": free_at_start, "utilisation": util,
                                    "peak_deviation_max": max(devs) if devs else None}


# ---- phase 3 -------------------------------------------------------------------------------------

def serve_cmd(proof, workers, extra=()):
    return [proof.clams, "serve", "--host", "127.0.0.1", "--port", "0", "--port-file", PORT_FILE, "--workers", str(workers),
            "--max-queue", str(MAX_QUEUE), "--queue-timeout", "120", "--log-level", "warning", "--no-access-log"] + \
        list(extra) + ["--", proof.python, os.path.join(HERE, "torch_app.py"), "--port", "{port}"]


def profile_comparison(proof, phase, profiles_json, rows):
    """Learned profiles against what PyTorch says each request of the class used."""
    try:
        profiles = json.loads(profiles_json)["profiles"]
    except (ValueError, KeyError):
        profiles = []
    by_model = {}
    for r in rows:
        if r["status"] != 200 or "torch" not in r or r["torch"].get("overlapped"):
            continue
        model = re.search(r"model=(\w+)", r["query"]).group(1)
        by_model.setdefault(model, []).append(r)
    worst = 0.0
    compared = 0
    for p in profiles:
        params = p.get("parameters", {})
        model = params.get("model")
        if params.get("workspaceMiB", 0) or model not in by_model:
            continue
        reqs = by_model[model]
        expected_full = max(r["torch"]["expectedGrowth"] for r in reqs)
        cached = [r["torch"]["expectedGrowth"] for r in reqs if not r["torch"]["modelLoaded"]]
        dev_full = abs(p["peak_bytes"] - expected_full) / max(expected_full, 1)
        text = "full %s vs %s (%s)" % (mib(p["peak_bytes"]), mib(expected_full), pct(dev_full))
        ok = dev_full <= PROFILE_TOLERANCE
        worst = max(worst, dev_full)
        if p.get("warm_samples", 0) and cached:
            expected_warm = max(cached)
            dev_warm = abs(p["warm_peak_bytes"] - expected_warm) / max(expected_warm, 1)
            text += "; warm %s vs %s (%s)" % (mib(p["warm_peak_bytes"]), mib(expected_warm), pct(dev_warm))
            ok = ok and dev_warm <= PROFILE_TOLERANCE
            worst = max(worst, dev_warm)
        compared += 1
        proof.row(phase, "profile model=%s (%d+%d samples) vs reservedPeak+context" % (
            model, p.get("samples", 0), p.get("warm_samples", 0)), text, "within 10 %", ok)
    per_request = [abs(r["vram"]["peak"] - r["torch"]["expectedGrowth"]) / max(r["torch"]["expectedGrowth"], 1)
                   for rs in by_model.values() for r in rs if "vram" in r and r["torch"]["expectedGrowth"] > 0]
    within = sum(1 for d in per_request if d <= PROFILE_TOLERANCE)
    if per_request:
        # A --quick run has a few dozen requests: one sample the front's sampler takes late is
        # several per cent of them, so there the figure is reported without a verdict.
        proof.row(phase, "per request: front's measured growth vs reservedPeak+context",
                  "%d/%d within 10 %%, median %s" % (within, len(per_request), pct(statistics.median(per_request))),
                  ">= 95 % within 10 %", None if proof.args.quick else within >= 0.95 * len(per_request))
    return worst, compared


def under_declared(proof, server, phase):
    """The OOM feedback path: a class whose need (UNDER_NEED_BYTES) is far above the metadata's
    est_gpu_mem_typ, sent while only UNDER_FREE_BYTES are free. Expected: the first request runs
    out of memory and is answered 503 with Retry-After, the class's estimate is raised, and no
    later request of the class runs out of memory (it waits until its raised estimate fits)."""
    server.wait_idle(120)
    workspace_mib = (UNDER_NEED_BYTES - 512 * MIB) // MIB
    query = "model=%s&seconds=%d&workspaceMiB=%d" % (UNDER_MODEL, MIX_SECONDS, workspace_mib)
    extra = Holder(proof, "p3-under-holder", "--leave", str(UNDER_FREE_BYTES))
    free_now = proof.device()["free_bytes"]
    proof.log("under-declared: %s with %s free (extra holder %s)" % (
        query, gib(free_now), gib(extra.info["bytes"]) if extra.info else "not needed"))
    oom0 = metrics(server.port).get("clams_oom_total", 0)
    attempts = []
    with open(proof.body, "rb") as f:
        body = f.read()

    os.makedirs(proof.path("answers-p3-under"), exist_ok=True)

    def post(tag):
        row = loadgen.post("http://127.0.0.1:%d/" % server.port, body, query, time.monotonic(),
                           proof.path("answers-p3-under/answer-%s.json" % tag))
        with open(proof.path("p3-under-%s.json" % tag), "w", encoding="utf-8") as f:
            json.dump(row, f)
        attempts.append((tag, row, metrics(server.port).get("clams_oom_total", 0)))

    post("1")
    retry = threading.Thread(target=post, args=("2",))
    retry.start()
    retry.join(UNDER_RELEASE_AFTER_SECONDS if not proof.args.quick else UNDER_RELEASE_AFTER_SECONDS_QUICK)
    waited = retry.is_alive()
    extra.stop()
    retry.join(300)
    post("3")
    proof.run([proof.clams, "profiles", "list", "--json", "--profile-dir", proof.env_p3["CLAMS_PROFILE_DIR"]],
              "p3-profiles-after-under.json")
    lines = []
    for tag, r, oom in attempts:
        v = r.get("vram", {})
        lines.append("#%s %s estimate %s%s" % (tag, r["status"], mib(v.get("estimate", 0)),
                                                " (OOM)" if oom > oom0 and tag == "1" else ""))
    first = attempts[0][1]
    est1 = first.get("vram", {}).get("estimate", 0)
    later = [a for a in attempts[1:]]
    est_later = max((a[1].get("vram", {}).get("estimate", 0) for a in later), default=0)
    oom_after_first = attempts[0][2]
    ok_first = first["status"] == 503 and "out of memory" in (first.get("error") or "").lower() and oom_after_first == oom0 + 1
    second_oom = attempts[-1][2] > oom_after_first
    proof.row(phase, "under-declared %s: first answer" % query, "%d, %s" % (first["status"], (first.get("error") or "")[:70]),
              "503, OOM", ok_first)
    proof.row(phase, "under-declared: estimate raised", "%s -> %s" % (mib(est1), mib(est_later)), "raised",
              est_later > est1)
    proof.row(phase, "under-declared: later attempts", "; ".join(lines[1:]) + ("; #2 waited for memory" if waited else ""),
              "no second OOM", not second_oom)
    return {"attempts": [{"tag": t, "status": r["status"], "estimate": r.get("vram", {}).get("estimate"),
                          "oom_total": o} for t, r, o in attempts], "second_oom": second_oom}


def phase3(proof):
    phase = "3 torch app"
    holder, base = scarce_card(proof, "p3-holder")
    sampler = Sampler(proof, "p3-used.txt")
    env = dict(proof.env, CLAMS_PROFILE_DIR=proof.path("p3-profiles"))
    proof.env_p3 = env
    server = Server(proof, "p3-server", serve_cmd(proof, proof.workers), env)
    under = None
    try:
        server.wait_ready(proof.workers)
        run = overload(proof, server, "p3", mix_spec("&seconds=%d" % MIX_SECONDS), proof.workers, proof.durations["p3"], hwfetch=HWFETCH_SHARE)
        server.wait_idle(proof.durations["p3"][2])
        _, profiles_json, _ = proof.run([proof.clams, "profiles", "list", "--json", "--profile-dir",
                                         env["CLAMS_PROFILE_DIR"]], "p3-profiles.json")
        metrics_text = http_get(server.port, "/metrics")[1]
        proof.write("p3-metrics.txt", metrics_text)
        end_device = proof.device()
        under = under_declared(proof, server, phase)
        proof.write("p3-metrics-after-under.txt", http_get(server.port, "/metrics")[1])
    finally:
        server.stop()
        sampler.stop()
        holder.stop()
    rows = (run["pilot"][1] if run["pilot"] else []) + run["rows"]
    oom_total = run["after"].get("clams_oom_total", 0)
    ooms = oom_answers(rows)
    sim_ooms = (end_device.get("oom_events", 0) - base.get("oom_events", 0)) if proof.sim else 0
    proof.row(phase, "CUDA OOM in the mix (clams_oom_total, OOM answers%s)" % (", device OOM events" if proof.sim else ""),
              "%d, %d%s" % (oom_total, ooms, (", %d" % sim_ooms) if proof.sim else ""), "0",
              oom_total == 0 and ooms == 0 and sim_ooms == 0)
    worst, compared = profile_comparison(proof, phase, profiles_json, rows)
    hw = [r["cuda"][0] for r in rows if r["status"] == 200 and r.get("cuda")]
    hw_re = re.compile(r"^(.+), (\d+) MiB total, (\d+) MiB available, (\d+) MiB peak used$")
    good = [h for h in hw if hw_re.match(h) and int(hw_re.match(h).group(4)) > 0]
    proof.row(phase, "hwFetch records (e.g. \"%s\")" % (hw[-1] if hw else "-"), "%d/%d with a measured peak" % (
        len(good), len(hw)), "all", bool(hw) and len(good) == len(hw))
    st = statuses(run["rows"])
    retry_after = sum(1 for r in run["rows"] if r["status"] == 503 and r.get("retry_after"))
    proof.row(phase, "overload: capacity, arrivals, 200 / 503 (with Retry-After) / other",
              "%.2f/s, %.2f/s x %d s: %d / %d (%d) / %d" % (run["capacity"], OVERLOAD * run["capacity"],
                                                             proof.durations["p3"][1], st.get(200, 0), st.get(503, 0),
                                                             retry_after,
                                                             sum(v for k, v in st.items() if k not in (200, 503))))
    proof.row(phase, "latency of 200s: p50 / p95", "%.1f s / %.1f s" % (latency(run["rows"], 0.5),
                                                                          latency(run["rows"], 0.95)))
    util, n = utilisation(sampler, run["t_start"], run["t_end"], base["used_bytes"], base["total_bytes"])
    proof.row(phase, "mean memory utilisation of the free 24 GiB (%d samples)" % n, pct(util))
    evictions = run["after"].get("clams_evictions_total", 0) - run["before"].get("clams_evictions_total", 0)
    restarts = sum(v for k, v in run["after"].items() if k.startswith("clams_worker_restarts_total")) - \
        sum(v for k, v in run["before"].items() if k.startswith("clams_worker_restarts_total"))
    proof.row(phase, "evictions / worker restarts during the overload", "%d / %d" % (evictions, restarts))
    proof.results["phases"]["3"] = {"capacity": run["capacity"], "statuses": st, "oom_total": oom_total,
                                    "utilisation": util, "profile_worst_deviation": worst,
                                    "profiles_compared": compared, "under_declared": under}


def phase4_threads(proof, capacity):
    phase = "4 --threads 2"
    holder, base = scarce_card(proof, "p4-holder")
    env = dict(proof.env, CLAMS_PROFILE_DIR=proof.path("p4-profiles"))
    workers = proof.workers // 2
    server = Server(proof, "p4-server", serve_cmd(proof, workers, ["--threads", "2"]), env)
    try:
        server.wait_ready(workers)
        run = overload(proof, server, "p4", mix_spec("&seconds=%d" % MIX_SECONDS), workers, proof.durations["p4"], capacity=capacity)
        end_device = proof.device()
    finally:
        server.stop()
        holder.stop()
    oom_total = run["after"].get("clams_oom_total", 0)
    sim_ooms = (end_device.get("oom_events", 0) - base.get("oom_events", 0)) if proof.sim else 0
    st = statuses(run["rows"])
    proof.row(phase, "CUDA OOM (%d workers x 2 threads)" % workers, "%d, %d" % (oom_total, oom_answers(run["rows"])),
              "0", oom_total == 0 and oom_answers(run["rows"]) == 0 and sim_ooms == 0)
    proof.row(phase, "200 / 503 / other", "%d / %d / %d" % (st.get(200, 0), st.get(503, 0),
                                                             sum(v for k, v in st.items() if k not in (200, 503))))


def schema_check(proof, schema_path):
    """Every kept answer (MMIF from both apps, error views included) against the MMIF JSON schema."""
    try:
        import jsonschema
    except ImportError:
        proof.row("5 MMIF", "schema check", "skipped: no jsonschema module")
        return
    with open(schema_path, encoding="utf-8") as f:
        validator = jsonschema.Draft4Validator(json.load(f))
    checked, bad = 0, []
    for folder in sorted(os.listdir(proof.raw)):
        if not folder.startswith("answers-"):
            continue
        for name in sorted(os.listdir(proof.path(folder))):
            path = os.path.join(proof.path(folder), name)
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            checked += 1
            errors = list(validator.iter_errors(doc))
            if errors:
                bad.append("%s/%s: %s" % (folder, name, errors[0].message))
    proof.row("5 MMIF", "answers valid against the MMIF schema", "%d/%d%s" % (
        checked - len(bad), checked, ("; " + bad[0]) if bad else ""), "all", checked > 0 and not bad)


# ---- summary -------------------------------------------------------------------------------------

def summary_markdown(proof):
    env = proof.results["environment"]
    lines = ["# GPU proof%s" % (" (simulated)" if proof.sim else ""), "",
             "| | |", "|---|---|"]
    for key in ("date", "commit", "simulated", "device", "device_memory", "driver", "torch", "cuda_runtime",
                "transformers", "werkzeug", "python", "serve_threads", "serve_python_adapter"):
        if key in env:
            lines.append("| %s | %s |" % (key, env[key]))
    lines.append("| duration | %.0f s |" % proof.elapsed())
    lines += ["", "| phase | figure | value | target | verdict |", "|---|---|---|---|---|"]
    for phase, figure, value, target, verdict in proof.rows:
        lines.append("| %s | %s | %s | %s | %s |" % (phase, figure.replace("|", "/"), str(value).replace("|", "/"),
                                                     target, verdict))
    failed = [c for c in proof.results["checks"] if not c["ok"]]
    lines += ["", "Result: %s (%d checks, %d failed)." % ("PASS" if not failed else "FAIL",
                                                           len(proof.results["checks"]), len(failed))]
    return "\n".join(lines) + "\n"


def write_summary(proof, path):
    """summary.md and results.json beside it (rewritten after every phase, so that a run cut
    short still leaves what it measured)."""
    text = summary_markdown(proof)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(os.path.dirname(path), "results.json"), "w", encoding="utf-8") as f:
        json.dump({"rows": proof.rows, **proof.results}, f, indent=2, default=str)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="folder with clams, vram-workload, clams_gpu_alloc_check")
    parser.add_argument("--raw", required=True, help="folder for raw output")
    parser.add_argument("--summary", required=True, help="summary Markdown file")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--simulated", action="store_true")
    parser.add_argument("--sim-gpus", default=SIM_GPUS)
    parser.add_argument("--quick", action="store_true", help="short phases (the CTest)")
    parser.add_argument("--phases", default="1,2,3,4")
    parser.add_argument("--schema", help="MMIF JSON schema: check every kept answer against it")
    parser.add_argument("--budget", type=float,
                        help="seconds a phase must fit in to be started (default %d; simulated %d)" % (
                            BUDGET_SECONDS, BUDGET_SECONDS_SIMULATED))
    args = parser.parse_args()
    if args.budget is None:
        args.budget = BUDGET_SECONDS_SIMULATED if args.simulated else BUDGET_SECONDS
    proof = Proof(args)
    proof.context_bytes = 0
    body = {"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [
        {"@type": "http://mmif.clams.ai/vocabulary/AudioDocument/v1",
         "properties": {"id": "d1", "mime": "audio/wav", "location": "file:///data/proof.wav"}}], "views": []}
    proof.body = proof.path("body.json")
    proof.write("body.json", json.dumps(body))
    phases = set(args.phases.split(","))
    status = 0

    def stop_on_signal(*_):
        proof.stop_all()
        sys.exit(2)
    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        env = environment(proof)
        if proof.sim:
            proof.run([proof.clams, "gpu", "sim-reset"], "sim-reset.txt")
        for name, fn in (("1", phase1), ("2", phase2), ("3", phase3)):
            if name in phases:
                cost = PHASE_OVERHEAD_SECONDS[name] + sum(proof.durations.get("p" + name, (0, 0, 0))[:2])
                if proof.elapsed() + cost > args.budget:
                    proof.row(name, "phase", "skipped: %.0f s used, ~%d s needed, budget %.0f s" % (
                        proof.elapsed(), cost, args.budget), "", False)
                    continue
                proof.log("== phase %s" % name)
                try:
                    fn(proof)
                except Exception as e:  # a phase that breaks is a failed row; the others still run
                    proof.row("%s" % name, "phase failed", "%s: %s" % (e.__class__.__name__, e), "", False)
                    proof.log("phase %s failed: %s" % (name, e))
                    proof.stop_all()
                write_summary(proof, args.summary)
        if "4" in phases:
            needed = sum(proof.durations["p4"][:2]) + PHASE_OVERHEAD_SECONDS["4"]
            if not env.get("serve_threads"):
                proof.row("4", "--threads 2", "skipped: not in this build (clams serve --help)")
            elif proof.elapsed() + needed > args.budget:
                proof.row("4", "--threads 2", "skipped: %.0f s used of a %.0f s budget" % (proof.elapsed(), args.budget))
            else:
                proof.log("== phase 4")
                try:
                    phase4_threads(proof, proof.results["phases"].get("3", {}).get("capacity", 1.0))
                except Exception as e:
                    proof.row("4", "phase failed", "%s: %s" % (e.__class__.__name__, e), "", False)
                    proof.stop_all()
        if args.schema:
            schema_check(proof, args.schema)
        if env.get("serve_python_adapter"):
            proof.row("4", "Python adapter (clams serve app.py)",
                      "not run: it hosts clams-python apps, and the GPU machine has no clams-python")
    finally:
        proof.stop_all()
        print(write_summary(proof, args.summary))
    failed = [c for c in proof.results["checks"] if not c["ok"]]
    if failed or not proof.results["checks"]:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
