//! The RLM loop against a scripted OpenAI-compatible server on loopback, with the real REPL
//! worker: multi-turn runs, batched sub-calls, timeouts, replies without code, models that fail.

use rlm_lsp::engine::{Engine, EngineConfig, EngineError, Event, Models, RunReport, StopReason};
use rlm_lsp::llm::RetryPolicy;
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::repl::{ContextBlob, ReplConfig};
use rlm_lsp::workspace::{self, Snapshot, WalkOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn code(body: &str) -> Step {
    Step::Reply(format!("Let me look.\n```repl\n{body}\n```\n"))
}

fn reply(text: &str) -> Step {
    Step::Reply(text.to_string())
}

fn fixture() -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    for (p, t) in [
        ("src/a.rs", "fn a() {}\n"),
        ("src/b.rs", "// the answer is 42\nfn b() {}\n"),
        ("README.md", "# demo\n"),
    ] {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, t).unwrap();
    }
    let snap = workspace::walk(dir.path(), &WalkOptions::default()).unwrap();
    (dir, snap)
}

/// Every file's path and bytes: a run must leave the workspace exactly as it was.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in ignore::WalkBuilder::new(root)
        .hidden(false)
        .build()
        .flatten()
    {
        if e.file_type().is_some_and(|t| t.is_file()) {
            out.push((e.path().to_path_buf(), std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

fn engine(server: &ScriptedServer, cfg: EngineConfig) -> Engine {
    // Fast retries: the loop's tests are about the engine, the retry policy has its own.
    let client = server.client().with_retry(RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    });
    Engine::new(Models::same(client), cfg)
}

fn config(max_iterations: u32) -> EngineConfig {
    EngineConfig {
        max_iterations,
        repl: ReplConfig {
            worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
            ..ReplConfig::default()
        },
        ..EngineConfig::default()
    }
}

async fn run_script(
    steps: Vec<Step>,
    sub: SubRule,
    cfg: EngineConfig,
) -> (Result<RunReport, EngineError>, ScriptedServer) {
    let (dir, snap) = fixture();
    let before = tree(dir.path());
    let server = ScriptedServer::start(steps, sub).await.unwrap();
    let blob = ContextBlob::write(&snap).unwrap();
    let result = engine(&server, cfg)
        .run(&snap, blob, "What is the answer?", None)
        .await;
    assert_eq!(before, tree(dir.path()), "the run changed the workspace");
    (result, server)
}

/// The text of the `n`th root request's last message (what the engine told the model).
fn last_user_message(server: &ScriptedServer, n: usize) -> String {
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r["messages"][0]["role"] == "system")
        .collect();
    let msgs = reqs[n]["messages"].as_array().unwrap();
    msgs.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn multi_turn_run_with_a_nudge_for_final() {
    let (result, server) = run_script(
        vec![
            code("hits = [p for p, t in context.items() if 'answer' in t]\nprint(hits)"),
            reply("It is in src/b.rs."),
            reply("FINAL(42, see src/b.rs:1)"),
        ],
        SubRule::Echo,
        config(10),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "42, see src/b.rs:1");
    assert_eq!(report.stop_reason, StopReason::Final);
    assert_eq!(report.iterations, 3);
    assert!(!report.best_effort);
    // The root model never sees workspace text in its first message, only metadata.
    let first = &server.requests()[0]["messages"][1]["content"];
    assert!(
        !first.as_str().unwrap().contains("the answer is 42"),
        "{first}"
    );
    let turn1 = last_user_message(&server, 1);
    assert!(turn1.contains("['src/b.rs']"), "{turn1}");
    assert!(turn1.contains("turn 1 of 10"), "{turn1}");
    let turn2 = last_user_message(&server, 2);
    assert!(turn2.contains("FINAL( then the answer itself"), "{turn2}");
    // The trajectory has the messages, the cell with its output, and the end.
    let kinds: Vec<&str> = report
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Spent { .. }))
        .map(|e| match e {
            Event::RunStart { .. } => "start",
            Event::RootMessage { .. } => "msg",
            Event::CodeCell { .. } => "cell",
            Event::SubCall { .. } => "sub",
            Event::ChildRun { .. } => "child",
            Event::Check { .. } => "check",
            Event::Spent { .. } => "spent",
            Event::RunEnd { .. } => "end",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start", "msg", "msg", "msg", "cell", "msg", "msg", "msg", "msg", "end"
        ]
    );
}

#[tokio::test]
async fn plain_answer_twice_is_accepted() {
    let (result, _server) = run_script(
        vec![code("print(len(context))"), reply("42"), reply("42")],
        SubRule::Echo,
        config(10),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "42");
    assert_eq!(report.iterations, 3);
}

#[tokio::test]
async fn batched_sub_calls_isolate_failures() {
    let (result, server) = run_script(
        vec![
            code(
                "r = llm_query_batched(['one', 'two BAD', 'three'])\nprint(r)\nprint(llm_query('four'))",
            ),
            reply("FINAL_VAR(r)"),
        ],
        SubRule::FailIfContains("BAD".into()),
        EngineConfig {
            sub_concurrency: 2,
            ..config(5)
        },
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.sub_calls, 4);
    assert!(
        report.answer.starts_with("['echo: one', 'Error: "),
        "{}",
        report.answer
    );
    assert!(
        report.answer.ends_with("'echo: three']"),
        "{}",
        report.answer
    );
    let turn = last_user_message(&server, 1);
    assert!(turn.contains("echo: four"), "{turn}");
    let subs = report
        .events
        .iter()
        .filter(|e| matches!(e, Event::SubCall { .. }))
        .count();
    assert_eq!(subs, 4);
    assert_eq!(
        report.usage.len(),
        2,
        "root and sub usage: {:?}",
        report.usage
    );
}

#[tokio::test]
async fn a_cell_that_hangs_is_killed_and_the_run_goes_on() {
    let mut cfg = config(5);
    cfg.repl.cell_timeout = Duration::from_secs(1);
    let (result, server) = run_script(
        vec![
            code("x = 1\nwhile True:\n    pass"),
            code("print(x)"),
            code("FINAL('recovered')"),
        ],
        SubRule::Echo,
        cfg,
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "recovered");
    let turn1 = last_user_message(&server, 1);
    assert!(turn1.contains("killed after 1 s"), "{turn1}");
    let turn2 = last_user_message(&server, 2);
    assert!(turn2.contains("NameError"), "{turn2}");
}

#[tokio::test]
async fn answers_before_any_code_are_refused() {
    let (result, server) = run_script(
        vec![
            reply("I think it is 7."),
            reply("FINAL(7)"),
            code("print('answer' in context['src/b.rs'])"),
            reply("FINAL(42)"),
        ],
        SubRule::Echo,
        config(10),
    )
    .await;
    assert_eq!(result.unwrap().answer, "42");
    assert!(last_user_message(&server, 1).contains("not looked at the workspace"));
    assert!(last_user_message(&server, 2).contains("not looked at the workspace"));
}

#[tokio::test]
async fn turns_run_out_with_a_best_effort_answer() {
    let (result, server) = run_script(
        vec![
            code("print(1)"),
            code("print(2)"),
            reply("FINAL(probably 42)"),
        ],
        SubRule::Echo,
        config(2),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "probably 42");
    assert!(report.best_effort);
    assert_eq!(report.stop_reason, StopReason::MaxIterations);
    assert!(last_user_message(&server, 2).contains("out of turns"));
}

#[tokio::test]
async fn model_server_going_away_mid_run_is_a_clear_error() {
    let (result, _server) = run_script(
        vec![code("print(1)"), Step::Hangup],
        SubRule::Echo,
        config(5),
    )
    .await;
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("the root model call failed"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn garbage_and_rejections_are_explained() {
    let (result, _s) =
        run_script(vec![Step::Garbage, Step::Garbage], SubRule::Echo, config(5)).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("not a chat completion"), "{err}");

    let (result, _s) = run_script(
        vec![Step::Status(401, "invalid api key".into())],
        SubRule::Echo,
        config(5),
    )
    .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("rejected the API key"), "{err}");
    assert!(err.contains("RLM_API_KEY_ENV"), "{err}");

    let (result, _s) = run_script(
        vec![Step::Status(404, "model 'x' not found".into())],
        SubRule::Echo,
        config(5),
    )
    .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("is not served"), "{err}");
    assert!(err.contains("the server has: scripted"), "{err}");
}

#[tokio::test]
async fn raising_and_flooding_code_is_reported_to_the_model() {
    let (result, server) = run_script(
        vec![
            code("1 / 0"),
            code("print('x' * 100_000_000)"),
            reply("FINAL(done)"),
        ],
        SubRule::Echo,
        config(5),
    )
    .await;
    assert_eq!(result.unwrap().answer, "done");
    let turn1 = last_user_message(&server, 1);
    assert!(turn1.contains("ZeroDivisionError"), "{turn1}");
    let turn2 = last_user_message(&server, 2);
    assert!(turn2.len() < 5_000, "{} chars shown", turn2.len());
    assert!(turn2.contains("the full output was 1000000"), "{turn2}");
}

#[tokio::test]
async fn repeated_code_is_not_rerun_and_a_stalled_run_ends_with_its_best_answer() {
    let same = "print(sorted(context))";
    let (result, server) = run_script(
        vec![
            code(same),
            code(same),
            code(same),
            reply("FINAL(src/b.rs holds it)"),
        ],
        SubRule::Echo,
        config(10),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "src/b.rs holds it");
    assert_eq!(report.stop_reason, StopReason::Stalled);
    assert!(report.best_effort);
    let cells = report
        .events
        .iter()
        .filter(|e| matches!(e, Event::CodeCell { .. }))
        .count();
    assert_eq!(cells, 1, "the same code ran once");
    let turn2 = last_user_message(&server, 2);
    assert!(
        turn2.contains("You already ran this exact code in turn 1"),
        "{turn2}"
    );
    assert!(
        turn2.contains("src/b.rs"),
        "the earlier output is shown again: {turn2}"
    );
    assert!(last_user_message(&server, 3).contains("repeating code"));
}

/// The same code is a repeat only over the same values: a re-run after the variable it reads
/// changed, or after the worker was restarted, runs again.
#[tokio::test]
async fn a_rerun_over_changed_variables_or_a_new_worker_runs_again() {
    let (result, _server) = run_script(
        vec![
            code("x = 1"),
            code("print(x)"),
            code("x = 2"),
            code("print(x)"),
            // A crash restarts the worker: `x = 2` must run again, it is not "already run".
            code("import os\nos._exit(3)"),
            code("x = 2"),
            code("print(x)"),
            reply("FINAL(x is 2)"),
        ],
        SubRule::Echo,
        config(10),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.stop_reason, StopReason::Final, "{report:?}");
    let outputs: Vec<String> = report
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CodeCell { code, stdout, .. } => {
                Some(format!("{}={}", code.trim(), stdout.trim()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        outputs,
        [
            "x = 1=",
            "print(x)=1",
            "x = 2=",
            "print(x)=2",
            "import os\nos._exit(3)=",
            "x = 2=",
            "print(x)=2"
        ]
    );
}

#[tokio::test]
async fn a_final_that_copies_the_template_is_refused() {
    // Seen in the evaluation with the 1.5B model: FINAL(your best answer), FINAL_VAR(path:line).
    let (result, server) = run_script(
        vec![
            code("print(grep('answer'))"),
            reply("FINAL(your best answer)"),
            code("FINAL_VAR(path:line)"),
            reply("FINAL(42, see src/b.rs:1)"),
        ],
        SubRule::Echo,
        config(6),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "42, see src/b.rs:1");
    assert_eq!(report.stop_reason, StopReason::Final);
    let turn2 = last_user_message(&server, 2);
    assert!(
        turn2.contains("`FINAL(your best answer)` copies the instructions' template"),
        "{turn2}"
    );
    let turn3 = last_user_message(&server, 3);
    assert!(turn3.contains("`FINAL(path:line)` copies"), "{turn3}");
}

#[tokio::test]
async fn a_stalled_run_that_only_echoes_the_template_ends_with_what_it_saw() {
    let same = "print(grep('answer'))";
    let (result, server) = run_script(
        vec![
            code(same),
            code(same),
            code(same),
            reply("FINAL(your best answer)"),
        ],
        SubRule::Echo,
        config(10),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.stop_reason, StopReason::Stalled);
    assert!(
        report
            .answer
            .starts_with("**No answer**: the model gave none."),
        "{}",
        report.answer
    );
    assert!(report.answer.contains("src/b.rs:1"), "{}", report.answer);
    // The last request repeats the question and offers no template to copy.
    let last = last_user_message(&server, 3);
    assert!(last.contains("The question is:"), "{last}");
    assert!(!last.contains("your best answer"), "{last}");
}

#[tokio::test]
async fn final_written_as_code_with_prose_is_the_answer() {
    let (result, _server) = run_script(
        vec![
            code("print(1)"),
            code("FINAL(The answer is 42, from src/b.rs:1)"),
        ],
        SubRule::Echo,
        config(5),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "The answer is 42, from src/b.rs:1");
    assert_eq!(report.stop_reason, StopReason::Final);
}

#[tokio::test]
async fn a_bare_question_to_the_sub_model_gets_a_note() {
    let (result, server) = run_script(
        vec![
            code("print(llm_query('What is the answer?'))"),
            code("print(llm_query('Summarize:\\n' + context['src/b.rs'] * 20))"),
            reply("FINAL(42)"),
        ],
        SubRule::Echo,
        config(5),
    )
    .await;
    assert_eq!(result.unwrap().answer, "42");
    assert!(last_user_message(&server, 1).contains("llm_query only sees the prompt"));
    assert!(!last_user_message(&server, 2).contains("llm_query only sees the prompt"));
}

fn budget_config(budget: rlm_lsp::engine::Budget) -> EngineConfig {
    EngineConfig {
        budget,
        prices: rlm_lsp::llm::pricing::PriceTable::parse(
            r#"{"scripted": {"input": 100000, "output": 100000}}"#,
        )
        .unwrap(),
        ..config(10)
    }
}

fn stopped_by(report: &RunReport, kind: rlm_lsp::engine::BudgetKind) {
    assert_eq!(report.stop_reason, StopReason::Budget, "{report:?}");
    assert_eq!(report.budget, Some(kind));
    assert!(report.best_effort);
    assert!(
        report.answer.starts_with("**Partial answer**"),
        "{}",
        report.answer
    );
}

#[tokio::test]
async fn each_budget_stops_a_run_with_a_partial_answer() {
    use rlm_lsp::engine::{Budget, BudgetKind};
    // Sub-calls: the third call in the cell is refused, and the run stops at the next turn.
    let (result, _s) = run_script(
        vec![
            code("r = llm_query_batched(['a', 'b', 'c'])\nprint(r)"),
            reply("FINAL(never reached)"),
        ],
        SubRule::Echo,
        budget_config(Budget {
            max_sub_calls: Some(2),
            ..Budget::default()
        }),
    )
    .await;
    let report = result.unwrap();
    stopped_by(&report, BudgetKind::SubCalls);
    assert!(
        report.answer.contains("max sub-calls (2)"),
        "{}",
        report.answer
    );
    assert!(
        report.answer.contains("budget reached"),
        "the refused slot shows: {}",
        report.answer
    );

    // Tokens: the first root call already spends more than allowed.
    let (result, _s) = run_script(
        vec![code("print('x')"), reply("FINAL(never reached)")],
        SubRule::Echo,
        budget_config(Budget {
            max_tokens: Some(10),
            ..Budget::default()
        }),
    )
    .await;
    let report = result.unwrap();
    stopped_by(&report, BudgetKind::Tokens);
    assert!(
        report.answer.contains("x"),
        "the last output: {}",
        report.answer
    );

    // Cost: $0.10 per token in this table.
    let (result, _s) = run_script(
        vec![code("print('y')"), reply("FINAL(never reached)")],
        SubRule::Echo,
        budget_config(Budget {
            max_cost_usd: Some(1.0),
            ..Budget::default()
        }),
    )
    .await;
    let report = result.unwrap();
    stopped_by(&report, BudgetKind::Cost);
    assert!(report.usage[0].cost_usd.unwrap() > 1.0);

    // Wall time: a slow model is abandoned promptly.
    let started = std::time::Instant::now();
    let (result, _s) = run_script(
        vec![
            code("print('z')"),
            Step::Delayed(Duration::from_secs(4), "FINAL(too late)".into()),
        ],
        SubRule::Echo,
        budget_config(Budget {
            max_wall: Some(Duration::from_millis(1500)),
            ..Budget::default()
        }),
    )
    .await;
    let report = result.unwrap();
    stopped_by(&report, BudgetKind::WallTime);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_child_rlm_answers_from_the_context_its_parent_passed() {
    let (result, server) = run_script(
        vec![
            // The parent hands a child its own small context.
            code(
                "a = rlm_query('What is the secret word?', {'notes.txt': 'The secret word is tangerine.'})\nprint(a)",
            ),
            // The child searches that context, not the parent's workspace.
            code("print(grep('secret'), len(context))"),
            reply("FINAL(tangerine)"),
            // Back in the parent.
            reply("FINAL(The child found tangerine)"),
        ],
        SubRule::Echo,
        config(5),
    )
    .await;
    let report = result.unwrap();
    assert_eq!(report.answer, "The child found tangerine");
    let child = report
        .events
        .iter()
        .find_map(|e| match e {
            Event::ChildRun {
                depth,
                answer,
                iterations,
                tokens,
                ..
            } => Some((*depth, answer.clone(), *iterations, *tokens)),
            _ => None,
        })
        .unwrap();
    // The child reports its subtree's tokens: what the account charged at depth 1.
    let depth1: u64 = report
        .usage
        .iter()
        .filter(|u| u.depth == 1)
        .map(|u| u.usage.prompt_tokens + u.usage.completion_tokens)
        .sum();
    assert!(depth1 > 0);
    assert_eq!(child, (1, Some("tangerine".to_string()), 2, depth1));
    // The child's REPL held only the context it was given.
    let child_turn = last_user_message(&server, 2);
    assert!(child_turn.contains("notes.txt:1"), "{child_turn}");
    assert!(
        child_turn.contains(" 1\n") || child_turn.contains(") 1"),
        "{child_turn}"
    );
    let parent_turn = last_user_message(&server, 3);
    assert!(parent_turn.contains("tangerine"), "{parent_turn}");
    // Usage is accounted per depth.
    assert!(
        report
            .usage
            .iter()
            .any(|u| u.depth == 1 && u.role == "root")
    );
    assert_eq!(report.sub_calls, 1);
}

#[tokio::test]
async fn past_the_depth_limit_rlm_query_is_a_plain_model_call() {
    let (result, _server) = run_script(
        vec![
            code("print(rlm_query('Summarize', ['alpha', 'beta']))"),
            reply("FINAL(done)"),
        ],
        SubRule::Echo,
        EngineConfig {
            max_depth: 0,
            ..config(5)
        },
    )
    .await;
    let report = result.unwrap();
    let out = report
        .events
        .iter()
        .find_map(|e| match e {
            Event::CodeCell { stdout, .. } => Some(stdout.clone()),
            _ => None,
        })
        .unwrap();
    assert!(out.starts_with("echo: Summarize"), "{out}");
    assert!(out.contains("--- part_000.txt ---\nalpha"), "{out}");
    assert!(
        !report
            .events
            .iter()
            .any(|e| matches!(e, Event::ChildRun { .. }))
    );
}

/// One concurrency limit per endpoint holds for every call: the root calls of child runs take
/// a slot too (before, three children started by one `rlm_query_batched` called the model at
/// once whatever the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_runs_share_the_endpoint_limit_with_every_other_call() {
    use rlm_lsp::llm::scripted::KeyedStep;
    let slow = |text: &str| Step::Delayed(Duration::from_millis(300), text.to_string());
    for (limit, want_max) in [(1usize, 1usize), (3, 3)] {
        let mut steps: Vec<KeyedStep> = vec![
            (
                Some("ROOT_Q".into()),
                Step::Reply(
                    "```repl\nr = rlm_query_batched(['CHILD_A', 'CHILD_B', 'CHILD_C'], \
                     [{'x.txt': 'one'}] * 3)\nprint(r)\n```\n"
                        .into(),
                ),
            ),
            (Some("ROOT_Q".into()), reply("FINAL(children answered)")),
        ];
        for key in ["CHILD_A", "CHILD_B", "CHILD_C"] {
            steps.push((Some(key.into()), slow("```repl\nprint(len(context))\n```")));
            steps.push((Some(key.into()), slow("FINAL(done)")));
        }
        let server = ScriptedServer::start_keyed(steps, SubRule::Echo)
            .await
            .unwrap();
        let (_dir, snap) = fixture();
        let blob = ContextBlob::write(&snap).unwrap();
        let cfg = EngineConfig {
            sub_concurrency: limit,
            max_depth: 1,
            ..config(5)
        };
        let report = engine(&server, cfg)
            .run(&snap, blob, "ROOT_Q: ask three children", None)
            .await
            .unwrap();
        assert_eq!(report.answer, "children answered", "{report:?}");
        assert_eq!(server.max_in_flight(), want_max, "limit {limit}");
    }
}
