#!/usr/bin/env bash
# Minimizes fuzz/corpus/TARGET to at most MAX inputs (500 by default): merges
# it by edge coverage (hit counts ignored) after the target's seeds, then keeps
# the inputs adding the most features beyond the seeds (examples/pick_corpus.rs).
# Needs the libFuzzer binary: cargo fuzz build -s none --features libfuzzer TARGET
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/minimize.sh TARGET [MAX]}
max=${2:-500}
bin=${FUZZ_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/merged" "$work/kept"
cp "seeds/$target"/* "$work/merged/"
"$bin" -merge=1 -use_counters=0 -merge_control_file="$work/control" "$work/merged" "corpus/$target" 2>"$work/merge.log" \
  || { cat "$work/merge.log" >&2; exit 1; }
cargo run --quiet --example pick_corpus -- "$work/control" "$max" >"$work/picked"
xargs -r -d '\n' cp -t "$work/kept" <"$work/picked"
rm -rf "corpus/$target"
mv "$work/kept" "corpus/$target"
echo "corpus/$target: $(ls "corpus/$target" | wc -l) inputs"
