//! The language server in process over a duplex pipe, with the scripted model server and the
//! real REPL worker: ask with progress and verified citations, cancellation, hover, text sync.

use rlm_lsp::engine::Models;
use rlm_lsp::llm::RetryPolicy;
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::lsp::{ServerOptions, serve};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::LspClient;
use tokio::io::{AsyncWriteExt, DuplexStream};

mod support;

fn code(body: &str) -> Step {
    Step::Reply(format!("Let me look.\n```repl\n{body}\n```\n"))
}

fn models(server: &ScriptedServer) -> Models {
    Models::same(server.client().with_retry(RetryPolicy {
        max_retries: 0,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    }))
}

/// The shared LSP client (`support`) on a workspace of its own; it answers the server's
/// requests as an editor would and keeps every notification.
struct TestClient {
    lsp: LspClient<DuplexStream, DuplexStream>,
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl std::ops::Deref for TestClient {
    type Target = LspClient<DuplexStream, DuplexStream>;
    fn deref(&self) -> &Self::Target {
        &self.lsp
    }
}

impl std::ops::DerefMut for TestClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.lsp
    }
}

impl TestClient {
    async fn start(steps: Vec<Step>, files: &[(&str, &str)]) -> (TestClient, ScriptedServer) {
        Self::start_with(steps, files, |_| {}).await
    }

    async fn start_with(
        steps: Vec<Step>,
        files: &[(&str, &str)],
        tweak: impl FnOnce(&mut ServerOptions),
    ) -> (TestClient, ScriptedServer) {
        let (dir, root) = support::write_workspace(files);
        let scripted = ScriptedServer::start(steps, SubRule::Echo).await.unwrap();
        let mut opts = ServerOptions {
            worker_exe: Some(env!("CARGO_BIN_EXE_rlm-lsp").into()),
            models: Some(models(&scripted)),
            ..ServerOptions::default()
        };
        tweak(&mut opts);
        // One pipe each way: the client writes requests into one, reads the server's output from the other.
        let (w, server_in) = tokio::io::duplex(1 << 20);
        let (server_out, r) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(server_in, server_out, opts));
        let mut lsp = LspClient::new(r, w);
        lsp.hang_guard = Duration::from_secs(60);
        let init = lsp.initialize(&root, json!({"maxIterations": 5})).await;
        assert!(
            init["result"]["capabilities"]["executeCommandProvider"]["commands"]
                .as_array()
                .unwrap()
                .contains(&json!("rlm.ask")),
            "{init}"
        );
        let c = TestClient {
            lsp,
            _dir: dir,
            root,
        };
        (c, scripted)
    }

    fn uri(&self, rel: &str) -> String {
        let p = if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        };
        format!("file://{}", p.display())
    }

    /// What the user picks when the server asks (`window/showMessageRequest`); nothing until
    /// this is called.
    fn choose(&mut self, title: &'static str) {
        let mut editor = support::editor_answers();
        self.lsp.answer = Box::new(move |msg| match msg["method"].as_str() {
            Some("window/showMessageRequest") => Some(json!({"title": title})),
            _ => editor(msg),
        });
    }

    /// Reads (answering the server) until it has sent a message with this method.
    async fn wait_for(&mut self, method: &str) -> Value {
        loop {
            if let Some(m) = self.notifications.iter().find(|m| m["method"] == method) {
                return m.clone();
            }
            let msg = tokio::time::timeout(Duration::from_secs(30), self.read_message())
                .await
                .unwrap_or_else(|_| panic!("no {method} within 30 s"));
            self.handle(msg).await;
        }
    }

    async fn ask(&mut self, question: &str) -> Value {
        self.request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": question}]}),
        )
        .await
    }

    /// Reads messages until a progress `end` has arrived (notifications and responses travel
    /// separately inside the server, so the end may come just after the response).
    async fn wait_progress_end(&mut self) {
        while !self.progress().iter().any(|p| p["kind"] == "end") {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.read_message())
                .await
                .expect("no progress end");
            self.handle(msg).await;
        }
    }

    /// Reads messages (answering the server's requests) until a run's progress has begun.
    async fn wait_progress_begin(&mut self) {
        while !self.progress().iter().any(|p| p["kind"] == "begin") {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.read_message())
                .await
                .expect("no progress begin within 30 s");
            self.handle(msg).await;
        }
    }

    async fn status(&mut self) -> Value {
        let r = self
            .request(
                "workspace/executeCommand",
                json!({"command": "rlm.status", "arguments": []}),
            )
            .await;
        r["result"].clone()
    }

    /// Polls `rlm.status` until `ok` holds of it (notifications are handled concurrently with
    /// the requests that follow them, so a re-walk may still be under way).
    async fn status_until(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let s = self.status().await;
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("status never showed {what}: {}", self.status().await);
    }

    fn progress(&self) -> Vec<&Value> {
        self.notifications
            .iter()
            .filter(|n| n["method"] == "$/progress")
            .map(|n| &n["params"]["value"])
            .collect()
    }
}

const FILES: &[(&str, &str)] = &[
    (
        "a.rs",
        "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n",
    ),
    ("b.rs", "// the answer is 42\nfn beta() {}\n"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_reports_progress_and_verifies_citations() {
    let answer = "FINAL(42: see a.rs:2 and b.rs:1, not nowhere.rs:3 or a.rs:99; \
                  called at a.rs:6 `alpha();`, not at a.rs:3 `alpha();`)";
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(len(context))"),
            Step::Reply(answer.into()),
            // Told once that nowhere.rs is not in the workspace, the model insists.
            Step::Reply(answer.into()),
        ],
        FILES,
    )
    .await;
    let r = c.ask("What is the answer?").await;
    let result = &r["result"];
    assert!(result["answer"].as_str().unwrap().starts_with("42"), "{r}");
    let sent_back = result["trajectory"].as_array().unwrap().iter().any(|e| {
        e["content"]
            .as_str()
            .is_some_and(|c| c.contains("`nowhere.rs` is not in this workspace"))
    });
    assert!(sent_back, "the first FINAL was sent back: {r}");
    let cites = result["citations"].as_array().unwrap();
    let verified = |p: &str, l: u64| {
        cites
            .iter()
            .find(|c| c["path"] == p && c["line"] == l)
            .unwrap_or_else(|| panic!("{p}:{l} missing in {cites:?}"))
            .clone()
    };
    assert_eq!(verified("a.rs", 2)["verified"], true);
    assert!(
        verified("a.rs", 2)["uri"]
            .as_str()
            .unwrap()
            .ends_with("/a.rs")
    );
    assert_eq!(verified("b.rs", 1)["verified"], true);
    // Fabricated: a file that does not exist, a line past the end. Never links.
    assert_eq!(verified("nowhere.rs", 3)["verified"], false);
    assert_eq!(verified("a.rs", 99)["verified"], false);
    assert!(verified("a.rs", 99).get("uri").is_none());
    // A quote must be at the line it cites.
    assert_eq!(verified("a.rs", 6)["verified"], true);
    assert_eq!(verified("a.rs", 6)["snippet"], "alpha();");
    assert_eq!(verified("a.rs", 3)["verified"], false);
    assert_eq!(
        verified("a.rs", 3)["reason"],
        "the quoted code is not at that line (it is at line 6)"
    );
    assert!(!result["trajectory"].as_array().unwrap().is_empty());
    assert!(result["usage"].is_array());

    c.wait_progress_end().await;
    let progress = c.progress();
    assert_eq!(progress.first().unwrap()["kind"], "begin", "{progress:?}");
    assert!(
        progress.iter().any(
            |p| p["kind"] == "report" && p["message"].as_str().unwrap().contains("turn 1 of 5")
        ),
        "{progress:?}"
    );
    assert_eq!(progress.last().unwrap()["kind"], "end", "{progress:?}");

    let s = &c.status().await;
    assert_eq!(s["config"]["maxIterations"], 5, "{s}");
    assert_eq!(s["endpoints"]["root"]["model"], "scripted", "{s}");
    assert_eq!(s["runsInFlight"], json!([]));
    assert!(s["lastRunUsage"].is_array(), "{s}");
    assert_eq!(s["roots"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_run_and_the_next_ask_works() {
    let (mut c, _server) = TestClient::start(
        vec![
            Step::Delayed(Duration::from_secs(30), "FINAL(too late)".into()),
            code("print('second run')"),
            Step::Reply("FINAL(second answer)".into()),
        ],
        FILES,
    )
    .await;
    let id = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "slow?"}]}),
        )
        .await;
    // Wait until the run has begun (its progress begins), then cancel the request.
    c.wait_progress_begin().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    c.notify("$/cancelRequest", json!({"id": id})).await;
    let r = c.wait_response(id).await;
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = c.status().await;
    assert_eq!(status["runsInFlight"], json!([]), "{status}");

    let r = c.ask("again").await;
    assert_eq!(r["result"]["answer"], "second answer", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlm_cancel_stops_a_run_by_id() {
    let (mut c, _server) = TestClient::start(
        vec![Step::Delayed(
            Duration::from_secs(30),
            "FINAL(too late)".into(),
        )],
        FILES,
    )
    .await;
    let id = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "slow?", "id": "mine"}]}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.cancel", "arguments": [{"id": "mine"}]}),
        )
        .await;
    assert_eq!(r["result"]["cancelled"], true, "{r}");
    let r = c.wait_response(id).await;
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hover_answers_from_the_index() {
    let (mut c, _server) = TestClient::start(vec![], FILES).await;
    let uri = c.uri("a.rs");
    // The index is filled in the background: a fresh server may still be parsing.
    let mut text = String::new();
    for _ in 0..50 {
        let started = Instant::now();
        let r = c
            .request(
                "textDocument/hover",
                json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 6}}),
            )
            .await;
        assert!(started.elapsed() < Duration::from_millis(200));
        text = r["result"]["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if text.contains("a.rs:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("fn alpha() -> u32"), "{text}");
    assert!(text.contains("`a.rs:1`"), "{text}");
    assert!(
        text.contains("1 definition indexed; 1 other mention"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_change_is_seen_by_the_next_ask() {
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(context['a.rs'])"),
            Step::Reply("FINAL(done)".into()),
        ],
        FILES,
    )
    .await;
    let uri = c.uri("a.rs");
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1,
                                "text": FILES[0].1}}),
    )
    .await;
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 1, "character": 4},
                                             "end": {"line": 1, "character": 6}},
                                   "text": "UNSAVED_EDIT"}]}),
    )
    .await;
    let r = c.ask("what does a.rs hold now?").await;
    let trajectory = r["result"]["trajectory"].as_array().unwrap();
    let cell = trajectory
        .iter()
        .find(|e| e["type"] == "code_cell" && e["iteration"] != 0)
        .expect("a code cell");
    let stdout = cell["stdout"].as_str().unwrap();
    assert!(stdout.contains("UNSAVED_EDIT"), "{stdout}");
    assert!(!stdout.contains("    42"), "{stdout}");
    // The unsaved buffer never reaches the disk.
    assert_eq!(
        std::fs::read_to_string(c.root.join("a.rs")).unwrap(),
        FILES[0].1
    );
}

/// Hidden and ignored files opened in the editor serve hover only: model code never sees them,
/// before or after `didClose` (a gitignored `.env` must not reach any model endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_hidden_and_ignored_files_never_reach_model_code() {
    let show = "print(sorted(p for p in context if 'env' in p or 'secret' in p))";
    let (mut c, _server) = TestClient::start(
        vec![
            code(show),
            Step::Reply("FINAL(listed)".into()),
            code(show),
            Step::Reply("FINAL(listed)".into()),
        ],
        &[
            FILES[0],
            FILES[1],
            (".gitignore", "secrets.txt\n"),
            (".env", "TOKEN=sk-hidden-123 alpha\n"),
            ("secrets.txt", "password alpha\n"),
            ("config.env.rs", "fn env() {}\n"),
        ],
    )
    .await;
    let env = c.uri(".env");
    let secrets = c.uri("secrets.txt");
    for (uri, text) in [
        (&env, "TOKEN=sk-hidden-123 alpha\n"),
        (&secrets, "password alpha\n"),
    ] {
        c.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1,
                                    "text": text}}),
        )
        .await;
    }
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": env, "version": 2},
               "contentChanges": [{"text": "TOKEN=sk-hidden-456 alpha\n"}]}),
    )
    .await;
    let cell_stdout = |r: &Value| {
        r["result"]["trajectory"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "code_cell" && e["iteration"] != 0)
            .expect("a code cell")["stdout"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = c.ask("which env files are there?").await;
    assert_eq!(cell_stdout(&r), "['config.env.rs']\n", "{r}");
    // Hover in the kept-out buffer still looks its words up in the workspace.
    let text = hover_text(&mut c, &env, 0, 22).await;
    assert!(text.contains("fn alpha() -> u32"), "{text}");
    // No code action (it would send the word to a model) on a kept-out buffer.
    let actions = c
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": env},
                   "range": {"start": {"line": 0, "character": 22}, "end": {"line": 0, "character": 22}},
                   "context": {"diagnostics": []}}),
        )
        .await;
    assert_eq!(actions["result"], Value::Null, "{actions}");
    for uri in [&env, &secrets] {
        c.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;
    }
    let r = c.ask("and now?").await;
    assert_eq!(cell_stdout(&r), "['config.env.rs']\n", "{r}");
}

#[tokio::test]
async fn hover_follows_an_unsaved_edit() {
    let (mut c, _server) = TestClient::start(vec![], FILES).await;
    let uri = c.uri("a.rs");
    // Rename `alpha` to `gamma` in the buffer only (line 0 is `fn alpha() -> u32 {`).
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1,
                                "text": FILES[0].1}}),
    )
    .await;
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 0, "character": 3},
                                             "end": {"line": 0, "character": 8}},
                                   "text": "gamma"}]}),
    )
    .await;
    let text = hover_text(&mut c, &uri, 0, 4).await;
    assert!(text.contains("fn gamma() -> u32"), "{text}");
}

/// Hover text at a position once the index has it (it is filled in the background).
async fn hover_text(c: &mut TestClient, uri: &str, line: u32, character: u32) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        let r = c
            .request(
                "textDocument/hover",
                json!({"textDocument": {"uri": uri},
                       "position": {"line": line, "character": character}}),
            )
            .await;
        text = r["result"]["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if text.contains("defined at") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

#[tokio::test]
async fn explain_through_the_code_action_is_cached_for_hover_until_the_file_changes() {
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(grep('alpha'))"),
            Step::Reply("FINAL(alpha returns 42; main calls it at a.rs:6)".into()),
        ],
        FILES,
    )
    .await;
    let uri = c.uri("a.rs");
    let before = hover_text(&mut c, &uri, 5, 6).await;
    assert!(before.contains("Explain with RLM"), "{before}");
    // The code action any LSP editor shows, and the command it carries.
    let actions = c
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri},
                   "range": {"start": {"line": 5, "character": 6}, "end": {"line": 5, "character": 6}},
                   "context": {"diagnostics": []}}),
        )
        .await;
    let action = &actions["result"][0];
    assert_eq!(action["title"], "Explain `alpha` with RLM", "{actions}");
    let refactor = &actions["result"][1];
    assert_eq!(refactor["title"], "Plan a refactor of `alpha` with RLM");
    assert_eq!(refactor["command"]["command"], "rlm.planRefactor");
    // A preview: nothing is applied before the user says so.
    assert_eq!(refactor["command"]["arguments"][0]["preview"], true);
    assert_eq!(refactor["command"]["arguments"][0]["apply"], Value::Null);
    let command = &action["command"];
    assert_eq!(command["command"], "rlm.explain");
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.explain", "arguments": command["arguments"]}),
        )
        .await;
    assert_eq!(r["result"]["symbol"], "alpha", "{r}");
    assert_eq!(
        r["result"]["answer"],
        "alpha returns 42; main calls it at a.rs:6"
    );
    let question = r["result"]["trajectory"][0]["question"].as_str().unwrap();
    assert!(question.contains("defined at a.rs:1"), "{question}");
    let after = hover_text(&mut c, &uri, 5, 6).await;
    assert!(after.contains("alpha returns 42"), "{after}");
    // An edit to the defining file makes the cached explanation stale: hover drops it.
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1,
                                "text": FILES[0].1}}),
    )
    .await;
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 1, "character": 4},
                                             "end": {"line": 1, "character": 6}},
                                   "text": "43"}]}),
    )
    .await;
    let edited = hover_text(&mut c, &uri, 5, 6).await;
    assert!(!edited.contains("alpha returns 42"), "{edited}");
}

#[tokio::test]
async fn plan_refactor_returns_checked_edits_and_applies_them() {
    let plan = "Rename alpha to first.\n\
```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n\
```edit b.rs\n<<<<<<< SEARCH\nfn beta() {}\n=======\nfn beta( {}\n>>>>>>> REPLACE\n```\n";
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(grep('alpha'))"),
            code(&format!("FINAL({plan:?})")),
        ],
        FILES,
    )
    .await;
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.planRefactor",
                   "arguments": [{"instruction": "rename alpha to first", "apply": true}]}),
        )
        .await;
    let result = &r["result"];
    let plan_md = result["plan"].as_str().unwrap();
    assert!(plan_md.starts_with("Rename alpha to first."), "{plan_md}");
    assert!(
        plan_md.contains("`b.rs`: the edited file no longer parses"),
        "the broken edit is dropped and reported: {plan_md}"
    );
    let changes = result["edit"]["changes"].as_object().unwrap();
    assert_eq!(changes.len(), 1, "only a.rs is edited: {changes:?}");
    let edits = changes.values().next().unwrap().as_array().unwrap();
    assert_eq!(edits.len(), 2);
    assert_eq!(
        edits[0]["range"]["start"],
        json!({"line": 0, "character": 0})
    );
    assert_eq!(edits[0]["newText"], "fn first() -> u32 {\n");
    assert_eq!(
        edits[1]["range"]["start"],
        json!({"line": 5, "character": 0})
    );
    assert_eq!(result["applied"]["applied"], true, "{result}");
    // The client was asked to apply exactly that edit.
    let apply = c
        .notifications
        .iter()
        .find(|m| m["method"] == "workspace/applyEdit")
        .expect("a workspace/applyEdit request");
    assert_eq!(apply["params"]["edit"], result["edit"]);
    // The question carried the edit format the checks read.
    let question = result["trajectory"][0]["question"].as_str().unwrap();
    assert!(question.contains("<<<<<<< SEARCH"), "{question}");
}

/// The code actions at a position.
async fn code_actions(c: &mut TestClient, uri: &str, line: u32, character: u32) -> Vec<Value> {
    let at = json!({"line": line, "character": character});
    let r = c
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                   "context": {"diagnostics": []}}),
        )
        .await;
    r["result"].as_array().cloned().unwrap_or_default()
}

/// Runs a command as the editor does when the user picks its code action.
async fn execute(c: &mut TestClient, command: &Value) -> Value {
    c.request(
        "workspace/executeCommand",
        json!({"command": command["command"], "arguments": command["arguments"]}),
    )
    .await
}

/// The refactor code action (editors without a plugin) shows the plan and its diff and asks;
/// the edit is sent only on "Apply", or by the "Apply the RLM refactor plan" action, and is
/// refused for a file changed since the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refactor_code_action_previews_and_applies_only_when_asked() {
    let plan = "Rename alpha to first.\n\
```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n";
    let final_plan = code(&format!("FINAL({plan:?})"));
    let (mut c, _server) = TestClient::start(
        vec![final_plan.clone(), final_plan.clone(), final_plan.clone()],
        FILES,
    )
    .await;
    let uri = c.uri("a.rs");
    // Wait for the index, so the action is there.
    let mut actions = Vec::new();
    for _ in 0..50 {
        actions = code_actions(&mut c, &uri, 0, 4).await;
        if actions.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let command = actions[1]["command"].clone();
    assert_eq!(command["command"], "rlm.planRefactor", "{actions:?}");
    let applied = |c: &TestClient| {
        c.notifications
            .iter()
            .filter(|m| m["method"] == "workspace/applyEdit")
            .count()
    };

    // 1. No answer to the question: nothing applied, the plan waits.
    let r = execute(&mut c, &command).await;
    assert_eq!(r["result"]["applied"], Value::Null, "{r}");
    let diff = r["result"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-fn alpha() -> u32 {\n+fn first() -> u32 {"),
        "{diff}"
    );
    let doc = c.wait_for("window/showDocument").await;
    let path = doc["params"]["uri"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap();
    let shown = std::fs::read_to_string(path).unwrap();
    assert!(shown.contains("```diff\n--- a/a.rs"), "{shown}");
    let ask = c.wait_for("window/showMessageRequest").await;
    assert!(
        ask["params"]["message"]
            .as_str()
            .unwrap()
            .contains("Apply it?"),
        "{ask}"
    );
    assert_eq!(applied(&c), 0);
    let actions = code_actions(&mut c, &uri, 0, 4).await;
    let apply = actions.last().unwrap()["command"].clone();
    assert_eq!(apply["command"], "rlm.applyPlan", "{actions:?}");
    assert_eq!(apply["arguments"][0]["id"], r["result"]["planId"]);
    let r = execute(&mut c, &apply).await;
    assert_eq!(r["result"]["applied"], true, "{r}");
    assert_eq!(applied(&c), 1);

    // 2. A file changed after the plan: refused, naming it.
    let r = execute(&mut c, &command).await;
    let id = r["result"]["planId"].clone();
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1,
                                "text": FILES[0].1.replace("42", "43")}}),
    )
    .await;
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.applyPlan", "arguments": [{"id": id}]}),
        )
        .await;
    assert_eq!(r["result"]["applied"], false, "{r}");
    let why = r["result"]["failureReason"].as_str().unwrap();
    assert!(why.contains("a.rs"), "{why}");
    assert_eq!(applied(&c), 1);

    // 3. "Apply" chosen in the question: the edit goes to the editor.
    c.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri}}),
    )
    .await;
    c.choose("Apply");
    c.notifications.clear();
    let r = execute(&mut c, &command).await;
    let edit = c.wait_for("workspace/applyEdit").await;
    assert_eq!(edit["params"]["edit"], r["result"]["edit"]);
    // The user's files were never written by the server.
    assert_eq!(
        std::fs::read_to_string(c.root.join("a.rs")).unwrap(),
        FILES[0].1
    );
}

/// A refactor as a small model does it: it first answers without edits (sent back), then
/// records one edit with code (the user's check command fails on it: sent back with the error),
/// then starts over with `rename_symbol`, which passes. The plan is the recorded edits; the
/// workspace is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refactor_records_edits_in_code_and_is_repaired_until_the_check_passes() {
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(callers('alpha'))"),
            Step::Reply("I found the call.\nFINAL(I will rename alpha to first.)".into()),
            code("edit_replace('a.rs', 'fn alpha() -> u32 {', 'fn first() -> u32 {')\nprint(proposed_edits())"),
            Step::Reply("FINAL(Renamed the definition.)".into()),
            code("discard_edits()\nprint(rename_symbol('alpha', 'first'))"),
            Step::Reply("FINAL(Renamed `alpha` to `first` in a.rs.)".into()),
        ],
        FILES,
    )
    .await;
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"rlm": {"maxIterations": 10, "checkCommand":
            "if grep -n alpha a.rs; then echo 'error: alpha is still used' >&2; exit 1; fi"}}}),
    )
    .await;
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.planRefactor",
                   "arguments": [{"instruction": "rename alpha to first"}]}),
        )
        .await;
    let result = &r["result"];
    assert_eq!(result["stopReason"], "final", "{r}");
    assert_eq!(result["check"]["passed"], true, "{r}");
    let checks: Vec<&Value> = result["trajectory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "check")
        .collect();
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(
        checks[0]["message"]
            .as_str()
            .unwrap()
            .contains("no edit that applies")
    );
    let failed = checks[1]["message"].as_str().unwrap();
    assert!(failed.contains("error: alpha is still used"), "{failed}");
    assert_eq!(checks[2]["passed"], true);
    let changes = result["edit"]["changes"].as_object().unwrap();
    let edits = changes.values().next().unwrap().as_array().unwrap();
    assert_eq!(edits.len(), 2, "the definition and the call: {edits:?}");
    assert!(edits.iter().all(|e| e["newText"] == "first"));
    assert!(result["diff"].as_str().unwrap().contains("+    first();"));
    assert_eq!(
        std::fs::read_to_string(c.root.join("a.rs")).unwrap(),
        FILES[0].1
    );
}

/// A plan written as the edit format asks, in plain text: FINAL( then prose and an ```edit
/// block, then ) on its own line (the shape a model writes; no escaping).
#[tokio::test]
async fn a_plan_with_edit_blocks_in_plain_text_keeps_its_edits() {
    let reply = "Here is the plan.\nFINAL(Rename `alpha` to `first`.\n\n```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\n```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n)\n";
    let (mut c, _server) = TestClient::start(
        vec![code("print(callers('alpha'))"), Step::Reply(reply.into())],
        FILES,
    )
    .await;
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.planRefactor",
                   "arguments": [{"instruction": "rename alpha to first"}]}),
        )
        .await;
    let result = &r["result"];
    assert_eq!(result["plan"], "Rename `alpha` to `first`.", "{r}");
    let changes = result["edit"]["changes"].as_object().unwrap();
    assert_eq!(
        changes.values().next().unwrap().as_array().unwrap().len(),
        2
    );
    assert_eq!(result["check"], Value::Null, "no check command is set");
}

#[tokio::test]
async fn plan_refactor_creates_and_renames_files_after_its_text_edits() {
    let plan = "Move beta out.\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    alpha();\n    util::helper();\n>>>>>>> REPLACE\n```\n\
```create util.rs\npub fn helper() {}\n```\n\
```rename b.rs -> beta.rs\n```\n\
```rename a.rs -> b.rs\n```\n";
    let (mut c, _server) = TestClient::start(
        vec![
            code("print(grep('beta'))"),
            code(&format!("FINAL({plan:?})")),
        ],
        FILES,
    )
    .await;
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.planRefactor",
                   "arguments": [{"instruction": "move beta out"}]}),
        )
        .await;
    let result = &r["result"];
    assert_eq!(
        result["files"],
        json!([{"kind": "create", "path": "util.rs"},
               {"kind": "rename", "from": "b.rs", "to": "beta.rs"}]),
        "{result}"
    );
    // b.rs is still on disk, so a.rs cannot take its name.
    assert!(
        result["plan"]
            .as_str()
            .unwrap()
            .contains("`b.rs`: a file is already there"),
        "{result}"
    );
    let ops = result["edit"]["documentChanges"].as_array().unwrap();
    let summary: Vec<String> = ops
        .iter()
        .map(|op| {
            let name = |k: &str| {
                op[k]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            };
            match op["kind"].as_str() {
                Some("create") => format!("create {}", name("uri")),
                Some("rename") => format!("rename {} {}", name("oldUri"), name("newUri")),
                _ => format!(
                    "edit {} {:?}",
                    op["textDocument"]["uri"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap(),
                    op["edits"][0]["newText"].as_str().unwrap()
                ),
            }
        })
        .collect();
    assert_eq!(
        summary,
        [
            "edit a.rs \"    alpha();\\n    util::helper();\\n\"",
            "create util.rs",
            "edit util.rs \"pub fn helper() {}\\n\"",
            "rename b.rs beta.rs",
        ]
    );
    assert_eq!(ops[1]["options"]["overwrite"], false);
    assert!(result["applied"].is_null(), "not applied unless asked");
}

#[tokio::test]
async fn runs_past_the_limit_wait_in_line() {
    // One run at a time: the second ask's model call waits until the first run is done, so it
    // takes the second scripted reply even though the first is slow.
    let (mut c, _server) = TestClient::start_with(
        vec![
            Step::Delayed(
                Duration::from_millis(1500),
                "```repl\nFINAL('first')\n```".into(),
            ),
            code("FINAL('second')"),
        ],
        FILES,
        |o| o.max_runs = Some(1),
    )
    .await;
    let started = Instant::now();
    let a = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "a?"}]}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "b?"}]}),
        )
        .await;
    let rb = c.wait_response(b).await;
    // Unlimited, b would be answered at once (~0.3 s); in line, after a's slow reply.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    let ra = c.wait_response(a).await;
    assert_eq!(ra["result"]["answer"], "first", "{ra}");
    assert_eq!(rb["result"]["answer"], "second", "{rb}");
}

/// No number of runs starves the transport (issue 15): with more asks in flight than the server
/// runs at once, and a message whose body is not JSON, a hover, a `didChange` seen by the next
/// hover, an `rlm.cancel` and `shutdown` are all answered promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_and_a_malformed_message_never_block_the_server() {
    let slow = || Step::Delayed(Duration::from_secs(30), "FINAL(late)".into());
    let (mut c, _server) = TestClient::start_with((0..8).map(|_| slow()).collect(), FILES, |o| {
        o.max_runs = Some(2)
    })
    .await;
    let uri = c.uri("a.rs");
    let mut asks = Vec::new();
    for i in 0..6 {
        let id = c
            .start_request(
                "workspace/executeCommand",
                json!({"command": "rlm.ask", "arguments": [{"question": format!("q{i}?"), "id": format!("r{i}")}]}),
            )
            .await;
        asks.push(id);
    }
    // A frame whose body is not JSON: a parse error, and the server keeps reading.
    let body = b"{this is not json";
    let head = format!("Content-Length: {}\r\n\r\n", body.len());
    c.writer.write_all(head.as_bytes()).await.unwrap();
    c.writer.write_all(body).await.unwrap();
    c.writer.flush().await.unwrap();
    let prompt = |what: &'static str| {
        move |started: Instant| {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what} took {:?}",
                started.elapsed()
            )
        }
    };

    let started = Instant::now();
    let text = hover_text(&mut c, &uri, 0, 4).await;
    assert!(text.contains("fn alpha() -> u32"), "{text}");
    prompt("the first hover")(started);

    let started = Instant::now();
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": FILES[0].1}}),
    )
    .await;
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 0, "character": 3},
                                             "end": {"line": 0, "character": 8}},
                                   "text": "gamma"}]}),
    )
    .await;
    let text = hover_text(&mut c, &uri, 0, 4).await;
    assert!(text.contains("fn gamma() -> u32"), "{text}");
    prompt("the hover after didChange")(started);

    let started = Instant::now();
    let r = c
        .request(
            "workspace/executeCommand",
            json!({"command": "rlm.cancel", "arguments": [{"id": "r5"}]}),
        )
        .await;
    assert_eq!(r["result"]["cancelled"], true, "{r}");
    prompt("rlm.cancel")(started);

    let started = Instant::now();
    let r = c.request("shutdown", Value::Null).await;
    assert!(r.get("error").is_none(), "{r}");
    prompt("shutdown")(started);
    // The parse error was answered (with a null id), among the messages read on the way.
    let parse_error = c
        .responses
        .iter()
        .any(|m| m["id"].is_null() && m["error"]["code"] == -32700);
    assert!(parse_error, "no parse error response: {:?}", c.responses);
}

/// `rlm-lsp serve --max-iterations 9 --max-sub-calls 4`: the command line's settings are what
/// the client's options start from, and what a `null` puts back.
#[tokio::test]
async fn command_line_settings_are_the_base_of_the_clients() {
    let mut base = rlm_lsp::lsp::Settings::default();
    base.run.limits.max_iterations = 9;
    base.run.limits.max_sub_calls = 4;
    let (mut c, _server) = TestClient::start_with(
        vec![code("FINAL('one')"), code("FINAL('two')")],
        FILES,
        |o| o.settings = Some(base),
    )
    .await;
    // initialize gave maxIterations 5: the client's option wins, the rest is the command line's.
    let s = c.status().await;
    assert_eq!(s["config"]["maxIterations"], 5, "{s}");
    assert_eq!(s["config"]["maxSubCalls"], 4, "{s}");
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"rlm": {"maxIterations": null}}}),
    )
    .await;
    let r = c.ask("first?").await;
    assert_eq!(r["result"]["trajectory"][0]["max_iterations"], 9, "{r}");
}

#[tokio::test]
async fn configuration_changes_apply_to_the_next_run_and_bad_ones_are_refused() {
    let (mut c, _server) =
        TestClient::start(vec![code("FINAL('one')"), code("FINAL('two')")], FILES).await;
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"rlm": {"maxIterations": 7}}}),
    )
    .await;
    let r = c.ask("first?").await;
    assert_eq!(r["result"]["trajectory"][0]["max_iterations"], 7, "{r}");
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"maxIterations": "many", "noSuchKey": 1}}),
    )
    .await;
    let r = c.ask("second?").await;
    assert_eq!(r["result"]["answer"], "two");
    assert_eq!(
        r["result"]["trajectory"][0]["max_iterations"], 7,
        "the last good settings stay"
    );
    let messages: Vec<&str> = c
        .notifications
        .iter()
        .filter(|m| m["method"] == "window/showMessage")
        .filter_map(|m| m["params"]["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("settings updated")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("invalid configuration") && m.contains("keeping the last good one")),
        "{messages:?}"
    );
}

/// Processes whose command line starts with `exe` (the REPL workers a test started).
fn processes_of(exe: &std::path::Path) -> Vec<u32> {
    let want = exe.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).next() == Some(want))
        })
        .collect()
}

async fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_progress_kills_the_worker_and_frees_the_slot() {
    // The worker runs under a name of its own, so this test sees only its own processes.
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("rlm-worker-of-the-cancel-test");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlm-lsp"), &worker).unwrap();
    let exe = worker.clone();
    let (mut c, server) = TestClient::start_with(
        vec![
            // The first model call hangs; the run waits on it with its worker up.
            Step::Delayed(Duration::from_secs(60), "FINAL(too late)".into()),
            code("FINAL('the next run')"),
        ],
        FILES,
        move |o| {
            o.worker_exe = Some(exe);
            o.max_runs = Some(1);
        },
    )
    .await;
    let id = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "slow?", "id": "p"}]}),
        )
        .await;
    c.wait_progress_begin().await;
    poll("a REPL worker starts", || !processes_of(&worker).is_empty()).await;
    poll("the model is called", || server.requests().len() == 1).await;
    let started = Instant::now();
    c.notify("window/workDoneProgress/cancel", json!({"token": "rlm/p"}))
        .await;
    let r = c.wait_response(id).await;
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(started.elapsed() < Duration::from_secs(5));
    poll("the worker exits", || processes_of(&worker).is_empty()).await;
    assert_eq!(c.status().await["runsInFlight"], json!([]));
    // The only slot is free again.
    let r = c.ask("next?").await;
    assert_eq!(r["result"]["answer"], "the next run", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hover_answers_while_a_run_is_in_flight() {
    let (mut c, _server) = TestClient::start(
        vec![Step::Delayed(
            Duration::from_secs(60),
            "FINAL(too late)".into(),
        )],
        FILES,
    )
    .await;
    let uri = c.uri("a.rs");
    // Warm: the index has the definition before the run starts.
    assert!(hover_text(&mut c, &uri, 5, 5).await.contains("defined at"));
    let id = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "slow?", "id": "long"}]}),
        )
        .await;
    c.wait_progress_begin().await;
    let text = hover_text(&mut c, &uri, 5, 5).await;
    assert!(text.contains("fn alpha() -> u32"), "{text}");
    // The run is still going: its response has not come.
    assert!(c.responses.iter().all(|r| r["id"] != id));
    assert_eq!(c.status().await["runsInFlight"], json!(["long"]));
    c.request(
        "workspace/executeCommand",
        json!({"command": "rlm.cancel", "arguments": [{"id": "long"}]}),
    )
    .await;
    assert_eq!(c.wait_response(id).await["error"]["code"], -32800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_and_extra_roots_change_at_run_time() {
    let (mut c, _server) = TestClient::start(vec![], FILES).await;
    let other = tempfile::tempdir().unwrap();
    let other_root = other.path().canonicalize().unwrap();
    std::fs::write(other_root.join("c.rs"), "fn gamma() {}\n").unwrap();
    let deps = tempfile::tempdir().unwrap();
    std::fs::write(deps.path().join("lib.rs"), "pub fn dep() {}\n").unwrap();
    // An unsaved buffer survives the re-walk (its path gains the root's name).
    let a = c.uri("a.rs");
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": a, "languageId": "rust", "version": 1,
                                "text": "fn renamed_in_buffer() {}\n"}}),
    )
    .await;

    let other_uri = format!("file://{}", other_root.display());
    c.notify(
        "workspace/didChangeWorkspaceFolders",
        json!({"event": {"added": [{"uri": other_uri, "name": "other"}], "removed": []}}),
    )
    .await;
    let s = c
        .status_until("two roots", |s| s["roots"].as_array().unwrap().len() == 2)
        .await;
    assert_eq!(s["snapshot"]["files"], 3, "{s}");
    let text = hover_text(&mut c, &a, 0, 5).await;
    assert!(text.contains("fn renamed_in_buffer()"), "{text}");

    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"extraRoots": [deps.path()]}}),
    )
    .await;
    let s = c
        .status_until("the extra root", |s| {
            s["roots"].as_array().unwrap().len() == 3
        })
        .await;
    let extra = &s["roots"][2];
    assert_eq!(extra["readOnly"], true, "{s}");
    assert_eq!(extra["files"], 1, "{s}");
    assert_eq!(s["config"]["extraRoots"][0], json!(deps.path()), "{s}");

    c.notify(
        "workspace/didChangeWorkspaceFolders",
        json!({"event": {"added": [], "removed": [{"uri": other_uri, "name": "other"}]}}),
    )
    .await;
    let s = c
        .status_until("the folder removed", |s| {
            s["roots"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(s["roots"][1]["readOnly"], true, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_file_changes_update_the_snapshot_and_skip_ignored_files() {
    let files = [FILES, &[(".gitignore", "target/\n")]].concat();
    let (mut c, _server) = TestClient::start(vec![], &files).await;
    // The server registers its watcher once initialized (the status requests read messages).
    let registered = |c: &TestClient| {
        c.notifications
            .iter()
            .any(|m| m["method"] == "client/registerCapability")
    };
    let mut s = c.status().await;
    for _ in 0..100 {
        if registered(&c) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = c.status().await;
    }
    assert!(registered(&c), "no watcher registered");
    assert_eq!(s["snapshot"]["files"], 2, "{s}");

    let write = |rel: &str, text: &str| {
        let p = c.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("d.rs", "fn delta() {}\n");
    write("target/debug/out.rs", "fn built() {}\n");
    std::fs::remove_file(c.root.join("b.rs")).unwrap();
    let (d, built, b) = (c.uri("d.rs"), c.uri("target/debug/out.rs"), c.uri("b.rs"));
    c.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": d, "type": 1}, {"uri": built, "type": 1}, {"uri": b, "type": 3}]}),
    )
    .await;
    let s = c
        .status_until("d.rs in and b.rs out", |s| {
            s["snapshot"]["files"] == 2 && s["index"]["files"] == 2
        })
        .await;
    assert_eq!(s["roots"][0]["files"], 2, "{s}");
    let text = hover_text(&mut c, &d, 0, 4).await;
    assert!(text.contains("fn delta()"), "{text}");
}

#[tokio::test]
async fn answer_documents_open_in_the_editor_when_asked_for() {
    let answers = tempfile::tempdir().unwrap();
    let dir = answers.path().to_path_buf();
    let (mut c, _server) = TestClient::start_with(
        vec![
            code("FINAL('first: a.rs:2')"),
            code("FINAL('second: a.rs:2')"),
        ],
        FILES,
        move |o| o.answers_dir = Some(dir),
    )
    .await;
    let shown = |c: &TestClient| {
        c.notifications
            .iter()
            .filter(|m| m["method"] == "window/showDocument")
            .count()
    };
    c.ask("first?").await;
    assert_eq!(shown(&c), 0, "off unless asked for");
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"answerDocument": true}}),
    )
    .await;
    let r = c.ask("second?").await;
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let path = answers.path().join(format!("{id}.md"));
    let doc = c
        .notifications
        .iter()
        .find(|m| m["method"] == "window/showDocument")
        .expect("a window/showDocument request");
    assert_eq!(doc["params"]["uri"], format!("file://{}", path.display()));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# second?\n\nsecond: a.rs:2\n"), "{text}");
    assert!(
        text.contains(&format!("- {}:2\n", c.root.join("a.rs").display())),
        "{text}"
    );
}
