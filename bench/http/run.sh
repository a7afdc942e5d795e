#!/usr/bin/env bash
# HTTP benchmark: clams-cpp servers against a Flask app under gunicorn, measured with wrk.
#   bench/http/run.sh BUILD_DIR
# Needs BUILD_DIR/apps/sentence-splitter/sentence-splitter (and BUILD_DIR/src/cli/clams for the
# `clams serve` part, skipped when it has no `serve`), /usr/bin/wrk, /usr/bin/gunicorn and Debian's
# python3-flask. Takes about 2.5 minutes. Environment: HTTP_BENCH_WORKERS (N of part 1, default 2),
# HTTP_BENCH_CONNECTIONS (wrk -c for throughput, default 8), HTTP_BENCH_SECONDS (measured time per
# run, default 5), HTTP_BENCH_WARMUP (default 1), HTTP_BENCH_ROUNDS (runs per server, alternating
# within a pair, default 2), HTTP_BENCH_VERBOSE=1 (print wrk's output).
# Prints a table with PASS/FAIL against the targets; exit status 0 when it ran (targets missed
# included), 1 when a server failed, answered wrongly or wrk saw errors. See bench/http/README.md.
set -uo pipefail
build=${1:?usage: bench/http/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/clams-bench-http.XXXXXX")
driver=

cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  # Servers the driver started lead their own sessions; end any that outlived it (a driver that
  # was killed with SIGKILL cannot clean up): each session, by its leader's id, only if that
  # process still leads the session we recorded.
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] || continue
      sid=$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')
      [ "$sid" = "$pid" ] || continue
      for p in $(ps -e -o pid=,sid= | awk -v s="$pid" '$2 == s { print $1 }'); do
        kill -KILL "$p" 2>/dev/null
      done
    done < "$work/pids"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

/usr/bin/python3 "$here/bench.py" --build "$build" --workdir "$work" &
driver=$!
wait "$driver"
status=$?
driver=
exit "$status"
