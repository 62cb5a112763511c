//! The tree-sitter edit between two versions of a file: the editor's edit when it agrees with
//! both texts, else the span between their common prefix and suffix.

use super::TextEdit;
use tree_sitter::{InputEdit, Point};

/// The tree-sitter edit turning `old` into `new`: `edit` when it is consistent with both texts,
/// else the span between their common prefix and suffix. `None` when the texts are equal.
pub(super) fn input_edit(old: &str, new: &str, edit: Option<TextEdit>) -> Option<InputEdit> {
    let edit = edit
        .filter(|e| edit_is_consistent(old, new, e))
        .or_else(|| diff(old, new))?;
    let start_position = point_at(old, 0, Point::new(0, 0), edit.start_byte);
    Some(InputEdit {
        start_byte: edit.start_byte,
        old_end_byte: edit.old_end_byte,
        new_end_byte: edit.new_end_byte,
        start_position,
        old_end_position: point_at(old, edit.start_byte, start_position, edit.old_end_byte),
        new_end_position: point_at(new, edit.start_byte, start_position, edit.new_end_byte),
    })
}

fn edit_is_consistent(old: &str, new: &str, e: &TextEdit) -> bool {
    e.start_byte <= e.old_end_byte
        && e.start_byte <= e.new_end_byte
        && e.old_end_byte <= old.len()
        && e.new_end_byte <= new.len()
        && old.len() - e.old_end_byte == new.len() - e.new_end_byte
        && old.is_char_boundary(e.start_byte)
        && old.is_char_boundary(e.old_end_byte)
        && new.is_char_boundary(e.new_end_byte)
        && old.as_bytes()[..e.start_byte] == new.as_bytes()[..e.start_byte]
        && old.as_bytes()[e.old_end_byte..] == new.as_bytes()[e.new_end_byte..]
}

/// The changed span by common prefix and suffix, on char boundaries.
pub(super) fn diff(old: &str, new: &str) -> Option<TextEdit> {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut prefix = common_prefix(a, b);
    if prefix == a.len() && prefix == b.len() {
        return None;
    }
    while !old.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = a.len().min(b.len()) - prefix;
    let mut suffix = common_suffix(&a[prefix..], &b[prefix..]).min(max_suffix);
    while !old.is_char_boundary(a.len() - suffix) || !new.is_char_boundary(b.len() - suffix) {
        suffix -= 1;
    }
    Some(TextEdit {
        start_byte: prefix,
        old_end_byte: a.len() - suffix,
        new_end_byte: b.len() - suffix,
    })
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[la - i - BLOCK..la - i] == b[lb - i - BLOCK..lb - i] {
        i += BLOCK;
    }
    while i < n && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

/// The point (row, byte column) of `offset`, counting from `from` at `at`.
pub(super) fn point_at(text: &str, from: usize, at: Point, offset: usize) -> Point {
    let span = &text.as_bytes()[from..offset];
    let newlines = span.iter().filter(|&&b| b == b'\n').count();
    if newlines == 0 {
        Point::new(at.row, at.column + span.len())
    } else {
        let last = span.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        Point::new(at.row + newlines, span.len() - last - 1)
    }
}
