//! Hover latency of the real server binary over stdio on a large workspace (every crate cargo
//! unpacked under ~/.cargo/registry/src), cold (right after initialize, the index still filling),
//! warm (index complete) and during a run (a scripted model keeps an `rlm.ask` busy), and the
//! idle server's memory. Hover must never wait on a model; target: under 200 ms.
//!
//! Run: `cargo bench -p rlm-lsp --bench lsp_hover [-- DIR]`
#![allow(clippy::print_stdout)]

use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Lsp {
    w: ChildStdin,
    r: BufReader<ChildStdout>,
    next: i64,
}

impl Lsp {
    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        write!(self.w, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.w.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut len = 0;
        loop {
            let mut line = String::new();
            assert!(self.r.read_line(&mut line).unwrap() > 0, "server exited");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut self.r, &mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn start(&mut self, method: &str, params: Value) -> i64 {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Reads until the response to `id`, answering server requests on the way.
    fn wait(&mut self, id: i64) -> Value {
        loop {
            let m = self.read();
            if m.get("method").is_some() && m.get("id").is_some() {
                self.send(&json!({"jsonrpc": "2.0", "id": m["id"], "result": null}));
            } else if m["id"] == id {
                return m;
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let dir: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("CARGO_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
            std::fs::read_dir(home.join("registry/src"))
                .unwrap()
                .flatten()
                .next()
                .unwrap()
                .path()
        });
    // A file and an identifier in it to hover: the first `pub fn` of the first .rs file found.
    let (file, line, col) = ignore::Walk::new(&dir)
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .find_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            text.lines().enumerate().find_map(|(i, l)| {
                l.find("pub fn ")
                    .map(|c| (e.path().to_path_buf(), i as u32, (c + 7) as u32))
            })
        })
        .expect("a Rust file with a pub fn");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt
        .block_on(ScriptedServer::start(
            vec![Step::Delayed(
                Duration::from_secs(600),
                "FINAL(late)".into(),
            )],
            SubRule::Echo,
        ))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"))
        .arg("serve")
        .env("RLM_BASE_URL", model.base_url())
        .env("RLM_MODEL", "scripted")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lsp = Lsp {
        w: child.stdin.take().unwrap(),
        r: BufReader::new(child.stdout.take().unwrap()),
        next: 0,
    };
    let root = format!("file://{}", dir.display());
    let started = Instant::now();
    let id = lsp.start(
        "initialize",
        json!({"processId": null, "rootUri": root, "capabilities": {},
               "workspaceFolders": [{"uri": root, "name": "registry"}]}),
    );
    lsp.wait(id);
    let init_ms = started.elapsed().as_secs_f64() * 1e3;
    lsp.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    let uri = format!("file://{}", file.display());
    let hover = |lsp: &mut Lsp| {
        let t = Instant::now();
        let id = lsp.start(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}}),
        );
        let r = lsp.wait(id);
        (t.elapsed().as_secs_f64() * 1e3, r)
    };
    let cold: Vec<f64> = (0..5).map(|_| hover(&mut lsp).0).collect();
    // Warm: wait until rlm.status says the index is complete.
    let index_started = Instant::now();
    loop {
        let id = lsp.start(
            "workspace/executeCommand",
            json!({"command": "rlm.status", "arguments": []}),
        );
        let s = lsp.wait(id);
        if s["result"]["index"]["complete"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let index_s = index_started.elapsed().as_secs_f64() + init_ms / 1e3;
    let warm: Vec<f64> = (0..20).map(|_| hover(&mut lsp).0).collect();
    let pid = child.id();
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .to_string();
    // During a run: an ask whose model never answers in time.
    let ask = lsp.start(
        "workspace/executeCommand",
        json!({"command": "rlm.ask", "arguments": [{"question": "slow?", "id": "bench"}]}),
    );
    std::thread::sleep(Duration::from_millis(500));
    let during: Vec<f64> = (0..20).map(|_| hover(&mut lsp).0).collect();
    let id = lsp.start(
        "workspace/executeCommand",
        json!({"command": "rlm.cancel", "arguments": [{"id": "bench"}]}),
    );
    lsp.wait(id);
    lsp.wait(ask);
    let _ = child.kill();
    let _ = child.wait();
    println!("workspace: {} ({})", dir.display(), file.display());
    println!(
        "initialize (walk and read every root): {init_ms:.0} ms; index complete after {index_s:.1} s"
    );
    println!(
        "hover cold (index filling): median {:.1} ms, max {:.1} ms",
        median(cold.clone()),
        cold.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "hover warm: median {:.1} ms, max {:.1} ms",
        median(warm.clone()),
        warm.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "hover during a run: median {:.1} ms, max {:.1} ms (target < 200 ms)",
        median(during.clone()),
        during.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "idle server memory after indexing: {}",
        rss.trim_start_matches("VmRSS:").trim()
    );
}
