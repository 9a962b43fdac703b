#!/usr/bin/env bash
# The one test command: formatting, lints, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

for protocol in websocket http mqtt amqp; do
  step "single-protocol build: $protocol"
  cargo check -p protoplex --no-default-features --features "$protocol"
done

step "services the tests need (RabbitMQ)"
scripts/services.sh

step "cargo test"
cargo test --workspace --all-targets

step "doc tests"
cargo test --workspace --doc

step "fuzz corpora replay"
# The fuzz targets' inputs through the same functions, on stable, without
# libFuzzer (fuzz/README.md); fuzz/ is a workspace of its own, built in ours.
fuzz=(--manifest-path fuzz/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}")
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy "${fuzz[@]}" --all-targets -- -D warnings
cargo test "${fuzz[@]}"

step "benchmark tool, every scenario for a second or two (no figure is checked)"
scripts/bench.sh --quick

step "every crate packages and builds on its own"
# Without anything left of the protoplex crates by the last run: cargo takes
# registry crates (the dry run's local registry too) as immutable, and would
# reuse the sources it unpacked (under CARGO_HOME) and the builds it made (in a
# target directory of its own here) of a crate that has changed since.
check_dir="${CARGO_TARGET_DIR:-target}/package-check"
rm -rf "$check_dir/package" "$check_dir"/debug/.fingerprint/protoplex* "$check_dir"/debug/deps/*protoplex*
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/protoplex-*
CARGO_TARGET_DIR="$check_dir" cargo publish --workspace --dry-run --allow-dirty
