//! Data-driven runs of the RLM loop: each `fixtures/transcripts/NAME.txt` gives a workspace, a
//! question and the root model's replies (in the shape models write them: prose, fences,
//! multi-line FINALs; some recorded from real runs of the local model); the run goes through the
//! library façade (`session::Workspace::ask`) against a scripted model server with the real REPL
//! worker, and what the engine told the model, what the cells printed, the sub-calls and the end
//! of the run are compared with `NAME.snap`. `UPDATE_EXPECT=1` rewrites the snapshots; read the
//! diff before committing it.
//!
//! Fixture format: `#` comment lines and `key: value` lines (`question`, or `refactor` for an instruction planned as
//! a refactor, whose unified diff ends the snapshot; `max_iterations`, `recipes`, `evidence`),
//! then sections opened by a line `=== file PATH` (the file's text) or `=== reply` (one root
//! reply, verbatim). Sub-calls are answered by echo.

use expect_test::expect_file;
use rlm_lsp::engine::{EngineConfig, Event, Models};
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::llm::{RetryPolicy, Role};
use rlm_lsp::repl::ReplConfig;
use rlm_lsp::session::{Runner, Workspace};
use rlm_lsp::workspace::{self, WalkOptions};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Transcript {
    question: String,
    refactor: bool,
    max_iterations: u32,
    recipes: bool,
    evidence: bool,
    files: Vec<(String, String)>,
    replies: Vec<String>,
}

fn parse(text: &str) -> Transcript {
    let mut t = Transcript {
        question: String::new(),
        refactor: false,
        max_iterations: 6,
        recipes: true,
        evidence: true,
        files: Vec::new(),
        replies: Vec::new(),
    };
    // (header, body) of each `=== ` section; the lines before the first are settings.
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("=== ") {
            sections.push((header.trim().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
        } else if line.starts_with('#') {
            // A comment: where the replies come from.
        } else if let Some((key, value)) = line.trim().split_once(':') {
            let value = value.trim();
            match key.trim() {
                "question" => t.question = value.to_string(),
                "refactor" => {
                    t.question = value.to_string();
                    t.refactor = true;
                }
                "max_iterations" => t.max_iterations = value.parse().expect("max_iterations"),
                "recipes" => t.recipes = value == "on",
                "evidence" => t.evidence = value == "on",
                other => panic!("unknown setting {other:?}"),
            }
        }
    }
    for (header, body) in sections {
        if let Some(path) = header.strip_prefix("file ") {
            t.files.push((path.trim().to_string(), body));
        } else if header == "reply" {
            // The newline before the next `===` separates sections; it is not the reply's.
            t.replies
                .push(body.strip_suffix('\n').unwrap_or(&body).to_string());
        } else {
            panic!("unknown section {header:?}");
        }
    }
    assert!(!t.question.is_empty(), "a transcript needs a question");
    t
}

/// One indented block, so a transcript's structure stays readable whatever the text holds.
fn block(out: &mut String, title: &str, text: &str) {
    let _ = writeln!(out, "{title}");
    for line in text.trim_end().lines() {
        let _ = writeln!(out, "    {}", line.trim_end());
    }
}

fn render(events: &[Event], root: &Path, citations: String) -> String {
    let mut out = String::new();
    // Sub-calls of one batch finish in any order: each run of them is shown sorted.
    let mut batch: Vec<String> = Vec::new();
    for e in events {
        if !matches!(e, Event::SubCall { .. }) {
            batch.sort();
            out.extend(batch.drain(..));
        }
        match e {
            Event::RootMessage {
                iteration,
                role,
                content,
                ..
            } => match role {
                Role::System => {}
                Role::User => block(&mut out, &format!("-> model, turn {iteration}"), content),
                Role::Assistant => block(&mut out, &format!("<- model, turn {iteration}"), content),
            },
            Event::CodeCell {
                iteration,
                index,
                stdout,
                stderr,
                error,
                final_answer,
                timed_out,
                ..
            } => {
                let mut text = stdout.clone();
                if !stderr.is_empty() {
                    let _ = write!(text, "\n[stderr]\n{stderr}");
                }
                if let Some(e) = error {
                    let _ = write!(text, "\n[error] {e}");
                }
                if let Some(f) = final_answer {
                    let _ = write!(text, "\n[final] {f}");
                }
                if *timed_out {
                    text.push_str("\n[timed out]");
                }
                block(
                    &mut out,
                    &format!("cell {iteration}.{index} printed"),
                    &text,
                );
            }
            Event::SubCall {
                prompt,
                response,
                error,
                ..
            } => {
                let head: String = prompt.chars().take(120).collect();
                let answer = response.as_deref().or(error.as_deref()).unwrap_or("");
                let answer: String = answer.chars().take(120).collect();
                let mut shown = String::new();
                block(&mut shown, "sub-call", &format!("{head}\n=> {answer}"));
                batch.push(shown);
            }
            Event::ChildRun {
                prompt,
                answer,
                stop_reason,
                ..
            } => block(
                &mut out,
                &format!("child run ({stop_reason})"),
                &format!("{prompt}\n=> {}", answer.as_deref().unwrap_or("")),
            ),
            Event::Check {
                passed, message, ..
            } => block(
                &mut out,
                &format!("check passed: {passed}"),
                message.as_deref().unwrap_or(""),
            ),
            Event::RunEnd {
                answer,
                best_effort,
                stop_reason,
                iterations,
                sub_calls,
                ..
            } => block(
                &mut out,
                &format!(
                    "end: {stop_reason}, {iterations} turns, {sub_calls} sub-calls, best effort: {best_effort}"
                ),
                answer,
            ),
            _ => {}
        }
    }
    batch.sort();
    out.extend(batch.drain(..));
    block(&mut out, "citations", &citations);
    // Temporary directories differ from run to run.
    out.replace(&root.display().to_string(), "$WORKSPACE")
}

async fn run(t: &Transcript) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &t.files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let snap = workspace::walk(dir.path(), &WalkOptions::default()).unwrap();
    let steps = t.replies.iter().cloned().map(Step::Reply).collect();
    let server = ScriptedServer::start(steps, SubRule::Echo).await.unwrap();
    let client = server.client().with_retry(RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    });
    let cfg = EngineConfig {
        max_iterations: t.max_iterations,
        recipes: t.recipes,
        evidence: t.evidence,
        repl: ReplConfig {
            worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
            ..ReplConfig::default()
        },
        ..EngineConfig::default()
    };
    let runner = Runner::from_models(Models::same(client), cfg);
    let ws = Workspace::new(Arc::new(snap));
    // Evidence and the structural helpers read the index: a complete one keeps runs repeatable.
    assert!(ws.wait_indexed(Duration::from_secs(60)), "index not ready");
    let (answer, diff) = if t.refactor {
        let plan = ws
            .plan_refactor(&runner, &t.question, None, None)
            .await
            .expect("the run");
        (plan.answer, Some(plan.diff))
    } else {
        (
            ws.ask(&runner, &t.question, None).await.expect("the run"),
            None,
        )
    };
    let citations: Vec<String> = answer
        .citations
        .iter()
        .map(|c| match &c.reason {
            None if c.verified => format!("{}:{} verified", c.path, c.line),
            reason => format!(
                "{}:{} unverified: {}",
                c.path,
                c.line,
                reason.as_deref().unwrap_or("")
            ),
        })
        .collect();
    let mut out = render(&answer.report.events, dir.path(), citations.join("\n"));
    if let Some(diff) = diff {
        block(&mut out, "plan diff", &diff);
    }
    out
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/transcripts");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    all.sort();
    assert!(!all.is_empty(), "no transcripts in {}", dir.display());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_match_their_snapshots() {
    for path in fixtures() {
        let t = parse(&std::fs::read_to_string(&path).unwrap());
        let got = run(&t).await;
        expect_file![path.with_extension("snap")].assert_eq(&got);
    }
}
