//! The code tools model code gets beside `context`: `grep`, `read`, match counts and call sites
//! (done here, in Rust, over the mapped blob), and `symbols`, `outline`, `chunks`,
//! `definitions`, enclosing functions, `implementations` and `search` (asked of the parent's
//! index over the protocol). `prelude.py` wraps them in the Python functions the model calls.

mod calls;
mod chunks;
mod non_code;
mod results;

use super::blob::BlobReader;
use super::index::parse_kind;
use super::protocol::{FromWorker, IndexQuery, IndexReply, ToWorker};
use crate::index::grep::{self, GrepOptions, Haystack, PathFilter, Pattern};
use crate::index::{DefKind, Definition};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use std::sync::Arc;

use calls::{call_pattern, definition_regex};
pub(super) use chunks::{Chunks, ChunksIter, PyChunk};
use results::display_name;
pub(super) use results::{PyDefinition, PySearchHit};

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
        let calls = py.detach(|| {
            let out = grep::grep(blob, &files, &pattern, &opts);
            let mut in_code = calls::InCode::new(name);
            out.matches
                .into_iter()
                .filter(|m| {
                    !definer.as_ref().is_some_and(|re| re.is_match(&m.text))
                        && in_code.keeps(blob, m)
                })
                .collect::<Vec<_>>()
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

    /// The byte ranges of `path` that are comments or string literals, in order; `None` for a
    /// file whose language the lexer does not know (see `non_code.rs`).
    fn non_code(&self, path: &str) -> PyResult<Option<Vec<(usize, usize)>>> {
        let i = self.file(path)?;
        Ok(non_code::syntax_of(path).map(|syn| {
            non_code::non_code(self.blob.text_bytes(i), syn)
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect()
        }))
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

#[cfg(test)]
mod tests;
