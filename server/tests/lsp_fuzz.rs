//! Protocol fuzzing: the language server in process (over a duplex pipe, as `lsp_server.rs`),
//! with the scripted model server and the real REPL worker, sent seeded random sequences of valid
//! and malformed messages: bodies that are not JSON or not JSON-RPC, wrong parameter types for
//! every method and every `rlm.*` command, unknown methods, huge messages, positions past the
//! end of a document, changes to files never opened, answers of every shape to the server's own
//! requests, requests after `shutdown`. Every request must get exactly one well-formed response
//! (a result or a JSON-RPC error), every malformed frame its error, nothing may panic, and
//! `exit` must end the server.
//!
//! Time-bounded: sequences are started for `RLM_FUZZ_SECS` (default 30; one takes 0.1-15 s in a
//! debug build), from `RLM_FUZZ_SEED` (default: a fixed seed, so CI runs the same cases each
//! time). A failure names its seed and the messages sent, so it can be replayed with
//! `RLM_FUZZ_SEED=<seed> RLM_FUZZ_SEQUENCES=1`; `RLM_FUZZ_VERBOSE=1` prints each seed's time.

mod support;

use rlm_lsp::engine::Models;
use rlm_lsp::llm::RetryPolicy;
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::lsp::{ServerOptions, serve};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{LspClient, note};
use tokio::io::{AsyncWriteExt, DuplexStream};

/// Panics anywhere in this process but on the tests' own threads (the server's tasks run on the
/// runtime's workers), counted by a hook; a test failing is not a server panic.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// The tests of this file: a panic on their thread is an assertion failing.
const TESTS: &[&str] = &[
    "random_message_sequences_are_all_answered_and_nothing_panics",
    "oversized_and_headless_frames_are_answered_and_reading_goes_on",
    "a_client_gone_mid_message_ends_the_server",
];

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !std::thread::current()
                .name()
                .is_some_and(|n| TESTS.contains(&n))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

const FILES: &[(&str, &str)] = &[
    (
        "a.rs",
        "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n",
    ),
    ("b.py", "def beta():\n    return 'é😀'\n"),
    ("src/ünï.rs", "pub struct Gamma;\n"),
    (".env", "SECRET=1\n"),
];

/// What a sequence sent and what it must get back.
#[derive(Default)]
struct Expect {
    /// Request ids sent, and whether a result is allowed (false: only an error, e.g. after
    /// `shutdown` or for a malformed request).
    requests: HashMap<String, bool>,
    /// Malformed frames whose error carries a null id.
    null_errors: usize,
    /// What was sent, each message cut short, to show when a response is missing.
    log: Vec<String>,
}

impl Expect {
    fn sent(&mut self, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        self.log.push(text.chars().take(300).collect());
    }

    fn missing(&self, seed: u64) -> String {
        format!(
            "seed {seed}: no response within 120 s to {:?} ({} null-id errors missing); sent:\n{}",
            self.requests.keys().collect::<Vec<_>>(),
            self.null_errors,
            self.log.join("\n")
        )
    }
}

struct Gen {
    rng: fastrand::Rng,
    root: PathBuf,
    other: PathBuf,
    next: u64,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    fn string(&mut self) -> String {
        match self.rng.u8(..10) {
            0 => String::new(),
            1 => "x".repeat(self.rng.usize(1..200_000)),
            2 => "é😀\u{0}\u{FEFF}\r\n\t\"\\".into(),
            3 => "alpha".into(),
            4 => "FINAL(answer)".into(),
            _ => (0..self.rng.usize(1..40))
                .map(|_| self.rng.char(..))
                .collect(),
        }
    }

    /// Any JSON value, nested up to `depth`.
    fn value(&mut self, depth: u32) -> Value {
        let n = if depth == 0 { 6 } else { 8 };
        match self.rng.u8(..n) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.bool()),
            2 => json!(*self.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, u32::MAX as i64, 1 << 31])),
            3 => json!(*self.pick(&[0.5f64, -2.5, 1e300])),
            4 | 5 => Value::String(self.string()),
            6 => Value::Array(
                (0..self.rng.usize(..4))
                    .map(|_| self.value(depth - 1))
                    .collect(),
            ),
            _ => {
                let keys = [
                    "uri",
                    "question",
                    "id",
                    "position",
                    "line",
                    "character",
                    "text",
                    "range",
                    "instruction",
                    "textDocument",
                    "command",
                    "arguments",
                    "apply",
                    "preview",
                ];
                let mut m = Map::new();
                for _ in 0..self.rng.usize(..5) {
                    let k = self.pick(&keys).to_string();
                    m.insert(k, self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    fn uri(&mut self) -> Value {
        let root = self.root.display().to_string();
        let other = self.other.display().to_string();
        match self.rng.u8(..12) {
            0..=3 => json!(format!("file://{root}/a.rs")),
            4 => json!(format!("file://{root}/b.py")),
            5 => json!(format!("file://{root}/src/%C3%BCn%C3%AF.rs")),
            6 => json!(format!(
                "file://{root}/never-opened-{}.rs",
                self.rng.u8(..3)
            )),
            7 => json!(format!("file://{root}/.env")),
            8 => json!(format!("file://{other}/o.rs")),
            9 => json!(format!("file://{root}")),
            10 => json!(*self.pick(&["untitled:Untitled-1", "file:///", "not a uri", ""])),
            _ => self.value(1),
        }
    }

    fn number(&mut self) -> Value {
        if self.chance(0.1) {
            return self.value(0);
        }
        json!(*self.pick(&[0u64, 0, 1, 2, 3, 5, 6, 7, 100, u32::MAX as u64, 1 << 31]))
    }

    fn position(&mut self) -> Value {
        if self.chance(0.05) {
            return self.value(1);
        }
        json!({"line": self.number(), "character": self.number()})
    }

    fn range(&mut self) -> Value {
        json!({"start": self.position(), "end": self.position()})
    }

    fn run_id(&mut self) -> Value {
        match self.rng.u8(..5) {
            0 => json!(format!("r{}", self.rng.u8(..4))),
            1 => json!(self.rng.u8(..4)),
            2 => Value::Null,
            _ => self.value(1),
        }
    }

    /// The argument of an `rlm.*` command: well formed, or anything.
    fn command_argument(&mut self, command: &str) -> Value {
        if self.chance(0.25) {
            return self.value(2);
        }
        match command {
            "rlm.ask" => json!({"question": self.string(), "id": self.run_id()}),
            "rlm.explain" => json!({"uri": self.uri(), "position": self.position()}),
            "rlm.planRefactor" => json!({
                "instruction": self.string(), "uri": self.uri(), "range": self.range(),
                "apply": self.value(0), "preview": self.rng.bool(), "id": self.run_id()}),
            "rlm.applyPlan" | "rlm.cancel" => json!({"id": self.run_id()}),
            _ => self.value(1),
        }
    }

    fn execute_command(&mut self) -> Value {
        let commands = [
            "rlm.ask",
            "rlm.explain",
            "rlm.planRefactor",
            "rlm.applyPlan",
            "rlm.cancel",
            "rlm.status",
            "rlm.nope",
            "",
        ];
        // Runs start a REPL worker: fewer of them.
        let command = if self.chance(0.3) {
            *self.pick(&commands[..3])
        } else {
            *self.pick(&commands[3..])
        };
        let mut args: Vec<Value> = Vec::new();
        if !self.chance(0.1) {
            args.push(self.command_argument(command));
        }
        if self.chance(0.1) {
            args.push(self.value(1));
        }
        let mut params = json!({"command": command, "arguments": args});
        if self.chance(0.2) {
            params["workDoneToken"] = self.value(0);
        }
        if self.chance(0.05) {
            params["command"] = self.value(0);
        }
        params
    }

    fn folder(&mut self) -> Value {
        let path = match self.rng.u8(..4) {
            0 => self.root.clone(),
            1 => self.other.clone(),
            _ => self.root.join("no-such-folder"),
        };
        json!({"uri": format!("file://{}", path.display()), "name": "f"})
    }

    fn settings(&mut self) -> Value {
        let keys = [
            ("maxIterations", json!(3)),
            ("maxIterations", json!("three")),
            ("model", json!("scripted")),
            ("answerDocument", json!(true)),
            ("extraRoots", json!([self.other.display().to_string()])),
            ("extraRoots", json!(["relative/path"])),
            (
                "extraRoots",
                json!([self.root.join("gone").display().to_string()]),
            ),
            ("responseCache", json!("sometimes")),
            ("timeoutSecs", json!(-5)),
            ("bogus", json!(1)),
            ("maxCost", Value::Null),
        ];
        let mut m = Map::new();
        for _ in 0..self.rng.usize(..3) {
            let (k, v) = self.pick(&keys).clone();
            m.insert(k.into(), v);
        }
        match self.rng.u8(..4) {
            0 => json!({"settings": {"rlm": m}}),
            1 => json!({"settings": self.value(1)}),
            _ => json!({"settings": m}),
        }
    }

    fn did_change(&mut self) -> Value {
        let changes: Vec<Value> = (0..self.rng.usize(..4))
            .map(|_| {
                if self.chance(0.3) {
                    json!({"text": self.string()})
                } else if self.chance(0.1) {
                    self.value(1)
                } else {
                    json!({"range": self.range(), "text": self.string()})
                }
            })
            .collect();
        json!({"textDocument": {"uri": self.uri(), "version": self.number()},
               "contentChanges": changes})
    }

    /// A request: method and params, well typed or not.
    fn request(&mut self) -> (String, Value) {
        let doc = |g: &mut Gen| json!({"textDocument": {"uri": g.uri()}, "position": g.position()});
        let (method, params) = match self.rng.u8(..12) {
            0..=3 => ("workspace/executeCommand", self.execute_command()),
            4 | 5 => ("textDocument/hover", doc(self)),
            6 | 7 => (
                "textDocument/codeAction",
                json!({"textDocument": {"uri": self.uri()}, "range": self.range(),
                       "context": {"diagnostics": []}}),
            ),
            8 => ("textDocument/definition", doc(self)),
            9 => (
                *self.pick(&["rlm/unknown", "$/unknownRequest", "workspace/symbol", ""]),
                self.value(2),
            ),
            10 => ("initialize", json!({"capabilities": {}})),
            _ => ("textDocument/hover", self.value(2)),
        };
        // Wrong types for every method now and then.
        let params = if self.chance(0.1) {
            self.value(2)
        } else {
            params
        };
        (method.to_string(), params)
    }

    fn notification(&mut self) -> (String, Value) {
        let (method, params) = match self.rng.u8(..14) {
            0 | 1 => (
                "textDocument/didOpen",
                json!({"textDocument": {"uri": self.uri(), "languageId": "rust",
                       "version": self.number(), "text": self.string()}}),
            ),
            2..=4 => ("textDocument/didChange", self.did_change()),
            5 => (
                "textDocument/didClose",
                json!({"textDocument": {"uri": self.uri()}}),
            ),
            6 => (
                "textDocument/didSave",
                json!({"textDocument": {"uri": self.uri()}}),
            ),
            7 => (
                "workspace/didChangeWorkspaceFolders",
                json!({"event": {"added": [self.folder()], "removed": [self.folder()]}}),
            ),
            8 => {
                let changes: Vec<Value> = (0..self.rng.usize(..3))
                    .map(|_| json!({"uri": self.uri(), "type": self.number()}))
                    .collect();
                (
                    "workspace/didChangeWatchedFiles",
                    json!({"changes": changes}),
                )
            }
            9 => ("workspace/didChangeConfiguration", self.settings()),
            10 => ("$/cancelRequest", json!({"id": self.value(0)})),
            11 => (
                "window/workDoneProgress/cancel",
                json!({"token": format!("rlm/r{}", self.rng.u8(..4))}),
            ),
            12 => ("initialized", json!({})),
            _ => (
                *self.pick(&["$/setTrace", "rlm/nothing", ""]),
                self.value(1),
            ),
        };
        let params = if self.chance(0.08) {
            self.value(2)
        } else {
            params
        };
        (method.to_string(), params)
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("q{}", self.next)
    }
}

/// A malformed frame body, and the id its error must carry (`None`: null).
fn malformed(g: &mut Gen) -> (Vec<u8>, Option<String>) {
    let id = g.id();
    match g.rng.u8(..9) {
        0 => (b"{this is not json".to_vec(), None),
        1 => (b"".to_vec(), None),
        2 => (vec![0xff, 0xfe, 0x00, 0x7b], None),
        3 => (b"[1, 2, 3]".to_vec(), None),
        4 => (
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":"\ud800"}"#.to_vec(),
            None,
        ),
        5 => (
            json!({"id": id, "method": "textDocument/hover"})
                .to_string()
                .into_bytes(),
            Some(id),
        ),
        6 => (
            json!({"jsonrpc": "2.0", "id": id, "method": "rlm/x", "params": 5})
                .to_string()
                .into_bytes(),
            Some(id),
        ),
        7 => (
            json!({"jsonrpc": "2.0", "id": id}).to_string().into_bytes(),
            Some(id),
        ),
        // Nested past serde_json's recursion limit.
        _ => (
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            None,
        ),
    }
}

fn models(server: &ScriptedServer) -> Models {
    Models::same(server.client().with_retry(RetryPolicy {
        max_retries: 0,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    }))
}

fn workspace() -> (tempfile::TempDir, PathBuf, tempfile::TempDir, PathBuf) {
    let (dir, root) = support::write_workspace(FILES);
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().canonicalize().unwrap();
    std::fs::write(other.join("o.rs"), "fn other() {}\n").unwrap();
    (dir, root, other_dir, other)
}

type Client = LspClient<DuplexStream, DuplexStream>;

async fn start(opts_answers: u64) -> (Client, tokio::task::JoinHandle<()>, ScriptedServer) {
    let scripted = ScriptedServer::start(
        vec![
            Step::Reply("```repl\nprint(len(context))\n```".into()),
            Step::Reply("FINAL(done)".into()),
            Step::Status(500, "scripted failure".into()),
            Step::Garbage,
            Step::Reply("```repl\nFINAL('from code')\n```".into()),
        ],
        SubRule::Echo,
    )
    .await
    .unwrap();
    let opts = ServerOptions {
        worker_exe: Some(env!("CARGO_BIN_EXE_rlm-lsp").into()),
        models: Some(models(&scripted)),
        max_runs: Some(2),
        answers_dir: Some(std::env::temp_dir().join("rlm-lsp-fuzz-answers")),
        ..ServerOptions::default()
    };
    let (w, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, r) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(serve(server_in, server_out, opts));
    let mut client = LspClient::new(r, w);
    // `drain` says which requests went unanswered first.
    client.hang_guard = Duration::from_secs(300);
    // The editor answers the server's requests with anything: results of every shape.
    let mut rng = fastrand::Rng::with_seed(opts_answers);
    client.answer = Box::new(move |msg| {
        Some(match rng.u8(..6) {
            0 => Value::Null,
            1 => json!({"applied": rng.bool(), "failureReason": "fuzz"}),
            2 => json!({"success": true}),
            3 => json!({"title": *["Apply", "Discard", "Other"].get(rng.usize(..3)).unwrap()}),
            4 => json!(5),
            _ => match msg["method"].as_str() {
                Some("workspace/applyEdit") => json!({"applied": true}),
                _ => Value::Null,
            },
        })
    });
    (client, task, scripted)
}

fn check_response(r: &Value) {
    assert_eq!(r["jsonrpc"], "2.0", "{r}");
    let (result, error) = (r.get("result"), r.get("error"));
    assert!(
        result.is_some() != error.is_some(),
        "exactly one of result and error: {r}"
    );
    if let Some(e) = error {
        assert!(e["code"].is_i64(), "an integer error code: {r}");
        assert!(e["message"].is_string(), "an error message: {r}");
    }
}

/// Reads until every request of `expect` is answered; returns the number of responses read.
async fn drain(c: &mut Client, expect: &mut Expect, seed: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    while !expect.requests.is_empty() || expect.null_errors > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, c.read_message())
            .await
            .unwrap_or_else(|_| panic!("{}", expect.missing(seed)));
        if msg.get("method").is_some() {
            c.handle(msg).await;
            continue;
        }
        check_response(&msg);
        n += 1;
        match &msg["id"] {
            Value::Null => {
                assert!(msg.get("error").is_some(), "{msg}");
                assert!(
                    expect.null_errors > 0,
                    "seed {seed}: an unexpected null-id response {msg}"
                );
                expect.null_errors -= 1;
            }
            id => {
                let key = match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let result_ok = expect
                    .requests
                    .remove(&key)
                    .unwrap_or_else(|| panic!("seed {seed}: a response to no request: {msg}"));
                assert!(
                    result_ok || msg.get("error").is_some(),
                    "seed {seed}: expected an error: {msg}; sent:\n{}",
                    expect.log.join("\n")
                );
            }
        }
    }
    n
}

#[derive(Default, Debug)]
struct Tally {
    sequences: u64,
    messages: u64,
    requests: u64,
    notifications: u64,
    malformed: u64,
    responses: u64,
    after_shutdown: u64,
}

/// Sends `msg`, keeping it in the sequence's log.
async fn send(c: &mut Client, expect: &mut Expect, msg: &Value) {
    let body = serde_json::to_vec(msg).unwrap();
    expect.sent(&body);
    c.send_body(&body).await;
}

/// Request `id` for `method` (without params when they are null), and whether it may get a
/// result (else only an error).
async fn send_request(
    c: &mut Client,
    expect: &mut Expect,
    id: String,
    (method, params): (&str, Value),
    result_ok: bool,
) {
    expect.requests.insert(id.clone(), result_ok);
    let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if !params.is_null() {
        msg["params"] = params;
    }
    send(c, expect, &msg).await;
}

fn status() -> (&'static str, Value) {
    (
        "workspace/executeCommand",
        json!({"command": "rlm.status", "arguments": []}),
    )
}

/// One sequence against a fresh server.
async fn sequence(seed: u64, tally: &mut Tally) {
    let (_d1, root, _d2, other) = workspace();
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
        root: root.clone(),
        other,
        next: 0,
    };
    let (mut c, task, _scripted) = start(seed ^ 0x5eed).await;
    let mut expect = Expect::default();
    let mut shut_down = false;
    let initialized = !g.chance(0.05);
    let eager = g.chance(0.2);
    if initialized {
        let id = g.id();
        let init = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "processId": null,
            "capabilities": {"window": {"workDoneProgress": g.rng.bool()},
                             "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": g.rng.bool()},
                                           "workspaceEdit": {"documentChanges": g.rng.bool(),
                                                             "resourceOperations": ["create", "rename"]}}},
            "workspaceFolders": [{"uri": format!("file://{}", root.display()), "name": "ws"}],
            "initializationOptions": if g.chance(0.2) { g.value(2) } else { json!({"maxIterations": 3}) },
        }});
        expect.requests.insert(id, true);
        send(&mut c, &mut expect, &init).await;
        // A client waits for the answer to `initialize` before sending more; an eager one does
        // not, and then what it sends meanwhile may be refused (`-32002`), a `shutdown` too, so
        // requests after that `shutdown` may still get results.
        if !eager {
            tally.responses += drain(&mut c, &mut expect, seed).await as u64;
        }
        let msg = json!({"jsonrpc": "2.0", "method": "initialized", "params": {}});
        send(&mut c, &mut expect, &msg).await;
    }
    let n = g.rng.usize(10..60);
    for i in 0..n {
        tally.messages += 1;
        match g.rng.u8(..20) {
            0..=8 => {
                let (mut method, params) = g.request();
                if !initialized && method == "initialize" {
                    // That would initialize the server on its current directory.
                    method = "textDocument/hover".into();
                }
                let id = g.id();
                // Before `initialize`, after `shutdown`, a second `initialize`, and params
                // that are not an object or an array (a malformed request): errors.
                let params_ok = params.is_object() || params.is_array() || params.is_null();
                let result_ok =
                    initialized && (!shut_down || eager) && method != "initialize" && params_ok;
                if shut_down {
                    tally.after_shutdown += 1;
                }
                expect.requests.insert(id.clone(), result_ok);
                let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
                if !(params.is_null() && g.rng.bool()) {
                    msg["params"] = params;
                }
                send(&mut c, &mut expect, &msg).await;
                tally.requests += 1;
            }
            9..=15 => {
                let (method, params) = g.notification();
                if !(params.is_object() || params.is_array() || params.is_null()) {
                    expect.null_errors += 1;
                }
                let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
                send(&mut c, &mut expect, &msg).await;
                tally.notifications += 1;
            }
            16 | 17 => {
                let (body, id) = malformed(&mut g);
                match id {
                    Some(id) => {
                        expect.requests.insert(id, false);
                    }
                    None => expect.null_errors += 1,
                }
                expect.sent(&body);
                c.send_body(&body).await;
                tally.malformed += 1;
            }
            18 => {
                // A response to a request the server never sent.
                let id = g.value(0);
                let id = if id.is_string() || id.is_i64() {
                    id
                } else {
                    json!(99)
                };
                send(
                    &mut c,
                    &mut expect,
                    &json!({"jsonrpc": "2.0", "id": id, "result": g.value(1)}),
                )
                .await;
            }
            _ => {
                if initialized && !shut_down && i > n / 2 && g.chance(0.3) {
                    let id = g.id();
                    send_request(&mut c, &mut expect, id, ("shutdown", Value::Null), true).await;
                    shut_down = true;
                } else {
                    // A huge (8 MB) document.
                    let text = "fn big() {}\n".repeat(700_000);
                    let msg = json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                        "params": {"textDocument": {"uri": g.uri(), "languageId": "rust",
                                                    "version": 1, "text": text}}});
                    send(&mut c, &mut expect, &msg).await;
                }
            }
        }
        // A sentinel now and then: the server still answers at once.
        if g.chance(0.05) {
            let ok = initialized && (!shut_down || eager);
            send_request(&mut c, &mut expect, g.id(), status(), ok).await;
        }
    }
    tally.responses += drain(&mut c, &mut expect, seed).await as u64;
    // Still alive: a status answers (or, after shutdown, an error does).
    let ok = initialized && (!shut_down || eager);
    send_request(&mut c, &mut expect, g.id(), status(), ok).await;
    tally.responses += drain(&mut c, &mut expect, seed).await as u64;
    if initialized && !shut_down {
        let id = g.id();
        send_request(&mut c, &mut expect, id, ("shutdown", Value::Null), true).await;
        tally.responses += drain(&mut c, &mut expect, seed).await as u64;
    }
    let t = Instant::now();
    c.notify("exit", Value::Null).await;
    // `exit` ends the server (without `initialize` too): its task finishes, its output closes.
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: the server did not end after exit"))
        .unwrap_or_else(|e| panic!("seed {seed}: the server task failed: {e}"));
    if std::env::var_os("RLM_FUZZ_VERBOSE").is_some() {
        note(
            "lsp_fuzz",
            &format!("exit took {:.2} s", t.elapsed().as_secs_f64()),
        );
    }
    tally.sequences += 1;
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_message_sequences_are_all_answered_and_nothing_panics() {
    count_panics();
    let secs = env_u64("RLM_FUZZ_SECS").unwrap_or(30);
    let max_sequences = env_u64("RLM_FUZZ_SEQUENCES").unwrap_or(u64::MAX);
    let first = env_u64("RLM_FUZZ_SEED").unwrap_or(0x00c0_ffee);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut seed = first;
    while tally.sequences < max_sequences
        && (tally.sequences == 0 || started.elapsed() < Duration::from_secs(secs))
    {
        let t = Instant::now();
        sequence(seed, &mut tally).await;
        if std::env::var_os("RLM_FUZZ_VERBOSE").is_some() {
            note(
                "lsp_fuzz",
                &format!("seed {seed}: {:.2} s", t.elapsed().as_secs_f64()),
            );
        }
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "seed {seed}: something panicked"
        );
        seed = seed.wrapping_add(1);
    }
    note(
        "lsp_fuzz",
        &format!(
            "{} sequences (seeds {first}..{seed}), {} messages: {} requests, {} notifications, \
             {} malformed frames, {} requests after shutdown; {} responses checked; {:.1} s",
            tally.sequences,
            tally.messages,
            tally.requests,
            tally.notifications,
            tally.malformed,
            tally.after_shutdown,
            tally.responses,
            started.elapsed().as_secs_f64()
        ),
    );
}

/// Frames a client may get wrong: a body over the size limit is skipped whole (and answered),
/// a header block without a length is answered, and reading goes on after both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_headless_frames_are_answered_and_reading_goes_on() {
    count_panics();
    let (_d1, root, _d2, _other) = workspace();
    let (mut c, task, _scripted) = start(1).await;
    c.initialize(&root, json!({})).await;
    // 256 MiB + 1 of body, written in pieces (never held whole here).
    let len = (256usize << 20) + 1;
    c.send_raw(format!("Content-Length: {len}\r\n\r\n").as_bytes())
        .await;
    let chunk = vec![b' '; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        c.writer.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
    c.writer.flush().await.unwrap();
    let r = c.command("rlm.status", json!({})).await;
    assert!(r["result"]["snapshot"]["files"].is_u64(), "{r}");
    let error = c
        .responses
        .iter()
        .find(|m| m["id"].is_null())
        .unwrap_or_else(|| panic!("no error for the oversized frame: {:?}", c.responses))
        .clone();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the"),
        "{error}"
    );
    c.responses.clear();
    // A header block without a length (and no body).
    c.send_raw(b"Content-Type: application/json\r\n\r\n").await;
    let r = c.command("rlm.status", json!({})).await;
    assert!(r["result"].is_object(), "{r}");
    assert!(c.responses.iter().any(|m| m["error"]["code"] == -32700));
    c.shutdown().await;
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the server ends after exit")
        .unwrap();
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

/// The client goes away in the middle of a message, or without `exit`: the server ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_message_ends_the_server() {
    count_panics();
    let (_d1, root, _d2, _other) = workspace();
    let (mut c, task, _scripted) = start(2).await;
    c.initialize(&root, json!({})).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "textDocument/hover"}).to_string();
    c.send_raw(format!("Content-Length: {}\r\n\r\n", body.len() + 50).as_bytes())
        .await;
    c.send_raw(body.as_bytes()).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the server ends when its input ends")
        .unwrap();
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}
