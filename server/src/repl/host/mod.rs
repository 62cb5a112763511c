//! The parent side: one worker process per [`Repl`], restarted when it times out or dies.

mod index_answers;
mod process;

use super::index::IndexQueries;
use super::protocol::{
    self, CellDone, FrameError, FromWorker, IndexReply, SubCallResult, ToWorker,
};
use super::sandbox::{self, SandboxConfig};
use super::{CellOutput, ContextBlob, ReplConfig, ReplError, SubCalls};
use crate::index::Chunk;
use index_answers::answer_index;
use process::Worker;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Python REPL for one run; owns a worker process.
pub struct Repl {
    cfg: ReplConfig,
    blob: Arc<ContextBlob>,
    /// `None` while a request is in flight (so a cancelled request drops, i.e. kills, the worker)
    /// or after a restart failed.
    worker: Option<Worker>,
    /// The first worker's sandbox status line; every worker of this `Repl` has the same.
    sandbox_status: String,
}

impl Repl {
    /// Starts a worker with `blob` as `context` and waits until it is ready.
    pub async fn start(cfg: ReplConfig, blob: Arc<ContextBlob>) -> Result<Repl, ReplError> {
        let worker = Worker::start(&cfg, &blob).await?;
        let sandbox_status = worker.sandbox_status.clone();
        if !cfg.sandbox.enabled {
            tracing::warn!("REPL sandbox {sandbox_status}");
        }
        Ok(Repl {
            cfg,
            blob,
            worker: Some(worker),
            sandbox_status,
        })
    }

    /// What confines model code: `on: landlock ABI 7 (...); seccomp; memory ...`, or `off: ...`
    /// when the user opted out. For status output and bug reports.
    pub fn sandbox_status(&self) -> &str {
        &self.sandbox_status
    }

    async fn take_worker(&mut self) -> Result<Worker, ReplError> {
        match self.worker.take() {
            Some(w) => Ok(w),
            None => Worker::start(&self.cfg, &self.blob).await,
        }
    }

    /// Replaces a dead or killed worker; returns the description of what happened.
    async fn restart(&mut self, old: Worker) -> Result<(), ReplError> {
        drop(old);
        self.worker = Some(Worker::start(&self.cfg, &self.blob).await?);
        Ok(())
    }

    /// The worker's process id (also its process group id), if one is running.
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(|w| w.pid as u32)
    }

    /// Runs one cell. Failures of the code (exceptions, timeouts, a crashing worker) are reported
    /// in the [`CellOutput`]; `Err` means no worker could be (re)started. `sub` answers
    /// `llm_query`; `index` answers `symbols()`, `outline()` and `chunks` (without one, they raise
    /// an error that says to use `grep`).
    pub async fn exec(
        &mut self,
        code: &str,
        sub: &dyn SubCalls,
        index: Option<&dyn IndexQueries>,
    ) -> Result<CellOutput, ReplError> {
        let request = ToWorker::Exec {
            code: code.to_string(),
            index_version: index.map_or(0, |i| i.version()),
        };
        let frame = match protocol::encode(&request) {
            Ok(frame) => frame,
            Err(e) => {
                return Ok(CellOutput {
                    error: Some(format!("the cell was not run: {e}")),
                    ..CellOutput::default()
                });
            }
        };
        let mut w = self.take_worker().await?;
        let started = Instant::now();
        let mut paused = Duration::ZERO;
        let outcome = converse(
            &mut w,
            &frame,
            Limits {
                run: self.cfg.cell_timeout,
                wall: self.cfg.cell_wall_timeout,
            },
            Some(sub),
            index,
            &mut paused,
            |m| match m {
                FromWorker::Done(done) => Ok(done),
                other => Err(kind(&other)),
            },
        )
        .await;
        let duration = started.elapsed().saturating_sub(paused);
        match outcome {
            Outcome::Reply(done) => {
                self.worker = Some(w);
                Ok(cell_output(done, duration, &self.cfg.sandbox))
            }
            Outcome::TimedOut { wall } => {
                tracing::debug!(pid = w.pid, wall, "cell timed out; killing the worker");
                w.kill().await;
                self.restart(w).await?;
                Ok(CellOutput {
                    timed_out: true,
                    over_wall_time: wall,
                    duration: if wall {
                        duration
                    } else {
                        self.cfg.cell_timeout
                    },
                    ..CellOutput::default()
                })
            }
            Outcome::Died {
                problem,
                stream_ended,
            } => {
                let why = w.death_note(&problem, stream_ended).await;
                tracing::warn!("REPL worker died during a cell: {why}");
                self.restart(w).await?;
                Ok(CellOutput {
                    worker_died: Some(why),
                    duration,
                    ..CellOutput::default()
                })
            }
        }
    }

    /// The value of a variable as `str()`, for `FINAL_VAR` given in the model's plain text;
    /// `None` if there is no such variable.
    pub async fn get_var(&mut self, name: &str) -> Result<Option<String>, ReplError> {
        let fail = |reason: String| ReplError::GetVar {
            name: name.to_string(),
            reason,
        };
        let request = ToWorker::GetVar {
            name: name.to_string(),
        };
        let frame = protocol::encode(&request).map_err(|e| fail(e.to_string()))?;
        let mut w = self.take_worker().await?;
        let mut paused = Duration::ZERO;
        let outcome = converse(
            &mut w,
            &frame,
            Limits {
                run: self.cfg.cell_timeout,
                wall: self.cfg.cell_wall_timeout,
            },
            None,
            None,
            &mut paused,
            |m| match m {
                FromWorker::Var { value } => Ok(value),
                other => Err(kind(&other)),
            },
        )
        .await;
        match outcome {
            Outcome::Reply(value) => {
                self.worker = Some(w);
                Ok(value)
            }
            Outcome::TimedOut { .. } => {
                w.kill().await;
                self.restart(w).await?;
                Err(fail(format!(
                    "str() did not return within {:?}",
                    self.cfg.cell_timeout
                )))
            }
            Outcome::Died {
                problem,
                stream_ended,
            } => {
                let why = w.death_note(&problem, stream_ended).await;
                self.restart(w).await?;
                Err(fail(why))
            }
        }
    }

    /// Asks the worker to exit (it takes down its process group, including processes model code
    /// started), and kills the group if it is not gone within a second.
    pub async fn shutdown(mut self) {
        if let Some(mut w) = self.worker.take() {
            if w.send(&ToWorker::Shutdown).await.is_ok()
                && let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_secs(1), w.child.wait()).await
            {
                w.reaped = true;
                tracing::debug!(pid = w.pid, %status, "REPL worker exited");
            }
            w.kill().await;
        }
    }
}

fn kind(msg: &FromWorker) -> &'static str {
    match msg {
        FromWorker::Ready { .. } => "Ready",
        FromWorker::Fatal { .. } => "Fatal",
        FromWorker::SandboxFailed { .. } => "SandboxFailed",
        FromWorker::SubCallRequest { .. } => "SubCallRequest",
        FromWorker::IndexRequest { .. } => "IndexRequest",
        FromWorker::Done(_) => "Done",
        FromWorker::Var { .. } => "Var",
    }
}

/// How long a request to the worker may take.
#[derive(Clone, Copy)]
struct Limits {
    /// The worker's own time, not counting the sub-calls it waits for.
    run: Duration,
    /// All of it, sub-calls included.
    wall: Duration,
}

/// How a request to the worker ended.
enum Outcome<T> {
    Reply(T),
    /// Past a limit; `wall` when it was the one that counts sub-calls.
    TimedOut {
        wall: bool,
    },
    /// The worker went away (`stream_ended`) or broke the protocol.
    Died {
        problem: String,
        stream_ended: bool,
    },
}

/// Sends `frame` and waits for the reply `accept` takes, answering sub-calls (with `sub`) and
/// index queries (with `index`) on the way, or with errors when `None`. The worker may run for
/// `limits.run`, not counting the time spent answering sub-calls, which is added to `paused`,
/// and for `limits.wall` in all.
async fn converse<T>(
    w: &mut Worker,
    frame: &[u8],
    limits: Limits,
    sub: Option<&dyn SubCalls>,
    index: Option<&dyn IndexQueries>,
    paused: &mut Duration,
    accept: impl Fn(FromWorker) -> Result<T, &'static str>,
) -> Outcome<T> {
    let started = Instant::now();
    let gone = |e: FrameError| Outcome::Died {
        problem: format!("the worker stopped reading ({e})"),
        stream_ended: true,
    };
    if let Err(e) = w.send_frame(frame).await {
        return gone(e);
    }
    // The chunk list whose pages this request is reading.
    let mut chunks: Option<Arc<Vec<Chunk>>> = None;
    loop {
        let run_left = limits
            .run
            .saturating_sub(started.elapsed().saturating_sub(*paused));
        let wall_left = limits.wall.saturating_sub(started.elapsed());
        let Ok(msg) = tokio::time::timeout(run_left.min(wall_left), w.recv()).await else {
            return Outcome::TimedOut {
                wall: wall_left <= run_left,
            };
        };
        match msg {
            Ok(Some(FromWorker::SubCallRequest { prompts, contexts })) => {
                let asked = Instant::now();
                let n = prompts.len();
                let answer = async {
                    match (sub, contexts) {
                        (Some(sub), Some(contexts)) => sub.rlm_batch(prompts, contexts).await,
                        (Some(sub), None) => sub.batch(prompts).await,
                        (None, _) => {
                            vec![Err("llm_query cannot be used while a variable is read".into()); n]
                        }
                    }
                };
                // Calls still in flight at the wall limit are abandoned with the cell.
                let wall_left = limits.wall.saturating_sub(started.elapsed());
                let Ok(results) = tokio::time::timeout(wall_left, answer).await else {
                    return Outcome::TimedOut { wall: true };
                };
                *paused += asked.elapsed();
                let reply = protocol::encode(&sub_call_reply(results, n));
                if let Err(e) = async { w.send_frame(&reply?).await }.await {
                    return gone(e);
                }
            }
            Ok(Some(FromWorker::IndexRequest { query })) => {
                let reply = answer_index(index, query, &mut chunks);
                let frame = protocol::encode(&ToWorker::IndexReply { reply }).or_else(|e| {
                    protocol::encode(&ToWorker::IndexReply {
                        reply: IndexReply::Error {
                            message: format!("the answer is too large: {e}"),
                        },
                    })
                });
                if let Err(e) = async { w.send_frame(&frame?).await }.await {
                    return gone(e);
                }
            }
            Ok(Some(msg)) => {
                return match accept(msg) {
                    Ok(v) => Outcome::Reply(v),
                    Err(other) => Outcome::Died {
                        problem: format!("protocol error: unexpected message {other}"),
                        stream_ended: false,
                    },
                };
            }
            Ok(None) | Err(FrameError::Io(_)) | Err(FrameError::Truncated { .. }) => {
                return Outcome::Died {
                    problem: String::new(),
                    stream_ended: true,
                };
            }
            Err(e) => {
                return Outcome::Died {
                    problem: format!("protocol error: {e}"),
                    stream_ended: false,
                };
            }
        }
    }
}

fn cell_output(done: CellDone, duration: Duration, sandbox: &SandboxConfig) -> CellOutput {
    CellOutput {
        stdout: done.stdout,
        stderr: done.stderr,
        output_bytes: done.output_bytes,
        final_answer: done.final_answer,
        error: done.error.map(|e| sandbox::explain_error(e, sandbox)),
        timed_out: false,
        over_wall_time: false,
        worker_died: None,
        restored_helpers: done.restored_helpers,
        reads: done.reads,
        namespace: done.namespace,
        edits: done.edits,
        duration,
    }
}

/// One result per prompt (padded or cut to `n`), small enough for one frame.
fn sub_call_reply(results: Vec<Result<String, String>>, n: usize) -> ToWorker {
    let mut results: Vec<SubCallResult> = results
        .into_iter()
        .map(|r| match r {
            Ok(s) => SubCallResult::Ok(s),
            Err(e) => SubCallResult::Err(e),
        })
        .collect();
    results.resize(n, SubCallResult::Err("no answer".into()));
    let total: usize = results
        .iter()
        .map(|r| match r {
            SubCallResult::Ok(s) | SubCallResult::Err(s) => s.len(),
        })
        .sum();
    // JSON escaping can grow text up to 6x; stay well inside the frame limit.
    let limit = protocol::MAX_FRAME_BYTES / 8;
    if total > limit {
        let each = limit / n.max(1);
        for r in &mut results {
            if let SubCallResult::Ok(s) | SubCallResult::Err(s) = r
                && s.len() > each
            {
                *s = super::capture::cap_string(std::mem::take(s), each);
            }
        }
    }
    ToWorker::SubCallReply { results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_call_replies_are_padded_and_bounded() {
        let ToWorker::SubCallReply { results } = sub_call_reply(vec![Ok("a".into())], 2) else {
            unreachable!()
        };
        assert_eq!(
            results,
            vec![
                SubCallResult::Ok("a".into()),
                SubCallResult::Err("no answer".into())
            ]
        );
        let big = "x".repeat(protocol::MAX_FRAME_BYTES / 4);
        let reply = sub_call_reply(vec![Ok(big.clone()), Err(big)], 2);
        assert!(protocol::encode(&reply).is_ok());
    }
}
