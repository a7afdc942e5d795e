#!/usr/bin/env bash
# Checks the GPU layer on a machine with NVIDIA GPUs:
#   1. builds the clams CLI and bench/gpu (cmake, or `make build` for a fresh tree),
#   2. prints `clams gpu --json` next to nvidia-smi and checks that they agree
#      (every nvidia-smi GPU is listed with the same UUID, total memory within 1 MiB),
#   3. checks the CUDA_VISIBLE_DEVICES mapping (a UUID pins one GPU as ordinal 0;
#      "1,0" reverses the first two),
#   4. runs clams_gpu_alloc_check: allocations of several sizes through the CUDA
#      allocator in a child process against what NVML reports for that process,
#   5. runs bench/gpu/workload_check.sh: the vram-workload app with real CUDA
#      memory (measured peaks vs allocated sizes) and the admission scenario
#      (more workers than fit, zero CUDA OOM).
# Without a GPU it says so and exits 0.
#
#   bench/gpu/verify.sh [BUILD_DIR]      (default: build; env SIZES=256MiB,1GiB,4GiB)
set -uo pipefail

cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD:-build}}
SIZES=${SIZES:-256MiB,1GiB,4GiB}
TOLERANCE_MIB=1

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "verify: no GPU (nvidia-smi not found): nothing to verify"
  exit 0
fi
if ! SMI=$(nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,memory.free \
             --format=csv,noheader,nounits 2>&1) || [ -z "$SMI" ]; then
  echo "verify: no GPU (nvidia-smi: ${SMI:-no devices}): nothing to verify"
  exit 0
fi

echo "== build ($BUILD)"
if [ ! -f "$BUILD/build.ninja" ] && [ ! -f "$BUILD/Makefile" ]; then
  make build BUILD="$BUILD" >/dev/null || { echo "verify: make build failed"; exit 1; }
fi
cmake --build "$BUILD" --target clams clams_gpu_alloc_check >/dev/null \
  || { echo "verify: build failed"; exit 1; }
CLAMS="$BUILD/src/cli/clams"
CHECK="$BUILD/bench/gpu/clams_gpu_alloc_check"

# The probe must see what nvidia-smi sees: no simulation, every device, NVML order.
unset CLAMS_SIM_GPUS CLAMS_SIM_STATE CUDA_VISIBLE_DEVICES CLAMS_NVML_LIBRARY
export CUDA_DEVICE_ORDER=PCI_BUS_ID

echo "== nvidia-smi"
nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,memory.free --format=csv
echo "== clams gpu --json"
JSON=$("$CLAMS" gpu --json 2>/dev/null) || { echo "verify: clams gpu failed"; exit 1; }
echo "$JSON"
"$CLAMS" gpu 2>/dev/null

status=0
echo "== agreement (uuid, total within ${TOLERANCE_MIB} MiB)"
SMI="$SMI" JSON="$JSON" TOLERANCE_MIB="$TOLERANCE_MIB" python3 - <<'PY' || status=1
import json, os, sys
devices = json.loads(os.environ["JSON"])["devices"]
by_uuid = {d["uuid"]: d for d in devices}
ok = len(devices) == len(os.environ["SMI"].strip().splitlines())
if not ok:
    print(f"MISMATCH: clams lists {len(devices)} GPUs, nvidia-smi "
          f"{len(os.environ['SMI'].strip().splitlines())}")
for line in os.environ["SMI"].strip().splitlines():
    index, uuid, name, total, used, free = [f.strip() for f in line.split(",")]
    d = by_uuid.get(uuid)
    if d is None:
        print(f"MISMATCH: nvidia-smi GPU {index} {uuid} is not listed by clams gpu"); ok = False
        continue
    clams_total = d["total_bytes"] / 2**20
    diff = abs(clams_total - float(total))
    good = diff <= float(os.environ["TOLERANCE_MIB"]) and d["index"] == int(index)
    ok &= good
    print(f"{'ok' if good else 'MISMATCH'}: GPU {index} {uuid} {name}: total {total} MiB "
          f"(clams {clams_total:.1f}, index {d['index']}), used {used} MiB "
          f"(clams {d['used_bytes'] / 2**20:.0f}), free {free} MiB "
          f"(clams {d['free_bytes'] / 2**20:.0f})")
sys.exit(0 if ok else 1)
PY

echo "== CUDA_VISIBLE_DEVICES mapping"
mapfile -t UUIDS < <(echo "$SMI" | awk -F', *' '{print $2}')
LAST=${UUIDS[${#UUIDS[@]}-1]}
PINNED=$(CUDA_VISIBLE_DEVICES="$LAST" "$CLAMS" gpu --json 2>/dev/null)
if PINNED="$PINNED" WANT="$LAST" python3 -c '
import json, os, sys
d = json.loads(os.environ["PINNED"])["devices"]
ok = len(d) == 1 and d[0]["index"] == 0 and d[0]["uuid"] == os.environ["WANT"]
sys.exit(0 if ok else 1)'; then
  echo "ok: CUDA_VISIBLE_DEVICES=$LAST shows that GPU alone, as index 0"
else
  echo "MISMATCH: CUDA_VISIBLE_DEVICES=$LAST gave $PINNED"; status=1
fi
if [ ${#UUIDS[@]} -ge 2 ]; then
  SWAPPED=$(CUDA_VISIBLE_DEVICES=1,0 "$CLAMS" gpu --json 2>/dev/null)
  if SWAPPED="$SWAPPED" A="${UUIDS[1]}" B="${UUIDS[0]}" python3 -c '
import json, os, sys
d = json.loads(os.environ["SWAPPED"])["devices"]
sys.exit(0 if [x["uuid"] for x in d] == [os.environ["A"], os.environ["B"]] else 1)'; then
    echo "ok: CUDA_VISIBLE_DEVICES=1,0 lists GPU 1 then GPU 0"
  else
    echo "MISMATCH: CUDA_VISIBLE_DEVICES=1,0 gave $SWAPPED"; status=1
  fi
fi

echo "== allocations in a child process, as NVML reports them (GPU 0; sizes $SIZES)"
echo "   context = the child's usage after creating its CUDA context; growth = after - context"
"$CHECK" --device 0 --sizes "$SIZES" 2>/dev/null || status=1

echo "== vram-workload with real CUDA memory"
bench/gpu/workload_check.sh "$BUILD" || status=1

if [ $status -eq 0 ]; then echo "verify: OK"; else echo "verify: FAILED"; fi
exit $status
