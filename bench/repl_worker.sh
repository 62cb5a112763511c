#!/usr/bin/env bash
# Benchmark of the Python REPL worker (server/src/repl):
#   - ContextBlob::write of a synthetic 100 MB workspace (10,000 files of ~10 KB);
#   - worker cold start: spawn of `rlm-lsp __repl-worker` to Ready, with that workspace as `context`
#     (target <= 300 ms);
#   - per-cell overhead: exec of `pass`, parent round trip, averaged over 200 cells (target <= 2 ms);
#   - for information: an llm_query round trip with an instant fake model, and full scans of context.
# Usage: bench/repl_worker.sh [extra cargo args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3.11}
exec cargo test --release -p rlm-lsp --test repl_worker "$@" -- \
  --ignored --exact bench_repl_worker --nocapture --test-threads=1
