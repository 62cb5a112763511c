//! What the REPL asks of the parent's code index: `symbols()`, `outline()`, `chunks`,
//! `definitions()`, the enclosing functions of `callers()`, `implementations()` and `search()`.
//!
//! The index lives in the parent (it is built there, and a first question must not wait for all
//! of it); the worker asks over the protocol and the parent answers through [`IndexQueries`].
//! [`StaticIndex`] is a plain implementation over lists of definitions and chunks.

use crate::index::bm25::Bm25;
use crate::index::grep::PathFilter;
use crate::index::{Chunk, DefKind, Definition, Implementation, find_implementations};
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
    /// Waits until the index covers every file, at most `timeout`; whether it does.
    fn wait_complete(&self, _timeout: std::time::Duration) -> bool {
        true
    }
    /// `definitions(name)`: the definitions named exactly `name`, else named `name` ignoring
    /// case; `Parent::name` or `Parent.name` also filters on the parent (see
    /// [`exact_definitions`]). In path then line order.
    fn definitions(&self, name: &str) -> Vec<Definition> {
        exact_definitions(&self.symbols(&SymbolQuery::default()), name)
    }
    /// For each `(path, line)`: the innermost function or method whose lines hold it.
    fn enclosing(&self, locations: &[(String, u32)]) -> Vec<Option<Definition>> {
        let mut outlines: std::collections::HashMap<&str, Vec<Definition>> = Default::default();
        locations
            .iter()
            .map(|(path, line)| {
                let defs = outlines
                    .entry(path.as_str())
                    .or_insert_with(|| self.outline(path).into_iter().map(|(_, d)| d).collect());
                innermost_function(defs.iter(), *line).cloned()
            })
            .collect()
    }
    /// The types implementing or extending `name` (see [`find_implementations`]); without the
    /// source, from the definitions' signature lines only.
    fn implementations(&self, name: &str) -> Vec<Implementation> {
        let all = self.symbols(&SymbolQuery::default());
        let refs: Vec<&Definition> = all.iter().collect();
        find_implementations(&refs, name, |_: &Definition| -> Option<&str> { None })
    }
    /// The `k` chunks that BM25 ranks best for `query`, best first.
    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>, String> {
        let _ = (query, k);
        Err("search() is not available with this index; use grep(pattern) instead".into())
    }
}

/// One `search()` result: a chunk and its BM25 score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub chunk: Chunk,
    pub score: f64,
}

/// The text BM25 indexes for a chunk: its path, its name, and its source.
pub fn search_document(chunk: &Chunk, text: &str) -> String {
    format!(
        "{}\n{}\n{}",
        chunk.path,
        chunk.name.as_deref().unwrap_or(""),
        text
    )
}

/// The best `k` of `chunks` for `query` under `bm25` (built over the same list).
pub fn search_chunks(bm25: &Bm25, chunks: &[Chunk], query: &str, k: usize) -> Vec<SearchHit> {
    bm25.top(query, k)
        .into_iter()
        .filter_map(|(i, score)| {
            chunks.get(i).map(|c| SearchHit {
                chunk: c.clone(),
                score,
            })
        })
        .collect()
}

/// The innermost function or method among `defs` (of one file) whose lines hold `line`.
pub fn innermost_function<'a>(
    defs: impl IntoIterator<Item = &'a Definition>,
    line: u32,
) -> Option<&'a Definition> {
    defs.into_iter()
        .filter(|d| matches!(d.kind, DefKind::Function | DefKind::Method))
        .filter(|d| d.start_line <= line && line <= d.end_line)
        .max_by_key(|d| (d.start_byte, std::cmp::Reverse(d.end_byte)))
}

/// `definitions(name)`: the definitions named exactly `name` (case-sensitive), else those named
/// `name` ignoring case. `Parent::name` / `Parent.name` keeps those whose parent is `Parent`
/// (as `symbols()` does).
pub fn exact_definitions<'a>(
    defs: impl IntoIterator<Item = &'a Definition>,
    name: &str,
) -> Vec<Definition> {
    let name = name.trim();
    let split = match name.rsplit_once("::").or_else(|| name.rsplit_once('.')) {
        Some((p, n)) if !p.is_empty() && !n.is_empty() => Some((p, n)),
        _ => None,
    };
    let defs: Vec<&Definition> = defs.into_iter().collect();
    if let Some((parent, member)) = split {
        let found = named(&defs, member, Some(parent));
        if !found.is_empty() {
            return found;
        }
        // A name that is itself qualified (Ruby's `class Outer::Inner`).
    }
    named(&defs, name, None)
}

/// Definitions named `name` exactly, else ignoring case, whose parent is `parent` if given.
fn named(defs: &[&Definition], name: &str, parent: Option<&str>) -> Vec<Definition> {
    let lower = name.to_lowercase();
    let mut exact = Vec::new();
    let mut folded = Vec::new();
    for d in defs {
        let parent_ok = parent.is_none_or(|p| {
            d.parent.as_deref().is_some_and(|dp| {
                dp.eq_ignore_ascii_case(p) || dp.rsplit(['.', ':']).next() == Some(p)
            })
        });
        if !parent_ok {
            continue;
        }
        if d.name == name {
            exact.push((*d).clone());
        } else if exact.is_empty() && d.name.to_lowercase() == lower {
            folded.push((*d).clone());
        }
    }
    if exact.is_empty() { folded } else { exact }
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

    fn definitions(&self, name: &str) -> Vec<Definition> {
        exact_definitions(&self.definitions, name)
    }

    fn implementations(&self, name: &str) -> Vec<Implementation> {
        let refs: Vec<&Definition> = self.definitions.iter().collect();
        find_implementations(&refs, name, |_: &Definition| -> Option<&str> { None })
    }

    /// Over the chunks' paths and names only: a `StaticIndex` has no source text.
    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>, String> {
        let bm25 = Bm25::from_fn(self.chunks.len(), |i| search_document(&self.chunks[i], ""));
        Ok(search_chunks(&bm25, &self.chunks, query, k))
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
    fn exact_definitions_and_enclosing_functions() {
        let ix = index();
        assert_eq!(names(&ix.definitions("Parser")), ["Parser:1", "Parser:10"]);
        assert_eq!(
            names(&ix.definitions("parser")),
            ["Parser:1", "Parser:10"],
            "case-insensitive when nothing matches exactly"
        );
        assert!(ix.definitions("pars").is_empty(), "no prefix matches");
        assert_eq!(names(&ix.definitions("Parser::parse")), ["parse:16"]);
        assert_eq!(names(&ix.definitions("Parser.new")), ["new:12"]);
        assert!(ix.definitions("Other::parse").is_empty());
        let qualified = StaticIndex::new(
            vec![def(
                "Outer::Reopened",
                DefKind::Class,
                "lib/a.rb",
                (1, 3),
                None,
            )],
            vec![],
        );
        assert_eq!(
            names(&qualified.definitions("Outer::Reopened")),
            ["Outer::Reopened:1"],
            "a qualified name of its own"
        );
        let at = |path: &str, line: u32| (path.to_string(), line);
        let got: Vec<Option<String>> = ix
            .enclosing(&[
                at("src/b.rs", 21),
                at("src/b.rs", 17),
                at("src/b.rs", 13),
                at("src/b.rs", 2),
                at("src/a.rs", 3),
                at("src/zzz.rs", 3),
            ])
            .into_iter()
            .map(|d| d.map(|d| d.name))
            .collect();
        let want = [
            Some("inner"),
            Some("parse"),
            Some("new"),
            None,
            Some("parse_args"),
            None,
        ];
        assert_eq!(got, want.map(|w| w.map(String::from)));
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
