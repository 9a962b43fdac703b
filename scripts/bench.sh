#!/usr/bin/env bash
# protoplex's benchmarks, side by side with their baselines, in one go:
#
#   WebSocket fan-out 1 -> N      protoplex vs ws-broadcast (benches/baselines)
#   HTTP realtime:publish         protoplex vs http-fixed   (benches/baselines)
#   MQTT fan-out 1 -> 100, QoS 0  protoplex vs Mosquitto (Debian package, own config)
#   AMQP request/response         protoplex vs amqp-echo (benches/baselines), RabbitMQ
#   filter matching, 10k filters  protoplex vs Koncorde (Node, npm `koncorde@4`)
#   idle WebSocket connections    protoplex's RSS per connection
#
# Usage: scripts/bench.sh [--quick] [--out DIR] [-- LOADGEN-SUITE-ARGS...]
#
#   (full)    writes benches/results/latest.md, latest.json and fanout.svg;
#             installs Koncorde with npm into the cache directory and
#             Mosquitto with apt-get (as root) if missing, and starts RabbitMQ
#             with scripts/services.sh; a baseline that cannot be had is
#             skipped with a note in the report, never a failure.
#   --quick   every scenario for a second or two at small sizes, loopback only
#             (no npm, no apt-get: the Koncorde and Mosquitto rows are skipped
#             if missing, the AMQP rows if no broker answers); the report goes
#             to a temporary directory unless --out is given.
#             Exits non-zero when a scenario fails (lost messages, a server
#             that does not start, ...), never because of a figure.
#
# Mosquitto runs as a foreground child of the load generator on a free
# 127.0.0.1 port (its configuration file is written next to the logs), never
# as a system service.
#
# Environment: CARGO_TARGET_DIR (default target), PROTOPLEX_KONCORDE_DIR
# (default ${XDG_CACHE_HOME:-~/.cache}/protoplex-bench/koncorde),
# PROTOPLEX_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --out=*) out="${1#--out=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*"; }

target="${CARGO_TARGET_DIR:-target}"
bin="$target/release"
work="$(mktemp -d "${TMPDIR:-/tmp}/protoplex-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -z "$out" ]; then
  if [ "$quick" = 1 ]; then out="$work/report"; else out="benches/results"; fi
fi
mkdir -p "$out"

step "build (release): protoplex, loadgen, baselines, the filter workload"
cargo build --release --quiet -p protoplex -p protoplex-loadgen -p protoplex-baselines
cargo build --release --quiet -p protoplex-micro-benches --example koncorde_side_by_side

step "filter matching: protoplex vs Koncorde"
if [ "$quick" = 1 ]; then filters=1000; documents=1000; else filters=10000; documents=5000; fi
filter_dir="$work/filter"
mkdir -p "$filter_dir"
skip() { echo "$*" > "$filter_dir/filter-skipped.txt"; echo "skipped: $*"; }
timeout 300 "$bin/examples/koncorde_side_by_side" "$filter_dir/workload" "$filters" "$documents" \
  > "$filter_dir/filter-protoplex.json"
cat "$filter_dir/filter-protoplex.json"
koncorde_dir="${PROTOPLEX_KONCORDE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/protoplex-bench/koncorde}"
if ! command -v node > /dev/null; then
  skip "node is not installed"
else
  if [ ! -d "$koncorde_dir/node_modules/koncorde" ]; then
    if [ "$quick" = 1 ]; then
      skip "Koncorde is not cached in $koncorde_dir and --quick uses no network (a full scripts/bench.sh installs it)"
    elif ! command -v npm > /dev/null; then
      skip "npm is not installed"
    else
      echo "installing koncorde@4 into $koncorde_dir"
      mkdir -p "$koncorde_dir"
      timeout 300 npm install --prefix "$koncorde_dir" --no-audit --no-fund --loglevel=error koncorde@4 \
        || skip "npm install koncorde@4 failed"
    fi
  fi
  if [ ! -e "$filter_dir/filter-skipped.txt" ]; then
    if NODE_PATH="$koncorde_dir/node_modules" timeout 600 node benches/koncorde/compare.js "$filter_dir/workload" \
      > "$filter_dir/filter-koncorde.json"; then
      cat "$filter_dir/filter-koncorde.json"
    else
      skip "benches/koncorde/compare.js failed"
    fi
  fi
fi

step "MQTT baseline: Mosquitto"
mosquitto_args=()
find_mosquitto() { command -v mosquitto 2> /dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true; }
mosquitto_bin="$(find_mosquitto)"
missing=""
if [ -z "$mosquitto_bin" ]; then
  if [ "$quick" = 1 ]; then
    missing="Mosquitto is not installed and --quick uses no network (a full scripts/bench.sh installs it with apt-get)"
  elif [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    missing="Mosquitto is not installed, and installing it takes apt-get as root (apt-get install mosquitto)"
  else
    echo "installing mosquitto (apt-get)"
    # Keep the package's scripts from starting the system service: it is
    # started by the load generator, on its own port, for each run.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    apt_status=0
    { DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends mosquitto < /dev/null ||
        { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q &&
          DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends mosquitto < /dev/null; }
    } > "$work/mosquitto-apt.log" 2>&1 || apt_status=$?
    if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    mosquitto_bin="$(find_mosquitto)"
    if [ -z "$mosquitto_bin" ]; then
      tail -n 10 "$work/mosquitto-apt.log" >&2 || true
      missing="apt-get install mosquitto failed (exit $apt_status)"
    fi
  fi
fi
if [ -n "$mosquitto_bin" ]; then
  echo "using $mosquitto_bin"
  mosquitto_args=(--mosquitto "$mosquitto_bin")
else
  echo "skipped: $missing"
  mosquitto_args=(--mosquitto-missing "$missing")
fi

step "AMQP broker: RabbitMQ"
if [ "$quick" = 1 ]; then
  echo "--quick starts nothing: the AMQP rows run if a broker answers at ${PROTOPLEX_AMQP_URL:-the default URL}"
elif ! scripts/services.sh; then
  echo "bench.sh: scripts/services.sh failed: the AMQP rows will be skipped" >&2
fi

step "load: fan-out, request/response, idle connections ($([ "$quick" = 1 ] && echo quick || echo full))"
args=(suite --protoplex "$bin/protoplex" --ws-baseline "$bin/ws-broadcast" --http-baseline "$bin/http-fixed"
      --amqp-baseline "$bin/amqp-echo" "${mosquitto_args[@]}"
      --out "$out" --filter-dir "$filter_dir")
if [ "$quick" = 1 ]; then args+=(--quick); limit=180; else limit=1800; fi
status=0
timeout "$limit" "$bin/loadgen" "${args[@]}" "${extra[@]}" || status=$?
if [ "$status" = 124 ]; then echo "bench.sh: the load generator did not finish within ${limit}s" >&2; fi
exit "$status"
