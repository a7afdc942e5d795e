#!/usr/bin/env bash
# Runs every benchmark suite: each bench/<suite>/run.sh BUILD_DIR, in name order.
#   bench/run.sh BUILD_DIR
# Each suite prints its own table of measurements and ratios with PASS/FAIL against its
# targets, and exits non-zero on a FAIL. This script runs them all and exits non-zero if any
# suite failed (or none was found).
set -uo pipefail

build=${1:?usage: bench/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)

suites=()
for script in "$here"/*/run.sh; do
  [ -x "$script" ] && suites+=("$script")
done
if [ ${#suites[@]} -eq 0 ]; then
  echo "bench: no bench/*/run.sh found" >&2
  exit 1
fi

failed=()
for script in "${suites[@]}"; do
  suite=$(basename "$(dirname "$script")")
  echo "=== bench/$suite ==="
  if ! "$script" "$build"; then
    failed+=("$suite")
  fi
  echo
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: FAILED: ${failed[*]}"
  exit 1
fi
echo "bench: all ${#suites[@]} suite(s) passed"
