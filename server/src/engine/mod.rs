//! The RLM loop: the root model writes code against the workspace held by a REPL worker, sees a
//! truncated view of its output, calls sub-models from inside the REPL, and ends with FINAL.

mod budget;
pub mod check_command;
mod checks;
pub mod citations;
mod conversation;
mod evidence;
mod live_index;
mod parse;
mod plan_check;
pub mod prompt;
pub mod recipes;
pub mod refactor;
mod repeats;
mod subcalls;
mod trajectory;
mod truncate;
mod turns;

pub use budget::{Budget, BudgetKind, ModelUsage, Spent};
pub use live_index::LiveIndex;
pub use parse::{
    FinalAnswer, ParsedReply, final_call_text, is_empty_reply, is_placeholder, leading_final,
    parse_reply,
};
pub use plan_check::PlanCheck;
pub use trajectory::Event;
pub use truncate::truncate_for_model;

use crate::llm::pricing::PriceTable;
use crate::llm::{ChatClient, ChatMessage, LlmError};
use crate::repl::{ContextBlob, EditOp, IndexQueries, Repl, ReplConfig, ReplError};
use crate::workspace::Snapshot;
use budget::Account;
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subcalls::SubCaller;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_iterations: u32,
    /// Characters of one turn's code output the root model sees.
    pub max_output_chars: usize,
    /// Above this many characters of conversation, the oldest outputs are elided.
    pub max_context_chars: usize,
    /// Calls in flight at once to one model endpoint, shared by every call to it in the
    /// process (root calls, sub-calls, child runs; see `llm::limits`).
    pub sub_concurrency: usize,
    /// What the prompt tells the root model the sub model can read.
    pub sub_model_chars: usize,
    pub repl: ReplConfig,
    /// Limits shared by the run and its child runs.
    pub budget: Budget,
    /// Prices for the cost figures and the cost budget.
    pub prices: PriceTable,
    /// Depth of child runs `rlm_query` may start; past it, `rlm_query` is a plain model call.
    pub max_depth: u32,
    /// Put the worked examples (recipes) closest to the question in the system prompt.
    pub recipes: bool,
    /// Run a first search for the question's names and words before the first turn, and show
    /// its output to the model as evidence to start from.
    pub evidence: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_iterations: 20,
            max_output_chars: 2_500,
            max_context_chars: 48_000,
            sub_concurrency: 8,
            sub_model_chars: 40_000,
            repl: ReplConfig::default(),
            budget: Budget::default(),
            prices: PriceTable::default(),
            max_depth: 2,
            recipes: true,
            evidence: true,
        }
    }
}

/// The models of a run.
#[derive(Debug, Clone)]
pub struct Models {
    pub root: ChatClient,
    /// `llm_query` at every depth.
    pub sub: ChatClient,
    /// The root model of child runs (`rlm_query`); the run's root model when `None`.
    pub child_root: Option<ChatClient>,
}

impl Models {
    /// One model for every role.
    pub fn same(client: ChatClient) -> Self {
        Models {
            root: client.clone(),
            sub: client,
            child_root: None,
        }
    }

    /// The root model of a run at `depth`.
    pub fn root_at(&self, depth: u32) -> &ChatClient {
        match (&self.child_root, depth) {
            (Some(c), d) if d > 0 => c,
            _ => &self.root,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave FINAL (in code or text).
    Final,
    /// The turn budget ran out; the answer is the model's best effort.
    MaxIterations,
    /// The model kept re-running code it had already run; the answer is its best effort.
    Stalled,
    /// A budget (`RunReport::budget` says which) ran out; the answer is partial.
    Budget,
    /// The model answered in plain text twice instead of calling FINAL; that text is the
    /// answer, taken as its best effort.
    PlainAnswer,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Final => "final",
            StopReason::MaxIterations => "max_iterations",
            StopReason::Stalled => "stalled",
            StopReason::Budget => "budget",
            StopReason::PlainAnswer => "plain_answer",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub answer: String,
    /// True when the run ended without a FINAL (turns ran out).
    pub best_effort: bool,
    pub stop_reason: StopReason,
    pub iterations: u32,
    pub sub_calls: u32,
    pub usage: Vec<ModelUsage>,
    #[serde(serialize_with = "as_millis")]
    pub wall: Duration,
    /// Time spent waiting on models (root calls and sub-call batches).
    #[serde(serialize_with = "as_millis")]
    pub model_wait: Duration,
    /// The budget that ended the run, when one did (`stop_reason` is then `budget`).
    pub budget: Option<BudgetKind>,
    /// What confined the model's code (`on: landlock ...; seccomp; ...` or `off: ...`).
    pub sandbox: String,
    /// Edits the model's code proposed (`edit_replace`, `rename_symbol`, ...); nothing was
    /// written. A refactor plan is checked from these and the answer's edit blocks.
    pub edits: Vec<EditOp>,
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// A check of a final answer before the run ends (a refactor plan: do its edits apply, does
/// the project still build?). `Some(message)` sends the model back to work with that message,
/// at most `max_repairs()` times; then the answer stands as it is.
pub trait FinalCheck: Send + Sync {
    fn check<'a>(&'a self, answer: &'a str, edits: &'a [EditOp]) -> BoxFuture<'a, Option<String>>;
    fn max_repairs(&self) -> u32;
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // The cause is in the message, not also a `source`: `{:#}` would print it twice.
    #[error("the root model call failed: {0}")]
    Root(LlmError),
    #[error(transparent)]
    Repl(#[from] ReplError),
}

/// Collects events in order and forwards each to an optional live listener.
#[derive(Default)]
pub(crate) struct Recorder {
    events: Mutex<Vec<Event>>,
    live: Option<UnboundedSender<Event>>,
}

impl Recorder {
    pub(crate) fn record(&self, event: Event) {
        if let Some(tx) = &self.live {
            // A listener that went away only stops live updates, never the run.
            let _ = tx.send(event.clone());
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct Engine {
    models: Models,
    cfg: EngineConfig,
    /// Answers `symbols()`, `outline()` and `chunks` in the REPL; without it they raise an error
    /// that points to `grep`.
    index: Option<Arc<dyn IndexQueries>>,
    /// Checks the top-level run's final answer (child runs are not checked).
    final_check: Option<Arc<dyn FinalCheck>>,
}

/// Mutable state of one run.
struct Run<'a> {
    engine: &'a Engine,
    depth: u32,
    question: String,
    rec: Arc<Recorder>,
    messages: Vec<ChatMessage>,
    /// Indices of messages holding code output, which may be elided when the window fills.
    elidable: Vec<usize>,
    account: Arc<Account>,
    /// Set when a budget ran out.
    halted: Option<BudgetKind>,
    /// The model's view of the latest cell output, for a partial answer.
    last_view: String,
    model_wait: Duration,
    /// Cells already run, for the repeated-code check.
    seen: repeats::SeenCells,
    /// What the run reads: its citations are checked against it.
    snapshot: &'a Snapshot,
    /// The index the REPL's structural helpers use (the run's own for a child with a context).
    index: Option<Arc<dyn IndexQueries>>,
    /// The worked examples chosen for the question; the first one's next step is suggested
    /// when the model stalls.
    recipes: Vec<&'static recipes::Recipe>,
    /// A FINAL citing what the workspace does not have is sent back once; this says it was.
    citations_checked: bool,
    /// Edits proposed so far by the model's code.
    edits: Vec<EditOp>,
    /// Edits the engine's first search computed (a rename's): the plan's when the model
    /// proposes none of its own and does not discard them.
    provisional: Vec<EditOp>,
    /// Final answers sent back by the engine's `FinalCheck`.
    repairs: u32,
    /// What the first search ranked first for a "which has the most" question, until the
    /// model runs a cell of its own or an answer was checked against it.
    ranking: Option<evidence::Ranking>,
}

/// What a run reads: the workspace, its context blob for the REPL, and its code index.
pub(crate) struct RunInput<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) blob: Arc<ContextBlob>,
    pub(crate) index: Option<Arc<dyn IndexQueries>>,
}

impl Engine {
    pub fn new(models: Models, cfg: EngineConfig) -> Self {
        Engine {
            models,
            cfg,
            index: None,
            final_check: None,
        }
    }

    /// Checks final answers before the run ends (see [`FinalCheck`]).
    pub fn with_final_check(mut self, check: Arc<dyn FinalCheck>) -> Self {
        self.final_check = Some(check);
        self
    }

    /// The code index the REPL's `symbols()`, `outline()` and `chunks` use.
    pub fn with_index(mut self, index: Arc<dyn IndexQueries>) -> Self {
        self.index = Some(index);
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Answers `question` about `snapshot`. Dropping the returned future cancels the run and
    /// kills its worker.
    pub async fn run(
        &self,
        snapshot: &Snapshot,
        blob: Arc<ContextBlob>,
        question: &str,
        live: Option<UnboundedSender<Event>>,
    ) -> Result<RunReport, EngineError> {
        let account = Arc::new(Account::new(
            self.cfg.budget.clone(),
            self.cfg.prices.clone(),
        ));
        self.run_at(
            RunInput {
                snapshot,
                blob,
                index: self.index.clone(),
            },
            question,
            live,
            0,
            account,
        )
        .await
    }

    /// A run at `depth` (0 for the user's question, 1 for an `rlm_query` child, ...), spending
    /// from `account`, which the whole tree of runs shares.
    pub(crate) async fn run_at(
        &self,
        input: RunInput<'_>,
        question: &str,
        live: Option<UnboundedSender<Event>>,
        depth: u32,
        account: Arc<Account>,
    ) -> Result<RunReport, EngineError> {
        let RunInput {
            snapshot,
            blob,
            index,
        } = input;
        let started = Instant::now();
        let rec = Arc::new(Recorder {
            events: Mutex::new(Vec::new()),
            live,
        });
        let max = self.cfg.max_iterations.max(1);
        rec.record(Event::RunStart {
            question: question.to_string(),
            workspace: snapshot.root.display().to_string(),
            files: snapshot.files.len(),
            bytes: snapshot.total_bytes(),
            root_model: self.models.root_at(depth).endpoint().model.clone(),
            sub_model: self.models.sub.endpoint().model.clone(),
            max_iterations: max,
        });
        let parent = subcalls::Parent {
            engine: self,
            snapshot,
            blob: blob.clone(),
            index: index.clone(),
        };
        let sub = SubCaller::new(
            parent,
            self.models.sub.clone(),
            self.cfg.sub_concurrency,
            rec.clone(),
            account.clone(),
            depth,
        );
        let mut repl = Repl::start(self.cfg.repl.clone(), blob).await?;
        let mut run = Run {
            engine: self,
            depth,
            question: question.to_string(),
            rec: rec.clone(),
            messages: Vec::new(),
            elidable: Vec::new(),
            account: account.clone(),
            halted: None,
            last_view: String::new(),
            model_wait: Duration::ZERO,
            seen: repeats::SeenCells::default(),
            snapshot,
            index,
            recipes: recipes::for_question(question, self.cfg.recipes),
            citations_checked: false,
            edits: Vec::new(),
            provisional: Vec::new(),
            repairs: 0,
            ranking: None,
        };
        run.push(
            0,
            ChatMessage::system(prompt::system_prompt(
                self.cfg.sub_model_chars,
                &run.recipes,
            )),
        );
        let evidence = if self.cfg.evidence && depth == 0 {
            run.evidence(&mut repl, &sub).await?
        } else {
            None
        };
        let summary = run.index.as_ref().and_then(|i| i.summary());
        run.push(
            0,
            ChatMessage::user(prompt::first_message(
                snapshot,
                question,
                max,
                summary.as_deref(),
                evidence.as_deref(),
                run.ranking.is_some(),
            )),
        );

        let sandbox = repl.sandbox_status().to_string();
        let outcome = run.iterate(&mut repl, &sub, max, evidence.is_some()).await;
        repl.shutdown().await;
        let (answer, stop_reason, iterations) = outcome?;
        let answer = run.mended(answer);
        // However the run ended (a plain answer is not checked), the engine's own edits stand
        // when the model made none.
        run.adopt_provisional(&answer);

        let sub_stats = sub.stats();
        let wall = started.elapsed();
        let best_effort = stop_reason != StopReason::Final;
        rec.record(Event::RunEnd {
            answer: answer.clone(),
            best_effort,
            stop_reason: stop_reason.to_string(),
            iterations,
            sub_calls: sub_stats.calls,
            wall_ms: wall.as_millis() as u64,
        });
        Ok(RunReport {
            answer,
            best_effort,
            stop_reason,
            iterations,
            sub_calls: sub_stats.calls,
            usage: account.usage(),
            wall,
            model_wait: run.model_wait + sub_stats.wait,
            budget: run.halted,
            sandbox,
            edits: std::mem::take(&mut run.edits),
            events: rec.take(),
        })
    }
}
