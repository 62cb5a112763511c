//! Positions and edits: LSP counts columns in UTF-16 code units, the core works in bytes.

use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent};

/// The byte offset of `pos` in `text`, clamped to the end of its line (and of the text).
pub fn offset_of(text: &str, pos: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let mut units = 0u32;
    for (i, c) in text[line_start..line_end].char_indices() {
        if units >= pos.character {
            return line_start + i;
        }
        units += c.len_utf16() as u32;
    }
    line_end
}

/// The position of byte `offset` in `text` (the inverse of [`offset_of`]).
pub fn position_of(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character = text[line_start..offset]
        .chars()
        .map(|c| c.len_utf16() as u32)
        .sum();
    Position { line, character }
}

/// Applies one `didChange` content change (a full replacement, or a range edit) to `text`.
pub fn apply_change(text: &mut String, change: &TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text.clone(),
        Some(Range { start, end }) => {
            let a = offset_of(text, start);
            let b = offset_of(text, end).max(a);
            text.replace_range(a..b, &change.text);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifier under (or just before) the cursor.
pub fn identifier_at(text: &str, pos: Position) -> Option<&str> {
    let at = offset_of(text, pos);
    let start = text[..at]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident(c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = text[at..]
        .char_indices()
        .find(|&(_, c)| !is_ident(c))
        .map_or(text.len(), |(i, _)| at + i);
    let word = &text[start..end];
    (!word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit())).then_some(word)
}

/// Whole-word occurrences of `word` in `text`.
pub fn count_word(finder: &memchr::memmem::Finder<'_>, text: &str) -> usize {
    let bytes = text.as_bytes();
    let n = finder.needle().len();
    let boundary = |b: Option<&u8>| b.is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'));
    finder
        .find_iter(bytes)
        .filter(|&i| {
            boundary(i.checked_sub(1).and_then(|j| bytes.get(j))) && boundary(bytes.get(i + n))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_offsets_are_inverse() {
        let text = "ab\né🎉x\n";
        for offset in [0, 1, 3, 5, 9, 10, text.len()] {
            assert_eq!(
                offset_of(text, position_of(text, offset)),
                offset,
                "{offset}"
            );
        }
        assert_eq!(
            position_of(text, 9),
            Position {
                line: 1,
                character: 3
            }
        );
    }

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn offsets_count_utf16_units() {
        let text = "ab\né😀x\n";
        assert_eq!(offset_of(text, pos(0, 1)), 1);
        assert_eq!(offset_of(text, pos(1, 1)), 5); // after é (2 bytes)
        assert_eq!(offset_of(text, pos(1, 3)), 9); // after 😀 (2 units, 4 bytes)
        assert_eq!(offset_of(text, pos(1, 99)), 10);
        assert_eq!(offset_of(text, pos(9, 0)), text.len());
    }

    #[test]
    fn incremental_and_full_changes() {
        let mut text = "fn a() {}\n".to_string();
        apply_change(
            &mut text,
            &TextDocumentContentChangeEvent {
                range: Some(Range {
                    start: pos(0, 3),
                    end: pos(0, 4),
                }),
                range_length: None,
                text: "b".into(),
            },
        );
        assert_eq!(text, "fn b() {}\n");
        apply_change(
            &mut text,
            &TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: "x".into(),
            },
        );
        assert_eq!(text, "x");
    }

    #[test]
    fn identifiers_and_words() {
        let text = "let foo_bar = baz(1);";
        assert_eq!(identifier_at(text, pos(0, 5)), Some("foo_bar"));
        assert_eq!(identifier_at(text, pos(0, 11)), Some("foo_bar"));
        assert_eq!(identifier_at(text, pos(0, 12)), None);
        let f = memchr::memmem::Finder::new("foo");
        assert_eq!(count_word(&f, "foo foobar _foo foo(x) afoo foo"), 3);
    }
}
