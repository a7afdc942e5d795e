#!/usr/bin/env bash
# Runs the VRAM admission simulation: bench/vram/run.sh BUILD_DIR [sim options]
# Builds the target if needed. Exits with the simulation's status (1 if a
# target printed FAIL).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 BUILD_DIR [--seed N] [--horizon SECONDS] [--sweep SEEDS] [--cpu-fraction F] [--verbose]" >&2
  exit 2
fi
build_dir=$1
shift
sim="$build_dir/bench/vram/clams_vram_sim"
if [[ ! -x "$sim" ]]; then
  cmake --build "$build_dir" --target clams_vram_sim >&2
fi
exec "$sim" "$@"
