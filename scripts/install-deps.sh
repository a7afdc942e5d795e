#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing, benchmarking and fuzzing clams-cpp
# needs (`make deps`; `make run`, `make test`, `make asan`, `make fuzz` and `make bench` call it).
# Idempotent: prints nothing and installs nothing when everything is already there. Needs root
# or sudo only when something is missing.
set -euo pipefail

#
#   scripts/install-deps.sh          everything (make run, make test, make bench, ...)
#   scripts/install-deps.sh build    only what building the library, the apps and the CLI needs
#                                    (the Containerfile's build stage)
BUILD_PACKAGES=(
  # toolchain
  g++ make cmake ninja-build pkg-config git
  # libraries (Boost >= 1.81 for Beast/Asio/JSON; 1.74 is Debian 12's default)
  libboost1.81-dev libboost-json1.81-dev libspdlog-dev libfmt-dev libcli11-dev
)
DEV_PACKAGES=(
  ccache
  # tests and benchmarks (python3-*: MMIF conformance oracle, bench/http baseline server,
  # deploy manifest checks)
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-jsonschema python3-flask python3-requests python3-yaml gunicorn wrk curl procps
  # the /status page test: headless Chromium driven through chromedriver
  chromium chromium-driver python3-selenium
  # fuzzing: clang with the libFuzzer and sanitizer runtimes
  clang libclang-rt-14-dev
)
case "${1:-all}" in
  build) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
  all) PACKAGES=("${BUILD_PACKAGES[@]}" "${DEV_PACKAGES[@]}") ;;
  *) echo "usage: $0 [all|build]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: missing ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
