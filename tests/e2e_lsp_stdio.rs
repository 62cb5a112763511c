//! The built binary as a language server over stdio, with the real local model: initialize on
//! the haystack, `rlm.ask` the README's question, get the planted number back, shut down.

mod common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn send(w: &mut impl Write, msg: &Value) {
    let body = msg.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    w.flush().unwrap();
}

fn read(r: &mut impl BufRead) -> Value {
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

/// Reads until the response to `id`, answering the server's own requests on the way.
fn response(r: &mut impl BufRead, w: &mut impl Write, id: i64) -> Value {
    loop {
        let m = read(r);
        if m.get("method").is_some() && m.get("id").is_some() {
            send(w, &json!({"jsonrpc": "2.0", "id": m["id"], "result": null}));
        } else if m["id"] == id {
            return m;
        }
    }
}

#[test]
fn serve_over_stdio_answers_with_the_local_model() {
    let ws = common::haystack();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    for var in [
        "RLM_BASE_URL",
        "RLM_MODEL",
        "RLM_SUB_BASE_URL",
        "RLM_SUB_MODEL",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        // `--stdio` as vscode-languageclient and others pass it; settings as flags.
        .args(["serve", "--stdio", "--max-iterations", "12"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let uri = format!("file://{}", ws.canonicalize().unwrap().display());
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": null, "rootUri": uri, "capabilities": {},
            "workspaceFolders": [{"uri": uri, "name": "haystack"}]}}),
    );
    let init = response(&mut r, &mut w, 1);
    assert!(init["result"]["capabilities"].is_object(), "{init}");
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    );
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "workspace/executeCommand", "params": {
            "command": "rlm.status", "arguments": []}}),
    );
    let status = response(&mut r, &mut w, 4);
    assert_eq!(status["result"]["config"]["maxIterations"], 12, "{status}");
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand", "params": {
            "command": "rlm.ask", "arguments": [{"question": "What is the magic number?"}]}}),
    );
    let answer = response(&mut r, &mut w, 2);
    let text = answer["result"]["answer"].as_str().unwrap_or_default();
    assert!(text.contains("4817263"), "{answer}");
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}),
    );
    response(&mut r, &mut w, 3);
    send(&mut w, &json!({"jsonrpc": "2.0", "method": "exit"}));
    drop(w);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
