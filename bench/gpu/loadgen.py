#!/usr/bin/env python3
"""loadgen: the load generator of the GPU proof (bench/gpu/proof.sh); Python standard library only.

  python3 loadgen.py --url http://127.0.0.1:PORT/ --body MMIF.json --mix 'model=tiny:10,model=large:15'
                     (--closed N | --rate R) --duration S --out requests.jsonl [--seed N]
                     [--hwfetch-share F] [--drain S] [--max-inflight M] [--keep-dir DIR [--keep N]]

--mix: comma-separated QUERY:WEIGHT entries; each request picks one by weight.
--closed N: N clients, each sending its next request when the last one was answered (a pilot
  that measures capacity). --rate R: open loop, Poisson arrivals at R requests per second,
  each on its own connection whatever the server does (overload).
After --duration no new request starts; answers are awaited for up to --drain seconds.

Writes one JSON line per request to --out: start and end (seconds from the start), query,
status, the front's X-Clams-Vram (estimate, source, peak), Retry-After, and from a 200 answer
the last view's appProfiling.torch and appProfiling.hardware.cuda (or the error message of an
error view). Prints a JSON summary on stdout.
"""
import argparse
import http.client
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse

VRAM_RE = re.compile(r"estimate=(\d+); source=(\w+); peak=(\d+)")
# A request that takes longer than this is recorded as a client timeout (status 0).
REQUEST_TIMEOUT_SECONDS = 900


def parse_mix(text):
    entries = []
    for item in text.split(","):
        query, _, weight = item.rpartition(":")
        if not query:
            raise SystemExit("loadgen: bad --mix entry %r (QUERY:WEIGHT)" % item)
        entries.append((query, float(weight)))
    return entries


class Recorder:
    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()
        self.by_status = {}
        self.sent = 0
        self.answered = 0
        self.inflight = 0
        self.skipped = 0
        self.kept = 0
        self.keep_max = 0

    def started(self):
        with self.lock:
            self.sent += 1
            self.inflight += 1

    def record(self, row):
        with self.lock:
            self.inflight -= 1
            self.answered += 1
            key = str(row["status"])
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()


def last_view(body):
    try:
        doc = json.loads(body)
        return doc["views"][-1] if doc.get("views") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def send(url, body, query, t_zero, recorder, keep_dir=None):
    keep = None
    if keep_dir is not None:
        with recorder.lock:
            if recorder.kept < recorder.keep_max:
                recorder.kept += 1
                keep = os.path.join(keep_dir, "answer-%04d.json" % recorder.kept)
    recorder.record(post(url, body, query, t_zero, keep))


def post(url, body, query, t_zero, keep=None):
    """One POST; returns its row (see the module's docstring). With `keep`, a JSON answer body is
    saved to that file (for a schema check)."""
    parts = urllib.parse.urlsplit(url)
    row = {"start": time.monotonic() - t_zero, "query": query, "status": 0}
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT_SECONDS)
        conn.request("POST", (parts.path or "/") + "?" + query, body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        row["status"] = resp.status
        m = VRAM_RE.search(resp.getheader("X-Clams-Vram", "") or "")
        if m:
            row["vram"] = {"estimate": int(m.group(1)), "source": m.group(2), "peak": int(m.group(3))}
        if resp.getheader("Retry-After"):
            row["retry_after"] = resp.getheader("Retry-After")
        if keep is not None and resp.getheader("Content-Type", "").startswith("application/json"):
            with open(keep, "wb") as f:
                f.write(data)
        view = last_view(data)
        if view is not None:
            md = view.get("metadata", {})
            profiling = md.get("appProfiling", {})
            if "torch" in profiling:
                row["torch"] = profiling["torch"]
            if "hardware" in profiling:
                row["cuda"] = profiling["hardware"].get("cuda")
            if "error" in md:
                row["error"] = md["error"].get("message", "")[:400]
        elif resp.status != 200:
            row["error"] = data[:400].decode("utf-8", "replace")
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        row["error"] = "client: %s" % e
    row["end"] = time.monotonic() - t_zero
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--mix", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--closed", type=int, help="clients in a closed loop")
    mode.add_argument("--rate", type=float, help="Poisson arrivals per second (open loop)")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--hwfetch-share", type=float, default=0.0)
    parser.add_argument("--drain", type=float, default=120.0)
    parser.add_argument("--max-inflight", type=int, default=600)
    parser.add_argument("--keep-dir", help="save the first --keep JSON answers here")
    parser.add_argument("--keep", type=int, default=20)
    args = parser.parse_args()
    if args.keep_dir:
        os.makedirs(args.keep_dir, exist_ok=True)

    with open(args.body, "rb") as f:
        body = f.read()
    mix = parse_mix(args.mix)
    rng = random.Random(args.seed)
    rng_lock = threading.Lock()

    def pick():
        with rng_lock:
            query = rng.choices([q for q, _ in mix], weights=[w for _, w in mix])[0]
            if args.hwfetch_share > 0 and rng.random() < args.hwfetch_share:
                query += "&hwFetch=true"
        return query

    recorder = Recorder(args.out)
    recorder.keep_max = args.keep if args.keep_dir else 0
    t_zero = time.monotonic()
    stop_at = t_zero + args.duration
    threads = []
    if args.closed:
        def client():
            while time.monotonic() < stop_at:
                recorder.started()
                send(args.url, body, pick(), t_zero, recorder, args.keep_dir)
        for _ in range(args.closed):
            t = threading.Thread(target=client, daemon=True)
            t.start()
            threads.append(t)
    else:
        next_at = t_zero + rng.expovariate(args.rate)
        while next_at < stop_at:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if recorder.inflight >= args.max_inflight:
                recorder.skipped += 1
            else:
                recorder.started()
                t = threading.Thread(target=send, args=(args.url, body, pick(), t_zero, recorder, args.keep_dir),
                                     daemon=True)
                t.start()
                threads.append(t)
            with rng_lock:
                next_at += rng.expovariate(args.rate)
    sending_ended = time.monotonic()
    deadline = max(stop_at, sending_ended) + args.drain
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    ok = recorder.by_status.get("200", 0)
    summary = {"mode": "closed" if args.closed else "open", "clients": args.closed, "rate": args.rate,
               "duration": args.duration, "sent": recorder.sent, "answered": recorder.answered,
               "unanswered": recorder.sent - recorder.answered, "skipped": recorder.skipped,
               "by_status": recorder.by_status, "ok_per_second": ok / args.duration,
               "wall": time.monotonic() - t_zero}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
