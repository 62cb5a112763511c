#!/usr/bin/env bash
# The real evaluation (docs/eval.md), in parts that can each be run, interrupted and resumed:
#
#   bench/eval.sh gen                  fetch the pinned crates, generate docs/eval/tasks.jsonl
#   bench/eval.sh run SIZE METHOD ...  one part: every task of size SIZE (100k, 1m, 5m) with METHOD,
#                                      into docs/eval/rows-SIZE-METHOD.jsonl (resumed if present);
#                                      further arguments go to `rlm-eval run`
#   bench/eval.sh report               docs/eval/report.{md,json} and score_vs_size.png from every
#                                      docs/eval/rows-*.jsonl
#   bench/eval.sh all                  gen (unless the task file exists), every part, report
#   bench/eval.sh                      the same as `all`
#
# Refactor tasks (docs/eval.md, "Refactor tasks"), apart from the questions above:
#
#   bench/eval.sh refactor-gen         docs/eval/refactor-tasks.jsonl from the crates of the 100k and
#                                      1m workspaces (each task checked with `cargo check --offline`)
#   bench/eval.sh refactor-run METHOD  every refactor task with METHOD (refactor, refactor-no-check)
#                                      into docs/eval/refactor-rows-METHOD.jsonl (resumed if present)
#   bench/eval.sh refactor-report      docs/eval/refactor-report.{md,json} from the refactor rows
#
# The model is the shared local one unless RLM_BASE_URL / RLM_MODEL / RLM_API_KEY_ENV /
# RLM_BACKEND name another. Every setting below can be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3.11}"

OUT="${OUT:-docs/eval}"
TASKS="${TASKS:-$OUT/tasks.jsonl}"
# The three workspaces (estimated tokens, characters / 4, with the planted functions).
W_100k="${W_100k:-rayon-core@1.13.0,anyhow@1.0.105}"                                         # 127K
W_1m="${W_1m:-syn@2.0.119,regex-syntax@0.8.12}"                                               # 998K
W_5m="${W_5m:-tokio@1.54.1,syn@2.0.119,regex-syntax@0.8.12,regex-automata@0.4.19,regex@1.13.2,serde@1.0.229,serde_json@1.0.154,rustls@0.23.46,hyper@1.12.0,futures-util@0.3.34,rayon@1.12.0,tokio-util@0.7.20,tracing-subscriber@0.3.23,http@1.5.0}" # 5.1M
SIZES="${SIZES:-100k 1m 5m}"
PER_KIND="${PER_KIND:-2}"
# `all` runs these methods on every size, and `direct` on DIRECT_SIZES only: its prompt is cut
# to the direct window anyway, and its prefill is what a run on a CPU pays for.
METHODS="${METHODS:-retrieval rlm rlm-no-subcalls rlm-no-recipes rlm-no-evidence}"
DIRECT_SIZES="${DIRECT_SIZES:-100k}"
MAX_ITERATIONS="${MAX_ITERATIONS:-6}"
MAX_WALL_SECS="${MAX_WALL_SECS:-180}"
# Prefill runs at ~50-100 tokens/s on a 2-core CPU: the direct window is what sizes its cost.
DIRECT_WINDOW_TOKENS="${DIRECT_WINDOW_TOKENS:-5500}"
RETRIEVAL_TOKENS="${RETRIEVAL_TOKENS:-1000}"
# Refactor tasks: their own task file and rows files (never docs/eval/rows-*.jsonl).
REFACTOR_TASKS="${REFACTOR_TASKS:-$OUT/refactor-tasks.jsonl}"
REFACTOR_SIZES="${REFACTOR_SIZES:-100k 1m}"
REFACTOR_PER_KIND="${REFACTOR_PER_KIND:-1}"
REFACTOR_MAX_ITERATIONS="${REFACTOR_MAX_ITERATIONS:-8}"
REFACTOR_MAX_WALL_SECS="${REFACTOR_MAX_WALL_SECS:-600}"

# A copy: a concurrent rebuild must not delete the binary under a running evaluation (it is also
# the REPL worker and the local model's keeper). RLM_EVAL_BIN skips the build.
binary() {
  if [ -n "${RLM_EVAL_BIN:-}" ]; then
    BIN="$RLM_EVAL_BIN"
    return
  fi
  cargo build --release -p rlm-eval
  local target="${CARGO_TARGET_DIR:-target}"
  local bin_dir
  bin_dir="$(mktemp -d "${TMPDIR:-/tmp}/rlm-eval.XXXXXX")"
  cp "$target/release/rlm-eval" "$bin_dir/rlm-eval"
  BIN="$bin_dir/rlm-eval"
}

workspace_of() {
  local var="W_$1"
  [ -n "${!var:-}" ] || { echo "unknown size $1 (use: $SIZES)" >&2; exit 2; }
  echo "${!var}"
}

do_gen() {
  # Sources of the pinned crates (Cargo.lock with checksums) under ~/.cargo/registry/src.
  (cd fixtures/eval/crates && cargo fetch --locked)
  mkdir -p "$OUT"
  local args=()
  for s in $SIZES; do args+=(--workspace "$s=$(workspace_of "$s")"); done
  "$BIN" gen "${args[@]}" --per-kind "$PER_KIND" --out "$TASKS"
}

do_run() {
  local size="$1" method="$2"
  shift 2
  workspace_of "$size" >/dev/null
  [ -f "$TASKS" ] || { echo "no $TASKS: run \`bench/eval.sh gen\` first" >&2; exit 2; }
  echo "== $size $method -> $OUT/rows-$size-$method.jsonl"
  "$BIN" run --tasks "$TASKS" --sizes "$size" --methods "$method" \
    --rows "$OUT/rows-$size-$method.jsonl" --resume --no-report --out-dir "$OUT" \
    --max-iterations "$MAX_ITERATIONS" --max-wall-secs "$MAX_WALL_SECS" \
    --direct-window-tokens "$DIRECT_WINDOW_TOKENS" --retrieval-tokens "$RETRIEVAL_TOKENS" \
    --trajectories "${TRAJECTORIES:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp/eval-trajectories}" "$@"
}

do_report() {
  shopt -s nullglob
  local rows=("$OUT"/rows-*.jsonl)
  [ ${#rows[@]} -gt 0 ] || { echo "no $OUT/rows-*.jsonl yet" >&2; exit 2; }
  "$BIN" report --json "${rows[@]}" --out-dir "$OUT"
  echo "report: $OUT/report.md"
}

do_refactor_gen() {
  (cd fixtures/eval/crates && cargo fetch --locked)
  mkdir -p "$OUT"
  local args=()
  for s in $REFACTOR_SIZES; do args+=(--workspace "$s=$(workspace_of "$s")"); done
  "$BIN" gen-refactor "${args[@]}" --per-kind "$REFACTOR_PER_KIND" --out "$REFACTOR_TASKS"
}

do_refactor_run() {
  local method="$1"
  shift
  [ -f "$REFACTOR_TASKS" ] || { echo "no $REFACTOR_TASKS: run \`bench/eval.sh refactor-gen\` first" >&2; exit 2; }
  echo "== refactor $method -> $OUT/refactor-rows-$method.jsonl"
  "$BIN" run-refactor --tasks "$REFACTOR_TASKS" --methods "$method" \
    --rows "$OUT/refactor-rows-$method.jsonl" --resume --no-report --out-dir "$OUT" \
    --max-iterations "$REFACTOR_MAX_ITERATIONS" --max-wall-secs "$REFACTOR_MAX_WALL_SECS" \
    --trajectories "${TRAJECTORIES:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-lsp/eval-trajectories}" "$@"
}

do_refactor_report() {
  shopt -s nullglob
  local rows=("$OUT"/refactor-rows-*.jsonl)
  [ ${#rows[@]} -gt 0 ] || { echo "no $OUT/refactor-rows-*.jsonl yet" >&2; exit 2; }
  "$BIN" report-refactor --json "${rows[@]}" --out-dir "$OUT"
  echo "report: $OUT/refactor-report.md"
}

cmd="${1:-all}"
[ $# -gt 0 ] && shift
case "$cmd" in
  gen)
    binary
    do_gen
    ;;
  run)
    [ $# -ge 2 ] || { echo "usage: bench/eval.sh run SIZE METHOD [rlm-eval run arguments]" >&2; exit 2; }
    binary
    do_run "$@"
    ;;
  report)
    binary
    do_report
    ;;
  all)
    binary
    [ -f "$TASKS" ] || do_gen
    for s in $SIZES; do
      for d in $DIRECT_SIZES; do
        if [ "$d" = "$s" ]; then do_run "$s" direct "$@"; fi
      done
      for m in $METHODS; do do_run "$s" "$m" "$@"; done
    done
    do_report
    ;;
  refactor-gen)
    binary
    do_refactor_gen
    ;;
  refactor-run)
    [ $# -ge 1 ] || { echo "usage: bench/eval.sh refactor-run METHOD [rlm-eval run-refactor arguments]" >&2; exit 2; }
    binary
    do_refactor_run "$@"
    ;;
  refactor-report)
    binary
    do_refactor_report
    ;;
  *)
    echo "usage: bench/eval.sh [gen | run SIZE METHOD [args] | report | all [args] | refactor-gen | refactor-run METHOD [args] | refactor-report]" >&2
    exit 2
    ;;
esac
