//! The RLM loop: the root model writes code against the workspace held by a REPL worker, sees a
//! truncated view of its output, calls sub-models from inside the REPL, and ends with FINAL.

mod budget;
pub mod check_command;
mod checks;
pub mod citations;
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

pub use budget::{Budget, BudgetKind, ModelUsage, Spent};
pub use live_index::LiveIndex;
pub use parse::{
    FinalAnswer, ParsedReply, final_call_text, is_empty_reply, is_placeholder, parse_reply,
};
pub use plan_check::PlanCheck;
pub use trajectory::Event;
pub use truncate::truncate_for_model;

use crate::llm::pricing::PriceTable;
use crate::llm::{ChatClient, ChatMessage, LlmError, Role};
use crate::repl::{CellOutput, ContextBlob, EditOp, IndexQueries, Repl, ReplConfig, ReplError};
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
    #[error("the root model call failed: {0}")]
    Root(#[source] LlmError),
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
            )),
        );

        let sandbox = repl.sandbox_status().to_string();
        let outcome = run.iterate(&mut repl, &sub, max, evidence.is_some()).await;
        repl.shutdown().await;
        let (answer, stop_reason, iterations) = outcome?;

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

impl Run<'_> {
    fn push(&mut self, iteration: u32, msg: ChatMessage) {
        if msg.role != Role::Assistant {
            self.rec.record(Event::RootMessage {
                iteration,
                role: msg.role,
                content: msg.content.clone(),
                usage: None,
                latency_ms: None,
            });
        }
        self.messages.push(msg);
    }

    fn push_output(&mut self, iteration: u32, text: String) {
        self.elidable.push(self.messages.len());
        self.push(iteration, ChatMessage::user(text));
    }

    /// The root model's next reply; `None` when a budget ran out before or during the call.
    async fn ask_root(&mut self, iteration: u32) -> Result<Option<String>, EngineError> {
        if let Some(k) = self.account.exceeded() {
            self.halted = Some(k);
            return Ok(None);
        }
        self.compact();
        let root = self.engine.models.root_at(self.depth);
        // The endpoint's one limit holds for root calls too (a child run's root, other runs).
        let slots = crate::llm::limits::for_endpoint(
            &root.endpoint().base_url,
            self.engine.cfg.sub_concurrency,
        );
        let call = async {
            let _slot = slots.acquire().await;
            root.complete(&self.messages, prompt::ROOT_STOP).await
        };
        let result = match self.account.remaining_wall() {
            Some(left) => match tokio::time::timeout(left, call).await {
                Ok(r) => r,
                Err(_) => {
                    self.halted = Some(BudgetKind::WallTime);
                    return Ok(None);
                }
            },
            None => call.await,
        };
        let c = result.map_err(EngineError::Root)?;
        self.account.charge(
            self.depth,
            "root",
            &root.endpoint().model,
            c.usage,
            c.latency,
        );
        self.model_wait += c.latency;
        self.rec.record(Event::Spent {
            iteration,
            spent: self.account.spent(),
        });
        self.rec.record(Event::RootMessage {
            iteration,
            role: Role::Assistant,
            content: c.text.clone(),
            usage: Some(c.usage),
            latency_ms: Some(c.latency.as_millis() as u64),
        });
        Ok(Some(c.text))
    }

    /// The answer of a run a budget stopped: what the model last said, else the last output it
    /// saw, marked as partial.
    fn partial(&self, iteration: u32) -> (String, StopReason, u32) {
        let kind = self.halted.unwrap_or(BudgetKind::WallTime);
        let said = self
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| parse_reply(&m.content))
            .and_then(|p| match p.final_answer {
                Some(FinalAnswer::Text(t)) => Some(t),
                _ => None,
            });
        let body = match said {
            Some(t) => t,
            None if !self.last_view.trim().is_empty() => {
                format!(
                    "The last output the model saw:\n\n{}",
                    self.last_view.trim()
                )
            }
            None => "Nothing was found before the budget ran out.".to_string(),
        };
        (
            format!(
                "**Partial answer**: the run stopped at its {} before a final answer.\n\n{body}",
                kind.describe(&self.engine.cfg.budget)
            ),
            StopReason::Budget,
            iteration,
        )
    }

    /// Keeps the conversation inside the root model's window by eliding the oldest outputs
    /// (never the latest one, which the model is about to read).
    fn compact(&mut self) {
        let budget = self.engine.cfg.max_context_chars;
        let mut total: usize = self.messages.iter().map(|m| m.content.len()).sum();
        let latest = self.elidable.last().copied();
        for &i in &self.elidable {
            if total <= budget {
                break;
            }
            if Some(i) == latest || self.messages[i].content.starts_with("[elided") {
                continue;
            }
            let note =
                "[elided: an earlier output, removed to save space; re-run code if you need it]";
            total -= self.messages[i].content.len();
            total += note.len();
            self.messages[i].content = note.to_string();
        }
    }

    /// The turns of a run; `code_ran` when the engine's first search already looked at the
    /// workspace.
    async fn iterate(
        &mut self,
        repl: &mut Repl,
        sub: &SubCaller<'_>,
        max: u32,
        mut code_ran: bool,
    ) -> Result<(String, StopReason, u32), EngineError> {
        // Replies in a row with neither code nor FINAL, after code has run.
        let mut plain_replies = 0;
        // Replies in a row that only repeated code already run.
        let mut repeats = 0;
        // Replies with nothing but empty fences.
        let mut empty_replies = 0;
        for iteration in 1..=max {
            let Some(reply) = self.ask_root(iteration).await? else {
                return Ok(self.partial(iteration));
            };
            let parsed = parse_reply(&reply);
            self.messages
                .push(ChatMessage::assistant(parsed.kept.clone()));
            if parsed.code_blocks.is_empty() {
                if parsed.unclosed_block {
                    self.push(iteration, ChatMessage::user(prompt::UNCLOSED_BLOCK));
                    continue;
                }
                match (parsed.final_answer, code_ran) {
                    (Some(answer), true) => {
                        match self.resolve_final(repl, answer, iteration).await? {
                            Some(text) => match self.check_final(&text, iteration).await {
                                None => return Ok((text, StopReason::Final, iteration)),
                                Some(complaint) => {
                                    self.push(iteration, ChatMessage::user(complaint));
                                    continue;
                                }
                            },
                            None => continue,
                        }
                    }
                    (_, false) => self.push(iteration, ChatMessage::user(prompt::NO_CODE_YET)),
                    (None, true) if is_empty_reply(&reply) => {
                        // Never an answer; told once, a second one ends the run with what
                        // the model last saw.
                        empty_replies += 1;
                        if empty_replies >= 2 {
                            return self
                                .best_effort(
                                    repl,
                                    iteration,
                                    StopReason::Stalled,
                                    prompt::STILL_EMPTY,
                                )
                                .await;
                        }
                        self.push(iteration, ChatMessage::user(prompt::EMPTY_REPLY));
                    }
                    (None, true) => {
                        plain_replies += 1;
                        // Small models often state the answer plainly instead of calling FINAL;
                        // asked once and answering plainly again, the reply is the answer.
                        if plain_replies >= 2 && !reply.trim().is_empty() {
                            return Ok((
                                reply.trim().to_string(),
                                StopReason::PlainAnswer,
                                iteration,
                            ));
                        }
                        self.push(iteration, ChatMessage::user(prompt::NEED_CODE_OR_FINAL));
                    }
                }
                continue;
            }
            plain_replies = 0;
            empty_replies = 0;
            code_ran = true;
            let mut sections = Vec::new();
            let mut all_repeats = true;
            for (index, code) in parsed.code_blocks.iter().enumerate() {
                let numbered = parsed.code_blocks.len() > 1;
                if let Some((turn, view)) = self.seen.earlier(code) {
                    let next = self.recipes.first().map_or("", |r| r.next);
                    sections.push(prompt::repeated_code(turn, view, next));
                    continue;
                }
                all_repeats = false;
                sub.set_iteration(iteration);
                let out = repl.exec(code, sub, self.index.as_deref()).await?;
                self.record_cell(iteration, index, code, &out);
                self.take_edits(&out);
                // `FINAL(The answer is ...)` written as code: Python rejects the prose, the
                // intent is plain.
                let answer = out.final_answer.clone().or_else(|| {
                    out.error
                        .as_deref()
                        .is_some_and(|e| e.contains("SyntaxError"))
                        .then(|| final_call_text(code))
                        .flatten()
                });
                let mut view = self.describe_cell(&out, numbered, index);
                // A cell whose answer was sent back may be run again as it is: the check that
                // sent it back may not again (the model insists, or repaired what it checks).
                let mut answered = false;
                match answer {
                    Some(a) if !is_placeholder(&a) => match self.check_final(&a, iteration).await {
                        None => return Ok((a, StopReason::Final, iteration)),
                        Some(complaint) => {
                            answered = true;
                            view.push_str(&complaint);
                            view.push('\n');
                        }
                    },
                    Some(a) => {
                        view.push_str(&prompt::template_answer(&a));
                        view.push('\n');
                    }
                    None => {}
                }
                let context_free = sub.take_context_free_prompts();
                if context_free > 0 {
                    view.push_str(prompt::SUB_CALL_NEEDS_TEXT);
                    view.push('\n');
                }
                if !answered {
                    self.seen.record(code, iteration, view.clone(), &out);
                }
                self.last_view = view.clone();
                sections.push(view);
            }
            repeats = if all_repeats { repeats + 1 } else { 0 };
            if repeats >= 2 {
                // Told once not to repeat itself, it did again: ask for its answer now.
                return self
                    .best_effort(repl, iteration, StopReason::Stalled, prompt::STALLED)
                    .await;
            }
            let mut text = format!(
                "Output of your code (turn {iteration} of {max}):\n{}",
                sections.join("\n")
            );
            if parsed.kept.len() < reply.trim_end().len() {
                text.push_str(&format!("\n{}", prompt::AFTER_CODE_IGNORED));
            }
            let steer = prompt::turn_steer(self.asked(), max - iteration);
            if !steer.is_empty() {
                text.push_str(&format!("\n\n{steer}"));
            }
            self.push_output(iteration, text);
        }
        self.best_effort(repl, max, StopReason::MaxIterations, prompt::OUT_OF_TURNS)
            .await
    }

    /// One last reply, asked for without code, is the run's best-effort answer.
    async fn best_effort(
        &mut self,
        repl: &mut Repl,
        iteration: u32,
        reason: StopReason,
        why: &str,
    ) -> Result<(String, StopReason, u32), EngineError> {
        let ask = prompt::last_call(why, self.asked());
        self.push(iteration, ChatMessage::user(ask));
        let Some(reply) = self.ask_root(iteration + 1).await? else {
            return Ok(self.partial(iteration));
        };
        let parsed = parse_reply(&reply);
        self.messages
            .push(ChatMessage::assistant(parsed.kept.clone()));
        let answer = match parsed.final_answer {
            Some(FinalAnswer::Text(t)) => t,
            Some(FinalAnswer::Var(name)) => repl
                .get_var(&name)
                .await?
                .unwrap_or_else(|| reply.trim().to_string()),
            None => match parsed.code_blocks.first().and_then(|b| final_call_text(b)) {
                Some(t) => t,
                None => reply.trim().to_string(),
            },
        };
        if is_placeholder(&answer) || is_empty_reply(&answer) {
            // No answer after all: what the model last saw is worth more than the template.
            let seen = match self.last_view.trim() {
                "" => "Nothing was found.".to_string(),
                v => format!("The last output the model saw:\n\n{v}"),
            };
            return Ok((
                format!("**No answer**: the model gave none.\n\n{seen}"),
                reason,
                iteration,
            ));
        }
        // No turn is left to repair it: the check only says how it stands.
        self.final_verdict(&answer, iteration).await;
        Ok((answer, reason, iteration))
    }

    /// The text of a FINAL given outside code; `None` (after telling the model) when it names a
    /// variable that does not exist.
    async fn resolve_final(
        &mut self,
        repl: &mut Repl,
        answer: FinalAnswer,
        iteration: u32,
    ) -> Result<Option<String>, EngineError> {
        match answer {
            FinalAnswer::Text(t) if is_placeholder(&t) => {
                self.push(iteration, ChatMessage::user(prompt::template_answer(&t)));
                Ok(None)
            }
            FinalAnswer::Text(t) => Ok(Some(t)),
            FinalAnswer::Var(name) => match repl.get_var(&name).await? {
                Some(v) => Ok(Some(v)),
                None => {
                    self.push(
                        iteration,
                        ChatMessage::user(format!(
                            "There is no variable named `{name}` in the REPL. Put the answer itself inside FINAL(...) instead."
                        )),
                    );
                    Ok(None)
                }
            },
        }
    }

    fn record_cell(&self, iteration: u32, index: usize, code: &str, out: &CellOutput) {
        self.rec.record(Event::CodeCell {
            iteration,
            index,
            code: code.to_string(),
            stdout: out.stdout.clone(),
            stderr: out.stderr.clone(),
            output_bytes: out.output_bytes,
            error: out.error.clone(),
            final_answer: out.final_answer.clone(),
            timed_out: out.timed_out,
            worker_died: out.worker_died.clone(),
            restored_helpers: out.restored_helpers.clone(),
            duration_ms: out.duration.as_millis() as u64,
        });
    }

    /// The model's view of one cell: its output cut to size, then what went wrong, plainly.
    fn describe_cell(&self, out: &CellOutput, numbered: bool, index: usize) -> String {
        let cap = self.engine.cfg.max_output_chars;
        let mut printed = out.stdout.clone();
        if !out.stderr.is_empty() {
            if !printed.is_empty() && !printed.ends_with('\n') {
                printed.push('\n');
            }
            printed.push_str(&out.stderr);
        }
        let total = out.output_bytes as usize;
        let mut s = String::new();
        if numbered {
            s.push_str(&format!("[block {}]\n", index + 1));
        }
        if printed.trim().is_empty() && out.error.is_none() {
            s.push_str("(no output: print() what you want to see)\n");
        } else if !printed.trim().is_empty() {
            s.push_str("```text\n");
            s.push_str(&truncate_for_model(&printed, total, cap));
            s.push_str("\n```\n");
        }
        if let Some(err) = &out.error {
            s.push_str("Error:\n```text\n");
            s.push_str(&truncate_for_model(err, err.len(), cap / 2));
            s.push_str("\n```\n");
        }
        if out.over_wall_time {
            s.push_str(&format!(
                "The cell was killed after {} s, counting its llm_query calls. The REPL was restarted and your variables are lost; ask fewer, shorter sub-questions per cell.\n",
                self.engine.cfg.repl.cell_wall_timeout.as_secs()
            ));
        } else if out.timed_out {
            s.push_str(&format!(
                "The cell was killed after {} s. The REPL was restarted and your variables are lost; write faster code (search with `in` or `re` before splitting lines).\n",
                self.engine.cfg.repl.cell_timeout.as_secs()
            ));
        }
        if let Some(why) = &out.worker_died {
            s.push_str(&format!(
                "The REPL process died ({why}). It was restarted and your variables are lost.\n"
            ));
        }
        if !out.restored_helpers.is_empty() {
            s.push_str(&format!(
                "Note: your code replaced {}; the original helpers were restored. Use other names for your variables.\n",
                out.restored_helpers.join(", ")
            ));
        }
        s
    }
}
