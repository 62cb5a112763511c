//! Runs tasks with methods and scores the answers. Workspaces are taken in order of size; on
//! each, the methods run in turn (`direct` first, so its shared prefix stays in the server's
//! prompt cache across questions), each on every task of that workspace.

use crate::generate::Corpus;
use crate::methods::{Method, Methods, Outcome, Prepared, UsageRow};
use crate::score;
use crate::task::{Task, WorkspaceSpec};
use rlm_lsp::workspace::{RootSpec, WalkOptions, walk_roots};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One task answered by one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub task_id: String,
    pub kind: String,
    /// The task's size class (`100k`, `1m`, `5m`); empty in rows of task files without one.
    #[serde(default)]
    pub size: String,
    pub workspace: String,
    /// Estimated tokens (characters / 4) of the workspace as walked for this run.
    pub size_tokens: u64,
    pub files: usize,
    pub method: Method,
    pub score: f64,
    pub score_detail: String,
    /// The answer, cut to 2,000 characters.
    pub answer: String,
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Dollars, when the price table knows the model (`None` for the local model).
    pub cost_usd: Option<f64>,
    pub wall_ms: u64,
    pub iterations: u32,
    pub sub_calls: u32,
    pub stop_reason: Option<String>,
    pub context_tokens: u64,
    pub max_prompt_tokens: u64,
    pub truncated: bool,
    pub overflow: bool,
    #[serde(default)]
    pub usage: Vec<UsageRow>,
    /// Path-looking tokens of the answer that designate no file of the workspace (see
    /// `answer::unknown_paths`); `None` in rows written before this was recorded.
    #[serde(default)]
    pub unknown_paths: Option<Vec<String>>,
    /// FNV-1a of the question (hex), so a resumed run can tell a row of a regenerated task with
    /// the same id from a row of this task; empty in older rows.
    #[serde(default)]
    pub question_hash: String,
}

impl Row {
    /// The size class, or the workspace's label for rows without one.
    pub fn size_key(&self) -> &str {
        if self.size.is_empty() {
            &self.workspace
        } else {
            &self.size
        }
    }
}

/// The fingerprint of a question stored in its rows.
pub fn question_hash(question: &str) -> String {
    format!("{:016x}", crate::task::stable_hash(question))
}

/// Reads a workspace into a snapshot, its overlays applied (the disk is never written). Several
/// roots prefix every path with the root's name.
pub fn walk(spec: &WorkspaceSpec) -> anyhow::Result<rlm_lsp::workspace::Snapshot> {
    let mut roots = Vec::new();
    for r in &spec.roots {
        roots.push(RootSpec {
            path: r.resolve().map_err(anyhow::Error::msg)?,
            read_only: true,
        });
    }
    let mut snap = walk_roots(&roots, &WalkOptions::default())?;
    for o in &spec.overlays {
        let f = snap.get(&o.path).ok_or_else(|| {
            anyhow::anyhow!(
                "overlay on {}: no such file in {}",
                o.path,
                spec.roots
                    .iter()
                    .map(|r| r.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let text = o.apply(&f.text).map_err(anyhow::Error::msg)?;
        snap = snap.with_text(&o.path, text);
    }
    Ok(snap)
}

/// Workspaces in order of size, each with its tasks in file order.
pub fn group(tasks: &[Task]) -> Vec<(WorkspaceSpec, Vec<&Task>)> {
    let mut groups: Vec<(WorkspaceSpec, Vec<&Task>)> = Vec::new();
    for t in tasks {
        match groups.iter_mut().find(|(w, _)| *w == t.workspace) {
            Some((_, ts)) => ts.push(t),
            None => groups.push((t.workspace.clone(), vec![t])),
        }
    }
    groups.sort_by_key(|(_, ts)| ts.first().map_or(0, |t| t.size_tokens));
    groups
}

/// Runs every task with every method, calling `on_row` as each finishes.
pub async fn run(
    tasks: &[Task],
    methods: &[Method],
    m: &Methods,
    on_row: impl FnMut(&Row),
) -> anyhow::Result<Vec<Row>> {
    run_skipping(tasks, methods, m, &BTreeSet::new(), on_row).await
}

/// [`run`], leaving out the `(task id, method)` pairs in `done` (a resumed run); a workspace
/// whose every pair is done is not even read.
pub async fn run_skipping(
    tasks: &[Task],
    methods: &[Method],
    m: &Methods,
    done: &BTreeSet<(String, Method)>,
    mut on_row: impl FnMut(&Row),
) -> anyhow::Result<Vec<Row>> {
    let mut order: Vec<Method> = methods.to_vec();
    order.sort();
    order.dedup();
    let mut rows = Vec::new();
    for (spec, ts) in group(tasks) {
        let todo = |t: &Task, me: Method| !done.contains(&(t.id.clone(), me));
        if !ts.iter().any(|t| order.iter().any(|me| todo(t, *me))) {
            continue;
        }
        let snap = Arc::new(walk(&spec)?);
        let texts: Vec<(&str, &str)> = snap
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect();
        let corpus = Corpus::new(&texts);
        let known = corpus.known_names();
        let ws = tokio::task::block_in_place(|| Prepared::new(snap.clone()))?;
        for &method in &order {
            for task in &ts {
                if !todo(task, method) {
                    continue;
                }
                let out = m.run(method, &ws, &task.question).await;
                if let Some(dir) = &m.trajectories
                    && !out.events.is_empty()
                {
                    write_trajectory(dir, &task.id, method, &out.events);
                }
                let s = score::score(task, &out.answer, &corpus.paths, &known);
                let row = make_row(task, &spec, &corpus, snap.files.len(), method, s, out);
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// `DIR/TASK-METHOD.jsonl`, one event a line; a failure to write costs only the file.
fn write_trajectory(
    dir: &std::path::Path,
    task: &str,
    method: Method,
    events: &[rlm_lsp::engine::Event],
) {
    write_events(dir, &format!("{task}-{}", method.as_str()), events);
}

/// `DIR/NAME.jsonl`, one event a line; a failure to write costs only the file.
pub fn write_events(dir: &std::path::Path, name: &str, events: &[rlm_lsp::engine::Event]) {
    let path = dir.join(format!("{name}.jsonl"));
    let mut text = String::new();
    for e in events {
        if let Ok(line) = serde_json::to_string(e) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, text)) {
        let _ = e; // a missing trajectory costs only the diagnosis
    }
}

fn make_row(
    task: &Task,
    spec: &WorkspaceSpec,
    corpus: &Corpus,
    files: usize,
    method: Method,
    s: score::Score,
    out: Outcome,
) -> Row {
    let sum = |f: fn(&UsageRow) -> u64| out.usage.iter().map(f).sum::<u64>();
    let cost = out
        .usage
        .iter()
        .try_fold(0.0, |acc, u| u.cost_usd.map(|c| acc + c));
    let unknown_paths =
        crate::answer::unknown_paths(crate::answer::without_banner(&out.answer), &corpus.paths);
    let mut answer = out.answer.clone();
    if answer.len() > 2000 {
        let mut cut = 2000;
        while !answer.is_char_boundary(cut) {
            cut -= 1;
        }
        answer.truncate(cut);
        answer.push_str(" [...]");
    }
    Row {
        task_id: task.id.clone(),
        kind: task.kind.clone(),
        size: task.size.clone(),
        workspace: spec.label(),
        size_tokens: corpus.size_tokens,
        files,
        method,
        score: s.score,
        score_detail: s.detail,
        answer,
        error: out.error.clone(),
        prompt_tokens: sum(|u| u.prompt_tokens),
        cached_tokens: sum(|u| u.cached_tokens),
        completion_tokens: sum(|u| u.completion_tokens),
        cost_usd: cost,
        wall_ms: out.wall_ms,
        iterations: out.iterations,
        sub_calls: out.sub_calls,
        stop_reason: out.stop_reason.clone(),
        context_tokens: out.context_tokens,
        max_prompt_tokens: out.max_prompt_tokens,
        truncated: out.truncated,
        overflow: out.overflow,
        usage: out.usage,
        unknown_paths: Some(unknown_paths),
        question_hash: question_hash(&task.question),
    }
}

/// Means per method and workspace.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub method: Method,
    pub workspace: String,
    pub size_tokens: u64,
    pub tasks: usize,
    pub mean_score: f64,
    pub mean_prompt_tokens: f64,
    pub mean_completion_tokens: f64,
    pub mean_wall_s: f64,
    pub mean_iterations: f64,
    pub mean_sub_calls: f64,
    pub total_cost_usd: Option<f64>,
    pub truncated: usize,
    pub overflow: usize,
    pub errors: usize,
}

pub fn summarize(rows: &[Row]) -> Vec<Summary> {
    let mut groups: BTreeMap<(u64, String, Method), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.size_tokens, r.workspace.clone(), r.method))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((size, ws, method), rs)| {
            let n = rs.len() as f64;
            let mean = |f: &dyn Fn(&Row) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / n;
            Summary {
                method,
                workspace: ws,
                size_tokens: size,
                tasks: rs.len(),
                mean_score: mean(&|r| r.score),
                mean_prompt_tokens: mean(&|r| r.prompt_tokens as f64),
                mean_completion_tokens: mean(&|r| r.completion_tokens as f64),
                mean_wall_s: mean(&|r| r.wall_ms as f64 / 1000.0),
                mean_iterations: mean(&|r| f64::from(r.iterations)),
                mean_sub_calls: mean(&|r| f64::from(r.sub_calls)),
                total_cost_usd: rs
                    .iter()
                    .try_fold(0.0, |acc, r| r.cost_usd.map(|c| acc + c)),
                truncated: rs.iter().filter(|r| r.truncated).count(),
                overflow: rs.iter().filter(|r| r.overflow).count(),
                errors: rs.iter().filter(|r| r.error.is_some()).count(),
            }
        })
        .collect()
}
