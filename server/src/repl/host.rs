//! The parent side: one worker process per [`Repl`], restarted when it times out or dies.

use super::index::{IndexQueries, SymbolQuery};
use super::protocol::{
    self, CHUNK_PAGE, CellDone, FrameError, FromWorker, IndexQuery, IndexReply, SubCallResult,
    ToWorker,
};
use super::sandbox::{self, SandboxConfig};
use super::{CellOutput, ContextBlob, ReplConfig, ReplError, SubCalls, WORKER_SUBCOMMAND};
use crate::index::Chunk;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// How long a worker may take from spawn to `Ready`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the worker's stderr kept to describe a crash.
const STDERR_TAIL_BYTES: usize = 4096;
/// Lines of a worker's stderr copied to the log (the rest is drained and dropped).
const STDERR_LOG_LINES: usize = 200;
/// The most definitions one `symbols()` reply carries.
const MAX_SYMBOLS: u64 = 100_000;
/// Characters of a definition's signature sent to the worker.
const MAX_SIGNATURE_CHARS: usize = 300;
/// The most locations one `Enclosing` query may ask about, and the most `search()` results.
const MAX_LOCATIONS: usize = 1_000_000;
const MAX_SEARCH_RESULTS: u64 = 10_000;

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

/// Answers one index query; `chunks` keeps the list one request pages through.
fn answer_index(
    index: Option<&dyn IndexQueries>,
    query: IndexQuery,
    chunks: &mut Option<Arc<Vec<Chunk>>>,
) -> IndexReply {
    let Some(index) = index else {
        return IndexReply::Error {
            message: "there is no code index in this run (symbols, outline, chunks, \
                      definitions, callers, implementations and search are unavailable); use \
                      grep(pattern) and read(path, start, end) instead"
                .into(),
        };
    };
    let short = |mut d: crate::index::Definition| {
        if let Some((cut, _)) = d.signature.char_indices().nth(MAX_SIGNATURE_CHARS) {
            d.signature.truncate(cut);
            d.signature.push_str("...");
        }
        d
    };
    match query {
        IndexQuery::Symbols {
            name,
            kind,
            path,
            limit,
        } => {
            let found = index.symbols(&SymbolQuery { name, kind, path });
            let total = found.len() as u64;
            let keep = limit.min(MAX_SYMBOLS) as usize;
            IndexReply::Symbols {
                total,
                definitions: found.into_iter().take(keep).map(short).collect(),
            }
        }
        IndexQuery::Outline { path } => IndexReply::Outline {
            entries: index
                .outline(&path)
                .into_iter()
                .map(|(depth, d)| (depth, short(d)))
                .collect(),
        },
        IndexQuery::Chunks { offset, limit } => {
            if offset == 0 || chunks.is_none() {
                *chunks = Some(index.chunks());
            }
            let all = chunks.as_deref().map_or(&[][..], |c| c.as_slice());
            let start = (offset as usize).min(all.len());
            let end = start
                .saturating_add(limit.min(CHUNK_PAGE) as usize)
                .min(all.len());
            IndexReply::Chunks {
                total: all.len() as u64,
                offset: start as u64,
                chunks: all[start..end].to_vec(),
            }
        }
        IndexQuery::Definitions { name } => IndexReply::Definitions {
            definitions: index.definitions(&name).into_iter().map(short).collect(),
        },
        IndexQuery::Enclosing { mut locations } => {
            locations.truncate(MAX_LOCATIONS);
            IndexReply::Enclosing {
                definitions: index
                    .enclosing(&locations)
                    .into_iter()
                    .map(|d| d.map(short))
                    .collect(),
            }
        }
        IndexQuery::Implementations { name } => IndexReply::Implementations {
            entries: index
                .implementations(&name)
                .into_iter()
                .map(|mut e| {
                    if let Some((cut, _)) = e.signature.char_indices().nth(MAX_SIGNATURE_CHARS) {
                        e.signature.truncate(cut);
                        e.signature.push_str("...");
                    }
                    e
                })
                .collect(),
        },
        IndexQuery::Search { text, k } => {
            let k = k.min(MAX_SEARCH_RESULTS) as usize;
            // The first search of an index version builds its BM25 (seconds on a large
            // workspace): off the async worker thread where the runtime allows it.
            let found = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| index.search(&text, k))
                }
                _ => index.search(&text, k),
            };
            match found {
                Ok(hits) => IndexReply::Search { hits },
                Err(message) => IndexReply::Error { message },
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

/// A running worker process.
struct Worker {
    child: Child,
    pid: i32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    stderr_task: Option<JoinHandle<()>>,
    /// Set once `wait` returned: the pid (and process group id) may be reused, never signal it.
    reaped: bool,
    /// Private working directory (`HOME`, `TMPDIR`, cwd); removed with the worker.
    workdir: tempfile::TempDir,
    /// The sandbox it was asked for, and the status line it reported.
    sandbox: SandboxConfig,
    sandbox_status: String,
}

impl Worker {
    async fn start(cfg: &ReplConfig, blob: &ContextBlob) -> Result<Worker, ReplError> {
        let started = Instant::now();
        let workdir = tempfile::Builder::new()
            .prefix("rlm-repl-")
            .tempdir()
            .map_err(ReplError::Workdir)?;
        let mut cmd = Command::new(&cfg.worker_exe);
        cmd.arg(WORKER_SUBCOMMAND)
            .env_clear()
            .envs(worker_env(workdir.path()))
            .current_dir(workdir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ReplError::Spawn {
            exe: cfg.worker_exe.clone(),
            source,
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ReplError::Start("the worker's pipes are missing".into()));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(drain_stderr(stderr, pid, stderr_tail.clone()));
        let mut w = Worker {
            child,
            pid,
            stdin,
            stdout: BufReader::with_capacity(64 << 10, stdout),
            stderr_tail,
            stderr_task: Some(stderr_task),
            reaped: false,
            workdir,
            sandbox: cfg.sandbox.clone(),
            sandbox_status: String::new(),
        };
        let init = ToWorker::Init {
            blob: blob.path().to_path_buf(),
            workdir: w.workdir.path().to_path_buf(),
            max_output_bytes: cfg.max_output_bytes as u64,
            sandbox: cfg.sandbox.clone(),
        };
        let (problem, stream_ended) = match w.send(&init).await {
            Err(e) => (format!("cannot send Init ({e})"), true),
            Ok(()) => match tokio::time::timeout(START_TIMEOUT, w.recv()).await {
                Err(_) => {
                    w.kill().await;
                    return Err(ReplError::StartTimeout(START_TIMEOUT));
                }
                Ok(Ok(Some(FromWorker::Ready {
                    python,
                    files,
                    bytes,
                    sandbox,
                }))) => {
                    tracing::debug!(
                        pid,
                        python,
                        files,
                        bytes,
                        ms = started.elapsed().as_millis() as u64,
                        sandbox,
                        "REPL worker ready"
                    );
                    w.sandbox_status = sandbox;
                    return Ok(w);
                }
                Ok(Ok(Some(FromWorker::SandboxFailed { message }))) => {
                    w.kill().await;
                    return Err(ReplError::Sandbox(message));
                }
                Ok(Ok(Some(FromWorker::Fatal { message }))) => (message, false),
                Ok(Ok(Some(other))) => (format!("unexpected message {}", kind(&other)), false),
                Ok(Ok(None)) => (String::new(), true),
                Ok(Err(e @ (FrameError::Io(_) | FrameError::Truncated { .. }))) => {
                    (format!("{e}"), true)
                }
                Ok(Err(e)) => (format!("protocol error: {e}"), false),
            },
        };
        Err(ReplError::Start(w.death_note(&problem, stream_ended).await))
    }

    async fn send(&mut self, msg: &ToWorker) -> Result<(), FrameError> {
        self.send_frame(&protocol::encode(msg)?).await
    }

    async fn send_frame(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        self.stdin.write_all(frame).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<FromWorker>, FrameError> {
        protocol::read_frame(&mut self.stdout).await
    }

    /// SIGKILL to the whole process group (the worker and anything model code started), then reap.
    async fn kill(&mut self) {
        if self.reaped {
            return;
        }
        self.killpg();
        let _ = self.child.wait().await;
        self.reaped = true;
    }

    fn killpg(&self) {
        if self.pid > 0 {
            // SAFETY: signalling a process group we created; the group leader is not reaped yet,
            // so the id cannot belong to anyone else.
            unsafe {
                libc::killpg(self.pid, libc::SIGKILL);
            }
        }
    }

    /// Ends a worker that stopped answering and describes what happened: `problem`, how it exited
    /// (when `stream_ended`, i.e. it went away by itself) and the end of its stderr.
    async fn death_note(&mut self, problem: &str, stream_ended: bool) -> String {
        // Kill the group before reaping the leader: children of model code go too, and the id
        // cannot have been reused yet. A worker that already exited keeps its exit status.
        let status = if self.reaped {
            None
        } else {
            self.killpg();
            match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
                Ok(Ok(status)) => {
                    self.reaped = true;
                    Some(status)
                }
                _ => None,
            }
        };
        if let Some(task) = self.stderr_task.take() {
            // Give the drain a moment to read what the worker wrote last.
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        let mut parts = Vec::new();
        if !problem.is_empty() {
            parts.push(problem.to_string());
        }
        match status {
            Some(s) if stream_ended => parts.push(describe_status(s)),
            _ if problem.is_empty() => parts.push("the worker stopped answering".into()),
            _ => {}
        }
        let tail = {
            let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
            String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).into_owned()
        };
        if let Some(why) =
            sandbox::explain_death(status.and_then(|s| s.signal()), &tail, &self.sandbox)
        {
            parts.insert(0, why);
        }
        let tail = last_lines(&tail, 12);
        if !tail.is_empty() {
            parts.push(format!("its last stderr output:\n{tail}"));
        }
        parts.join("; ")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.reaped {
            self.killpg();
            // tokio reaps the zombie in the background (kill_on_drop).
        }
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

fn describe_status(s: ExitStatus) -> String {
    if let Some(code) = s.code() {
        return format!("the worker exited with status {code}");
    }
    match s.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGSEGV => " (SIGSEGV, a segmentation fault)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGABRT => " (SIGABRT, aborted)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGKILL => " (SIGKILL, e.g. out of memory)",
                libc::SIGXCPU => " (SIGXCPU, the CPU time limit)",
                libc::SIGSYS => " (SIGSYS, a forbidden system call)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("the worker was killed by signal {sig}{name}")
        }
        None => format!("the worker ended ({s})"),
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// The worker's whole environment: what Python needs, nothing else (no API keys).
fn worker_env(workdir: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        (
            "PATH".into(),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ("PYTHONHASHSEED".into(), "0".into()),
        ("PYTHONIOENCODING".into(), "utf-8".into()),
        ("PYTHONNOUSERSITE".into(), "1".into()),
        ("HOME".into(), workdir.into()),
        ("TMPDIR".into(), workdir.into()),
    ];
    // Only when the embedding Python was built for a relocated installation.
    if let Some(home) = std::env::var_os("PYTHONHOME") {
        env.push(("PYTHONHOME".into(), home));
    }
    env
}

/// Reads the worker's stderr until it closes: the first lines go to the log, the last bytes are
/// kept to describe a crash, the rest is dropped (the worker never blocks on a full pipe).
async fn drain_stderr(mut stderr: ChildStderr, pid: i32, tail: Arc<Mutex<VecDeque<u8>>>) {
    let mut buf = vec![0u8; 16 << 10];
    let mut line: Vec<u8> = Vec::new();
    let mut logged = 0usize;
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        {
            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
            t.extend(&chunk[chunk.len().saturating_sub(STDERR_TAIL_BYTES)..]);
            let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
            t.drain(..excess);
        }
        if logged > STDERR_LOG_LINES {
            continue;
        }
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            if line.len() < 2000 {
                line.extend_from_slice(&piece[..piece.len().min(2000 - line.len())]);
            }
            if piece.ends_with(b"\n") {
                if logged < STDERR_LOG_LINES {
                    tracing::debug!(
                        target: "rlm_lsp::repl::worker",
                        pid,
                        "{}",
                        String::from_utf8_lossy(&line).trim_end()
                    );
                } else if logged == STDERR_LOG_LINES {
                    tracing::debug!(
                        target: "rlm_lsp::repl::worker",
                        pid,
                        "further stderr output of this worker is not logged"
                    );
                }
                logged += 1;
                line.clear();
            }
        }
    }
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

    #[test]
    fn worker_env_has_no_secrets() {
        let env = worker_env(Path::new("/tmp/w"));
        let names: Vec<_> = env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.contains("KEY") && !n.contains("TOKEN"))
        );
        assert!(names.contains(&"HOME".to_string()));
    }
}
