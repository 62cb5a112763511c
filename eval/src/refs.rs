//! Where a name occurs in Rust code, and what each occurrence is, from tree-sitter-rust: the
//! definitions of items, the references to them, fields, local bindings, macro names, paths into
//! other crates. The refactor tasks (`refactor.rs`) take their ground truth from this: for a name
//! with exactly one definition in a crate and no binding that could shadow it, every reference
//! occurrence refers to that item, and a field of the same name is another thing.
//!
//! Comments and string literals hold no identifier nodes, so they are never occurrences.

use std::collections::BTreeSet;
use tree_sitter::{Node, Parser};

/// What kind of item a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefKind {
    /// A free function (module level, or nested in a function body).
    Fn,
    /// A function in an inherent `impl Type { .. }`.
    Method,
    /// A function declared or defined in a trait, or in an `impl Trait for Type`.
    TraitFn,
    Struct,
    Enum,
    Union,
    TypeAlias,
    Trait,
    Const,
    Static,
    /// An associated const, type or function signature elsewhere (trait, impl).
    Assoc,
    Mod,
    Macro,
    Variant,
    /// A generic parameter (type or const).
    Generic,
    /// An item name written inside a macro's tokens (`fn NAME`, `struct NAME`, ...).
    InMacro,
}

/// What one occurrence of a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccKind {
    /// The name of a definition.
    Def(DefKind),
    /// A path or expression that names an item (a call, a type, an import, a re-export).
    Ref,
    /// `x.name(..)`: a method call.
    MethodCall,
    /// A struct field: declared, accessed (`x.name`), initialized (`name: v`), matched.
    Field,
    /// An identifier in a pattern (`let name`, a parameter, a match arm): a binding, or a
    /// constant or unit struct matched against.
    Pattern,
    /// Both a field and a local (`Foo { name }`), or an alias (`use x as name`): a new binding.
    Binding,
    /// The name of an invoked macro (`name!(..)`).
    MacroName,
    /// The last segment of a path into another crate (`std::mem::swap`).
    External,
    /// Inside an attribute, a lifetime or label, or tokens that could be a binding.
    Ambiguous,
}

/// One occurrence of an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub name: String,
    /// Byte range in the file.
    pub start: usize,
    pub end: usize,
    /// 1-based line.
    pub line: u32,
    pub kind: OccKind,
    /// Inside a macro invocation's (or definition's) tokens.
    pub in_macro: bool,
    /// The arguments of the parsed call this occurrence is the callee of (`name(a, b)`,
    /// `x.name(a)`, `T::name(a)`; not inside macro tokens).
    pub call_args: Option<u32>,
    /// Inside a `use` declaration.
    pub in_use: bool,
    /// Under `#[cfg(test)]` (an enclosing item's attribute, or the file's `#![cfg(test)]`).
    pub cfg_test: bool,
}

/// A definition, with what the refactor tasks need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub kind: DefKind,
    /// Byte range of the name.
    pub start: usize,
    pub end: usize,
    pub line: u32,
    /// The enclosing impl's or trait's type name, for methods.
    pub parent: Option<String>,
    /// Under `#[cfg(test)]` (on the item or an enclosing item).
    pub cfg_test: bool,
    /// At module level (not nested in a function body).
    pub module_level: bool,
    /// Functions: the parameters besides `self`, whether there is a `self`, and the byte offset
    /// where a new last parameter goes (with whether the list is empty).
    pub params: Option<Params>,
    /// Functions: `extern`, `const` or an attribute that pins the symbol (`no_mangle`,
    /// `export_name`).
    pub pinned: bool,
    /// Functions: the parameter names.
    pub param_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub count: u32,
    pub has_self: bool,
    /// Where `, new: T` goes: right after the last parameter, or after `(` when there is none.
    pub insert_at: usize,
    pub empty: bool,
}

/// Occurrences and definitions of every name in one file.
#[derive(Debug, Clone, Default)]
pub struct FileRefs {
    pub path: String,
    pub occurrences: Vec<Occurrence>,
    pub definitions: Vec<Definition>,
    /// Parsed calls (not in macro tokens) per callee name: where a new last argument goes.
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// Byte offset of the callee's name.
    pub start: usize,
    pub line: u32,
    pub args: u32,
    /// Where `, value` goes: right after the last argument, or after `(` when there is none.
    pub insert_at: usize,
}

/// Crates a path may start with that are not this crate (`std`, `core`, `alloc`, `proc_macro`
/// and the manifest's dependencies, `-` read as `_`).
pub fn external_roots(deps: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = ["std", "core", "alloc", "proc_macro", "test"]
        .into_iter()
        .map(str::to_string)
        .collect();
    s.extend(deps.into_iter().map(|d| d.replace('-', "_")));
    s
}

fn parse(text: &str) -> Option<tree_sitter::Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_rust::LANGUAGE.into())
        .ok()?;
    parser.parse(text, None)
}

fn text_of<'a>(n: Node, src: &'a [u8]) -> &'a str {
    n.utf8_text(src).unwrap_or_default()
}

fn line_of(n: Node) -> u32 {
    n.start_position().row as u32 + 1
}

fn is_field(parent: Node, field: &str, n: Node) -> bool {
    parent
        .child_by_field_name(field)
        .is_some_and(|c| c.id() == n.id())
}

/// Every identifier occurrence and definition of `text`. `external` names the crates a path may
/// start with that are not this one.
pub fn analyze(path: &str, text: &str, external: &BTreeSet<String>) -> FileRefs {
    let mut out = FileRefs {
        path: path.to_string(),
        ..FileRefs::default()
    };
    let Some(tree) = parse(text) else {
        return out;
    };
    let src = text.as_bytes();
    let root = tree.root_node();
    let file_test = {
        let mut cursor = root.walk();
        root.children(&mut cursor)
            .any(|c| c.kind() == "inner_attribute_item" && is_cfg_test(text_of(c, src)))
    };
    // Nodes with whether they are under `#[cfg(test)]`.
    let mut stack = vec![(root, file_test)];
    while let Some((node, test)) = stack.pop() {
        match node.kind() {
            "identifier"
            | "type_identifier"
            | "field_identifier"
            | "shorthand_field_identifier" => {
                let kind = classify(node, src, external);
                let name = text_of(node, src).to_string();
                let in_macro = in_tokens(node);
                let call_args = if in_macro { None } else { callee_args(node) };
                if let OccKind::Def(k) = kind {
                    out.definitions.push(definition(node, k, src));
                }
                out.occurrences.push(Occurrence {
                    name,
                    start: node.start_byte(),
                    end: node.end_byte(),
                    line: line_of(node),
                    kind,
                    in_macro,
                    call_args,
                    in_use: ancestor(node, &["use_declaration"]).is_some(),
                    cfg_test: test,
                });
                continue;
            }
            "call_expression" => {
                if let Some(c) = call(node, src) {
                    out.calls.push(c);
                }
            }
            _ => {}
        }
        let mut cursor = node.walk();
        let mut pending = false;
        let mut children = Vec::new();
        for c in node.children(&mut cursor) {
            match c.kind() {
                "attribute_item" => {
                    pending |= is_cfg_test(text_of(c, src));
                    children.push((c, test));
                }
                "line_comment" | "block_comment" => children.push((c, test)),
                _ => {
                    children.push((c, test || pending));
                    pending = false;
                }
            }
        }
        stack.extend(children.into_iter().rev());
    }
    out
}

fn is_cfg_test(attribute: &str) -> bool {
    let a = attribute.replace(' ', "");
    a.contains("cfg(test)") || a.contains("cfg(all(test")
}

fn ancestor<'a>(n: Node<'a>, kinds: &[&str]) -> Option<Node<'a>> {
    let mut cur = n.parent();
    while let Some(p) = cur {
        if kinds.contains(&p.kind()) {
            return Some(p);
        }
        cur = p.parent();
    }
    None
}

fn in_tokens(n: Node) -> bool {
    n.parent().is_some_and(|p| {
        matches!(
            p.kind(),
            "token_tree" | "token_tree_pattern" | "token_repetition" | "token_repetition_pattern"
        )
    })
}

/// The callee node of a call whose callee names `n` (`n(..)`, `a::n(..)`, `x.n(..)`,
/// `n::<T>(..)`), and that call's argument count.
fn callee_args(n: Node) -> Option<u32> {
    let call = call_of(n)?;
    Some(arg_count(call.child_by_field_name("arguments")?))
}

fn call_of(n: Node) -> Option<Node> {
    let mut callee = n;
    let p = n.parent()?;
    match p.kind() {
        "scoped_identifier" if is_field(p, "name", n) => callee = p,
        "field_expression" if is_field(p, "field", n) => callee = p,
        _ => {}
    }
    let mut up = callee.parent()?;
    if up.kind() == "generic_function" && is_field(up, "function", callee) {
        callee = up;
        up = up.parent()?;
    }
    (up.kind() == "call_expression" && is_field(up, "function", callee)).then_some(up)
}

fn arg_count(args: Node) -> u32 {
    let mut cursor = args.walk();
    args.named_children(&mut cursor)
        .filter(|c| {
            !matches!(
                c.kind(),
                "attribute_item" | "line_comment" | "block_comment"
            )
        })
        .count() as u32
}

/// Where a new last item of a parenthesized list goes: after its last item, or after `(`.
fn insert_point(list: Node, items: &[&str]) -> (usize, bool) {
    let mut cursor = list.walk();
    let last = list
        .named_children(&mut cursor)
        .filter(|c| {
            !matches!(
                c.kind(),
                "attribute_item" | "line_comment" | "block_comment"
            )
        })
        .filter(|c| items.is_empty() || items.contains(&c.kind()))
        .last();
    match last {
        Some(l) => (l.end_byte(), false),
        None => (list.start_byte() + 1, true),
    }
}

fn call(node: Node, src: &[u8]) -> Option<Call> {
    let f = node.child_by_field_name("function")?;
    let f = if f.kind() == "generic_function" {
        f.child_by_field_name("function")?
    } else {
        f
    };
    let name = match f.kind() {
        "identifier" => f,
        "scoped_identifier" => f.child_by_field_name("name")?,
        "field_expression" => f.child_by_field_name("field")?,
        _ => return None,
    };
    let args = node.child_by_field_name("arguments")?;
    let (insert_at, _) = insert_point(args, &[]);
    Some(Call {
        name: text_of(name, src).to_string(),
        start: name.start_byte(),
        line: line_of(name),
        args: arg_count(args),
        insert_at,
    })
}

const PATTERN_PARENTS: [&str; 12] = [
    "tuple_pattern",
    "slice_pattern",
    "or_pattern",
    "ref_pattern",
    "mut_pattern",
    "captured_pattern",
    "reference_pattern",
    "match_pattern",
    "closure_parameters",
    "range_pattern",
    "struct_pattern",
    "token_binding_pattern",
];

fn classify(n: Node, src: &[u8], external: &BTreeSet<String>) -> OccKind {
    let Some(p) = n.parent() else {
        return OccKind::Ref;
    };
    if ancestor(n, &["attribute_item", "inner_attribute_item"]).is_some() {
        return OccKind::Ambiguous;
    }
    match n.kind() {
        "shorthand_field_identifier" => return OccKind::Binding,
        "field_identifier" => {
            return match p.kind() {
                "field_expression" if call_of(n).is_some() => OccKind::MethodCall,
                _ => OccKind::Field,
            };
        }
        _ => {}
    }
    if in_tokens(n) {
        return classify_token(n, src, external);
    }
    match p.kind() {
        "lifetime" | "label" | "loop_label" => return OccKind::Ambiguous,
        "shorthand_field_initializer" => return OccKind::Binding,
        "use_as_clause" if is_field(p, "alias", n) => return OccKind::Binding,
        "macro_invocation" if is_field(p, "macro", n) => return OccKind::MacroName,
        "scoped_identifier"
            if is_field(p, "name", n)
                && p.parent()
                    .is_some_and(|g| g.kind() == "macro_invocation" && is_field(g, "macro", p)) =>
        {
            return OccKind::MacroName;
        }
        // Type parameters have a name field in newer grammars, or are bare children.
        "type_parameters"
        | "type_parameter"
        | "constrained_type_parameter"
        | "optional_type_parameter"
        | "const_parameter"
            if p.kind() == "type_parameters"
                || p.child_by_field_name("name")
                    .is_none_or(|c| c.id() == n.id())
                || p.child_by_field_name("left")
                    .is_some_and(|c| c.id() == n.id()) =>
        {
            return OccKind::Def(DefKind::Generic);
        }
        _ => {}
    }
    if let Some(k) = def_kind(p, n) {
        return OccKind::Def(k);
    }
    if is_pattern(n, p) {
        return OccKind::Pattern;
    }
    if let Some(root) = path_root(n, src)
        && external.contains(root)
        && root != text_of(n, src)
    {
        return OccKind::External;
    }
    OccKind::Ref
}

/// The kind of definition whose name `n` is, if it is one.
fn def_kind(p: Node, n: Node) -> Option<DefKind> {
    if !is_field(p, "name", n) {
        return None;
    }
    let container = p.parent().and_then(|d| {
        (d.kind() == "declaration_list")
            .then(|| d.parent())
            .flatten()
    });
    let in_impl_or_trait = container.map(|c| (c.kind(), c.child_by_field_name("trait").is_some()));
    Some(match p.kind() {
        "function_item" | "function_signature_item" => match in_impl_or_trait {
            Some(("impl_item", false)) => DefKind::Method,
            Some(("impl_item", true)) | Some(("trait_item", _)) => DefKind::TraitFn,
            _ if p.kind() == "function_signature_item" => DefKind::Assoc,
            _ => DefKind::Fn,
        },
        "struct_item" => DefKind::Struct,
        "enum_item" => DefKind::Enum,
        "union_item" => DefKind::Union,
        "type_item" => match in_impl_or_trait {
            Some(("impl_item" | "trait_item", _)) => DefKind::Assoc,
            _ => DefKind::TypeAlias,
        },
        "associated_type" => DefKind::Assoc,
        "trait_item" => DefKind::Trait,
        "const_item" => match in_impl_or_trait {
            Some(("impl_item" | "trait_item", _)) => DefKind::Assoc,
            _ => DefKind::Const,
        },
        "static_item" => DefKind::Static,
        "mod_item" => DefKind::Mod,
        "macro_definition" => DefKind::Macro,
        "enum_variant" => DefKind::Variant,
        _ => return None,
    })
}

/// Whether `n` sits in a pattern: a binding, or a constant matched against.
fn is_pattern(n: Node, p: Node) -> bool {
    let mut child = n;
    let mut parent = p;
    loop {
        match parent.kind() {
            "let_declaration" | "parameter" | "for_expression" | "let_condition" | "match_arm"
            | "closure_parameters" => {
                return parent.kind() == "closure_parameters" || is_field(parent, "pattern", child);
            }
            "tuple_struct_pattern" => {
                if is_field(parent, "type", child) {
                    return false;
                }
            }
            "field_pattern" => {
                if !is_field(parent, "pattern", child) {
                    return false;
                }
            }
            k if PATTERN_PARENTS.contains(&k) => {}
            _ => return false,
        }
        child = parent;
        match parent.parent() {
            Some(g) => parent = g,
            None => return false,
        }
    }
}

/// The first segment of the path or `use` tree `n` is part of (`std` in `std::mem::swap` or
/// `use std::{mem::swap}`); `None` for an absolute `::x` path.
fn path_root<'a>(n: Node, src: &'a [u8]) -> Option<&'a str> {
    let mut top = n;
    while let Some(p) = top.parent() {
        if matches!(
            p.kind(),
            "scoped_identifier"
                | "scoped_type_identifier"
                | "scoped_use_list"
                | "use_list"
                | "use_as_clause"
                | "use_wildcard"
        ) {
            top = p;
        } else {
            break;
        }
    }
    let mut cur = top;
    loop {
        match cur.kind() {
            "scoped_identifier" | "scoped_type_identifier" | "scoped_use_list" | "use_wildcard" => {
                cur = match cur.child_by_field_name("path") {
                    Some(c) => c,
                    None => {
                        // `use_wildcard` has its path as an unnamed child.
                        let mut cursor = cur.walk();
                        let first = cur.named_children(&mut cursor).next()?;
                        if first.id() == cur.id() {
                            return None;
                        }
                        first
                    }
                };
            }
            "use_as_clause" => cur = cur.child_by_field_name("path")?,
            "generic_type" => cur = cur.child_by_field_name("type")?,
            "identifier" | "type_identifier" | "crate" | "self" | "super" => {
                return Some(text_of(cur, src));
            }
            _ => return None,
        }
    }
}

/// An identifier among a macro's tokens: what its neighbours say it is.
fn classify_token(n: Node, src: &[u8], external: &BTreeSet<String>) -> OccKind {
    let prev = n.prev_sibling();
    let next = n.next_sibling();
    let prev_t = prev.map_or("", |p| text_of(p, src));
    let next_t = next.map_or("", |p| text_of(p, src));
    let next_is_call =
        next.is_some_and(|x| x.kind() == "token_tree" && text_of(x, src).starts_with('('));
    if prev_t == "." {
        return if next_is_call {
            OccKind::MethodCall
        } else {
            OccKind::Field
        };
    }
    if matches!(
        prev_t,
        "fn" | "struct"
            | "enum"
            | "union"
            | "type"
            | "trait"
            | "const"
            | "static"
            | "mod"
            | "macro_rules"
    ) {
        return OccKind::Def(DefKind::InMacro);
    }
    if matches!(prev_t, "let" | "mut" | "ref" | "|" | "for" | "'") || prev_t.ends_with('\'') {
        return OccKind::Ambiguous;
    }
    if next_t.starts_with('!') && next_t != "!=" {
        return OccKind::MacroName;
    }
    if next_t == ":" || next_t == "," && prev_t == "|" {
        return OccKind::Ambiguous;
    }
    // Walk back over `a::b::` to the path's first segment.
    let mut root = None;
    let mut cur = n;
    while let Some(sep) = cur.prev_sibling() {
        if text_of(sep, src) != "::" {
            break;
        }
        match sep.prev_sibling() {
            Some(seg) if matches!(seg.kind(), "identifier" | "crate" | "self" | "super") => {
                root = Some(text_of(seg, src));
                cur = seg;
            }
            _ => break,
        }
    }
    if root.is_some_and(|r| external.contains(r)) {
        return OccKind::External;
    }
    OccKind::Ref
}

fn definition(n: Node, kind: DefKind, src: &[u8]) -> Definition {
    let item = n.parent();
    let mut d = Definition {
        name: text_of(n, src).to_string(),
        kind,
        start: n.start_byte(),
        end: n.end_byte(),
        line: line_of(n),
        parent: None,
        cfg_test: false,
        module_level: true,
        params: None,
        pinned: false,
        param_names: Vec::new(),
    };
    let Some(item) = item else {
        return d;
    };
    // Enclosing items: impl/trait name, cfg(test), nesting in a function body.
    let mut cur = Some(item);
    while let Some(c) = cur {
        if has_attribute(c, src, is_cfg_test) {
            d.cfg_test = true;
        }
        match c.kind() {
            "impl_item" | "trait_item" if d.parent.is_none() => {
                let ty = c
                    .child_by_field_name("type")
                    .or_else(|| c.child_by_field_name("name"));
                d.parent = ty.map(|t| {
                    let t = text_of(t, src);
                    t.split('<').next().unwrap_or(t).trim().to_string()
                });
            }
            "block" => d.module_level = false,
            _ => {}
        }
        cur = c.parent();
    }
    if item.kind() == "function_item" {
        if let Some(ps) = item.child_by_field_name("parameters") {
            let mut cursor = ps.walk();
            let mut count = 0;
            let mut has_self = false;
            for p in ps.named_children(&mut cursor) {
                match p.kind() {
                    "self_parameter" => has_self = true,
                    "parameter" | "variadic_parameter" => {
                        count += 1;
                        if let Some(pat) = p.child_by_field_name("pattern") {
                            d.param_names.push(text_of(pat, src).to_string());
                        }
                    }
                    _ => {}
                }
            }
            let (insert_at, empty) = insert_point(ps, &[]);
            d.params = Some(Params {
                count,
                has_self,
                insert_at,
                empty,
            });
        }
        let mut cursor = item.walk();
        for c in item.children(&mut cursor) {
            if c.kind() == "function_modifiers" {
                let t = text_of(c, src);
                if t.contains("extern") || t.split_whitespace().any(|w| w == "const") {
                    d.pinned = true;
                }
            }
        }
        if has_attribute(item, src, |a| {
            a.contains("no_mangle") || a.contains("export_name") || a.contains("link_name")
        }) {
            d.pinned = true;
        }
        if ancestor(item, &["foreign_mod_item"]).is_some() {
            d.pinned = true;
        }
    }
    d
}

/// Whether an attribute right above `item` (comments skipped) satisfies `f`.
fn has_attribute(item: Node, src: &[u8], f: impl Fn(&str) -> bool) -> bool {
    let mut prev = item.prev_sibling();
    while let Some(p) = prev {
        match p.kind() {
            "attribute_item" => {
                if f(text_of(p, src)) {
                    return true;
                }
            }
            "line_comment" | "block_comment" => {}
            _ => return false,
        }
        prev = p.prev_sibling();
    }
    false
}

/// Word tokens (runs of letters, digits and `_`) and single other characters, with their byte
/// offsets; whitespace separates. For comparing a file before and after an edit.
pub fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let is_word = c.is_alphanumeric() || c == '_';
        match (word_start, is_word) {
            (None, true) => word_start = Some(i),
            (Some(s), false) => {
                out.push((s, &text[s..i]));
                word_start = None;
            }
            _ => {}
        }
        if !is_word && !c.is_whitespace() {
            out.push((i, &text[i..i + c.len_utf8()]));
        }
    }
    if let Some(s) = word_start {
        out.push((s, &text[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext() -> BTreeSet<String> {
        external_roots(["proc-macro2".to_string()])
    }

    fn kinds_of(r: &FileRefs, name: &str) -> Vec<(u32, OccKind)> {
        r.occurrences
            .iter()
            .filter(|o| o.name == name)
            .map(|o| (o.line, o.kind))
            .collect()
    }

    const SRC: &str = r#"use crate::util::{tally, Widget};
use std::mem::swap;
pub struct Counter { tally: u32 }
impl Counter {
    pub fn bump(&mut self) -> u32 { self.tally += 1; self.tally }
    pub fn tally(&self) -> u32 { self.tally }
}
pub fn tally(xs: &[u32]) -> u32 { xs.len() as u32 }
const LIMIT: u32 = 3;
fn user(c: &mut Counter, w: Widget) {
    let n = tally(&[1]) + c.tally() + LIMIT;
    let Counter { tally: t } = Counter { tally: n };
    println!("{}", c.tally);
    assert!(tally(&[n]) > 0);
    swap(&mut 1, &mut 2);
    match n { LIMIT => {}, other => {} }
    let local = 1;
    crate::util::tally(&[local]);
}
"#;

    #[test]
    fn occurrences_are_classified() {
        let r = analyze("src/lib.rs", SRC, &ext());
        let tally = kinds_of(&r, "tally");
        assert_eq!(
            tally,
            vec![
                (1, OccKind::Ref),
                (3, OccKind::Field),
                (5, OccKind::Field),
                (5, OccKind::Field),
                (6, OccKind::Def(DefKind::Method)),
                (6, OccKind::Field),
                (8, OccKind::Def(DefKind::Fn)),
                (11, OccKind::Ref),
                (11, OccKind::MethodCall),
                (12, OccKind::Field),
                (12, OccKind::Field),
                (13, OccKind::Field),
                (14, OccKind::Ref),
                (18, OccKind::Ref),
            ]
        );
        assert_eq!(
            kinds_of(&r, "swap"),
            vec![(2, OccKind::External), (15, OccKind::Ref)]
        );
        assert_eq!(
            kinds_of(&r, "LIMIT"),
            vec![
                (9, OccKind::Def(DefKind::Const)),
                (11, OccKind::Ref),
                (16, OccKind::Pattern)
            ]
        );
        assert_eq!(
            kinds_of(&r, "local"),
            vec![(17, OccKind::Pattern), (18, OccKind::Ref)]
        );
        assert_eq!(kinds_of(&r, "println"), vec![(13, OccKind::MacroName)]);
        // Calls: `tally(&[1])` has one argument and is not in a macro; the one in `assert!` is.
        let calls: Vec<_> = r
            .occurrences
            .iter()
            .filter(|o| o.name == "tally" && o.call_args.is_some())
            .map(|o| (o.line, o.call_args, o.in_macro))
            .collect();
        assert_eq!(
            calls,
            vec![
                (11, Some(1), false),
                (11, Some(0), false),
                (18, Some(1), false)
            ]
        );
        let method = r
            .definitions
            .iter()
            .find(|d| d.kind == DefKind::Method && d.name == "tally")
            .unwrap();
        assert_eq!(method.parent.as_deref(), Some("Counter"));
        let p = method.params.unwrap();
        assert!(p.has_self && p.count == 0 && !p.empty);
        let f = r
            .definitions
            .iter()
            .find(|d| d.kind == DefKind::Fn && d.name == "tally")
            .unwrap();
        assert_eq!(f.params.unwrap().count, 1);
        assert_eq!(
            &SRC[f.params.unwrap().insert_at - 10..f.params.unwrap().insert_at],
            "xs: &[u32]"
        );
    }

    #[test]
    fn macro_tokens_attributes_and_generics() {
        let src = r#"
macro_rules! make { ($n:ident) => { fn $n() {} struct Made; }; }
#[cfg(thing)]
fn thing<Item>(x: Item) -> Item { format!("{}", self.count); helper(x.width, 2); x }
#[cfg(test)]
mod tests { fn helper_test() {} }
"#;
        let r = analyze("src/lib.rs", src, &ext());
        assert_eq!(
            kinds_of(&r, "Made"),
            vec![(2, OccKind::Def(DefKind::InMacro))]
        );
        assert_eq!(kinds_of(&r, "thing")[0], (3, OccKind::Ambiguous));
        assert_eq!(kinds_of(&r, "Item")[0], (4, OccKind::Def(DefKind::Generic)));
        assert_eq!(kinds_of(&r, "count"), vec![(4, OccKind::Field)]);
        assert_eq!(kinds_of(&r, "helper"), vec![(4, OccKind::Ref)]);
        assert_eq!(kinds_of(&r, "width"), vec![(4, OccKind::Field)]);
        let t = r
            .definitions
            .iter()
            .find(|d| d.name == "helper_test")
            .unwrap();
        assert!(t.cfg_test);
        let o = r
            .occurrences
            .iter()
            .find(|o| o.name == "helper_test")
            .unwrap();
        assert!(o.cfg_test);
        assert!(
            !r.occurrences
                .iter()
                .find(|o| o.name == "helper")
                .unwrap()
                .cfg_test
        );
    }

    #[test]
    fn tokens_split_words_and_punctuation() {
        let t: Vec<&str> = tokens("a.b_c(x, 1)").into_iter().map(|(_, s)| s).collect();
        assert_eq!(t, vec!["a", ".", "b_c", "(", "x", ",", "1", ")"]);
    }
}
