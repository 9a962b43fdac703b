#!/usr/bin/env bash
# protoplex's benchmarks, side by side with their baselines, in one go:
#
#   WebSocket fan-out 1 -> N      protoplex vs ws-broadcast (benches/baselines)
#   HTTP realtime:publish         protoplex vs http-fixed   (benches/baselines)
#   filter matching, 10k filters  protoplex vs Koncorde (Node, npm `koncorde@4`)
#   idle WebSocket connections    protoplex's RSS per connection
#
# Usage: scripts/bench.sh [--quick] [--out DIR] [-- LOADGEN-SUITE-ARGS...]
#
#   (full)    writes benches/results/latest.md, latest.json and fanout.svg;
#             installs Koncorde with npm into the cache directory if missing.
#   --quick   every scenario for a second or two at small sizes, loopback only
#             (no npm install: the Koncorde row is skipped if it is not cached);
#             the report goes to a temporary directory unless --out is given.
#             Exits non-zero when a scenario fails (lost messages, a server
#             that does not start, ...), never because of a figure.
#
# Environment: CARGO_TARGET_DIR (default target), PROTOPLEX_KONCORDE_DIR
# (default ${XDG_CACHE_HOME:-~/.cache}/protoplex-bench/koncorde).
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
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

step "load: fan-out, request/response, idle connections ($([ "$quick" = 1 ] && echo quick || echo full))"
args=(suite --protoplex "$bin/protoplex" --ws-baseline "$bin/ws-broadcast" --http-baseline "$bin/http-fixed"
      --out "$out" --filter-dir "$filter_dir")
if [ "$quick" = 1 ]; then args+=(--quick); limit=180; else limit=1800; fi
status=0
timeout "$limit" "$bin/loadgen" "${args[@]}" "${extra[@]}" || status=$?
if [ "$status" = 124 ]; then echo "bench.sh: the load generator did not finish within ${limit}s" >&2; fi
exit "$status"
