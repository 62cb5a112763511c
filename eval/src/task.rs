//! Tasks (one JSONL line each): a workspace, a question, its ground truth and how to score it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a task's answer is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Truth {
    /// One function: its name and defining file.
    Function { name: String, file: String },
    /// A set of files (`lines`, when given, are `(file, line)` pairs for a finer F1).
    Files {
        files: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lines: Vec<(String, u32)>,
    },
    /// A set of names (types, traits, ...).
    Names { names: Vec<String> },
    /// A number.
    Count { count: i64 },
    /// One file; ties make several files acceptable.
    OneOfFiles { files: Vec<String> },
    /// One directory (a `/`-separated path without a trailing `/`).
    Dir { dir: String },
}

/// How an answer is scored (see `score.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// 1 for the name and the file, 0.5 for the name alone.
    NameFile,
    /// F1 of the files named against the true set.
    SetF1Files,
    /// F1 of the `(file, line)` citations against the true pairs.
    SetF1FileLines,
    /// F1 of the names given against the true set.
    SetF1Names,
    /// 0.75^|error| of the first number given.
    Count,
    /// 1 when the file named is (one of) the true one(s), and no other is named.
    ExactFile,
    /// 1 when the directory named is the true one, and no other directory of its depth is.
    ExactDir,
}

/// One workspace root: a crate as `cargo fetch` unpacked it (`name@version`, optionally
/// `name@version/subdir`), or a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootRef {
    Crate(String),
    Dir(PathBuf),
}

impl RootRef {
    /// `regex@1.13.2`, `once_cell@1.21.4/src` or a directory path.
    pub fn parse(s: &str) -> RootRef {
        if s.contains('@') && !s.starts_with('/') && !s.starts_with('.') {
            RootRef::Crate(s.to_string())
        } else {
            RootRef::Dir(PathBuf::from(s))
        }
    }

    pub fn label(&self) -> String {
        match self {
            RootRef::Crate(c) => c.clone(),
            RootRef::Dir(d) => d.display().to_string(),
        }
    }

    /// Where the root is on disk: crates under `$CARGO_HOME/registry/src/*/name-version`.
    pub fn resolve(&self) -> Result<PathBuf, String> {
        match self {
            RootRef::Dir(d) => Ok(d.clone()),
            RootRef::Crate(spec) => {
                let (name_ver, sub) = match spec.split_once('/') {
                    Some((a, b)) => (a, Some(b)),
                    None => (spec.as_str(), None),
                };
                let (name, ver) = name_ver
                    .split_once('@')
                    .ok_or_else(|| format!("{spec}: expected name@version"))?;
                let dir = format!("{name}-{ver}");
                let src = cargo_home().join("registry").join("src");
                let entries = std::fs::read_dir(&src)
                    .map_err(|e| format!("{}: {e} (run `cargo fetch` first)", src.display()))?;
                for e in entries.flatten() {
                    let p = e.path().join(&dir);
                    if p.is_dir() {
                        return Ok(match sub {
                            Some(s) => p.join(s),
                            None => p,
                        });
                    }
                }
                Err(format!(
                    "crate {name_ver} is not unpacked under {} (run bench/eval.sh, which runs `cargo fetch` in fixtures/eval/crates)",
                    src.display()
                ))
            }
        }
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// A workspace: one or more roots (several roots prefix every path with the root's name), and
/// texts overlaid on some of its files (functions planted by the `planted_behaviour` tasks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    pub roots: Vec<RootRef>,
    /// Applied in order after the walk: the run sees the overlaid text, the disk is untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<Overlay>,
}

/// Text inserted into one file of the workspace: `insert` goes before line `line` (1-based; one
/// past the last line appends). `base_hash` is the FNV-1a hash of the file's original text, so a
/// changed crate is an error rather than a wrong ground truth.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Overlay {
    /// The file's workspace path (with the root's prefix when there are several roots).
    pub path: String,
    pub line: u32,
    pub insert: String,
    pub base_hash: String,
}

impl Overlay {
    /// The file's text with `insert` in place. Fails when the text is not the one planted into.
    pub fn apply(&self, text: &str) -> Result<String, String> {
        let h = format!("{:016x}", stable_hash(text));
        if h != self.base_hash {
            return Err(format!(
                "{}: the text differs from the one the task was generated on (hash {h}, expected {})",
                self.path, self.base_hash
            ));
        }
        let mut start = 0;
        let mut line = 1;
        while line < self.line {
            match text[start..].find('\n') {
                Some(i) => {
                    start += i + 1;
                    line += 1;
                }
                None => {
                    start = text.len();
                    break;
                }
            }
        }
        let mut out = String::with_capacity(text.len() + self.insert.len() + 1);
        out.push_str(&text[..start]);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&self.insert);
        if !self.insert.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&text[start..]);
        Ok(out)
    }
}

/// FNV-1a: a hash that is the same on every machine and every run.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl WorkspaceSpec {
    pub fn new(roots: Vec<RootRef>) -> WorkspaceSpec {
        WorkspaceSpec {
            roots,
            overlays: Vec::new(),
        }
    }

    /// Comma-separated roots: `serde@1.0.229,serde_json@1.0.154`.
    pub fn parse(s: &str) -> WorkspaceSpec {
        WorkspaceSpec::new(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(RootRef::parse)
                .collect(),
        )
    }

    pub fn label(&self) -> String {
        let roots = self
            .roots
            .iter()
            .map(RootRef::label)
            .collect::<Vec<_>>()
            .join(" + ");
        match self.overlays.len() {
            0 => roots,
            1 => format!("{roots} (1 file overlaid)"),
            n => format!("{roots} ({n} files overlaid)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// The generator: `needle_function`, `call_sites`, `implementors`, `aggregate`, `pairs`,
    /// `count_files`, `top_dir`, `planted_behaviour`.
    pub kind: String,
    /// The workspace's size class as `rlm-eval gen --workspace NAME=SPEC` named it (`100k`,
    /// `1m`, `5m`); empty when unnamed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    pub workspace: WorkspaceSpec,
    /// Estimated tokens of the workspace when the task was generated (characters / 4).
    pub size_tokens: u64,
    pub question: String,
    pub truth: Truth,
    pub scorer: Scorer,
    /// Names in the question, never counted as answered names (the trait asked about, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub question_names: Vec<String>,
}

pub fn read_tasks(path: &Path) -> anyhow::Result<Vec<Task>> {
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

pub fn write_tasks(path: &Path, tasks: &[Task]) -> anyhow::Result<()> {
    let mut out = String::new();
    for t in tasks {
        out.push_str(&serde_json::to_string(t)?);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_round_trip() {
        let w = WorkspaceSpec::parse("serde@1.0.229, once_cell@1.21.4/src,./fixtures/x");
        assert_eq!(
            w.roots,
            vec![
                RootRef::Crate("serde@1.0.229".into()),
                RootRef::Crate("once_cell@1.21.4/src".into()),
                RootRef::Dir("./fixtures/x".into()),
            ]
        );
        let t = Task {
            id: "t".into(),
            kind: "aggregate".into(),
            size: String::new(),
            workspace: w,
            size_tokens: 10,
            question: "q".into(),
            truth: Truth::Count { count: 3 },
            scorer: Scorer::Count,
            question_names: vec![],
        };
        let s = serde_json::to_string(&t).unwrap();
        assert!(s.contains(r#""truth":{"type":"count","count":3}"#), "{s}");
        assert_eq!(serde_json::from_str::<Task>(&s).unwrap(), t);
        assert!(!s.contains("overlays") && !s.contains("\"size\""), "{s}");
    }

    #[test]
    fn overlays_insert_before_a_line_and_check_the_base() {
        let text = "a\nb\nc";
        let o = |line| Overlay {
            path: "x.rs".into(),
            line,
            insert: "X".into(),
            base_hash: format!("{:016x}", stable_hash(text)),
        };
        assert_eq!(o(1).apply(text).unwrap(), "X\na\nb\nc");
        assert_eq!(o(2).apply(text).unwrap(), "a\nX\nb\nc");
        assert_eq!(o(4).apply(text).unwrap(), "a\nb\nc\nX\n");
        let mut bad = o(1);
        bad.base_hash = "0".into();
        assert!(bad.apply(text).unwrap_err().contains("differs"));
        let mut w = WorkspaceSpec::parse("a@1");
        w.overlays.push(o(2));
        let back: WorkspaceSpec =
            serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        assert_eq!(w.label(), "a@1 (1 file overlaid)");
    }
}
