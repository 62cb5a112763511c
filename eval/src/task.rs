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

/// A workspace: one or more roots (several roots prefix every path with the root's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    pub roots: Vec<RootRef>,
}

impl WorkspaceSpec {
    /// Comma-separated roots: `serde@1.0.229,serde_json@1.0.154`.
    pub fn parse(s: &str) -> WorkspaceSpec {
        WorkspaceSpec {
            roots: s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(RootRef::parse)
                .collect(),
        }
    }

    pub fn label(&self) -> String {
        self.roots
            .iter()
            .map(RootRef::label)
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// The generator: `needle_function`, `call_sites`, `implementors`, `aggregate`, `pairs`.
    pub kind: String,
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
    }
}
