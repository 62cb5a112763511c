//! Tests of the façade that need no model.

use super::*;

/// Progress lines carry the turn and what the engine says the run tree spent (its `Spent`
/// events): sub-calls, tokens, and a cost that becomes unknown once an unpriced model is used.
#[test]
fn progress_reports_the_turn_and_what_was_spent() {
    use crate::engine::Spent;
    use crate::llm::Role;
    let spent = |iteration, sub_calls, tokens, cost_usd| Event::Spent {
        iteration,
        spent: Spent {
            sub_calls,
            child_runs: 0,
            tokens,
            cost_usd,
        },
    };
    let reply = |iteration| Event::RootMessage {
        iteration,
        role: Role::Assistant,
        content: "```repl\n```".into(),
        usage: None,
        latency_ms: Some(5),
    };
    let sub = |iteration| Event::SubCall {
        iteration,
        model: "m".into(),
        prompt: "p".into(),
        response: Some("r".into()),
        error: None,
        usage: Default::default(),
        latency_ms: 5,
        cached: false,
    };
    let events = [
        spent(1, 0, 1100, Some(0.0028)),
        reply(1),
        spent(1, 1, 3150, Some(0.0037)),
        sub(1),
        spent(2, 2, 3170, None),
        sub(2),
    ];
    let mut p = RunProgress::new(10);
    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| p.update(e))
        .map(|u| format!("{}% {}", u.percentage, u.message))
        .collect();
    expect_test::expect![[r#"
        0% turn 1 of 10: the root model replied, 1100 tokens, $0.0028
        0% turn 1 of 10: a sub-call returned, 1 sub-calls, 3150 tokens, $0.0037
        10% turn 2 of 10: a sub-call returned, 2 sub-calls, 3170 tokens, cost unknown"#]]
    .assert_eq(&lines.join("\n"));
}

#[test]
fn identifier_at_finds_the_word_under_or_before_the_column() {
    let text = "fn alpha() {\n    beta_2(x);\n}\n";
    assert_eq!(identifier_at(text, 1, 4), Some("alpha"));
    assert_eq!(identifier_at(text, 1, 9), Some("alpha")); // just after it
    assert_eq!(identifier_at(text, 2, 5), Some("beta_2"));
    assert_eq!(identifier_at(text, 2, 2), None);
    assert_eq!(identifier_at(text, 9, 1), None);
}

#[test]
fn refactor_question_names_where_the_user_is() {
    let q = Workspace::refactor_question("rename a to b", Some(("src/a.rs", Some(3))));
    assert!(q.starts_with("Plan this refactor: rename a to b The user is at src/a.rs:3.\n\n"));
    assert!(q.ends_with(refactor::EDIT_FORMAT));
}

#[test]
fn search_and_definitions_answer_from_the_index_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.rs"),
        "/// Retries with backoff.\nfn retry_with_backoff() {}\nfn other() {}\n",
    )
    .unwrap();
    let ws = Workspace::open(&Roots::new(dir.path())).unwrap();
    assert!(ws.wait_indexed(Duration::from_secs(30)));
    let defs = ws.definitions("retry_with_backoff");
    assert_eq!(defs.len(), 1);
    assert_eq!((defs[0].path.as_str(), defs[0].start_line), ("a.rs", 2));
    let hits = ws.search("backoff retries", 5).unwrap();
    assert_eq!(hits[0].path, "a.rs");
    assert!(hits[0].preview.contains("retry_with_backoff"), "{hits:?}");
}
