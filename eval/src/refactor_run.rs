//! Runs refactor tasks (`refactor.rs`) through the library façade (`Workspace::plan_refactor`),
//! scores the plans with the crate's build and the ground truth's sites, and reports.
//!
//! Two methods, on the same engine and model:
//! - `refactor`: the check command is `cargo check --offline` of the engine's scratch copy
//!   (`rlm-eval check-crate`), so a plan that does not build goes back to the model to repair;
//! - `refactor-no-check`: no check command: only a plan with no edit that applies goes back.
//!
//! A plan is never applied to the registry's sources: its file changes go into a scratch copy
//! of the crate, which is checked (`crate_check.rs`). Score: 1 when the copy builds and every
//! site is changed (the old name gone from each, the new one in its place; for a signature
//! change the parameter at the definition and one more argument at every call) with no other
//! occurrence touched; 0.5 when it builds, changes some sites, but misses or over-edits some; 0
//! when it does not build, changes no site, or edits a read-only root or a file outside the
//! roots (a hard failure, counted apart).

use crate::crate_check::{self, CheckResult, CheckSettings};
use crate::methods::UsageRow;
use crate::refactor::{self, RefactorTask};
use crate::refs;
use crate::task::{WorkspaceSpec, stable_hash};
use rlm_lsp::config::CheckSettings as PlanCheckSettings;
use rlm_lsp::engine::Event;
use rlm_lsp::session::{RefactorPlan, Runner, Workspace};
use rlm_lsp::workspace::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RefactorMethod {
    /// The engine's plan, checked with `cargo check --offline` and repaired when it fails.
    #[serde(rename = "refactor")]
    Refactor,
    /// The engine's plan without a check command.
    #[serde(rename = "refactor-no-check")]
    RefactorNoCheck,
}

impl RefactorMethod {
    pub const ALL: [RefactorMethod; 2] =
        [RefactorMethod::Refactor, RefactorMethod::RefactorNoCheck];

    pub fn as_str(self) -> &'static str {
        match self {
            RefactorMethod::Refactor => "refactor",
            RefactorMethod::RefactorNoCheck => "refactor-no-check",
        }
    }
}

impl std::str::FromStr for RefactorMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RefactorMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown refactor method {s:?}: use refactor, refactor-no-check")
            })
    }
}

/// How the sites of a task came out in a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteScore {
    /// Sites in the truth (a signature change counts its definition as one).
    pub sites: usize,
    pub done: usize,
    /// `path:line` of the sites left as they were (or changed to something else).
    pub missed: Vec<String>,
    /// `path:line` of the other occurrences the plan changed.
    pub over_edited: Vec<String>,
}

/// One task planned by one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefactorRow {
    pub task_id: String,
    pub kind: String,
    #[serde(default)]
    pub size: String,
    /// The crate edited.
    #[serde(rename = "crate")]
    pub crate_label: String,
    pub over_edit_task: bool,
    pub method: RefactorMethod,
    pub score: f64,
    pub score_detail: String,
    /// The scorer's build of the plan applied to a scratch copy; `None` when the plan changed
    /// nothing (or the run failed).
    pub build: Option<CheckResult>,
    /// Text edits of the checked plan, files it changes (created and renamed ones included),
    /// and file operations (creates, renames).
    pub edits: usize,
    pub files_touched: usize,
    pub file_ops: usize,
    /// Edits the plan's checks dropped, and those among them that wrote a read-only root.
    pub dropped: usize,
    pub dropped_read_only: usize,
    /// File changes of the final plan in a read-only root or outside the roots: a hard failure.
    pub forbidden_edits: usize,
    #[serde(flatten)]
    pub sites: SiteScore,
    /// `check` events in the trajectory (the engine's checks of final answers), those that
    /// failed, and the repairs they led to (failed checks the model got more turns after).
    pub checks: u32,
    pub failed_checks: u32,
    pub repairs: u32,
    /// The last check's verdict (`None`: no check ran).
    pub last_check_passed: Option<bool>,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: Option<f64>,
    /// The engine's run (checks and repairs included), not the scorer's build.
    pub wall_ms: u64,
    pub iterations: u32,
    pub sub_calls: u32,
    pub stop_reason: Option<String>,
    pub error: Option<String>,
    /// The answer (cut to 1,500 characters) and the plan's unified diff (cut to 6,000).
    pub answer: String,
    pub diff: String,
    #[serde(default)]
    pub usage: Vec<UsageRow>,
    /// FNV-1a of the instruction, so a resumed run tells a regenerated task apart.
    pub question_hash: String,
}

/// What every refactor run needs besides the model.
#[derive(Debug, Clone)]
pub struct RefactorOptions {
    /// The binary whose `check-crate` subcommand is the engine's check command (`rlm-eval`).
    pub check_exe: PathBuf,
    /// Time limit of one check (the engine's and the scorer's).
    pub check_timeout: Duration,
    /// Times a plan may go back to the model (no edit applies, or the check fails).
    pub repairs: u32,
    /// Where the target directories of the checks go, one per crate.
    pub target_root: PathBuf,
    /// Where each run's trajectory goes (`TASK-METHOD.jsonl`), if anywhere.
    pub trajectories: Option<PathBuf>,
}

pub fn question_hash(t: &RefactorTask) -> String {
    format!("{:016x}", stable_hash(&t.instruction))
}

fn settings(t: &RefactorTask, opts: &RefactorOptions) -> CheckSettings {
    CheckSettings {
        target_dir: crate_check::target_dir(&opts.target_root, &t.target().label()),
        all_features: t.all_features,
        timeout: opts.check_timeout,
    }
}

/// The runner of a method: with the crate's check command for `refactor`.
pub fn runner_for(
    base: &Runner,
    method: RefactorMethod,
    t: &RefactorTask,
    opts: &RefactorOptions,
) -> Runner {
    let check_command = (method == RefactorMethod::Refactor)
        .then(|| crate_check::command_line(&opts.check_exe, &settings(t, opts)));
    base.clone().with_check(PlanCheckSettings {
        check_command,
        check_timeout_secs: opts.check_timeout.as_secs().max(1),
        check_repairs: opts.repairs,
    })
}

/// Runs every task with every method (workspaces read once each), calling `on_row` as each row
/// is done; `(task id, method)` pairs in `done` are skipped.
pub async fn run(
    tasks: &[RefactorTask],
    methods: &[RefactorMethod],
    base: &Runner,
    opts: &RefactorOptions,
    done: &BTreeSet<(String, RefactorMethod)>,
    mut on_row: impl FnMut(&RefactorRow),
) -> anyhow::Result<Vec<RefactorRow>> {
    let mut groups: Vec<(WorkspaceSpec, Vec<&RefactorTask>)> = Vec::new();
    for t in tasks {
        match groups.iter_mut().find(|(w, _)| *w == t.workspace) {
            Some((_, ts)) => ts.push(t),
            None => groups.push((t.workspace.clone(), vec![t])),
        }
    }
    let mut order = methods.to_vec();
    order.sort();
    order.dedup();
    let mut rows = Vec::new();
    for (spec, ts) in groups {
        let todo = |t: &RefactorTask, m: RefactorMethod| !done.contains(&(t.id.clone(), m));
        if !ts.iter().any(|t| order.iter().any(|m| todo(t, *m))) {
            continue;
        }
        let snap = Arc::new(refactor::walk(&spec)?);
        let ws = Workspace::new(snap.clone());
        let ws_ref = &ws;
        tokio::task::block_in_place(|| ws_ref.wait_indexed(Duration::from_secs(900)));
        for &method in &order {
            for t in &ts {
                if !todo(t, method) {
                    continue;
                }
                let row = run_one(t, method, &ws, base, opts).await;
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Plans one task with one method and scores the plan.
pub async fn run_one(
    t: &RefactorTask,
    method: RefactorMethod,
    ws: &Workspace,
    base: &Runner,
    opts: &RefactorOptions,
) -> RefactorRow {
    let mut row = empty_row(t, method);
    let snap = ws.snapshot().clone();
    if let Err(e) = check_base(t, &snap) {
        row.error = Some(e);
        row.score_detail = "the crate differs from the one the task was generated on".into();
        return row;
    }
    let runner = runner_for(base, method, t, opts);
    let started = Instant::now();
    let result = ws
        .plan_refactor(
            &runner,
            &t.instruction,
            Some((t.at_path.as_str(), Some(t.at_line))),
            None,
        )
        .await;
    row.wall_ms = started.elapsed().as_millis() as u64;
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            row.error = Some(format!("{e:#}"));
            row.score_detail = "the run failed".into();
            return row;
        }
    };
    if let Some(dir) = &opts.trajectories {
        crate::harness::write_events(
            dir,
            &format!("{}-{}", t.id, method.as_str()),
            &plan.answer.report.events,
        );
    }
    fill_run(&mut row, &plan);
    let crate_dir = match t.target().resolve() {
        Ok(d) => d,
        Err(e) => {
            row.error = Some(e);
            return row;
        }
    };
    score_plan(&mut row, t, &plan, ws, &crate_dir, &settings(t, opts)).await;
    row
}

fn empty_row(t: &RefactorTask, method: RefactorMethod) -> RefactorRow {
    RefactorRow {
        task_id: t.id.clone(),
        kind: t.kind.clone(),
        size: t.size.clone(),
        crate_label: t.target().label(),
        over_edit_task: t.over_edit(),
        method,
        score: 0.0,
        score_detail: String::new(),
        build: None,
        edits: 0,
        files_touched: 0,
        file_ops: 0,
        dropped: 0,
        dropped_read_only: 0,
        forbidden_edits: 0,
        sites: SiteScore {
            sites: site_total(t),
            ..SiteScore::default()
        },
        checks: 0,
        failed_checks: 0,
        repairs: 0,
        last_check_passed: None,
        prompt_tokens: 0,
        cached_tokens: 0,
        completion_tokens: 0,
        cost_usd: None,
        wall_ms: 0,
        iterations: 0,
        sub_calls: 0,
        stop_reason: None,
        error: None,
        answer: String::new(),
        diff: String::new(),
        usage: Vec::new(),
        question_hash: question_hash(t),
    }
}

fn site_total(t: &RefactorTask) -> usize {
    t.truth.sites.len() + usize::from(t.kind == "signature")
}

/// The files the truth is in must be the ones it was computed on.
fn check_base(t: &RefactorTask, snap: &Snapshot) -> Result<(), String> {
    for (path, hash) in &t.truth.base_hashes {
        let f = snap
            .get(path)
            .ok_or_else(|| format!("{path} is not in the workspace"))?;
        let h = format!("{:016x}", stable_hash(&f.text));
        if &h != hash {
            return Err(format!("{path}: hash {h}, the task expects {hash}"));
        }
    }
    Ok(())
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [...]", &s[..end])
}

/// The run's side of a row: usage, events, the plan's size.
fn fill_run(row: &mut RefactorRow, plan: &RefactorPlan) {
    let r = &plan.answer.report;
    row.usage = r
        .usage
        .iter()
        .map(|u| UsageRow {
            role: u.role.clone(),
            model: u.model.clone(),
            depth: u.depth,
            calls: u.calls,
            prompt_tokens: u.usage.prompt_tokens,
            cached_tokens: u.usage.cached_tokens,
            completion_tokens: u.usage.completion_tokens,
            cost_usd: u.cost_usd,
            latency_ms: u.latency_ms,
        })
        .collect();
    row.prompt_tokens = row.usage.iter().map(|u| u.prompt_tokens).sum();
    row.cached_tokens = row.usage.iter().map(|u| u.cached_tokens).sum();
    row.completion_tokens = row.usage.iter().map(|u| u.completion_tokens).sum();
    row.cost_usd = row
        .usage
        .iter()
        .try_fold(0.0, |acc, u| u.cost_usd.map(|c| acc + c));
    row.iterations = r.iterations;
    row.sub_calls = r.sub_calls;
    row.stop_reason = Some(r.stop_reason.to_string());
    let (checks, failed, repairs, last) = check_events(&r.events);
    row.checks = checks;
    row.failed_checks = failed;
    row.repairs = repairs;
    row.last_check_passed = last;
    row.edits = plan.checked.edits.len();
    row.file_ops = plan.checked.files.len();
    row.dropped = plan.checked.dropped.len();
    row.dropped_read_only = plan
        .checked
        .dropped
        .iter()
        .filter(|d| d.reason.contains("read-only root"))
        .count();
    row.answer = cut(&r.answer, 1500);
    row.diff = cut(&plan.diff, 6000);
}

/// `check` events: how many, how many failed, how many of those the model got more turns after
/// (repairs), and the last one's verdict.
pub fn check_events(events: &[Event]) -> (u32, u32, u32, Option<bool>) {
    let (mut checks, mut failed, mut repairs, mut last) = (0, 0, 0, None);
    for (i, e) in events.iter().enumerate() {
        if let Event::Check { passed, .. } = e {
            checks += 1;
            last = Some(*passed);
            if !passed {
                failed += 1;
                let more = events[i + 1..].iter().any(|e| {
                    matches!(
                        e,
                        Event::RootMessage {
                            role: rlm_lsp::llm::Role::Assistant,
                            ..
                        }
                    )
                });
                if more {
                    repairs += 1;
                }
            }
        }
    }
    (checks, failed, repairs, last)
}

/// What a plan does to the files, as the scorer needs it.
pub struct PlanFiles {
    /// Workspace path -> the file's text after the plan (existing files; a renamed file under
    /// its old path).
    pub texts: BTreeMap<String, String>,
    /// Crate-relative changes for the scratch copy (`None` removes a file).
    pub crate_changes: Vec<(String, Option<String>)>,
    /// Changes in a read-only root or outside the roots.
    pub forbidden: Vec<String>,
    pub files_touched: usize,
}

/// Sorts a plan's file changes into what is scored and what is forbidden.
pub fn plan_files(changes: &[rlm_lsp::engine::refactor::FileChange], snap: &Snapshot) -> PlanFiles {
    let mut out = PlanFiles {
        texts: BTreeMap::new(),
        crate_changes: Vec::new(),
        forbidden: Vec::new(),
        files_touched: changes.len(),
    };
    let writable = |p: &str| {
        snap.root_of(p)
            .filter(|(r, _)| !r.read_only)
            .map(|(_, rel)| rel.to_string())
    };
    for c in changes {
        let Some(rel) = writable(&c.path) else {
            out.forbidden.push(c.path.clone());
            continue;
        };
        if c.old.is_some() {
            out.texts.insert(c.path.clone(), c.new.clone());
        }
        match &c.renamed_to {
            Some(to) => match writable(to) {
                Some(to_rel) => {
                    out.crate_changes.push((rel, None));
                    out.crate_changes.push((to_rel, Some(c.new.clone())));
                }
                None => out.forbidden.push(to.clone()),
            },
            None => out.crate_changes.push((rel, Some(c.new.clone()))),
        }
    }
    out
}

/// Scores a plan: forbidden edits, the build of the scratch copy, the sites.
pub async fn score_plan(
    row: &mut RefactorRow,
    t: &RefactorTask,
    plan: &RefactorPlan,
    ws: &Workspace,
    crate_dir: &Path,
    s: &CheckSettings,
) {
    let changes = plan.file_changes(ws);
    let files = plan_files(&changes, ws.snapshot());
    score_files(row, t, &files, ws.snapshot(), crate_dir, s).await;
}

/// [`score_plan`] from the plan's files.
pub async fn score_files(
    row: &mut RefactorRow,
    t: &RefactorTask,
    files: &PlanFiles,
    snap: &Snapshot,
    crate_dir: &Path,
    s: &CheckSettings,
) {
    row.files_touched = files.files_touched;
    row.forbidden_edits = files.forbidden.len();
    row.sites = score_sites(t, snap, &files.texts);
    if files.crate_changes.is_empty() {
        row.score = 0.0;
        row.score_detail = if row.forbidden_edits > 0 {
            format!(
                "hard failure: {} files changed in a read-only root or outside the roots",
                row.forbidden_edits
            )
        } else {
            "the plan changes nothing".into()
        };
        return;
    }
    let build = match crate_check::check_changes(crate_dir, &files.crate_changes, s).await {
        Ok(b) => b,
        Err(e) => {
            row.error = Some(format!("the scorer's build could not run: {e:#}"));
            row.score_detail = "not scored".into();
            return;
        }
    };
    let (score, detail) = combine(build.passed, row.forbidden_edits, &row.sites);
    row.score = score;
    row.score_detail = detail;
    row.build = Some(build);
}

/// The score of a plan from its build, its forbidden edits and its sites.
pub fn combine(builds: bool, forbidden: usize, s: &SiteScore) -> (f64, String) {
    let sites = format!(
        "{}/{} sites{}",
        s.done,
        s.sites,
        if s.over_edited.is_empty() {
            String::new()
        } else {
            format!(", {} over-edited", s.over_edited.len())
        }
    );
    if forbidden > 0 {
        return (
            0.0,
            format!(
                "hard failure: {forbidden} files changed in a read-only root or outside the roots"
            ),
        );
    }
    if !builds {
        return (0.0, format!("does not build; {sites}"));
    }
    if s.done == 0 {
        return (0.0, format!("builds, but changes no site; {sites}"));
    }
    if s.missed.is_empty() && s.over_edited.is_empty() {
        return (1.0, format!("builds; {sites}"));
    }
    (0.5, format!("builds; {sites}"))
}

/// How the truth's sites and other occurrences came out, given the texts after the plan
/// (workspace path -> text; files not in it are unchanged).
pub fn score_sites(
    t: &RefactorTask,
    snap: &Snapshot,
    after: &BTreeMap<String, String>,
) -> SiteScore {
    if t.kind == "signature" {
        return signature_sites(t, snap, after);
    }
    let tr = &t.truth;
    let mut out = SiteScore {
        sites: tr.sites.len(),
        ..SiteScore::default()
    };
    let mut by_file: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for s in &tr.sites {
        by_file.entry(s.path.as_str()).or_default().0.push(s.start);
    }
    for s in &tr.others {
        by_file.entry(s.path.as_str()).or_default().1.push(s.start);
    }
    for (path, (sites, others)) in by_file {
        let Some(old) = snap.get(path).map(|f| f.text.clone()) else {
            continue;
        };
        let line = |start: usize| format!("{path}:{}", old[..start].matches('\n').count() + 1);
        let Some(new) = after.get(path) else {
            out.missed.extend(sites.iter().map(|s| line(*s)));
            continue;
        };
        let fate = token_fates(&old, new, &tr.new_name);
        for s in sites {
            match fate.get(&s) {
                Some(Fate::Renamed) => out.done += 1,
                _ => out.missed.push(line(s)),
            }
        }
        for o in others {
            if !matches!(fate.get(&o), Some(Fate::Kept) | None) {
                out.over_edited.push(line(o));
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The token is still there.
    Kept,
    /// Replaced, and the replacement holds the new name.
    Renamed,
    /// Replaced or removed otherwise.
    Changed,
}

/// What became of each token of `old` in `new` (by byte offset in `old`): a token diff, each
/// changed token judged by the stretch of new tokens that replaced it.
fn token_fates(old: &str, new: &str, new_name: &str) -> BTreeMap<usize, Fate> {
    let a = refs::tokens(old);
    let b = refs::tokens(new);
    let a_s: Vec<&str> = a.iter().map(|(_, t)| *t).collect();
    let b_s: Vec<&str> = b.iter().map(|(_, t)| *t).collect();
    let ops = similar::capture_diff_slices_deadline(
        similar::Algorithm::Myers,
        &a_s,
        &b_s,
        Some(Instant::now() + Duration::from_secs(10)),
    );
    let mut fates = BTreeMap::new();
    // Consecutive changed ops form one stretch: old tokens replaced by new tokens.
    let mut stretch_old: Vec<usize> = Vec::new();
    let mut stretch_new = 0..0;
    let mut flush = |old_ix: &mut Vec<usize>, new_range: &std::ops::Range<usize>| {
        let renamed = b_s[new_range.clone()].contains(&new_name);
        for i in old_ix.drain(..) {
            fates.insert(
                a[i].0,
                if renamed {
                    Fate::Renamed
                } else {
                    Fate::Changed
                },
            );
        }
    };
    let mut kept = Vec::new();
    let mut in_stretch = false;
    for op in ops {
        let (tag, old_r, new_r) = op.as_tag_tuple();
        if tag == similar::DiffTag::Equal {
            if in_stretch {
                flush(&mut stretch_old, &stretch_new);
                in_stretch = false;
            }
            kept.extend(old_r);
        } else {
            if in_stretch {
                stretch_new = stretch_new.start.min(new_r.start)..stretch_new.end.max(new_r.end);
            } else {
                stretch_new = new_r.clone();
                in_stretch = true;
            }
            stretch_old.extend(old_r);
        }
    }
    flush(&mut stretch_old, &stretch_new);
    for i in kept {
        fates.insert(a[i].0, Fate::Kept);
    }
    fates
}

/// Signature changes: the definition has one more parameter, and every call one more argument.
fn signature_sites(
    t: &RefactorTask,
    snap: &Snapshot,
    after: &BTreeMap<String, String>,
) -> SiteScore {
    let tr = &t.truth;
    let mut out = SiteScore {
        sites: tr.sites.len() + 1,
        ..SiteScore::default()
    };
    let text_of = |p: &str| -> Option<String> {
        after
            .get(p)
            .cloned()
            .or_else(|| snap.get(p).map(|f| f.text.to_string()))
    };
    let no_ext = BTreeSet::new();
    // The definition.
    let def_ok = text_of(&tr.definition.path).is_some_and(|text| {
        refs::analyze(&tr.definition.path, &text, &no_ext)
            .definitions
            .iter()
            .any(|d| {
                d.name == tr.name
                    && d.params
                        .is_some_and(|p| Some(p.count) == tr.definition.args.map(|a| a + 1))
            })
    });
    if def_ok && after.contains_key(&tr.definition.path) {
        out.done += 1;
    } else {
        out.missed
            .push(format!("{}:{}", tr.definition.path, tr.definition.line));
    }
    let mut by_file: BTreeMap<&str, Vec<&refactor::Site>> = BTreeMap::new();
    for s in &tr.sites {
        by_file.entry(s.path.as_str()).or_default().push(s);
    }
    for (path, mut sites) in by_file {
        sites.sort_by_key(|s| s.start);
        let Some(new) = after.get(path) else {
            out.missed
                .extend(sites.iter().map(|s| format!("{path}:{}", s.line)));
            continue;
        };
        let mut calls: Vec<refs::Call> = refs::analyze(path, new, &no_ext)
            .calls
            .into_iter()
            .filter(|c| c.name == tr.name)
            .collect();
        calls.sort_by_key(|c| c.start);
        for (i, s) in sites.iter().enumerate() {
            let ok = calls
                .get(i)
                .is_some_and(|c| Some(c.args) == s.args.map(|a| a + 1));
            if ok {
                out.done += 1;
            } else {
                out.missed.push(format!("{path}:{}", s.line));
            }
        }
    }
    out
}

/// Means per method, and per kind and method, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    pub method: RefactorMethod,
    pub tasks: usize,
    pub mean_score: f64,
    pub full: usize,
    pub half: usize,
    pub zero: usize,
    pub builds: usize,
    pub mean_checks: f64,
    pub mean_repairs: f64,
    pub forbidden_edits: usize,
    pub dropped_read_only: usize,
    pub errors: usize,
    pub mean_wall_s: f64,
    pub mean_tokens: f64,
}

pub fn summarize(rows: &[RefactorRow]) -> Vec<MethodSummary> {
    let mut by: BTreeMap<RefactorMethod, Vec<&RefactorRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.method).or_default().push(r);
    }
    by.into_iter()
        .map(|(method, rs)| {
            let n = rs.len() as f64;
            let mean = |f: &dyn Fn(&RefactorRow) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / n;
            MethodSummary {
                method,
                tasks: rs.len(),
                mean_score: mean(&|r| r.score),
                full: rs.iter().filter(|r| r.score >= 1.0).count(),
                half: rs.iter().filter(|r| r.score > 0.0 && r.score < 1.0).count(),
                zero: rs.iter().filter(|r| r.score <= 0.0).count(),
                builds: rs
                    .iter()
                    .filter(|r| r.build.as_ref().is_some_and(|b| b.passed))
                    .count(),
                mean_checks: mean(&|r| f64::from(r.checks)),
                mean_repairs: mean(&|r| f64::from(r.repairs)),
                forbidden_edits: rs.iter().map(|r| r.forbidden_edits).sum(),
                dropped_read_only: rs.iter().map(|r| r.dropped_read_only).sum(),
                errors: rs.iter().filter(|r| r.error.is_some()).count(),
                mean_wall_s: mean(&|r| r.wall_ms as f64 / 1000.0),
                mean_tokens: mean(&|r| (r.prompt_tokens + r.completion_tokens) as f64),
            }
        })
        .collect()
}

/// Later rows for the same task and method replace earlier ones; returns the rows and how many
/// were replaced.
pub fn merge_rows(parts: Vec<Vec<RefactorRow>>) -> (Vec<RefactorRow>, usize) {
    let mut out: Vec<RefactorRow> = Vec::new();
    let mut replaced = 0;
    for r in parts.into_iter().flatten() {
        match out
            .iter_mut()
            .find(|o| o.task_id == r.task_id && o.method == r.method)
        {
            Some(o) => {
                *o = r;
                replaced += 1;
            }
            None => out.push(r),
        }
    }
    (out, replaced)
}

/// `refactor-report.md`: per method, per kind and method, then every row.
pub fn markdown(rows: &[RefactorRow], title_note: &str) -> String {
    let mut md = String::from("# Refactor tasks: plans checked with the crate's build\n\n");
    if !title_note.is_empty() {
        md.push_str(title_note);
        md.push_str("\n\n");
    }
    md.push_str(
        "Score: 1 when the plan applied to a scratch copy of the crate builds (`cargo check \
         --offline`) and every site is changed with nothing else touched; 0.5 when it builds but \
         misses or over-edits sites; 0 when it does not build, changes no site, or edits a \
         read-only root or a file outside the roots (a hard failure). See docs/eval.md.\n\n",
    );
    md.push_str("## Per method\n\n");
    md.push_str(
        "| method | tasks | mean score | 1 | 0.5 | 0 | builds | checks (mean) | repairs (mean) | hard failures (edits outside the writable roots) | read-only edits dropped | errors | wall s (mean) | tokens (mean) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in summarize(rows) {
        md.push_str(&format!(
            "| {} | {} | {:.2} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {:.0} |\n",
            s.method.as_str(),
            s.tasks,
            s.mean_score,
            s.full,
            s.half,
            s.zero,
            s.builds,
            s.mean_checks,
            s.mean_repairs,
            s.forbidden_edits,
            s.dropped_read_only,
            s.errors,
            s.mean_wall_s,
            s.mean_tokens
        ));
    }
    let methods: BTreeSet<RefactorMethod> = rows.iter().map(|r| r.method).collect();
    md.push_str("\n## Mean score per task kind\n\n| kind |");
    for m in &methods {
        md.push_str(&format!(" {} |", m.as_str()));
    }
    md.push_str("\n|---|");
    for _ in &methods {
        md.push_str("---|");
    }
    md.push('\n');
    let mut kinds: Vec<&str> = refactor::KINDS.to_vec();
    for r in rows {
        if !kinds.contains(&r.kind.as_str()) {
            kinds.push(&r.kind);
        }
    }
    for k in kinds {
        let of_kind: Vec<&RefactorRow> = rows.iter().filter(|r| r.kind == k).collect();
        if of_kind.is_empty() {
            continue;
        }
        md.push_str(&format!("| {k} |"));
        for m in &methods {
            let rs: Vec<&&RefactorRow> = of_kind.iter().filter(|r| r.method == *m).collect();
            if rs.is_empty() {
                md.push_str(" |");
            } else {
                let mean = rs.iter().map(|r| r.score).sum::<f64>() / rs.len() as f64;
                md.push_str(&format!(" {mean:.2} ({}) |", rs.len()));
            }
        }
        md.push('\n');
    }
    md.push_str("\n## Every row\n\n| task | method | score | build | sites | over-edited | edits | files | checks / repairs | stop | wall s | tokens | detail |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut sorted: Vec<&RefactorRow> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.task_id, a.method).cmp(&(&b.task_id, b.method)));
    for r in sorted {
        md.push_str(&format!(
            "| {}{} | {} | {:.1} | {} | {}/{} | {} | {} | {} | {} / {} | {} | {:.1} | {} | {} |\n",
            r.task_id,
            if r.over_edit_task { " (over-edit)" } else { "" },
            r.method.as_str(),
            r.score,
            match &r.build {
                Some(b) if b.passed => format!("ok ({:.1} s)", b.duration_ms as f64 / 1000.0),
                Some(b) if b.timed_out => "timed out".into(),
                Some(_) => "fails".into(),
                None => "-".into(),
            },
            r.sites.done,
            r.sites.sites,
            r.sites.over_edited.len(),
            r.edits,
            r.files_touched,
            r.checks,
            r.repairs,
            r.stop_reason.as_deref().unwrap_or("-"),
            r.wall_ms as f64 / 1000.0,
            r.prompt_tokens + r.completion_tokens,
            r.error
                .as_deref()
                .map(|e| format!(
                    "error: {}",
                    cut(&e.replace('|', "/").replace('\n', " "), 120)
                ))
                .unwrap_or_else(|| r.score_detail.replace('|', "/")),
        ));
    }
    md
}

/// Writes `refactor-report.md` and `refactor-report.json` into `dir`.
pub fn write_report(rows: &[RefactorRow], dir: &Path, note: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("refactor-report.md"), markdown(rows, note))?;
    let json = serde_json::json!({
        "note": note,
        "summary": summarize(rows),
        "rows": rows,
    });
    std::fs::write(
        dir.join("refactor-report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fates_follow_the_diff() {
        let old = "fn tally(x: u32) { self.tally + tally(x) }";
        let new = "fn tally_renamed(x: u32) { self.tally + tally2(x) }";
        let f = token_fates(old, new, "tally_renamed");
        let at = |i: usize| f.get(&i).copied();
        assert_eq!(at(3), Some(Fate::Renamed));
        assert_eq!(at(old.find("self.tally").unwrap() + 5), Some(Fate::Kept));
        assert_eq!(at(old.rfind("tally(").unwrap()), Some(Fate::Changed));
    }

    #[test]
    fn combine_scores() {
        let s = |done, missed: usize, over: usize| SiteScore {
            sites: done + missed,
            done,
            missed: vec!["a:1".into(); missed],
            over_edited: vec!["b:2".into(); over],
        };
        assert_eq!(combine(true, 0, &s(3, 0, 0)).0, 1.0);
        assert_eq!(combine(true, 0, &s(2, 1, 0)).0, 0.5);
        assert_eq!(combine(true, 0, &s(3, 0, 1)).0, 0.5);
        assert_eq!(combine(true, 0, &s(0, 3, 0)).0, 0.0);
        assert_eq!(combine(false, 0, &s(3, 0, 0)).0, 0.0);
        assert_eq!(combine(true, 1, &s(3, 0, 0)).0, 0.0);
    }

    #[test]
    fn check_events_count_repairs() {
        use rlm_lsp::llm::Role;
        let msg = || Event::RootMessage {
            iteration: 1,
            role: Role::Assistant,
            content: String::new(),
            usage: None,
            latency_ms: None,
        };
        let check = |passed| Event::Check {
            iteration: 1,
            passed,
            message: None,
        };
        let events = vec![msg(), check(false), msg(), check(false), msg(), check(true)];
        assert_eq!(check_events(&events), (3, 2, 2, Some(true)));
        let events = vec![msg(), check(false)];
        assert_eq!(check_events(&events), (1, 1, 0, Some(false)));
    }
}
