#!/usr/bin/python3
"""The /status page in headless Chromium (Debian's chromium and chromium-driver, through
python3-selenium), asserting on the rendered DOM.

Two ways to run it:

  fixture (CTest): --server APP_BINARY --fixture status.json --page-source src/server/status_page.html
      Takes the page from the real binary (GET /status: the embedded copy must equal the file in the
      repository, with its Content-Security-Policy), serves it with the fixture as status.json from
      a local HTTP server, and checks that the DOM shows the fixture; that hostile text stays text;
      that the page polls (a changed status.json appears); that a failing status.json shows a
      banner and keeps the last snapshot.

  live: --url http://HOST:PORT/status
      Against a running server (e.g. production on simulated GPUs with load running): the DOM must
      show the snapshot the page rendered (kept in #raw-snapshot), and that snapshot must have the
      shape of the contract's status.json.

--screenshot FILE saves a PNG of the first render (docs/operations.md uses one).
Every process this starts dies with it (PR_SET_PDEATHSIG) and is stopped on exit.
"""
import argparse
import ctypes
import decimal
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Long enough for a cold Chromium on a loaded two-core machine.
RENDER_TIMEOUT_S = 60
# The page polls every second; a change must show within a few polls.
POLL_TIMEOUT_S = 15
SERVER_START_TIMEOUT_S = 30


def die_with_parent():
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def equal(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


# --- the page's number formatting, in Python (JS toFixed rounds half up) -----------------------

def _fixed(value, places):
    q = decimal.Decimal(1).scaleb(-places)
    return str(decimal.Decimal(value).quantize(q, rounding=decimal.ROUND_HALF_UP))


def fmt_bytes(n):
    if not isinstance(n, (int, float)):
        return "?"
    gib = decimal.Decimal(n) / decimal.Decimal(2 ** 30)
    if abs(gib) >= 1:
        return _fixed(gib, 1) + " GiB"
    return _fixed(decimal.Decimal(n) / decimal.Decimal(2 ** 20), 0) + " MiB"


def fmt_seconds(s):
    if s < 60:
        return _fixed(s, 1) + " s"
    return f"{int(s // 60)} min {round(s % 60)} s"


def words(parameters):
    if not parameters:
        return "(defaults)"
    return ", ".join(f"{k} = {v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                     for k, v in parameters.items())


# --- the contract's shape ------------------------------------------------------------------------

def check_shape(s):
    """status.json as CONTRACT.md fixes it: names and types (byte counts are integers)."""
    def is_type(value, types):
        types = types if isinstance(types, tuple) else (types,)
        return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)

    def fields(obj, spec, where):
        check(isinstance(obj, dict), f"{where} is not an object")
        for key, types in spec.items():
            check(key in obj, f"{where} has no {key!r}")
            check(is_type(obj[key], types), f"{where}.{key} is {type(obj[key]).__name__}")
    fields(s, {"time": str, "app": dict, "mode": str, "draining": bool, "devices": list, "workers": list,
               "queue": list, "events": list, "profiles": list}, "status")
    fields(s["app"], {"name": str, "identifier": str, "version": str}, "app")
    for i, d in enumerate(s["devices"]):
        fields(d, {"index": int, "name": str, "total_bytes": int, "used_bytes": int, "free_bytes": int,
                   "reserved_bytes": int, "safety_bytes": int, "foreign_bytes": int, "workers": list},
               f"devices[{i}]")
        for j, w in enumerate(d["workers"]):
            fields(w, {"worker": int, "bytes": int}, f"devices[{i}].workers[{j}]")
    for i, w in enumerate(s["workers"]):
        fields(w, {"id": int, "device": int, "state": str, "running": int, "threads": int, "classes": list,
                   "requests": int, "vram_bytes": int, "restarts": int}, f"workers[{i}]")
        check(w["state"] in ("idle", "busy", "starting", "stopping"), f"workers[{i}].state is {w['state']!r}")
        if "ahead" in w:
            check(isinstance(w["ahead"], int) and w["ahead"] > 0, f"workers[{i}].ahead is {w['ahead']!r}")
    for i, q in enumerate(s["queue"]):
        fields(q, {"request_id": str, "class": str, "wait_seconds": (int, float), "need_bytes": int, "reason": str},
               f"queue[{i}]")
    for i, e in enumerate(s["events"]):
        fields(e, {"time": str, "kind": str, "request_id": str, "class": str, "reason": str}, f"events[{i}]")
        check(e["kind"] in ("admit", "evict", "reject", "oom", "recycle", "crash", "timeout"),
              f"events[{i}].kind is {e['kind']!r}")
    for i, p in enumerate(s["profiles"]):
        fields(p, {"class": str, "parameters": dict, "full_bytes": int, "warm_bytes": int, "samples": int,
                   "oom_events": int}, f"profiles[{i}]")
        check(re.fullmatch(r"[0-9a-f]{32}", p["class"]) is None, f"profiles[{i}].class is an MD5 key")


# --- the DOM against a snapshot -----------------------------------------------------------------

# Reads what the page shows in one synchronous script, so that the page's next render cannot
# replace elements half way through the reading.
READ_DOM = """
const all = (sel, root) => [...(root || document).querySelectorAll(sel)];
const text = e => e.textContent;
const byId = id => document.getElementById(id);
// Shown on screen (the hidden attribute alone proves nothing if a style overrides it).
const shown = e => e.getClientRects().length > 0;
const rows = id => all('#' + id + ' tbody tr').map(r => ({data: {...r.dataset}, cells: all('td', r).map(text)}));
return {
  renders: Number(document.body.dataset.renders), state: document.body.dataset.state,
  app_name: text(byId('app-name')), mode: text(byId('mode')), draining_shown: shown(byId('draining')),
  no_devices_shown: shown(byId('no-devices')),
  devices: all('#device-list > [data-device]').map(d => ({
    index: d.dataset.device,
    rects: all('svg rect', d).map(r => ({segment: r.dataset.segment, bytes: r.dataset.bytes,
                                         x: Number(r.getAttribute('x')), width: Number(r.getAttribute('width'))})),
    safety_markers: all("svg line[data-segment='safety']", d).length,
    legend: Object.fromEntries(all('li', d).map(li => [li.dataset.legend, text(li)]))})),
  queue_count: text(byId('queue-count')),
  queue: rows('queue'), workers: rows('workers'), events: rows('events'), profiles: rows('profiles'),
  raw: text(byId('raw-snapshot')),
  banner_shown: shown(byId('banner')), banner: text(byId('banner')), conn: text(byId('conn')),
  script_ran: window.__pwned !== undefined, elements_from_data: all('main img, main b, main script').length
};
"""


def read_dom(driver):
    return driver.execute_script(READ_DOM)


def check_dom(dom, s):
    """The DOM as read by READ_DOM shows snapshot `s`, value by value."""
    equal(dom["app_name"], s["app"]["name"] or "clams", "app name")
    equal(dom["mode"], s["mode"], "mode")
    equal(dom["draining_shown"], s["draining"], "draining badge shown")

    # Devices: one stacked bar each.
    equal([d["index"] for d in dom["devices"]], [str(d["index"]) for d in s["devices"]], "devices shown")
    for shown, d in zip(dom["devices"], s["devices"]):
        rects = {r["segment"]: r for r in shown["rects"]}
        got = {k: int(r["bytes"]) for k, r in rects.items()}
        ours = sum(w["bytes"] for w in d["workers"])
        reserved = min(d["reserved_bytes"], d["free_bytes"])
        expected = {f"worker-{w['worker']}": w["bytes"] for w in d["workers"]}
        expected["foreign"] = d["foreign_bytes"]
        if d["used_bytes"] - ours - d["foreign_bytes"] > 0:
            expected["other"] = d["used_bytes"] - ours - d["foreign_bytes"]
        expected["reserved"] = reserved
        expected["free"] = d["free_bytes"] - reserved
        equal(got, expected, f"GPU {d['index']} bar segments (bytes)")
        scale = max(d["total_bytes"], sum(expected.values())) or 1
        order = [f"worker-{w['worker']}" for w in sorted(d["workers"], key=lambda w: w["worker"])]
        order += [k for k in ("foreign", "other", "reserved", "free") if k in expected]
        equal([r["segment"] for r in shown["rects"]], order, f"GPU {d['index']} segment order")
        x = 0.0
        for r in shown["rects"]:
            check(abs(r["width"] - expected[r["segment"]] / scale * 1000) < 0.02,
                  f"GPU {d['index']} segment {r['segment']}: width {r['width']} for {expected[r['segment']]} "
                  f"of {scale} bytes")
            check(abs(r["x"] - x) < 0.05, f"GPU {d['index']} segment {r['segment']} is not stacked")
            x += r["width"]
        equal(shown["safety_markers"], 1 if d["safety_bytes"] > 0 else 0, f"GPU {d['index']} safety marker")
        for key, value in expected.items():
            check(shown["legend"].get(key, "").endswith(fmt_bytes(value)),
                  f"GPU {d['index']} legend {key}: {shown['legend'].get(key)!r}, expected {fmt_bytes(value)}")
    equal(dom["no_devices_shown"], not s["devices"], "'no GPUs' note shown")

    # The queue, in order.
    equal(dom["queue_count"], str(len(s["queue"])), "queue count")
    equal([r["data"].get("requestId") for r in dom["queue"]], [q["request_id"] for q in s["queue"]], "queue ids")
    for row, q in zip(dom["queue"], s["queue"]):
        equal(row["cells"], [q["request_id"], q["class"], fmt_seconds(q["wait_seconds"]), fmt_bytes(q["need_bytes"]),
                             q["reason"]], f"queue row {q['request_id']!r}")

    # Workers.
    equal([r["data"].get("worker") for r in dom["workers"]], [str(w["id"]) for w in s["workers"]], "worker rows")
    for row, w in zip(dom["workers"], s["workers"]):
        equal(row["cells"], [str(w["id"]), "-" if w["device"] < 0 else str(w["device"]), w["state"],
                             f"{w['running']} / {w['threads']}" + (f" +{w['ahead']} ahead" if w.get("ahead") else ""),
                             "; ".join(w["classes"]) or "-", str(w["requests"]),
                             fmt_bytes(w["vram_bytes"]), str(w["restarts"])], f"worker {w['id']}")

    # Events, newest first, every kind with its reason.
    events = sorted(s["events"], key=lambda e: e["time"], reverse=True)
    equal([r["data"].get("kind") for r in dom["events"]], [e["kind"] for e in events], "event rows")
    for row, e in zip(dom["events"], events):
        c = row["cells"]
        equal(c[1:4] + c[5:], [e["kind"], e["request_id"], e["class"], e["reason"]], f"event {e['kind']}")
        equal(c[4], "" if e.get("worker") is None else str(e["worker"]), f"event {e['kind']} worker")

    # Profiles, with their parameters in words.
    equal(len(dom["profiles"]), len(s["profiles"]), "profile rows")
    for row, p in zip(dom["profiles"], s["profiles"]):
        equal(row["cells"], [p["class"], words(p["parameters"]), fmt_bytes(p["full_bytes"]),
                             fmt_bytes(p["warm_bytes"]), str(p["samples"]), str(p["oom_events"])],
              f"profile {p['class']!r}")


# --- processes -----------------------------------------------------------------------------------

def start_browser(profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile_dir}", "--window-size=1400,1750"):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, popen_kw={"preexec_fn": die_with_parent})
    return webdriver.Chrome(service=service, options=options)


def wait_rendered(driver, at_least, timeout):
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: renders(d) >= at_least)


def renders(driver):
    return int(driver.execute_script("return document.body.dataset.renders") or 0)


def state(driver):
    return driver.execute_script("return document.body.dataset.state")


def page_from_server(binary, tmp):
    """Starts the app in development mode on a free port and reads GET /status."""
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "server.log"), "wb")
    env = dict(os.environ, CLAMS_CONFIG="", CLAMS_LOG_FORMAT="")
    proc = subprocess.Popen([binary, "--port", "0", "--port-file", port_file, "--host", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        port = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                port = int(open(port_file).read().strip() or 0)
            except (OSError, ValueError):
                port = 0
            if port:
                break
            time.sleep(0.05)
        check(port, f"{binary} did not start: " + open(os.path.join(tmp, "server.log")).read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FixtureServer:
    """Serves the page at /status and a replaceable status.json (or an error) at /status.json."""

    def __init__(self, page, headers, snapshot):
        self.page, self.headers, self.snapshot, self.error = page, headers, snapshot, None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/status":
                    body, ctype, code = outer.page, "text/html; charset=utf-8", 200
                elif self.path == "/status.json" and outer.error is None:
                    body, ctype, code = json.dumps(outer.snapshot).encode(), "application/json", 200
                elif self.path == "/status.json":
                    body, ctype, code = b"boom", "text/plain", outer.error
                else:
                    body, ctype, code = b"not found", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if self.path == "/status":
                    for name in ("Content-Security-Policy", "Cache-Control", "X-Content-Type-Options"):
                        if name in outer.headers:
                            self.send_header(name, outer.headers[name])
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/status"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the two modes -------------------------------------------------------------------------------

def run_fixture(args, tmp):
    status, headers, page = page_from_server(args.server, tmp)
    equal(status, 200, "GET /status")
    equal(headers.get("Content-Type"), "text/html; charset=utf-8", "Content-Type of /status")
    csp = headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'none'", "connect-src 'self'"):
        check(directive in csp, f"the page's Content-Security-Policy lacks {directive!r}: {csp!r}")
    with open(args.page_source, "rb") as f:
        equal(page, f.read(), "the embedded page (GET /status) versus " + args.page_source)
    html = page.decode("utf-8")
    for pattern in (r"<script[^>]+src=", r"<link\b", r"@import", r"url\(\s*['\"]?https?:", r"<iframe", r"<img\b"):
        check(re.search(pattern, html, re.I) is None, f"the page loads something external: {pattern}")

    with open(args.fixture) as f:
        snapshot = json.load(f)
    check_shape(snapshot)
    server = FixtureServer(page, headers, snapshot)
    driver = start_browser(os.path.join(tmp, "chromium-profile"))
    try:
        driver.get(server.url)
        wait_rendered(driver, 1, RENDER_TIMEOUT_S)
        dom = read_dom(driver)
        equal(dom["state"], "ok", "page state after the first poll")
        check_dom(dom, snapshot)
        # Hostile text from clients stays text: no element made from it, no script run.
        equal(dom["script_ran"], False, "script from a request id ran")
        equal(dom["elements_from_data"], 0, "elements made from data")
        equal(json.loads(dom["raw"]), snapshot, "raw snapshot")
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
            print(f"screenshot: {args.screenshot}")

        # Polling: a new snapshot appears without a reload.
        changed = json.loads(json.dumps(snapshot))
        changed["time"] = "2026-12-04T17:00:05Z"
        changed["draining"] = True
        changed["queue"].append({"request_id": "late-1", "class": "model=tiny", "wait_seconds": 0.05,
                                 "need_bytes": 1288490188, "reason": "the server is draining"})
        changed["workers"][1]["state"] = "busy"
        changed["workers"][1]["running"] = 2
        changed["devices"][1]["workers"][1]["bytes"] = 2147483648
        changed["devices"][1]["used_bytes"] += 2147483648
        changed["devices"][1]["free_bytes"] -= 2147483648
        before = dom["renders"]
        server.snapshot = changed
        WebDriverWait(driver, POLL_TIMEOUT_S, poll_frequency=0.1).until(
            lambda d: len(read_dom(d)["queue"]) == 4)
        dom = read_dom(driver)
        check(dom["renders"] > before, "the page did not render again")
        check_dom(dom, changed)

        # status.json failing: a banner, the last snapshot stays on screen.
        server.error = 500
        WebDriverWait(driver, POLL_TIMEOUT_S, poll_frequency=0.1).until(lambda d: state(d) == "error")
        dom = read_dom(driver)
        equal(dom["banner_shown"], True, "banner shown while status.json fails")
        check("HTTP 500" in dom["banner"], f"banner: {dom['banner']!r}")
        equal(dom["conn"], "stale", "connection badge")
        check_dom(dom, changed)
        server.error = None
        WebDriverWait(driver, POLL_TIMEOUT_S, poll_frequency=0.1).until(lambda d: state(d) == "ok")
        equal(read_dom(driver)["banner_shown"], False, "banner shown after recovery")
    finally:
        driver.quit()
        server.close()
    print("status page: fixture rendered, polled, failed over and recovered as expected")


def run_live(args, tmp):
    driver = start_browser(os.path.join(tmp, "chromium-profile"))
    try:
        driver.get(args.url)
        wait_rendered(driver, 1, RENDER_TIMEOUT_S)
        dom = read_dom(driver)
        equal(dom["state"], "ok", "page state (is GET /status.json served?)")
        snapshot = json.loads(dom["raw"])
        check_dom(dom, snapshot)
        equal(dom["script_ran"], False, "script from a request id ran")
        equal(dom["elements_from_data"], 0, "elements made from data")
        check_shape(snapshot)
        json_url = urllib.parse.urljoin(args.url, "status.json")
        with urllib.request.urlopen(json_url, timeout=30) as r:
            direct = json.load(r)
        equal(snapshot["app"], direct["app"], "app in the page versus status.json")
        equal([d["index"] for d in snapshot["devices"]], [d["index"] for d in direct["devices"]], "device indices")
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
            print(f"screenshot: {args.screenshot}")
    finally:
        driver.quit()
    print(f"status page: {args.url} rendered its snapshot ({len(snapshot['workers'])} workers, "
          f"{len(snapshot['queue'])} queued, {len(snapshot['events'])} events)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", help="an app executable (fixture mode)")
    parser.add_argument("--fixture", help="a status.json to serve (fixture mode)")
    parser.add_argument("--page-source", help="src/server/status_page.html (fixture mode)")
    parser.add_argument("--url", help="the page of a running server (live mode)")
    parser.add_argument("--screenshot", help="save a PNG of the rendered page here")
    args = parser.parse_args()
    for path in (CHROMIUM, CHROMEDRIVER):
        check(os.access(path, os.X_OK), f"{path} is missing: scripts/install-deps.sh installs chromium and "
                                        "chromium-driver")
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="clams-status-page-")
    try:
        if args.url:
            run_live(args, tmp)
        else:
            check(args.server and args.fixture and args.page_source,
                  "fixture mode needs --server, --fixture and --page-source")
            run_fixture(args, tmp)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
