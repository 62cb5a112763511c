//! The code tools model code gets beside `context`: `grep`, `read`, match counts and call sites
//! (done here, in Rust, over the mapped blob), and `symbols`, `outline`, `chunks`,
//! `definitions`, enclosing functions, `implementations` and `search` (asked of the parent's
//! index over the protocol). `prelude.py` wraps them in the Python functions the model calls.

use super::blob::BlobReader;
use super::index::{SearchHit, parse_kind};
use super::protocol::{CHUNK_PAGE, FromWorker, IndexQuery, IndexReply, ToWorker};
use crate::index::grep::{self, GrepOptions, Haystack, PathFilter, Pattern};
use crate::index::{Chunk, DefKind, Definition};
use pyo3::exceptions::{
    PyFileNotFoundError, PyIndexError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyString, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Lines `read()` returns when no `end_line` is given.
const READ_DEFAULT_LINES: usize = 1000;

/// Why `path` is not a file of the workspace, with the likely paths meant.
pub(super) fn unknown_path(blob: &BlobReader, path: &str) -> String {
    let want = path.trim_start_matches("./").trim_start_matches('/');
    let file_name = want.rsplit('/').next().unwrap_or(want);
    let mut similar: Vec<String> = (0..blob.len())
        .map(|i| Haystack::path(blob, i))
        .filter(|p| !want.is_empty() && (p.ends_with(&format!("/{want}")) || *p == want))
        .take(3)
        .map(|p| format!("{p:?}"))
        .collect();
    if similar.is_empty() && !file_name.is_empty() {
        // Same file name in another directory.
        similar = (0..blob.len())
            .map(|i| Haystack::path(blob, i))
            .filter(|p| p.rsplit('/').next() == Some(file_name))
            .take(3)
            .map(|p| format!("{p:?}"))
            .collect();
    }
    let hint = if similar.is_empty() {
        "paths are relative to the workspace root with '/' separators; see list(context)[:20] \
         or use context.get(path)"
            .to_string()
    } else {
        format!("did you mean {}?", similar.join(" or "))
    };
    format!("{path:?} is not a file in context: {hint}")
}

fn index_error(message: String) -> PyErr {
    PyRuntimeError::new_err(message)
}

/// Sends a request to the parent process and waits for its reply (the worker's
/// `ask_parent`, given to `Tools` and `Chunks` when the worker makes them).
pub(super) type AskParent = fn(Python<'_>, FromWorker) -> Result<ToWorker, String>;

/// Asks the parent's index; an `Error` reply becomes a `RuntimeError`.
fn ask_index(py: Python<'_>, ask: AskParent, query: IndexQuery) -> PyResult<IndexReply> {
    match ask(py, FromWorker::IndexRequest { query }) {
        Ok(ToWorker::IndexReply {
            reply: IndexReply::Error { message },
        }) => Err(index_error(message)),
        Ok(ToWorker::IndexReply { reply }) => Ok(reply),
        Ok(other) => Err(index_error(format!(
            "unexpected answer from the parent: {other:?}"
        ))),
        Err(e) => Err(index_error(e)),
    }
}

/// `_rlm.Tools`: grep, read, symbols and outline over one workspace.
#[pyclass(frozen, module = "_rlm", name = "Tools")]
pub(super) struct Tools {
    blob: Arc<BlobReader>,
    ask: AskParent,
}

impl Tools {
    pub(super) fn new(blob: Arc<BlobReader>, ask: AskParent) -> Tools {
        Tools { blob, ask }
    }

    /// The files `paths` selects (all for `None`), or a `ValueError` saying why none is.
    fn select(&self, paths: Option<Vec<String>>) -> PyResult<Vec<usize>> {
        let filter = match &paths {
            Some(p) => Some(PathFilter::new(p).map_err(|e| PyValueError::new_err(e.to_string()))?),
            None => None,
        };
        let blob = &*self.blob;
        let files = grep::select_files(blob, filter.as_ref());
        if files.is_empty() && blob.len() > 0 {
            let spec = paths.unwrap_or_default();
            let hint = match spec.as_slice() {
                [one] if !one.contains(['*', '?', '[', '{']) => unknown_path(blob, one),
                _ => "use paths relative to the workspace root like 'src/main.rs', a directory \
                      like 'src/', or a glob like '*.py'; see list(context)[:20]"
                    .to_string(),
            };
            let shown: Vec<String> = spec.iter().map(|s| py_str(s)).collect();
            return Err(PyValueError::new_err(format!(
                "paths=[{}] match no file in context: {hint}",
                shown.join(", ")
            )));
        }
        Ok(files)
    }

    /// Hits as a list of `(path, line, text)` tuples.
    fn hit_list<'py>(
        &self,
        py: Python<'py>,
        matches: impl IntoIterator<Item = grep::GrepMatch>,
    ) -> PyResult<Bound<'py, PyList>> {
        let blob = &*self.blob;
        let list = PyList::empty(py);
        let mut last: Option<(usize, Bound<'py, PyString>)> = None;
        for m in matches {
            let path = match &last {
                Some((f, p)) if *f == m.file => p.clone(),
                _ => {
                    let p = PyString::new(py, Haystack::path(blob, m.file));
                    last = Some((m.file, p.clone()));
                    p
                }
            };
            list.append(PyTuple::new(
                py,
                [
                    path.into_any(),
                    m.line.into_pyobject(py)?.into_any(),
                    PyString::new(py, &m.text).into_any(),
                ],
            )?)?;
        }
        Ok(list)
    }

    fn definition(&self, def: Definition) -> PyDefinition {
        PyDefinition {
            def,
            blob: self.blob.clone(),
        }
    }

    fn file(&self, path: &str) -> PyResult<usize> {
        self.blob
            .find(path)
            .or_else(|| {
                self.blob
                    .find(path.trim_start_matches("./").trim_start_matches('/'))
            })
            .ok_or_else(|| PyFileNotFoundError::new_err(unknown_path(&self.blob, path)))
    }
}

#[pymethods]
impl Tools {
    /// `(matches, total)`: matches are `(path, line, text)` tuples.
    fn grep<'py>(
        &self,
        py: Python<'py>,
        pattern: &str,
        paths: Option<Vec<String>>,
        ignore_case: bool,
        max_results: usize,
    ) -> PyResult<(Bound<'py, PyList>, usize)> {
        let pattern =
            Pattern::new(pattern, ignore_case).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let files = self.select(paths)?;
        let opts = GrepOptions {
            max_results,
            ..GrepOptions::default()
        };
        let blob = &*self.blob;
        let out = py.detach(|| grep::grep(blob, &files, &pattern, &opts));
        let list = self.hit_list(py, out.matches)?;
        Ok((list, out.total))
    }

    /// `(counts, total)`: `(path, matching lines)` of every file with a match, in path order,
    /// and the matching lines in all.
    fn count(
        &self,
        py: Python<'_>,
        pattern: &str,
        paths: Option<Vec<String>>,
        ignore_case: bool,
    ) -> PyResult<(Vec<(String, usize)>, usize)> {
        let pattern =
            Pattern::new(pattern, ignore_case).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let files = self.select(paths)?;
        let opts = GrepOptions {
            max_results: 0,
            ..GrepOptions::default()
        };
        let blob = &*self.blob;
        let out = py.detach(|| grep::grep(blob, &files, &pattern, &opts));
        let counts = out
            .file_counts
            .into_iter()
            .map(|(f, n)| (Haystack::path(blob, f).to_string(), n))
            .collect();
        Ok((counts, out.total))
    }

    /// The lines that call `name` (see [`call_pattern`]), without those that define it with a
    /// keyword (see [`defines`]): `(path, line, text)` tuples in path then line order.
    fn calls<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        paths: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let name = name.trim();
        if name.is_empty() {
            return Err(PyValueError::new_err("callers() needs a function name"));
        }
        let pattern = Pattern::new(&call_pattern(name), false)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let files = self.select(paths)?;
        let opts = GrepOptions {
            max_results: usize::MAX,
            ..GrepOptions::default()
        };
        let blob = &*self.blob;
        let definer = definition_regex(name);
        let out = py.detach(|| grep::grep(blob, &files, &pattern, &opts));
        let calls = out.matches.into_iter().filter(|m| {
            !definer.as_ref().is_some_and(|re| re.is_match(&m.text)) && !commented(&m.text, name)
        });
        self.hit_list(py, calls)
    }

    /// Definitions named exactly `name` (else ignoring case), `Parent::name` filtering parents.
    fn definitions(&self, py: Python<'_>, name: &str) -> PyResult<Vec<PyDefinition>> {
        let query = IndexQuery::Definitions {
            name: name.to_string(),
        };
        match ask_index(py, self.ask, query)? {
            IndexReply::Definitions { definitions } => Ok(definitions
                .into_iter()
                .map(|d| self.definition(d))
                .collect()),
            other => Err(index_error(format!("unexpected answer: {other:?}"))),
        }
    }

    /// For each `(path, line)`, the innermost function or method holding it, or `None`.
    fn enclosing(
        &self,
        py: Python<'_>,
        locations: Vec<(String, u32)>,
    ) -> PyResult<Vec<Option<PyDefinition>>> {
        if locations.is_empty() {
            return Ok(Vec::new());
        }
        match ask_index(py, self.ask, IndexQuery::Enclosing { locations })? {
            IndexReply::Enclosing { definitions } => Ok(definitions
                .into_iter()
                .map(|d| d.map(|d| self.definition(d)))
                .collect()),
            other => Err(index_error(format!("unexpected answer: {other:?}"))),
        }
    }

    /// `(type_name, kind, language, path, start_line, end_line, signature)` of every type
    /// implementing or extending `name`.
    #[allow(clippy::type_complexity)]
    fn implementations(
        &self,
        py: Python<'_>,
        name: &str,
    ) -> PyResult<Vec<(String, &'static str, &'static str, String, u32, u32, String)>> {
        let query = IndexQuery::Implementations {
            name: name.to_string(),
        };
        match ask_index(py, self.ask, query)? {
            IndexReply::Implementations { entries } => Ok(entries
                .into_iter()
                .map(|e| {
                    (
                        e.type_name,
                        e.kind.as_str(),
                        e.language.as_str(),
                        e.path,
                        e.start_line,
                        e.end_line,
                        e.signature,
                    )
                })
                .collect()),
            other => Err(index_error(format!("unexpected answer: {other:?}"))),
        }
    }

    /// The `k` chunks BM25 ranks best for `query`.
    fn search(&self, py: Python<'_>, query: &str, k: u64) -> PyResult<Vec<PySearchHit>> {
        let query = IndexQuery::Search {
            text: query.to_string(),
            k,
        };
        match ask_index(py, self.ask, query)? {
            IndexReply::Search { hits } => Ok(hits
                .into_iter()
                .map(|hit| PySearchHit {
                    file: self.blob.find(&hit.chunk.path),
                    hit,
                    blob: self.blob.clone(),
                })
                .collect()),
            other => Err(index_error(format!("unexpected answer: {other:?}"))),
        }
    }

    /// Numbered lines `start_line..=end_line` of `path`, e.g. `"  12| text"`.
    #[pyo3(signature = (path, start_line = None, end_line = None))]
    fn read(&self, path: &str, start_line: Option<i64>, end_line: Option<i64>) -> PyResult<String> {
        let (path, start_line, end_line) = match self.file(path) {
            Ok(_) => (path, start_line, end_line),
            Err(e) => match split_line_suffix(path) {
                // "src/a.rs:12" or "src/a.rs:12-40", as grep results and citations write it.
                Some((p, s, e2)) if start_line.is_none() && self.blob.find(p).is_some() => match e2
                {
                    Some(e2) => (p, Some(s), Some(e2)),
                    // A bare line: some context around it.
                    None => (p, Some((s - 5).max(1)), Some(s + 15)),
                },
                _ => return Err(e),
            },
        };
        let i = self.file(path)?;
        let text = self.blob.text_bytes(i);
        let lines = line_count(text);
        let call = |s: Option<i64>, e: Option<i64>| {
            let mut c = format!("read({path:?}");
            if let Some(s) = s {
                c.push_str(&format!(", {s}"));
            }
            if let Some(e) = e {
                c.push_str(&format!(", {e}"));
            }
            c + ")"
        };
        let start = start_line.unwrap_or(1);
        if start < 1 {
            return Err(PyValueError::new_err(format!(
                "{}: lines are numbered from 1",
                call(start_line, end_line)
            )));
        }
        if let Some(e) = end_line
            && e < start
        {
            return Err(PyValueError::new_err(format!(
                "{}: end_line {e} is before start_line {start}",
                call(start_line, end_line)
            )));
        }
        if lines == 0 {
            return if start_line.is_none() {
                Ok(String::new())
            } else {
                Err(PyValueError::new_err(format!(
                    "{}: the file is empty",
                    call(start_line, end_line)
                )))
            };
        }
        let start = start as usize;
        if start > lines {
            return Err(PyValueError::new_err(format!(
                "{}: the file has only {lines} lines",
                call(start_line, end_line)
            )));
        }
        let (end, capped) = match end_line {
            Some(e) => ((e as usize).min(lines), false),
            None => {
                let e = lines.min(start + READ_DEFAULT_LINES - 1);
                (e, e < lines)
            }
        };
        let width = end.to_string().len().max(4);
        let mut out = String::new();
        let body = text
            .split(|&b| b == b'\n')
            .skip(start - 1)
            .take(end + 1 - start);
        for (no, line) in (start..).zip(body) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{no:>width$}| {}", String::from_utf8_lossy(line)));
        }
        if capped {
            out.push_str(&format!(
                "\n... {} more lines; read({path:?}, {}) shows the next ones",
                lines - end,
                end + 1
            ));
        }
        Ok(out)
    }

    /// `(definitions, total)`.
    fn symbols(
        &self,
        py: Python<'_>,
        name: Option<String>,
        kind: Option<String>,
        path: Option<String>,
        max_results: u64,
    ) -> PyResult<(Vec<PyDefinition>, u64)> {
        let kind = match kind {
            None => None,
            Some(k) => Some(parse_kind(&k).ok_or_else(|| {
                let kinds: Vec<&str> = DefKind::ALL.iter().map(|k| k.as_str()).collect();
                PyValueError::new_err(format!(
                    "unknown kind {k:?}: use one of {} (traits are interfaces)",
                    kinds.join(", ")
                ))
            })?),
        };
        let query = IndexQuery::Symbols {
            name,
            kind,
            path,
            limit: max_results,
        };
        match ask_index(py, self.ask, query)? {
            IndexReply::Symbols { total, definitions } => Ok((
                definitions
                    .into_iter()
                    .map(|d| self.definition(d))
                    .collect(),
                total,
            )),
            other => Err(index_error(format!("unexpected answer: {other:?}"))),
        }
    }

    /// The definitions of `path`, one per line, indented by nesting.
    fn outline(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        let i = self.file(path)?;
        let path = Haystack::path(&*self.blob, i).to_string();
        let entries = match ask_index(py, self.ask, IndexQuery::Outline { path: path.clone() })? {
            IndexReply::Outline { entries } => entries,
            other => return Err(index_error(format!("unexpected answer: {other:?}"))),
        };
        if entries.is_empty() {
            return Ok(format!("{path}: no definitions found"));
        }
        let ranges: Vec<String> = entries
            .iter()
            .map(|(_, d)| format!("{}-{}", d.start_line, d.end_line))
            .collect();
        let width = ranges.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut out = format!("{path}: {} definitions", entries.len());
        for ((depth, d), range) in entries.iter().zip(ranges) {
            out.push_str(&format!(
                "\n{range:>width$}  {}{} {}",
                "  ".repeat(*depth as usize),
                d.kind,
                display_name(d)
            ));
        }
        Ok(out)
    }
}

/// `name` as a whole word.
fn word(name: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut p = String::new();
    if name.starts_with(is_word) {
        p.push_str(r"\b");
    }
    p.push_str(&regex_syntax::escape(name));
    if name.ends_with(is_word) {
        p.push_str(r"\b");
    }
    p
}

/// The grep pattern of a call of `name`: the whole word, then optional generic arguments
/// (`name::<T>`), then `(` (spaces allowed between). `name!(` (a Rust macro) is not a call.
pub(super) fn call_pattern(name: &str) -> String {
    format!(r"{}(?:\s*::\s*<[^()]*>)?\s*\(", word(name))
}

/// A line that defines `name` with a keyword: `fn name(`, `def name(`, `async def`, `function
/// name(`, `function* name(`, `func name(`, Go's `func (r *T) name(`, `fun name(`, `sub name`,
/// `proc name`, Ruby's `def self.name`, C's `#define name(`. (Definitions without a keyword,
/// such as Java or C++ methods, are found from the index by `callers()`.)
fn definition_regex(name: &str) -> Option<regex_automata::meta::Regex> {
    let pattern = format!(
        r"(?:\b(?:fn|def|fun|func|function\*?|sub|proc)|#\s*define)\s+(?:\([^)]*\)\s*)?(?:\w+\.)?{}",
        word(name)
    );
    regex_automata::meta::Regex::new(&pattern).ok()
}

/// Whether the first mention of `name` on `line` is in a comment: after `//`, or on a line
/// that is a comment (`#` not opening a Rust attribute, `*` or `/*` of a block comment, `--`).
/// A call shown in a doc comment is not a call.
fn commented(line: &str, name: &str) -> bool {
    let before = line.find(name).map_or(line, |i| &line[..i]);
    let head = before.trim_start();
    before.contains("//")
        || head.starts_with("/*")
        || head.starts_with('*')
        || head.starts_with("--")
        || (head.starts_with('#') && !head.starts_with("#[") && !head.starts_with("#!["))
}

/// Whether `line` defines `name` with a keyword (see [`definition_regex`]).
#[cfg(test)]
fn defines(line: &str, name: &str) -> bool {
    definition_regex(name).is_some_and(|re| re.is_match(line))
}

/// A Python-style repr of a str (single quotes).
fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `"path:12"` or `"path:12-40"` -> `(path, 12, Some(40))`.
fn split_line_suffix(s: &str) -> Option<(&str, i64, Option<i64>)> {
    let (path, lines) = s.rsplit_once(':')?;
    let (a, b) = match lines.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (lines, None),
    };
    let a = a.trim().parse().ok()?;
    let b = match b {
        Some(b) => Some(b.trim().parse().ok()?),
        None => None,
    };
    Some((path, a, b))
}

/// Lines as `read` and `grep` number them: a final line without `\n` counts.
fn line_count(text: &[u8]) -> usize {
    let n = memchr::memchr_iter(b'\n', text).count();
    if text.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

/// Text of bytes `start..end` of file `file`, or "" when the range does not fit.
fn slice_text(blob: &BlobReader, file: Option<usize>, start: usize, end: usize) -> String {
    let Some(i) = file else {
        return String::new();
    };
    let text = blob.text_bytes(i);
    let end = end.min(text.len());
    let start = start.min(end);
    String::from_utf8_lossy(&text[start..end]).into_owned()
}

/// `Display for Args` for an `impl Display for Args`; the name otherwise.
fn display_name(d: &Definition) -> String {
    match (&d.detail, d.kind) {
        (Some(t), DefKind::Impl) => format!("{t} for {}", d.name),
        _ => d.name.clone(),
    }
}

fn describe(
    kind: &str,
    name: Option<&str>,
    parent: Option<&str>,
    path: &str,
    lines: (u32, u32),
) -> String {
    let mut s = kind.to_string();
    if let Some(n) = name {
        s.push(' ');
        s.push_str(n);
    }
    if let Some(p) = parent {
        s.push_str(&format!(" in {p}"));
    }
    format!("{s} at {path}:{}-{}", lines.0, lines.1)
}

/// A definition from `symbols()`.
#[pyclass(frozen, module = "_rlm", name = "Definition")]
pub(super) struct PyDefinition {
    def: Definition,
    blob: Arc<BlobReader>,
}

#[pymethods]
impl PyDefinition {
    #[getter]
    fn name(&self) -> &str {
        &self.def.name
    }
    #[getter]
    fn kind(&self) -> &'static str {
        self.def.kind.as_str()
    }
    #[getter]
    fn path(&self) -> &str {
        &self.def.path
    }
    #[getter]
    fn start_line(&self) -> u32 {
        self.def.start_line
    }
    #[getter]
    fn end_line(&self) -> u32 {
        self.def.end_line
    }
    #[getter]
    fn parent(&self) -> Option<&str> {
        self.def.parent.as_deref()
    }
    #[getter]
    fn signature(&self) -> &str {
        &self.def.signature
    }
    /// Extra information where a language has it: the trait of a Rust `impl Trait for Type`.
    #[getter]
    fn detail(&self) -> Option<&str> {
        self.def.detail.as_deref()
    }
    #[getter]
    fn language(&self) -> &'static str {
        self.def.language.as_str()
    }
    /// The definition's source text.
    #[getter]
    fn text(&self) -> String {
        slice_text(
            &self.blob,
            self.blob.find(&self.def.path),
            self.def.start_byte,
            self.def.end_byte,
        )
    }
    fn __repr__(&self) -> String {
        let d = &self.def;
        format!(
            "Definition({})",
            describe(
                d.kind.as_str(),
                Some(&display_name(d)),
                d.parent.as_deref(),
                &d.path,
                (d.start_line, d.end_line)
            )
        )
    }
}

/// A `search()` result: a chunk and its score; `.text` is read from the workspace when asked.
#[pyclass(frozen, module = "_rlm", name = "SearchResult")]
pub(super) struct PySearchHit {
    hit: SearchHit,
    file: Option<usize>,
    blob: Arc<BlobReader>,
}

#[pymethods]
impl PySearchHit {
    #[getter]
    fn path(&self) -> &str {
        &self.hit.chunk.path
    }
    #[getter]
    fn kind(&self) -> &str {
        &self.hit.chunk.kind
    }
    #[getter]
    fn name(&self) -> Option<&str> {
        self.hit.chunk.name.as_deref()
    }
    #[getter]
    fn parent(&self) -> Option<&str> {
        self.hit.chunk.parent.as_deref()
    }
    #[getter]
    fn start_line(&self) -> u32 {
        self.hit.chunk.start_line
    }
    #[getter]
    fn end_line(&self) -> u32 {
        self.hit.chunk.end_line
    }
    #[getter]
    fn language(&self) -> &'static str {
        self.hit.chunk.language.as_str()
    }
    /// The BM25 score (higher is better; only comparable within one search).
    #[getter]
    fn score(&self) -> f64 {
        self.hit.score
    }
    #[getter]
    fn text(&self) -> String {
        let c = &self.hit.chunk;
        slice_text(&self.blob, self.file, c.start_byte, c.end_byte)
    }
    fn __repr__(&self) -> String {
        search_line(&self.hit)
    }
}

/// `src/a.rs:10-20 function parse (7.3)`; without a name: `README.md:1-9 lines (2.0)`.
fn search_line(hit: &SearchHit) -> String {
    let c = &hit.chunk;
    let name = c
        .name
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    format!(
        "{}:{}-{} {}{name} ({:.1})",
        c.path, c.start_line, c.end_line, c.kind, hit.score
    )
}

/// The chunk list of one index version, with each chunk's file in the blob.
struct ChunkTable {
    chunks: Vec<Chunk>,
    files: Vec<Option<usize>>,
}

/// `chunks`: the index's chunks as a read-only sequence, fetched from the parent on first use
/// and again in a cell that starts with a newer index version.
#[pyclass(frozen, sequence, module = "_rlm", name = "Chunks")]
pub(super) struct Chunks {
    blob: Arc<BlobReader>,
    ask: AskParent,
    /// The index version of the current cell.
    version: AtomicU64,
    /// The table and the cell version it was fetched under.
    cache: Mutex<Option<(u64, Arc<ChunkTable>)>>,
}

impl Chunks {
    pub(super) fn new(blob: Arc<BlobReader>, ask: AskParent) -> Chunks {
        Chunks {
            blob,
            ask,
            version: AtomicU64::new(0),
            cache: Mutex::new(None),
        }
    }

    /// Called at the start of each cell.
    pub(super) fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::SeqCst);
    }

    fn table(&self, py: Python<'_>) -> PyResult<Arc<ChunkTable>> {
        let version = self.version.load(Ordering::SeqCst);
        let cache = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, t)) = &*cache()
            && *v == version
        {
            return Ok(t.clone());
        }
        // The lock is not held while asking: the request detaches from Python, and another
        // Python thread blocked on the lock while holding the GIL would deadlock us.
        let mut chunks: Vec<Chunk> = Vec::new();
        loop {
            let query = IndexQuery::Chunks {
                offset: chunks.len() as u64,
                limit: CHUNK_PAGE,
            };
            match ask_index(py, self.ask, query)? {
                IndexReply::Chunks {
                    total,
                    chunks: page,
                    ..
                } => {
                    let empty = page.is_empty();
                    chunks.extend(page);
                    if empty || chunks.len() as u64 >= total {
                        break;
                    }
                }
                other => return Err(index_error(format!("unexpected answer: {other:?}"))),
            }
        }
        let mut files = Vec::with_capacity(chunks.len());
        let mut last: Option<(&str, Option<usize>)> = None;
        for c in &chunks {
            let f = match last {
                Some((p, f)) if p == c.path => f,
                _ => self.blob.find(&c.path),
            };
            last = Some((&c.path, f));
            files.push(f);
        }
        let table = Arc::new(ChunkTable { chunks, files });
        *cache() = Some((version, table.clone()));
        Ok(table)
    }

    fn item(&self, table: &Arc<ChunkTable>, i: usize) -> PyChunk {
        PyChunk {
            table: table.clone(),
            i,
            blob: self.blob.clone(),
        }
    }
}

#[pymethods]
impl Chunks {
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.table(py)?.chunks.len())
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let table = self.table(py)?;
        let n = table.chunks.len();
        if let Ok(slice) = key.cast::<PySlice>() {
            let ix = slice.indices(n as isize)?;
            let items: Vec<PyChunk> = (0..ix.slicelength)
                .map(|k| self.item(&table, (ix.start + k as isize * ix.step) as usize))
                .collect();
            return Ok(PyList::new(py, items)?.into_any());
        }
        let Ok(i) = key.extract::<isize>() else {
            return Err(PyTypeError::new_err(
                "chunks indices must be integers or slices, e.g. chunks[0] or chunks[:10]",
            ));
        };
        let j = if i < 0 { i + n as isize } else { i };
        if j < 0 || j as usize >= n {
            return Err(PyIndexError::new_err(format!(
                "chunks index {i} out of range: there are {n} chunks"
            )));
        }
        Ok(Bound::new(py, self.item(&table, j as usize))?.into_any())
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<ChunksIter> {
        Ok(ChunksIter {
            table: self.table(py)?,
            blob: self.blob.clone(),
            next: Mutex::new(0),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let n = self.table(py)?.chunks.len();
        Ok(format!(
            "<chunks: {n} pieces of code (definitions, sections, line ranges); each has .path \
             .kind .name .parent .start_line .end_line .language .text>"
        ))
    }
}

#[pyclass(frozen, module = "_rlm", name = "ChunksIterator")]
pub(super) struct ChunksIter {
    table: Arc<ChunkTable>,
    blob: Arc<BlobReader>,
    next: Mutex<usize>,
}

#[pymethods]
impl ChunksIter {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self) -> Option<PyChunk> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if *next >= self.table.chunks.len() {
            return None;
        }
        let i = *next;
        *next += 1;
        Some(PyChunk {
            table: self.table.clone(),
            i,
            blob: self.blob.clone(),
        })
    }
}

/// One chunk; `.text` is read from the workspace when asked for.
#[pyclass(frozen, module = "_rlm", name = "Chunk")]
pub(super) struct PyChunk {
    table: Arc<ChunkTable>,
    i: usize,
    blob: Arc<BlobReader>,
}

impl PyChunk {
    fn c(&self) -> &Chunk {
        &self.table.chunks[self.i]
    }
}

#[pymethods]
impl PyChunk {
    #[getter]
    fn path(&self) -> &str {
        &self.c().path
    }
    #[getter]
    fn kind(&self) -> &str {
        &self.c().kind
    }
    #[getter]
    fn name(&self) -> Option<&str> {
        self.c().name.as_deref()
    }
    #[getter]
    fn parent(&self) -> Option<&str> {
        self.c().parent.as_deref()
    }
    #[getter]
    fn start_line(&self) -> u32 {
        self.c().start_line
    }
    #[getter]
    fn end_line(&self) -> u32 {
        self.c().end_line
    }
    #[getter]
    fn language(&self) -> &'static str {
        self.c().language.as_str()
    }
    #[getter]
    fn text(&self) -> String {
        let c = self.c();
        slice_text(
            &self.blob,
            self.table.files[self.i],
            c.start_byte,
            c.end_byte,
        )
    }
    fn __repr__(&self) -> String {
        let c = self.c();
        format!(
            "Chunk({})",
            describe(
                &c.kind,
                c.name.as_deref(),
                c.parent.as_deref(),
                &c.path,
                (c.start_line, c.end_line)
            )
        )
    }
}

#[cfg(test)]
mod tests;
