//! Refactor plans: the edit blocks a model writes in its answer, checked against the snapshot
//! before anyone sees them. An edit must apply to the current text of its file (its old text
//! found exactly once), must not touch a read-only root, and the edited file must parse with no
//! syntax errors it did not have before. A plan may also create and rename files: a new path must
//! be free, inside a writable root, and a created file must parse. Failing edits and file
//! operations are dropped, with the reason.

use crate::index::{FileIndex, IndexOptions};
use crate::repl::EditOp;
use crate::workspace::Snapshot;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The instructions appended to the user's request: the edits the checks understand.
pub const EDIT_FORMAT: &str = "Find every place to change with the REPL first, then record the \
edits with code: rename_symbol(old, new), edit_replace(path, old_text, new_text), \
edit_regex(pattern, replacement, paths), create_file(path, text), rename_file(old, new); \
print(proposed_edits()) shows them. Nothing is written: the edits become the plan. Then reply \
with FINAL( then a short summary of the change then ).
You may instead end with FINAL(plan), where plan is a short Markdown explanation followed by one \
block per edit, exactly:
```edit path/to/file
<<<<<<< SEARCH
the exact current lines
=======
the new lines
>>>>>>> REPLACE
```
Copy the SEARCH lines exactly from read(); keep each block small.
Only when the change needs a new file, add its whole content:
```create path/to/new_file
the content
```
and to move a file: ```rename old/path -> new/path``` on a line of its own, then ``` on the next.";

/// One edit the model proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEdit {
    pub path: String,
    pub search: String,
    pub replace: String,
}

/// A checked edit: replace `start..end` (bytes of the snapshot's text) with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEdit {
    pub path: String,
    pub start: usize,
    pub end: usize,
    pub new_text: String,
}

/// A file the plan creates or renames (text edits of a renamed file use its old path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    Create { path: String, text: String },
    Rename { from: String, to: String },
}

impl FileOp {
    /// The path the operation writes.
    fn target(&self) -> &str {
        match self {
            FileOp::Create { path, .. } => path,
            FileOp::Rename { to, .. } => to,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEdit {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckedPlan {
    /// The answer without its edit blocks.
    pub plan: String,
    pub edits: Vec<CheckedEdit>,
    /// Files to create or rename, after the text edits.
    pub files: Vec<FileOp>,
    pub dropped: Vec<DroppedEdit>,
}

/// Splits an answer into its prose, its ```edit blocks and its ```create / ```rename blocks.
pub fn parse_edits(answer: &str) -> (String, Vec<ProposedEdit>, Vec<FileOp>) {
    let mut prose = String::new();
    let mut edits = Vec::new();
    let mut ops = Vec::new();
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(path) = t.strip_prefix("```create ") {
            let mut text = String::new();
            for l in lines.by_ref() {
                if l.trim_end() == "```" {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            ops.push(FileOp::Create {
                path: path.trim().to_string(),
                text,
            });
            continue;
        }
        if let Some(spec) = t.strip_prefix("```rename ") {
            // Written on one line (```rename a -> b```) or closed on the next.
            let spec = spec.trim().trim_end_matches("```");
            if !t.ends_with("```") || t == "```rename ```" {
                for l in lines.by_ref() {
                    if l.trim_end() == "```" {
                        break;
                    }
                }
            }
            if let Some((from, to)) = spec.split_once("->") {
                ops.push(FileOp::Rename {
                    from: from.trim().to_string(),
                    to: to.trim().to_string(),
                });
            }
            continue;
        }
        let Some(path) = t.strip_prefix("```edit") else {
            prose.push_str(line);
            prose.push('\n');
            continue;
        };
        let path = path.trim().to_string();
        let (mut search, mut replace, mut part) = (String::new(), String::new(), 0);
        for l in lines.by_ref() {
            let t = l.trim_end();
            match (part, t) {
                (_, "```") => break,
                (0, t) if t.starts_with("<<<<<<<") => part = 1,
                (1, "=======") => part = 2,
                (2, t) if t.starts_with(">>>>>>>") => part = 3,
                (1, _) => {
                    search.push_str(l);
                    search.push('\n');
                }
                (2, _) => {
                    replace.push_str(l);
                    replace.push('\n');
                }
                _ => {}
            }
        }
        if part == 3 && !path.is_empty() {
            edits.push(ProposedEdit {
                path,
                search,
                replace,
            });
        }
    }
    (prose.trim().to_string(), edits, ops)
}

/// Checks every proposed edit against `snapshot`; edits of one file are checked together, in
/// order, so the parse check sees the file as it would be after all of them.
pub fn check(answer: &str, snapshot: &Snapshot) -> CheckedPlan {
    check_plan(answer, &[], snapshot)
}

/// One edit to check, from either source: a SEARCH block of the answer (found in the text) or
/// a range recorded by the REPL's edit helpers.
struct Candidate {
    range: Result<(usize, usize), String>,
    new_text: String,
}

/// [`check`] for a plan made of the answer's edit blocks and the edits the model's code
/// recorded (`edit_replace`, `rename_symbol`, `create_file`, ...), which come first.
pub fn check_plan(answer: &str, recorded: &[EditOp], snapshot: &Snapshot) -> CheckedPlan {
    let (plan, proposed, parsed_ops) = parse_edits(answer);
    let mut out = CheckedPlan {
        plan,
        ..CheckedPlan::default()
    };
    let mut by_file: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    let mut ops: Vec<FileOp> = Vec::new();
    for op in recorded {
        match op {
            EditOp::Replace {
                path,
                start,
                end,
                text,
            } => {
                let range = match snapshot.get(path) {
                    Some(f)
                        if *start <= *end
                            && *end <= f.text.len()
                            && f.text.is_char_boundary(*start)
                            && f.text.is_char_boundary(*end) =>
                    {
                        Ok((*start, *end))
                    }
                    Some(_) => Err("its range is not in the current text".to_string()),
                    None => Err("no such file in the workspace".to_string()),
                };
                by_file.entry(path.clone()).or_default().push(Candidate {
                    range,
                    new_text: text.clone(),
                });
            }
            EditOp::Create { path, text } => ops.push(FileOp::Create {
                path: path.clone(),
                text: text.clone(),
            }),
            EditOp::Rename { from, to } => ops.push(FileOp::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            EditOp::Clear => {
                by_file.clear();
                ops.clear();
            }
        }
    }
    for e in proposed {
        let range = match snapshot.get(&e.path) {
            None => Err("no such file in the workspace".to_string()),
            Some(f) => {
                let found: Vec<usize> = f.text.match_indices(&e.search).map(|(i, _)| i).collect();
                match found.as_slice() {
                    _ if e.search.is_empty() => Err("the SEARCH part is empty".to_string()),
                    [] => Err("its SEARCH lines are not in the current text".to_string()),
                    [i] => Ok((*i, i + e.search.len())),
                    many => Err(format!(
                        "its SEARCH lines occur {} times; make them unique",
                        many.len()
                    )),
                }
            }
        };
        by_file.entry(e.path).or_default().push(Candidate {
            range,
            new_text: e.replace,
        });
    }
    ops.extend(parsed_ops);
    for (path, candidates) in by_file {
        check_file(&path, candidates, snapshot, &mut out);
    }
    check_file_ops(ops, snapshot, &mut out);
    out
}

/// Checks the edits of one file together: each applies, none overlaps another, the root is
/// writable, and the edited file parses with no syntax errors it did not have.
fn check_file(path: &str, candidates: Vec<Candidate>, snapshot: &Snapshot, out: &mut CheckedPlan) {
    let drop = |out: &mut CheckedPlan, reason: String| {
        out.dropped.push(DroppedEdit {
            path: path.to_string(),
            reason,
        })
    };
    let Some(file) = snapshot.get(path) else {
        for _ in &candidates {
            drop(out, "no such file in the workspace".into());
        }
        return;
    };
    if snapshot.root_of(path).is_some_and(|(r, _)| r.read_only) {
        for _ in &candidates {
            drop(out, format!("{path} is a read-only root"));
        }
        return;
    }
    let old = file.text.as_str();
    let mut ranges: Vec<CheckedEdit> = Vec::new();
    for c in candidates {
        let (start, end) = match c.range {
            Ok(r) => r,
            Err(reason) => {
                drop(out, reason);
                continue;
            }
        };
        // The same edit proposed twice (a helper run again) is one edit.
        if ranges
            .iter()
            .any(|r| r.start == start && r.end == end && r.new_text == c.new_text)
        {
            continue;
        }
        if ranges.iter().any(|r| start < r.end && r.start < end) {
            drop(out, "it overlaps another edit".into());
            continue;
        }
        ranges.push(CheckedEdit {
            path: path.to_string(),
            start,
            end,
            new_text: c.new_text,
        });
    }
    if ranges.is_empty() {
        return;
    }
    ranges.sort_by_key(|r| r.start);
    let new = apply_edits(old, &ranges);
    let opts = IndexOptions::default();
    let before = FileIndex::new(path, old, &opts).has_syntax_errors();
    let after = FileIndex::new(path, &new, &opts).has_syntax_errors();
    if after && !before {
        // The file's edits that passed the other checks go together.
        for _ in &ranges {
            drop(
                out,
                "the edited file no longer parses (new syntax errors)".into(),
            );
        }
        return;
    }
    out.edits.extend(ranges);
}

/// `text` with `edits` (sorted by start, not overlapping) applied.
fn apply_edits<'a>(text: &str, edits: impl IntoIterator<Item = &'a CheckedEdit>) -> String {
    let mut new = String::with_capacity(text.len());
    let mut at = 0;
    for r in edits {
        new.push_str(&text[at..r.start]);
        new.push_str(&r.new_text);
        at = r.end;
    }
    new.push_str(&text[at..]);
    new
}

/// What a checked plan does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file's path before the plan (its new path for a created file).
    pub path: String,
    /// Its text before the plan; `None` for a created file.
    pub old: Option<Arc<String>>,
    /// Its text after the plan.
    pub new: String,
    /// Where a renamed file goes.
    pub renamed_to: Option<String>,
}

/// Every file a checked plan touches, in path order (edits and renames of existing files), then
/// the files it creates.
pub fn file_changes(plan: &CheckedPlan, snapshot: &Snapshot) -> Vec<FileChange> {
    let mut out: Vec<FileChange> = Vec::new();
    let mut paths: Vec<&str> = plan.edits.iter().map(|e| e.path.as_str()).collect();
    for op in &plan.files {
        if let FileOp::Rename { from, .. } = op {
            paths.push(from);
        }
    }
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let Some(file) = snapshot.get(path) else {
            continue;
        };
        let mut edits: Vec<&CheckedEdit> = plan.edits.iter().filter(|e| e.path == path).collect();
        edits.sort_by_key(|e| e.start);
        let renamed_to = plan.files.iter().find_map(|op| match op {
            FileOp::Rename { from, to } if from == path => Some(to.clone()),
            _ => None,
        });
        out.push(FileChange {
            path: path.to_string(),
            old: Some(file.text.clone()),
            new: apply_edits(&file.text, edits),
            renamed_to,
        });
    }
    for op in &plan.files {
        if let FileOp::Create { path, text } = op {
            out.push(FileChange {
                path: path.clone(),
                old: None,
                new: text.clone(),
                renamed_to: None,
            });
        }
    }
    out
}

/// The plan as a unified diff (`git diff` style, paths as in the snapshot), for a preview.
pub fn unified_diff(plan: &CheckedPlan, snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for c in file_changes(plan, snapshot) {
        let old = c.old.as_deref().map_or("", String::as_str);
        let from = match &c.old {
            Some(_) => format!("a/{}", c.path),
            None => "/dev/null".to_string(),
        };
        let to = format!("b/{}", c.renamed_to.as_deref().unwrap_or(&c.path));
        if let Some(target) = &c.renamed_to {
            out.push_str(&format!("rename from {}\nrename to {target}\n", c.path));
        }
        if old == c.new {
            continue;
        }
        let diff = similar::TextDiff::from_lines(old, c.new.as_str());
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&from, &to)
                .to_string(),
        );
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Why a path the plan writes cannot be written, if it cannot.
fn new_path_problem(path: &str, snapshot: &Snapshot, taken: &[String]) -> Option<String> {
    let outside = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty());
    if outside {
        return Some("not a plain relative path inside the workspace".into());
    }
    match snapshot.root_of(path) {
        None => {
            return Some(
                "not under a root of the workspace (paths start with the root's name)".into(),
            );
        }
        Some((r, _)) if r.read_only => return Some(format!("{} is a read-only root", r.name)),
        Some(_) => {}
    }
    if snapshot.get(path).is_some() || snapshot.disk_path(path).exists() {
        return Some("a file is already there".into());
    }
    taken
        .iter()
        .any(|t| t == path)
        .then(|| "another operation of the plan writes it too".into())
}

/// Checks creates and renames in order; each new path must be free of the ones before it.
fn check_file_ops(ops: Vec<FileOp>, snapshot: &Snapshot, out: &mut CheckedPlan) {
    let mut taken: Vec<String> = Vec::new();
    let mut moved: Vec<String> = Vec::new();
    for op in ops {
        let problem = new_path_problem(op.target(), snapshot, &taken).or_else(|| match &op {
            FileOp::Create { path, text } => FileIndex::new(path, text, &IndexOptions::default())
                .has_syntax_errors()
                .then(|| "the new file does not parse".into()),
            FileOp::Rename { from, .. } => {
                if snapshot.get(from).is_none() {
                    Some(format!("{from}: no such file in the workspace"))
                } else if snapshot.root_of(from).is_some_and(|(r, _)| r.read_only) {
                    Some(format!("{from} is in a read-only root"))
                } else if moved.contains(from) {
                    Some(format!("{from} is renamed twice"))
                } else {
                    None
                }
            }
        });
        match problem {
            Some(reason) => out.dropped.push(DroppedEdit {
                path: op.target().to_string(),
                reason,
            }),
            None => {
                taken.push(op.target().to_string());
                if let FileOp::Rename { from, .. } = &op {
                    moved.push(from.clone());
                }
                out.files.push(op);
            }
        }
    }
}

#[cfg(test)]
mod tests;
