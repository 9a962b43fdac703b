#!/usr/bin/env bash
# protoplex's soak test: mixed load over HTTP, WebSocket, MQTT and AMQP at
# once for 10 minutes, the server's resident memory (VmRSS) and open file
# descriptors sampled after a warm-up, every 10 s, and at the end.
#
# Usage: scripts/soak.sh [--seconds N] [--out FILE] [-- LOADGEN-SOAK-ARGS...]
#
#   --seconds N   seconds of load, warm-up included (default: $SOAK_SECONDS,
#                 else 600); the warm-up is 180 s from 300 s on: longer than
#                 the 60 s the server keeps AMQP answers, and than the first
#                 replacement of its AMQP queue-check connection (after 1,024
#                 checking channels, ~150 s at this load), whose first close
#                 starts a thread of lapin's for good (3 descriptors and a
#                 socket, once); 30 s below 300 s, N/4 below 120 s
#                 (short runs check the tool, not leaks: the caches and the
#                 queue-check connection are still filling in)
#   --out FILE    the Markdown report; default benches/results/soak.md for a
#                 full-length run, a temporary directory for a shorter one
#
# Builds protoplex and the load generator (release), makes RabbitMQ
# reachable with scripts/services.sh, then runs `loadgen soak` (see
# benches/loadgen/src/scenarios/soak.rs): a server started on free loopback
# ports with a request queue of its own; steady subscribers with filters on
# WebSocket, MQTT and AMQP; a publisher per protocol at a moderate fixed
# rate; churn clients connecting, subscribing, publishing, unsubscribing and
# leaving in a loop; deliberately bad requests. It prints the report.
#
# Passes (exit 0) when the server's RSS grew less than 10% and its open
# files did not grow from the start sample (after the warm-up) to the end
# sample (churn stopped, 5 s later), every answer had the expected status
# and every notification arrived; exits 1 otherwise, 2 when it could not
# run. An AMQP outage (the broker restarted during the run) fails the run:
# the report says so; run it again.
#
# Bounded: the load generator is stopped after N + 180 s, and the server it
# starts is killed on exit whatever happened.
#
# Environment: CARGO_TARGET_DIR (default target), SOAK_SECONDS,
# PROTOPLEX_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
set -euo pipefail
cd "$(dirname "$0")/.."

full=600
seconds="${SOAK_SECONDS:-$full}"
out=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    --out) out="$2"; shift ;;
    --out=*) out="${1#--out=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$seconds" in
  '' | *[!0-9]*) echo "soak.sh: --seconds wants a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac
if [ "$seconds" -lt 20 ]; then
  echo "soak.sh: at least 20 seconds" >&2
  exit 2
fi
if [ "$seconds" -ge 300 ]; then
  warmup=180; interval=10
elif [ "$seconds" -ge 120 ]; then
  warmup=30; interval=10
else
  warmup=$((seconds / 4)); interval=5
fi

step() { printf '\n==> %s\n' "$*"; }

target="${CARGO_TARGET_DIR:-target}"
bin="$target/release"
work="$(mktemp -d "${TMPDIR:-/tmp}/protoplex-soak.XXXXXX")"
keep_work=""
child=""

# Runs a command in the background and waits for it, so that a signal to
# this script is handled at once (bash runs traps only between commands).
run() {
  "$@" &
  child=$!
  local code=0
  wait "$child" || code=$?
  child=""
  return "$code"
}

# Stops what this script started: the command running (cargo, or the load
# generator under timeout), the server the load generator started (by the
# id it wrote, if that process is still a protoplex), and deletes the
# server's request queue if the load generator could not.
cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2> /dev/null; then
    kill -TERM "$child" 2> /dev/null || true
    for _ in 1 2 3 4 5; do kill -0 "$child" 2> /dev/null || break; sleep 1; done
    kill -KILL "$child" 2> /dev/null || true
  fi
  if [ -s "$work/server.pid" ]; then
    server_pid="$(cat "$work/server.pid")"
    if [ "$(cat "/proc/$server_pid/comm" 2> /dev/null)" = protoplex ]; then
      kill -TERM "$server_pid" 2> /dev/null || true
      sleep 1
      kill -KILL "$server_pid" 2> /dev/null || true
    fi
  fi
  if [ -s "$work/amqp-queue" ] && command -v rabbitmqctl > /dev/null; then
    timeout 30 rabbitmqctl -q delete_queue "$(cat "$work/amqp-queue")" > /dev/null 2>&1 || true
  fi
  if [ -z "$keep_work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$out" ]; then
  if [ "$seconds" -ge "$full" ]; then out="benches/results/soak.md"; else out="$work/soak.md"; fi
fi
mkdir -p "$(dirname "$out")"

step "build (release): protoplex, loadgen"
run cargo build --release --quiet -p protoplex -p protoplex-loadgen

step "AMQP broker: RabbitMQ"
if ! run scripts/services.sh; then
  echo "soak.sh: scripts/services.sh failed: no AMQP broker, no soak" >&2
  exit 2
fi

commit="$(git rev-parse --short HEAD 2> /dev/null || echo unknown)"
if ! git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2> /dev/null ||
  [ -n "$(git ls-files --others --exclude-standard -- crates 2> /dev/null)" ]; then
  commit="$commit with uncommitted changes under crates/"
fi

step "soak: ${seconds}s of mixed load (${warmup}s warm-up), samples every ${interval}s"
limit=$((seconds + 180))
status=0
run timeout --kill-after=15 "$limit" "$bin/loadgen" soak --protoplex "$bin/protoplex" \
  --duration "$seconds" --warmup "$warmup" --interval "$interval" \
  --log "$work/protoplex.log" --report "$out" --json "$work/soak.json" \
  --pid-file "$work/server.pid" --queue-file "$work/amqp-queue" \
  --note "protoplex $commit, release build; scripts/soak.sh --seconds $seconds" \
  "${extra[@]}" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "soak.sh: the load generator did not finish within ${limit}s" >&2
fi
if [ "$status" != 0 ]; then
  keep_work=1
  echo "soak.sh: FAILED (exit $status); the server's log: $work/protoplex.log" >&2
  tail -n 5 "$work/protoplex.log" 2> /dev/null | sed 's/^/  /' >&2 || true
elif [ "${out#"$work"/}" = "$out" ]; then
  echo "soak.sh: passed; report: $out"
else
  echo "soak.sh: passed (a shortened run: the report above is not kept)"
fi
exit "$status"
