//! Names and signatures as the index keeps them: whitespace collapsed, capped, generic
//! arguments and paths stripped where a name is a type.

/// Longest signature and name kept, in characters.
pub(crate) const TEXT_CAP: usize = 200;

/// Whitespace runs collapsed to one space, capped at [`TEXT_CAP`] characters.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(TEXT_CAP));
    let mut chars = 0;
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= TEXT_CAP {
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// The name of an `impl` block: its type without generic arguments or path (`foo::Bar<T>` ->
/// `Bar`).
pub(super) fn impl_name(ty: &str) -> String {
    let base = strip_generics(ty);
    let base = base.rsplit("::").next().unwrap_or(base);
    clean(base)
}

/// `Foo<T>` -> `Foo`; text starting with `<` is kept whole.
pub(super) fn strip_generics(s: &str) -> &str {
    match s.find('<') {
        Some(i) if i > 0 => s[..i].trim_end(),
        _ => s,
    }
}

/// Splits `a::B<T>::c` at its last `::` outside template brackets: `("a::B<T>", "c")`.
pub(super) fn split_qualified(name: &str) -> Option<(&str, &str)> {
    let bytes = name.as_bytes();
    let mut depth = 0u32;
    let mut last = None;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if bytes[i + 1] == b':' && depth == 0 => {
                last = Some(i);
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let i = last?;
    let (scope, rest) = (name[..i].trim(), name[i + 2..].trim());
    (!scope.is_empty() && !rest.is_empty()).then_some((scope, rest))
}

/// The line holding the definition's name, from no earlier than the definition's start, trimmed
/// and capped. Looks at most a few hundred bytes around the name (minified files have huge lines).
pub(super) fn signature(text: &str, def_start: usize, name_start: usize) -> String {
    const WINDOW: usize = 4 * TEXT_CAP;
    let mut name_start = name_start.min(text.len());
    while !text.is_char_boundary(name_start) {
        name_start -= 1;
    }
    let mut lo = name_start
        .saturating_sub(WINDOW)
        .max(def_start.min(name_start));
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    let mut hi = (name_start + WINDOW).min(text.len());
    while !text.is_char_boundary(hi) {
        hi -= 1;
    }
    let before = &text[lo..name_start];
    let start = before.rfind('\n').map_or(lo, |i| lo + i + 1);
    let after = &text[name_start..hi];
    let end = after.find('\n').map_or(hi, |i| name_start + i);
    // A parameter list broken over lines (rustfmt, black, prettier) runs to the line that
    // closes it, where the return type is: `pub fn f(\n    a: u8,\n) -> Result<u8> {`.
    let (end, cap) = match header_end(text, name_start, end, hi) {
        Some(e) => (e, 2 * TEXT_CAP),
        None => (end, TEXT_CAP),
    };
    let line = collapse(text[start..end].trim());
    match line.char_indices().nth(cap) {
        Some((i, _)) => line[..i].trim_end().to_owned(),
        None => line,
    }
}

/// When the parentheses opened on the name's line (after the name) close on a later line: the
/// end of that line, within `hi`.
fn header_end(text: &str, name_start: usize, line_end: usize, hi: usize) -> Option<usize> {
    let mut depth = 0i32;
    for c in text[name_start..line_end].chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    if depth <= 0 {
        return None;
    }
    for (i, c) in text[line_end..hi].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            let from = line_end + i;
            return Some(text[from..hi].find('\n').map_or(hi, |e| from + e));
        }
    }
    None
}

/// Lines joined with single spaces, without the space a broken list leaves inside its
/// parentheses (`f( a: u8, )` is `f(a: u8)`).
fn collapse(header: &str) -> String {
    if !header.contains('\n') {
        return header.to_owned();
    }
    let joined = header.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace("( ", "(")
        .replace(", )", ")")
        .replace(" )", ")")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert_eq!(split_qualified("Foo::bar"), Some(("Foo", "bar")));
        assert_eq!(split_qualified("a::B<T>::c"), Some(("a::B<T>", "c")));
        assert_eq!(
            split_qualified("Foo<a::b>::operator<<"),
            Some(("Foo<a::b>", "operator<<"))
        );
        assert_eq!(split_qualified("bar"), None);
        assert_eq!(split_qualified("::bar"), None);
        assert_eq!(impl_name("fmt::Display"), "Display");
        assert_eq!(impl_name("Vec<T>"), "Vec");
        assert_eq!(impl_name("&'a mut  T"), "&'a mut T");
    }

    #[test]
    fn signatures_are_bounded() {
        let text = format!(
            "{}function f() {{}}{}",
            "x".repeat(10_000),
            "y".repeat(10_000)
        );
        let sig = signature(&text, 10_000, 10_009);
        assert!(sig.starts_with("function f()"), "{sig}");
        assert_eq!(sig.chars().count(), TEXT_CAP);
        assert_eq!(signature("@dec\ndef f():\n  pass\n", 0, 9), "def f():");
        assert_eq!(signature("é", 0, 1), "é");
    }

    #[test]
    fn broken_parameter_lists_keep_their_return_type() {
        let rust = "    pub fn parse_with(\n        &self,\n        pattern: &str,\n    ) -> Result<Hir, Error> {\n        todo!()\n    }\n";
        assert_eq!(
            signature(rust, 4, 11),
            "pub fn parse_with(&self, pattern: &str) -> Result<Hir, Error> {"
        );
        let py = "def run(\n    a,\n    b=1,\n) -> int:\n    return a\n";
        assert_eq!(signature(py, 0, 4), "def run(a, b=1) -> int:");
        // Balanced on its line: the line alone, as before.
        assert_eq!(
            signature("fn f(a: u8) -> u8 {\n    a\n}\n", 0, 3),
            "fn f(a: u8) -> u8 {"
        );
        // Never closed within reach: the line alone.
        assert_eq!(signature("fn f(a: u8,\n", 0, 3), "fn f(a: u8,");
    }
}
