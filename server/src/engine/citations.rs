//! `path:line` citations in an answer, checked against the snapshot the run saw. A citation
//! that quotes code (an inline code span right after it on the same line of the answer, as in
//! "`src/a.rs:12`: `let x = 4;`") is verified only when that code is at the cited line.

use crate::workspace::Snapshot;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citation {
    pub path: String,
    pub line: u32,
    /// The code quoted with the citation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// The file is in the snapshot, has this line, and the quoted code (if any) is there.
    pub verified: bool,
    /// Why an unverified citation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A `path:line` mention and the code it quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub path: String,
    pub line: u32,
    pub snippet: Option<String>,
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-' | b'+' | b'@')
}

/// How far after a citation a quoted snippet may start (models write "a.rs:3 — the call `f(x)`").
const SNIPPET_REACH: usize = 40;

/// The inline code span that follows `from` on the same line, within `SNIPPET_REACH` bytes.
fn snippet_after(answer: &str, from: usize) -> Option<String> {
    let rest = &answer[from..];
    let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    // Skip the closing backtick of a citation written as `path:line`.
    let line = line.strip_prefix('`').unwrap_or(line);
    let open = line.find('`')?;
    if open > SNIPPET_REACH {
        return None;
    }
    let body = &line[open + 1..];
    let close = body.find('`')?;
    let code = body[..close].trim();
    // A span that is itself a citation, or a bare word too short to tell anything, is no quote.
    let is_citation = !find(code).is_empty();
    (code.len() >= 2 && !is_citation).then(|| code.to_string())
}

/// Every distinct `path:line` mention, in order of appearance (a path must hold a `.` or `/`),
/// with the code it quotes (from its first mention that quotes any).
pub fn find_mentions(answer: &str) -> Vec<Mention> {
    let bytes = answer.as_bytes();
    let mut out: Vec<Mention> = Vec::new();
    for (colon, _) in answer.match_indices(':') {
        let digits = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            continue;
        }
        let start = bytes[..colon]
            .iter()
            .rposition(|&b| !is_path_byte(b))
            .map_or(0, |i| i + 1);
        let path = answer[start..colon]
            .trim_start_matches("./")
            .trim_end_matches('.');
        if path.is_empty() || path.starts_with("//") || !(path.contains('.') || path.contains('/'))
        {
            continue;
        }
        let Ok(line) = answer[colon + 1..colon + 1 + digits].parse::<u32>() else {
            continue;
        };
        let snippet = snippet_after(answer, colon + 1 + digits);
        match out.iter_mut().find(|m| m.path == path && m.line == line) {
            Some(m) => {
                if m.snippet.is_none() {
                    m.snippet = snippet;
                }
            }
            None => out.push(Mention {
                path: path.to_string(),
                line,
                snippet,
            }),
        }
    }
    out
}

/// Every distinct `path:line` mention, in order of appearance.
pub fn find(answer: &str) -> Vec<(String, u32)> {
    find_mentions(answer)
        .into_iter()
        .map(|m| (m.path, m.line))
        .collect()
}

/// Whitespace runs collapsed to one space, so a quote matches however it was re-indented.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines either side of the cited one where a quote still counts (models are often one off).
const LINE_SLACK: usize = 1;

/// Checks a quote against the cited line; `Err` says where it is instead, if anywhere.
fn check_snippet(text: &str, line: usize, snippet: &str) -> Result<(), String> {
    let want = squash(snippet);
    let lines: Vec<&str> = text.lines().collect();
    let lo = line.saturating_sub(1 + LINE_SLACK);
    let hi = (line + LINE_SLACK).min(lines.len());
    // Joined, so a quote that spans two lines matches too.
    if squash(&lines[lo..hi].join("\n")).contains(&want) {
        return Ok(());
    }
    let elsewhere = lines
        .iter()
        .position(|l| squash(l).contains(&want))
        .map(|i| format!(" (it is at line {})", i + 1))
        .unwrap_or_default();
    Err(format!("the quoted code is not at that line{elsewhere}"))
}

/// The citations of `answer`, each marked verified when its file and line exist in `snap` and
/// the code it quotes is at that line.
pub fn check(answer: &str, snap: &Snapshot) -> Vec<Citation> {
    find_mentions(answer)
        .into_iter()
        .map(|m| {
            let reason = match snap.get(&m.path) {
                None => Some("no such file in the workspace".to_string()),
                Some(f) => {
                    let lines = f.text.lines().count().max(1);
                    if m.line == 0 || m.line as usize > lines {
                        Some(format!("the file has {lines} lines"))
                    } else {
                        m.snippet
                            .as_deref()
                            .and_then(|s| check_snippet(&f.text, m.line as usize, s).err())
                    }
                }
            };
            Citation {
                path: m.path,
                line: m.line,
                snippet: m.snippet,
                verified: reason.is_none(),
                reason,
            }
        })
        .collect()
}

/// The one file of the workspace a near-miss path means: the same but for `_` and `-` or case
/// (`regex_syntax-0.8.12/src/ast/visitor.rs`), else the only file ending with its last two
/// components so spelled.
pub fn nearest_path(path: &str, snap: &Snapshot) -> Option<String> {
    let norm = |p: &str| p.trim_start_matches("./").to_lowercase().replace('_', "-");
    let want = norm(path);
    let same: Vec<&str> = snap
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| norm(p) == want)
        .collect();
    if let [one] = same.as_slice() {
        return Some(one.to_string());
    }
    let tail: Vec<&str> = want.rsplit('/').take(2).collect();
    if tail.len() < 2 {
        return None;
    }
    let suffix = format!("/{}/{}", tail[1], tail[0]);
    let ends: Vec<&str> = snap
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| norm(&format!("/{p}")).ends_with(&suffix))
        .collect();
    match ends.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// `answer` with each path the workspace lacks replaced by the one file it nearly names (see
/// [`nearest_path`]); other paths are left as they are (and marked unverified where shown).
pub fn mend_paths(answer: &str, snap: &Snapshot) -> String {
    let mut out = answer.to_string();
    for p in unknown_paths(answer, snap) {
        if let Some(real) = nearest_path(&p, snap) {
            out = out.replace(&p, &real);
        }
    }
    out
}

/// Names the answer places in a file of the workspace ("`gcd` in src/lib.rs:210", "`gcd`
/// (src/lib.rs:210)", "`gcd` at `src/lib.rs`") that the file does not hold as a whole word: a
/// small model joins a real path to a name it made up.
pub fn misplaced_names(answer: &str, snap: &Snapshot) -> Vec<Misplaced> {
    let mut out: Vec<Misplaced> = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let span = after[..close].trim().trim_end_matches("()");
        rest = &after[close + 1..];
        let name = span.rsplit("::").next().unwrap_or(span);
        let name = name.rsplit('.').next().unwrap_or(name);
        let identifier = !name.is_empty()
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !identifier {
            continue;
        }
        let tail = rest.trim_start();
        let Some(tail) = ["defined in ", "in ", "at ", "from ", "("]
            .iter()
            .find_map(|p| tail.strip_prefix(p))
        else {
            continue;
        };
        let tail = tail.trim_start().trim_start_matches('`');
        let end = tail
            .bytes()
            .position(|b| !is_path_byte(b))
            .unwrap_or(tail.len());
        let path = tail[..end].trim_end_matches('.');
        // `path:line`: the digits after the colon.
        let line = tail[end..]
            .strip_prefix(':')
            .map(|l| {
                l.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|l| l.parse().ok());
        let Some(file) = snap.get(path) else { continue };
        if !holds_word(&file.text, name) && !out.iter().any(|m| m.name == name && m.path == path) {
            out.push(Misplaced {
                name: name.to_string(),
                path: path.to_string(),
                line,
            });
        }
    }
    out
}

/// A name an answer places in a file that does not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    pub name: String,
    pub path: String,
    /// The line the answer cites with the path, if any.
    pub line: Option<u32>,
}

/// Whether `text` holds `word` with no letter, digit or `_` on either side.
fn holds_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let part = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
    };
    memchr::memmem::find_iter(bytes, word.as_bytes())
        .any(|i| (i == 0 || !part(i - 1)) && !part(i + word.len()))
}

/// Paths the answer names (with or without a line) that match no file of the workspace, not
/// even as the end of a longer path (`lib.rs` for `src/lib.rs` is fine). A bare path counts when
/// it has a directory and a file extension (`src/net.rs`), so prose is not taken for paths.
pub fn unknown_paths(answer: &str, snap: &Snapshot) -> Vec<String> {
    let mut named: Vec<String> = find(answer).into_iter().map(|(p, _)| p).collect();
    for token in answer.split(|c: char| !(c.is_ascii() && is_path_byte(c as u8))) {
        let token = token.trim_start_matches("./").trim_end_matches('.');
        let ext = token.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let looks_like_file = token.contains('/')
            && !token.starts_with("//")
            && (1..=5).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric());
        if looks_like_file && !named.iter().any(|n| n == token) {
            named.push(token.to_string());
        }
    }
    named
        .into_iter()
        .filter(|p| {
            snap.get(p).is_none()
                && !snap.files.iter().any(|f| {
                    f.path.len() > p.len()
                        && f.path.ends_with(p.as_str())
                        && f.path.as_bytes()[f.path.len() - p.len() - 1] == b'/'
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::RootSpec;
    use expect_test::{Expect, expect};

    #[test]
    fn finds_path_line_mentions() {
        let found = find(
            "See `src/b.rs:1` and (src/a.rs:12), README.md:3. Not a time 10:30 or http://x:80.",
        );
        assert_eq!(
            found,
            vec![
                ("src/b.rs".to_string(), 1),
                ("src/a.rs".to_string(), 12),
                ("README.md".to_string(), 3),
            ]
        );
    }

    /// One line per citation: verified or the reason, and the quote it carried.
    fn check_answer(answer: &str, expect: Expect) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.rs"),
            "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    let x = alpha();\n}\n",
        )
        .unwrap();
        let snap = crate::workspace::walk_roots(
            &[RootSpec {
                path: dir.path().to_path_buf(),
                read_only: false,
            }],
            &Default::default(),
        )
        .unwrap();
        let out: Vec<String> = check(answer, &snap)
            .iter()
            .map(|c| {
                format!(
                    "{}:{} {} {}",
                    c.path,
                    c.line,
                    c.snippet
                        .as_deref()
                        .map_or("-".into(), |s| format!("`{s}`")),
                    c.reason.as_deref().unwrap_or("verified")
                )
            })
            .collect();
        expect.assert_eq(&out.join("\n"));
    }

    #[test]
    fn quoted_code_must_be_at_the_cited_line() {
        check_answer(
            "- `a.rs:6`: `let x = alpha();` calls it\n\
             - a.rs:1 defines `fn alpha() -> u32` (returns `42`)\n\
             - a.rs:2 returns `43`\n\
             - a.rs:3 holds `let   x = alpha();`\n\
             - a.rs:7 quotes `x = alpha` one line off\n\
             - a.rs:9 is past the end; nowhere.rs:1 does not exist\n\
             - a.rs:5 (see `a.rs:6`)",
            expect![[r#"
                a.rs:6 `let x = alpha();` verified
                a.rs:1 `fn alpha() -> u32` verified
                a.rs:2 `43` the quoted code is not at that line
                a.rs:3 `let   x = alpha();` the quoted code is not at that line (it is at line 6)
                a.rs:7 `x = alpha` verified
                a.rs:9 - the file has 7 lines
                nowhere.rs:1 - no such file in the workspace
                a.rs:5 - verified"#]],
        );
    }

    /// A snapshot of `(path, text)` files.
    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        use crate::workspace::{IndexStats, SourceFile};
        Snapshot {
            root: "/w".into(),
            files: files
                .iter()
                .map(|(p, t)| SourceFile {
                    path: p.to_string(),
                    text: std::sync::Arc::new(t.to_string()),
                })
                .collect(),
            stats: IndexStats::default(),
        }
    }

    #[test]
    fn unknown_paths_are_the_ones_no_file_has() {
        let snap = snapshot(&[
            ("src/lib.rs", "x\n"),
            ("src/net/tcp.rs", "x\n"),
            ("README.md", "x\n"),
        ]);
        assert_eq!(
            unknown_paths(
                "It is in src/net.rs:12 and lib.rs:1, tcp.rs, net/tcp.rs:3, README.md and \
                 src/server.rs; see https://example.com/a.html or 1.5 s and e.g. foo.bar.",
                &snap
            ),
            ["src/net.rs", "src/server.rs"]
        );
    }

    #[test]
    fn near_miss_paths_are_mended() {
        let snap = snapshot(&[
            ("regex-syntax-0.8.12/src/ast/visitor.rs", "x\n"),
            ("a/src/lib.rs", "x\n"),
            ("b/src/lib.rs", "x\n"),
        ]);
        // Recorded from the 1.5B model at f4d4b25 (aggregate-1m-0), given again after it was
        // sent back once.
        assert_eq!(
            mend_paths(
                "74 match, e.g. regex_syntax-0.8.12/src/ast/visitor.rs:118: pub fn visit",
                &snap
            ),
            "74 match, e.g. regex-syntax-0.8.12/src/ast/visitor.rs:118: pub fn visit"
        );
        assert_eq!(
            nearest_path("x/ast/visitor.rs", &snap).as_deref(),
            Some("regex-syntax-0.8.12/src/ast/visitor.rs")
        );
        // Two files end with src/lib.rs: no guess.
        assert_eq!(nearest_path("c/src/lib.rs", &snap), None);
        assert_eq!(mend_paths("see src/net.rs:12", &snap), "see src/net.rs:12");
    }

    /// A name the answer places in a real file that does not hold it: a made-up function joined
    /// to a real path (recorded from the 1.5B model: "`gcd` in rayon-core-1.13.0/src/lib.rs:210").
    #[test]
    fn names_placed_in_files_that_do_not_hold_them() {
        let snap = snapshot(&[
            ("src/fmt.rs", "pub fn pass_35(a: u64) -> u64 { a }\n"),
            ("src/lib.rs", "pub mod fmt;\nfn gcd_of() {}\n"),
        ]);
        let found = |answer: &str| {
            misplaced_names(answer, &snap)
                .into_iter()
                .map(|m| {
                    format!(
                        "{} {}{}",
                        m.name,
                        m.path,
                        m.line.map_or(String::new(), |l| format!(":{l}"))
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found("`gcd` in src/lib.rs:210 computes the greatest common divisor."),
            ["gcd src/lib.rs:210"]
        );
        assert!(found("`pass_35` in src/fmt.rs:1").is_empty());
        assert!(found("`fmt::pass_35()` (`src/fmt.rs:1`)").is_empty());
        assert_eq!(found("`pass_35` at `src/lib.rs`."), ["pass_35 src/lib.rs"]);
        // No path after the name, or a path the workspace lacks (another check's), or prose.
        assert!(found("`gcd` computes it; see src/lib.rs").is_empty());
        assert!(found("`gcd` in src/gcd.rs:3").is_empty());
        assert!(found("`u64` values in the `src/lib.rs` module").is_empty());
    }
}
