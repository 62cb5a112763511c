#!/usr/bin/env bash
# Benchmark of the REPL's grep() against ripgrep on a large real tree: every .rs file under
# ~/.cargo/registry/src/*/ (run `cargo fetch` first; RLM_GREP_BENCH_ROOT=DIR searches DIR instead).
# For a literal, a case-insensitive literal and three kinds of regex it prints the median time of a
# REPL cell calling grep() (through the worker, as the model runs it) beside `rg -c` and `rg -n` on
# the same files and pattern, and the ratio REPL/rg (target: <= 2x).
# Installs ripgrep with apt-get when it is missing (as root); without it the rg columns are skipped.
# Usage: bench/grep.sh [extra cargo args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3.11}
if ! command -v rg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ripgrep (apt-get install -y ripgrep) ..."
    apt-get install -y ripgrep >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y ripgrep >/dev/null 2>&1) || true
  fi
  command -v rg >/dev/null 2>&1 || echo "ripgrep (rg) is not installed and could not be installed: the rg columns will be skipped"
fi
exec cargo bench -p rlm-lsp --bench grep "$@"
