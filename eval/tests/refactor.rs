//! Refactor tasks end to end on a tiny crate written to a temporary directory (no dependencies,
//! so `cargo check --offline` is quick): generation with its builds, the scorer on plans that
//! build or not and that miss or over-edit sites, and both methods against the scripted model
//! server. No network, no real model.

use rlm_eval::crate_check::{self, CheckSettings};
use rlm_eval::refactor::{self, GenOptions, RefactorTask};
use rlm_eval::refactor_run::{
    self, PlanFiles, RefactorMethod, RefactorOptions, RefactorRow, plan_files,
};
use rlm_eval::task::{RootRef, WorkspaceSpec};
use rlm_lsp::engine::refactor::FileChange;
use rlm_lsp::engine::{EngineConfig, Models};
use rlm_lsp::llm::scripted::{KeyedStep, ScriptedServer, Step, SubRule};
use rlm_lsp::workspace::Snapshot;
use std::path::PathBuf;
use std::time::Duration;

const MANIFEST: &str = r#"[package]
name = "tinyref"
version = "0.1.0"
edition = "2021"

[dependencies]

# Not in any registry: an offline check works only because the copy's manifest loses it.
[dev-dependencies]
no-such-crate-for-rlm-eval = "1"
"#;

const LIB: &str = r#"pub mod util;

pub const WIDGET_LIMIT: usize = 4;

pub struct Meter {
    pub gauge_level: usize,
}

/// Counts the widgets (see `tally_widgets` in the docs).
pub fn tally_widgets(xs: &[u8]) -> usize {
    xs.len().min(WIDGET_LIMIT)
}

pub fn gauge_level(m: &Meter) -> usize {
    m.gauge_level * 2
}

impl Meter {
    pub fn record(&mut self, xs: &[u8]) {
        self.gauge_level += tally_widgets(xs);
    }
}
"#;

const UTIL: &str = r#"use crate::{gauge_level, tally_widgets, Meter};

pub fn use_them(m: &mut Meter) -> usize {
    m.record(&[1]);
    tally_widgets(&[2, 3]) + gauge_level(m) + crate::WIDGET_LIMIT
}
"#;

const TEST: &str = r#"#[test]
fn counts() {
    let n = tinyref::tally_widgets(&[1, 2]);
    assert_eq!(n, 2);
}
"#;

/// A read-only root that mentions the name too: a whole-workspace rename tries to edit it.
const OTHER: &str = "pub fn tally_widgets() {}\n";

struct Fixture {
    _dir: tempfile::TempDir,
    crate_dir: PathBuf,
    target_root: PathBuf,
    spec: WorkspaceSpec,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("tinyref");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::create_dir_all(crate_dir.join("tests")).unwrap();
    std::fs::write(crate_dir.join("Cargo.toml"), MANIFEST).unwrap();
    std::fs::write(crate_dir.join("src/lib.rs"), LIB).unwrap();
    std::fs::write(crate_dir.join("src/util.rs"), UTIL).unwrap();
    std::fs::write(crate_dir.join("tests/it.rs"), TEST).unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("lib.rs"), OTHER).unwrap();
    let spec = WorkspaceSpec::new(vec![RootRef::Dir(crate_dir.clone()), RootRef::Dir(other)]);
    Fixture {
        target_root: dir.path().join("target"),
        crate_dir,
        spec,
        _dir: dir,
    }
}

async fn generate(f: &Fixture) -> Vec<RefactorTask> {
    let opts = GenOptions {
        target_root: f.target_root.clone(),
        ..GenOptions::default()
    };
    let (tasks, report) = refactor::generate(&f.spec, "tiny", &refactor::KINDS, &opts)
        .await
        .unwrap();
    assert!(report.error.is_none(), "{report:?}");
    assert!(report.unedited_ms.is_some() && report.all_features);
    tasks
}

fn settings(f: &Fixture, t: &RefactorTask) -> CheckSettings {
    CheckSettings {
        target_dir: crate_check::target_dir(&f.target_root, &t.target().label()),
        all_features: t.all_features,
        timeout: Duration::from_secs(300),
    }
}

/// A plan's files from text edits (as `RefactorPlan::file_changes` gives them).
fn files_of(snap: &Snapshot, edits: &[refactor::Edit]) -> PlanFiles {
    let changes: Vec<FileChange> = refactor::apply(snap, edits)
        .unwrap()
        .into_iter()
        .map(|(path, new)| FileChange {
            old: snap.get(&path).map(|f| f.text.clone()),
            path,
            new,
            renamed_to: None,
        })
        .collect();
    plan_files(&changes, snap)
}

async fn score(f: &Fixture, t: &RefactorTask, snap: &Snapshot, files: &PlanFiles) -> RefactorRow {
    let mut row: RefactorRow = serde_json::from_value(serde_json::json!({
        "task_id": t.id, "kind": t.kind, "crate": "tinyref", "over_edit_task": t.over_edit(),
        "method": "refactor", "score": 0.0, "score_detail": "", "build": null, "edits": 0,
        "files_touched": 0, "file_ops": 0, "dropped": 0, "dropped_read_only": 0,
        "forbidden_edits": 0, "sites": 0, "done": 0, "missed": [], "over_edited": [],
        "checks": 0, "failed_checks": 0, "repairs": 0, "last_check_passed": null,
        "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "cost_usd": null,
        "wall_ms": 0, "iterations": 0, "sub_calls": 0, "stop_reason": null, "error": null,
        "answer": "", "diff": "", "question_hash": ""
    }))
    .unwrap();
    refactor_run::score_files(&mut row, t, files, snap, &f.crate_dir, &settings(f, t)).await;
    row
}

fn find<'a>(tasks: &'a [RefactorTask], kind: &str, over_edit: bool) -> &'a RefactorTask {
    tasks
        .iter()
        .find(|t| t.kind == kind && t.over_edit() == over_edit)
        .unwrap_or_else(|| panic!("no {kind} task (over-edit {over_edit}) in {tasks:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_truth_and_the_scorer_on_builds_misses_and_over_edits() {
    let f = fixture();
    let tasks = generate(&f).await;
    let kinds: Vec<(&str, &str, bool)> = tasks
        .iter()
        .map(|t| (t.kind.as_str(), t.truth.name.as_str(), t.over_edit()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("rename-fn", "tally_widgets", false),
            ("rename-fn", "gauge_level", true),
            ("rename-type", "Meter", false),
            ("rename-const", "WIDGET_LIMIT", false),
            ("signature", "tally_widgets", false),
        ]
    );
    for t in &tasks {
        let v = t.verified.as_ref().unwrap();
        assert!(v.ideal_builds && !v.def_only_builds, "{t:#?}");
        assert_eq!(v.naive_builds.is_some(), t.over_edit());
        assert_eq!(t.at_path, t.truth.definition.path);
    }
    let snap = refactor::walk(&f.spec).unwrap();

    // rename-fn: every site, in three files (the test file included), and never the read-only
    // root.
    let t = find(&tasks, "rename-fn", false);
    let paths: Vec<(&str, u32)> = t
        .truth
        .sites
        .iter()
        .map(|s| (s.path.as_str(), s.line))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("tinyref/src/lib.rs", 10),
            ("tinyref/src/lib.rs", 20),
            ("tinyref/src/util.rs", 1),
            ("tinyref/src/util.rs", 5),
            ("tinyref/tests/it.rs", 3),
        ]
    );
    assert_eq!(t.truth.files, 3);
    assert_eq!(
        t.instruction,
        "rename the function `tally_widgets` to `tally_widgets_renamed` everywhere."
    );
    let ideal = refactor::ideal_edits(t, &snap).unwrap();
    let row = score(&f, t, &snap, &files_of(&snap, &ideal)).await;
    assert_eq!(row.score, 1.0, "{row:#?}");
    assert!(row.build.as_ref().unwrap().passed);
    // Missing the test file: it builds (tests are not compiled), but a site is missed.
    let src_only: Vec<_> = ideal
        .iter()
        .filter(|e| !e.0.contains("/tests/"))
        .cloned()
        .collect();
    let row = score(&f, t, &snap, &files_of(&snap, &src_only)).await;
    assert_eq!(row.score, 0.5, "{row:#?}");
    assert_eq!(row.sites.missed, vec!["tinyref/tests/it.rs:3"]);
    // The definition alone: it does not build.
    let def_only = refactor::definition_only_edits(t, &snap).unwrap();
    let row = score(&f, t, &snap, &files_of(&snap, &def_only)).await;
    assert_eq!(row.score, 0.0, "{row:#?}");
    let build = row.build.unwrap();
    assert!(
        !build.passed && build.errors.contains("tally_widgets"),
        "{build:?}"
    );
    // Nothing changed.
    let row = score(&f, t, &snap, &files_of(&snap, &[])).await;
    assert_eq!((row.score, row.build.is_none()), (0.0, true));
    // A change in the read-only root is a hard failure, whatever else the plan does.
    let mut files = files_of(&snap, &ideal);
    let other = plan_files(
        &[FileChange {
            path: "other/lib.rs".into(),
            old: snap.get("other/lib.rs").map(|f| f.text.clone()),
            new: "pub fn tally_widgets_renamed() {}\n".into(),
            renamed_to: None,
        }],
        &snap,
    );
    files.forbidden.extend(other.forbidden);
    let row = score(&f, t, &snap, &files).await;
    assert_eq!((row.score, row.forbidden_edits), (0.0, 1), "{row:#?}");

    // The over-edit task: a whole-word replace also renames the field `gauge_level`.
    let t = find(&tasks, "rename-fn", true);
    assert_eq!(t.truth.others.len(), 3);
    assert_eq!(t.verified.as_ref().unwrap().naive_builds, Some(true));
    let naive = refactor::naive_edits(t, &snap).unwrap();
    let row = score(&f, t, &snap, &files_of(&snap, &naive)).await;
    assert_eq!(row.score, 0.5, "{row:#?}");
    assert_eq!(row.sites.over_edited.len(), 3);
    assert!(row.sites.missed.is_empty());
    let row = score(
        &f,
        t,
        &snap,
        &files_of(&snap, &refactor::ideal_edits(t, &snap).unwrap()),
    )
    .await;
    assert_eq!(row.score, 1.0, "{row:#?}");

    // The signature change: the parameter at the definition, the value at every call.
    let t = find(&tasks, "signature", false);
    assert_eq!(t.truth.sites.len(), 3);
    assert!(t.truth.sites.iter().all(|s| s.args == Some(1)));
    let ideal = refactor::ideal_edits(t, &snap).unwrap();
    let row = score(&f, t, &snap, &files_of(&snap, &ideal)).await;
    assert_eq!(row.score, 1.0, "{row:#?}");
    assert_eq!((row.sites.done, row.sites.sites), (4, 4));
    let no_test: Vec<_> = ideal
        .iter()
        .filter(|e| !e.0.contains("/tests/"))
        .cloned()
        .collect();
    let row = score(&f, t, &snap, &files_of(&snap, &no_test)).await;
    assert_eq!(row.score, 0.5, "{row:#?}");
    let no_util: Vec<_> = ideal
        .iter()
        .filter(|e| !e.0.contains("util.rs"))
        .cloned()
        .collect();
    let row = score(&f, t, &snap, &files_of(&snap, &no_util)).await;
    assert_eq!(row.score, 0.0, "{row:#?}");

    // The task file round trip.
    let tf = f.crate_dir.parent().unwrap().join("refactor-tasks.jsonl");
    refactor::write_tasks(&tf, &tasks).unwrap();
    assert_eq!(refactor::read_tasks(&tf).unwrap(), tasks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_methods_plan_a_rename_with_the_scripted_model() {
    let f = fixture();
    let tasks = generate(&f).await;
    let task = find(&tasks, "rename-fn", false).clone();
    let key = || Some(task.instruction.clone());
    let partial = "```repl\nprint(rename_symbol('tally_widgets', 'tally_widgets_renamed', paths='tinyref/src/lib.rs'))\n```";
    let full = "```repl\nprint(rename_symbol('tally_widgets', 'tally_widgets_renamed'))\nprint(proposed_edits())\n```";
    let done = "FINAL(Renamed `tally_widgets` to `tally_widgets_renamed`.)";
    let steps: Vec<KeyedStep> = vec![
        // `refactor`: a partial rename, which the check sends back, then the whole one.
        (key(), Step::Reply(partial.into())),
        (key(), Step::Reply(done.into())),
        (key(), Step::Reply(full.into())),
        (key(), Step::Reply(done.into())),
        // `refactor-no-check`: the same partial rename stands.
        (key(), Step::Reply(partial.into())),
        (key(), Step::Reply(done.into())),
    ];
    let server = ScriptedServer::start_keyed(steps, SubRule::Echo)
        .await
        .unwrap();
    let mut cfg = EngineConfig {
        max_iterations: 6,
        ..EngineConfig::default()
    };
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rlm-eval"));
    cfg.repl.worker_exe = exe.clone();
    let runner = rlm_lsp::session::Runner::from_models(Models::same(server.client()), cfg);
    let trajectories = f.crate_dir.parent().unwrap().join("trajectories");
    let opts = RefactorOptions {
        check_exe: exe,
        check_timeout: Duration::from_secs(300),
        repairs: 2,
        target_root: f.target_root.clone(),
        trajectories: Some(trajectories.clone()),
    };
    let rows = refactor_run::run(
        std::slice::from_ref(&task),
        &RefactorMethod::ALL,
        &runner,
        &opts,
        &Default::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let with = &rows[0];
    assert_eq!(with.method, RefactorMethod::Refactor);
    assert!(with.error.is_none(), "{with:#?}");
    assert_eq!(with.score, 1.0, "{with:#?}");
    assert_eq!(
        (
            with.checks,
            with.failed_checks,
            with.repairs,
            with.last_check_passed
        ),
        (2, 1, 1, Some(true)),
        "{with:#?}"
    );
    assert_eq!((with.sites.done, with.sites.sites), (5, 5));
    // The read-only root's file was edited by the whole-workspace rename, and dropped.
    assert!(
        with.dropped_read_only >= 1 && with.forbidden_edits == 0,
        "{with:#?}"
    );
    assert_eq!(with.files_touched, 3);
    assert!(with.prompt_tokens > 0 && with.wall_ms > 0);
    assert!(
        with.diff
            .contains("+pub fn tally_widgets_renamed(xs: &[u8]) -> usize {")
    );
    let without = &rows[1];
    assert_eq!(without.method, RefactorMethod::RefactorNoCheck);
    assert_eq!(without.score, 0.0, "{without:#?}");
    assert!(!without.build.as_ref().unwrap().passed, "{without:#?}");
    assert_eq!((without.checks, without.repairs), (1, 0), "{without:#?}");
    assert!(
        trajectories
            .join(format!("{}-refactor.jsonl", task.id))
            .exists()
    );
    // What the model was told when the check failed: the compiler's error.
    let told: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r["messages"].as_array().cloned())
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    assert!(
        told.iter()
            .any(|t| t.contains("check-crate") && t.contains("tally_widgets")),
        "{told:#?}"
    );
    // The report.
    let out = f.crate_dir.parent().unwrap().join("out");
    refactor_run::write_report(&rows, &out, "").unwrap();
    let md = std::fs::read_to_string(out.join("refactor-report.md")).unwrap();
    assert!(
        md.contains("| refactor | 1 | 1.00 |")
            && md.contains("| rename-fn | 1.00 (1) | 0.00 (1) |"),
        "{md}"
    );
}
