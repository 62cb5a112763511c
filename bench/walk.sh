#!/usr/bin/env bash
# Walking and reading a real tree into a snapshot (`rlm-lsp index`), beside ripgrep's full scan of
# the same tree (a search for a string that occurs nowhere, so rg reads every file), same filters
# (gitignore, hidden files). Target: within 2x of rg. Median of 5 warm runs each.
# Usage: bench/walk.sh [DIR]   (default: the crates cargo unpacked under ~/.cargo/registry/src)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=${1:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | head -1)}
command -v rg >/dev/null || { apt-get install -y -qq ripgrep >/dev/null 2>&1 || { echo "ripgrep is missing: apt-get install ripgrep"; exit 1; }; }
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3.11}
cargo build --release --quiet --bin rlm-lsp
BIN=${CARGO_TARGET_DIR:-target}/release/rlm-lsp
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
"$BIN" index --no-parse --workspace "$DIR" --max-total-bytes 100000000000 >/dev/null   # warm the page cache
rg -c ZZZ_NO_SUCH_STRING_ZZZ "$DIR" >/dev/null || true
ours=$(for _ in 1 2 3 4 5; do time_ms "$BIN" index --no-parse --workspace "$DIR" --max-total-bytes 100000000000; done | median)
theirs=$(for _ in 1 2 3 4 5; do time_ms rg -c ZZZ_NO_SUCH_STRING_ZZZ "$DIR"; done | median)
"$BIN" index --no-parse --workspace "$DIR" --max-total-bytes 100000000000 | grep -E '^indexed'
echo "walk+read (rlm-lsp index): ${ours} ms; ripgrep full scan: ${theirs} ms; ratio $(awk "BEGIN {printf \"%.2f\", $ours/$theirs}")x (target <= 2x)"
