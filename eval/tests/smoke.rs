//! The whole harness against the scripted model server: tasks generated from a tiny workspace,
//! every method, scoring, and the report files. No network, no real model.

use rlm_eval::generate::{self, Corpus};
use rlm_eval::harness;
use rlm_eval::methods::{Method, MethodOptions, Methods};
use rlm_eval::report::{Meta, Report};
use rlm_eval::task::{RootRef, Task, Truth, WorkspaceSpec};
use rlm_lsp::engine::{EngineConfig, Models};
use rlm_lsp::llm::scripted::{KeyedStep, ScriptedServer, Step, SubRule};

const LIB: &str = r#"
pub trait Shape { fn area(&self) -> f64; }
pub trait Named { fn name(&self) -> String; }
pub struct Circle;
pub struct Square;
pub struct Label;
impl Shape for Circle { fn area(&self) -> f64 { total_surface(1) } }
impl Shape for Square { fn area(&self) -> f64 { 2.0 } }
impl Named for Circle { fn name(&self) -> String { String::new() } }
impl Named for Label { fn name(&self) -> String { String::new() } }

/// Walks every registered shape in the drawing and adds up their surface, skipping
/// those that were hidden by the user before the export started.
pub fn total_surface(k: u32) -> f64 { 0.0 }
"#;

const UTIL: &str = r#"
pub fn load(p: &str) -> Result<(), std::io::Error> { let _ = crate::total_surface(2); Ok(()) }
pub fn save(p: &str) -> std::io::Result<u8> { Ok(1) }
"#;

/// A file large enough to plant a function in (`planted_behaviour`).
fn geometry() -> String {
    (0..60)
        .map(|i| format!("fn corner_{i}(x: u32) -> u32 {{\n    x + {i}\n}}\n\n"))
        .collect()
}

/// The answer a perfect model would give.
fn right_answer(t: &Task) -> String {
    match &t.truth {
        Truth::Function { name, file } => format!("`{name}` in {file}"),
        Truth::Names { names } => names.join(", "),
        Truth::Count { count } => format!("There are {count}."),
        Truth::Files { files, .. } => files.join("\n"),
        Truth::OneOfFiles { files } => files[0].clone(),
        Truth::Dir { dir } => dir.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_runs_scores_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), LIB).unwrap();
    std::fs::write(dir.path().join("src/util.rs"), UTIL).unwrap();
    std::fs::write(dir.path().join("src/geometry.rs"), geometry()).unwrap();
    let spec = WorkspaceSpec::new(vec![RootRef::Dir(dir.path().to_path_buf())]);
    let snap = harness::walk(&spec).unwrap();
    let texts: Vec<(&str, &str)> = snap
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let corpus = Corpus::new(&texts);
    let mut tasks = generate::generate(
        &spec,
        &corpus,
        &[
            "needle_function",
            "implementors",
            "aggregate",
            "planted_behaviour",
        ],
        1,
    );
    assert_eq!(tasks.len(), 4, "{tasks:#?}");
    // The function is planted in the run's view of the workspace, never on disk.
    let planted = tasks
        .iter()
        .find(|t| t.kind == "planted_behaviour")
        .unwrap()
        .clone();
    let Truth::Function {
        name: planted_name,
        file: planted_file,
    } = planted.truth.clone()
    else {
        panic!("{planted:?}")
    };
    assert_eq!(planted_file, "src/geometry.rs");
    assert!(tasks.iter().all(|t| t.workspace.overlays.len() == 1));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("src/geometry.rs")).unwrap(),
        geometry()
    );
    // A task file round trip, as `rlm-eval gen` writes and `rlm-eval run` reads it.
    let tf = dir.path().join("tasks.jsonl");
    rlm_eval::task::write_tasks(&tf, &tasks).unwrap();
    tasks = rlm_eval::task::read_tasks(&tf).unwrap();

    // Scripted replies in the harness's order: per method (direct, retrieval, rlm,
    // rlm-no-subcalls, rlm-no-recipes, rlm-no-evidence), per task; each keyed by its task's
    // question.
    let mut steps: Vec<KeyedStep> = Vec::new();
    let key = |t: &Task| Some(t.question.clone());
    for t in &tasks {
        steps.push((key(t), Step::Reply(right_answer(t))));
    }
    for t in &tasks {
        steps.push((key(t), Step::Reply("I could not find it.".into())));
    }
    for t in &tasks {
        steps.push((
            key(t),
            Step::Reply(format!(
                "```repl\nprint(llm_query('summarise this: ' + context['src/util.rs']))\n\
                 print('PLANTED' if 'fn {planted_name}(' in context['{planted_file}'] else 'MISSING')\n```"
            )),
        ));
        steps.push((key(t), Step::Reply(format!("FINAL({})", right_answer(t)))));
    }
    for t in &tasks {
        steps.push((
            key(t),
            Step::Reply("```repl\ntry:\n    print(llm_query('x' * 300))\nexcept Exception as e:\n    print('refused:', e)\n```".into()),
        ));
        steps.push((key(t), Step::Reply("FINAL(no idea)".into())));
    }
    // The two other ablations look, without sub-calls, then answer.
    for _ in 0..2 {
        for t in &tasks {
            steps.push((
                key(t),
                Step::Reply("```repl\nprint(len(context))\n```".into()),
            ));
            steps.push((key(t), Step::Reply(format!("FINAL({})", right_answer(t)))));
        }
    }
    let server = ScriptedServer::start_keyed(steps, SubRule::Echo)
        .await
        .unwrap();

    let mut cfg = EngineConfig {
        max_iterations: 4,
        ..EngineConfig::default()
    };
    cfg.repl.worker_exe = env!("CARGO_BIN_EXE_rlm-eval").into();
    let opts = MethodOptions {
        window_tokens: 8_000,
        direct_window_tokens: 8_000,
        retrieval_tokens: 300,
        ..MethodOptions::default()
    };
    let methods = Methods::new(&Models::same(server.client()), cfg, opts, 0)
        .await
        .unwrap();
    let mut seen = 0;
    let rows = harness::run(&tasks, &Method::ALL, &methods, |_| seen += 1)
        .await
        .unwrap();
    assert_eq!(rows.len(), 24);
    assert_eq!(seen, 24);
    for r in &rows {
        assert!(r.error.is_none(), "{r:#?}");
        let expect = match r.method {
            Method::Direct | Method::Rlm | Method::RlmNoRecipes | Method::RlmNoEvidence => 1.0,
            Method::Retrieval => 0.0,
            // "no idea" scores nothing: no names, files or numbers.
            Method::RlmNoSubcalls => 0.0,
        };
        assert_eq!(r.score, expect, "{r:#?}");
        assert!(r.prompt_tokens > 0, "{r:#?}");
        assert_eq!(r.unknown_paths, Some(vec![]), "{r:#?}");
    }
    // Both ablations look once and answer. Without recipes the evidence still runs, and for
    // a question about behaviour it asks the sub model about candidate functions
    // (find_function); without evidence nothing asks it.
    let ablations: Vec<_> = rows
        .iter()
        .filter(|r| matches!(r.method, Method::RlmNoRecipes | Method::RlmNoEvidence))
        .collect();
    assert!(
        ablations
            .iter()
            .all(|r| r.iterations == 2 && r.stop_reason.as_deref() == Some("final")),
        "{ablations:#?}"
    );
    assert!(
        ablations
            .iter()
            .filter(|r| r.method == Method::RlmNoEvidence)
            .all(|r| r.sub_calls == 0)
    );
    let rlm: Vec<_> = rows.iter().filter(|r| r.method == Method::Rlm).collect();
    // The script's one llm_query on top of what the evidence asked, which is the same with
    // or without recipes.
    for r in &rlm {
        let plain = ablations
            .iter()
            .find(|a| a.method == Method::RlmNoRecipes && a.task_id == r.task_id)
            .unwrap();
        assert_eq!(r.iterations, 2, "{r:#?}");
        assert_eq!(r.sub_calls, plain.sub_calls + 1, "{r:#?}");
        assert!(
            r.usage
                .iter()
                .any(|u| u.role == "sub" && u.calls == r.sub_calls),
            "{r:#?}"
        );
    }
    let direct = rows.iter().find(|r| r.method == Method::Direct).unwrap();
    assert!(!direct.truncated && !direct.overflow && direct.context_tokens > 0);

    // What the server saw: the direct prompt holds the files, then the question; every call
    // of a direct or retrieval answer has max_tokens set; no-subcalls runs carry the note.
    let reqs = server.requests();
    let user_texts: Vec<String> = reqs
        .iter()
        .filter_map(|r| r["messages"].as_array())
        .filter_map(|m| m.iter().find(|m| m["role"] == "user"))
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    let direct_prompt = user_texts
        .iter()
        .find(|t| t.contains("=== src/lib.rs ==="))
        .expect("a direct prompt");
    let q = direct_prompt.find("Question:").unwrap();
    assert!(direct_prompt.find("=== src/util.rs ===").unwrap() < q);
    // Every method sees the planted text: the direct prompt holds it, and the REPL's context.
    assert!(direct_prompt.contains(&format!("fn {planted_name}(")));
    assert!(
        reqs.iter()
            .filter(|r| r["messages"][0]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("You answer questions about a codebase")))
            .all(|r| r["max_tokens"] == 256),
        "direct and retrieval calls set max_tokens"
    );
    assert!(
        user_texts
            .iter()
            .any(|t| t.contains("llm_query, llm_query_batched and rlm_query are disabled"))
    );
    // The refused sub-calls never reached the model server (rlm-no-subcalls counts them as
    // attempts): only the rlm method's four and what the evidence asked did.
    let sub_requests = reqs
        .iter()
        .filter(|r| {
            !r["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["role"] == "system"))
        })
        .count();
    assert_eq!(
        sub_requests,
        rows.iter()
            .filter(|r| r.method != Method::RlmNoSubcalls)
            .map(|r| r.sub_calls as usize)
            .sum::<usize>()
    );
    // The refusal reached the model's code as an error it could print.
    let all_user: Vec<&str> = reqs
        .iter()
        .filter_map(|r| r["messages"].as_array())
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        all_user
            .iter()
            .any(|t| t.contains("sub-calls are disabled in this run")),
        "the refusal is shown to the model: {all_user:#?}"
    );
    assert!(
        all_user.iter().any(|t| t.contains("PLANTED"))
            && !all_user.iter().any(|t| t.contains("MISSING")),
        "the REPL's context holds the planted function: {all_user:#?}"
    );

    let meta = Meta {
        command: "smoke".into(),
        started: "now".into(),
        model: "scripted".into(),
        base_url: server.base_url(),
        methods: Method::ALL.to_vec(),
        settings: serde_json::json!({}),
        wall_s: 1.0,
    };
    let report = Report::new(meta, rows);
    let out = dir.path().join("out");
    report.write(&out).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| rlm-no-subcalls |") && md.contains("## Every task"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 24);
    assert_eq!(json["summary"].as_array().unwrap().len(), 6);
    assert!(
        md.contains("## Stop reasons") && md.contains("| planted_behaviour |"),
        "{md}"
    );
    let png = std::fs::read(out.join("score_vs_size.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
}
