#!/usr/bin/python3
"""MMIF benchmark driver (bench/mmif/run.sh runs it).

For each benchmark file (shared whisper-1h.mmif, and pipeline-6h.mmif generated with
gen_whisper.py into BUILD/bench-data) it measures, as whole processes (start to end, best of
--runs, peak RSS from wait4):
  * CPython: json.load + json.dump of the file (the target's baseline), and, for reference,
    json.loads + json.dumps, which is faster because json.dump encodes in pure Python;
  * clams-cpp: `mmif_bench process IN OUT` = Mmif::ParseFile (parse + validate + index) and
    SerializeToFile in mmif-python's byte format; its output must equal the input byte for byte;
and in one process (`mmif_bench inprocess`) raw Boost.JSON parse + serialize against the
library's Parse + Serialize. Then, in one process (`mmif_bench annotate`), annotation building:
a view of 10,000 Tokens through View::NewAnnotation against the same JSON built with raw
Boost.JSON (same arena storage; malloc storage for reference), and the round trip of a small
request (Mmif::Parse of a 400-byte text MMIF, 40 new annotations, Serialize; and the same after
ParseJson into malloc storage + FromJson, as the app runner reads requests) against the same
with raw Boost.JSON. It prints a table of the numbers, the ratios, and PASS/FAIL against the
targets, and exits 1 if a target is missed.

Targets (from the MMIF library issue):
  * speed-up over CPython json.load + json.dump (whole processes) >= 2x;
  * library speed >= 50 % of raw Boost.JSON (same bytes, same process);
  * peak RSS of the clams-cpp process < 4x the file size (an aim);
  * View::NewAnnotation at most 2x the time of raw Boost.JSON per annotation (same storage).
The small round trip is reported in microseconds with raw Boost.JSON's as the reference (it
validates nothing and keeps no index, so it is a floor, not a target).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

MIN_SPEEDUP_OVER_PYTHON = 2.0
MIN_SPEED_VS_BOOST = 0.5
MAX_RSS_PER_FILE_BYTE = 4.0
MAX_ANNOTATION_COST_VS_BOOST = 2.0
PYTHON = "/usr/bin/python3"

PY_LOAD_DUMP = ("import json, sys\n"
                "with open(sys.argv[1]) as f: d = json.load(f)\n"
                "with open(sys.argv[2], 'w') as f: json.dump(d, f)\n")
PY_LOADS_DUMPS = ("import json, sys\n"
                  "with open(sys.argv[1]) as f: d = json.loads(f.read())\n"
                  "with open(sys.argv[2], 'w') as f: f.write(json.dumps(d))\n")


def run_process(argv):
    """Runs argv to completion: (wall seconds, peak RSS in bytes)."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed with status {status}")
    return elapsed, usage.ru_maxrss * 1024


def best_of(argv, runs):
    results = [run_process(argv) for _ in range(runs)]
    return min(t for t, _ in results), max(r for _, r in results)


def in_process(bench, path, runs):
    out = subprocess.run([bench, "inprocess", path, str(runs)], check=True, capture_output=True,
                         text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def annotate(bench, runs):
    """`mmif_bench annotate`: annotation building and the small round trip, in one process."""
    out = subprocess.run([bench, "annotate", "10000", str(max(runs, 5) * 3)], check=True,
                         capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def ensure_pipeline(shared, build):
    data = os.path.join(build, "bench-data")
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, "pipeline-6h.mmif")
    if not os.path.exists(path):
        gen = os.path.join(shared, "data", "mmif", "bench", "gen_whisper.py")
        print(f"bench: generating {path} ...", flush=True)
        subprocess.run([PYTHON, gen, "--pipeline", "--hours", "6", path + ".tmp"], check=True,
                       stderr=subprocess.DEVNULL)
        os.replace(path + ".tmp", path)
    return path


def mb(n):
    return f"{n / 1e6:.1f} MB"


def ms(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "mmif", "mmif_bench")
    if not os.access(bench, os.X_OK):
        raise SystemExit(f"bench: {bench} not found (build the mmif_bench target)")
    files = [os.path.join(a.shared, "data", "mmif", "bench", "whisper-1h.mmif"),
             ensure_pipeline(a.shared, a.build)]

    rows = []  # (label, [values per file], target text, [verdict per file] or None)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.mmif")
        for path in files:
            size = os.path.getsize(path)
            py, py_rss = best_of([PYTHON, "-c", PY_LOAD_DUMP, path, out], a.runs)
            py_fast, _ = best_of([PYTHON, "-c", PY_LOADS_DUMPS, path, out], a.runs)
            ours, ours_rss = best_of([bench, "process", path, out], a.runs)
            with open(path, "rb") as f1, open(out, "rb") as f2:
                identical = f1.read() == f2.read()
            inproc = in_process(bench, path, a.runs)
            results.append(dict(name=os.path.basename(path), size=size, py=py, py_rss=py_rss,
                                py_fast=py_fast, ours=ours, ours_rss=ours_rss,
                                identical=identical, **inproc))

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    r = results
    rows.append(("file size", [mb(x["size"]) for x in r], "", None))
    rows.append(("CPython json.load+json.dump (process)", [ms(x["py"]) for x in r], "", None))
    rows.append(("CPython json.loads+json.dumps (process)", [ms(x["py_fast"]) for x in r],
                 "reference", None))
    rows.append(("clams-cpp load+validate+index+save (process)", [ms(x["ours"]) for x in r],
                 "", None))
    speedup = [x["py"] / x["ours"] for x in r]
    rows.append(("  speed-up over json.load+json.dump", [f"{s:.1f}x" for s in speedup],
                 f">= {MIN_SPEEDUP_OVER_PYTHON:.0f}x",
                 [verdict(s >= MIN_SPEEDUP_OVER_PYTHON) for s in speedup]))
    rows.append(("  speed-up over json.loads+json.dumps",
                 [f"{x['py_fast'] / x['ours']:.1f}x" for x in r], "reference", None))
    rows.append(("  output identical to the input bytes", ["yes" if x["identical"] else "NO"
                                                           for x in r], "yes",
                 [verdict(x["identical"]) for x in r]))
    rows.append(("raw Boost.JSON parse+serialize (in-process)",
                 [ms(x["boost_parse_serialize"]) for x in r], "", None))
    rows.append(("clams-cpp Parse+Serialize (in-process)", [ms(x["ours_load_save"]) for x in r],
                 "", None))
    vs_boost = [x["boost_parse_serialize"] / x["ours_load_save"] for x in r]
    rows.append(("  speed relative to raw Boost.JSON", [f"{v:.0%}" for v in vs_boost],
                 f">= {MIN_SPEED_VS_BOOST:.0%}", [verdict(v >= MIN_SPEED_VS_BOOST) for v in vs_boost]))
    rows.append(("  parts: parse JSON", [ms(x["ours_parse_json"]) for x in r], "", None))
    rows.append(("  parts: validate + index", [ms(x["ours_validate_index"]) for x in r], "", None))
    rows.append(("  parts: serialize (Python format)", [ms(x["ours_serialize"]) for x in r], "",
                 None))
    rss_ratio = [x["ours_rss"] / x["size"] for x in r]
    rows.append(("clams-cpp peak RSS (process)",
                 [f"{mb(x['ours_rss'])} = {q:.2f}x file" for x, q in zip(r, rss_ratio)],
                 f"< {MAX_RSS_PER_FILE_BYTE:.0f}x file",
                 [verdict(q < MAX_RSS_PER_FILE_BYTE) for q in rss_ratio]))
    rows.append(("CPython json.load+json.dump peak RSS",
                 [f"{mb(x['py_rss'])} = {x['py_rss'] / x['size']:.2f}x file" for x in r],
                 "reference", None))

    # Annotation building: one column (not per file), in the first file's column.
    an = annotate(bench, a.runs)
    pad = [""] * (len(r) - 1)
    rows.append((f"raw Boost.JSON: view of {an['annotations']:.0f} Tokens (arena)",
                 [f"{an['boost_build_ns']:.0f} ns/ann"] + pad, "", None))
    rows.append(("raw Boost.JSON: the same, malloc storage",
                 [f"{an['boost_malloc_build_ns']:.0f} ns/ann"] + pad, "reference", None))
    rows.append(("clams-cpp View::NewAnnotation: the same view",
                 [f"{an['ours_build_ns']:.0f} ns/ann"] + pad, "", None))
    cost = an["ours_build_ns"] / an["boost_build_ns"]
    rows.append(("  time relative to raw Boost.JSON (arena)", [f"{cost:.2f}x"] + pad,
                 f"<= {MAX_ANNOTATION_COST_VS_BOOST:.0f}x",
                 [verdict(cost <= MAX_ANNOTATION_COST_VS_BOOST)] + pad))
    trip = (f"{an['request_bytes']:.0f}-byte request + {an['roundtrip_annotations']:.0f} "
            "annotations")
    rows.append((f"raw Boost.JSON round trip ({trip})",
                 [f"{an['boost_roundtrip_us']:.1f} us"] + pad, "reference", None))
    rows.append(("clams-cpp Parse+validate+NewAnnotation+Serialize (same)",
                 [f"{an['ours_roundtrip_us']:.1f} us = "
                  f"{an['ours_roundtrip_us'] / an['boost_roundtrip_us']:.2f}x"] + pad,
                 "reference", None))
    rows.append(("  the same after ParseJson (malloc storage) + FromJson",
                 [f"{an['ours_malloc_roundtrip_us']:.1f} us"] + pad, "reference", None))

    names = [x["name"] for x in r]
    label_w = max(len(row[0]) for row in rows)
    col_w = [max(len(names[i]), *(len(row[1][i]) + (len(row[3][i]) + 1 if row[3] else 0)
                                  for row in rows)) for i in range(len(names))]
    target_w = max(len("target"), *(len(row[2]) for row in rows))
    print(f"MMIF benchmark (best of {a.runs} runs; CPython {sys.version.split()[0]})")
    header = f"{'':<{label_w}}  " + "  ".join(f"{n:<{w}}" for n, w in zip(names, col_w))
    print(header + f"  {'target':<{target_w}}")
    print("-" * (len(header) + target_w + 2))
    failed = False
    for label, values, target, verdicts in rows:
        cells = []
        for i, v in enumerate(values):
            cell = v + (" " + verdicts[i] if verdicts else "")
            failed = failed or (verdicts is not None and verdicts[i] == "FAIL")
            cells.append(f"{cell:<{col_w[i]}}")
        print(f"{label:<{label_w}}  " + "  ".join(cells) + f"  {target}")
    print("mmif bench:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
