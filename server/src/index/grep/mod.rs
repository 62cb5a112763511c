//! Regular-expression search over in-memory workspace text, line by line like `grep -n`.
//!
//! Plain Rust over any [`Haystack`] (a slice of `(path, text)` pairs, the REPL worker's mapped
//! context blob, ...), so both the REPL's `grep()` and the language server use it.
//!
//! How it is fast:
//! - the whole file is searched at once with `regex-automata`'s meta regex, which picks literal
//!   prefilters itself (memchr/memmem for one literal, Teddy/Aho-Corasick for a few, a lazy DFA
//!   otherwise); lines are found only around matches;
//! - line numbers are counted (SIMD newline counting) only for the matches that are kept; past
//!   `max_results`, files are only counted;
//! - large inputs are split by file over all cores; the result is the same as a serial pass (path
//!   order, then line order).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex_automata::Input;
use regex_automata::meta::Regex;
use regex_syntax::hir::literal::{Extractor, Seq};
use regex_syntax::hir::{
    Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Literal,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Characters of a matching line kept in [`GrepMatch::text`] by default.
pub const DEFAULT_MAX_LINE_CHARS: usize = 300;
/// Below this many bytes, one thread searches everything.
const PARALLEL_MIN_BYTES: u64 = 2 << 20;

/// What can be searched: files by index, each with a path and UTF-8 text.
pub trait Haystack: Sync {
    fn file_count(&self) -> usize;
    fn path(&self, i: usize) -> &str;
    fn text(&self, i: usize) -> &[u8];
}

impl<P: AsRef<str> + Sync, T: AsRef<[u8]> + Sync> Haystack for [(P, T)] {
    fn file_count(&self) -> usize {
        self.len()
    }

    fn path(&self, i: usize) -> &str {
        self[i].0.as_ref()
    }

    fn text(&self, i: usize) -> &[u8] {
        self[i].1.as_ref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrepError {
    #[error("invalid regular expression: {0}")]
    Regex(String),
    #[error("invalid glob {glob:?} in paths: {message}")]
    Glob { glob: String, message: String },
}

/// A compiled search pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    re: Regex,
    /// Literals every match contains, when the pattern has no good prefix literal: their hits
    /// are candidate lines, on which `re` is then run (ripgrep's inner-literal strategy).
    inner: Option<Regex>,
}

impl Pattern {
    /// A regular expression in the `regex` crate's syntax (Unicode-aware; `^` and `$` match at
    /// line boundaries). Like grep, a match never spans lines: character classes (`\s`, `[^a]`,
    /// `.` in `(?s)` mode) do not match `\n`, and a pattern with a literal `\n` is refused.
    /// `ignore_case` is Unicode case folding.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Pattern, GrepError> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(ignore_case)
            .multi_line(true)
            .build()
            .parse(pattern)
            .map_err(|e| GrepError::Regex(e.to_string()))?;
        let hir = one_line(hir)?;
        let build = |hir: &Hir| {
            Regex::builder().build_from_hir(hir).map_err(|e| match e.size_limit() {
                Some(limit) => GrepError::Regex(format!(
                    "the pattern is too large once compiled (over {limit} bytes); use a simpler \
                     pattern or several searches"
                )),
                None => GrepError::Regex(e.to_string()),
            })
        };
        let re = build(&hir)?;
        let inner = match inner_literals(&hir) {
            Some(lits) => Some(build(&lits)?),
            None => None,
        };
        Ok(Pattern { re, inner })
    }
}

/// `hir` with `\n` removed from every class; `Err` if it holds a literal `\n`.
fn one_line(hir: Hir) -> Result<Hir, GrepError> {
    Ok(match hir.into_kind() {
        HirKind::Literal(Literal(bytes)) => {
            if bytes.contains(&b'\n') {
                return Err(GrepError::Regex(
                    "the pattern contains a line break (\\n), but grep matches one line at a \
                     time; search for the lines separately"
                        .into(),
                ));
            }
            Hir::literal(bytes)
        }
        HirKind::Class(Class::Unicode(mut c)) => {
            c.difference(&ClassUnicode::new([ClassUnicodeRange::new('\n', '\n')]));
            Hir::class(Class::Unicode(c))
        }
        HirKind::Class(Class::Bytes(mut c)) => {
            c.difference(&ClassBytes::new([ClassBytesRange::new(b'\n', b'\n')]));
            Hir::class(Class::Bytes(c))
        }
        HirKind::Repetition(mut r) => {
            r.sub = Box::new(one_line(*r.sub)?);
            Hir::repetition(r)
        }
        HirKind::Capture(mut c) => {
            c.sub = Box::new(one_line(*c.sub)?);
            Hir::capture(c)
        }
        HirKind::Concat(subs) => {
            Hir::concat(subs.into_iter().map(one_line).collect::<Result<_, _>>()?)
        }
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.into_iter().map(one_line).collect::<Result<_, _>>()?)
        }
        HirKind::Empty => Hir::empty(),
        HirKind::Look(look) => Hir::look(look),
    })
}

/// A few literals, at least 2 bytes each, one of which every match contains, when the pattern
/// has no such prefix (then the regex engine's own prefilter does the job): as an alternation.
fn inner_literals(hir: &Hir) -> Option<Hir> {
    let good = |seq: &Seq| {
        seq.is_finite()
            && seq.len().is_some_and(|n| (1..=64).contains(&n))
            && seq.min_literal_len().is_some_and(|n| n >= 2)
    };
    let mut prefixes = Extractor::new().extract(hir);
    prefixes.optimize_for_prefix_by_preference();
    if good(&prefixes) {
        return None;
    }
    let mut top = hir;
    while let HirKind::Capture(c) = top.kind() {
        top = &c.sub;
    }
    let HirKind::Concat(parts) = top.kind() else {
        return None;
    };
    let mut best: Option<Seq> = None;
    for part in parts {
        let mut seq = Extractor::new().extract(part);
        seq.optimize_for_prefix_by_preference();
        if good(&seq)
            && best
                .as_ref()
                .is_none_or(|b| seq.min_literal_len() > b.min_literal_len())
        {
            best = Some(seq);
        }
    }
    let lits = best?
        .literals()?
        .iter()
        .map(|l| Hir::literal(l.as_bytes()))
        .collect();
    Some(Hir::alternation(lits))
}

/// Which files to search, by path: each spec is an exact path, a directory prefix (`src` or
/// `src/`), or a glob (`*.rs`, `src/**/test_*.py`; `*` does not cross `/`, and a glob without
/// `/` matches the file name in any directory). Leading `./` and `/` are ignored; `""` and `"."`
/// match everything.
#[derive(Debug, Clone)]
pub struct PathFilter {
    prefixes: Vec<String>,
    globs: GlobSet,
    all: bool,
}

impl PathFilter {
    pub fn new<S: AsRef<str>>(specs: &[S]) -> Result<PathFilter, GrepError> {
        let mut prefixes = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut all = false;
        for spec in specs {
            let raw = spec.as_ref();
            let s = raw.trim_start_matches("./").trim_start_matches('/');
            if s.is_empty() || s == "." {
                all = true;
            } else if s.contains(['*', '?', '[', '{']) {
                let s = if s.contains('/') {
                    s.to_string()
                } else {
                    format!("**/{s}")
                };
                let glob = GlobBuilder::new(&s)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| GrepError::Glob {
                        glob: raw.to_string(),
                        message: e.kind().to_string(),
                    })?;
                globs.add(glob);
            } else {
                prefixes.push(s.trim_end_matches('/').to_string());
            }
        }
        let globs = globs.build().map_err(|e| GrepError::Glob {
            glob: specs
                .iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            message: e.to_string(),
        })?;
        Ok(PathFilter {
            prefixes,
            globs,
            all,
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.all
            || self.prefixes.iter().any(|p| {
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            || (!self.globs.is_empty() && self.globs.is_match(path))
    }
}

/// The files of `hay` that `filter` accepts (all without one), in path order.
pub fn select_files<H: Haystack + ?Sized>(hay: &H, filter: Option<&PathFilter>) -> Vec<usize> {
    let mut files: Vec<usize> = (0..hay.file_count())
        .filter(|&i| filter.is_none_or(|f| f.matches(hay.path(i))))
        .collect();
    if !files.is_sorted_by(|&a, &b| hay.path(a) <= hay.path(b)) {
        files.sort_by(|&a, &b| hay.path(a).cmp(hay.path(b)));
    }
    files
}

#[derive(Debug, Clone, Copy)]
pub struct GrepOptions {
    /// Matching lines kept in [`GrepOutput::matches`]; the rest are only counted.
    pub max_results: usize,
    /// Characters of a line kept; a longer line is cut to a window around the match, with `...`.
    pub max_line_chars: usize,
    /// Threads to use; 0 means one per core (one thread for small inputs).
    pub threads: usize,
}

impl Default for GrepOptions {
    fn default() -> Self {
        GrepOptions {
            max_results: 1000,
            max_line_chars: DEFAULT_MAX_LINE_CHARS,
            threads: 0,
        }
    }
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrepMatch {
    /// Index of the file in the haystack.
    pub file: usize,
    /// 1-based line number (lines end with `\n`).
    pub line: u32,
    /// The line without its line terminator, cut to `max_line_chars` characters.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrepOutput {
    /// The first `max_results` matching lines, in the order of the files given, then by line.
    pub matches: Vec<GrepMatch>,
    /// All matching lines, including those not kept.
    pub total: usize,
    /// Files with at least one matching line.
    pub files_matched: usize,
    /// `(file, matching lines)` of every file with a match, in the order of the files given.
    pub file_counts: Vec<(usize, usize)>,
    pub bytes_searched: u64,
}

/// A kept match before its text is cut out: byte offsets into the file.
#[derive(Debug, Clone, Copy)]
struct Hit {
    line: u32,
    line_start: usize,
    line_end: usize,
    match_start: usize,
}

/// Results for one file: (position in `files`, matching lines, kept hits).
type FileHits = (usize, usize, Vec<Hit>);

/// Searches `files` (indices into `hay`, in the order results should come out) line by line.
pub fn grep<H: Haystack + ?Sized>(
    hay: &H,
    files: &[usize],
    pattern: &Pattern,
    opts: &GrepOptions,
) -> GrepOutput {
    let bytes: u64 = files.iter().map(|&i| hay.text(i).len() as u64).sum();
    let threads = match opts.threads {
        0 if bytes < PARALLEL_MIN_BYTES => 1,
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, files.len().max(1));

    let max = opts.max_results;
    let next = AtomicUsize::new(0);
    let kept = AtomicUsize::new(0);
    let results: Mutex<Vec<FileHits>> = Mutex::new(Vec::new());
    let work = || {
        let mut mine: Vec<FileHits> = Vec::new();
        loop {
            // Read `kept` before claiming the next file: it then counts hits of earlier files
            // only (files are claimed in order), so a file skipped for storage is past `max`.
            let before = kept.load(Ordering::SeqCst);
            let k = next.fetch_add(1, Ordering::SeqCst);
            let Some(&file) = files.get(k) else { break };
            let cap = if before >= max { 0 } else { max };
            let mut hits = Vec::new();
            let n = search_file(pattern, hay.text(file), cap, &mut hits);
            if n > 0 {
                kept.fetch_add(hits.len(), Ordering::SeqCst);
                mine.push((k, n, hits));
            }
        }
        results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(mine);
    };
    std::thread::scope(|s| {
        let mut spawned = 0;
        for _ in 1..threads {
            // A thread that cannot be started (limits) just leaves more work to the others.
            if std::thread::Builder::new()
                .name("grep".into())
                .spawn_scoped(s, work)
                .is_ok()
            {
                spawned += 1;
            }
        }
        let _ = spawned;
        work();
    });

    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_unstable_by_key(|r| r.0);
    let mut out = GrepOutput {
        bytes_searched: bytes,
        files_matched: results.len(),
        ..GrepOutput::default()
    };
    for (k, n, hits) in results {
        out.total += n;
        let file = files[k];
        out.file_counts.push((file, n));
        let text = hay.text(file);
        for h in hits {
            if out.matches.len() >= max {
                break;
            }
            out.matches.push(GrepMatch {
                file,
                line: h.line,
                text: excerpt(
                    &text[h.line_start..h.line_end],
                    h.match_start - h.line_start,
                    opts.max_line_chars,
                ),
            });
        }
    }
    out
}

/// Counts the lines of `text` that match, keeping the first `cap` of them in `hits`.
fn search_file(p: &Pattern, text: &[u8], cap: usize, hits: &mut Vec<Hit>) -> usize {
    let mut count = 0;
    let mut pos = 0;
    let mut line = 1u32;
    let mut counted_to = 0;
    // Finds the next matching line at or after `pos`: (match start, line start, line end).
    let next = |pos: usize| -> Option<(usize, usize, usize)> {
        let bounds = |at: usize| {
            let start = memchr::memrchr(b'\n', &text[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i);
            (start, end)
        };
        let Some(inner) = &p.inner else {
            let m = p.re.search(&Input::new(text).range(pos..))?;
            let (start, end) = bounds(m.start());
            return Some((m.start(), start, end));
        };
        let mut pos = pos;
        while pos < text.len() {
            let c = inner.search(&Input::new(text).range(pos..))?;
            let (start, end) = bounds(c.start());
            if let Some(m) = p.re.search(&Input::new(text).range(start..end)) {
                return Some((m.start(), start, end));
            }
            pos = end + 1;
        }
        None
    };
    while pos < text.len() {
        let Some((start, line_start, line_end)) = next(pos) else {
            break;
        };
        count += 1;
        if hits.len() < cap {
            line += memchr::memchr_iter(b'\n', &text[counted_to..line_start]).count() as u32;
            counted_to = line_start;
            hits.push(Hit {
                line,
                line_start,
                line_end,
                match_start: start,
            });
        }
        pos = line_end + 1;
    }
    count
}

/// The line as text, without `\r`, cut to `max_chars` characters around the match at byte `at`
/// (a third of the window before it), with `...` where it was cut.
fn excerpt(line: &[u8], at: usize, max_chars: usize) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // A line of at most `max_chars` bytes has at most that many characters.
    if line.len() <= max_chars {
        return String::from_utf8_lossy(line).into_owned();
    }
    let continuation = |i: usize| i < line.len() && (line[i] & 0xC0) == 0x80;
    let back = |from: &mut usize| {
        *from -= 1;
        while *from > 0 && continuation(*from) {
            *from -= 1;
        }
    };
    let mut from = at.min(line.len());
    let mut chars = 0;
    while from > 0 && chars < max_chars / 3 {
        back(&mut from);
        chars += 1;
    }
    let mut end = from;
    chars = 0;
    while end < line.len() && chars < max_chars {
        end += 1;
        while continuation(end) {
            end += 1;
        }
        chars += 1;
    }
    // Near the end of the line: show more of what comes before.
    while from > 0 && chars < max_chars {
        back(&mut from);
        chars += 1;
    }
    format!(
        "{}{}{}",
        if from > 0 { "..." } else { "" },
        String::from_utf8_lossy(&line[from..end]),
        if end < line.len() { "..." } else { "" }
    )
}

#[cfg(test)]
mod tests;
