#!/usr/bin/env bash
# The real evaluation (docs/eval.md): fetch the pinned crates, generate tasks with computed ground
# truth, run every method on one model, write docs/eval/report.{md,json} and score_vs_size.png.
#
# The model is the shared local one unless RLM_BASE_URL / RLM_MODEL / RLM_API_KEY_ENV /
# RLM_BACKEND name another. Every setting below can be overridden from the environment; extra
# arguments go to `rlm-eval run` (e.g. --max-sub-calls 10).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3.11}"

OUT="${OUT:-docs/eval}"
# One workspace per entry; roots of one workspace are joined with commas. Estimated sizes
# (characters / 4): 4.5K (fits the direct window), 56K, 998K tokens.
WORKSPACES="${WORKSPACES:-itoa@1.0.19/src anyhow@1.0.105 syn@2.0.119,regex-syntax@0.8.12}"
PER_KIND="${PER_KIND:-1}"
METHODS="${METHODS:-direct,retrieval,rlm,rlm-no-subcalls}"
MAX_ITERATIONS="${MAX_ITERATIONS:-4}"
MAX_WALL_SECS="${MAX_WALL_SECS:-120}"
# Prefill runs at ~50-100 tokens/s on a 2-core CPU: the direct window is what sizes a run.
# 5500 holds all of the smallest workspace (itoa/src, 18 KB).
DIRECT_WINDOW_TOKENS="${DIRECT_WINDOW_TOKENS:-5500}"
RETRIEVAL_TOKENS="${RETRIEVAL_TOKENS:-1000}"

# Sources of the pinned crates (Cargo.lock with checksums) under ~/.cargo/registry/src.
(cd fixtures/eval/crates && cargo fetch --locked)

# A copy: a concurrent rebuild must not delete the binary under a running evaluation (it is also
# the REPL worker and the local model's keeper). RLM_EVAL_BIN skips the build.
if [ -n "${RLM_EVAL_BIN:-}" ]; then
  BIN="$RLM_EVAL_BIN"
else
  cargo build --release -p rlm-eval
  bin_dir="$(mktemp -d "${TMPDIR:-/tmp}/rlm-eval.XXXXXX")"
  cp target/release/rlm-eval "$bin_dir/rlm-eval"
  BIN="$bin_dir/rlm-eval"
fi

mkdir -p "$OUT"
gen_args=()
for w in $WORKSPACES; do gen_args+=(--workspace "$w"); done
"$BIN" gen "${gen_args[@]}" --per-kind "$PER_KIND" --out "$OUT/tasks.jsonl"

"$BIN" run --tasks "$OUT/tasks.jsonl" --methods "$METHODS" --out-dir "$OUT" \
  --max-iterations "$MAX_ITERATIONS" --max-wall-secs "$MAX_WALL_SECS" \
  --direct-window-tokens "$DIRECT_WINDOW_TOKENS" --retrieval-tokens "$RETRIEVAL_TOKENS" "$@"
echo "report: $OUT/report.md"
