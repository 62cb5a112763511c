//! `path:line` citations in an answer, checked against the snapshot the run saw.

use crate::workspace::Snapshot;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citation {
    pub path: String,
    pub line: u32,
    /// The file is in the snapshot and has this line.
    pub verified: bool,
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-' | b'+' | b'@')
}

/// Every distinct `path:line` mention, in order of appearance (a path must hold a `.` or `/`).
pub fn find(answer: &str) -> Vec<(String, u32)> {
    let bytes = answer.as_bytes();
    let mut out: Vec<(String, u32)> = Vec::new();
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
        let key = (path.to_string(), line);
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// The citations of `answer`, each marked verified when its file and line exist in `snap`.
pub fn check(answer: &str, snap: &Snapshot) -> Vec<Citation> {
    find(answer)
        .into_iter()
        .map(|(path, line)| {
            let verified = line >= 1
                && snap.get(&path).is_some_and(|f| {
                    let lines = f.text.lines().count().max(1);
                    line as usize <= lines
                });
            Citation {
                path,
                line,
                verified,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
