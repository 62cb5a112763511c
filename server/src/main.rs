//! The `rlm-lsp` command line: `ask` a question of a workspace, `index` to see what it holds.
//! Hidden subcommands run the REPL worker and the local-model keeper (the same binary, re-executed).
#![allow(clippy::print_stdout, clippy::print_stderr)] // the edge: this is where output goes

mod edit_commands;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rlm_lsp::engine::{Event, RunReport, StopReason};
use rlm_lsp::index::{IndexOptions, WorkspaceIndex};
use rlm_lsp::llm::scripted;
use rlm_lsp::session::{Answer, Roots, RunSettings, Runner, Workspace};
use rlm_lsp::workspace::{self, WalkOptions};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

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
    Ask(Box<AskArgs>),
    /// Plan a refactor: prints the plan and a unified diff (`--diff`: the diff alone), or
    /// writes the files (`--apply`) when none changed since they were read.
    Refactor(Box<edit_commands::RefactorArgs>),
    /// Explain the symbol at PATH:LINE[:COL], as hover's "Explain with RLM" does.
    Explain(Box<edit_commands::ExplainArgs>),
    /// Walk a workspace and print what would be indexed and what is skipped, with reasons.
    Index(IndexArgs),
    /// Run the language server on stdin/stdout (logs go to stderr; see docs/protocol.md).
    Serve(Box<ServeArgs>),
    /// Run an MCP server on stdin/stdout for coding agents: tools ask, explain, plan_refactor,
    /// search and definitions (see docs/agents.md).
    Mcp(Box<AgentArgs>),
    /// Run an ACP agent on stdin/stdout for Zed, JetBrains and Neovim chat clients: each prompt
    /// is a run over the session's directory (see docs/agents.md).
    Acp(Box<AgentArgs>),
}

/// What the agent servers (`mcp`, `acp`) take: the roots and every setting of `ask`.
#[derive(clap::Args)]
struct AgentArgs {
    #[command(flatten)]
    walk: WalkArgs,
    #[command(flatten)]
    settings: RunSettings,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Accepted because many clients pass it (vscode-languageclient's stdio transport); stdio
    /// is the only transport.
    #[arg(long)]
    stdio: bool,
    /// What the client's settings start from (and what a `null` setting puts back).
    #[command(flatten)]
    settings: rlm_lsp::lsp::Settings,
}

#[derive(clap::Args)]
struct WalkArgs {
    /// The workspace root
    #[arg(long, short = 'w', default_value = ".")]
    workspace: PathBuf,
    /// Another workspace root (repeatable); with several roots, paths start with the root's name
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// A read-only extra root, e.g. a dependency's sources or a site-packages (repeatable)
    #[arg(long = "extra-root", value_name = "DIR")]
    extra_roots: Vec<PathBuf>,
    /// Add the sources of the crates each root's Cargo.lock names (as `cargo fetch` unpacked them)
    #[arg(long)]
    cargo_deps: bool,
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
    /// Walks every root: the workspace, the other roots, then the read-only extra roots.
    fn walk(&self) -> anyhow::Result<workspace::Snapshot> {
        self.roots().walk()
    }

    /// The roots these flags name, as the library's front ends take them.
    fn roots(&self) -> Roots {
        Roots {
            workspace: self.workspace.clone(),
            roots: self.roots.clone(),
            extra_roots: self.extra_roots.clone(),
            cargo_deps: self.cargo_deps,
            walk: self.options(),
        }
    }

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
    run: RunFlags,
    /// Re-run a recorded trajectory (JSONL) without any model: its root replies and sub-call
    /// answers are played back, the code runs again for real
    #[arg(long, value_name = "FILE", conflicts_with_all = ["base_url", "sub_base_url"])]
    replay: Option<PathBuf>,
}

/// What every command that runs the model takes: the roots, the models, the limits, and how
/// the run is shown.
#[derive(clap::Args)]
struct RunFlags {
    #[command(flatten)]
    walk: WalkArgs,
    #[command(flatten)]
    settings: RunSettings,
    /// Print one JSON object instead of Markdown and a summary
    #[arg(long)]
    json: bool,
    /// Write the run as JSONL: root messages, code cells with full output, sub-calls
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Do not print progress to stderr
    #[arg(long, short = 'q')]
    quiet: bool,
}

impl RunFlags {
    /// Runs `work` (given the channel its events go to), writing the trajectory and the
    /// progress as events arrive; Ctrl-C stops it (dropping the run kills its worker).
    async fn drive<'a, T>(
        &self,
        work: impl FnOnce(
            tokio::sync::mpsc::UnboundedSender<Event>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = anyhow::Result<T>> + 'a>,
        >,
    ) -> anyhow::Result<T> {
        let mut trajectory = match &self.trajectory {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let run = work(tx);
        tokio::pin!(run);
        let quiet = self.quiet;
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
        loop {
            tokio::select! {
                Some(e) = rx.recv() => on_event(&e)?,
                r = &mut run => {
                    while let Ok(e) = rx.try_recv() { on_event(&e)?; }
                    return r;
                }
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the REPL worker was stopped"),
            }
        }
    }
}

#[derive(clap::Args)]
struct IndexArgs {
    #[command(flatten)]
    walk: WalkArgs,
    /// Only walk and read; skip the tree-sitter parse (definitions and chunks)
    #[arg(long)]
    no_parse: bool,
    /// Print the statistics as JSON
    #[arg(long)]
    json: bool,
}

fn main() {
    // The hidden entry points come first: they must not parse the user-facing CLI.
    if let Some(code) = rlm_lsp::hidden_subcommand() {
        std::process::exit(code);
    }
    rlm_lsp::init_logging();
    // Die quietly on a closed pipe (`rlm-lsp index | head`), as command-line tools do.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Index(a) => index(a),
        Command::Ask(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(ask(*a))),
        Command::Refactor(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(edit_commands::refactor(*a))),
        Command::Explain(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(edit_commands::explain(*a))),
        Command::Serve(a) => {
            let opts = rlm_lsp::lsp::ServerOptions {
                settings: Some(a.settings),
                ..Default::default()
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")
                .map(|rt| rt.block_on(rlm_lsp::lsp::serve_stdio(opts)))
        }
        Command::Mcp(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(rlm_lsp::mcp::serve_stdio(a.walk.roots(), a.settings))),
        Command::Acp(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(rlm_lsp::acp::serve_stdio(a.walk.roots(), a.settings))),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn index(a: IndexArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let snap = a.walk.walk()?;
    let walk_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let index = (!a.no_parse).then(|| WorkspaceIndex::build(&snap, IndexOptions::default()));
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;
    let stats = &snap.stats;
    let tokens = stats.bytes_indexed / rlm_lsp::engine::prompt::CHARS_PER_TOKEN as u64;
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &stats.skipped {
        *by_reason.entry(s.reason.kind()).or_default() += 1;
    }
    let istats = index.as_ref().map(|i| i.statistics());
    if a.json {
        let mut v = serde_json::json!({
            "roots": stats.roots,
            "files": stats.files_indexed,
            "bytes": stats.bytes_indexed,
            "tokens_estimated": tokens,
            "lossy_utf8": stats.lossy_utf8,
            "skipped_by_reason": by_reason,
            "skipped": stats.skipped,
            "phases_ms": {"walk": walk_ms, "parse": parse_ms},
        });
        if let Some(i) = &istats {
            v["languages"] = serde_json::to_value(&i.languages)?;
            v["definitions"] = i.definitions.into();
            v["chunks"] = i.chunks.into();
            v["degraded"] = serde_json::to_value(&i.degraded)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for r in &stats.roots {
            println!(
                "root {}{}: {} ({} files, {} bytes)",
                r.name,
                if r.read_only { " (read-only)" } else { "" },
                r.path.display(),
                r.files,
                r.bytes
            );
        }
        println!(
            "indexed: {} files, {} bytes, about {} tokens",
            stats.files_indexed, stats.bytes_indexed, tokens
        );
        if let Some(i) = &istats {
            println!("definitions: {}, chunks: {}", i.definitions, i.chunks);
            let mut langs: Vec<_> = i.languages.iter().collect();
            langs.sort_by(|a, b| b.1.files.cmp(&a.1.files).then(a.0.cmp(b.0)));
            for (lang, l) in langs {
                let mut kinds: Vec<_> = l.kinds.iter().collect();
                kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let kinds = kinds
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "  {lang}: {} files, {} bytes, {} definitions{}",
                    l.files,
                    l.bytes,
                    l.definitions,
                    if kinds.is_empty() {
                        String::new()
                    } else {
                        format!(" ({kinds})")
                    }
                );
            }
            if !i.degraded.is_empty() {
                println!("degraded to line chunks: {}", i.degraded.len());
                for d in &i.degraded {
                    println!("  {}: {}", d.path, d.reason);
                }
            }
        }
        println!(
            "decoded lossily (invalid UTF-8): {}",
            stats.lossy_utf8.len()
        );
        for p in &stats.lossy_utf8 {
            println!("  {p}");
        }
        let reasons = by_reason
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "skipped: {}{}",
            stats.skipped.len(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({reasons})")
            }
        );
        for s in &stats.skipped {
            println!("  {}: {}", s.path, s.reason);
        }
        println!(
            "time: walk and read {walk_ms:.0} ms{}",
            if index.is_some() {
                format!(", parse {parse_ms:.0} ms")
            } else {
                String::new()
            }
        );
    }
    // The process ends here: let the OS take the snapshot back instead of freeing it file by file.
    std::mem::forget(snap);
    std::mem::forget(index);
    Ok(())
}

async fn ask(a: AskArgs) -> anyhow::Result<()> {
    let f = &a.run;
    // Walked, checked and indexing in the background from now on: the model never waits for
    // the index, and a small workspace is done by the time the first prompt is written.
    let ws = opened(f)?;
    // A replay serves the recording from a scripted server on loopback; the engine is unchanged.
    let _replay_server;
    let mut settings = f.settings.clone();
    if let Some(path) = &a.replay {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the trajectory {}", path.display()))?;
        let (steps, sub) = scripted::replay_script(&text)
            .map_err(|e| anyhow::anyhow!("cannot replay {}: {e}", path.display()))?;
        let server = scripted::ScriptedServer::start(steps, sub).await?;
        let m = &mut settings.models;
        m.base_url = Some(server.base_url());
        m.model = Some("replay".into());
        m.sub_model = Some("replay".into());
        m.backend = Some(rlm_lsp::llm::Provider::OpenAi);
        m.response_cache = rlm_lsp::config::CacheMode::Off;
        _replay_server = server;
    }
    let runner = runner(&settings).await?;
    // Citations are checked against what the run read; unverified ones are marked.
    let answer: Answer = f
        .drive(|tx| Box::pin(ws.ask(&runner, &a.question, Some(tx))))
        .await?;
    if f.json {
        let mut v = answer.to_json();
        if let Some(p) = &f.trajectory {
            v["trajectory"] = serde_json::Value::String(p.display().to_string());
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{}\n\n{}", answer.markdown(), summary(&answer.report));
    }
    Ok(())
}

/// The workspace the flags name, walked and indexing in the background.
fn opened(f: &RunFlags) -> anyhow::Result<Workspace> {
    let ws = Workspace::open(&f.walk.roots())?;
    if !f.quiet {
        let snap = ws.snapshot();
        eprintln!(
            "rlm-lsp: {} files, {} bytes; starting the model...",
            snap.files.len(),
            snap.total_bytes()
        );
    }
    Ok(ws)
}

/// The models resolved (the local one started if it is the one), with the sandbox warning.
async fn runner(settings: &RunSettings) -> anyhow::Result<Runner> {
    let runner = Runner::resolve(settings).await?;
    if settings.limits.unsafe_no_sandbox {
        eprintln!(
            "rlm-lsp: warning: the REPL sandbox is off; model-written code runs with your full rights"
        );
    }
    Ok(runner)
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
            let depth = if u.depth > 0 {
                format!(" (depth {})", u.depth)
            } else {
                String::new()
            };
            let cached = if u.usage.cached_tokens > 0 {
                format!(" ({} cached)", u.usage.cached_tokens)
            } else {
                String::new()
            };
            let cost = match u.cost_usd {
                Some(c) if c > 0.0 => format!(", ${c:.4}"),
                Some(_) => String::new(),
                None => ", cost unknown".into(),
            };
            format!(
                "{} {}{depth}: {} prompt{cached} + {} completion tokens{cost}",
                u.role, u.model, u.usage.prompt_tokens, u.usage.completion_tokens
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sandbox = if r.sandbox.starts_with("off") {
        " (REPL sandbox off)"
    } else {
        ""
    };
    let why = match r.stop_reason {
        StopReason::Final => String::new(),
        StopReason::MaxIterations => " (best effort: no FINAL before the turns ran out)".into(),
        StopReason::Stalled => " (best effort: the model kept repeating itself)".into(),
        StopReason::PlainAnswer => " (best effort: the model answered without FINAL)".into(),
        StopReason::Budget => format!(
            " (partial: the {} budget ran out)",
            r.budget
                .map(|b| serde_json::to_value(b).unwrap_or_default())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
                .replace('_', " ")
        ),
    };
    format!(
        "{} iterations, {} sub-calls, {models}, {:.1} s{sandbox}{why}",
        r.iterations,
        r.sub_calls,
        r.wall.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_takes_the_one_settings_type() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["rlm-lsp", "ask", "q", "--max-depth", "1", "--model", "m"]);
        let Command::Ask(a) = cli.unwrap().command else {
            unreachable!()
        };
        assert_eq!(a.run.settings.limits.max_depth, 1);
        assert_eq!(a.run.settings.models.model.as_deref(), Some("m"));
    }
}
