#!/usr/bin/env bash
# MMIF benchmark: ratios against CPython's json module and raw Boost.JSON, and peak RSS.
#   bench/mmif/run.sh BUILD_DIR
# Needs BUILD_DIR/bench/mmif/mmif_bench (built by default) and Debian's /usr/bin/python3.
# Generates pipeline-6h.mmif into BUILD_DIR/bench-data on first use. BENCH_RUNS (default 5)
# sets how many runs each timing takes the best of. Exit status 1 if a target is missed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
exec /usr/bin/python3 "$here/bench.py" --build "${1:?usage: bench/mmif/run.sh BUILD_DIR}" \
  --shared "${CLAMS_SHARED_DIR:-$root/../shared}" --runs "${BENCH_RUNS:-5}"
