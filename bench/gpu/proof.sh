#!/usr/bin/env bash
# The GPU proof of clams-cpp: real NVML, real CUDA allocations, a real PyTorch app, zero OOM.
# What it runs and what each figure means: bench/gpu/README.md. Under 6 minutes on an H200.
#
#   bench/gpu/proof.sh [--simulated] [--quick] [--phases 1,2,3,4] [--budget SECONDS]
#
# Binaries: <this folder>/bin when the folder was staged by bench/gpu/package.sh, else the
# build folder (BUILD, default build/ of this checkout: clams, vram-workload and
# clams_gpu_alloc_check must be built).
# --simulated (or CLAMS_SIM_GPUS set): the same steps on a simulated GPU (default 143771MiB, an
#   H200's size); the nvidia-smi comparison is skipped, the torch app runs in its simulated mode.
# --quick: short phases (the CTest clams_gpu_proof_simulated).
# Output: with OUT set, $OUT/summary.md, results.json, proof.log and raw.tar.gz (everything
# raw); else results/local-<date>[-simulated]/ beside this script, raw files unpacked.
# PYTHON (default python3) runs the apps and helpers; it needs werkzeug, and torch and
# transformers unless simulated. Exit status 0 when every check passed.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
SIMULATED=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --simulated) SIMULATED=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) ARGS+=("$arg") ;;
  esac
done
[ -n "${CLAMS_SIM_GPUS:-}" ] && SIMULATED=1

say() { echo "proof.sh: $*" >&2; }

# ---- binaries
if [ -x "$HERE/bin/clams" ]; then
  BIN="$HERE/bin"
else
  BUILD=${BUILD:-$HERE/../../build}
  BIN=$(mktemp -d)
  trap 'rm -rf "$BIN"' EXIT
  for f in src/cli/clams apps/vram-workload/vram-workload bench/gpu/clams_gpu_alloc_check; do
    if [ ! -x "$BUILD/$f" ]; then
      say "missing $BUILD/$f: build it (cmake --build $BUILD --target clams vram-workload clams_gpu_alloc_check)"
      exit 2
    fi
    ln -s "$(cd "$(dirname "$BUILD/$f")" && pwd)/$(basename "$f")" "$BIN/"
  done
fi

if ! "$BIN/clams" --help >/dev/null 2>&1; then
  say "cannot run $BIN/clams on this machine: $("$BIN/clams" --help 2>&1 | head -1)"
  say "this machine: $(ldd --version 2>&1 | head -1); $(grep -h glibc "$HERE/BUILD_INFO" 2>/dev/null)"
  exit 2
fi
if ! "$PYTHON" -c 'import werkzeug' 2>/dev/null; then
  say "$PYTHON cannot import werkzeug (PYTHON=... picks another interpreter)"
  exit 2
fi

# ---- the GPU, or a simulated one
if [ "$SIMULATED" = 1 ]; then
  ARGS+=(--simulated)
  [ -n "${CLAMS_SIM_GPUS:-}" ] && ARGS+=(--sim-gpus "$CLAMS_SIM_GPUS")
else
  if ! nvidia-smi -L >/dev/null 2>&1; then
    say "no GPU (nvidia-smi -L failed); run with --simulated for the simulated variant"
    exit 2
  fi
  # NVML for the probe: from the loader's cache, else where drivers put it in containers.
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml.so.1 '; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat; do
      if [ -e "$d/libnvidia-ml.so.1" ]; then export CLAMS_NVML_LIBRARY="$d/libnvidia-ml.so.1"; break; fi
    done
    say "NVML: ${CLAMS_NVML_LIBRARY:-not found (clams gpu will say so)}"
  fi
  # The CUDA runtime for vram-workload and alloc_check (loaded with dlopen): the loader's cache,
  # the CUDA toolkit, or the wheel PyTorch brought.
  if ! ldconfig -p 2>/dev/null | grep -q 'libcudart.so'; then
    CANDIDATES=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
    mapfile -t SITE < <("$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null)
    CUDART=$(find "${CANDIDATES[@]}" "${SITE[@]/%//nvidia}" -maxdepth 4 -name 'libcudart.so*' 2>/dev/null | sort | head -1)
    if [ -n "$CUDART" ]; then
      export LD_LIBRARY_PATH="$(dirname "$CUDART")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      say "CUDA runtime: $CUDART"
    else
      say "CUDA runtime: not found (vram-workload will fail to allocate)"
    fi
  fi
fi

# ---- where the results go
STAMP=$(date -u +%Y%m%d-%H%M%S)
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  RESULTS="$OUT"
  RAW=$(mktemp -d)/raw
else
  RESULTS="$HERE/results/local-$STAMP$([ "$SIMULATED" = 1 ] && echo -simulated)"
  RAW="$RESULTS/raw"
fi
mkdir -p "$RESULTS" "$RAW"
say "results in $RESULTS"

PYTHONUNBUFFERED=1 "$PYTHON" "$HERE/proof.py" --bin "$BIN" --raw "$RAW" --summary "$RESULTS/summary.md" \
  --python "$(command -v "$PYTHON")" "${ARGS[@]}"
STATUS=$?

if [ -n "${OUT:-}" ]; then
  cp "$RAW/proof.log" "$OUT/proof.log" 2>/dev/null
  tar -C "$(dirname "$RAW")" -czf "$OUT/raw.tar.gz" raw
  rm -rf "$(dirname "$RAW")"
fi
exit $STATUS
