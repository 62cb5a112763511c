//! Runs: every `rlm.*` command that asks a model goes through [`Backend::run`]. A run is
//! registered under its id (for `rlm.cancel` and progress cancellation), waits for a place
//! behind the runs in flight, reports work-done progress and `rlm/progress` from its events,
//! and is cancelled by dropping it (which kills its REPL worker). It runs on the snapshot of
//! the moment the request came in, through the library façade (`session::Workspace`).

use super::progress::{begin_progress, end_progress, report_progress};
use super::protocol::{self, AskParams, CancelResult, CitationOut, Command, IdParams, RunResult};
use super::state::{RunEntry, State};
use super::{Backend, MAX_QUEUED_RUNS, error, lock};
use crate::engine::citations::Citation;
use crate::engine::{Event, RunReport};
use crate::session::{Answer, RunProgress, Runner, Workspace};
use crate::workspace::Snapshot;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::UnboundedSender;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::*;

/// What a command's run gives back: it holds the run's report.
pub(super) trait Ran: Send + 'static {
    fn report(&self) -> &RunReport;
}

impl Ran for Answer {
    fn report(&self) -> &RunReport {
        &self.report
    }
}

impl Ran for crate::session::Explanation {
    fn report(&self) -> &RunReport {
        &self.answer.report
    }
}

impl Ran for crate::session::RefactorPlan {
    fn report(&self) -> &RunReport {
        &self.answer.report
    }
}

/// Removes a run that never started from the table, however the request returns.
struct PendingRun {
    state: Arc<State>,
    id: String,
    armed: bool,
}

impl Drop for PendingRun {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.state.runs).remove(&self.id);
        }
    }
}

/// Removes a run from the table when its request ends, however it ends, and aborts its task
/// (dropping the run's future kills its worker) when the request was cancelled.
struct RunGuard {
    state: Arc<State>,
    id: String,
    abort: tokio::task::AbortHandle,
    progress: Option<(Client, ProgressToken)>,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        lock(&self.state.runs).remove(&self.id);
        if !self.finished {
            self.abort.abort();
            if let Some((client, token)) = self.progress.take() {
                tokio::spawn(async move {
                    end_progress(&client, token, "cancelled".into()).await;
                });
            }
        }
    }
}

/// A run that ended: its id and the snapshot it read.
pub(super) struct RunContext {
    pub(super) id: String,
    pub(super) snapshot: Arc<Snapshot>,
}

impl Backend {
    /// Runs `work` as one run: `id` (the client's, else a new one), shown as `title` in progress.
    pub(super) async fn run<T, F, Fut>(
        &self,
        id: Option<protocol::RunId>,
        title: String,
        token: Option<ProgressToken>,
        work: F,
    ) -> jsonrpc::Result<(RunContext, T)>
    where
        T: Ran,
        F: FnOnce(Arc<Workspace>, Runner, UnboundedSender<Event>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        // Everything the run needs is taken before the first await: the snapshot as of now.
        let snap = self
            .snapshot()
            .ok_or_else(|| error(ErrorCode::InvalidRequest, "the server is not initialized"))?;
        let n = self.state.next_run.fetch_add(1, Ordering::Relaxed) + 1;
        let id = id.map_or_else(|| format!("run-{n}"), protocol::RunId::into_string);
        // Registered at once, so `rlm.cancel` finds the run even while it is being set up.
        let cancelled = Arc::new(AtomicBool::new(false));
        {
            let mut runs = lock(&self.state.runs);
            if runs.contains_key(&id) {
                return Err(error(
                    ErrorCode::InvalidParams,
                    format!("a run with id {id:?} is already in flight"),
                ));
            }
            if runs.len() >= self.max_runs + MAX_QUEUED_RUNS {
                return Err(error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "{} runs are in flight or waiting, the most the server takes; wait for \
                         one to end or cancel one (rlm.cancel)",
                        runs.len()
                    ),
                ));
            }
            runs.insert(
                id.clone(),
                RunEntry {
                    abort: None,
                    token: None,
                    cancelled: cancelled.clone(),
                },
            );
        }
        let mut pending = PendingRun {
            state: self.state.clone(),
            id: id.clone(),
            armed: true,
        };

        let runner = self.runner().await?;
        let workspace = self.workspace_for(&snap)?;
        let max = runner.config().max_iterations.max(1);

        // Progress: the client's token, else one we create when the client supports it.
        let token = match token {
            Some(t) => Some(t),
            None if self.state.progress_supported.load(Ordering::Relaxed) => {
                let t = ProgressToken::String(format!("rlm/{id}"));
                self.client
                    .create_work_done_progress(t.clone())
                    .await
                    .ok()
                    .map(|()| t)
            }
            None => None,
        };
        if let Some(entry) = lock(&self.state.runs).get_mut(&id) {
            entry.token = token.clone();
        }
        if let Some(t) = &token {
            begin_progress(&self.client, t.clone(), format!("run {id}: {title}")).await;
        }
        if cancelled.load(Ordering::Acquire) {
            if let Some(t) = token {
                end_progress(&self.client, t, "cancelled".into()).await;
            }
            return Err(error(ErrorCode::RequestCancelled, "the run was cancelled"));
        }

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let task = {
            let slots = self.slots.clone();
            let (ws, runner) = (workspace, runner);
            tokio::spawn(async move {
                // Queued behind the runs in flight; a cancel while waiting frees the place in line.
                let _slot = slots.acquire_owned().await;
                work(ws, runner, tx).await
            })
        };
        // Forward events as progress while the run goes on.
        let forward = {
            let client = self.client.clone();
            let (token, id) = (token.clone(), id.clone());
            tokio::spawn(async move {
                let mut progress = RunProgress::new(max);
                while let Some(e) = rx.recv().await {
                    if let Some(update) = progress.update(&e) {
                        report_progress(&client, token.as_ref(), &id, update).await;
                    }
                }
            })
        };
        {
            let mut runs = lock(&self.state.runs);
            if let Some(entry) = runs.get_mut(&id) {
                entry.abort = Some(task.abort_handle());
            }
            // A cancel between the check above and now.
            if cancelled.load(Ordering::Acquire) {
                task.abort();
            }
        }
        pending.armed = false;
        let mut guard = RunGuard {
            state: self.state.clone(),
            id: id.clone(),
            abort: task.abort_handle(),
            progress: token.clone().map(|t| (self.client.clone(), t)),
            finished: false,
        };
        let outcome = task.await;
        // The sender is gone with the run: every event has been forwarded when this returns.
        let _ = forward.await;
        guard.finished = true;
        drop(guard);
        let done = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if let Some(t) = token {
                    end_progress(&self.client, t, format!("failed: {e:#}")).await;
                }
                return Err(error(
                    ErrorCode::InternalError,
                    format!("the run failed: {e:#}"),
                ));
            }
            Err(_) => {
                if let Some(t) = token {
                    end_progress(&self.client, t, "cancelled".into()).await;
                }
                return Err(error(
                    ErrorCode::RequestCancelled,
                    format!("run {id} was cancelled"),
                ));
            }
        };
        let report = done.report();
        if let Some(t) = token {
            let message = format!(
                "done: {} turns, {} sub-calls, {:.1} s",
                report.iterations,
                report.sub_calls,
                report.wall.as_secs_f64()
            );
            end_progress(&self.client, t, message).await;
        }
        *lock(&self.state.last_usage) = serde_json::to_value(&report.usage).ok();
        let context = RunContext { id, snapshot: snap };
        Ok((context, done))
    }

    /// `rlm.ask {question, id?}`.
    pub(super) async fn ask(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<RunResult> {
        let p: AskParams =
            protocol::params(Command::Ask, arg).map_err(|e| error(ErrorCode::InvalidParams, e))?;
        if p.question.trim().is_empty() {
            return Err(error(ErrorCode::InvalidParams, Command::Ask.usage()));
        }
        let question = p.question.clone();
        let (ctx, answer) = self
            .run(p.id, p.question, token, move |ws, runner, tx| async move {
                ws.ask(&runner, &question, Some(tx)).await
            })
            .await?;
        Ok(run_result(&ctx, &answer))
    }

    /// `rlm.cancel {id}`.
    pub(super) fn cancel(&self, arg: Option<&Value>) -> jsonrpc::Result<CancelResult> {
        let p: IdParams = protocol::params(Command::Cancel, arg)
            .map_err(|e| error(ErrorCode::InvalidParams, e))?;
        let id = p.id.into_string();
        let entry = lock(&self.state.runs).remove(&id);
        if let Some(e) = &entry {
            e.cancel();
        }
        Ok(CancelResult {
            id,
            cancelled: entry.is_some(),
        })
    }

    /// `window/workDoneProgress/cancel`: the user cancelled a run's progress in the editor.
    pub(super) async fn cancel_progress(&self, params: WorkDoneProgressCancelParams) {
        let mut runs = lock(&self.state.runs);
        let id = runs
            .iter()
            .find(|(_, r)| r.token.as_ref() == Some(&params.token))
            .map(|(id, _)| id.clone());
        if let Some(entry) = id.and_then(|id| runs.remove(&id)) {
            entry.cancel();
        }
    }
}

/// The result every run command shares, its citations with the URIs of verified ones.
pub(super) fn run_result(ctx: &RunContext, answer: &Answer) -> RunResult {
    RunResult::new(
        ctx.id.clone(),
        &answer.report,
        citations_out(&answer.citations, &ctx.snapshot),
    )
}

fn citations_out(cites: &[Citation], snap: &Snapshot) -> Vec<CitationOut> {
    cites
        .iter()
        .map(|c| CitationOut {
            uri: c
                .verified
                .then(|| Uri::from_file_path(snap.disk_path(&c.path)))
                .flatten()
                .map(|u| u.as_str().to_string()),
            citation: c.clone(),
        })
        .collect()
}
