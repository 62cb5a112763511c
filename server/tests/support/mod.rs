//! Shared by the reliability tests (`lsp_fuzz`, `soak`, `odd_workspaces`, `secrets`,
//! `local_model_faults`): an LSP client over any byte streams (a duplex pipe to the in-process
//! server, or the pipes of `rlm-lsp serve`), and what `/proc` says of a process.
#![allow(dead_code)] // each test binary uses its own part

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// How the client answers a request from the server (`window/workDoneProgress/create`,
/// `workspace/applyEdit`, ...): the `result` to send, or `None` for no answer at all.
pub type Answerer = Box<dyn FnMut(&Value) -> Option<Value> + Send>;

/// An editor's answers: progress created, edits applied, documents shown, questions unanswered.
pub fn editor_answers() -> Answerer {
    Box::new(|msg| {
        Some(match msg["method"].as_str() {
            Some("workspace/applyEdit") => json!({"applied": true}),
            Some("window/showDocument") => json!({"success": true}),
            _ => Value::Null,
        })
    })
}

/// A JSON-RPC client with `Content-Length` framing. Notifications and server requests are kept
/// in `notifications`; responses that arrive while another is awaited wait in `responses`.
pub struct LspClient<R, W> {
    reader: BufReader<R>,
    pub writer: W,
    next_id: i64,
    pub notifications: Vec<Value>,
    pub responses: VecDeque<Value>,
    pub answer: Answerer,
    /// How long to wait for one message before declaring the server hung.
    pub hang_guard: Duration,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> LspClient<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        LspClient {
            reader: BufReader::new(reader),
            writer,
            next_id: 0,
            notifications: Vec::new(),
            responses: VecDeque::new(),
            answer: editor_answers(),
            hang_guard: Duration::from_secs(120),
        }
    }

    pub async fn send(&mut self, msg: &Value) {
        self.send_body(&serde_json::to_vec(msg).unwrap()).await;
    }

    /// One frame with this body, whatever it holds.
    pub async fn send_body(&mut self, body: &[u8]) {
        let head = format!("Content-Length: {}\r\n\r\n", body.len());
        self.send_raw(head.as_bytes()).await;
        self.send_raw(body).await;
    }

    /// Bytes as they are, framed or not.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// The next message, `None` when the server closed its output.
    pub async fn try_read(&mut self) -> Option<Value> {
        let guard = self.hang_guard;
        tokio::time::timeout(guard, read_frame(&mut self.reader))
            .await
            .unwrap_or_else(|_| panic!("the server sent nothing for {guard:?}"))
    }

    pub async fn read_message(&mut self) -> Value {
        self.try_read().await.expect("the server closed its output")
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a request and returns its id without waiting.
    pub async fn start_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id();
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// Keeps a message from the server, answering it when it is a request.
    pub async fn handle(&mut self, msg: Value) {
        if msg.get("method").is_none() {
            self.responses.push_back(msg);
            return;
        }
        if msg.get("id").is_some()
            && let Some(result) = (self.answer)(&msg)
        {
            let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
            self.send(&reply).await;
        }
        self.notifications.push(msg);
    }

    /// Reads until the response to `id` (any JSON id), answering server requests on the way.
    pub async fn wait_response(&mut self, id: impl Into<Value>) -> Value {
        let id = id.into();
        loop {
            if let Some(i) = self.responses.iter().position(|r| r["id"] == id) {
                return self.responses.remove(i).unwrap();
            }
            let msg = self.read_message().await;
            self.handle(msg).await;
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.start_request(method, params).await;
        self.wait_response(id).await
    }

    pub async fn command(&mut self, command: &str, argument: Value) -> Value {
        self.request(
            "workspace/executeCommand",
            json!({"command": command, "arguments": [argument]}),
        )
        .await
    }

    /// `initialize` on `root` (with `options` as `initializationOptions`) and `initialized`.
    pub async fn initialize(&mut self, root: &Path, options: Value) -> Value {
        let uri = format!("file://{}", root.display());
        let init = self
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "capabilities": {
                        "window": {"workDoneProgress": true},
                        "workspace": {
                            "didChangeWatchedFiles": {"dynamicRegistration": true},
                            "workspaceEdit": {"documentChanges": true,
                                              "resourceOperations": ["create", "rename"]},
                        },
                    },
                    "workspaceFolders": [{"uri": uri, "name": "ws"}],
                    "initializationOptions": options,
                }),
            )
            .await;
        assert!(init["result"]["capabilities"].is_object(), "{init}");
        self.notify("initialized", json!({})).await;
        init
    }

    /// `shutdown` then `exit`.
    pub async fn shutdown(&mut self) {
        let r = self.request("shutdown", Value::Null).await;
        assert!(r.get("error").is_none(), "{r}");
        self.notify("exit", Value::Null).await;
    }
}

/// One frame's body as JSON; `None` at the end of the stream. Panics on a frame that is not
/// one: the server must never write anything else.
pub async fn read_frame<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = Some(v.parse::<usize>().expect("a numeric Content-Length"));
        }
    }
    let mut body = vec![0; len.expect("every frame has a Content-Length")];
    r.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "the server wrote a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    }))
}

/// Writes one frame to a blocking stream (the stdin of a `rlm-lsp serve` child).
pub fn write_frame_blocking(w: &mut impl std::io::Write, msg: &Value) {
    let body = msg.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    w.flush().unwrap();
}

/// Reads one frame from a blocking stream (the stdout of a `rlm-lsp serve` child); panics
/// when the server closed it.
pub fn read_frame_blocking(r: &mut impl std::io::BufRead) -> Value {
    let mut len = 0;
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "the server closed stdout"
        );
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Two small files, one with a function called from `main`: enough for asks, hover, explain
/// (`alpha` at line 6, column 7) and a rename.
pub const SMALL_WORKSPACE: &[(&str, &str)] = &[
    (
        "a.rs",
        "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n",
    ),
    ("b.py", "def beta():\n    return 1\n"),
];

/// A workspace of `files` (path, text) in a new temp directory, and its canonical path.
pub fn write_workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for (p, t) in files {
        let full = root.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, t).unwrap();
    }
    (dir, root)
}

/// A root model reply that runs one cell.
pub fn cell(body: &str) -> rlm_lsp::llm::scripted::Step {
    rlm_lsp::llm::scripted::Step::Reply(format!("```repl\n{body}\n```\n"))
}

/// Whether the server reported (`rlm/progress`) that the root model replied in run `id`: its
/// first cell is about to run, or running.
pub fn root_model_replied(messages: &[Value], id: &str) -> bool {
    messages.iter().any(|m| {
        m["method"] == "rlm/progress"
            && m["params"]["id"] == id
            && m["params"]["message"]
                .as_str()
                .is_some_and(|s| s.contains("the root model replied"))
    })
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> LspClient<R, W> {
    /// Reads (answering the server) until `done` holds of the messages kept.
    pub async fn read_until(&mut self, done: impl Fn(&[Value]) -> bool) {
        while !done(&self.notifications) {
            let msg = self.read_message().await;
            self.handle(msg).await;
        }
    }
}

/// The REPL workers below `pid`.
pub fn repl_workers(pid: u32) -> Vec<u32> {
    descendants(pid)
        .into_iter()
        .filter(|p| cmdline(*p).iter().any(|a| a == "__repl-worker"))
        .collect()
}

/// What `/proc` says of a process: resident memory, descriptors, threads, children.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFigures {
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
    pub children: usize,
}

impl ProcFigures {
    pub fn of(pid: u32) -> ProcFigures {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        ProcFigures {
            rss_kib: field("VmRSS:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
            threads: field("Threads:"),
            children: descendants(pid).len(),
        }
    }
}

impl std::fmt::Display for ProcFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rss {:.1} MiB, {} fds, {} threads, {} child processes",
            self.rss_kib as f64 / 1024.0,
            self.fds,
            self.threads,
            self.children
        )
    }
}

/// Field `n` (0 = state) after the command name in `/proc/PID/stat`.
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(n)?
            .to_string(),
    )
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|s| s != "Z" && s != "X")
}

/// Every live process.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Live descendants of `pid` (children, their children, ...).
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter(|p| alive(*p))
        .filter_map(|p| Some((p, stat_field(p, 1)?.parse().ok()?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, parent) in &parents {
            if *parent == p && !out.contains(child) {
                out.push(*child);
                frontier.push(*child);
            }
        }
    }
    out
}

/// The command line of a process, arguments split.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Live processes whose environment holds `KEY=value` (how a test finds what it started,
/// however the processes were re-parented).
pub fn processes_with_env(key: &str, value: &str) -> Vec<u32> {
    let want = format!("{key}={value}").into_bytes();
    all_pids()
        .into_iter()
        .filter(|p| alive(*p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_slice()))
        })
        .collect()
}

/// Polls `ok` every 50 ms for up to `within`; panics with `what` after that.
pub async fn poll(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(clippy::print_stderr)]
pub fn note(test: &str, message: &str) {
    eprintln!("[{test}] {message}");
}
