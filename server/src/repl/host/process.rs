//! The worker process: spawned with a clean environment in a process group of its own, spoken
//! to in frames over its pipes, killed with its group, and described when it dies.

use super::kind;
use crate::repl::protocol::{self, FrameError, FromWorker, ToWorker};
use crate::repl::sandbox::{self, SandboxConfig};
use crate::repl::{ContextBlob, ReplConfig, ReplError, WORKER_SUBCOMMAND};
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

/// A running worker process.
pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) pid: i32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    stderr_task: Option<JoinHandle<()>>,
    /// Set once `wait` returned: the pid (and process group id) may be reused, never signal it.
    pub(super) reaped: bool,
    /// Private working directory (`HOME`, `TMPDIR`, cwd); removed with the worker.
    workdir: crate::repl::owned_dir::OwnedTempDir,
    /// The sandbox it was asked for, and the status line it reported.
    sandbox: SandboxConfig,
    pub(super) sandbox_status: String,
}

impl Worker {
    pub(super) async fn start(cfg: &ReplConfig, blob: &ContextBlob) -> Result<Worker, ReplError> {
        let started = Instant::now();
        let workdir =
            crate::repl::owned_dir::OwnedTempDir::new("rlm-repl-").map_err(ReplError::Workdir)?;
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

    pub(super) async fn send(&mut self, msg: &ToWorker) -> Result<(), FrameError> {
        self.send_frame(&protocol::encode(msg)?).await
    }

    pub(super) async fn send_frame(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        self.stdin.write_all(frame).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    pub(super) async fn recv(&mut self) -> Result<Option<FromWorker>, FrameError> {
        protocol::read_frame(&mut self.stdout).await
    }

    /// SIGKILL to the whole process group (the worker and anything model code started), then reap.
    pub(super) async fn kill(&mut self) {
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
    pub(super) async fn death_note(&mut self, problem: &str, stream_ended: bool) -> String {
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
