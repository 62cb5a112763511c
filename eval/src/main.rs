//! `rlm-eval`: generate tasks with computed ground truth, run them with several methods on one
//! model, and write a report (docs/eval.md). Hidden subcommands run the REPL worker and the
//! local-model keeper, as in `rlm-lsp` (the engine re-executes the current binary).
#![allow(clippy::print_stdout, clippy::print_stderr)] // the edge: this is where output goes

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rlm_eval::generate::{self, Corpus};
use rlm_eval::harness::{self, Row};
use rlm_eval::methods::{Method, MethodOptions, Methods};
use rlm_eval::report::{Meta, Report};
use rlm_eval::task::{self, WorkspaceSpec};
use rlm_lsp::session::{RunSettings, Runner};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "rlm-eval",
    about = "Evaluate RLM against direct prompting and retrieval on tasks with computed ground truth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate tasks (JSONL) over workspaces made of crates or directories.
    Gen(GenArgs),
    /// Run tasks with methods and write report.json, report.md and score_vs_size.png.
    Run(Box<RunArgs>),
    /// Re-render report.md, report.json and score_vs_size.png from report.json or rows files.
    Report(ReportArgs),
    /// Score stored answers again (after a change to the scorers or the answer parsing), without
    /// calling any model, and rewrite the report.
    Rescore(RescoreArgs),
    /// Generate refactor tasks (renames, a signature change) from crates, checked with builds.
    GenRefactor(GenRefactorArgs),
    /// Plan refactor tasks with the engine (with and without the check-and-repair loop), score
    /// the plans with the crate's build, and write refactor-report.{md,json}.
    RunRefactor(Box<RunRefactorArgs>),
    /// Re-render refactor-report.{md,json} from refactor rows files.
    ReportRefactor(ReportArgs),
    /// The check command of the refactor tasks: strip the manifest of the crate copy in the
    /// current directory and run `cargo check --offline` there.
    #[command(hide = true)]
    CheckCrate(CheckCrateArgs),
}

#[derive(clap::Args)]
struct GenRefactorArgs {
    /// `[SIZE=]` then comma-separated crates `name@version` (or directories); each crate in turn
    /// is the one edited, the others are read-only roots of its workspace (repeatable)
    #[arg(long = "workspace", required = true)]
    workspaces: Vec<String>,
    /// Tasks of each kind per crate
    #[arg(long, default_value_t = 1)]
    per_kind: usize,
    /// Rename tasks per crate whose name is also a field (a whole-word replace over-edits)
    #[arg(long, default_value_t = 1)]
    over_edit: usize,
    /// Kinds (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rename-fn,rename-type,rename-const,signature"
    )]
    kinds: Vec<String>,
    /// Skip the builds that check each task (the unedited crate, the ideal edit, the
    /// definition alone)
    #[arg(long)]
    no_verify: bool,
    /// Seconds one check may run
    #[arg(long, default_value_t = 600)]
    check_timeout: u64,
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RunRefactorArgs {
    /// Refactor task file (JSONL, from `rlm-eval gen-refactor`)
    #[arg(long)]
    tasks: PathBuf,
    /// Methods (comma-separated): refactor, refactor-no-check
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "refactor,refactor-no-check"
    )]
    methods: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Write each run's trajectory to DIR/TASK-METHOD.jsonl
    #[arg(long)]
    trajectories: Option<PathBuf>,
    /// Where refactor-report.{md,json} go
    #[arg(long, default_value = "eval-out")]
    out_dir: PathBuf,
    /// The rows file [default: OUT_DIR/refactor-rows.jsonl]
    #[arg(long)]
    rows: Option<PathBuf>,
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    no_report: bool,
    /// Every setting of `rlm-lsp ask`; `--check-timeout-secs` (`--check-timeout`) bounds the
    /// engine's and the scorer's `cargo check`, `--check-repairs` (`--repairs`) the times a plan
    /// may go back to the model (the check command is the crate's own)
    #[command(flatten)]
    settings: EvalSettings,
    #[arg(long, default_value_t = 1024)]
    rlm_max_tokens: u32,
}

// The settings of `rlm-lsp ask` (every flag and `RLM_*` variable), with the evaluation's
// defaults: 8 turns and 600 s a run, no sub-call or cost limit, child runs one deep. (A plain
// comment: a doc comment here would become the subcommand's description.)
#[derive(clap::Args)]
#[command(
    mut_arg("max_iterations", |a| a.default_value("8")),
    mut_arg("max_wall_secs", |a| a.default_value("600")),
    mut_arg("max_sub_calls", |a| a.default_value("0")),
    mut_arg("max_cost", |a| a.default_value("0")),
    mut_arg("max_depth", |a| a.default_value("1")),
    mut_arg("check_timeout_secs", |a| a.visible_alias("check-timeout")),
    mut_arg("check_repairs", |a| a.visible_alias("repairs")),
)]
struct EvalSettings {
    #[command(flatten)]
    run: RunSettings,
}

#[derive(clap::Args)]
struct CheckCrateArgs {
    /// CARGO_TARGET_DIR of the check
    #[arg(long)]
    target_dir: PathBuf,
    /// Check with the default features (else with every feature the stripped manifest keeps)
    #[arg(long)]
    default_features: bool,
}

#[derive(clap::Args)]
struct RescoreArgs {
    /// The task file the run used
    #[arg(long)]
    tasks: PathBuf,
    /// report.json or rows JSONL files written by `rlm-eval run` (several: merged)
    #[arg(long, num_args = 1.., required = true)]
    json: Vec<PathBuf>,
    #[arg(long)]
    out_dir: PathBuf,
}

#[derive(clap::Args)]
struct GenArgs {
    /// A workspace: `[SIZE=]` then comma-separated roots, each `name@version[/subdir]` (a crate
    /// `cargo fetch` unpacked) or a directory (repeatable); SIZE names its size class (`100k`)
    #[arg(long = "workspace", required = true)]
    workspaces: Vec<String>,
    /// Tasks of each kind per workspace
    #[arg(long, default_value_t = 1)]
    per_kind: usize,
    /// Kinds to generate (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "needle_function,call_sites,implementors,aggregate,pairs,count_files,top_dir,planted_behaviour"
    )]
    kinds: Vec<String>,
    /// Output JSONL file
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Task file (JSONL, from `rlm-eval gen`)
    #[arg(long)]
    tasks: PathBuf,
    /// Write each RLM run's trajectory to DIR/TASK-METHOD.jsonl
    #[arg(long)]
    trajectories: Option<PathBuf>,
    /// Methods (comma-separated): rlm, rlm-no-subcalls, rlm-no-recipes, rlm-no-evidence,
    /// direct, retrieval
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rlm,rlm-no-subcalls,direct,retrieval"
    )]
    methods: Vec<String>,
    /// Only tasks of these kinds
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Only tasks of these size classes (`100k,1m`: the names given to `gen --workspace`)
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Only these task ids
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Where report.json, report.md, score_vs_size.png and rows.jsonl (live progress) go
    #[arg(long, default_value = "eval-out")]
    out_dir: PathBuf,
    /// The rows file, one JSON line per finished row [default: OUT_DIR/rows.jsonl]
    #[arg(long)]
    rows: Option<PathBuf>,
    /// Keep the rows already in the rows file and run only the missing (task, method) pairs
    #[arg(long)]
    resume: bool,
    /// Write only the rows file (a part of a run in parts; `rlm-eval report --json` merges them)
    #[arg(long)]
    no_report: bool,
    /// Every setting of `rlm-lsp ask`, with the evaluation's defaults
    #[command(flatten)]
    settings: EvalSettings,
    /// The model's context window in tokens [default: one slot of the local server (its
    /// context / parallel slots), else 128000]
    #[arg(long)]
    window_tokens: Option<u64>,
    /// The window the direct method fills [default: --window-tokens]; prefill is slow on a CPU
    #[arg(long)]
    direct_window_tokens: Option<u64>,
    /// Tokens of BM25 chunks in the retrieval prompt
    #[arg(long, default_value_t = 4000)]
    retrieval_tokens: u64,
    /// max_tokens of a direct or retrieval answer
    #[arg(long, default_value_t = 256)]
    answer_max_tokens: u32,
    /// max_tokens of every RLM root call and sub-call
    #[arg(long, default_value_t = 1024)]
    rlm_max_tokens: u32,
    /// Characters per token assumed when cutting prompts to a token budget
    #[arg(long, default_value_t = 3.5)]
    prompt_chars_per_token: f64,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// report.json files written by `rlm-eval run`, or rows JSONL files (an interrupted run, or
    /// the parts of a run in parts: `--json docs/eval/rows-*.jsonl`); several are merged, a later
    /// row for the same task and method replacing an earlier one
    #[arg(long, num_args = 1.., required = true)]
    json: Vec<PathBuf>,
    #[arg(long)]
    out_dir: PathBuf,
}

fn main() {
    // The engine re-executes this binary as its REPL worker and the local model's keeper.
    if let Some(code) = rlm_lsp::hidden_subcommand() {
        std::process::exit(code);
    }
    rlm_lsp::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gen(a) => gen_tasks(a),
        Command::Run(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(*a))),
        Command::Report(a) => rerender(&a.json, &a.out_dir, None),
        Command::Rescore(a) => rescore(a),
        Command::GenRefactor(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(gen_refactor(a))),
        Command::RunRefactor(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run_refactor(*a))),
        Command::ReportRefactor(a) => report_refactor(&a.json, &a.out_dir),
        Command::CheckCrate(a) => {
            let s = rlm_eval::crate_check::CheckSettings {
                target_dir: a.target_dir,
                all_features: !a.default_features,
                timeout: std::time::Duration::from_secs(3600),
            };
            match rlm_eval::crate_check::check_here(&s) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn gen_tasks(a: GenArgs) -> anyhow::Result<()> {
    let kinds: Vec<&str> = a.kinds.iter().map(String::as_str).collect();
    for k in &kinds {
        anyhow::ensure!(
            generate::KINDS.contains(k),
            "unknown kind {k}: use {}",
            generate::KINDS.join(", ")
        );
    }
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for w in &a.workspaces {
        let (size, w) = match w.split_once('=') {
            Some((s, w)) => (s.trim(), w),
            None => ("", w.as_str()),
        };
        let spec = WorkspaceSpec::parse(w);
        let started = Instant::now();
        let snap = harness::walk(&spec)?;
        let texts: Vec<(&str, &str)> = snap
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect();
        let corpus = Corpus::new(&texts);
        let tasks = generate::generate_sized(&spec, &corpus, &kinds, a.per_kind, size);
        let planted_tokens = tasks.first().map_or(corpus.size_tokens, |t| t.size_tokens);
        eprintln!(
            "rlm-eval: {}{}: {} files, about {} tokens (characters / 4): {} tasks ({:.0} s)",
            if size.is_empty() {
                String::new()
            } else {
                format!("{size} = ")
            },
            spec.label(),
            snap.files.len(),
            rlm_eval::report::group_digits(planted_tokens),
            tasks.len(),
            started.elapsed().as_secs_f64()
        );
        let label = if size.is_empty() {
            spec.label()
        } else {
            size.to_string()
        };
        sizes.push((label, planted_tokens, snap.files.len()));
        all.extend(tasks);
    }
    task::write_tasks(&a.out, &all)?;
    // Tasks per kind and size.
    print!("{:<18}", "kind");
    for (s, _, _) in &sizes {
        print!(" {s:>10}");
    }
    println!();
    for k in &kinds {
        print!("{k:<18}");
        for (s, _, _) in &sizes {
            let n = all
                .iter()
                .filter(|t| {
                    t.kind == *k
                        && (t.size == *s || (t.size.is_empty() && t.workspace.label() == *s))
                })
                .count();
            print!(" {n:>10}");
        }
        println!();
    }
    print!("{:<18}", "tokens (est.)");
    for (_, t, _) in &sizes {
        print!(" {:>10}", rlm_eval::report::group_digits(*t));
    }
    println!();
    print!("{:<18}", "files");
    for (_, _, f) in &sizes {
        print!(" {f:>10}");
    }
    println!();
    println!("{} tasks written to {}", all.len(), a.out.display());
    Ok(())
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let started_at = utc_now();
    let methods: Vec<Method> = a
        .methods
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let mut tasks = task::read_tasks(&a.tasks)?;
    if !a.kinds.is_empty() {
        tasks.retain(|t| a.kinds.contains(&t.kind));
    }
    if !a.sizes.is_empty() {
        tasks.retain(|t| a.sizes.contains(&t.size));
    }
    if !a.ids.is_empty() {
        tasks.retain(|t| a.ids.contains(&t.id));
    }
    anyhow::ensure!(
        !tasks.is_empty(),
        "no tasks to run in {}",
        a.tasks.display()
    );
    eprintln!(
        "rlm-eval: {} tasks × {} methods; resolving the model...",
        tasks.len(),
        methods.len()
    );
    let settings = &a.settings.run;
    let runner = Runner::resolve(settings).await?;
    let window = a.window_tokens.unwrap_or_else(|| {
        if runner.is_local() {
            rlm_lsp::llm::local::LocalServerConfig::from_env()
                .map(|c| u64::from(c.ctx_size / c.parallel.max(1)))
                .unwrap_or(16_384)
        } else {
            128_000
        }
    });
    let opts = MethodOptions {
        window_tokens: window,
        direct_window_tokens: a.direct_window_tokens.unwrap_or(window).min(window),
        retrieval_tokens: a.retrieval_tokens,
        answer_max_tokens: a.answer_max_tokens,
        rlm_max_tokens: a.rlm_max_tokens,
        prompt_chars_per_token: a.prompt_chars_per_token,
    };
    let mut m = Methods::from_runner(&runner, opts.clone(), settings.models.max_retries).await?;
    m.trajectories = a.trajectories.clone();
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let rows_path = a
        .rows
        .clone()
        .unwrap_or_else(|| a.out_dir.join("rows.jsonl"));
    if let Some(dir) = rows_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A resumed run keeps the rows it has and appends the missing ones.
    let kept: Vec<Row> = if a.resume && rows_path.exists() {
        read_rows(&rows_path)?
    } else {
        Vec::new()
    };
    // A row counts as done when its question is this task's (rows of a regenerated task with
    // the same id are run again; older rows without a fingerprint are trusted).
    let hashes: std::collections::HashMap<&str, String> = tasks
        .iter()
        .map(|t| (t.id.as_str(), harness::question_hash(&t.question)))
        .collect();
    let done_pairs: std::collections::BTreeSet<(String, Method)> = kept
        .iter()
        .filter(|r| {
            r.question_hash.is_empty() || hashes.get(r.task_id.as_str()) == Some(&r.question_hash)
        })
        .map(|r| (r.task_id.clone(), r.method))
        .collect();
    let mut live = std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume)
        .write(true)
        .truncate(!a.resume)
        .open(&rows_path)
        .with_context(|| format!("creating {}", rows_path.display()))?;
    let total = tasks
        .iter()
        .flat_map(|t| methods.iter().map(move |me| (t.id.clone(), *me)))
        .filter(|p| !done_pairs.contains(p))
        .count();
    if !kept.is_empty() {
        eprintln!(
            "rlm-eval: resuming: {} rows already in {}, {total} to run",
            kept.len(),
            rows_path.display()
        );
    }
    let mut done = 0;
    let rows = harness::run_skipping(&tasks, &methods, &m, &done_pairs, |r: &Row| {
        done += 1;
        let _ = serde_json::to_writer(&mut live, r);
        let _ = live.write_all(b"\n");
        let _ = live.flush();
        eprintln!(
            "rlm-eval: [{done}/{total}] {} {} score {:.2}, {}+{} tokens, {:.1} s{}{}{}",
            r.task_id,
            r.method.as_str(),
            r.score,
            r.prompt_tokens,
            r.completion_tokens,
            r.wall_ms as f64 / 1000.0,
            if r.truncated { ", truncated" } else { "" },
            if r.overflow { ", overflow" } else { "" },
            r.error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
    })
    .await?;
    if a.no_report {
        println!("{} rows written to {}", rows.len(), rows_path.display());
        return Ok(());
    }
    let wanted: std::collections::BTreeSet<(String, Method)> = tasks
        .iter()
        .flat_map(|t| methods.iter().map(move |me| (t.id.clone(), *me)))
        .collect();
    let valid = |r: &Row| {
        r.question_hash.is_empty() || hashes.get(r.task_id.as_str()) == Some(&r.question_hash)
    };
    let kept: Vec<Row> = kept
        .into_iter()
        .filter(|r| wanted.contains(&(r.task_id.clone(), r.method)) && valid(r))
        .collect();
    let (rows, _) = rlm_eval::report::merge_rows(vec![kept, rows]);
    let meta = Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started: started_at,
        model: runner.models().root.endpoint().model.clone(),
        base_url: runner.models().root.endpoint().base_url.clone(),
        methods,
        settings: serde_json::json!({
            "window_tokens": opts.window_tokens,
            "direct_window_tokens": opts.direct_window_tokens,
            "retrieval_tokens": opts.retrieval_tokens,
            "answer_max_tokens": opts.answer_max_tokens,
            "rlm_max_tokens": opts.rlm_max_tokens,
            "prompt_chars_per_token": opts.prompt_chars_per_token,
            "max_iterations": settings.limits.max_iterations,
            "max_wall_secs": settings.limits.max_wall_secs,
            "local_model": runner.is_local(),
            "tasks_file": a.tasks.display().to_string(),
        }),
        wall_s: started.elapsed().as_secs_f64(),
    };
    let report = Report::new(meta, rows);
    report.write(&a.out_dir)?;
    println!(
        "report written to {} (report.md, report.json, score_vs_size.png)",
        a.out_dir.display()
    );
    Ok(())
}

fn rescore(a: RescoreArgs) -> anyhow::Result<()> {
    let tasks = task::read_tasks(&a.tasks)?;
    let by_id: std::collections::HashMap<&str, &task::Task> =
        tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut corpora: std::collections::HashMap<WorkspaceSpec, Corpus> = Default::default();
    let rescore = |rows: &mut Vec<Row>| -> anyhow::Result<()> {
        for r in rows.iter_mut() {
            let t = by_id
                .get(r.task_id.as_str())
                .with_context(|| format!("task {} is not in {}", r.task_id, a.tasks.display()))?;
            if !corpora.contains_key(&t.workspace) {
                let snap = harness::walk(&t.workspace)?;
                let texts: Vec<(&str, &str)> = snap
                    .files
                    .iter()
                    .map(|f| (f.path.as_str(), f.text.as_str()))
                    .collect();
                corpora.insert(t.workspace.clone(), Corpus::new(&texts));
            }
            let c = &corpora[&t.workspace];
            let s = rlm_eval::score::score(t, &r.answer, &c.paths, &c.known_names());
            r.score = s.score;
            r.score_detail = s.detail;
            r.size = t.size.clone();
            r.unknown_paths = Some(rlm_eval::answer::unknown_paths(
                rlm_eval::answer::without_banner(&r.answer),
                &c.paths,
            ));
        }
        Ok(())
    };
    rerender(&a.json, &a.out_dir, Some(Box::new(rescore)))
}

type RowFix<'a> = Box<dyn FnOnce(&mut Vec<Row>) -> anyhow::Result<()> + 'a>;

/// Rows of a rows JSONL file (one row per line; blank lines skipped).
fn read_rows(path: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// Rebuilds a report from report.json files and rows JSONL files (merged: a later row for the
/// same task and method replaces an earlier one), optionally fixing the rows first.
fn rerender(
    files: &[PathBuf],
    out_dir: &std::path::Path,
    fix: Option<RowFix>,
) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Partial {
        meta: serde_json::Value,
        rows: Vec<serde_json::Value>,
    }
    let mut parts = Vec::new();
    let mut meta = serde_json::Value::Null;
    let mut wall_s = 0.0;
    for path in files {
        // rows JSONL (written as rows finish) rebuilds a report of an interrupted run or of a run
        // in parts.
        if path.extension().is_some_and(|e| e == "jsonl") {
            let rows = read_rows(path)?;
            wall_s += rows.iter().map(|r| r.wall_ms as f64 / 1000.0).sum::<f64>();
            parts.push(rows);
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let p: Partial = serde_json::from_str(&text)?;
            wall_s += p.meta["wall_s"].as_f64().unwrap_or_default();
            if meta.is_null() {
                meta = p.meta;
            }
            parts.push(serde_json::from_value(serde_json::Value::Array(p.rows))?);
        }
    }
    let (mut rows, replaced) = rlm_eval::report::merge_rows(parts);
    if replaced > 0 {
        eprintln!("rlm-eval: {replaced} rows replaced by later rows for the same task and method");
    }
    if let Some(fix) = fix {
        fix(&mut rows)?;
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let command = match (files.len(), meta["command"].as_str()) {
        (1, Some(c)) => c.to_string(),
        _ => format!("(rebuilt from {})", names.join(" ")),
    };
    let meta = Meta {
        command,
        started: meta["started"].as_str().unwrap_or_default().to_string(),
        model: meta["model"].as_str().unwrap_or_default().to_string(),
        base_url: meta["base_url"].as_str().unwrap_or_default().to_string(),
        methods: rows
            .iter()
            .map(|r| r.method)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        settings: meta["settings"].clone(),
        wall_s,
    };
    Report::new(meta, rows).write(out_dir)?;
    println!("report re-rendered in {}", out_dir.display());
    Ok(())
}

async fn gen_refactor(a: GenRefactorArgs) -> anyhow::Result<()> {
    use rlm_eval::refactor::{self, GenOptions};
    let kinds: Vec<&str> = a.kinds.iter().map(String::as_str).collect();
    for k in &kinds {
        anyhow::ensure!(
            refactor::KINDS.contains(k),
            "unknown refactor kind {k}: use {}",
            refactor::KINDS.join(", ")
        );
    }
    let opts = GenOptions {
        per_kind: a.per_kind,
        over_edit: a.over_edit,
        verify: !a.no_verify,
        check_timeout: std::time::Duration::from_secs(a.check_timeout),
        ..GenOptions::default()
    };
    let mut all = Vec::new();
    let mut lines = Vec::new();
    for w in &a.workspaces {
        let (size, w) = match w.split_once('=') {
            Some((s, w)) => (s.trim(), w),
            None => ("", w.as_str()),
        };
        let spec = WorkspaceSpec::parse(w);
        for i in 0..spec.roots.len() {
            // Crate i is edited; the others are read-only.
            let mut roots = vec![spec.roots[i].clone()];
            roots.extend(
                spec.roots
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r.clone()),
            );
            let one = WorkspaceSpec::new(roots);
            let started = Instant::now();
            let (tasks, report) = refactor::generate(&one, size, &kinds, &opts).await?;
            let checks = &report.check_ms;
            eprintln!(
                "rlm-eval: {}: {} tasks ({:.0} s); candidates {:?}; unedited check {}; edited checks {}{}{}",
                report.crate_label,
                tasks.len(),
                started.elapsed().as_secs_f64(),
                report.candidates,
                report.unedited_ms.map_or("not run".into(), |ms| format!(
                    "{:.1} s",
                    ms as f64 / 1000.0
                )),
                if checks.is_empty() {
                    "none".to_string()
                } else {
                    format!(
                        "{} x {:.1} s mean",
                        checks.len(),
                        checks.iter().sum::<u64>() as f64 / checks.len() as f64 / 1000.0
                    )
                },
                if report.all_features {
                    ""
                } else {
                    " (default features)"
                },
                report
                    .error
                    .as_deref()
                    .map(|e| format!("; error: {e}"))
                    .unwrap_or_default()
            );
            for r in &report.rejected {
                eprintln!("rlm-eval:   rejected {r}");
            }
            for t in &tasks {
                lines.push(format!(
                    "{:<40} {:>3} sites in {:>2} files{}  {}",
                    t.id,
                    t.truth.sites.len(),
                    t.truth.files,
                    if t.over_edit() {
                        format!(", {} other occurrences (over-edit)", t.truth.others.len())
                    } else {
                        String::new()
                    },
                    t.instruction
                ));
            }
            all.extend(tasks);
        }
    }
    refactor::write_tasks(&a.out, &all)?;
    for l in &lines {
        println!("{l}");
    }
    for k in &kinds {
        println!(
            "{k:<14} {:>3} tasks",
            all.iter().filter(|t| t.kind == *k).count()
        );
    }
    println!(
        "{} refactor tasks written to {}",
        all.len(),
        a.out.display()
    );
    Ok(())
}

async fn run_refactor(a: RunRefactorArgs) -> anyhow::Result<()> {
    use rlm_eval::refactor_run::{self, RefactorMethod, RefactorOptions, RefactorRow};
    let methods: Vec<RefactorMethod> = a
        .methods
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let mut tasks = rlm_eval::refactor::read_tasks(&a.tasks)?;
    if !a.kinds.is_empty() {
        tasks.retain(|t| a.kinds.contains(&t.kind));
    }
    if !a.sizes.is_empty() {
        tasks.retain(|t| a.sizes.contains(&t.size));
    }
    if !a.ids.is_empty() {
        tasks.retain(|t| a.ids.contains(&t.id));
    }
    anyhow::ensure!(
        !tasks.is_empty(),
        "no tasks to run in {}",
        a.tasks.display()
    );
    eprintln!(
        "rlm-eval: {} refactor tasks × {} methods; resolving the model...",
        tasks.len(),
        methods.len()
    );
    let settings = &a.settings.run;
    let resolved = Runner::resolve(settings).await?;
    let retries = settings.models.max_retries;
    let models = rlm_lsp::engine::Models {
        root: rlm_eval::methods::with_max_tokens(
            &resolved.models().root,
            a.rlm_max_tokens,
            retries,
        ),
        sub: rlm_eval::methods::with_max_tokens(&resolved.models().sub, a.rlm_max_tokens, retries),
        child_root: None,
    };
    // Measurements are not served from the response cache: the same models, uncached.
    let runner = Runner::from_models(models, resolved.config().clone());
    let opts = RefactorOptions {
        check_exe: std::env::current_exe().context("finding this executable")?,
        check_timeout: std::time::Duration::from_secs(settings.check.check_timeout_secs),
        repairs: settings.check.check_repairs,
        target_root: rlm_eval::crate_check::default_target_root(),
        trajectories: a.trajectories.clone(),
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let rows_path = a
        .rows
        .clone()
        .unwrap_or_else(|| a.out_dir.join("refactor-rows.jsonl"));
    if let Some(dir) = rows_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let kept: Vec<RefactorRow> = if a.resume && rows_path.exists() {
        read_jsonl(&rows_path)?
    } else {
        Vec::new()
    };
    let hashes: std::collections::HashMap<&str, String> = tasks
        .iter()
        .map(|t| (t.id.as_str(), refactor_run::question_hash(t)))
        .collect();
    let done: std::collections::BTreeSet<(String, RefactorMethod)> = kept
        .iter()
        .filter(|r| hashes.get(r.task_id.as_str()) == Some(&r.question_hash))
        .map(|r| (r.task_id.clone(), r.method))
        .collect();
    let mut live = std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume)
        .write(true)
        .truncate(!a.resume)
        .open(&rows_path)
        .with_context(|| format!("creating {}", rows_path.display()))?;
    let total = tasks.len() * methods.len() - done.len().min(tasks.len() * methods.len());
    let mut n = 0;
    let rows = refactor_run::run(&tasks, &methods, &runner, &opts, &done, |r: &RefactorRow| {
        n += 1;
        let _ = serde_json::to_writer(&mut live, r);
        let _ = live.write_all(b"\n");
        let _ = live.flush();
        eprintln!(
            "rlm-eval: [{n}/{total}] {} {} score {:.1} ({}), {} checks, {} repairs, {}+{} tokens, {:.1} s{}",
            r.task_id,
            r.method.as_str(),
            r.score,
            r.score_detail,
            r.checks,
            r.repairs,
            r.prompt_tokens,
            r.completion_tokens,
            r.wall_ms as f64 / 1000.0,
            r.error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
    })
    .await?;
    drop(resolved);
    if a.no_report {
        println!("{} rows written to {}", rows.len(), rows_path.display());
        return Ok(());
    }
    let (rows, _) = refactor_run::merge_rows(vec![kept, rows]);
    refactor_run::write_report(&rows, &a.out_dir, "")?;
    println!(
        "report written to {} (refactor-report.md, refactor-report.json)",
        a.out_dir.display()
    );
    Ok(())
}

fn report_refactor(files: &[PathBuf], out_dir: &std::path::Path) -> anyhow::Result<()> {
    use rlm_eval::refactor_run;
    let mut parts = Vec::new();
    for f in files {
        parts.push(read_jsonl(f)?);
    }
    let (rows, replaced) = refactor_run::merge_rows(parts);
    if replaced > 0 {
        eprintln!("rlm-eval: {replaced} rows replaced by later rows for the same task and method");
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    refactor_run::write_report(
        &rows,
        out_dir,
        &format!("Rebuilt from {}.", names.join(", ")),
    )?;
    println!("refactor report written to {}", out_dir.display());
    Ok(())
}

/// Rows of a JSONL file (blank lines skipped).
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM UTC`, without a date crate.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let days = (secs / 86_400) as i64;
    let (h, mi) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run` and `run-refactor` take every setting of `rlm-lsp ask`, with the evaluation's
    /// defaults, and the names the evaluation's docs use.
    #[test]
    fn runs_take_the_settings_of_ask_with_the_evaluations_defaults() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Run(a) => a.settings.run,
            Command::RunRefactor(a) => a.settings.run,
            _ => unreachable!(),
        };
        let s = parse(&["rlm-eval", "run", "--tasks", "t.jsonl", "--max-depth", "0"]);
        assert_eq!(s.limits.max_depth, 0);
        if std::env::vars().all(|(k, _)| !k.starts_with("RLM_")) {
            let l = &s.limits;
            assert_eq!((l.max_iterations, l.max_wall_secs), (8, 600));
            assert_eq!((l.max_sub_calls, l.max_cost), (0, 0.0));
        }
        let s = parse(&[
            "rlm-eval",
            "run-refactor",
            "--tasks",
            "t.jsonl",
            "--check-timeout",
            "5",
            "--repairs",
            "1",
        ]);
        assert_eq!((s.check.check_timeout_secs, s.check.check_repairs), (5, 1));
    }
}
