//! `CapturedOutput`, the `sys.stdout` and `sys.stderr` model code writes to.

use crate::repl::capture::Capture;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::{Mutex, MutexGuard};

/// `sys.stdout` / `sys.stderr` of model code: keeps the head and the tail of what a cell prints,
/// counts the rest.
#[pyclass(frozen, module = "_rlm", name = "CapturedOutput")]
pub(super) struct CapturedOutput {
    name: &'static str,
    cap: Mutex<Capture>,
}

impl CapturedOutput {
    pub(super) fn new(name: &'static str, max: usize) -> CapturedOutput {
        CapturedOutput {
            name,
            cap: Mutex::new(Capture::new(max)),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Capture> {
        self.cap.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}

#[pymethods]
impl CapturedOutput {
    fn write(&self, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let Ok(s) = s.cast::<PyString>() else {
            let kind = s
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(PyTypeError::new_err(format!(
                "write() argument must be str, not {kind}"
            )));
        };
        match s.to_str() {
            Ok(text) => self.lock().push(text),
            Err(_) => self.lock().push(&s.to_string_lossy()),
        }
        s.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&self) {}

    fn close(&self) {}

    fn isatty(&self) -> bool {
        false
    }

    fn readable(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        false
    }

    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let unsupported = py.import("io")?.getattr("UnsupportedOperation")?;
        Err(PyErr::from_type(
            unsupported.cast_into()?,
            format!("{} has no file descriptor (output is captured)", self.name),
        ))
    }

    #[getter]
    fn closed(&self) -> bool {
        false
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn errors(&self) -> &'static str {
        "strict"
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.name
    }

    #[getter]
    fn mode(&self) -> &'static str {
        "w"
    }

    #[getter]
    fn line_buffering(&self) -> bool {
        false
    }

    fn __repr__(&self) -> String {
        format!("<captured {}>", self.name)
    }
}
