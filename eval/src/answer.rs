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

/// Whether `tok` designates any workspace file at all (exactly, by suffix, or within a longer
/// path), ambiguous or not.
fn designates_some_file(tok: &str, files: &[String]) -> bool {
    let suffix = format!("/{tok}");
    files
        .iter()
        .any(|f| f == tok || f.ends_with(&suffix) || tok.ends_with(&format!("/{f}")))
}

/// Path-looking tokens of `answer` (a file name with an extension, optionally `:line`) that
/// designate no file of the workspace, not even ambiguously: citations of files that are not
/// there. Parts of URLs and the site name `docs.rs` are not citations.
pub fn unknown_paths(answer: &str, files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for m in PATH_RE.find_iter(answer) {
        let before = &answer[..m.start()];
        let word_start = before
            .rfind(|c: char| c.is_whitespace() || "`'\"(<[".contains(c))
            .map_or(0, |i| i + 1);
        if answer[word_start..m.start()].contains("//")
            || answer[word_start..m.start()].contains(':')
        {
            continue;
        }
        let tok = m.as_str();
        let path = tok.split(':').next().unwrap_or(tok);
        let path = path.trim_start_matches("./").trim_start_matches('/');
        if path.is_empty() || path == "docs.rs" || designates_some_file(path, files) {
            continue;
        }
        if !out.iter().any(|t| t == tok) {
            out.push(tok.to_string());
        }
    }
    out
}

static DIR_TOKEN_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9_.\-/]+").expect("valid regex"));
static FILE_EXT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\.(rs|toml|md|txt|json|py|js|ts|lock|yml|yaml|sh)(:\d+)?$").expect("valid regex")
});

/// Every directory of the workspace (each proper prefix of a file's path).
pub fn directories(files: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in files {
        let mut end = 0;
        while let Some(i) = f[end..].find('/') {
            end += i;
            out.insert(f[..end].to_string());
            end += 1;
        }
    }
    out
}

/// Directories `depth` components deep that `answer` names. A token with a `/` (`src/io`,
/// `tokio-1.54.1/src/io/`) is matched like a path (exactly, by its end, or the model added a
/// prefix); a bare word (`io`) only when it is marked (in backticks, quotes or bold), has a
/// `-`, `.` or `_` (`syn-2.0`), or the whole answer is at most three words, and then only when
/// it is the last component of exactly one such directory. File paths (`src/io/mod.rs`) name files, not directories.
pub fn dirs(answer: &str, files: &[String], depth: usize) -> BTreeSet<String> {
    let candidates: Vec<String> = directories(files)
        .into_iter()
        .filter(|d| d.split('/').count() == depth)
        .collect();
    let short = answer.split_whitespace().count() <= 3;
    let mut out = BTreeSet::new();
    for m in DIR_TOKEN_RE.find_iter(answer) {
        let raw = m.as_str();
        if FILE_EXT_RE.is_match(raw) {
            continue;
        }
        let tok = raw
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches(['/', '.', ':', '-']);
        if tok.is_empty() {
            continue;
        }
        let found = if tok.contains('/') {
            if candidates.iter().any(|c| c == tok) {
                Some(tok.to_string())
            } else {
                let ends: Vec<&String> = candidates
                    .iter()
                    .filter(|c| c.ends_with(&format!("/{tok}")))
                    .collect();
                let within: Vec<&String> = candidates
                    .iter()
                    .filter(|c| tok.ends_with(&format!("/{c}")))
                    .collect();
                match (ends.as_slice(), within.as_slice()) {
                    ([one], _) => Some(one.to_string()),
                    ([], [one]) => Some(one.to_string()),
                    _ => None,
                }
            }
        } else {
            let before = answer[..m.start()].chars().next_back();
            let after = answer[m.end()..].chars().next();
            let marked = |c: Option<char>| c.is_some_and(|c| "`*\"'".contains(c));
            // `syn-2.0.119` or `test_utils` is no prose word.
            let codey = tok.contains(['-', '.', '_']);
            if short || codey || marked(before) || marked(after) {
                let last: Vec<&String> = candidates
                    .iter()
                    .filter(|c| c.rsplit('/').next() == Some(tok))
                    .collect();
                (last.len() == 1).then(|| last[0].clone())
            } else {
                None
            }
        };
        out.extend(found);
    }
    out
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
    fn unknown_paths_are_citations_of_files_not_there() {
        let f = files();
        assert_eq!(
            unknown_paths(
                "See src/lib.rs:3, mod.rs, src/nope.rs:9 and std/src/vec.rs; docs at https://docs.rs/x/a.rs and docs.rs.",
                &f
            ),
            vec!["src/nope.rs:9".to_string(), "std/src/vec.rs".into()]
        );
        assert!(unknown_paths("/home/me/.cargo/registry/src/x/crate-1.0/src/de.rs", &f).is_empty());
        assert!(unknown_paths("no paths at all, version 1.0.2", &f).is_empty());
    }

    #[test]
    fn directories_named_in_answers() {
        let f: Vec<String> = [
            "tokio-1.0/src/io/mod.rs",
            "tokio-1.0/src/io/util/a.rs",
            "tokio-1.0/src/net/tcp.rs",
            "tokio-1.0/tests/io.rs",
            "syn-2.0/src/gen/fold.rs",
            "syn-2.0/Cargo.toml",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let d = |a: &str, depth| dirs(a, &f, depth).into_iter().collect::<Vec<_>>();
        assert_eq!(
            d("The directory is `tokio-1.0/src/io/`.", 3),
            vec!["tokio-1.0/src/io"]
        );
        assert_eq!(
            d("src/io has the most (see src/io/mod.rs:3)", 3),
            vec!["tokio-1.0/src/io"]
        );
        assert_eq!(
            d("/x/registry/tokio-1.0/src/net", 3),
            vec!["tokio-1.0/src/net"]
        );
        assert_eq!(d("**net**", 3), vec!["tokio-1.0/src/net"]);
        assert_eq!(d("net", 3), vec!["tokio-1.0/src/net"]);
        // A bare word in prose does not count; a file path names a file, not its directory.
        assert!(d("most of the io happens in the net code", 3).is_empty());
        assert!(d("tokio-1.0/src/net/tcp.rs", 3).is_empty());
        assert_eq!(d("tokio-1.0/src/io and syn-2.0/src/gen", 3).len(), 2);
        // `src` alone is ambiguous at depth 2 (two crates have one).
        assert!(d("`src`", 2).is_empty());
        assert_eq!(d("`syn-2.0`", 1), vec!["syn-2.0"]);
        assert_eq!(d("The crate syn-2.0 has the most.", 1), vec!["syn-2.0"]);
        assert_eq!(directories(&f).len(), 9);
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
