//! The README's main job, for real: `rlm-lsp ask` on the generated haystack (400K+ tokens, more
//! than ten times the local model's window) with the default local model (llama-server +
//! Qwen2.5-Coder-1.5B), which must find the planted 7-digit magic number.
//!
//! It needs `scripts/setup.sh` to have run (CI runs it); without the model it fails, never skips.

#![allow(clippy::print_stderr)] // reports the run it measured

use std::process::Command;

const MAGIC: &str = "4817263";

mod common;
use common::haystack;

/// `rlm-lsp ask --json` on the haystack with the default local model: the JSON result and the
/// trajectory.
fn ask_local(question: &str) -> (serde_json::Value, String) {
    let ws = haystack();
    let traj = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    for var in [
        "RLM_BASE_URL",
        "RLM_MODEL",
        "RLM_SUB_BASE_URL",
        "RLM_SUB_MODEL",
        "RLM_API_KEY_ENV",
    ] {
        cmd.env_remove(var);
    }
    let o = cmd
        .args(["ask", "--json", "--workspace"])
        .arg(&ws)
        .arg("--trajectory")
        .arg(traj.path())
        .arg(question)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "rlm-lsp ask failed (run scripts/setup.sh to install the local model):\n{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!(
        "{question}\n  answer: {:?}; stop {}, {} iterations, {} sub-calls, {} ms, usage {}",
        v["answer"], v["stop_reason"], v["iterations"], v["sub_calls"], v["wall_ms"], v["usage"]
    );
    let trajectory = std::fs::read_to_string(traj.path()).unwrap_or_default();
    (v, trajectory)
}

#[test]
fn local_model_finds_the_magic_number_in_the_haystack() {
    let (v, trajectory) = ask_local("What is the magic number?");
    let answer = v["answer"].as_str().unwrap();
    assert!(
        answer.contains(MAGIC),
        "the answer {answer:?} lacks {MAGIC}; trajectory:\n{trajectory}"
    );
    // The snapshot was far larger than the model's window, and the model never saw it whole.
    assert!(v["usage"][0]["prompt_tokens"].as_u64().unwrap() > 0);
}

/// Two steps: find the note, then the function it sits in (the note does not name it).
#[test]
fn local_model_finds_the_function_around_the_magic_number() {
    let (v, trajectory) = ask_local(
        "Which function contains the note that states the magic number? Name the function.",
    );
    let answer = v["answer"].as_str().unwrap();
    assert!(
        answer.contains("openPayloadChannel"),
        "the answer {answer:?} lacks openPayloadChannel; trajectory:\n{trajectory}"
    );
    // Its citations, if any, are real.
    for c in v["citations"].as_array().unwrap() {
        assert_eq!(c["verified"], true, "{c}");
    }
}

/// Recursion with a real model: a scripted root hands one file to `rlm_query`, and the child run
/// (the local model, with its own REPL over that file) must find the number.
#[test]
fn a_child_run_on_the_local_model_answers_from_the_context_it_was_given() {
    use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
    let ws = haystack();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = rt
        .block_on(ScriptedServer::start(
            vec![
                Step::Reply(
                    "```repl\npath = grep('magic number')[0][0]\nanswer = rlm_query('What is the magic number?', {path: context[path]})\nprint(answer)\n```"
                        .into(),
                ),
                Step::Reply("FINAL_VAR(answer)".into()),
            ],
            SubRule::Echo,
        ))
        .unwrap();
    let traj = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    for var in [
        "RLM_MODEL",
        "RLM_SUB_BASE_URL",
        "RLM_SUB_MODEL",
        "RLM_API_KEY_ENV",
    ] {
        cmd.env_remove(var);
    }
    let o = cmd
        .args(["ask", "--json", "--child-base-url", "local", "--base-url"])
        .arg(root.base_url())
        .arg("--workspace")
        .arg(&ws)
        .arg("--trajectory")
        .arg(traj.path())
        .arg("What is the magic number?")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rlm-lsp ask failed:\n{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let answer = v["answer"].as_str().unwrap();
    let events = std::fs::read_to_string(traj.path()).unwrap();
    assert!(
        answer.contains(MAGIC),
        "answer {answer:?}; trajectory:\n{events}"
    );
    let child = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["type"] == "child_run")
        .expect("a child run in the trajectory");
    assert_eq!(child["depth"], 1);
    // The child's tokens are accounted at depth 1, under the local model's name.
    let usage = v["usage"].as_array().unwrap();
    assert!(
        usage
            .iter()
            .any(|u| u["depth"] == 1 && u["model"].as_str().unwrap().contains("qwen")),
        "{usage:?}"
    );
}
