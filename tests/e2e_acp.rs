//! `rlm-lsp acp` driven by the official ACP TypeScript SDK's client side
//! (`tests/agents/acp_client.mjs`, `@agentclientprotocol/sdk` from npm), with a scripted model:
//! initialize and a session over a workspace; a question whose run streams a plan, the model's
//! turn as a thought, its code cell as a tool call, and the answer; a `/refactor` whose checked
//! edits come as diffs through the client's permission request and are written by the client;
//! `/search`; and a prompt cancelled with `session/cancel`, whose REPL worker must be killed.
//!
//! Needs `scripts/setup-agents.sh` (Node 24 and the pinned SDKs); without it the test fails and
//! says so.

#[path = "agents/harness.rs"]
mod harness;

use harness::{cell_final, drive, workspace};
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use std::time::Duration;

const A_RS: &str = "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n";
const B_RS: &str = "fn beta() {}\n";
const ANSWER: &str = "alpha gives back 42 (a.rs:2); main calls it at a.rs:6.";

#[test]
fn acp_agent_with_the_official_client() {
    let ws = workspace(&[("a.rs", A_RS), ("b.rs", B_RS)]);
    let plan = "Rename alpha to first everywhere.\n\
```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n\
```edit b.rs\n<<<<<<< SEARCH\nfn beta() {}\n=======\nfn beta( {}\n>>>>>>> REPLACE\n```\n";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = |k: &str| Some(k.to_string());
    let model = rt
        .block_on(ScriptedServer::start_keyed(
            vec![
                (key("alpha give back"), cell_final(ANSWER)),
                (key("rename alpha to first"), cell_final(plan)),
                (
                    key("Slow question"),
                    Step::Delayed(Duration::from_secs(120), "FINAL(too late)".into()),
                ),
            ],
            SubRule::Echo,
        ))
        .unwrap();
    let url = model.base_url();
    let run = drive(
        "acp_client.mjs",
        &[],
        &[
            ("RLM_WORKSPACE", ws.path().to_str().unwrap()),
            ("RLM_BASE_URL", &url),
        ],
        Duration::from_secs(300),
    );
    let r = &run.result;
    assert_eq!(r["agent"]["name"], "rlm-lsp", "{}", run.stderr);
    assert_eq!(
        r["commands"],
        serde_json::json!(["refactor", "search", "definitions"])
    );

    // The answer, with its verified citations and the run's summary.
    let answer = r["ask_answer"].as_str().unwrap();
    assert!(answer.starts_with(ANSWER), "{answer}");
    assert!(answer.contains("2 of 2 citations verified"), "{answer}");
    let cell = &r["ask_cell"];
    assert_eq!(cell["kind"], "search");
    assert!(
        cell["content"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("print(grep('alpha'))"),
        "{cell}"
    );

    // The refactor: one edit tool call with a diff of a.rs (the broken b.rs edit dropped by the
    // checks), allowed, written through the client; b.rs untouched.
    let call = &r["permission"]["toolCall"];
    assert_eq!(call["kind"], "edit");
    let diffs = call["content"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{call}");
    assert_eq!(diffs[0]["type"], "diff");
    assert!(diffs[0]["path"].as_str().unwrap().ends_with("/a.rs"));
    assert_eq!(diffs[0]["oldText"], A_RS);
    let renamed = "fn first() -> u32 {\n    42\n}\n\nfn main() {\n    first();\n}\n";
    assert_eq!(diffs[0]["newText"], renamed);
    let options: Vec<&str> = r["permission"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["allow_once", "reject_once"]);
    assert_eq!(r["writes"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a.rs")).unwrap(),
        renamed
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("b.rs")).unwrap(),
        B_RS
    );
    let message = r["refactor_message"].as_str().unwrap();
    assert!(message.contains("Edits dropped by the checks"), "{message}");
    assert!(
        message.contains("Applied the edits to 1 file."),
        "{message}"
    );
    assert_eq!(
        r["refactor_statuses"],
        serde_json::json!(["in_progress", "completed"])
    );

    // /search sees the file as the refactor left it.
    assert!(
        r["search"].as_str().unwrap().contains("a.rs:1"),
        "{}",
        r["search"]
    );

    // The cancelled prompt.
    assert_eq!(r["cancel"], "cancelled");
    assert!(r["cancel_workers_before"].as_u64().unwrap() >= 1);
    model.stop();
}
