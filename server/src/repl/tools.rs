//! The code tools model code gets beside `context`: `grep` and `read` (done here, in Rust, over
//! the mapped blob), and `symbols`, `outline` and `chunks` (asked of the parent's index over the
//! protocol). `prelude.py` wraps them in the Python functions the model calls.

use super::blob::BlobReader;
use super::index::parse_kind;
use super::protocol::{CHUNK_PAGE, FromWorker, IndexQuery, IndexReply, ToWorker};
use super::worker::ask_parent;
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

/// Asks the parent's index; an `Error` reply becomes a `RuntimeError`.
fn ask_index(py: Python<'_>, query: IndexQuery) -> PyResult<IndexReply> {
    match ask_parent(py, FromWorker::IndexRequest { query }) {
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
}

impl Tools {
    pub(super) fn new(blob: Arc<BlobReader>) -> Tools {
        Tools { blob }
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
        let opts = GrepOptions {
            max_results,
            ..GrepOptions::default()
        };
        let out = py.detach(|| grep::grep(blob, &files, &pattern, &opts));
        let list = PyList::empty(py);
        let mut last: Option<(usize, Bound<'py, PyString>)> = None;
        for m in out.matches {
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
        Ok((list, out.total))
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
        match ask_index(py, query)? {
            IndexReply::Symbols { total, definitions } => Ok((
                definitions
                    .into_iter()
                    .map(|def| PyDefinition {
                        def,
                        blob: self.blob.clone(),
                    })
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
        let entries = match ask_index(py, IndexQuery::Outline { path: path.clone() })? {
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
    /// The index version of the current cell.
    version: AtomicU64,
    /// The table and the cell version it was fetched under.
    cache: Mutex<Option<(u64, Arc<ChunkTable>)>>,
}

impl Chunks {
    pub(super) fn new(blob: Arc<BlobReader>) -> Chunks {
        Chunks {
            blob,
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
            match ask_index(py, query)? {
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
mod tests {
    use super::*;

    #[test]
    fn line_suffixes_and_counts() {
        assert_eq!(
            split_line_suffix("src/a.rs:12"),
            Some(("src/a.rs", 12, None))
        );
        assert_eq!(
            split_line_suffix("src/a.rs:12-40"),
            Some(("src/a.rs", 12, Some(40)))
        );
        assert_eq!(split_line_suffix("src/a.rs"), None);
        assert_eq!(split_line_suffix("c:/x"), None);
        assert_eq!(line_count(b""), 0);
        assert_eq!(line_count(b"a"), 1);
        assert_eq!(line_count(b"a\n"), 1);
        assert_eq!(line_count(b"a\n\nb"), 3);
    }

    #[test]
    fn impls_show_their_trait() {
        let mut d = Definition {
            name: "Args".into(),
            kind: DefKind::Impl,
            language: crate::index::Language::Rust,
            path: "src/cli.rs".into(),
            start_byte: 0,
            end_byte: 10,
            start_line: 3,
            end_line: 9,
            parent: None,
            signature: "impl Default for Args {".into(),
            detail: Some("Default".into()),
        };
        assert_eq!(display_name(&d), "Default for Args");
        assert_eq!(
            describe(
                d.kind.as_str(),
                Some(&display_name(&d)),
                None,
                &d.path,
                (3, 9)
            ),
            "impl Default for Args at src/cli.rs:3-9"
        );
        d.detail = None;
        assert_eq!(display_name(&d), "Args");
        assert_eq!(py_str("it's"), "'it\\'s'");
    }
}
