//! `rlm-lsp mcp` driven by the official MCP TypeScript SDK's client
//! (`tests/agents/mcp_client.mjs`, `@modelcontextprotocol/sdk` from npm): the tools and their
//! schemas; `search` and `definitions` from the index; `ask` with progress notifications, which
//! must answer exactly as `rlm-lsp ask` does for the same question and scripted model;
//! `explain`; `plan_refactor`, whose checked diff leaves the files untouched; `extra_roots`; a
//! cancelled `ask` whose REPL worker must be killed; and one `ask` on the real local model.
//!
//! Needs `scripts/setup-agents.sh` (Node 24 and the pinned SDKs); without it the tests fail and
//! say so. The local-model test needs `scripts/setup.sh` too.

#![allow(clippy::print_stderr)] // reports what the local model said

mod common;
#[path = "agents/harness.rs"]
mod harness;

use harness::{cell_final, drive, workspace};
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use std::process::Command;
use std::time::Duration;

const A_RS: &str = "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n";
const B_RS: &str = "fn beta() {}\n";

const ANSWER: &str = "alpha gives back 42 (a.rs:2); main calls it at a.rs:6, and a.rs:99 is wrong.";

fn plan() -> String {
    "Rename alpha to first everywhere.\n\
```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n\
```edit b.rs\n<<<<<<< SEARCH\nfn beta() {}\n=======\nfn beta( {}\n>>>>>>> REPLACE\n```\n"
        .to_string()
}

#[test]
fn mcp_server_with_the_official_client() {
    let ws = workspace(&[("a.rs", A_RS), ("b.rs", B_RS)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = |k: &str| Some(k.to_string());
    let model = rt
        .block_on(ScriptedServer::start_keyed(
            vec![
                // Once for `rlm-lsp ask`, once for the MCP `ask`.
                (key("alpha give back"), cell_final(ANSWER)),
                (key("alpha give back"), cell_final(ANSWER)),
                (
                    key("Explain the symbol `alpha`"),
                    cell_final("alpha returns 42 (a.rs:1); main calls it at a.rs:6."),
                ),
                (key("rename alpha to first"), cell_final(&plan())),
                (
                    key("Slow question"),
                    Step::Delayed(Duration::from_secs(120), "FINAL(too late)".into()),
                ),
            ],
            SubRule::Echo,
        ))
        .unwrap();
    let url = model.base_url();
    let ws_path = ws.path().to_str().unwrap();

    // The command line's answer to the same question, from the same scripted model.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    for (var, _) in std::env::vars() {
        if var.starts_with("RLM_") {
            cli.env_remove(&var);
        }
    }
    let o = cli
        .args([
            "ask",
            "-q",
            "--json",
            "--base-url",
            &url,
            "--workspace",
            ws_path,
        ])
        .arg("What does alpha give back?")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let by_cli: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let dep = workspace(&[("gamma.rs", "pub fn gamma() {}\n")]);
    let run = drive(
        "mcp_client.mjs",
        &["scripted"],
        &[
            ("RLM_WORKSPACE", ws_path),
            ("RLM_BASE_URL", &url),
            ("RLM_EXTRA_ROOT", dep.path().to_str().unwrap()),
        ],
        Duration::from_secs(300),
    );
    let r = &run.result;

    // extra_roots: a workspace with the read-only root added, its paths under the root's name.
    let root_name = dep.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        r["extra_root"]["definitions"][0]["path"],
        format!("{root_name}/gamma.rs")
    );

    // ask: the answer and citations of `rlm-lsp ask`, to the byte.
    assert_eq!(r["ask"]["answer"], ANSWER);
    assert_eq!(r["ask"]["answer"], by_cli["answer"]);
    assert_eq!(r["ask"]["citations"], by_cli["citations"], "{}", run.stderr);
    assert_eq!(r["ask"]["stop_reason"], by_cli["stop_reason"]);
    let verified: Vec<(String, bool)> = r["ask"]["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!("{}:{}", c["path"].as_str().unwrap(), c["line"]),
                c["verified"] == true,
            )
        })
        .collect();
    assert_eq!(
        verified,
        [
            ("a.rs:2".to_string(), true),
            ("a.rs:6".to_string(), true),
            ("a.rs:99".to_string(), false)
        ]
    );
    assert!(!r["ask"]["usage"].as_array().unwrap().is_empty());
    let text = r["ask_text"].as_str().unwrap();
    assert!(text.starts_with(ANSWER), "{text}");
    assert!(text.contains("**Unverified citations**"), "{text}");

    // explain: the symbol under the cursor, and where the index says it is defined.
    assert_eq!(r["explain"]["symbol"], "alpha");
    assert_eq!(r["explain"]["definitions"][0]["start_line"], 1);
    let bodies: Vec<String> = model.requests().iter().map(|b| b.to_string()).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("Explain the symbol `alpha`") && b.contains("a.rs:1")),
        "the explain request lacks the definition site"
    );

    // plan_refactor: a checked diff, the broken edit dropped, nothing written.
    let diff = r["plan"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-fn alpha() -> u32 {\n+fn first() -> u32 {"),
        "{diff}"
    );
    assert!(diff.contains("-    alpha();\n+    first();"), "{diff}");
    assert!(!diff.contains("b.rs"), "{diff}");
    assert_eq!(r["plan"]["dropped"][0]["path"], "b.rs");
    assert_eq!(r["plan"]["applies"], true);
    assert!(r["plan_text"].as_str().unwrap().contains("```diff"));
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("rename alpha to first") && b.contains("The user is at a.rs:1.")),
        "the refactor request lacks where the user is"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a.rs")).unwrap(),
        A_RS
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("b.rs")).unwrap(),
        B_RS
    );

    // The cancelled run: the client saw it end, its worker was killed (checked by the client).
    assert!(
        r["cancel"].as_str().unwrap().starts_with("rejected"),
        "{}",
        r["cancel"]
    );
    assert!(r["cancel_workers_before"].as_u64().unwrap() >= 1);
    model.stop();
}

/// One short question through MCP on the real local model (llama-server + Qwen2.5-Coder-1.5B),
/// on the haystack the README asks about.
#[test]
fn mcp_ask_on_the_local_model() {
    let ws = common::haystack();
    let run = drive(
        "mcp_client.mjs",
        &["local"],
        &[("RLM_WORKSPACE", ws.to_str().unwrap())],
        Duration::from_secs(1200),
    );
    let ask = &run.result["ask"];
    eprintln!(
        "local model through MCP: {:?}; stop {}, {} iterations, {} ms",
        ask["answer"], ask["stop_reason"], ask["iterations"], ask["wall"]
    );
    assert!(
        ask["answer"].as_str().unwrap().contains("4817263"),
        "the answer {:?} lacks the magic number; server log:\n{}",
        ask["answer"],
        run.stderr
    );
}
