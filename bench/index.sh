#!/usr/bin/env bash
# Index benchmark on real Rust: the crates `cargo fetch` placed under ~/.cargo/registry/src.
# Prints the full index's throughput beside a naive single-threaded tree-sitter tags pass, the
# incremental update time on a 5,000-line file, and peak memory against the source bytes.
# Options (environment): INDEX_BENCH_DIR, INDEX_BENCH_MAX_MB, INDEX_BENCH_ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3.11}"
cargo fetch --quiet
exec cargo bench -p rlm-lsp --bench index
