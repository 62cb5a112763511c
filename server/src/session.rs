//! The one way to run a question: a [`Workspace`] (a walked snapshot, its live index and its
//! context blob) and a [`Runner`] (resolved models and the engine configuration, from the one
//! settings type [`RunSettings`]). The command line (`rlm-lsp ask`), the language server
//! (`lsp/`), the MCP server (`mcp/`), the ACP agent (`acp/`) and the evaluation (`rlm-eval`)
//! call this, so the same question and model give the same answer and citations through every
//! one of them.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use rlm_lsp::session::{Roots, RunSettings, Runner, Workspace};
//! let ws = Workspace::open(&Roots::new("."))?; // walks; the index fills in the background
//! let runner = Runner::resolve(&RunSettings::default()).await?; // may start the local model
//! let answer = ws.ask(&runner, "Where are retries configured?", None).await?;
//! println!("{}", answer.report.answer);
//! for c in answer.citations.iter().filter(|c| !c.verified) {
//!     println!("unverified: {}:{}", c.path, c.line);
//! }
//! let hits = ws.search("retry backoff", 10).map_err(anyhow::Error::msg)?; // no model
//! # let _ = hits;
//! # Ok(())
//! # }
//! ```
//!
//! What each front end adds is only its transport: how it reports [`Event`]s as progress, how
//! it cancels (dropping the future of [`Workspace::ask`] cancels the run and kills its REPL
//! worker), and how it shows a [`RefactorPlan`] (the façade never writes a file).

mod progress;
mod roots;
#[cfg(test)]
mod tests;

pub use progress::{ProgressUpdate, RunProgress, progress_message};
pub use roots::Roots;

use crate::config::{CheckSettings, ResolvedModels, RunLimits};
use crate::engine::check_command::CheckOutcome;
use crate::engine::citations::{self, Citation};
use crate::engine::refactor::{self, CheckedPlan};
use crate::engine::{
    Engine, EngineConfig, EngineError, Event, FinalCheck, LiveIndex, Models, RunReport,
};
use crate::index::{Definition, IndexOptions};
use crate::repl::{ContextBlob, IndexQueries, SearchHit};
use crate::workspace::Snapshot;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub use crate::config::RunSettings;

/// Resolved models and the engine configuration every run of a front end uses. Cheap to clone;
/// the shared local model stays up while any clone lives.
#[derive(Clone)]
pub struct Runner {
    models: Models,
    cfg: EngineConfig,
    /// How refactor plans are checked: the project's own command on a scratch copy, and how
    /// often a plan goes back to the model (see [`crate::engine::PlanCheck`]).
    check: CheckSettings,
    resolved: Option<Arc<ResolvedModels>>,
}

impl Runner {
    /// Resolves the endpoints (starting the shared local model when none is configured) and
    /// sizes the engine for them, with the settings' limits over it.
    pub async fn resolve(settings: &RunSettings) -> anyhow::Result<Runner> {
        let resolved = settings.models.resolve().await?;
        Ok(Runner {
            models: resolved.models.clone(),
            cfg: settings.limits.engine_config(resolved.sized())?,
            check: settings.check.clone(),
            resolved: Some(Arc::new(resolved)),
        })
    }

    /// Models given directly (tests, the language server's injected models), with `cfg` as is.
    pub fn from_models(models: Models, cfg: EngineConfig) -> Runner {
        Runner {
            models,
            cfg,
            check: CheckSettings::default(),
            resolved: None,
        }
    }

    /// The same models with the limits and checks of `settings` (its models are not resolved
    /// again).
    pub fn with_settings(&self, settings: &RunSettings) -> anyhow::Result<Runner> {
        Ok(self
            .with_limits(&settings.limits)?
            .with_check(settings.check.clone()))
    }

    /// The same models with other limits (a tool call's own budgets).
    pub fn with_limits(&self, limits: &RunLimits) -> anyhow::Result<Runner> {
        Ok(Runner {
            cfg: limits.engine_config(self.cfg.clone())?,
            ..self.clone()
        })
    }

    /// How refactor plans are checked (the command a plan must pass in a scratch copy with the
    /// plan applied, and the repairs allowed).
    pub fn with_check(mut self, check: CheckSettings) -> Runner {
        self.check = check;
        self
    }

    pub fn models(&self) -> &Models {
        &self.models
    }

    /// Whether the shared local model these models use has stopped for good (its keeper was
    /// killed, or llama-server kept crashing): a front end that keeps its runner between runs
    /// resolves a new one, which starts the model again.
    pub fn local_model_stopped(&self) -> bool {
        let m = &self.models;
        [&m.root, &m.sub]
            .into_iter()
            .chain(m.child_root.as_ref())
            .any(|c| crate::llm::local::stopped(&c.endpoint().base_url))
    }

    /// Whether the models are the shared local one (resolved, not given).
    pub fn is_local(&self) -> bool {
        self.resolved.as_ref().is_some_and(|r| r.local)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// For settings a front end owns (the REPL worker's executable in tests).
    pub fn config_mut(&mut self) -> &mut EngineConfig {
        &mut self.cfg
    }

    fn engine(&self, index: Arc<LiveIndex>) -> Engine {
        Engine::new(self.models.clone(), self.cfg.clone()).with_index(index)
    }
}

/// A run's report and the `path:line` citations of its answer, checked against the snapshot
/// the run read (an unverified one carries its `reason`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub report: RunReport,
    pub citations: Vec<Citation>,
}

impl Answer {
    /// The report as `rlm-lsp ask --json` prints it: `answer`, `stop_reason`, `usage`, ...,
    /// and `citations`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.report).unwrap_or_default();
        v["citations"] = serde_json::to_value(&self.citations).unwrap_or_default();
        v
    }

    /// The answer's Markdown, followed by the list of the citations that could not be verified
    /// (as `rlm-lsp ask` prints it).
    pub fn markdown(&self) -> String {
        format!(
            "{}{}",
            self.report.answer.trim_end(),
            unverified_citations(&self.citations)
        )
    }
}

/// The Markdown list of the citations that could not be verified, to put after an answer (empty
/// when every citation checked out).
pub fn unverified_citations(cites: &[Citation]) -> String {
    let bad: Vec<String> = cites
        .iter()
        .filter(|c| !c.verified)
        .map(|c| {
            format!(
                "- `{}:{}`: {}",
                c.path,
                c.line,
                c.reason.as_deref().unwrap_or("not verified")
            )
        })
        .collect();
    if bad.is_empty() {
        return String::new();
    }
    format!(
        "\n\n**Unverified citations** (checked against the workspace):\n{}",
        bad.join("\n")
    )
}

/// An explanation of the symbol at a position: its name, what the index knows of its
/// definitions, and the run's answer.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub symbol: String,
    pub definitions: Vec<Definition>,
    pub answer: Answer,
}

/// A refactor plan, checked against the snapshot (see [`refactor::check`]); nothing is written.
#[derive(Debug, Clone)]
pub struct RefactorPlan {
    pub answer: Answer,
    pub checked: CheckedPlan,
    /// The plan's Markdown (the answer without its edit blocks), followed by the edits the
    /// checks dropped and why.
    pub plan: String,
    /// The checked edits as a unified diff (paths as in the snapshot).
    pub diff: String,
    /// What the check command said about the last plan it checked, when one is set.
    pub check: Option<CheckOutcome>,
}

impl RefactorPlan {
    /// Whether the plan changes anything once checked.
    pub fn is_empty(&self) -> bool {
        self.checked.edits.is_empty() && self.checked.files.is_empty()
    }

    /// One line on the check command's verdict, when one ran ("The check `cargo check` passes
    /// with these edits applied.").
    pub fn check_line(&self) -> Option<String> {
        let c = self.check.as_ref()?;
        Some(if c.passed {
            format!("The check `{}` passes with these edits applied.", c.command)
        } else {
            format!(
                "The check `{}` fails with these edits applied{}.",
                c.command,
                if c.timed_out {
                    " (it ran out of time)"
                } else {
                    ""
                }
            )
        })
    }

    /// Every file the plan changes, with its text before and after (see
    /// [`refactor::file_changes`]).
    pub fn file_changes(&self, ws: &Workspace) -> Vec<refactor::FileChange> {
        refactor::file_changes(&self.checked, ws.snapshot())
    }
}

/// A search result as the agent servers return it: where the chunk is, what it is, its score
/// and its first lines.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub score: f64,
    /// The chunk's first lines (at most [`PREVIEW_LINES`]).
    pub preview: String,
}

/// Lines of a chunk a search result shows.
pub const PREVIEW_LINES: usize = 8;

/// A walked workspace: the snapshot every run of it reads, the code index filled in the
/// background, and the context blob the REPL worker maps (written on the first run).
pub struct Workspace {
    snapshot: Arc<Snapshot>,
    index: Arc<LiveIndex>,
    blob: Mutex<Option<Arc<ContextBlob>>>,
}

impl Workspace {
    /// Walks `roots` and starts indexing. A workspace without a single text file is an error
    /// that says how to see why.
    pub fn open(roots: &Roots) -> anyhow::Result<Workspace> {
        let snap = roots.walk()?;
        if snap.files.is_empty() {
            anyhow::bail!(
                "workspace {} has no text files to ask about ({} skipped; see `rlm-lsp index --workspace {}`)",
                snap.root.display(),
                snap.stats.skipped.len(),
                roots.workspace.display()
            );
        }
        Ok(Workspace::new(Arc::new(snap)))
    }

    /// A workspace over a snapshot already walked; indexing starts now, in the background (the
    /// model never waits for it).
    pub fn new(snapshot: Arc<Snapshot>) -> Workspace {
        let index = LiveIndex::spawn(snapshot.clone(), IndexOptions::default());
        Workspace::with_index(snapshot, index)
    }

    /// A workspace over a snapshot and an index of it that the caller already has.
    pub fn with_index(snapshot: Arc<Snapshot>, index: Arc<LiveIndex>) -> Workspace {
        Workspace {
            snapshot,
            index,
            blob: Mutex::new(None),
        }
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    pub fn index(&self) -> &Arc<LiveIndex> {
        &self.index
    }

    /// Whether `other` holds exactly the same files (paths and text) as this workspace, so that
    /// a new walk can keep this one and its warm index.
    pub fn same_files(&self, other: &Snapshot) -> bool {
        self.snapshot.files == other.files && self.snapshot.stats.roots == other.stats.roots
    }

    /// Builds the search index (BM25 over the chunks) as soon as the code index is complete, on a
    /// background thread, so that the first [`search`](Self::search) does not pay for it.
    pub fn warm_search(&self) {
        let index = self.index.clone();
        let spawned = std::thread::Builder::new()
            .name("rlm-warm-search".into())
            .spawn(move || {
                while !index.wait(Duration::from_secs(3600)) {}
                let _ = index.search("", 1);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the search warm-up thread: {e}");
        }
    }

    /// Waits (blocking) until the index covers every file, at most `timeout`; whether it does.
    pub fn wait_indexed(&self, timeout: Duration) -> bool {
        self.index.wait(timeout)
    }

    /// Files indexed so far, and in all.
    pub fn index_progress(&self) -> (usize, usize) {
        self.index.progress()
    }

    /// The context blob of the snapshot, written once.
    pub fn blob(&self) -> anyhow::Result<Arc<ContextBlob>> {
        let mut slot = self.blob.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.as_ref() {
            return Ok(b.clone());
        }
        let blob = ContextBlob::write(&self.snapshot)
            .map_err(|e| anyhow::anyhow!("writing the context: {e}"))?;
        *slot = Some(blob.clone());
        Ok(blob)
    }

    /// Answers `question` with an RLM run, sending its events to `events` as they happen, and
    /// checks the answer's citations. Dropping the future cancels the run and kills its worker.
    pub async fn ask(
        &self,
        runner: &Runner,
        question: &str,
        events: Option<UnboundedSender<Event>>,
    ) -> anyhow::Result<Answer> {
        self.run(runner, question, events, None).await
    }

    async fn run(
        &self,
        runner: &Runner,
        question: &str,
        events: Option<UnboundedSender<Event>>,
        check: Option<Arc<dyn FinalCheck>>,
    ) -> anyhow::Result<Answer> {
        let blob = self.blob()?;
        let mut engine = runner.engine(self.index.clone());
        if let Some(check) = check {
            engine = engine.with_final_check(check);
        }
        let report = engine
            .run(&self.snapshot, blob, question, events)
            .await
            .map_err(|e: EngineError| anyhow::Error::new(e))?;
        let citations = citations::check(&report.answer, &self.snapshot);
        Ok(Answer { report, citations })
    }

    /// The identifier at `line` and `column` (both 1-based; the column counts characters) of
    /// `path`, a file of the snapshot.
    pub fn symbol_at(&self, path: &str, line: u32, column: u32) -> anyhow::Result<String> {
        let file = self.snapshot.get(path).ok_or_else(|| {
            anyhow::anyhow!(
                "{path} is not a file of the workspace (hidden and ignored files are not indexed)"
            )
        })?;
        identifier_at(&file.text, line, column)
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no identifier at {path}:{line}:{column}"))
    }

    /// The question an explanation of `name` asks, with what the index knows of its definitions
    /// (the language server's `rlm.explain` asks the same).
    pub fn explain_question(name: &str, definitions: &[Definition]) -> String {
        let defined = if definitions.is_empty() {
            "The index knows no definition of it; find where it comes from.".to_string()
        } else {
            let sites: Vec<String> = definitions
                .iter()
                .map(|d| format!("{}:{}", d.path, d.start_line))
                .collect();
            format!("The index says it is defined at {}.", sites.join(", "))
        };
        format!(
            "Explain the symbol `{name}`: what it is for, where it is defined, and which code uses \
             it (search every root with grep). {defined} Cite path:line for each fact."
        )
    }

    /// What the symbol `name` is for, where it is defined and who uses it: an RLM run.
    pub async fn explain_symbol(
        &self,
        runner: &Runner,
        name: &str,
        events: Option<UnboundedSender<Event>>,
    ) -> anyhow::Result<Explanation> {
        // A moment for the index, so the question can say where the symbol is defined.
        let index = self.index.clone();
        let _ = tokio::task::spawn_blocking(move || index.wait(Duration::from_secs(2))).await;
        let definitions = self.definitions(name);
        let question = Self::explain_question(name, &definitions);
        let answer = self.ask(runner, &question, events).await?;
        Ok(Explanation {
            symbol: name.to_string(),
            definitions,
            answer,
        })
    }

    /// [`explain_symbol`](Self::explain_symbol) for the identifier at a position (see
    /// [`symbol_at`](Self::symbol_at)).
    pub async fn explain(
        &self,
        runner: &Runner,
        path: &str,
        line: u32,
        column: u32,
        events: Option<UnboundedSender<Event>>,
    ) -> anyhow::Result<Explanation> {
        let name = self.symbol_at(path, line, column)?;
        self.explain_symbol(runner, &name, events).await
    }

    /// The question a refactor plan asks: the instruction, where the user is (`path` and a
    /// 1-based line), and the edit format the checks read.
    pub fn refactor_question(instruction: &str, at: Option<(&str, Option<u32>)>) -> String {
        let mut question = format!("Plan this refactor: {instruction}");
        match at {
            Some((path, Some(line))) => {
                question.push_str(&format!(" The user is at {path}:{line}."));
            }
            Some((path, None)) => question.push_str(&format!(" The user is in {path}.")),
            None => {}
        }
        question.push_str("\n\n");
        question.push_str(refactor::EDIT_FORMAT);
        question
    }

    /// An RLM run that plans the change `instruction` asks for; its edits (the answer's edit
    /// blocks and those its code recorded) are checked against the snapshot (they apply, files
    /// still parse, no read-only root) and returned with a unified diff. A plan with nothing that
    /// applies, or failing the runner's check command, is sent back to the model to repair (see
    /// [`CheckSettings`]). Nothing is written.
    pub async fn plan_refactor(
        &self,
        runner: &Runner,
        instruction: &str,
        at: Option<(&str, Option<u32>)>,
        events: Option<UnboundedSender<Event>>,
    ) -> anyhow::Result<RefactorPlan> {
        let question = Self::refactor_question(instruction, at);
        let check = Arc::new(runner.check.plan_check(self.snapshot.clone()));
        let answer = self
            .run(runner, &question, events, Some(check.clone()))
            .await?;
        let mut plan = self.check_plan(answer);
        plan.check = check.last_outcome();
        Ok(plan)
    }

    /// Checks the edits of a refactor run (its answer's edit blocks and the edits its code
    /// recorded) against the snapshot.
    pub fn check_plan(&self, answer: Answer) -> RefactorPlan {
        let checked =
            refactor::check_plan(&answer.report.answer, &answer.report.edits, &self.snapshot);
        let mut plan = checked.plan.clone();
        if !checked.dropped.is_empty() {
            plan.push_str("\n\n**Edits dropped by the checks:**\n");
            for d in &checked.dropped {
                plan.push_str(&format!("- `{}`: {}\n", d.path, d.reason));
            }
        }
        let diff = refactor::unified_diff(&checked, &self.snapshot);
        RefactorPlan {
            answer,
            checked,
            plan,
            diff,
            check: None,
        }
    }

    /// The `k` chunks BM25 ranks best for `query`, best first, from what is indexed now: no
    /// model. (The first query of an index version builds the BM25; see
    /// [`warm_search`](Self::warm_search).)
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<SearchResult>, String> {
        let hits: Vec<SearchHit> = self.index.search(query, k)?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let preview = self
                    .snapshot
                    .get(&h.chunk.path)
                    .and_then(|f| f.text.get(h.chunk.start_byte..h.chunk.end_byte))
                    .map(|t| t.lines().take(PREVIEW_LINES).collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                SearchResult {
                    path: h.chunk.path,
                    start_line: h.chunk.start_line,
                    end_line: h.chunk.end_line,
                    kind: h.chunk.kind,
                    name: h.chunk.name,
                    score: h.score,
                    preview,
                }
            })
            .collect())
    }

    /// The definitions named exactly `name` (else ignoring case; `Parent::name` filters on the
    /// parent), from what is indexed now: no model.
    pub fn definitions(&self, name: &str) -> Vec<Definition> {
        self.index.definitions(name)
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifier under (or just before) a 1-based line and column (in characters).
pub fn identifier_at(text: &str, line: u32, column: u32) -> Option<&str> {
    let line_text = text.lines().nth(line.checked_sub(1)? as usize)?;
    let line_start = line_text.as_ptr() as usize - text.as_ptr() as usize;
    let col = column.saturating_sub(1) as usize;
    let at = line_text
        .char_indices()
        .nth(col)
        .map_or(line_text.len(), |(i, _)| i);
    let start = line_text[..at]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident(c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = line_text[at..]
        .char_indices()
        .find(|&(_, c)| !is_ident(c))
        .map_or(line_text.len(), |(i, _)| at + i);
    let word = &text[line_start + start..line_start + end];
    (!word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit())).then_some(word)
}
