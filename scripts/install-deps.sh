#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking clams-cpp needs.
# Idempotent: prints nothing and installs nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config git
  # libraries (Boost >= 1.81 for Beast/Asio/JSON; 1.74 is Debian 12's default)
  libboost1.81-dev libboost-json1.81-dev libspdlog-dev libfmt-dev libcli11-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-jsonschema python3-flask python3-requests gunicorn wrk curl procps
  # fuzzing (libFuzzer ships with clang's runtime)
  clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
