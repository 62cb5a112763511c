#!/usr/bin/env bash
# MCP `search` (and `definitions`) latency on a ~100 MB workspace, as an agent sees it: the
# official MCP TypeScript SDK's client (tests/agents/bench_search.mjs) times each call to the
# release `rlm-lsp mcp`, from request to response, once the index covers every file.
# The workspace: the crates `cargo fetch` placed under ~/.cargo/registry/src, walked up to
# MCP_BENCH_MB megabytes (default 100), or $MCP_BENCH_DIR.
# Needs scripts/setup-agents.sh (Node 24 and the SDKs). Prints the figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3.11}"
MB=${MCP_BENCH_MB:-100}
BYTES=$((MB * 1024 * 1024))
cargo fetch --quiet
DIR=${MCP_BENCH_DIR:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | head -1)}
cargo build --release --quiet --bin rlm-lsp
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/rlm-lsp")
NODE=${RLM_AGENTS_NODE:-.rlm/agents/node}
[ -x "$NODE" ] && [ -d tests/agents/node_modules/@modelcontextprotocol/sdk ] \
  || { echo "run scripts/setup-agents.sh first" >&2; exit 1; }
NODE=$(realpath "$NODE")
# The walk's cap counts bytes on disk, binary files included: raise it until the text reaches
# MB megabytes (or the directory runs out).
size_of() {
  "$BIN" index --no-parse --json --workspace "$DIR" --max-total-bytes "$1" \
    | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(v.files, v.bytes)})'
}
CAP=$BYTES
read -r FILES TEXT < <(size_of "$CAP")
while [ "$TEXT" -lt "$BYTES" ]; do
  NEXT=$((CAP + 4 * 1024 * 1024))
  read -r F2 T2 < <(size_of "$NEXT")
  [ "$T2" -gt "$TEXT" ] || break
  CAP=$NEXT FILES=$F2 TEXT=$T2
done
echo "workspace: $DIR, $FILES files, $(awk "BEGIN{printf \"%.1f\", $TEXT/1048576}") MB of text (--max-total-bytes $CAP)"
OUT=$(cd tests/agents && "$NODE" bench_search.mjs "$BIN" "$DIR" "$CAP" "${MCP_BENCH_ROUNDS:-3}")
"$NODE" -e '
const v = JSON.parse(process.argv[1]);
const f = (x) => x.toFixed(1) + " ms";
const s = (k) => `median ${f(v[k].median)}, p90 ${f(v[k].p90)}, max ${f(v[k].max)} (${v[k].n} calls)`;
console.log(`server up (initialize answered): ${f(v.connect_ms)}; index complete after ${(v.indexed_ms / 1000).toFixed(1)} s (${v.files} files)`);
console.log(`first search after indexing (waits for the BM25, built once in the background): ${f(v.first_search_ms)}`);
console.log(`search (top 10): ${s("search")}`);
console.log(`definitions: ${s("definitions")}`);
' "$OUT"
