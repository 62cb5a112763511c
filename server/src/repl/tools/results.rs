//! `Definition` and `SearchResult`, the Python objects `symbols()`, `definitions()`,
//! `enclosing()` and `search()` return; their `.text` is read from the workspace when asked.

use crate::index::{DefKind, Definition};
use crate::repl::blob::BlobReader;
use crate::repl::index::SearchHit;
use pyo3::prelude::*;
use std::sync::Arc;

/// Text of bytes `start..end` of file `file`, or "" when the range does not fit.
pub(super) fn slice_text(
    blob: &BlobReader,
    file: Option<usize>,
    start: usize,
    end: usize,
) -> String {
    let Some(i) = file else {
        return String::new();
    };
    let text = blob.text_bytes(i);
    let end = end.min(text.len());
    let start = start.min(end);
    String::from_utf8_lossy(&text[start..end]).into_owned()
}

/// `Display for Args` for an `impl Display for Args`; the name otherwise.
pub(super) fn display_name(d: &Definition) -> String {
    match (&d.detail, d.kind) {
        (Some(t), DefKind::Impl) => format!("{t} for {}", d.name),
        _ => d.name.clone(),
    }
}

pub(super) fn describe(
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
pub(in crate::repl) struct PyDefinition {
    pub(super) def: Definition,
    pub(super) blob: Arc<BlobReader>,
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
pub(in crate::repl) struct PySearchHit {
    pub(super) hit: SearchHit,
    pub(super) file: Option<usize>,
    pub(super) blob: Arc<BlobReader>,
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
pub(super) fn search_line(hit: &SearchHit) -> String {
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
