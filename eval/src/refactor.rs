//! Refactor tasks: rename a function, a type or a constant of a pinned crate, or add a parameter
//! to a function and pass a value at every call. The ground truth is computed from tree-sitter
//! (`refs.rs`): the item's definition and every occurrence in code that names it (for a
//! signature change, every call). Only items whose name is defined once in the crate, with no
//! binding, macro, alias or external path of the same name, are chosen, so every reference
//! occurrence is the item's; some tasks also have a field of the same name (`others`), which a
//! whole-word replace renames too (an over-edit).
//!
//! Generation checks each task with the crate's build (`crate_check.rs`) unless told not to:
//! the unedited crate builds, the ideal edit builds, and renaming only the definition (or
//! adding the parameter only there) does not, so the build sees the item's uses.

use crate::crate_check::{self, CheckSettings};
use crate::refs::{self, DefKind, FileRefs, OccKind};
use crate::task::{RootRef, WorkspaceSpec, stable_hash};
use rlm_lsp::workspace::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const KINDS: [&str; 4] = ["rename-fn", "rename-type", "rename-const", "signature"];

/// One refactor task (a JSONL line of the refactor task file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefactorTask {
    /// `KIND-SIZE-CRATE-i`.
    pub id: String,
    /// `rename-fn`, `rename-type`, `rename-const` or `signature`.
    pub kind: String,
    /// The size class of the workspace the crate comes from (`100k`, `1m`); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    /// Its first root is the crate to edit (writable); the others are read-only.
    pub workspace: WorkspaceSpec,
    /// Estimated tokens of the workspace (characters / 4).
    pub size_tokens: u64,
    /// What the user asks (`Workspace::plan_refactor`'s instruction).
    pub instruction: String,
    /// Where the user is: the definition, as a workspace path and a 1-based line.
    pub at_path: String,
    pub at_line: u32,
    pub truth: RefactorTruth,
    /// Check with every feature the stripped manifest keeps (else the default features).
    pub all_features: bool,
    /// What the build said during generation; `None` when generated without `--verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

/// An occurrence in a file: workspace path, 1-based line, byte offset of the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Site {
    pub path: String,
    pub line: u32,
    pub start: usize,
    /// Signature tasks: the call's arguments (the definition's parameters, `self` aside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefactorTruth {
    /// `function`, `method`, `struct`, `enum`, `union`, `type alias`, `constant`, `static`.
    pub item: String,
    /// The enclosing type of a method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub name: String,
    /// Renames: the new name (in no file of the workspace before).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_name: String,
    /// Signature changes: the parameter to add last (`strict: bool`) and the value every call
    /// passes (`false`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub param: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub definition: Site,
    /// Renames: every occurrence in code that names the item, the definition included.
    /// Signature changes: every call.
    pub sites: Vec<Site>,
    /// Renames: occurrences in code of the same name that are something else (fields), which a
    /// whole-word replace over-edits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<Site>,
    /// Files with a site (the definition's included).
    pub files: usize,
    /// FNV-1a of each file with a site or another occurrence, as generated.
    pub base_hashes: BTreeMap<String, String>,
}

/// The builds generation ran for the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The check of the unedited crate, in this generation run (ms).
    pub unedited_ms: u64,
    /// The ideal edit (every site, nothing else) builds.
    pub ideal_builds: bool,
    /// The edit of the definition alone builds (it must not, or the build cannot see a miss).
    pub def_only_builds: bool,
    /// Over-edit tasks: the whole-word replace of every occurrence builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naive_builds: Option<bool>,
    /// Mean time of the edited checks (ms).
    pub check_ms: u64,
}

impl RefactorTask {
    /// The crate the task edits.
    pub fn target(&self) -> &RootRef {
        &self.workspace.roots[0]
    }

    /// Whether a whole-word replace of the name over-edits (the name is also a field).
    pub fn over_edit(&self) -> bool {
        !self.truth.others.is_empty()
    }
}

pub fn read_tasks(path: &Path) -> anyhow::Result<Vec<RefactorTask>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

pub fn write_tasks(path: &Path, tasks: &[RefactorTask]) -> anyhow::Result<()> {
    let mut out = String::new();
    for t in tasks {
        out.push_str(&serde_json::to_string(t)?);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Reads a refactor task's workspace: the first root writable, the others read-only.
pub fn walk(spec: &WorkspaceSpec) -> anyhow::Result<Snapshot> {
    let mut roots = Vec::new();
    for (i, r) in spec.roots.iter().enumerate() {
        roots.push(rlm_lsp::workspace::RootSpec {
            path: r.resolve().map_err(anyhow::Error::msg)?,
            read_only: i > 0,
        });
    }
    Ok(rlm_lsp::workspace::walk_roots(
        &roots,
        &rlm_lsp::workspace::WalkOptions::default(),
    )?)
}

/// The writable root's files of a snapshot: `(workspace path, crate-relative path, text)`.
pub fn crate_files(snap: &Snapshot) -> Vec<(&str, &str, &str)> {
    snap.files
        .iter()
        .filter_map(|f| {
            let (root, rel) = snap.root_of(&f.path)?;
            (!root.read_only).then_some((f.path.as_str(), rel, f.text.as_str()))
        })
        .collect()
}

/// Names never chosen: the prelude, common traits and methods of `std`, which code may name
/// without importing them.
const RESERVED: [&str; 60] = [
    "new",
    "default",
    "from",
    "into",
    "clone",
    "fmt",
    "drop",
    "next",
    "len",
    "is_empty",
    "iter",
    "get",
    "set",
    "push",
    "pop",
    "insert",
    "remove",
    "contains",
    "as_ref",
    "as_mut",
    "borrow",
    "deref",
    "hash",
    "write",
    "read",
    "flush",
    "map",
    "unwrap",
    "expect",
    "parse",
    "to_string",
    "to_owned",
    "main",
    "with_capacity",
    "Result",
    "Option",
    "Error",
    "Box",
    "Vec",
    "String",
    "Some",
    "None",
    "Self",
    "Debug",
    "Display",
    "Default",
    "Clone",
    "Send",
    "Sync",
    "Sized",
    "Iterator",
    "From",
    "Into",
    "Drop",
    "Hash",
    "Ord",
    "Write",
    "Read",
    "Formatter",
    "Ordering",
];

/// Whether a crate-relative path is library code that `cargo check` compiles (under `src/`,
/// not a test module file).
fn library_file(rel: &str) -> bool {
    let Some(rest) = rel.strip_prefix("src/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let stem = parts
        .last()
        .map(|f| f.trim_end_matches(".rs"))
        .unwrap_or_default();
    rel.ends_with(".rs")
        && !parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|d| matches!(*d, "tests" | "test" | "benches" | "examples"))
        && !matches!(stem, "test" | "tests")
        && rest != "bin"
}

/// A candidate before verification.
#[derive(Debug, Clone)]
struct Candidate {
    kind: &'static str,
    truth: RefactorTruth,
}

fn item_word(k: DefKind) -> &'static str {
    match k {
        DefKind::Fn => "function",
        DefKind::Method => "method",
        DefKind::Struct => "struct",
        DefKind::Enum => "enum",
        DefKind::Union => "union",
        DefKind::TypeAlias => "type alias",
        DefKind::Const => "constant",
        DefKind::Static => "static",
        _ => "item",
    }
}

fn task_kind(k: DefKind) -> Option<&'static str> {
    Some(match k {
        DefKind::Fn | DefKind::Method => "rename-fn",
        DefKind::Struct | DefKind::Enum | DefKind::Union | DefKind::TypeAlias => "rename-type",
        DefKind::Const | DefKind::Static => "rename-const",
        _ => return None,
    })
}

fn new_name(kind: DefKind, name: &str) -> String {
    match kind {
        DefKind::Struct | DefKind::Enum | DefKind::Union | DefKind::TypeAlias => {
            format!("{name}Renamed")
        }
        DefKind::Const | DefKind::Static => format!("{name}_RENAMED"),
        _ => format!("{name}_renamed"),
    }
}

/// The instruction of a task (what `plan_refactor` is asked).
pub fn instruction(t: &RefactorTruth, kind: &str) -> String {
    let what = match &t.parent {
        Some(p) if t.item == "method" => format!("the method `{}` of `{p}`", t.name),
        _ => format!("the {} `{}`", t.item, t.name),
    };
    if kind == "signature" {
        format!(
            "add a parameter `{}` at the end of the parameters of {what} and pass `{}` at every call.",
            t.param, t.value
        )
    } else {
        format!("rename {what} to `{}` everywhere.", t.new_name)
    }
}

/// Every candidate of a crate: its analysis and the candidates of each kind, best first.
fn candidates(
    files: &[(&str, &str, &str)],
    refs_by_file: &[FileRefs],
    workspace_words: &HashSet<String>,
) -> Vec<Candidate> {
    // name -> (file index, occurrence index)
    let mut by_name: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for (fi, r) in refs_by_file.iter().enumerate() {
        for (oi, o) in r.occurrences.iter().enumerate() {
            by_name.entry(o.name.as_str()).or_default().push((fi, oi));
        }
    }
    let hash_of = |fi: usize| format!("{:016x}", stable_hash(files[fi].2));
    let mut out = Vec::new();
    for (fi, r) in refs_by_file.iter().enumerate() {
        let (path, rel, _) = files[fi];
        if !library_file(rel) {
            continue;
        }
        for d in &r.definitions {
            let Some(rename_kind) = task_kind(d.kind) else {
                continue;
            };
            if d.cfg_test
                || !d.module_level
                || d.name.len() < 4
                || RESERVED.contains(&d.name.as_str())
                || d.name.starts_with("r#")
            {
                continue;
            }
            let occs = &by_name[d.name.as_str()];
            let defs = occs
                .iter()
                .filter(|(f, o)| matches!(refs_by_file[*f].occurrences[*o].kind, OccKind::Def(_)))
                .count();
            if defs != 1 {
                continue;
            }
            let is_fn = matches!(d.kind, DefKind::Fn | DefKind::Method);
            let mut sites = Vec::new();
            let mut others = Vec::new();
            let mut calls = Vec::new();
            let mut only_calls = true;
            let mut ok = true;
            for &(f, o) in occs {
                let occ = &refs_by_file[f].occurrences[o];
                let site = Site {
                    path: files[f].0.to_string(),
                    line: occ.line,
                    start: occ.start,
                    args: None,
                };
                let is_def = matches!(occ.kind, OccKind::Def(_));
                match occ.kind {
                    OccKind::Def(_) | OccKind::Ref => sites.push(site.clone()),
                    // A method call may be another type's method of the same name (from `std`,
                    // say): only calls the build compiles (and so checks) are taken.
                    OccKind::MethodCall
                        if d.kind == DefKind::Method
                            && !occ.cfg_test
                            && library_file(files[f].1) =>
                    {
                        sites.push(site.clone())
                    }
                    OccKind::Pattern if !is_fn => sites.push(site.clone()),
                    OccKind::Field => {
                        others.push(site.clone());
                        continue;
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
                if is_def {
                    continue;
                }
                match occ.call_args {
                    Some(args) if !occ.in_macro => calls.push(Site {
                        args: Some(args),
                        ..site
                    }),
                    _ if occ.in_use => {}
                    _ => only_calls = false,
                }
            }
            if !ok || sites.len() < 2 {
                continue;
            }
            let site_files: BTreeSet<&str> = sites.iter().map(|s| s.path.as_str()).collect();
            if site_files.len() > 10 {
                continue;
            }
            let touched: BTreeSet<usize> = occs.iter().map(|(f, _)| *f).collect();
            let base_hashes: BTreeMap<String, String> = touched
                .iter()
                .map(|f| (files[*f].0.to_string(), hash_of(*f)))
                .collect();
            let definition = Site {
                path: path.to_string(),
                line: d.line,
                start: d.start,
                args: d.params.map(|p| p.count),
            };
            let new = new_name(d.kind, &d.name);
            if !workspace_words.contains(&new) {
                out.push(Candidate {
                    kind: rename_kind,
                    truth: RefactorTruth {
                        item: item_word(d.kind).to_string(),
                        parent: d.parent.clone().filter(|_| d.kind == DefKind::Method),
                        name: d.name.clone(),
                        new_name: new,
                        param: String::new(),
                        value: String::new(),
                        definition: definition.clone(),
                        sites: sites.clone(),
                        others: others.clone(),
                        files: site_files.len(),
                        base_hashes: base_hashes.clone(),
                    },
                });
            }
            // A signature change: a function with a body, called (not only named) everywhere.
            if d.params.is_none() {
                continue;
            }
            let call_files = calls
                .iter()
                .map(|s| s.path.as_str())
                .chain([path])
                .collect::<BTreeSet<&str>>()
                .len();
            if !is_fn || d.pinned || !only_calls || calls.is_empty() || calls.len() > 15 {
                continue;
            }
            let Some(param) = ["strict", "verbose", "extra_flag"]
                .into_iter()
                .find(|p| !d.param_names.iter().any(|n| n == p) && !file_has_word(files[fi].2, p))
            else {
                continue;
            };
            out.push(Candidate {
                kind: "signature",
                truth: RefactorTruth {
                    item: item_word(d.kind).to_string(),
                    parent: d.parent.clone().filter(|_| d.kind == DefKind::Method),
                    name: d.name.clone(),
                    new_name: String::new(),
                    param: format!("{param}: bool"),
                    value: "false".into(),
                    definition,
                    sites: calls,
                    others: Vec::new(),
                    files: call_files,
                    base_hashes,
                },
            });
        }
    }
    out
}

fn file_has_word(text: &str, word: &str) -> bool {
    refs::tokens(text).iter().any(|(_, t)| *t == word)
}

/// Candidates of one kind in the order they are tried: the most files first (then the most
/// sites), ties broken by a stable hash of the name.
fn ranked<'a>(all: &'a [Candidate], kind: &str, over_edit: bool) -> Vec<&'a Candidate> {
    let mut v: Vec<&Candidate> = all
        .iter()
        .filter(|c| c.kind == kind && c.truth.others.is_empty() != over_edit)
        .collect();
    v.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.truth.files),
            std::cmp::Reverse(c.truth.sites.len().min(40)),
            stable_hash(&c.truth.name),
        )
    });
    v
}

/// Text edits `(workspace path, byte start, byte end, new text)`.
pub type Edit = (String, usize, usize, String);

/// The ideal edit of a task: every site renamed (or the parameter added at the definition and
/// the value at every call), nothing else.
pub fn ideal_edits(t: &RefactorTask, snap: &Snapshot) -> anyhow::Result<Vec<Edit>> {
    edits_for(t, snap, true, false)
}

/// The definition alone edited (the build must fail on it).
pub fn definition_only_edits(t: &RefactorTask, snap: &Snapshot) -> anyhow::Result<Vec<Edit>> {
    edits_for(t, snap, false, false)
}

/// A whole-word replace of every occurrence in code: the sites and the others.
pub fn naive_edits(t: &RefactorTask, snap: &Snapshot) -> anyhow::Result<Vec<Edit>> {
    edits_for(t, snap, true, true)
}

fn edits_for(
    t: &RefactorTask,
    snap: &Snapshot,
    uses: bool,
    others: bool,
) -> anyhow::Result<Vec<Edit>> {
    let tr = &t.truth;
    let text = |p: &str| {
        snap.get(p)
            .map(|f| f.text.clone())
            .ok_or_else(|| anyhow::anyhow!("{p} is not in the workspace"))
    };
    let mut out = Vec::new();
    if t.kind == "signature" {
        let def_text = text(&tr.definition.path)?;
        let r = refs::analyze(&tr.definition.path, &def_text, &Default::default());
        let d = r
            .definitions
            .iter()
            .find(|d| d.start == tr.definition.start && d.name == tr.name)
            .and_then(|d| d.params)
            .ok_or_else(|| anyhow::anyhow!("{}: the definition moved", tr.definition.path))?;
        let insert = if d.empty {
            tr.param.clone()
        } else {
            format!(", {}", tr.param)
        };
        out.push((tr.definition.path.clone(), d.insert_at, d.insert_at, insert));
        if uses {
            let mut by_file: BTreeMap<&str, Vec<&Site>> = BTreeMap::new();
            for s in &tr.sites {
                by_file.entry(s.path.as_str()).or_default().push(s);
            }
            for (path, sites) in by_file {
                let body = text(path)?;
                let r = refs::analyze(path, &body, &Default::default());
                for s in sites {
                    let c = r
                        .calls
                        .iter()
                        .find(|c| c.start == s.start && c.name == tr.name)
                        .ok_or_else(|| anyhow::anyhow!("{path}:{}: the call moved", s.line))?;
                    let insert = if c.args == 0 {
                        tr.value.clone()
                    } else {
                        format!(", {}", tr.value)
                    };
                    out.push((path.to_string(), c.insert_at, c.insert_at, insert));
                }
            }
        }
    } else {
        let chosen = tr
            .sites
            .iter()
            .filter(|s| uses || (s.path == tr.definition.path && s.start == tr.definition.start))
            .chain(tr.others.iter().filter(|_| others));
        for s in chosen {
            out.push((
                s.path.clone(),
                s.start,
                s.start + tr.name.len(),
                tr.new_name.clone(),
            ));
        }
    }
    Ok(out)
}

/// `edits` applied to the workspace's files: `(workspace path, new text)` of each file edited.
pub fn apply(snap: &Snapshot, edits: &[Edit]) -> anyhow::Result<Vec<(String, String)>> {
    let mut by_file: BTreeMap<&str, Vec<&Edit>> = BTreeMap::new();
    for e in edits {
        by_file.entry(e.0.as_str()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (path, mut es) in by_file {
        let text = &snap
            .get(path)
            .ok_or_else(|| anyhow::anyhow!("{path} is not in the workspace"))?
            .text;
        es.sort_by_key(|e| (e.1, e.2));
        let mut new = String::with_capacity(text.len() + 64);
        let mut at = 0;
        for e in es {
            anyhow::ensure!(e.1 >= at && e.2 <= text.len(), "{path}: overlapping edits");
            new.push_str(&text[at..e.1]);
            new.push_str(&e.3);
            at = e.2;
        }
        new.push_str(&text[at..]);
        out.push((path.to_string(), new));
    }
    Ok(out)
}

/// Crate-relative changes for [`crate_check::check_changes`] from workspace-path texts.
pub fn crate_changes(snap: &Snapshot, files: &[(String, String)]) -> Vec<(String, Option<String>)> {
    files
        .iter()
        .filter_map(|(p, t)| {
            let (root, rel) = snap.root_of(p)?;
            (!root.read_only).then(|| (rel.to_string(), Some(t.clone())))
        })
        .collect()
}

/// How generation runs.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Tasks of each kind per crate.
    pub per_kind: usize,
    /// Over-edit tasks per crate (a rename whose name is also a field), besides `per_kind`.
    pub over_edit: usize,
    /// Check each task with builds (see the module documentation).
    pub verify: bool,
    /// Where the target directories of the checks go, one per crate
    /// (`crate_check::default_target_root`).
    pub target_root: PathBuf,
    pub check_timeout: Duration,
    /// Candidates tried per kind before giving up on it.
    pub max_attempts: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            per_kind: 1,
            over_edit: 1,
            verify: true,
            target_root: crate_check::default_target_root(),
            check_timeout: Duration::from_secs(600),
            max_attempts: 6,
        }
    }
}

/// What generation did on one crate, for the summary it prints.
#[derive(Debug, Clone, Default)]
pub struct GenReport {
    pub crate_label: String,
    pub candidates: BTreeMap<String, usize>,
    pub unedited_ms: Option<u64>,
    /// The unedited crate failed to build with every feature and was checked with the default
    /// ones (or failed with both: `error`).
    pub all_features: bool,
    pub rejected: Vec<String>,
    pub error: Option<String>,
    pub check_ms: Vec<u64>,
}

/// Tasks for the crate that is the first root of `spec` (the others read-only), with `kinds`.
pub async fn generate(
    spec: &WorkspaceSpec,
    size: &str,
    kinds: &[&str],
    opts: &GenOptions,
) -> anyhow::Result<(Vec<RefactorTask>, GenReport)> {
    let snap = walk(spec)?;
    let crate_dir = spec.roots[0].resolve().map_err(anyhow::Error::msg)?;
    let label = spec.roots[0].label();
    let mut report = GenReport {
        crate_label: label.clone(),
        all_features: true,
        ..GenReport::default()
    };
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    let external = refs::external_roots(crate_check::dependency_names(&manifest));
    let files = crate_files(&snap);
    let rs: Vec<(&str, &str, &str)> = files
        .iter()
        .copied()
        .filter(|(_, rel, _)| rel.ends_with(".rs"))
        .collect();
    let analyses: Vec<FileRefs> = rs
        .iter()
        .map(|(p, _, t)| refs::analyze(p, t, &external))
        .collect();
    let mut words: HashSet<String> = HashSet::new();
    for f in &snap.files {
        for (_, w) in refs::tokens(&f.text) {
            if w.len() > 3 && !words.contains(w) {
                words.insert(w.to_string());
            }
        }
    }
    let all = candidates(&rs, &analyses, &words);
    for c in &all {
        *report
            .candidates
            .entry(format!(
                "{}{}",
                c.kind,
                if c.truth.others.is_empty() {
                    ""
                } else {
                    " (over-edit)"
                }
            ))
            .or_default() += 1;
    }
    let size_tokens = snap.total_bytes() / 4;
    let mut settings = CheckSettings {
        target_dir: crate_check::target_dir(&opts.target_root, &label),
        all_features: true,
        timeout: opts.check_timeout,
    };
    let mut unedited_ms = 0;
    if opts.verify {
        let mut r = crate_check::check_changes(&crate_dir, &[], &settings).await?;
        if !r.passed {
            settings.all_features = false;
            report.all_features = false;
            r = crate_check::check_changes(&crate_dir, &[], &settings).await?;
        }
        if !r.passed {
            report.error = Some(format!(
                "the unedited crate does not build offline:\n{}",
                r.errors
            ));
            return Ok((Vec::new(), report));
        }
        unedited_ms = r.duration_ms;
        report.unedited_ms = Some(r.duration_ms);
    }
    let slug: String = spec.roots[0]
        .label()
        .split('@')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut tasks: Vec<RefactorTask> = Vec::new();
    let mut over_left = opts.over_edit;
    let mut counter: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in kinds {
        for over in [false, true] {
            let wanted = if over {
                if *kind == "signature" || over_left == 0 {
                    0
                } else {
                    1
                }
            } else {
                opts.per_kind
            };
            let mut got = 0;
            for (attempt, c) in ranked(&all, kind, over).into_iter().enumerate() {
                if got >= wanted || attempt >= opts.max_attempts {
                    break;
                }
                let n = counter.entry(kind).or_default();
                let mut task = RefactorTask {
                    id: format!(
                        "{kind}-{}{slug}-{n}",
                        if size.is_empty() {
                            String::new()
                        } else {
                            format!("{size}-")
                        }
                    ),
                    kind: kind.to_string(),
                    size: size.to_string(),
                    workspace: spec.clone(),
                    size_tokens,
                    instruction: instruction(&c.truth, kind),
                    at_path: c.truth.definition.path.clone(),
                    at_line: c.truth.definition.line,
                    truth: c.truth.clone(),
                    all_features: settings.all_features,
                    verified: None,
                };
                if opts.verify {
                    let mut v = verify(&task, &snap, &crate_dir, &settings, unedited_ms).await?;
                    report.check_ms.push(v.check_ms);
                    if v.ideal_builds && v.def_only_builds && settings.all_features {
                        // Code behind `not(feature = ..)` is compiled with the default features
                        // only: check there.
                        let default = CheckSettings {
                            all_features: false,
                            ..settings.clone()
                        };
                        let d = verify(&task, &snap, &crate_dir, &default, unedited_ms).await?;
                        report.check_ms.push(d.check_ms);
                        if d.ideal_builds && !d.def_only_builds {
                            task.all_features = false;
                            v = d;
                        }
                    }
                    if !v.ideal_builds || v.def_only_builds {
                        report.rejected.push(format!(
                            "{kind} {}: {}",
                            c.truth.name,
                            if !v.ideal_builds {
                                "the ideal edit does not build"
                            } else {
                                "the build does not see the uses (the definition alone edited builds)"
                            }
                        ));
                        continue;
                    }
                    task.verified = Some(v);
                }
                *n += 1;
                got += 1;
                if over {
                    over_left -= 1;
                }
                tasks.push(task);
            }
        }
    }
    Ok((tasks, report))
}

/// The builds that keep a task: the ideal edit, the definition alone, and (over-edit tasks)
/// the whole-word replace.
async fn verify(
    t: &RefactorTask,
    snap: &Snapshot,
    crate_dir: &Path,
    s: &CheckSettings,
    unedited_ms: u64,
) -> anyhow::Result<Verification> {
    let build = |edits: Vec<Edit>| async move {
        let files = apply(snap, &edits)?;
        crate_check::check_changes(crate_dir, &crate_changes(snap, &files), s).await
    };
    let ideal = build(ideal_edits(t, snap)?).await?;
    let mut ms = vec![ideal.duration_ms];
    let def_only = if ideal.passed {
        let r = build(definition_only_edits(t, snap)?).await?;
        ms.push(r.duration_ms);
        r.passed
    } else {
        false
    };
    let naive = if t.over_edit() && ideal.passed && !def_only {
        let r = build(naive_edits(t, snap)?).await?;
        ms.push(r.duration_ms);
        Some(r.passed)
    } else {
        None
    };
    Ok(Verification {
        unedited_ms,
        ideal_builds: ideal.passed,
        def_only_builds: def_only,
        naive_builds: naive,
        check_ms: ms.iter().sum::<u64>() / ms.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const LIB: &str = r#"pub mod util;
pub use util::Gadget;

pub const WIDGET_LIMIT: usize = 4;

pub struct Meter {
    pub tally_widgets: usize,
}

/// Counts the widgets (see `tally_widgets`).
pub fn tally_widgets(xs: &[u8]) -> usize {
    xs.len().min(WIDGET_LIMIT)
}

impl Meter {
    pub fn record(&mut self, xs: &[u8]) {
        self.tally_widgets += tally_widgets(xs);
    }

    pub fn spin_meter(&self, turns: u32) -> u32 {
        turns + self.tally_widgets as u32
    }
}

pub fn shadowed_name(x: u32) -> u32 {
    let shadowed_name = x;
    shadowed_name
}
"#;

    pub(crate) const UTIL: &str = r#"use crate::{tally_widgets, Meter};

pub struct Gadget(pub u32);

pub fn use_them(m: &mut Meter) -> usize {
    let g = Gadget(m.spin_meter(2));
    tally_widgets(&[g.0 as u8]) + crate::WIDGET_LIMIT + crate::shadowed_name(1) as usize
}
"#;

    pub(crate) fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        use rlm_lsp::workspace::{IndexStats, RootStats, SourceFile};
        use std::sync::Arc;
        Snapshot {
            root: "/w".into(),
            files: files
                .iter()
                .map(|(p, t)| SourceFile {
                    path: p.to_string(),
                    text: Arc::new(t.to_string()),
                })
                .collect(),
            stats: IndexStats {
                roots: vec![RootStats {
                    name: "w".into(),
                    path: "/w".into(),
                    read_only: false,
                    prefix: String::new(),
                    files: files.len(),
                    bytes: 0,
                }],
                ..IndexStats::default()
            },
        }
    }

    fn all_candidates(files: &[(&str, &str)]) -> Vec<Candidate> {
        let rs: Vec<(&str, &str, &str)> = files.iter().map(|(p, t)| (*p, *p, *t)).collect();
        let ext = refs::external_roots([]);
        let analyses: Vec<FileRefs> = rs
            .iter()
            .map(|(p, _, t)| refs::analyze(p, t, &ext))
            .collect();
        let mut words = HashSet::new();
        for (_, t) in files {
            for (_, w) in refs::tokens(t) {
                words.insert(w.to_string());
            }
        }
        candidates(&rs, &analyses, &words)
    }

    #[test]
    fn rename_truth_has_every_site_and_the_fields_apart() {
        let files = [("src/lib.rs", LIB), ("src/util.rs", UTIL)];
        let all = all_candidates(&files);
        let names: BTreeSet<(&str, &str)> = all
            .iter()
            .map(|c| (c.kind, c.truth.name.as_str()))
            .collect();
        // A name bound as a local is never chosen for a function; `Meter` is in one file only
        // by definition but also used in util.rs.
        assert!(
            !names.iter().any(|(_, n)| *n == "shadowed_name"),
            "{names:?}"
        );
        for want in [
            ("rename-fn", "tally_widgets"),
            ("rename-fn", "spin_meter"),
            ("rename-type", "Meter"),
            ("rename-type", "Gadget"),
            ("rename-const", "WIDGET_LIMIT"),
            ("signature", "tally_widgets"),
            ("signature", "spin_meter"),
        ] {
            assert!(names.contains(&want), "{want:?} not in {names:?}");
        }
        let tally = all
            .iter()
            .find(|c| c.kind == "rename-fn" && c.truth.name == "tally_widgets")
            .unwrap();
        fn at(s: &Site) -> (&str, u32) {
            (s.path.as_str(), s.line)
        }
        assert_eq!(
            tally.truth.sites.iter().map(at).collect::<Vec<_>>(),
            vec![
                ("src/lib.rs", 11),
                ("src/lib.rs", 17),
                ("src/util.rs", 1),
                ("src/util.rs", 7)
            ]
        );
        // The field `tally_widgets` of `Meter` is another thing: a whole-word replace over-edits.
        assert_eq!(
            tally.truth.others.iter().map(at).collect::<Vec<_>>(),
            vec![("src/lib.rs", 7), ("src/lib.rs", 17), ("src/lib.rs", 21)]
        );
        assert_eq!(tally.truth.new_name, "tally_widgets_renamed");
        assert_eq!(tally.truth.files, 2);
        let limit = all.iter().find(|c| c.truth.name == "WIDGET_LIMIT").unwrap();
        assert_eq!(limit.truth.sites.len(), 3);
        assert!(limit.truth.others.is_empty());
        assert_eq!(limit.truth.new_name, "WIDGET_LIMIT_RENAMED");
        let gadget = all.iter().find(|c| c.truth.name == "Gadget").unwrap();
        assert_eq!(gadget.truth.sites.len(), 3, "{:?}", gadget.truth.sites);
        let spin = all
            .iter()
            .find(|c| c.kind == "rename-fn" && c.truth.name == "spin_meter")
            .unwrap();
        assert_eq!(spin.truth.item, "method");
        assert_eq!(spin.truth.parent.as_deref(), Some("Meter"));
        assert_eq!(
            instruction(&spin.truth, "rename-fn"),
            "rename the method `spin_meter` of `Meter` to `spin_meter_renamed` everywhere."
        );
        // Signature: the calls with their arguments, not the import.
        let sig = all
            .iter()
            .find(|c| c.kind == "signature" && c.truth.name == "tally_widgets")
            .unwrap();
        assert_eq!(
            sig.truth
                .sites
                .iter()
                .map(|s| (s.path.as_str(), s.line, s.args))
                .collect::<Vec<_>>(),
            vec![("src/lib.rs", 17, Some(1)), ("src/util.rs", 7, Some(1))]
        );
        assert_eq!(sig.truth.definition.args, Some(1));
        assert_eq!(sig.truth.param, "strict: bool");
        assert_eq!(
            instruction(&sig.truth, "signature"),
            "add a parameter `strict: bool` at the end of the parameters of the function `tally_widgets` and pass `false` at every call."
        );
    }

    #[test]
    fn ideal_definition_only_and_naive_edits() {
        let files = [("src/lib.rs", LIB), ("src/util.rs", UTIL)];
        let snap = snapshot(&files);
        let all = all_candidates(&files);
        let task = |kind: &str, name: &str| {
            let c = all
                .iter()
                .find(|c| c.kind == kind && c.truth.name == name)
                .unwrap();
            RefactorTask {
                id: "t".into(),
                kind: kind.into(),
                size: String::new(),
                workspace: WorkspaceSpec::parse("/w"),
                size_tokens: 0,
                instruction: instruction(&c.truth, kind),
                at_path: c.truth.definition.path.clone(),
                at_line: c.truth.definition.line,
                truth: c.truth.clone(),
                all_features: true,
                verified: None,
            }
        };
        let t = task("rename-fn", "tally_widgets");
        let ideal = apply(&snap, &ideal_edits(&t, &snap).unwrap()).unwrap();
        let lib = &ideal.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("pub fn tally_widgets_renamed(xs"), "{lib}");
        assert!(
            lib.contains("self.tally_widgets += tally_widgets_renamed(xs)"),
            "{lib}"
        );
        assert!(
            lib.contains("(see `tally_widgets`)"),
            "comments are left alone: {lib}"
        );
        let naive = apply(&snap, &naive_edits(&t, &snap).unwrap()).unwrap();
        assert!(naive[0].1.contains("pub tally_widgets_renamed: usize"));
        let def_only = apply(&snap, &definition_only_edits(&t, &snap).unwrap()).unwrap();
        assert_eq!(def_only.len(), 1);
        assert!(def_only[0].1.contains("+= tally_widgets(xs)"));

        let s = task("signature", "tally_widgets");
        let ideal = apply(&snap, &ideal_edits(&s, &snap).unwrap()).unwrap();
        assert!(
            ideal[0]
                .1
                .contains("pub fn tally_widgets(xs: &[u8], strict: bool) -> usize")
        );
        assert!(ideal[0].1.contains("tally_widgets(xs, false)"));
        assert!(ideal[1].1.contains("tally_widgets(&[g.0 as u8], false)"));
        let s = task("signature", "spin_meter");
        let ideal = apply(&snap, &ideal_edits(&s, &snap).unwrap()).unwrap();
        assert!(
            ideal[0]
                .1
                .contains("fn spin_meter(&self, turns: u32, strict: bool)")
        );
        assert!(ideal[1].1.contains("m.spin_meter(2, false)"));
    }

    #[test]
    fn library_files_are_under_src_and_not_tests() {
        assert!(library_file("src/lib.rs"));
        assert!(library_file("src/join/mod.rs"));
        assert!(!library_file("src/join/test.rs"));
        assert!(!library_file("src/tests/x.rs"));
        assert!(!library_file("tests/it.rs"));
        assert!(!library_file("benches/b.rs"));
    }
}
