//! Parsing one file under a deadline and extracting its definitions with the language's query.
//!
//! Nothing here recurses over the syntax tree: deep nesting costs heap, never stack. Parsing and
//! query execution both check the deadline through tree-sitter's progress callbacks.

mod matches;
mod names;

use super::lang::LangSpec;
use super::{DefKind, Definition};
use matches::{Raw, Wrapper, collect, finish, nest};
pub(crate) use names::clean;
use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;
use streaming_iterator::StreamingIterator;
use tree_sitter::{
    InputEdit, Node, ParseOptions, ParseState, Parser, QueryCursor, QueryCursorOptions,
    QueryCursorState, QueryMatch, Tree,
};

/// Why a file could not be parsed into definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    ParseTimeout,
    QueryTimeout,
    Parser(String),
}

/// The definitions of one file, ordered by position (start ascending, outer before inner).
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub defs: Vec<Definition>,
    /// Nesting depth of each definition (number of enclosing container definitions).
    pub depths: Vec<u16>,
    /// Index of the innermost enclosing container definition, by range.
    pub containers: Vec<Option<u32>>,
    pub extra: DefExtra,
}

/// A parser and a query cursor, reused across files by one thread.
pub(crate) struct Worker {
    parser: Parser,
    cursor: QueryCursor,
}

impl Default for Worker {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-definition facts kept for incremental re-extraction (files with a kept tree only).
#[derive(Debug, Default, Clone)]
pub(crate) struct DefExtra {
    pub name_starts: Vec<usize>,
    /// Kinds as the query gave them (before functions in classes became methods).
    pub raw_kinds: Vec<DefKind>,
    /// Whether the parent came from the query or name (Go receiver, C++ `Foo::bar`), not from
    /// the enclosing definition.
    pub explicit_parents: Vec<bool>,
}

/// The previous version of a file, for [`Worker::extract_incremental`].
pub(crate) struct Previous<'a> {
    pub defs: &'a [Definition],
    pub extra: &'a DefExtra,
    /// The previous tree, already edited to match the new text.
    pub tree: &'a Tree,
    pub old_text: &'a str,
    pub edit: &'a InputEdit,
}

impl Worker {
    pub fn new() -> Self {
        Worker {
            parser: Parser::new(),
            cursor: QueryCursor::new(),
        }
    }

    /// Parses `text` (incrementally when `old` is an edited previous tree), giving up at `deadline`.
    pub fn parse(
        &mut self,
        spec: &LangSpec,
        text: &str,
        old: Option<&Tree>,
        deadline: Instant,
    ) -> Result<Tree, Failure> {
        self.parser
            .set_language(&spec.language)
            .map_err(|e| Failure::Parser(e.to_string()))?;
        let bytes = text.as_bytes();
        let mut progress = |_: &ParseState| {
            if Instant::now() >= deadline {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let options = ParseOptions::new().progress_callback(&mut progress);
        let tree = self.parser.parse_with_options(
            &mut |offset, _| bytes.get(offset..).unwrap_or_default(),
            old,
            Some(options),
        );
        match tree {
            Some(tree) => Ok(tree),
            None => {
                // A cancelled parse resumes on the next call unless reset.
                self.parser.reset();
                if Instant::now() >= deadline {
                    Err(Failure::ParseTimeout)
                } else {
                    Err(Failure::Parser("the parser gave up".to_owned()))
                }
            }
        }
    }

    /// Runs the language's definition query and builds the definitions: over the whole tree when
    /// `exhaustive`, else only where the language's scopes lead (see `lang::scopes`).
    pub fn extract(
        &mut self,
        spec: &LangSpec,
        path: &str,
        text: &str,
        tree: &Tree,
        deadline: Instant,
        exhaustive: bool,
    ) -> Result<Extracted, Failure> {
        let mut raws: Vec<Raw> = Vec::new();
        let mut wrappers: Vec<Wrapper> = Vec::new();
        let mut sink = |m: &QueryMatch<'_, '_>| collect(spec, text, m, &mut raws, &mut wrappers);
        if exhaustive {
            let timed_out = Cell::new(false);
            let mut progress = |_: &QueryCursorState| {
                if Instant::now() >= deadline {
                    timed_out.set(true);
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            self.cursor.set_max_start_depth(None);
            let options = QueryCursorOptions::new().progress_callback(&mut progress);
            let mut matches = self.cursor.matches_with_options(
                &spec.query,
                tree.root_node(),
                text.as_bytes(),
                options,
            );
            while let Some(m) = matches.next() {
                sink(m);
            }
            drop(matches);
            if timed_out.get() {
                return Err(Failure::QueryTimeout);
            }
        } else {
            self.walk_scoped(spec, text, tree.root_node(), deadline, &mut sink)?;
        }
        let raws = finish(raws, wrappers);
        Ok(nest(spec, path, text, raws))
    }

    /// Like [`Worker::extract`] after an edit, but re-runs the query only over the region the
    /// edit touched: the smallest run of sibling nodes holding the edited and changed ranges,
    /// found by descending through scopes (a class, a module) that strictly contain them. The
    /// previous definitions before and after the region are kept (shifted); those of the scopes
    /// on the way down are re-read (their name or range may have changed).
    pub fn extract_incremental(
        &mut self,
        spec: &LangSpec,
        path: &str,
        text: &str,
        tree: &Tree,
        deadline: Instant,
        prev: &Previous<'_>,
    ) -> Result<Extracted, Failure> {
        let edit = prev.edit;
        let (mut s, mut e) = (edit.start_byte, edit.new_end_byte);
        for r in prev.tree.changed_ranges(tree) {
            s = s.min(r.start_byte);
            e = e.max(r.end_byte);
        }
        // Descend to the region.
        let mut path_nodes: Vec<Node<'_>> = vec![tree.root_node()];
        let (region_start, region_end, kids) = loop {
            let node = path_nodes[path_nodes.len() - 1];
            let mut kids: Vec<Node<'_>> = Vec::new();
            let mut cursor = node.walk();
            // (A linear scan: `goto_first_child_for_byte` misses children after an ERROR node.)
            if cursor.goto_first_child() {
                loop {
                    let c = cursor.node();
                    if c.start_byte() > e {
                        break;
                    }
                    if c.end_byte() >= s {
                        kids.push(c);
                    }
                    if !cursor.goto_next_sibling() {
                        break;
                    }
                }
            }
            // Not through a wrapper: the definition it extends is its child, not on the path.
            if let [only] = kids[..]
                && spec.is_scope(only.kind_id())
                && !spec.is_wrapper(only.kind_id())
                && only.start_byte() < s
                && e < only.end_byte()
            {
                path_nodes.push(only);
                continue;
            }
            let start = kids.first().map_or(s, |c| c.start_byte().min(s));
            let end = kids.last().map_or(e, |c| c.end_byte().max(e));
            break (start, end, kids);
        };

        // Fresh definitions: the scopes on the way down, and everything in the region.
        let mut raws: Vec<Raw> = Vec::new();
        let mut wrappers: Vec<Wrapper> = Vec::new();
        let mut sink = |m: &QueryMatch<'_, '_>| collect(spec, text, m, &mut raws, &mut wrappers);
        self.cursor.set_max_start_depth(Some(0));
        for node in &path_nodes {
            if spec.is_root(node.kind_id()) {
                let mut matches = self.cursor.matches(&spec.query, *node, text.as_bytes());
                while let Some(m) = matches.next() {
                    sink(m);
                }
            }
        }
        for kid in &kids {
            self.walk_scoped(spec, text, *kid, deadline, &mut sink)?;
        }
        let on_path = |r: &Raw| {
            path_nodes
                .iter()
                .any(|n| n.start_byte() == r.orig_start && n.end_byte() == r.end)
        };
        raws.retain(|r| (region_start <= r.orig_start && r.end <= region_end) || on_path(r));
        let mut raws = finish(raws, wrappers);

        // Kept definitions: before the region as they were, after it shifted.
        let delta = edit.new_end_byte as isize - edit.old_end_byte as isize;
        let old_region_end = region_end.saturating_add_signed(-delta);
        let newlines = |t: &str, a: usize, b: usize| {
            t.as_bytes()
                .get(a..b)
                .map_or(0, |s| s.iter().filter(|&&c| c == b'\n').count())
        };
        let line_delta = newlines(text, edit.start_byte, edit.new_end_byte) as i64
            - newlines(prev.old_text, edit.start_byte, edit.old_end_byte) as i64;
        let shift_line = |l: u32| u32::try_from(i64::from(l) + line_delta).unwrap_or(1);
        let same_line = |a: usize, b: usize| {
            let (a, b) = (a.min(b), a.max(b));
            text.get(a..b).is_some_and(|t| !t.contains('\n'))
        };
        for (i, d) in prev.defs.iter().enumerate() {
            let (Some(&name_start), Some(&kind), Some(&explicit)) = (
                prev.extra.name_starts.get(i),
                prev.extra.raw_kinds.get(i),
                prev.extra.explicit_parents.get(i),
            ) else {
                continue;
            };
            let kept = if d.end_byte <= region_start {
                Some((
                    d.start_byte,
                    d.end_byte,
                    d.start_line,
                    d.end_line,
                    name_start,
                ))
            } else if d.start_byte >= old_region_end {
                Some((
                    d.start_byte.saturating_add_signed(delta),
                    d.end_byte.saturating_add_signed(delta),
                    shift_line(d.start_line),
                    shift_line(d.end_line),
                    name_start.saturating_add_signed(delta),
                ))
            } else {
                None
            };
            let Some((start, end, start_line, end_line, name_start)) = kept else {
                continue;
            };
            // A signature on a line the edit reached is read again.
            let touched = same_line(name_start, region_start) || same_line(name_start, region_end);
            raws.push(Raw {
                start,
                end,
                start_line,
                end_line,
                orig_start: start,
                name_start,
                name: d.name.clone(),
                kind,
                parent: if explicit { d.parent.clone() } else { None },
                detail: d.detail.clone(),
                pattern: 0,
                signature: (!touched).then(|| d.signature.clone()),
            });
        }
        raws.sort_by(|a, b| (a.start, b.end, a.name_start).cmp(&(b.start, a.end, b.name_start)));
        Ok(nest(spec, path, text, raws))
    }

    /// Walks the subtree of `from` through the language's scopes, running the query (anchored at
    /// the node) wherever a pattern starts.
    fn walk_scoped(
        &mut self,
        spec: &LangSpec,
        text: &str,
        from: Node<'_>,
        deadline: Instant,
        sink: &mut impl FnMut(&QueryMatch<'_, '_>),
    ) -> Result<(), Failure> {
        self.cursor.set_max_start_depth(Some(0));
        let mut walk = from.walk();
        let mut visited = 0u32;
        loop {
            let node = walk.node();
            visited = visited.wrapping_add(1);
            if visited.is_multiple_of(1024) && Instant::now() >= deadline {
                return Err(Failure::QueryTimeout);
            }
            let kind = node.kind_id();
            if spec.is_root(kind) {
                let mut matches = self.cursor.matches(&spec.query, node, text.as_bytes());
                while let Some(m) = matches.next() {
                    sink(m);
                }
            }
            if (spec.is_scope(kind) || node.is_error()) && walk.goto_first_child() {
                continue;
            }
            loop {
                if walk.goto_next_sibling() {
                    break;
                }
                if !walk.goto_parent() {
                    return Ok(());
                }
            }
        }
    }
}
