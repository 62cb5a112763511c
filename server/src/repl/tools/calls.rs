//! Call sites found by text: the grep pattern of a call of a name, and the lines that only
//! define or mention it (a keyword definition, a comment, a string), which `calls` leaves out.

use super::non_code;
use crate::index::grep::{GrepMatch, Haystack};
use std::ops::Range;

/// `name` as a whole word.
fn word(name: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut p = String::new();
    if name.starts_with(is_word) {
        p.push_str(r"\b");
    }
    p.push_str(&regex_syntax::escape(name));
    if name.ends_with(is_word) {
        p.push_str(r"\b");
    }
    p
}

/// The grep pattern of a call of `name`: the whole word, then optional generic arguments
/// (`name::<T>`), then `(` (spaces allowed between). `name!(` (a Rust macro) is not a call.
pub(super) fn call_pattern(name: &str) -> String {
    format!(r"{}(?:\s*::\s*<[^()]*>)?\s*\(", word(name))
}

/// A line that defines `name` with a keyword: `fn name(`, `def name(`, `async def`, `function
/// name(`, `function* name(`, `func name(`, Go's `func (r *T) name(`, `fun name(`, `sub name`,
/// `proc name`, Ruby's `def self.name`, C's `#define name(`. (Definitions without a keyword,
/// such as Java or C++ methods, are found from the index by `callers()`.)
pub(super) fn definition_regex(name: &str) -> Option<regex_automata::meta::Regex> {
    let pattern = format!(
        r"(?:\b(?:fn|def|fun|func|function\*?|sub|proc)|#\s*define)\s+(?:\([^)]*\)\s*)?(?:\w+\.)?{}",
        word(name)
    );
    regex_automata::meta::Regex::new(&pattern).ok()
}

/// Whether the first mention of `name` on `line` is in a comment: after `//`, or on a line
/// that is a comment (`#` not opening a Rust attribute, `*` or `/*` of a block comment, `--`).
/// A call shown in a doc comment is not a call.
pub(super) fn commented(line: &str, name: &str) -> bool {
    let before = line.find(name).map_or(line, |i| &line[..i]);
    let head = before.trim_start();
    before.contains("//")
        || head.starts_with("/*")
        || head.starts_with('*')
        || head.starts_with("--")
        || (head.starts_with('#') && !head.starts_with("#[") && !head.starts_with("#!["))
}

/// Whether `line` defines `name` with a keyword (see [`definition_regex`]).
#[cfg(test)]
pub(super) fn defines(line: &str, name: &str) -> bool {
    definition_regex(name).is_some_and(|re| re.is_match(line))
}

/// Keeps the grep hits of a call that are in code: some call on the line starts outside the
/// file's comments and strings (known languages), or the line is not a comment (others). One
/// lexing of each file with a hit.
pub(super) struct InCode<'n> {
    name: &'n str,
    call: Option<regex_automata::meta::Regex>,
    /// The file last lexed: its index, line starts and non-code spans.
    file: Option<(usize, Vec<usize>, Vec<Range<usize>>)>,
}

impl<'n> InCode<'n> {
    pub(super) fn new(name: &'n str) -> Self {
        InCode {
            name,
            call: regex_automata::meta::Regex::new(&call_pattern(name)).ok(),
            file: None,
        }
    }

    pub(super) fn keeps<H: Haystack + ?Sized>(&mut self, hay: &H, m: &GrepMatch) -> bool {
        let (Some(syn), Some(call)) = (non_code::syntax_of(hay.path(m.file)), &self.call) else {
            return !commented(&m.text, self.name);
        };
        let text = hay.text(m.file);
        if self.file.as_ref().is_none_or(|(f, _, _)| *f != m.file) {
            self.file = Some((m.file, line_starts(text), non_code::non_code(text, syn)));
        }
        let Some((_, starts, spans)) = &self.file else {
            return true;
        };
        let Some(&start) = starts.get((m.line as usize).saturating_sub(1)) else {
            return true;
        };
        let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |e| start + e);
        call.find_iter(&text[start..end])
            .any(|hit| !non_code::inside(spans, start + hit.start()))
    }
}

/// The byte offset of each line's start.
fn line_starts(text: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', text).map(|i| i + 1))
        .collect()
}
