//! What a "which has the most" first search ranked first, to check the answer against: a small
//! model shown `most: a/x.rs (55)` above `b/y.rs: 10` sometimes answers with a line below the
//! top, or a path from elsewhere (the workspace summary). Such an answer goes back once while the
//! model has run no cell of its own.

/// The first search's ranking (`count_by_dir` / `count_by_file` output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The entries with the most (several when tied), as written.
    pub top: Vec<String>,
    /// Their count.
    pub count: String,
    /// The other entries listed, with their counts.
    pub others: Vec<(String, String)>,
}

/// The ranking a `count_by_dir` / `count_by_file` output shows: its `most: A (N)` line and the
/// `path: N` lines after it.
pub fn ranking(stdout: &str) -> Option<Ranking> {
    let mut lines = stdout.lines();
    let first = lines.next()?;
    let rest = first
        .strip_prefix("most (tied): ")
        .or_else(|| first.strip_prefix("most: "))?;
    let (names, count) = rest.rsplit_once(" (")?;
    let count = count.strip_suffix(')')?.to_string();
    let top: Vec<String> = names.split(", ").map(str::to_string).collect();
    let others = lines
        .filter_map(|l| l.rsplit_once(": "))
        .filter(|(p, n)| !top.iter().any(|t| t == p) && n.chars().all(|c| c.is_ascii_digit()))
        .map(|(p, n)| (p.to_string(), n.to_string()))
        .collect();
    Some(Ranking { top, count, others })
}

impl Ranking {
    /// What is wrong with `answer`: it names none of the top entries, but entries the ranking
    /// puts below the top or paths it does not list. A directory is named with or without its
    /// trailing `/`.
    pub fn complaint(&self, answer: &str) -> Option<String> {
        let names = |entry: &str| {
            let e = entry.trim_end_matches('/');
            !e.is_empty() && e != "." && answer.contains(e)
        };
        if self.top.iter().any(|t| names(t)) {
            return None;
        }
        let mut named: Vec<String> = self
            .others
            .iter()
            .filter(|(p, _)| names(p))
            .map(|(p, n)| format!("{p} ({n})"))
            .collect();
        if named.is_empty() {
            // A path the count does not list at all (copied from the workspace summary).
            named = answer
                .split(|c: char| c.is_whitespace() || matches!(c, '`' | '(' | ')' | ',' | '"'))
                .map(|t| t.trim_end_matches(['.', ':']))
                .filter(|t| t.contains('/') && !t.starts_with("http"))
                .map(|t| format!("{t} (not in the count)"))
                .collect();
        }
        if named.is_empty() {
            return None;
        }
        Some(format!(
            "Your answer was not accepted: the count above puts {} first ({}), not {}. Reply \
             with FINAL(...) naming the one with the most, unless the question asks for \
             something else.",
            self.top.join(" and "),
            self.count,
            named.join(", "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the 1.5B model at 0de02a4: the third line given as the answer.
    const SHOWN: &str = "most: anyhow-1.0.105/src/error.rs (55)\n\
        anyhow-1.0.105/src/error.rs: 55\n\
        rayon-core-1.13.0/src/registry.rs: 13\n\
        rayon-core-1.13.0/src/scope/mod.rs: 10\n";

    #[test]
    fn an_answer_below_the_top_goes_back() {
        let r = ranking(SHOWN).unwrap();
        assert_eq!(r.top, ["anyhow-1.0.105/src/error.rs"]);
        assert_eq!(r.others.len(), 2);
        expect_test::expect![[r#"
            Some(
                "Your answer was not accepted: the count above puts anyhow-1.0.105/src/error.rs first (55), not rayon-core-1.13.0/src/scope/mod.rs (10). Reply with FINAL(...) naming the one with the most, unless the question asks for something else.",
            )
        "#]]
        .assert_debug_eq(&r.complaint("rayon-core-1.13.0/src/scope/mod.rs"));
        assert_eq!(r.complaint("anyhow-1.0.105/src/error.rs has 55"), None);
        // A path the count does not list (recorded at 614cbe6: a path of the workspace
        // summary's largest files), or no path at all.
        expect_test::expect![[r#"
            Some(
                "Your answer was not accepted: the count above puts anyhow-1.0.105/src/error.rs first (55), not regex-syntax-0.8.12/src/ast/parse.rs (not in the count). Reply with FINAL(...) naming the one with the most, unless the question asks for something else.",
            )
        "#]]
        .assert_debug_eq(&r.complaint("regex-syntax-0.8.12/src/ast/parse.rs"));
        assert_eq!(r.complaint("I cannot tell."), None);
    }

    #[test]
    fn directories_ties_and_other_outputs() {
        let r = ranking("most (tied): a/, b/ (3)\na/: 3\nb/: 3\nc/: 1\n").unwrap();
        assert_eq!(r.top, ["a/", "b/"]);
        assert_eq!(r.complaint("b (3 of them)"), None);
        assert!(r.complaint("c").is_some());
        let r = ranking("most: rayon-core-1.13.0/src/scope/ (10)\nrayon-core-1.13.0/src/scope/: 10\nrayon-core-1.13.0/src/thread_pool/: 8\n").unwrap();
        assert_eq!(r.complaint("rayon-core-1.13.0/src/scope"), None);
        assert!(
            r.complaint("rayon-core-1.13.0/src/thread_pool/mod.rs:3")
                .is_some()
        );
        assert_eq!(ranking("8 files\n"), None);
    }
}
