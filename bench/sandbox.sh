#!/usr/bin/env bash
# Benchmark of the REPL worker's sandbox (server/src/repl/sandbox), measured in one run:
#   - worker start, spawn of `rlm-lsp __repl-worker` to Ready, with and without the sandbox
#     (median of 21 interleaved starts each; target: the sandbox adds <= 20 ms);
#   - per-cell overhead: exec of `pass`, 200 cells in each worker, in alternating batches
#     (target: nothing measurable);
#   - for information: a cell that imports modules, scans `context` and writes a file (the audit
#     hook sees those opens).
# Usage: bench/sandbox.sh [extra cargo args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3.11}
exec cargo test --release -p rlm-lsp --test sandbox_hostile "$@" -- \
  --ignored --exact bench_sandbox --nocapture --test-threads=1
