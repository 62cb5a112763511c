//! Where a source file's comments and string literals are, found by a small lexer per family
//! of languages: a call written in a block comment (a doc test in `/*! ... */`) or in a string
//! is not a call, and a line-by-line look cannot tell (the `/*` is lines above).

use std::ops::Range;

/// How a family of languages writes comments and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Syntax {
    /// `//` and `/* */` comments.
    slashes: bool,
    /// Block comments nest (Rust).
    nested: bool,
    /// `#` starts a comment (Python, Ruby, shell, PHP); `#[` / `#!` in Rust does not.
    hash: bool,
    /// `'...'` is a string or char literal; off where `'` is also a lifetime (Rust).
    single_quoted: bool,
    /// `` `...` `` is a string (JavaScript templates, Go raw strings).
    backtick: bool,
    /// `"""` and `'''` strings (Python).
    triple: bool,
    /// `r"..."` / `r#"..."#` raw strings and `'a'` chars beside `'a` lifetimes (Rust).
    rust: bool,
    /// A `"..."` string may run over lines (Rust, Python triple quotes aside).
    multiline: bool,
}

const C_LIKE: Syntax = Syntax {
    slashes: true,
    nested: false,
    hash: false,
    single_quoted: true,
    backtick: false,
    triple: false,
    rust: false,
    multiline: false,
};

/// The syntax of a file by its extension; `None` for files the lexer does not know (their
/// hits are judged line by line).
pub(super) fn syntax_of(path: &str) -> Option<Syntax> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "rs" => Syntax {
            nested: true,
            single_quoted: false,
            rust: true,
            multiline: true,
            ..C_LIKE
        },
        "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "java" | "cs" | "kt" | "kts"
        | "scala" | "swift" => C_LIKE,
        "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" | "go" => Syntax {
            backtick: true,
            ..C_LIKE
        },
        "php" => Syntax {
            hash: true,
            ..C_LIKE
        },
        "py" | "pyi" => Syntax {
            slashes: false,
            hash: true,
            triple: true,
            ..C_LIKE
        },
        "rb" | "sh" | "bash" => Syntax {
            slashes: false,
            hash: true,
            ..C_LIKE
        },
        _ => return None,
    })
}

/// The byte ranges of `text` that are comments or string literals, in order.
pub(super) fn non_code(text: &[u8], syn: Syntax) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    let at = |i: usize, s: &[u8]| text.get(i..i + s.len()) == Some(s);
    while i < n {
        let c = text[i];
        let start = i;
        if (syn.slashes && at(i, b"//")) || (syn.hash && c == b'#' && !attribute(text, i, syn)) {
            i = memchr::memchr(b'\n', &text[i..]).map_or(n, |e| i + e);
        } else if syn.slashes && at(i, b"/*") {
            i = block_comment_end(text, i + 2, syn.nested);
        } else if syn.triple && (at(i, b"\"\"\"") || at(i, b"'''")) {
            let close = &text[i..i + 3];
            i = find_from(text, i + 3, close).map_or(n, |e| e + 3);
        } else if syn.rust
            && let Some(end) = rust_raw_string(text, i)
        {
            i = end;
        } else if c == b'"' {
            i = quoted_end(text, i + 1, b'"', syn.multiline);
        } else if c == b'\'' && syn.single_quoted {
            i = quoted_end(text, i + 1, b'\'', syn.multiline);
        } else if c == b'\'' && syn.rust {
            match rust_char_end(text, i) {
                Some(end) => i = end,
                None => {
                    i += 1;
                    continue;
                }
            }
        } else if c == b'`' && syn.backtick {
            i = quoted_end(text, i + 1, b'`', true);
        } else {
            // Skip a whole word: `r` in `for` must not start a raw string.
            i += 1;
            if c.is_ascii_alphanumeric() || c == b'_' {
                while i < n && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                    i += 1;
                }
            }
            continue;
        }
        out.push(start..i.min(n));
    }
    out
}

/// Whether `offset` falls in one of `spans` (sorted, disjoint).
pub(super) fn inside(spans: &[Range<usize>], offset: usize) -> bool {
    let k = spans.partition_point(|s| s.end <= offset);
    spans.get(k).is_some_and(|s| s.start <= offset)
}

/// PHP 8's `#[...]` is an attribute, not a comment.
fn attribute(text: &[u8], i: usize, syn: Syntax) -> bool {
    syn.slashes && text.get(i + 1) == Some(&b'[')
}

fn find_from(text: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(text.get(from..)?, needle).map(|e| from + e)
}

/// The end of a block comment whose body starts at `i`.
fn block_comment_end(text: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 1;
    while i < text.len() {
        if text[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 || !nested {
                return i;
            }
        } else if nested && text[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    text.len()
}

/// The end of a string whose body starts at `i`, closed by `quote`; backslash escapes; ends at
/// the line's end unless `multiline` (an unclosed quote must not hide the rest of the file).
fn quoted_end(text: &[u8], mut i: usize, quote: u8, multiline: bool) -> usize {
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'\n' if !multiline => return i,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// `r"..."`, `r#"..."#`, `br"..."` at `i` (not inside a longer word): the end of the string.
fn rust_raw_string(text: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (text[i - 1].is_ascii_alphanumeric() || text[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if text.get(j) == Some(&b'b') || text.get(j) == Some(&b'c') {
        j += 1;
    }
    if text.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = text[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if text.get(j) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    Some(find_from(text, j + 1, &close).map_or(text.len(), |e| e + close.len()))
}

/// A Rust char literal at `i` (`'a'`, `'\n'`, `'\u{1F600}'`, `'é'`): its end; `None` for a
/// lifetime or label (`'a`, `'static`).
fn rust_char_end(text: &[u8], i: usize) -> Option<usize> {
    let rest = text.get(i + 1..)?;
    if rest.first() == Some(&b'\\') {
        let close = rest.iter().skip(1).take(12).position(|&c| c == b'\'')?;
        return Some(i + 1 + 1 + close + 1);
    }
    let len = std::str::from_utf8(&rest[..rest.len().min(4)])
        .or_else(|e| std::str::from_utf8(&rest[..e.valid_up_to()]))
        .ok()
        .and_then(|s| s.chars().next())
        .map(char::len_utf8)?;
    (rest.get(len) == Some(&b'\'')).then_some(i + 1 + len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text outside comments and strings, with `_` for what is inside them.
    fn code_only(text: &str, path: &str) -> String {
        let spans = non_code(text.as_bytes(), syntax_of(path).unwrap());
        text.char_indices()
            .map(|(i, c)| {
                if c != '\n' && inside(&spans, i) {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn rust_comments_strings_chars_and_lifetimes() {
        let src = r##"/*! ```compile_fail
let mid = partition(v); /* nested */ still = comment(1);
``` */
fn f<'a>(x: &'a str) -> char { let c = '"'; g(x) } // h(1)
let s = "call(1) \" still"; let r = r#"raw "call(2)""#; k('\n', 'é', b'x');
for_r(1); br"x(3)"; 'outer: loop { m(2) }
"##;
        expect_test::expect![[r#"
            ___________________
            ________________________________________________________
            ______
            fn f<'a>(x: &'a str) -> char { let c = ___; g(x) } _______
            let s = __________________; let r = __________________; k(____, ___, b___);
            for_r(1); ________; 'outer: loop { m(2) }
        "#]]
        .assert_eq(&code_only(src, "a.rs"));
    }

    #[test]
    fn python_javascript_and_c() {
        let py = "x = f(1)  # g(2)\ns = '''h(3)\ni(4)''' + \"j(5)\"\nk(6)\n";
        expect_test::expect![[r#"
            x = f(1)  ______
            s = _______
            _______ + ______
            k(6)
        "#]]
        .assert_eq(&code_only(py, "a.py"));
        let js = "let t = `a(${b})`; c('d(1)'); /* e(2) */ f(3) // g(4)\n";
        expect_test::expect![[r#"
            let t = _________; c(______); __________ f(3) _______
        "#]]
        .assert_eq(&code_only(js, "a.ts"));
        // An unclosed quote ends at the line's end.
        let c = "char *s = \"oops;\nint x = f(1);\n";
        expect_test::expect![[r#"
            char *s = ______
            int x = f(1);
        "#]]
        .assert_eq(&code_only(c, "a.c"));
        assert_eq!(syntax_of("Makefile"), None);
        assert_eq!(syntax_of("README.md"), None);
    }
}
