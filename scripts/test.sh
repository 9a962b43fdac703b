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

step "every crate packages and builds on its own"
cargo publish --workspace --dry-run --allow-dirty
