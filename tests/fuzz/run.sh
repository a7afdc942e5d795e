#!/usr/bin/env bash
# Runs every libFuzzer target for a while, one after the other.
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# SECONDS is the total budget, split evenly across the targets (at least 1 s each). TARGETs
# default to all of them: mmif_fuzz params_fuzz envelope_fuzz http_fuzz wire_fuzz.
# BUILD_DIR is a build configured with CXX=clang++ -DCLAMS_BUILD_FUZZ=ON (see `make fuzz`).
# Each target's corpus grows in BUILD_DIR/fuzz/<target>/corpus across runs; it is seeded from
# tests/fuzz/corpus/<target without _fuzz>/ (mmif_fuzz: the shared MMIF samples and invalid
# files and tests/data/mmif). Crashing inputs go to BUILD_DIR/fuzz/<target>/artifacts/.
# Prints one summary line per target (runs, seconds, corpus size); exits non-zero if any
# target found a crash, a leak or a timeout.
set -euo pipefail

build=${1:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:-30}
shift 2 || shift $#
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(mmif_fuzz params_fuzz envelope_fuzz http_fuzz wire_fuzz)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAMS_SHARED_DIR:-$root/../shared}

# Inputs larger than this are not generated (the MMIF seeds are at most ~50 KB).
max_len=65536
# An input that takes longer than this many seconds is reported as a hang.
per_input_timeout=10

per_target=$(( seconds / ${#targets[@]} ))
[ "$per_target" -ge 1 ] || per_target=1

status=0
summary=""
for target in "${targets[@]}"; do
  fuzzer="$build/tests/fuzz/$target"
  if [ ! -x "$fuzzer" ]; then
    echo "run.sh: $fuzzer not found; build with CXX=clang++ -DCLAMS_BUILD_FUZZ=ON first" >&2
    exit 2
  fi
  work="$build/fuzz/$target"
  corpus="$work/corpus"
  seeds="$work/seeds"
  artifacts="$work/artifacts"
  mkdir -p "$corpus" "$seeds" "$artifacts"
  name=${target%_fuzz}
  dict_args=()
  [ -f "$here/$name.dict" ] && dict_args=(-dict="$here/$name.dict")
  if [ "$target" = mmif_fuzz ]; then
    for f in "$shared"/data/mmif/samples/*/*.json "$shared"/data/mmif/invalid/*.json \
             "$root"/tests/data/mmif/*.json; do
      [ -f "$f" ] || continue
      rel=${f#"$shared"/data/mmif/}
      rel=${rel#"$root"/}
      cp "$f" "$seeds/${rel//\//_}"
    done
  elif [ -d "$here/corpus/$name" ]; then
    cp "$here/corpus/$name"/* "$seeds/"
  fi
  echo "run.sh: fuzzing $target for $per_target s ($(ls "$seeds" | wc -l) seeds, corpus $corpus)"
  log="$work/last-run.log"
  rc=0
  "$fuzzer" -max_total_time="$per_target" -max_len="$max_len" -timeout="$per_input_timeout" \
    "${dict_args[@]}" -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" "$seeds" > "$log" 2>&1 || rc=$?
  # libFuzzer's last line: "Done 123456 runs in 12 second(s)".
  done_line=$(grep -E '^Done [0-9]+ runs in' "$log" | tail -1 || true)
  summary+="$(printf '  %-14s %s; corpus %s files; exit %s' "$target" "${done_line:-no summary}" \
    "$(ls "$corpus" | wc -l)" "$rc")"$'\n'
  if [ "$rc" -ne 0 ]; then
    status=$rc
    echo "run.sh: $target failed (exit $rc); the end of its log ($log):" >&2
    tail -40 "$log" >&2
  fi
done
echo "run.sh: summary"
printf '%s' "$summary"
exit "$status"
