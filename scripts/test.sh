#!/usr/bin/env bash
# The test suite: formatting, lints, then every test (unit, engine against a scripted model
# server, the real REPL worker, the real local model end to end). Run scripts/setup.sh first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3.11}
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast "$@"
