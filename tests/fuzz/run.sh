#!/usr/bin/env bash
# Runs the MMIF libFuzzer target for a while.
#   tests/fuzz/run.sh BUILD_DIR SECONDS
# BUILD_DIR is a build configured with CXX=clang++ -DCLAMS_BUILD_FUZZ=ON (see `make fuzz`).
# The corpus grows in BUILD_DIR/fuzz/corpus across runs; it is seeded from the shared MMIF
# samples and invalid files and from tests/data/mmif. Crashing inputs go to
# BUILD_DIR/fuzz/artifacts/. Exit status: libFuzzer's (0 when nothing was found).
set -euo pipefail

build=${1:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAMS_SHARED_DIR:-$root/../shared}

fuzzer="$build/tests/fuzz/mmif_fuzz"
if [ ! -x "$fuzzer" ]; then
  echo "run.sh: $fuzzer not found; build with CXX=clang++ -DCLAMS_BUILD_FUZZ=ON first" >&2
  exit 2
fi

# Inputs larger than this are not generated (the seeds are at most ~50 KB).
max_len=65536
# An input that takes longer than this many seconds is reported as a hang.
per_input_timeout=10

corpus="$build/fuzz/corpus"
seeds="$build/fuzz/seeds"
artifacts="$build/fuzz/artifacts"
mkdir -p "$corpus" "$seeds" "$artifacts"
for f in "$shared"/data/mmif/samples/*/*.json "$shared"/data/mmif/invalid/*.json \
         "$root"/tests/data/mmif/*.json; do
  [ -f "$f" ] || continue
  rel=${f#"$shared"/data/mmif/}
  rel=${rel#"$root"/}
  cp "$f" "$seeds/${rel//\//_}"
done

echo "run.sh: fuzzing $fuzzer for $seconds s ($(ls "$seeds" | wc -l) seeds, corpus $corpus)"
exec "$fuzzer" -max_total_time="$seconds" -max_len="$max_len" -timeout="$per_input_timeout" \
  -dict="$here/mmif.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
  "$corpus" "$seeds"
