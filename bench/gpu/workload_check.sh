#!/usr/bin/env bash
# The vram-workload app on a GPU (real, or simulated with CLAMS_SIM_GPUS):
#   1. measured peaks against what the app allocated (weights + 15 %
#      activations), from X-Clams-Vram and hwFetch;
#   2. admission on the card: more workers than the card can hold models for,
#      twice as many concurrent `large` requests; every one must succeed with
#      zero out-of-memory errors, and the card's used memory (sampled) must
#      stay within its total.
# Called by verify.sh on a GPU machine; runnable alone:
#   bench/gpu/workload_check.sh BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
APP="$BUILD/apps/vram-workload/vram-workload"
CLAMS="$BUILD/src/cli/clams"
cmake --build "$BUILD" --target vram-workload clams >/dev/null || { echo "workload: build failed"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
export CLAMS_PROFILE_DIR="$WORK/profiles"

BODY='{"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/VideoDocument/v1", "properties": {"id": "d1", "mime": "video/mp4", "location": "file:///data/a.mp4"}}], "views": []}'
echo "$BODY" > "$WORK/body.json"

start_server() {  # args: extra flags; sets PORT
  rm -f "$WORK/port"
  "$APP" --production --host 127.0.0.1 --port 0 --port-file "$WORK/port" --log-level warning --no-access-log "$@" \
    >>"$WORK/server.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 1 300); do
    [ -s "$WORK/port" ] && PORT=$(cat "$WORK/port") && \
      curl -sf "localhost:$PORT/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "workload: the server did not become ready"; tail -20 "$WORK/server.log"; return 1
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }

status=0
echo "== vram-workload: measured peak against what the app allocated (GPU of worker 1)"
start_server --workers 1 || exit 1
printf "%-8s %14s %14s %14s  %s\n" model allocated "peak (X-Clams)" "diff" "hwFetch entry"
for model in tiny small medium; do
  HDR="$WORK/h.txt"
  curl -s -D "$HDR" -o "$WORK/out.json" -X POST \
    "localhost:$PORT/?model=$model&holdMs=300&hwFetch=true&declareVram=false" -d @"$WORK/body.json"
  MODEL=$model HDR="$HDR" OUT="$WORK/out.json" python3 - <<'PY' || status=1
import json, os, re, sys
weights = {"tiny": 1, "base": 1, "small": 2, "medium": 5, "large": 10, "turbo": 6}[os.environ["MODEL"]] << 30
allocated = weights + int(weights * 0.15)
hdr = open(os.environ["HDR"]).read()
m = re.search(r"X-Clams-Vram: .*peak=(\d+)", hdr, re.I)
code = hdr.split()[1] if hdr else "?"
if code != "200" or not m:
    print(f"{os.environ['MODEL']:8} request failed: HTTP {code}"); sys.exit(1)
peak = int(m.group(1))
cuda = json.load(open(os.environ["OUT"]))["views"][-1]["metadata"]["appProfiling"]["hardware"]["cuda"]
mib = 1 << 20
print(f"{os.environ['MODEL']:8} {allocated // mib:10} MiB {peak // mib:10} MiB {(peak - allocated) // mib:+10} MiB  {cuda[0] if cuda else '-'}")
PY
done
stop_server

echo "== admission on the card: more workers than fit, 2x as many concurrent 'large' requests"
TOTAL_MIB=$("$CLAMS" gpu --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["total_bytes"] >> 20)')
NEED_MIB=$(( (10 * 1024) * 115 / 100 + 512 ))        # large: weights + activations + a context
FIT=$(( TOTAL_MIB / NEED_MIB ))
WORKERS=$(( FIT + 2 ))
REQUESTS=$(( 2 * WORKERS ))
echo "   card $TOTAL_MIB MiB; a large request needs ~$NEED_MIB MiB; $FIT fit at once; $WORKERS workers; $REQUESTS requests"
start_server --workers "$WORKERS" --max-queue 1000 --queue-timeout 600 || exit 1
# Sample the card's used memory while the requests run.
( while :; do "$CLAMS" gpu --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["used_bytes"] >> 20)'; sleep 0.2; done ) \
  > "$WORK/used.txt" &
SAMPLER=$!
PIDS+=("$SAMPLER")
T0=$(date +%s.%N)
for i in $(seq 1 "$REQUESTS"); do
  curl -s -o /dev/null -w "%{http_code}\n" -X POST "localhost:$PORT/?model=large&holdMs=1000" \
    -d @"$WORK/body.json" >> "$WORK/codes.txt" &
done
wait $(jobs -p | grep -v "^$SAMPLER$" | grep -v "^$SERVER$") 2>/dev/null
T1=$(date +%s.%N)
kill "$SAMPLER" 2>/dev/null
METRICS=$(curl -s "localhost:$PORT/metrics")
OOM=$(echo "$METRICS" | awk '/^clams_oom_total /{print $2}')
OK=$(grep -c '^200$' "$WORK/codes.txt")
PEAK=$(sort -n "$WORK/used.txt" | tail -1)
printf "   %s/%s answered 200 in %.1f s; clams_oom_total %s; peak used %s MiB of %s MiB\n" \
  "$OK" "$REQUESTS" "$(python3 -c "print($T1 - $T0)")" "${OOM:-?}" "${PEAK:-?}" "$TOTAL_MIB"
if [ "$OK" != "$REQUESTS" ] || [ "${OOM:-1}" != "0" ] || [ "${PEAK:-0}" -gt "$TOTAL_MIB" ]; then
  echo "   FAILED: every request must succeed with zero OOM within the card"; sort "$WORK/codes.txt" | uniq -c
  status=1
else
  echo "   ok: zero CUDA OOM, every request answered"
fi
stop_server
exit $status
