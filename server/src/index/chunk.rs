//! Chunks: pieces of a file sized for reading or delegating to a sub-model.
//!
//! Chunks are whole lines, and every line of a file is in exactly one chunk, in order:
//! - a definition small enough (at most `max_lines` lines and `max_bytes` bytes) is one chunk of
//!   its kind (`function`, `class`, ...), named after it, with its parent; the comments and
//!   attributes right above it (no blank line between) belong to its chunk;
//! - a larger definition with nested definitions (a class and its methods) is cut at them: each
//!   nested definition is chunked the same way, and the code between them (the class header,
//!   fields, the closing brace) becomes pieces of the outer definition;
//! - a larger definition without nested definitions is cut into balanced pieces of at most
//!   `max_lines` lines and `max_bytes` bytes;
//! - a piece of definition `D` has `kind` = D's kind, `name` = D's name and `parent` = D's name;
//! - the code between top-level definitions becomes `lines` chunks (balanced windows of at most
//!   `window_lines` lines), except blank lines only, which join the chunk above;
//! - Markdown is chunked by headings (ATX `#` and setext, outside fenced code): kind `section`,
//!   name = heading text, parent = the enclosing heading (a lower level), split like definitions;
//! - other files, and files whose parse failed or was too big, are cut into `lines` windows.
//!
//! A single line longer than `max_bytes` (minified code) is still one chunk: lines are not split.

use super::{DefKind, Definition};
use serde::{Deserialize, Serialize};

/// What a chunk is: a definition (or a piece of one), a Markdown section, or plain lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    Def(DefKind),
    Section,
    Lines,
}

impl ChunkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Def(kind) => kind.as_str(),
            ChunkKind::Section => "section",
            ChunkKind::Lines => "lines",
        }
    }
}

/// A chunk's name or parent, by reference into the file's definitions or headings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    None,
    /// The name of definition `i`.
    DefName(u32),
    /// The parent of definition `i`.
    DefParent(u32),
    /// Markdown heading `i`.
    Heading(u32),
}

/// A chunk as stored: about 48 bytes, strings shared with the definitions (a file's chunks are
/// materialized as [`super::Chunk`]s on demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRec {
    pub start_byte: usize,
    pub end_byte: usize,
    pub start_line: u32,
    pub end_line: u32,
    pub kind: ChunkKind,
    pub name: Label,
    pub parent: Label,
}

fn idx(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Chunk sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// A definition or section longer than this (in lines) is split.
    pub max_lines: u32,
    /// A definition or section larger than this (in bytes) is split.
    pub max_bytes: usize,
    /// Line chunks (code between definitions, files without structure) hold at most this many lines.
    pub window_lines: u32,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_lines: 150,
            max_bytes: 8 * 1024,
            window_lines: 100,
        }
    }
}

/// Byte offsets of line starts; line numbers are 1-based.
pub(crate) struct Lines {
    /// `starts[i]` is where line `i + 1` starts; the last entry is the text's length.
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut starts = Vec::with_capacity(text.len() / 32 + 2);
        if !text.is_empty() {
            starts.push(0);
            starts.extend(
                text.match_indices('\n')
                    .map(|(i, _)| i + 1)
                    .filter(|&i| i < text.len()),
            );
        }
        starts.push(text.len());
        Lines { starts }
    }

    pub fn count(&self) -> u32 {
        u32::try_from(self.starts.len() - 1).unwrap_or(u32::MAX)
    }

    /// Start byte of line `line` (1-based).
    fn start(&self, line: u32) -> usize {
        self.starts[line as usize - 1]
    }

    /// End byte (exclusive, after its newline) of line `line`.
    fn end(&self, line: u32) -> usize {
        self.starts[line as usize]
    }

    fn bytes(&self, first: u32, last: u32) -> usize {
        self.end(last) - self.start(first)
    }
}

/// Owner of pieces: the definition or section being split.
#[derive(Clone, Copy)]
struct Owner {
    kind: ChunkKind,
    label: Label,
}

struct Chunker<'a> {
    text: &'a str,
    lines: &'a Lines,
    opts: ChunkOptions,
    out: Vec<ChunkRec>,
    /// First line of leading blank lines not yet in a chunk (blank lines at the top of a file).
    pending: Option<u32>,
}

impl<'a> Chunker<'a> {
    fn new(text: &'a str, lines: &'a Lines, opts: ChunkOptions) -> Self {
        let opts = ChunkOptions {
            max_lines: opts.max_lines.max(1),
            max_bytes: opts.max_bytes.max(1),
            window_lines: opts.window_lines.max(1),
        };
        Chunker {
            text,
            lines,
            opts,
            out: Vec::new(),
            pending: None,
        }
    }

    fn line_text(&self, line: u32) -> &'a str {
        self.text
            .get(self.lines.start(line)..self.lines.end(line))
            .unwrap_or("")
    }

    fn push(&mut self, kind: ChunkKind, name: Label, parent: Label, first: u32, last: u32) {
        let first = self.pending.take().map_or(first, |p| p.min(first));
        self.out.push(ChunkRec {
            kind,
            name,
            parent,
            start_byte: self.lines.start(first),
            end_byte: self.lines.end(last),
            start_line: first,
            end_line: last,
        });
    }

    /// Lines `first..=last` cut into balanced windows of at most `window` lines and `max_bytes`.
    fn windows(&mut self, first: u32, last: u32, window: u32, owner: Option<Owner>) {
        let total = last - first + 1;
        let pieces = total.div_ceil(window);
        let target = total.div_ceil(pieces);
        let mut start = first;
        while start <= last {
            let mut end = start;
            let mut bytes = self.lines.bytes(start, start);
            while end < last && end - start + 1 < target {
                let next = self.lines.bytes(end + 1, end + 1);
                if bytes + next > self.opts.max_bytes {
                    break;
                }
                bytes += next;
                end += 1;
            }
            match owner {
                Some(o) => self.push(o.kind, o.label, o.label, start, end),
                None => self.push(ChunkKind::Lines, Label::None, Label::None, start, end),
            }
            start = end + 1;
        }
    }

    /// Code outside any nested definition: blank lines join the chunk above; the rest becomes
    /// line chunks (top level) or pieces of the owner.
    fn gap(&mut self, first: u32, last: u32, owner: Option<Owner>) {
        if first > last {
            return;
        }
        let blank = (first..=last).all(|l| self.line_text(l).trim().is_empty());
        if blank {
            if let Some(prev) = self.out.last_mut()
                && prev.end_line + 1 == first
            {
                prev.end_line = last;
                prev.end_byte = self.lines.end(last);
                return;
            }
            if self.out.is_empty() {
                self.pending = Some(self.pending.map_or(first, |p| p.min(first)));
                return;
            }
        }
        let window = if owner.is_some() {
            self.opts.max_lines
        } else {
            self.opts.window_lines
        };
        self.windows(first, last, window, owner);
    }

    fn small(&self, first: u32, last: u32) -> bool {
        last - first < self.opts.max_lines && self.lines.bytes(first, last) <= self.opts.max_bytes
    }

    fn finish(mut self) -> Vec<ChunkRec> {
        if let Some(p) = self.pending.take() {
            let last = self.lines.count();
            self.windows(p, last, self.opts.window_lines, None);
        }
        self.out
    }
}

/// Line chunks for a whole file (no structure, or a degraded parse).
pub(crate) fn by_lines(text: &str, lines: &Lines, opts: ChunkOptions) -> Vec<ChunkRec> {
    let mut c = Chunker::new(text, lines, opts);
    if lines.count() > 0 {
        c.windows(1, lines.count(), c.opts.window_lines, None);
    }
    c.finish()
}

/// How deep splitting follows nested definitions before cutting the rest into plain pieces.
const MAX_SPLIT_DEPTH: u32 = 32;

/// Chunks from definitions (ordered by position, with their containers by index).
pub(crate) fn by_definitions(
    text: &str,
    lines: &Lines,
    opts: ChunkOptions,
    leading: &[&str],
    defs: &[Definition],
    containers: &[Option<u32>],
) -> Vec<ChunkRec> {
    let mut c = Chunker::new(text, lines, opts);
    let n = lines.count();
    if n == 0 {
        return c.finish();
    }
    // Children lists, by container index (defs are ordered, so each list is ordered too).
    let mut top = Vec::new();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); defs.len()];
    for (i, container) in containers.iter().enumerate() {
        match container {
            Some(p) => children[*p as usize].push(i),
            None => top.push(i),
        }
    }
    let mut cursor = 1u32;
    region(
        &mut c,
        &mut cursor,
        n,
        &top,
        None,
        defs,
        &children,
        leading,
        MAX_SPLIT_DEPTH,
    );
    c.finish()
}

#[allow(clippy::too_many_arguments)]
fn region(
    c: &mut Chunker<'_>,
    cursor: &mut u32,
    last: u32,
    items: &[usize],
    owner: Option<usize>,
    defs: &[Definition],
    children: &[Vec<usize>],
    leading: &[&str],
    budget: u32,
) {
    let owner_of = |i: usize| Owner {
        kind: ChunkKind::Def(defs[i].kind),
        label: Label::DefName(idx(i)),
    };
    for &i in items {
        let d = &defs[i];
        let end = d.end_line.min(last);
        if end < *cursor {
            continue;
        }
        // Comments and attributes right above the definition go with it.
        let mut first = d.start_line.max(*cursor);
        let mut lead = 0;
        while first > *cursor && lead < 100 {
            let above = c.line_text(first - 1).trim();
            if above.is_empty() || !leading.iter().any(|p| above.starts_with(p)) {
                break;
            }
            first -= 1;
            lead += 1;
        }
        if first > *cursor {
            c.gap(*cursor, first - 1, owner.map(owner_of));
        }
        if c.small(first, end) {
            let parent = if d.parent.is_some() {
                Label::DefParent(idx(i))
            } else {
                Label::None
            };
            c.push(
                ChunkKind::Def(d.kind),
                Label::DefName(idx(i)),
                parent,
                first,
                end,
            );
            *cursor = end + 1;
        } else if !children[i].is_empty() && budget > 0 {
            *cursor = first;
            region(
                c,
                cursor,
                end,
                &children[i],
                Some(i),
                defs,
                children,
                leading,
                budget - 1,
            );
        } else {
            c.windows(first, end, c.opts.max_lines, Some(owner_of(i)));
            *cursor = end + 1;
        }
    }
    if *cursor <= last {
        c.gap(*cursor, last, owner.map(owner_of));
        *cursor = last + 1;
    }
}

/// A Markdown heading: its line, level (1-6) and text.
struct Heading {
    line: u32,
    level: u8,
    title: String,
}

fn atx_heading(line: &str) -> Option<(u8, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    let level = t.bytes().take_while(|&b| b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let mut title = rest.trim();
    // An optional closing sequence of `#`s preceded by a space.
    let stripped = title.trim_end_matches('#');
    if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
        title = stripped.trim_end();
    }
    Some((u8::try_from(level).unwrap_or(6), super::parse::clean(title)))
}

fn markdown_headings(text: &str, lines: &Lines) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut fence: Option<(u8, usize)> = None;
    let mut prev_paragraph = false;
    let n = lines.count();
    let mut line_no = 1;
    // YAML front matter is not a heading.
    if text.starts_with("---\n") || text.starts_with("---\r\n") {
        line_no = 2;
        while line_no <= n {
            let l = &text[lines.start(line_no)..lines.end(line_no)];
            line_no += 1;
            if matches!(l.trim_end(), "---" | "...") {
                break;
            }
        }
    }
    while line_no <= n {
        let raw = &text[lines.start(line_no)..lines.end(line_no)];
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent <= 3 && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            let ch = trimmed.as_bytes()[0];
            let len = trimmed.bytes().take_while(|&b| b == ch).count();
            match fence {
                None => fence = Some((ch, len)),
                Some((c, l)) if c == ch && len >= l && trimmed[len..].trim().is_empty() => {
                    fence = None
                }
                Some(_) => {}
            }
            prev_paragraph = false;
            line_no += 1;
            continue;
        }
        if fence.is_some() {
            line_no += 1;
            continue;
        }
        if let Some((level, title)) = atx_heading(line) {
            out.push(Heading {
                line: line_no,
                level,
                title,
            });
            prev_paragraph = false;
        } else if prev_paragraph
            && indent <= 3
            && !trimmed.is_empty()
            && (trimmed.trim_end().bytes().all(|b| b == b'=')
                || (trimmed.trim_end().bytes().all(|b| b == b'-') && trimmed.trim_end().len() >= 2))
        {
            let level = if trimmed.starts_with('=') { 1 } else { 2 };
            let title_line = line_no - 1;
            let title = super::parse::clean(&text[lines.start(title_line)..lines.end(title_line)]);
            out.push(Heading {
                line: title_line,
                level,
                title,
            });
            prev_paragraph = false;
        } else {
            prev_paragraph = !trimmed.is_empty()
                && out.last().is_none_or(|h| h.line != line_no)
                && !trimmed.starts_with(['-', '*', '+', '>', '|']);
        }
        line_no += 1;
    }
    out
}

/// Markdown: one `section` chunk per heading (to the next heading), split when large. Returns
/// the chunks and the heading titles their labels refer to.
pub(crate) fn markdown(
    text: &str,
    lines: &Lines,
    opts: ChunkOptions,
) -> (Vec<ChunkRec>, Vec<String>) {
    let mut c = Chunker::new(text, lines, opts);
    let n = lines.count();
    if n == 0 {
        return (c.finish(), Vec::new());
    }
    let headings = markdown_headings(text, lines);
    let first_heading = headings.first().map_or(n + 1, |h| h.line);
    if first_heading > 1 {
        c.gap(1, first_heading - 1, None);
    }
    // Enclosing headings: (level, index).
    let mut stack: Vec<(u8, usize)> = Vec::new();
    for (i, h) in headings.iter().enumerate() {
        let last = headings.get(i + 1).map_or(n, |next| next.line - 1);
        while stack.last().is_some_and(|(level, _)| *level >= h.level) {
            stack.pop();
        }
        let parent = stack
            .last()
            .map_or(Label::None, |(_, j)| Label::Heading(idx(*j)));
        let label = Label::Heading(idx(i));
        if c.small(h.line, last) {
            c.push(ChunkKind::Section, label, parent, h.line, last);
        } else {
            let owner = Owner {
                kind: ChunkKind::Section,
                label,
            };
            c.windows(h.line, last, c.opts.max_lines, Some(owner));
        }
        stack.push((h.level, i));
    }
    (c.finish(), headings.into_iter().map(|h| h.title).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(chunks: &[ChunkRec], headings: &[String]) -> String {
        let label = |l: Label| match l {
            Label::Heading(i) => Some(headings[i as usize].as_str()),
            _ => None,
        };
        chunks
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} {:?} [{}-{}]\n",
                    c.kind.as_str(),
                    label(c.name),
                    label(c.parent),
                    c.start_line,
                    c.end_line
                )
            })
            .collect()
    }

    #[test]
    fn lines_and_windows() {
        let text = "a\n".repeat(250);
        let lines = Lines::new(&text);
        assert_eq!(lines.count(), 250);
        let chunks = by_lines(&text, &lines, ChunkOptions::default());
        assert_eq!(
            render(&chunks, &[]),
            "lines None None [1-84]\nlines None None [85-168]\nlines None None [169-250]\n"
        );
        assert_eq!(Lines::new("").count(), 0);
        assert_eq!(Lines::new("a").count(), 1);
        assert_eq!(Lines::new("a\nb\n").count(), 2);
        assert!(by_lines("", &Lines::new(""), ChunkOptions::default()).is_empty());
    }

    #[test]
    fn markdown_sections() {
        let text = "intro\n\n# Title\ntext\n```\n# not a heading\n```\n## Sub ##\nmore\nSetext\n------\nx\n";
        let lines = Lines::new(text);
        let (chunks, headings) = markdown(text, &lines, ChunkOptions::default());
        expect_test::expect![[r#"
            lines None None [1-2]
            section Some("Title") None [3-7]
            section Some("Sub") Some("Title") [8-9]
            section Some("Setext") Some("Title") [10-12]
        "#]]
        .assert_eq(&render(&chunks, &headings));
    }
}
