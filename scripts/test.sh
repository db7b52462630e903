#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, lints, then every test of the
# workspace — unit, property, scenario, openraft's storage suite, and the tests that start
# real `boxoffice` processes and talk HTTP to them (loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads="${BOXOFFICE_TEST_THREADS:-2}"
