//! Parsing one file under a deadline and extracting its definitions with the language's query.
//!
//! Nothing here recurses over the syntax tree: deep nesting costs heap, never stack. Parsing and
//! query execution both check the deadline through tree-sitter's progress callbacks.

use super::lang::{LangSpec, Role};
use super::{DefKind, Definition};
use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;
use streaming_iterator::StreamingIterator;
use tree_sitter::{
    InputEdit, Node, ParseOptions, ParseState, Parser, QueryCursor, QueryCursorOptions,
    QueryCursorState, QueryMatch, Tree,
};

/// Longest signature and name kept, in characters.
pub(crate) const TEXT_CAP: usize = 200;

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

struct Raw {
    start: usize,
    end: usize,
    start_line: u32,
    end_line: u32,
    orig_start: usize,
    name_start: usize,
    name: String,
    /// The kind before methods are told from functions by their container.
    kind: DefKind,
    /// An explicit parent (Go receiver, C++ qualified name); else the container's name.
    parent: Option<String>,
    detail: Option<String>,
    pattern: usize,
    /// Kept from a previous version (incremental updates); computed when `None`.
    signature: Option<String>,
}

/// A wrapper node: start byte, end byte, start line.
type Wrapper = (usize, usize, u32);

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

/// One definition per name node, ordered by position, with wrappers applied.
fn finish(mut raws: Vec<Raw>, mut wrappers: Vec<Wrapper>) -> Vec<Raw> {
    // One definition per name node: the first pattern wins (a Go struct before the
    // catch-all type pattern, a JS function before the ALL_CAPS constant pattern).
    raws.sort_unstable_by(|a, b| {
        (a.name_start, a.pattern, a.detail.is_none()).cmp(&(
            b.name_start,
            b.pattern,
            b.detail.is_none(),
        ))
    });
    raws.dedup_by(|later, first| later.name_start == first.name_start && later.name == first.name);
    raws.sort_unstable_by(|a, b| {
        (a.start, b.end, a.name_start).cmp(&(b.start, a.end, b.name_start))
    });

    // Wrappers (decorators, `export`, `template<...>`) extend the outermost definition they
    // hold. Innermost wrappers first, so nested templates extend step by step.
    if !wrappers.is_empty() {
        wrappers.sort_unstable_by_key(|w| w.1 - w.0);
        for &(w_start, w_end, w_line) in &wrappers {
            let first = raws.partition_point(|r| r.orig_start < w_start);
            let Some(top) = raws.get(first) else { continue };
            if top.orig_start >= w_end || top.end > w_end {
                continue;
            }
            let (top_start, top_end) = (top.orig_start, top.end);
            // Only a wrapper of one definition (a Go `type (...)` group holds several).
            let another = raws[first..]
                .iter()
                .find(|r| !(r.orig_start < top_end && r.end <= top_end))
                .is_some_and(|r| r.orig_start < w_end);
            if another {
                continue;
            }
            for r in raws[first..]
                .iter_mut()
                .take_while(|r| r.orig_start == top_start && r.end == top_end)
            {
                if w_start < r.start {
                    r.start = w_start;
                    r.start_line = w_line;
                }
            }
        }
        raws.sort_by(|a, b| (a.start, b.end, a.name_start).cmp(&(b.start, a.end, b.name_start)));
    }
    raws
}

/// Turns one query match into a raw definition (or records a wrapper).
fn collect(
    spec: &LangSpec,
    text: &str,
    m: &QueryMatch<'_, '_>,
    raws: &mut Vec<Raw>,
    wrappers: &mut Vec<Wrapper>,
) {
    let mut def = None;
    let mut name = None;
    let mut parent = None;
    let mut detail = None;
    for c in m.captures() {
        match spec.roles.get(c.index as usize) {
            Some(Role::Definition(kind)) => def = Some((*kind, c.node)),
            Some(Role::Name) => name = Some(c.node),
            Some(Role::Parent) => parent = Some(c.node),
            Some(Role::Detail) => detail = Some(c.node),
            Some(Role::Wrapper) => wrappers.push((
                c.node.start_byte(),
                c.node.end_byte(),
                to_u32(c.node.start_position().row + 1),
            )),
            Some(Role::Other) | None => {}
        }
    }
    let (Some((kind, node)), Some(name_node)) = (def, name) else {
        return;
    };
    let node_text = |n: tree_sitter::Node| text.get(n.byte_range()).unwrap_or("");
    let mut name = if kind == DefKind::Impl {
        impl_name(node_text(name_node))
    } else {
        clean(node_text(name_node))
    };
    let mut kind = kind;
    let mut parent = parent.map(|p| clean(node_text(p)));
    if spec.split_qualified_names
        && matches!(kind, DefKind::Function | DefKind::Method)
        && let Some((scope, last)) = split_qualified(&name)
    {
        let class = match split_qualified(scope) {
            Some((_, last_scope)) => last_scope,
            None => scope,
        };
        parent = Some(strip_generics(class).to_owned());
        name = last.to_owned();
        kind = DefKind::Method;
    }
    if node.kind() == "destructor_declaration" && !name.starts_with('~') {
        name.insert(0, '~');
    }
    if name.is_empty() {
        return;
    }
    let (start_point, end_point) = (node.start_position(), node.end_position());
    let end_row = if end_point.column == 0 && end_point.row > start_point.row {
        end_point.row
    } else {
        end_point.row + 1
    };
    raws.push(Raw {
        start: node.start_byte(),
        end: node.end_byte(),
        start_line: to_u32(start_point.row + 1),
        end_line: to_u32(end_row),
        orig_start: node.start_byte(),
        name_start: name_node.start_byte(),
        name,
        kind,
        parent,
        detail: detail.map(|d| clean(node_text(d))),
        pattern: m.pattern_index,
        signature: None,
    });
}

/// Assigns parents, depths and method kinds by containment, in one pass with an explicit stack.
fn nest(spec: &LangSpec, path: &str, text: &str, raws: Vec<Raw>) -> Extracted {
    let mut out = Extracted {
        defs: Vec::with_capacity(raws.len()),
        depths: Vec::with_capacity(raws.len()),
        containers: Vec::with_capacity(raws.len()),
        extra: DefExtra {
            name_starts: Vec::with_capacity(raws.len()),
            raw_kinds: Vec::with_capacity(raws.len()),
            explicit_parents: Vec::with_capacity(raws.len()),
        },
    };
    let mut stack: Vec<usize> = Vec::new();
    for raw in raws {
        while let Some(&top) = stack.last() {
            let t = &out.defs[top];
            let contains = t.start_byte <= raw.start
                && raw.end <= t.end_byte
                && !(t.start_byte == raw.start && t.end_byte == raw.end);
            if contains {
                break;
            }
            stack.pop();
        }
        let container = stack.last().copied();
        let container_kind = container.map(|c| out.defs[c].kind);
        let mut kind = raw.kind;
        if kind == DefKind::Function {
            let class_like = match container_kind {
                Some(
                    DefKind::Class
                    | DefKind::Struct
                    | DefKind::Interface
                    | DefKind::Impl
                    | DefKind::Enum,
                ) => true,
                Some(DefKind::Module) => spec.module_functions_are_methods,
                _ => false,
            };
            if class_like {
                kind = DefKind::Method;
            }
        }
        // Constants are module- or type-level; locals inside function bodies are not definitions.
        if kind == DefKind::Constant
            && matches!(container_kind, Some(DefKind::Function | DefKind::Method))
        {
            continue;
        }
        let explicit = raw.parent.is_some();
        let parent = raw
            .parent
            .or_else(|| container.map(|c| out.defs[c].name.clone()));
        let signature = raw
            .signature
            .unwrap_or_else(|| signature(text, raw.start, raw.name_start));
        out.extra.name_starts.push(raw.name_start);
        out.extra.raw_kinds.push(raw.kind);
        out.extra.explicit_parents.push(explicit);
        out.defs.push(Definition {
            name: raw.name,
            kind,
            language: spec.lang,
            path: path.to_owned(),
            start_byte: raw.start,
            end_byte: raw.end,
            start_line: raw.start_line,
            end_line: raw.end_line,
            parent,
            signature,
            detail: raw.detail,
        });
        out.depths
            .push(u16::try_from(stack.len()).unwrap_or(u16::MAX));
        out.containers.push(container.map(to_u32));
        if kind.is_container() {
            stack.push(out.defs.len() - 1);
        }
    }
    out
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

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
fn impl_name(ty: &str) -> String {
    let base = strip_generics(ty);
    let base = base.rsplit("::").next().unwrap_or(base);
    clean(base)
}

/// `Foo<T>` -> `Foo`; text starting with `<` is kept whole.
fn strip_generics(s: &str) -> &str {
    match s.find('<') {
        Some(i) if i > 0 => s[..i].trim_end(),
        _ => s,
    }
}

/// Splits `a::B<T>::c` at its last `::` outside template brackets: `("a::B<T>", "c")`.
fn split_qualified(name: &str) -> Option<(&str, &str)> {
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
fn signature(text: &str, def_start: usize, name_start: usize) -> String {
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
    let line = text[start..end].trim();
    match line.char_indices().nth(TEXT_CAP) {
        Some((i, _)) => line[..i].trim_end().to_owned(),
        None => line.to_owned(),
    }
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
}
