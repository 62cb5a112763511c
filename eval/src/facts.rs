//! Syntactic facts about Rust files, from tree-sitter-rust: functions with their signatures and
//! doc comments, call sites, `impl Trait for Type` blocks, `unsafe` blocks and defined types.
//! The task generators compute their ground truth from these facts.
//!
//! Exact where the syntax is: a call is a `call_expression` whose callee's last segment is the
//! name (`f(..)`, `a::f(..)`, `x.f(..)`, `f::<T>(..)`). Inside macro invocations (`assert!(f(x))`,
//! `format!(..)`) tree-sitter keeps only tokens; there an identifier followed by a parenthesized
//! token tree counts as a call (it may rarely be something else, e.g. a tuple-struct pattern).

use std::collections::BTreeSet;
use tree_sitter::{Node, Parser};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnFact {
    pub name: String,
    pub path: String,
    /// 1-based line of the `fn` item (its first attribute or doc line excluded).
    pub line: u32,
    /// Declared exactly `pub` (not `pub(crate)` and the like).
    pub is_pub: bool,
    /// Parameters besides `self`.
    pub params: usize,
    pub has_self: bool,
    pub param_types: Vec<String>,
    /// The return type's text, if any.
    pub ret: Option<String>,
    /// The doc comment (`///` or `/** */` lines), markers removed, lines joined by spaces.
    pub doc: String,
    /// The enclosing impl's type or trait's name, when the function is a method.
    pub parent: Option<String>,
    /// The trait an enclosing `impl Trait for Type` implements.
    pub impl_trait: Option<String>,
    pub is_unsafe: bool,
    pub is_async: bool,
    /// Marked as a test: an attribute whose path ends in `test` (`#[test]`, `#[tokio::test]`).
    pub is_test: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFact {
    pub name: String,
    pub line: u32,
    /// Found inside a macro invocation's tokens rather than parsed syntax.
    pub in_macro: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplFact {
    /// The trait's last path segment, without generic arguments.
    pub trait_name: String,
    /// The implementing type's base name (last segment, generics and references removed).
    pub type_name: String,
    pub line: u32,
}

#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    pub path: String,
    pub fns: Vec<FnFact>,
    pub calls: Vec<CallFact>,
    pub impls: Vec<ImplFact>,
    pub unsafe_blocks: usize,
    pub traits: Vec<String>,
    /// Structs, enums, unions and type aliases defined here.
    pub types: Vec<String>,
    /// `struct` items.
    pub structs: usize,
}

/// Facts of one Rust file. Files that do not parse still give what the parser recovered.
pub fn analyze(path: &str, text: &str) -> FileFacts {
    let mut facts = FileFacts {
        path: path.to_string(),
        ..FileFacts::default()
    };
    let mut parser = Parser::new();
    if parser
        .set_language(&tree_sitter_rust::LANGUAGE.into())
        .is_err()
    {
        return facts;
    }
    let Some(tree) = parser.parse(text, None) else {
        return facts;
    };
    let src = text.as_bytes();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        match node.kind() {
            "function_item" | "function_signature_item" => {
                if let Some(f) = function(node, src, path) {
                    facts.fns.push(f);
                }
            }
            "call_expression" => {
                if let Some(name) = node
                    .child_by_field_name("function")
                    .and_then(|f| callee(f, src))
                {
                    facts.calls.push(CallFact {
                        name,
                        line: line_of(node),
                        in_macro: false,
                    });
                }
            }
            "token_tree" => macro_calls(node, src, &mut facts.calls),
            "impl_item" => {
                if let Some(i) = impl_fact(node, src) {
                    facts.impls.push(i);
                }
            }
            "unsafe_block" => facts.unsafe_blocks += 1,
            "trait_item" => {
                if let Some(n) = node.child_by_field_name("name") {
                    facts.traits.push(text_of(n, src).to_string());
                }
            }
            "struct_item" | "enum_item" | "union_item" | "type_item" => {
                if node.kind() == "struct_item" {
                    facts.structs += 1;
                }
                if let Some(n) = node.child_by_field_name("name") {
                    facts.types.push(text_of(n, src).to_string());
                }
            }
            _ => {}
        }
        let mut cursor = node.walk();
        // Reversed so the stack visits children in source order.
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    facts.calls.sort_by_key(|c| c.line);
    facts
}

fn text_of<'a>(node: Node, src: &'a [u8]) -> &'a str {
    node.utf8_text(src).unwrap_or_default()
}

fn line_of(node: Node) -> u32 {
    node.start_position().row as u32 + 1
}

fn function(node: Node, src: &[u8], path: &str) -> Option<FnFact> {
    let name = text_of(node.child_by_field_name("name")?, src).to_string();
    let mut is_pub = false;
    let mut is_unsafe = false;
    let mut is_async = false;
    let mut cursor = node.walk();
    for c in node.children(&mut cursor) {
        match c.kind() {
            "visibility_modifier" => is_pub = text_of(c, src) == "pub",
            "function_modifiers" => {
                let t = text_of(c, src);
                is_unsafe = t.split_whitespace().any(|w| w == "unsafe");
                is_async = t.split_whitespace().any(|w| w == "async");
            }
            _ => {}
        }
    }
    let mut params = 0;
    let mut has_self = false;
    let mut param_types = Vec::new();
    if let Some(ps) = node.child_by_field_name("parameters") {
        let mut cursor = ps.walk();
        for p in ps.named_children(&mut cursor) {
            match p.kind() {
                "self_parameter" => has_self = true,
                // `self: Arc<Self>` is a receiver too, parsed as a typed parameter.
                "parameter"
                    if p.child_by_field_name("pattern")
                        .is_some_and(|pat| text_of(pat, src) == "self") =>
                {
                    has_self = true
                }
                "parameter" | "variadic_parameter" => {
                    params += 1;
                    if let Some(t) = p.child_by_field_name("type") {
                        param_types.push(squash(text_of(t, src)));
                    }
                }
                _ => {}
            }
        }
    }
    let ret = node
        .child_by_field_name("return_type")
        .map(|t| squash(text_of(t, src)));
    let (parent, impl_trait) = enclosing(node, src);
    Some(FnFact {
        name,
        path: path.to_string(),
        line: line_of(node),
        is_pub,
        params,
        has_self,
        param_types,
        ret,
        doc: doc_comment(node, src),
        parent,
        impl_trait,
        is_unsafe,
        is_async,
        is_test: test_attribute(node, src),
    })
}

/// Whitespace collapsed to single spaces.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The impl type or trait a function sits in, and the trait of an `impl Trait for Type`.
fn enclosing(node: Node, src: &[u8]) -> (Option<String>, Option<String>) {
    let mut cur = node.parent();
    while let Some(n) = cur {
        match n.kind() {
            "impl_item" => {
                let ty = n
                    .child_by_field_name("type")
                    .and_then(|t| base_type(t, src));
                let tr = n
                    .child_by_field_name("trait")
                    .and_then(|t| base_type(t, src));
                return (ty, tr);
            }
            "trait_item" => {
                return (
                    n.child_by_field_name("name")
                        .map(|t| text_of(t, src).to_string()),
                    None,
                );
            }
            "function_item" | "source_file" => return (None, None),
            _ => cur = n.parent(),
        }
    }
    (None, None)
}

/// Outer doc comments above an item (`///` lines and `/** */` blocks), attributes skipped.
fn doc_comment(node: Node, src: &[u8]) -> String {
    let mut lines = Vec::new();
    let mut prev = node.prev_sibling();
    while let Some(p) = prev {
        let t = text_of(p, src);
        match p.kind() {
            "attribute_item" => {}
            "line_comment" if t.starts_with("///") && !t.starts_with("////") => {
                lines.push(t.trim_start_matches('/').trim().to_string());
            }
            "block_comment" if t.starts_with("/**") && !t.starts_with("/***") => {
                let inner = t.trim_start_matches("/**").trim_end_matches("*/");
                let mut block: Vec<String> = inner
                    .lines()
                    .map(|l| l.trim().trim_start_matches('*').trim().to_string())
                    .collect();
                block.reverse();
                lines.extend(block);
            }
            _ => break,
        }
        prev = p.prev_sibling();
    }
    lines.reverse();
    lines
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an attribute above the item (doc comments skipped) has a path ending in `test`.
fn test_attribute(node: Node, src: &[u8]) -> bool {
    let mut prev = node.prev_sibling();
    while let Some(p) = prev {
        match p.kind() {
            "attribute_item" => {
                let t = text_of(p, src).trim_start_matches("#[");
                let path = t.split(['(', ']', '=']).next().unwrap_or_default().trim();
                if path.rsplit("::").next() == Some("test") {
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

fn parse(text: &str) -> Option<tree_sitter::Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_rust::LANGUAGE.into())
        .ok()?;
    parser.parse(text, None)
}

/// Whether tree-sitter-rust parses the text without an error or missing node.
pub fn parses_cleanly(text: &str) -> bool {
    parse(text).is_some_and(|t| !t.root_node().has_error())
}

/// Lines (1-based) before which a new item can be inserted at the top level of the file: the
/// line after a top-level function, impl, struct, enum, trait or module that ends its line, when
/// the next item starts on a later line.
pub fn top_level_gaps(text: &str) -> Vec<u32> {
    let Some(tree) = parse(text) else {
        return Vec::new();
    };
    let root = tree.root_node();
    let mut cursor = root.walk();
    let children: Vec<Node> = root.children(&mut cursor).collect();
    let mut out = Vec::new();
    for (i, n) in children.iter().enumerate() {
        if !matches!(
            n.kind(),
            "function_item" | "impl_item" | "struct_item" | "enum_item" | "trait_item" | "mod_item"
        ) {
            continue;
        }
        let end = n.end_byte();
        let rest_of_line = text[end..].split('\n').next().unwrap_or_default();
        if !rest_of_line.trim().is_empty() || !text[end..].contains('\n') {
            continue;
        }
        let end_row = n.end_position().row;
        if children
            .get(i + 1)
            .is_some_and(|next| next.start_position().row <= end_row)
        {
            continue;
        }
        out.push(end_row as u32 + 2);
    }
    out
}

/// The called name: the last segment of a path, a method's name, through turbofish.
fn callee(f: Node, src: &[u8]) -> Option<String> {
    match f.kind() {
        "identifier" => Some(text_of(f, src).to_string()),
        "scoped_identifier" => f
            .child_by_field_name("name")
            .map(|n| text_of(n, src).to_string()),
        "field_expression" => f
            .child_by_field_name("field")
            .filter(|n| n.kind() == "field_identifier")
            .map(|n| text_of(n, src).to_string()),
        "generic_function" => f
            .child_by_field_name("function")
            .and_then(|g| callee(g, src)),
        _ => None,
    }
}

/// Calls inside a macro's token tree: an identifier directly followed by a `( ... )` tree.
fn macro_calls(tree: Node, src: &[u8], out: &mut Vec<CallFact>) {
    let mut cursor = tree.walk();
    let children: Vec<Node> = tree.children(&mut cursor).collect();
    for w in children.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.kind() == "identifier" && b.kind() == "token_tree" && text_of(b, src).starts_with('(')
        {
            // `fn name(` inside a macro defines rather than calls.
            let defines = a
                .prev_sibling()
                .is_some_and(|p| text_of(p, src) == "fn" || p.kind() == "fn");
            // `name!(..)` is a macro, not a call; tree-sitter shows the `!` between them.
            if !defines {
                out.push(CallFact {
                    name: text_of(a, src).to_string(),
                    line: line_of(a),
                    in_macro: true,
                });
            }
        }
    }
}

fn impl_fact(node: Node, src: &[u8]) -> Option<ImplFact> {
    let tr = node.child_by_field_name("trait")?;
    // `impl !Send for T` is a negative impl: not an implementation.
    let mut cursor = node.walk();
    if node.children(&mut cursor).any(|c| c.kind() == "!") {
        return None;
    }
    let trait_name = base_type(tr, src)?;
    let ty = node.child_by_field_name("type")?;
    let type_name = base_type(ty, src)?;
    // A blanket impl (`impl<T: X> Trait for T`) implements for a type parameter, not a type.
    let generics: BTreeSet<String> = node
        .child_by_field_name("type_parameters")
        .map(|tp| {
            let mut c = tp.walk();
            tp.named_children(&mut c)
                .filter_map(|p| {
                    p.child_by_field_name("name")
                        .or_else(|| {
                            let mut c2 = p.walk();
                            p.named_children(&mut c2)
                                .find(|n| n.kind() == "type_identifier")
                        })
                        .or((p.kind() == "type_identifier").then_some(p))
                        .map(|n| text_of(n, src).to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    if generics.contains(&type_name) {
        return None;
    }
    Some(ImplFact {
        trait_name,
        type_name,
        line: line_of(node),
    })
}

/// `a::b::Foo<T>` -> `Foo`, `&'a mut Foo` -> `Foo`; `None` for tuples, slices, `dyn`, ...
fn base_type(t: Node, src: &[u8]) -> Option<String> {
    match t.kind() {
        "type_identifier" | "primitive_type" => Some(text_of(t, src).to_string()),
        "scoped_type_identifier" => t
            .child_by_field_name("name")
            .map(|n| text_of(n, src).to_string()),
        "generic_type" => t
            .child_by_field_name("type")
            .and_then(|n| base_type(n, src)),
        "reference_type" | "pointer_type" => t
            .child_by_field_name("type")
            .and_then(|n| base_type(n, src)),
        _ => None,
    }
}

/// The module a file is: its path without the extension, `mod.rs`/`lib.rs`/`main.rs` naming
/// their directory.
pub fn module_of(path: &str) -> String {
    let p = path.trim_end_matches(".rs");
    let p = p
        .strip_suffix("/mod")
        .or_else(|| p.strip_suffix("/lib"))
        .or_else(|| p.strip_suffix("/main"))
        .unwrap_or(p);
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
/// Adds two numbers and returns the sum.
/// Second line.
#[inline]
pub fn add(a: u32, b: u32) -> u32 { a + b }

pub(crate) fn hidden() -> Result<(), E> { helper(1); Ok(()) }

struct Foo<T>(T);
enum Kind { A }
trait Shape { fn area(&self) -> f64; }

impl<T> Shape for Foo<T> {
    fn area(&self) -> f64 { self.helper(); unsafe { 1.0 } }
}
impl<'a> std::fmt::Display for &'a Kind { fn fmt(&self, f: &mut Formatter) -> fmt::Result { todo!() } }
impl<T: Clone> Shape for T {}
impl !Send for Kind {}
impl Foo<u8> { pub async unsafe fn make(x: &str, y: Vec<u8>) -> io::Result<Self> { a::b::helper(x); assert!(helper(2)); Ok(x.parse::<u8>()) } }
// helper(3) in a comment is not a call
fn s() -> &'static str { "helper(4)" }
"#;

    /// `self: Arc<Self>` is a receiver, as `&self` is (tokio's `try_acquire_owned` was
    /// described as "an associated function without self" that "takes one other parameter").
    #[test]
    fn a_typed_self_is_a_receiver() {
        let src = "impl S {\n    pub fn owned(self: Arc<Self>) -> u8 { 0 }\n}\n";
        let f = analyze("src/lib.rs", src);
        let owned = f.fns.iter().find(|x| x.name == "owned").unwrap();
        assert!(owned.has_self);
        assert_eq!(owned.params, 0);
    }

    #[test]
    fn functions_with_signatures_and_docs() {
        let f = analyze("src/lib.rs", SRC);
        let add = f.fns.iter().find(|x| x.name == "add").unwrap();
        assert!(add.is_pub);
        assert_eq!(add.params, 2);
        assert_eq!(add.param_types, vec!["u32", "u32"]);
        assert_eq!(add.ret.as_deref(), Some("u32"));
        assert_eq!(
            add.doc,
            "Adds two numbers and returns the sum. Second line."
        );
        assert_eq!(add.line, 5);
        let hidden = f.fns.iter().find(|x| x.name == "hidden").unwrap();
        assert!(!hidden.is_pub);
        let area: Vec<_> = f.fns.iter().filter(|x| x.name == "area").collect();
        assert_eq!(area.len(), 2, "the trait's signature and the impl's method");
        assert!(area.iter().all(|a| a.has_self && a.params == 0));
        assert!(area.iter().any(
            |a| a.impl_trait.as_deref() == Some("Shape") && a.parent.as_deref() == Some("Foo")
        ));
        let make = f.fns.iter().find(|x| x.name == "make").unwrap();
        assert!(make.is_pub && make.is_async && make.is_unsafe);
        assert_eq!(make.parent.as_deref(), Some("Foo"));
        assert_eq!(make.ret.as_deref(), Some("io::Result<Self>"));
    }

    #[test]
    fn calls_include_methods_paths_and_macro_arguments() {
        let f = analyze("src/lib.rs", SRC);
        let helper: Vec<_> = f.calls.iter().filter(|c| c.name == "helper").collect();
        // helper(1), self.helper(), a::b::helper(x), assert!(helper(2)); not the comment or string.
        assert_eq!(helper.len(), 4, "{helper:?}");
        assert_eq!(helper.iter().filter(|c| c.in_macro).count(), 1);
        assert!(f.calls.iter().any(|c| c.name == "parse"), "turbofish call");
        assert!(
            !f.calls.iter().any(|c| c.name == "assert"),
            "macros are not calls"
        );
    }

    #[test]
    fn impls_types_traits_and_unsafe() {
        let f = analyze("src/lib.rs", SRC);
        let impls: Vec<_> = f
            .impls
            .iter()
            .map(|i| (i.trait_name.as_str(), i.type_name.as_str()))
            .collect();
        assert_eq!(impls, vec![("Shape", "Foo"), ("Display", "Kind")]);
        assert_eq!(f.unsafe_blocks, 1);
        assert_eq!(f.traits, vec!["Shape"]);
        assert_eq!(f.types, vec!["Foo", "Kind"]);
    }

    #[test]
    fn tests_structs_and_insertion_points() {
        let src = "use x;\n\n#[test]\nfn a() {}\n\n#[tokio::test(flavor = \"current_thread\")]\n/// doc\nasync fn b() {}\n#[cfg(test)]\nfn c() {}\nstruct S; struct T;\nimpl S {\n    fn d() {}\n}\n// end\n";
        let f = analyze("x.rs", src);
        let tests: Vec<_> = f
            .fns
            .iter()
            .filter(|f| f.is_test)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(tests, vec!["a", "b"]);
        assert_eq!(f.structs, 2);
        assert!(parses_cleanly(src));
        assert!(!parses_cleanly("fn a( {"));
        // After `fn a` (line 4 -> before 5), `fn b` (8 -> 9), `fn c` (10 -> 11), `struct T`
        // (11 -> 12) and the impl (14 -> 15); not after `struct S;`, which shares its line.
        assert_eq!(top_level_gaps(src), vec![5, 9, 11, 12, 15]);
    }

    #[test]
    fn modules_from_paths() {
        assert_eq!(module_of("src/lib.rs"), "src");
        assert_eq!(module_of("src/a/mod.rs"), "src/a");
        assert_eq!(module_of("src/a/b.rs"), "src/a/b");
    }
}
