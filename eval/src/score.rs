//! Scorers: exact match, set F1 over files, `(file, line)` pairs or names, and 0.75^|error| for
//! counts. Answers are read leniently (`answer.rs`).

use crate::answer;
use crate::task::{Scorer, Task, Truth};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// In [0, 1].
    pub score: f64,
    /// What was read from the answer and compared.
    pub detail: String,
}

/// F1 of a predicted set against a true set (1 when both are empty).
pub fn f1<T: Ord>(predicted: &BTreeSet<T>, truth: &BTreeSet<T>) -> f64 {
    if predicted.is_empty() && truth.is_empty() {
        return 1.0;
    }
    let hits = predicted.intersection(truth).count() as f64;
    if hits == 0.0 {
        return 0.0;
    }
    let p = hits / predicted.len() as f64;
    let r = hits / truth.len() as f64;
    2.0 * p * r / (p + r)
}

/// 0.75^|error|, as in OOLONG's numeric answers.
pub fn count_score(predicted: Option<i64>, truth: i64) -> f64 {
    match predicted {
        Some(p) => 0.75f64.powi((p - truth).unsigned_abs().min(1000) as i32),
        None => 0.0,
    }
}

/// Scores `answer` for `task`. `files` are the workspace's paths; `known_names` the names an
/// answer could plausibly list (types defined in the workspace), to tell listed names from prose.
pub fn score(task: &Task, answer: &str, files: &[String], known_names: &BTreeSet<String>) -> Score {
    let answer = answer::without_banner(answer);
    match (&task.scorer, &task.truth) {
        (Scorer::NameFile, Truth::Function { name, file }) => {
            let named = answer::mentions(answer, name);
            let found = answer::paths(answer, files);
            let filed = found.contains(file);
            Score {
                score: match (named, filed) {
                    (true, true) => 1.0,
                    (true, false) => 0.5,
                    _ => 0.0,
                },
                detail: format!(
                    "name {}, file {}; files named: {found:?}",
                    yes(named),
                    yes(filed)
                ),
            }
        }
        (Scorer::SetF1Files, Truth::Files { files: truth, .. }) => {
            let found = answer::paths(answer, files);
            let truth: BTreeSet<String> = truth.iter().cloned().collect();
            let s = f1(&found, &truth);
            Score {
                score: s,
                detail: format!(
                    "{} of {} true files named, {} named in all",
                    found.intersection(&truth).count(),
                    truth.len(),
                    found.len()
                ),
            }
        }
        (Scorer::SetF1FileLines, Truth::Files { lines, .. }) => {
            let found = answer::file_lines(answer, files);
            let truth: BTreeSet<(String, u32)> = lines.iter().cloned().collect();
            Score {
                score: f1(&found, &truth),
                detail: format!(
                    "{} of {} true (file, line) pairs cited, {} cited in all",
                    found.intersection(&truth).count(),
                    truth.len(),
                    found.len()
                ),
            }
        }
        (Scorer::SetF1Names, Truth::Names { names }) => {
            let truth: BTreeSet<String> = names.iter().cloned().collect();
            let exclude: BTreeSet<&String> = task.question_names.iter().collect();
            let found: BTreeSet<String> = answer::identifiers(answer)
                .into_iter()
                .filter(|n| (truth.contains(n) || known_names.contains(n)) && !exclude.contains(n))
                .collect();
            Score {
                score: f1(&found, &truth),
                detail: format!(
                    "{} of {} true names given, {} known names given: {:?}",
                    found.intersection(&truth).count(),
                    truth.len(),
                    found.len(),
                    found.iter().take(12).collect::<Vec<_>>()
                ),
            }
        }
        (Scorer::Count, Truth::Count { count }) => {
            let got = answer::count(answer);
            Score {
                score: count_score(got, *count),
                detail: format!("read {got:?}, truth {count}"),
            }
        }
        (Scorer::ExactFile, Truth::OneOfFiles { files: ok }) => {
            let found = answer::paths(answer, files);
            let hit = found.len() == 1 && ok.iter().any(|f| found.contains(f));
            Score {
                score: if hit { 1.0 } else { 0.0 },
                detail: format!("files named: {found:?}; accepted: {ok:?}"),
            }
        }
        (Scorer::ExactDir, Truth::Dir { dir }) => {
            let depth = dir.split('/').count();
            let found = answer::dirs(answer, files, depth);
            let hit = found.len() == 1 && found.contains(dir);
            Score {
                score: if hit { 1.0 } else { 0.0 },
                detail: format!("directories of depth {depth} named: {found:?}; true: {dir}"),
            }
        }
        (s, t) => Score {
            score: 0.0,
            detail: format!("scorer {s:?} does not apply to truth {t:?}"),
        },
    }
}

fn yes(b: bool) -> &'static str {
    if b { "found" } else { "missing" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::WorkspaceSpec;

    fn task(truth: Truth, scorer: Scorer) -> Task {
        Task {
            id: "t".into(),
            kind: "k".into(),
            size: String::new(),
            workspace: WorkspaceSpec::new(vec![]),
            size_tokens: 0,
            question: String::new(),
            truth,
            scorer,
            question_names: vec!["Shape".into()],
        }
    }

    fn files() -> Vec<String> {
        [
            "src/a.rs",
            "src/b.rs",
            "src/c.rs",
            "src/io/x.rs",
            "src/net/y.rs",
            "tests/t.rs",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn s(t: &Task, a: &str) -> f64 {
        let known = ["Foo", "Bar", "Baz", "Shape"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        score(t, a, &files(), &known).score
    }

    #[test]
    fn f1_and_counts() {
        let a: BTreeSet<i32> = [1, 2].into();
        let b: BTreeSet<i32> = [2, 3, 4].into();
        assert!((f1(&a, &b) - 0.4).abs() < 1e-9);
        assert_eq!(f1(&BTreeSet::<i32>::new(), &BTreeSet::new()), 1.0);
        assert_eq!(count_score(Some(10), 10), 1.0);
        assert!((count_score(Some(8), 10) - 0.5625).abs() < 1e-9);
        assert_eq!(count_score(None, 10), 0.0);
    }

    #[test]
    fn name_file() {
        let t = task(
            Truth::Function {
                name: "parse_expr".into(),
                file: "src/b.rs".into(),
            },
            Scorer::NameFile,
        );
        assert_eq!(s(&t, "It is `parse_expr` in src/b.rs:40."), 1.0);
        assert_eq!(s(&t, "parse_expr, in src/a.rs"), 0.5);
        assert_eq!(s(&t, "parse in src/b.rs"), 0.0);
    }

    #[test]
    fn set_f1_files_and_lines() {
        let t = task(
            Truth::Files {
                files: vec!["src/a.rs".into(), "src/b.rs".into()],
                lines: vec![("src/a.rs".into(), 3), ("src/b.rs".into(), 9)],
            },
            Scorer::SetF1Files,
        );
        assert_eq!(s(&t, "- src/a.rs\n- src/b.rs"), 1.0);
        assert!((s(&t, "src/a.rs and c.rs") - 0.5).abs() < 1e-9);
        let mut t2 = t.clone();
        t2.scorer = Scorer::SetF1FileLines;
        assert_eq!(s(&t2, "src/a.rs:3, src/b.rs:9"), 1.0);
        assert!((s(&t2, "src/a.rs:3, src/b.rs:10") - 0.5).abs() < 1e-9);
    }

    #[test]
    fn set_f1_names_ignores_prose_and_the_question() {
        let t = task(
            Truth::Names {
                names: vec!["Foo".into(), "Bar".into()],
            },
            Scorer::SetF1Names,
        );
        assert_eq!(s(&t, "The types implementing Shape are Foo and Bar."), 1.0);
        assert!((s(&t, "Foo, Baz") - 0.5).abs() < 1e-9);
    }

    #[test]
    fn count_and_exact_file() {
        let t = task(Truth::Count { count: 12 }, Scorer::Count);
        assert_eq!(s(&t, "**12**"), 1.0);
        assert!((s(&t, "There are 11.") - 0.75).abs() < 1e-9);
        let t = task(
            Truth::OneOfFiles {
                files: vec!["src/c.rs".into()],
            },
            Scorer::ExactFile,
        );
        assert_eq!(s(&t, "src/c.rs has the most"), 1.0);
        assert_eq!(s(&t, "src/c.rs or src/a.rs"), 0.0);
    }

    #[test]
    fn exact_dir() {
        let t = task(
            Truth::Dir {
                dir: "src/net".into(),
            },
            Scorer::ExactDir,
        );
        assert_eq!(s(&t, "`src/net/`"), 1.0);
        assert_eq!(s(&t, "The most is in **net** (src/net/y.rs:4)."), 1.0);
        assert_eq!(s(&t, "net"), 1.0);
        // Another directory of the same depth named too, or only a file, or the wrong depth.
        assert_eq!(s(&t, "src/net or src/io"), 0.0);
        assert_eq!(s(&t, "src/net/y.rs"), 0.0);
        assert_eq!(s(&t, "src"), 0.0);
        assert_eq!(s(&t, "tests"), 0.0);
    }
}
