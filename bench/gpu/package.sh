#!/usr/bin/env bash
# Builds what the GPU proof needs and stages it into one self-contained folder for a GPU machine
# whose system libraries differ from Debian 12's:
#
#   bench/gpu/package.sh [--verify] [STAGE]        (STAGE default: build-gpu/proof)
#
# 1. Configures build-gpu/ (Release, CLAMS_STATIC_RUNTIME=ON: libstdc++, libgcc, Boost.JSON, fmt
#    and spdlog linked in) and builds clams, vram-workload and clams_gpu_alloc_check.
# 2. Stages STAGE/bin/ (the stripped binaries), proof.sh, proof.py, torch_app.py, loadgen.py,
#    hold.py, README.md, share/clams/clams_worker.py when the tree has the Python adapter, and
#    BUILD_INFO (commit, date, compiler, the newest glibc symbol version the binaries need).
# 3. Checks with ldd that every binary needs nothing but the C library (libc, libm, the loader),
#    and that the folder is below the 64 MiB a device run may carry.
# --verify: then runs the staged folder's simulated proof (--quick) with an empty environment
#    (env -i) from another working directory, as the GPU machine would run it.
#
# On the GPU machine: carry STAGE and run `bash STAGE/proof.sh` (bench/gpu/README.md).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
VERIFY=0
STAGE=build-gpu/proof
for arg in "$@"; do
  case "$arg" in
    --verify) VERIFY=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) STAGE=$arg ;;
  esac
done
BUILD=build-gpu
MAX_CARRY_BYTES=$((64 * 1024 * 1024))
TARGETS=(clams vram-workload clams_gpu_alloc_check)

echo "== build ($BUILD, Release, CLAMS_STATIC_RUNTIME=ON)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLAMS_STATIC_RUNTIME=ON \
  -DCLAMS_BUILD_TESTS=OFF -DCLAMS_BUILD_APPS=ON -DCLAMS_BUILD_BENCH=ON -DCLAMS_INSTALL=OFF >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}" --target "${TARGETS[@]}"

echo "== stage ($STAGE)"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
cp "$BUILD/src/cli/clams" "$BUILD/apps/vram-workload/vram-workload" \
   "$BUILD/bench/gpu/clams_gpu_alloc_check" "$STAGE/bin/"
strip "$STAGE"/bin/*
cp bench/gpu/proof.sh bench/gpu/proof.py bench/gpu/torch_app.py bench/gpu/loadgen.py bench/gpu/hold.py \
   bench/gpu/README.md "$STAGE/"
if [ -f python/clams_worker.py ]; then
  mkdir -p "$STAGE/share/clams"
  cp python/clams_worker.py "$STAGE/share/clams/"
fi

echo "== ldd"
status=0
NEEDS=()
for b in "$STAGE"/bin/*; do
  deps=$(ldd "$b" | awk '{print $1}')
  extra=$(echo "$deps" | grep -vE '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|/lib64/ld-linux-x86-64\.so\.2|ld-linux-x86-64\.so\.2)$' || true)
  need=$(objdump -T "$b" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  NEEDS+=("$need")
  printf "   %-22s %s  needs: %s; newest symbol %s\n" "$(basename "$b")" "$(du -h "$b" | cut -f1)" \
    "$(echo $deps | tr '\n' ' ')" "$need"
  if [ -n "$extra" ]; then
    echo "   $(basename "$b") needs libraries beyond the C library: $extra"
    status=1
  fi
done

GLIBC_MAX=$(printf '%s\n' "${NEEDS[@]}" | sort -V | tail -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT-dirty"
cat > "$STAGE/BUILD_INFO" <<EOF
commit=$COMMIT
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
compiler=$(c++ --version | head -1)
static_runtime=yes
glibc_needed=${GLIBC_MAX#GLIBC_}
EOF

BYTES=$(du -sb "$STAGE" | cut -f1)
echo "== $STAGE: $((BYTES / 1024)) KiB in $(find "$STAGE" -type f | wc -l) files (limit $((MAX_CARRY_BYTES / 1024 / 1024)) MiB); glibc >= ${GLIBC_MAX#GLIBC_}"
if [ "$BYTES" -gt "$MAX_CARRY_BYTES" ]; then
  echo "package: $STAGE is larger than what a device run carries"
  status=1
fi

if [ "$VERIFY" = 1 ] && [ $status -eq 0 ]; then
  echo "== verify: the staged simulated proof in an empty environment, from another directory"
  CWD=$(mktemp -d)
  ABS_STAGE=$(cd "$STAGE" && pwd)
  (cd "$CWD" && env -i PATH=/usr/bin:/bin HOME="$CWD" OUT="$CWD/out" PYTHON=/usr/bin/python3 \
     bash "$ABS_STAGE/proof.sh" --simulated --quick) || status=1
  ls -l "$CWD/out"
  rm -rf "$CWD"
fi
exit $status
