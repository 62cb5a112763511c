//! Lenient reading of free-text answers. A 1.5B model wraps its answer in prose, Markdown, code
//! fences and `path:line` citations; the scorers look for what they need inside that text:
//!
//! - **paths**: every token that looks like a file path (`[\w.-/]+\.ext`, optionally `:line`),
//!   mapped onto the workspace's files: an exact path; else the one file whose path ends with
//!   `/token` (`lib.rs` when only one `lib.rs` exists, `src/de.rs` under a crate prefix); else the
//!   one file that the token ends with (the model prefixed a directory). Ambiguous tokens
//!   (`mod.rs` among many) count as nothing.
//! - **names**: identifiers (`[A-Za-z_][A-Za-z0-9_]*`) anywhere in the text, also inside
//!   `Type::method` and backticks.
//! - **counts**: the first integer after removing paths, `path:line` citations and version
//!   numbers (`1.0.2`, `serde-1.0.229`); digits grouped with `,` or `_` are read whole; the words
//!   zero to twenty count too.

use regex::Regex;
use std::collections::BTreeSet;
use std::sync::LazyLock;

static PATH_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]\.(rs|toml|md|txt|json|py|js|ts)(:\d+)?\b")
        .expect("valid regex")
});
static IDENT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("valid regex"));
static VERSION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\w\-]*\d+\.\d+(\.\d+)*[\w\-.]*").expect("valid regex"));
static NUMBER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,3}(?:[,_]\d{3})+|\d+|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty)\b")
        .expect("valid regex")
});

/// The answer without the engine's banner on a partial answer ("**Partial answer**: the run
/// stopped at its max wall time (120 s) ..."), whose numbers and words are not the model's.
pub fn without_banner(answer: &str) -> &str {
    let t = answer.trim_start();
    if t.starts_with("**Partial answer**") {
        return t.split_once("\n\n").map_or("", |(_, rest)| rest);
    }
    answer
}

/// Workspace files named in `answer` (see the module documentation for the matching rules).
pub fn paths(answer: &str, files: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in PATH_RE.find_iter(answer) {
        let tok = m.as_str();
        let tok = tok.split(':').next().unwrap_or(tok);
        let tok = tok.trim_start_matches("./").trim_start_matches('/');
        if let Some(f) = resolve_path(tok, files) {
            out.insert(f);
        }
    }
    out
}

/// The one workspace file `tok` designates, if exactly one.
pub fn resolve_path(tok: &str, files: &[String]) -> Option<String> {
    if tok.is_empty() {
        return None;
    }
    if files.iter().any(|f| f == tok) {
        return Some(tok.to_string());
    }
    let suffix = format!("/{tok}");
    let ends: Vec<&String> = files.iter().filter(|f| f.ends_with(&suffix)).collect();
    if ends.len() == 1 {
        return Some(ends[0].clone());
    }
    if !ends.is_empty() {
        return None;
    }
    let within: Vec<&String> = files
        .iter()
        .filter(|f| tok.ends_with(&format!("/{f}")))
        .collect();
    (within.len() == 1).then(|| within[0].clone())
}

/// `(file, line)` citations in `answer`, files resolved as in [`paths`].
pub fn file_lines(answer: &str, files: &[String]) -> BTreeSet<(String, u32)> {
    let mut out = BTreeSet::new();
    for m in PATH_RE.find_iter(answer) {
        let Some((p, l)) = m.as_str().rsplit_once(':') else {
            continue;
        };
        let (Some(f), Ok(line)) = (resolve_path(p.trim_start_matches("./"), files), l.parse())
        else {
            continue;
        };
        out.insert((f, line));
    }
    out
}

/// Every identifier in `answer`.
pub fn identifiers(answer: &str) -> BTreeSet<String> {
    IDENT_RE
        .find_iter(answer)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Whether `name` occurs in `answer` as a whole identifier.
pub fn mentions(answer: &str, name: &str) -> bool {
    IDENT_RE.find_iter(answer).any(|m| m.as_str() == name)
}

/// The count an answer gives (see the module documentation).
pub fn count(answer: &str) -> Option<i64> {
    let without_paths = PATH_RE.replace_all(answer, " ");
    let cleaned = VERSION_RE.replace_all(&without_paths, " ");
    let m = NUMBER_RE.find(&cleaned)?;
    let s = m.as_str().to_ascii_lowercase();
    let words = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    if let Some(i) = words.iter().position(|w| *w == s) {
        return Some(i as i64);
    }
    s.replace([',', '_'], "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<String> {
        [
            "src/lib.rs",
            "src/de.rs",
            "src/a/mod.rs",
            "src/b/mod.rs",
            "tests/de.rs",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn paths_exact_suffix_prefix_and_ambiguous() {
        let f = files();
        let got = paths(
            "It is in `src/lib.rs:12`, also serde_json-1.0/src/de.rs and ./lib.rs; mod.rs too.",
            &f,
        );
        assert_eq!(
            got,
            ["src/de.rs", "src/lib.rs"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        // `de.rs` is ambiguous (src/de.rs, tests/de.rs): nothing.
        assert!(paths("de.rs", &f).is_empty());
        assert_eq!(
            file_lines("see src/lib.rs:12 and src/a/mod.rs:3", &f),
            [
                ("src/a/mod.rs".to_string(), 3),
                ("src/lib.rs".to_string(), 12)
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn names_and_counts() {
        assert!(mentions(
            "The function is `Parser::parse_expr`.",
            "parse_expr"
        ));
        assert!(!mentions("parse_exprs", "parse_expr"));
        assert_eq!(
            count("There are 42 such functions (src/lib.rs:10)."),
            Some(42)
        );
        assert_eq!(
            count("In serde-1.0.229/src/de.rs: 1,234 functions"),
            Some(1234)
        );
        assert_eq!(count("FINAL(7)"), Some(7));
        assert_eq!(count("I found three."), Some(3));
        assert_eq!(count("no idea"), None);
        assert!(identifiers("impl Foo for Bar").contains("Bar"));
        assert_eq!(
            without_banner(
                "**Partial answer**: stopped at its max wall time (120 s).\n\nThe count is 4"
            ),
            "The count is 4"
        );
        assert_eq!(without_banner("4"), "4");
    }
}
