//! `context`, the workspace as a read-only Python mapping path -> text over the mapped blob.

use crate::repl::blob::BlobReader;
use crate::repl::tools::unknown_path;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;
use std::sync::Arc;

/// `context`: the workspace as a read-only mapping path -> text, backed by the mapped blob.
/// Strings are created on first access and cached.
#[pyclass(frozen, mapping, module = "_rlm", name = "Context")]
pub(super) struct Context {
    blob: Arc<BlobReader>,
    paths: Vec<PyOnceLock<Py<PyString>>>,
    texts: Vec<PyOnceLock<Py<PyString>>>,
}

impl Context {
    pub(super) fn new(blob: Arc<BlobReader>) -> Context {
        let n = blob.len();
        Context {
            blob,
            paths: (0..n).map(|_| PyOnceLock::new()).collect(),
            texts: (0..n).map(|_| PyOnceLock::new()).collect(),
        }
    }

    fn path<'py>(&self, py: Python<'py>, i: usize) -> Bound<'py, PyString> {
        self.paths[i]
            .get_or_init(py, || PyString::new(py, &self.blob.path(i)).unbind())
            .bind(py)
            .clone()
    }

    fn text<'py>(&self, py: Python<'py>, i: usize) -> Bound<'py, PyString> {
        self.texts[i]
            .get_or_init(py, || PyString::new(py, &self.blob.text(i)).unbind())
            .bind(py)
            .clone()
    }

    fn find(&self, key: &Bound<'_, PyAny>) -> Option<usize> {
        let s = key.cast::<PyString>().ok()?;
        self.blob.find(s.to_str().ok()?)
    }

    fn missing(&self, key: &Bound<'_, PyAny>) -> PyErr {
        let Ok(s) = key.cast::<PyString>() else {
            let kind = key
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return PyKeyError::new_err(format!(
                "context keys are file paths (str), not {kind}; see list(context)[:20]"
            ));
        };
        PyKeyError::new_err(unknown_path(&self.blob, &s.to_string_lossy()))
    }
}

fn read_only() -> PyErr {
    PyTypeError::new_err(
        "context is read-only (a snapshot of the workspace); copy what you need into your own \
         variables, e.g. text = context[path]",
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} bytes"),
        1024..1_048_576 => format!("{:.1} KB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

#[pymethods]
impl Context {
    fn __len__(&self) -> usize {
        self.blob.len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        match self.find(key) {
            Some(i) => Ok(self.text(py, i)),
            None => Err(self.missing(key)),
        }
    }

    fn __setitem__(&self, _key: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(read_only())
    }

    fn __delitem__(&self, _key: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(read_only())
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        self.find(key).is_some()
    }

    fn __iter__(slf: Py<Self>) -> ContextIter {
        ContextIter { ctx: slf, next: 0 }
    }

    fn keys<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf, "KeysView")
    }

    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf, "ValuesView")
    }

    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf, "ItemsView")
    }

    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> Option<Bound<'py, PyAny>> {
        match self.find(key) {
            Some(i) => Some(self.text(py, i).into_any()),
            None => default,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<context: {} files, {}; read-only mapping path -> text>",
            self.blob.len(),
            human_bytes(self.blob.bytes())
        )
    }
}

fn view<'py>(ctx: &Bound<'py, Context>, kind: &str) -> PyResult<Bound<'py, PyAny>> {
    ctx.py()
        .import("collections.abc")?
        .getattr(kind)?
        .call1((ctx,))
}

#[pyclass(module = "_rlm", name = "ContextIterator")]
pub(super) struct ContextIter {
    ctx: Py<Context>,
    next: usize,
}

#[pymethods]
impl ContextIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
    ) -> Option<Bound<'py, PyString>> {
        let i = slf.next;
        let ctx = slf.ctx.get();
        if i >= ctx.blob.len() {
            return None;
        }
        let key = ctx.path(py, i);
        slf.next += 1;
        Some(key)
    }
}
