//! The `rlm-lsp` command line: `ask` a question of a workspace, `index` to see what it holds.
//! Hidden subcommands run the REPL worker and the local-model keeper (the same binary, re-executed).
#![allow(clippy::print_stdout, clippy::print_stderr)] // the edge: this is where output goes

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rlm_lsp::config::ModelSettings;
use rlm_lsp::engine::{Engine, Event, RunReport};
use rlm_lsp::repl::ContextBlob;
use rlm_lsp::workspace::{self, WalkOptions};
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "rlm-lsp",
    version,
    about = "Ask questions of a whole codebase with Recursive Language Models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer a question about a workspace; prints Markdown, then a one-line summary.
    Ask(AskArgs),
    /// Walk a workspace and print what would be indexed and what is skipped, with reasons.
    Index(IndexArgs),
}

#[derive(clap::Args)]
struct WalkArgs {
    /// The workspace root
    #[arg(long, short = 'w', default_value = ".")]
    workspace: PathBuf,
    /// Skip files larger than this many bytes
    #[arg(long, default_value_t = WalkOptions::default().max_file_bytes)]
    max_file_bytes: u64,
    /// Stop indexing after this many bytes in total
    #[arg(long, default_value_t = WalkOptions::default().max_total_bytes)]
    max_total_bytes: u64,
    /// Include hidden files and directories
    #[arg(long)]
    hidden: bool,
    /// Do not honour .gitignore and .ignore files
    #[arg(long)]
    no_ignore: bool,
}

impl WalkArgs {
    fn options(&self) -> WalkOptions {
        WalkOptions {
            max_file_bytes: self.max_file_bytes,
            max_total_bytes: self.max_total_bytes,
            include_hidden: self.hidden,
            respect_gitignore: !self.no_ignore,
        }
    }
}

#[derive(clap::Args)]
struct AskArgs {
    /// The question
    question: String,
    #[command(flatten)]
    walk: WalkArgs,
    #[command(flatten)]
    models: ModelSettings,
    /// Root-model turns before the run must answer
    #[arg(long, env = "RLM_MAX_ITERATIONS", default_value_t = 20)]
    max_iterations: u32,
    /// Seconds one code cell may run before its worker is killed
    #[arg(long, default_value_t = 60)]
    cell_timeout: u64,
    /// Print one JSON object (the answer in `answer`) instead of Markdown and a summary
    #[arg(long)]
    json: bool,
    /// Write the run as JSONL: root messages, code cells with full output, sub-calls
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Do not print progress to stderr
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(clap::Args)]
struct IndexArgs {
    #[command(flatten)]
    walk: WalkArgs,
    /// Print the statistics as JSON
    #[arg(long)]
    json: bool,
}

fn main() {
    // The hidden entry points come first: they must not parse the user-facing CLI.
    // args_os: keeper arguments are paths, which need not be UTF-8 (std::env::args would panic).
    let mut args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    match args.next().as_deref() {
        Some(rlm_lsp::repl::WORKER_SUBCOMMAND) => std::process::exit(rlm_lsp::repl::worker_main()),
        Some(rlm_lsp::llm::local::KEEPER_SUBCOMMAND) => {
            std::process::exit(rlm_lsp::llm::local::keeper_main(args.collect()))
        }
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RLM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Index(a) => index(a),
        Command::Ask(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(ask(a))),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn index(a: IndexArgs) -> anyhow::Result<()> {
    let snap = workspace::walk(&a.walk.workspace, &a.walk.options())?;
    let stats = &snap.stats;
    if a.json {
        println!("{}", serde_json::to_string_pretty(stats)?);
        return Ok(());
    }
    println!("workspace: {}", snap.root.display());
    println!(
        "indexed: {} files, {} bytes",
        stats.files_indexed, stats.bytes_indexed
    );
    println!(
        "decoded lossily (invalid UTF-8): {}",
        stats.lossy_utf8.len()
    );
    for p in &stats.lossy_utf8 {
        println!("  {p}");
    }
    println!("skipped: {}", stats.skipped.len());
    for s in &stats.skipped {
        println!("  {}: {}", s.path, s.reason);
    }
    Ok(())
}

async fn ask(a: AskArgs) -> anyhow::Result<()> {
    let snap = workspace::walk(&a.walk.workspace, &a.walk.options())?;
    if snap.files.is_empty() {
        anyhow::bail!(
            "workspace {} has no text files to ask about ({} skipped; see `rlm-lsp index --workspace {}`)",
            snap.root.display(),
            snap.stats.skipped.len(),
            a.walk.workspace.display()
        );
    }
    let mut trajectory = match &a.trajectory {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    if !a.quiet {
        eprintln!(
            "rlm-lsp: {} files, {} bytes; starting the model...",
            snap.files.len(),
            snap.total_bytes()
        );
    }
    let resolved = a.models.resolve().await?;
    let mut cfg = resolved.engine_config(a.max_iterations);
    cfg.repl.cell_timeout = std::time::Duration::from_secs(a.cell_timeout.max(1));
    let blob = ContextBlob::write(&snap)?;
    let engine = Engine::new(resolved.models.clone(), cfg);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let run = engine.run(&snap, blob, &a.question, Some(tx));
    tokio::pin!(run);
    let quiet = a.quiet;
    // Events are written as they happen, so an interrupted run still leaves its trajectory.
    let mut on_event = |e: &Event| -> anyhow::Result<()> {
        if let Some(w) = trajectory.as_mut() {
            serde_json::to_writer(&mut *w, e)?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
        if !quiet {
            progress(e);
        }
        Ok(())
    };
    let report: RunReport = loop {
        tokio::select! {
            Some(e) = rx.recv() => on_event(&e)?,
            r = &mut run => {
                while let Ok(e) = rx.try_recv() { on_event(&e)?; }
                break r?;
            }
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the REPL worker was stopped"),
        }
    };
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(p) = &a.trajectory {
            v["trajectory"] = serde_json::Value::String(p.display().to_string());
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{}\n\n{}", report.answer.trim_end(), summary(&report));
    }
    Ok(())
}

fn progress(e: &Event) {
    match e {
        Event::RootMessage {
            iteration,
            role: rlm_lsp::llm::Role::Assistant,
            latency_ms: Some(ms),
            ..
        } => eprintln!(
            "rlm-lsp: turn {iteration}: root model replied in {:.1} s",
            *ms as f64 / 1000.0
        ),
        Event::CodeCell {
            iteration,
            output_bytes,
            error,
            duration_ms,
            ..
        } => eprintln!(
            "rlm-lsp: turn {iteration}: ran code in {duration_ms} ms, {output_bytes} bytes of output{}",
            if error.is_some() { " (it raised)" } else { "" }
        ),
        _ => {}
    }
}

fn summary(r: &RunReport) -> String {
    let models = r
        .usage
        .iter()
        .map(|u| {
            format!(
                "{} {}: {} prompt + {} completion tokens",
                u.role, u.model, u.usage.prompt_tokens, u.usage.completion_tokens
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} iterations, {} sub-calls, {models}, {:.1} s{}",
        r.iterations,
        r.sub_calls,
        r.wall.as_secs_f64(),
        if r.best_effort {
            " (best effort: no FINAL before the turns ran out)"
        } else {
            ""
        }
    )
}
