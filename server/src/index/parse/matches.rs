//! From query matches to definitions: one per name node, wrappers (decorators, `export`,
//! `template<...>`) applied, then nested by containment with an explicit stack.

use super::names::{clean, impl_name, signature, split_qualified, strip_generics};
use super::{DefExtra, Extracted};
use crate::index::lang::{LangSpec, Role};
use crate::index::{DefKind, Definition};
use tree_sitter::QueryMatch;

pub(super) struct Raw {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) start_line: u32,
    pub(super) end_line: u32,
    pub(super) orig_start: usize,
    pub(super) name_start: usize,
    pub(super) name: String,
    /// The kind before methods are told from functions by their container.
    pub(super) kind: DefKind,
    /// An explicit parent (Go receiver, C++ qualified name); else the container's name.
    pub(super) parent: Option<String>,
    pub(super) detail: Option<String>,
    pub(super) pattern: usize,
    /// Kept from a previous version (incremental updates); computed when `None`.
    pub(super) signature: Option<String>,
}

/// A wrapper node: start byte, end byte, start line.
pub(super) type Wrapper = (usize, usize, u32);

/// One definition per name node, ordered by position, with wrappers applied.
pub(super) fn finish(mut raws: Vec<Raw>, mut wrappers: Vec<Wrapper>) -> Vec<Raw> {
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
pub(super) fn collect(
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
pub(super) fn nest(spec: &LangSpec, path: &str, text: &str, raws: Vec<Raw>) -> Extracted {
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
