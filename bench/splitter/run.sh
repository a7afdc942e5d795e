#!/usr/bin/env bash
# sentence-splitter benchmark: the app's annotate path (AppRunner::Run) per annotation on text
# grown 1x..64x, against the same answer built with raw Boost.JSON, with PASS/FAIL for the
# speed-up over the old code (>= 3x) and linearity.
#   bench/splitter/run.sh BUILD_DIR
# Needs BUILD_DIR/bench/splitter/splitter_bench (built by default). BENCH_RUNS (default 5)
# sets how many timings each number takes the best of. Exit status 1 if a target is missed.
set -euo pipefail
build=${1:?usage: bench/splitter/run.sh BUILD_DIR}
exec "$build/bench/splitter/splitter_bench" run "${BENCH_RUNS:-5}"
