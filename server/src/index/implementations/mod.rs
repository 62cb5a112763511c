//! Which types implement or extend a trait, interface or class, read from the index's
//! definitions (and, where the index has it, the source of their headers):
//!
//! - Rust: `impl Name for Type` (the impl's `detail`, without path or generic arguments:
//!   `impl<T> fmt::Display for Foo<T>` counts for `Display`, type `Foo`); blanket impls over a
//!   bare type parameter (`impl<T: Debug> Name for T`, `for &T`) are left out. Traits whose
//!   supertraits include `Name` (`trait Sub: Name + Send`) extend it.
//! - Python: `class X(Name)`, `class X(mod.Name, Other, metaclass=M)`, `class X(Name[T])`.
//! - Java, C#, TypeScript, JavaScript, PHP: `class X extends Name`, `implements Name, Other`,
//!   interfaces extending it; C#'s `class X : Name, IOther`; generic arguments and namespaces
//!   are stripped (`extends Base<T>`, `implements \Ns\Name`, `: Sys.IName<T>`).
//! - C++: `class X : public Name`, `struct X : private ns::Name<T>, virtual Other`.
//! - Ruby: `class X < Name` (`< Mod::Name`).
//! - Go (structural, best effort): a struct or named type whose methods (those whose receiver is
//!   the type, in the same directory) include every method listed in interface `Name`'s body;
//!   methods of interfaces it embeds are not required. Interfaces embedding `Name` extend it.
//!
//! A type that implements `Name` twice (two `impl` blocks of the same trait) appears twice.

use super::{DefKind, Definition, Language};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One type implementing or extending the name asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Implementation {
    /// The implementing type (for a Rust impl, its type without path or generics).
    pub type_name: String,
    /// The kind of the definition that says so: `impl`, `class`, `struct`, `interface`, ...
    pub kind: DefKind,
    pub language: Language,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    /// The definition's signature line (`impl Display for Foo {`, `class Foo(Base):`).
    pub signature: String,
}

/// Bytes of a header read past its signature line (multi-line `extends`/`implements` lists).
const MAX_HEADER_BYTES: usize = 2000;

/// The definitions that implement or extend `name` (a bare name; a qualified one, `fmt::Display`
/// or `abc.Mapping`, is matched by its last segment), in the order given. `text(def)` is the
/// definition's source (`def.start_byte..def.end_byte` of its file) when it is known: with it,
/// headers spanning several lines and Go interface bodies are read; without it only the
/// signature line is.
pub fn find_implementations<'t>(
    defs: &[&Definition],
    name: &str,
    text: impl Fn(&Definition) -> Option<&'t str>,
) -> Vec<Implementation> {
    let name = last_segment(name.trim());
    if name.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Go: the methods of the interface(s) called `name`, and of every receiver type.
    let go_interfaces: Vec<Vec<String>> = defs
        .iter()
        .filter(|d| d.language == Language::Go && d.kind == DefKind::Interface && d.name == name)
        .map(|d| {
            let body = text(d).unwrap_or("");
            let (methods, _) = go_interface_body(body);
            if methods.is_empty() && body.is_empty() {
                // No source: the interface's methods as the index knows them (if any).
                defs.iter()
                    .filter(|m| {
                        m.language == Language::Go
                            && m.kind == DefKind::Method
                            && m.path == d.path
                            && m.parent.as_deref() == Some(name)
                    })
                    .map(|m| m.name.clone())
                    .collect()
            } else {
                methods
            }
        })
        .filter(|m| !m.is_empty())
        .collect();
    let mut go_methods: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    if !go_interfaces.is_empty() {
        for d in defs {
            if d.language == Language::Go
                && d.kind == DefKind::Method
                && let Some(parent) = d.parent.as_deref()
            {
                go_methods
                    .entry((dir(&d.path), parent))
                    .or_default()
                    .insert(d.name.as_str());
            }
        }
    }
    for d in defs {
        let found = match (d.language, d.kind) {
            (Language::Go, DefKind::Struct | DefKind::Type) => {
                let methods = go_methods.get(&(dir(&d.path), d.name.as_str()));
                methods.is_some_and(|have| {
                    go_interfaces
                        .iter()
                        .any(|want| want.iter().all(|m| have.contains(m.as_str())))
                })
            }
            (Language::Go, DefKind::Interface) => {
                d.name != name && go_interface_body(text(d).unwrap_or("")).1.contains(&name)
            }
            (Language::Rust, DefKind::Impl) => rust_impl_of(d, name),
            (Language::Rust, DefKind::Interface) => bases(d.language, &header(d, text(d)))
                .iter()
                .any(|b| b == name),
            (Language::Rust, _) => false,
            (_, DefKind::Class | DefKind::Struct | DefKind::Interface | DefKind::Enum) => {
                let header = header(d, text(d));
                bases(d.language, &header).iter().any(|b| b == name)
            }
            _ => false,
        };
        if found {
            out.push(Implementation {
                type_name: d.name.clone(),
                kind: d.kind,
                language: d.language,
                path: d.path.clone(),
                start_line: d.start_line,
                end_line: d.end_line,
                signature: d.signature.clone(),
            });
        }
    }
    out
}

/// `a/b/c.go` -> `a/b`.
fn dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The last segment of a qualified name: `fmt::Display`, `abc.Mapping`, `\Ns\Name`.
fn last_segment(s: &str) -> &str {
    s.rsplit([':', '.', '\\']).next().unwrap_or(s).trim()
}

/// A type reference as a bare name: no generic arguments, call arguments, path or namespace,
/// access specifiers or pointer/reference marks (`public ns::Base<T>` -> `Base`,
/// `mixin(A, B)` -> `mixin`, `&'a mut T` -> `T`).
fn bare_type(s: &str) -> String {
    const PREFIXES: [&str; 13] = [
        "public ",
        "private ",
        "protected ",
        "internal ",
        "virtual ",
        "dyn ",
        "impl ",
        "*const ",
        "*mut ",
        "mut ",
        "&",
        "?",
        "~",
    ];
    let mut s = s.trim();
    // Any order, any number: `virtual public Base`, `&'a mut T`.
    loop {
        let before = s;
        for p in PREFIXES {
            if let Some(rest) = s.strip_prefix(p) {
                s = rest.trim_start();
            }
        }
        if s.starts_with('\'') {
            // A lifetime: `'a mut T`.
            s = s
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest)
                .trim_start();
        }
        if s == before {
            break;
        }
    }
    let cut = s.find(['<', '(', '[', '{']).unwrap_or(s.len());
    let s = s[..cut].trim();
    last_segment(s).to_string()
}

/// Splits at commas (or `sep`) outside `<>`, `()`, `[]` and `{}`.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            c if c == sep && depth <= 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The header of a class-like definition: from its signature line to where its body opens
/// (`{`, Python's `:`, the end of a Ruby line), or the signature alone without the source.
fn header(d: &Definition, text: Option<&str>) -> String {
    let Some(text) = text else {
        return d.signature.clone();
    };
    // Start at the signature line (past decorators, attributes and annotations).
    let probe: String = d.signature.chars().take(40).collect();
    let from = if probe.is_empty() {
        0
    } else {
        text.find(&probe).unwrap_or(0)
    };
    let mut end = (from + MAX_HEADER_BYTES).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let rest = &text[from..end];
    let stop = match d.language {
        Language::Ruby => rest.find(['\n', ';']),
        Language::Python => {
            // The `:` that ends `class X(...)`, outside brackets.
            let mut depth = 0i32;
            rest.char_indices().find_map(|(i, c)| {
                match c {
                    '(' | '[' => depth += 1,
                    ')' | ']' => depth -= 1,
                    ':' if depth <= 0 => return Some(i),
                    _ => {}
                }
                None
            })
        }
        _ => rest.find(['{', ';']),
    };
    let header = &rest[..stop.unwrap_or(rest.len())];
    // One line: comments removed, whitespace collapsed.
    header
        .lines()
        .map(|l| {
            let l = l.split("//").next().unwrap_or(l);
            if d.language == Language::Python || d.language == Language::Ruby {
                l.split('#').next().unwrap_or(l)
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bare names of the types a class-like definition's header extends or implements.
pub fn bases(language: Language, header: &str) -> Vec<String> {
    let names: Vec<String> = match language {
        Language::Python => {
            let Some(open) = header.find('(') else {
                return Vec::new();
            };
            let inner = &header[open + 1..];
            let close = matching_close(inner).unwrap_or(inner.len());
            split_top(&inner[..close], ',')
                .into_iter()
                .filter(|b| !b.contains('=') && !b.starts_with('*'))
                .map(bare_type)
                .collect()
        }
        Language::Ruby => match header.split_once('<') {
            Some((_, base)) => vec![bare_type(base.split_whitespace().next().unwrap_or(""))],
            None => Vec::new(),
        },
        Language::Cpp | Language::C => match colon_list(header) {
            Some(list) => split_top(list, ',').into_iter().map(bare_type).collect(),
            None => Vec::new(),
        },
        Language::CSharp => {
            let mut out = keyword_lists(header);
            if let Some(list) = colon_list(header) {
                let list = cut_at_word(list, "where");
                out.extend(split_top(list, ',').into_iter().map(bare_type));
            }
            out
        }
        Language::Rust => match colon_list(header) {
            // `trait Sub<T>: Super<T> + Send where ...`
            Some(list) => split_top(cut_at_word(list, "where"), '+')
                .into_iter()
                .map(bare_type)
                .collect(),
            None => Vec::new(),
        },
        Language::Java
        | Language::Javascript
        | Language::Typescript
        | Language::Tsx
        | Language::Php => keyword_lists(header),
        _ => Vec::new(),
    };
    names.into_iter().filter(|n| !n.is_empty()).collect()
}

/// The names after `extends` and `implements` (up to `permits`, `where` or the other keyword).
fn keyword_lists(header: &str) -> Vec<String> {
    let words: Vec<(usize, &str)> = word_positions(header);
    let mut out = Vec::new();
    for (i, &(at, w)) in words.iter().enumerate() {
        if w != "extends" && w != "implements" {
            continue;
        }
        let start = at + w.len();
        let end = words[i + 1..]
            .iter()
            .find(|(_, w)| matches!(*w, "extends" | "implements" | "permits" | "where" | "with"))
            .map_or(header.len(), |(j, _)| *j);
        if end <= start {
            continue;
        }
        out.extend(
            split_top(&header[start..end], ',')
                .into_iter()
                .map(bare_type),
        );
    }
    out
}

/// Byte offsets of the words of `s` that are outside brackets.
fn word_positions(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        let word = c.is_alphanumeric() || c == '_';
        if word {
            start.get_or_insert(i);
            continue;
        }
        if let Some(st) = start.take()
            && depth <= 0
        {
            out.push((st, &s[st..i]));
        }
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// `s` up to the word `word` (outside brackets), or all of it.
fn cut_at_word<'a>(s: &'a str, word: &str) -> &'a str {
    word_positions(s)
        .into_iter()
        .find(|(_, w)| *w == word)
        .map_or(s, |(i, _)| &s[..i])
}

/// What follows the first `:` that is outside brackets and not part of `::`.
fn colon_list(header: &str) -> Option<&str> {
    let bytes = header.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth -= 1,
            b':' if bytes.get(i + 1) == Some(&b':') => {
                i += 2;
                continue;
            }
            b':' if depth <= 0 => return Some(&header[i + 1..]),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the `)` closing an already opened `(`.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 1i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether a Rust `impl` block implements trait `name` for a concrete type.
fn rust_impl_of(d: &Definition, name: &str) -> bool {
    let Some(detail) = d.detail.as_deref() else {
        return false;
    };
    if bare_type(detail) != name {
        return false;
    }
    // `impl<T: Bound> Name for T`: a blanket impl over a type parameter.
    let ty = bare_type(&d.name);
    !impl_type_params(&d.signature).contains(&ty)
}

/// The type parameters of `impl<T: A, 'a, const N: usize, U>`: `T`, `N`, `U`.
fn impl_type_params(signature: &str) -> Vec<String> {
    let Some(rest) = signature.trim_start().strip_prefix("impl") else {
        return Vec::new();
    };
    let Some(rest) = rest.trim_start().strip_prefix('<') else {
        return Vec::new();
    };
    // Up to the matching `>`.
    let mut depth = 1i32;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    split_top(&rest[..end], ',')
        .into_iter()
        .filter(|p| !p.starts_with('\''))
        .map(|p| {
            let p = p.strip_prefix("const ").unwrap_or(p);
            p.split([':', '=']).next().unwrap_or(p).trim().to_string()
        })
        .collect()
}

/// The method names listed in a Go interface's source, and the interfaces it embeds (bare
/// names).
fn go_interface_body(text: &str) -> (Vec<String>, Vec<&str>) {
    let Some(open) = text.find("interface") else {
        return (Vec::new(), Vec::new());
    };
    let Some(brace) = text[open..].find('{') else {
        return (Vec::new(), Vec::new());
    };
    let body = &text[open + brace + 1..];
    let body = &body[..body.rfind('}').unwrap_or(body.len())];
    let mut methods = Vec::new();
    let mut embeds = Vec::new();
    for line in body.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let ident_end = line
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(line.len());
        let ident = &line[..ident_end];
        if ident.is_empty() {
            continue;
        }
        if line[ident_end..].trim_start().starts_with('(') && !ident.contains('.') {
            methods.push(ident.to_string());
        } else if ident_end == line.len() {
            embeds.push(last_segment(ident));
        }
    }
    (methods, embeds)
}

#[cfg(test)]
mod tests;
