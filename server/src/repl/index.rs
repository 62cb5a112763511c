//! What the REPL asks of the parent's code index: `symbols()`, `outline()` and `chunks`.
//!
//! The index lives in the parent (it is built there, and a first question must not wait for all
//! of it); the worker asks over the protocol and the parent answers through [`IndexQueries`].
//! [`StaticIndex`] is a plain implementation over lists of definitions and chunks.

use crate::index::grep::PathFilter;
use crate::index::{Chunk, DefKind, Definition};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A `symbols(name, kind, path)` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolQuery {
    /// Matched exactly first; if nothing matches exactly, case-insensitively; then as a
    /// case-insensitive prefix. `Parent::name` or `Parent.name` also filters on the parent.
    pub name: Option<String>,
    pub kind: Option<DefKind>,
    /// A path, a directory prefix or a glob, as `grep`'s `paths` (see [`PathFilter`]).
    pub path: Option<String>,
}

/// The parent's code index as the REPL sees it. Answers come from what is indexed when asked.
pub trait IndexQueries: Send + Sync {
    /// Changes whenever answers may change (more files indexed, a file re-parsed); the worker
    /// refetches `chunks` at the next cell when it did.
    fn version(&self) -> u64;
    /// Definitions matching the query, in path then line order.
    fn symbols(&self, query: &SymbolQuery) -> Vec<Definition>;
    /// The definitions of `path` in file order, with their nesting depth (0 = top level).
    fn outline(&self, path: &str) -> Vec<(u32, Definition)>;
    /// All chunks, in path then line order.
    fn chunks(&self) -> Arc<Vec<Chunk>>;
    /// One line for the root model's first message: definitions by kind, and whether indexing
    /// is still under way.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// An index over fixed lists (tests, and until the tree-sitter index is connected).
#[derive(Debug, Clone, Default)]
pub struct StaticIndex {
    pub version: u64,
    /// Sorted by path, then start byte.
    pub definitions: Vec<Definition>,
    pub chunks: Arc<Vec<Chunk>>,
}

impl StaticIndex {
    pub fn new(mut definitions: Vec<Definition>, mut chunks: Vec<Chunk>) -> StaticIndex {
        definitions.sort_by(|a, b| {
            (a.path.as_str(), a.start_byte, std::cmp::Reverse(a.end_byte)).cmp(&(
                b.path.as_str(),
                b.start_byte,
                std::cmp::Reverse(b.end_byte),
            ))
        });
        chunks
            .sort_by(|a, b| (a.path.as_str(), a.start_byte).cmp(&(b.path.as_str(), b.start_byte)));
        StaticIndex {
            version: 1,
            definitions,
            chunks: Arc::new(chunks),
        }
    }
}

impl IndexQueries for StaticIndex {
    fn version(&self) -> u64 {
        self.version
    }

    fn symbols(&self, query: &SymbolQuery) -> Vec<Definition> {
        filter_definitions(&self.definitions, query)
    }

    fn outline(&self, path: &str) -> Vec<(u32, Definition)> {
        let start = self.definitions.partition_point(|d| d.path.as_str() < path);
        let end = start + self.definitions[start..].partition_point(|d| d.path == path);
        nest(&self.definitions[start..end])
    }

    fn chunks(&self) -> Arc<Vec<Chunk>> {
        self.chunks.clone()
    }
}

/// The definitions that match `query`, in the order given (see [`SymbolQuery::name`] for the
/// name matching tiers). An index can use this over its own definitions.
pub fn filter_definitions<'a>(
    defs: impl IntoIterator<Item = &'a Definition>,
    query: &SymbolQuery,
) -> Vec<Definition> {
    let filter = match query.path.as_deref().map(|p| PathFilter::new(&[p])) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(_)) => return Vec::new(), // an invalid glob matches nothing
    };
    let (parent, name) = match query.name.as_deref() {
        Some(n) => match n.rsplit_once("::").or_else(|| n.rsplit_once('.')) {
            Some((p, n)) if !p.is_empty() && !n.is_empty() => (Some(p), Some(n)),
            _ => (None, Some(n)),
        },
        None => (None, None),
    };
    let candidates: Vec<&Definition> = defs
        .into_iter()
        .filter(|d| query.kind.is_none_or(|k| d.kind == k))
        .filter(|d| filter.as_ref().is_none_or(|f| f.matches(&d.path)))
        .filter(|d| {
            parent.is_none_or(|p| {
                d.parent.as_deref().is_some_and(|dp| {
                    dp.eq_ignore_ascii_case(p) || dp.rsplit(['.', ':']).next() == Some(p)
                })
            })
        })
        .collect();
    let Some(name) = name else {
        return candidates.into_iter().cloned().collect();
    };
    let lower = name.to_lowercase();
    let tiers: [&dyn Fn(&Definition) -> bool; 3] = [
        &|d| d.name == name,
        &|d| d.name.to_lowercase() == lower,
        &|d| d.name.to_lowercase().starts_with(&lower),
    ];
    for tier in tiers {
        let found: Vec<Definition> = candidates
            .iter()
            .filter(|d| tier(d))
            .map(|d| (*d).clone())
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// Nesting depths of the definitions of one file, sorted by start byte (then longest first), by
/// containment of their byte ranges.
pub fn nest(defs: &[Definition]) -> Vec<(u32, Definition)> {
    let mut open: Vec<usize> = Vec::new(); // end bytes of the enclosing definitions
    defs.iter()
        .map(|d| {
            while open.last().is_some_and(|&end| d.start_byte >= end) {
                open.pop();
            }
            let depth = open.len() as u32;
            open.push(d.end_byte);
            (depth, d.clone())
        })
        .collect()
}

/// `DefKind` from a name the model may write: `function`, `fn`, `def`, `method`, `class`,
/// `struct`, `enum`, `interface`, `trait`, `protocol`, `impl`, `module`, `mod`, `namespace`,
/// `constant`, `const`, `static`, `type`, `typedef`, `alias`, `macro`.
pub fn parse_kind(s: &str) -> Option<DefKind> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "function" | "functions" | "fn" | "func" | "def" => DefKind::Function,
        "method" | "methods" => DefKind::Method,
        "class" | "classes" => DefKind::Class,
        "struct" | "structs" => DefKind::Struct,
        "enum" | "enums" => DefKind::Enum,
        "interface" | "interfaces" | "trait" | "traits" | "protocol" => DefKind::Interface,
        "impl" | "impls" => DefKind::Impl,
        "module" | "modules" | "mod" | "namespace" | "package" => DefKind::Module,
        "constant" | "constants" | "const" | "static" => DefKind::Constant,
        "type" | "types" | "typedef" | "alias" => DefKind::Type,
        "macro" | "macros" | "macro_rules" | "define" => DefKind::Macro,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Language;

    fn def(
        name: &str,
        kind: DefKind,
        path: &str,
        lines: (u32, u32),
        parent: Option<&str>,
    ) -> Definition {
        Definition {
            name: name.into(),
            kind,
            language: Language::Rust,
            path: path.into(),
            start_byte: lines.0 as usize * 100,
            end_byte: lines.1 as usize * 100 + 50,
            start_line: lines.0,
            end_line: lines.1,
            parent: parent.map(Into::into),
            signature: String::new(),
            detail: None,
        }
    }

    fn index() -> StaticIndex {
        StaticIndex::new(
            vec![
                def(
                    "new",
                    DefKind::Function,
                    "src/b.rs",
                    (12, 14),
                    Some("Parser"),
                ),
                def("Parser", DefKind::Impl, "src/b.rs", (10, 30), None),
                def("parse_args", DefKind::Function, "src/a.rs", (1, 5), None),
                def("ParseError", DefKind::Enum, "src/a.rs", (7, 9), None),
                def(
                    "parse",
                    DefKind::Method,
                    "src/b.rs",
                    (16, 29),
                    Some("Parser"),
                ),
                def("inner", DefKind::Function, "src/b.rs", (20, 22), None),
                def("Parser", DefKind::Struct, "src/b.rs", (1, 4), None),
            ],
            vec![],
        )
    }

    fn names(defs: &[Definition]) -> Vec<String> {
        defs.iter()
            .map(|d| format!("{}:{}", d.name, d.start_line))
            .collect()
    }

    #[test]
    fn symbol_name_tiers_kind_and_path() {
        let ix = index();
        let q = |name: &str| SymbolQuery {
            name: Some(name.into()),
            ..SymbolQuery::default()
        };
        assert_eq!(names(&ix.symbols(&q("Parser"))), ["Parser:1", "Parser:10"]);
        assert_eq!(names(&ix.symbols(&q("parser"))), ["Parser:1", "Parser:10"]);
        assert_eq!(names(&ix.symbols(&q("parse"))), ["parse:16"]);
        assert_eq!(
            names(&ix.symbols(&q("PARSE_"))),
            ["parse_args:1"],
            "case-insensitive prefix"
        );
        assert_eq!(names(&ix.symbols(&q("Parser::new"))), ["new:12"]);
        assert_eq!(names(&ix.symbols(&q("Parser.parse"))), ["parse:16"]);
        assert!(ix.symbols(&q("nothing")).is_empty());
        let by_kind = SymbolQuery {
            kind: Some(DefKind::Function),
            path: Some("src/b.rs".into()),
            ..SymbolQuery::default()
        };
        assert_eq!(names(&ix.symbols(&by_kind)), ["new:12", "inner:20"]);
        let by_glob = SymbolQuery {
            path: Some("*.rs".into()),
            ..SymbolQuery::default()
        };
        assert_eq!(ix.symbols(&by_glob).len(), 7);
        let bad_glob = SymbolQuery {
            path: Some("src/[".into()),
            ..SymbolQuery::default()
        };
        assert!(ix.symbols(&bad_glob).is_empty());
    }

    #[test]
    fn outline_nests_by_range() {
        let got: Vec<String> = index()
            .outline("src/b.rs")
            .into_iter()
            .map(|(depth, d)| format!("{}{}", "  ".repeat(depth as usize), d.name))
            .collect();
        assert_eq!(got, ["Parser", "Parser", "  new", "  parse", "    inner"]);
        assert!(index().outline("src/c.rs").is_empty());
    }

    #[test]
    fn kinds_by_many_names() {
        assert_eq!(parse_kind("fn"), Some(DefKind::Function));
        assert_eq!(parse_kind("Trait"), Some(DefKind::Interface));
        assert_eq!(parse_kind("widget"), None);
        assert_eq!(parse_kind("macro_rules"), Some(DefKind::Macro));
        for k in DefKind::ALL {
            assert_eq!(parse_kind(k.as_str()), Some(k));
        }
    }
}
