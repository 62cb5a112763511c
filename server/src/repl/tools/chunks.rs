//! `chunks`, the index's chunks as a read-only Python sequence fetched from the parent, and
//! the `Chunk` objects it holds.

use super::results::{describe, slice_text};
use super::{AskParent, ask_index, index_error};
use crate::index::Chunk;
use crate::repl::blob::BlobReader;
use crate::repl::protocol::{CHUNK_PAGE, IndexQuery, IndexReply};
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The chunk list of one index version, with each chunk's file in the blob.
struct ChunkTable {
    chunks: Vec<Chunk>,
    files: Vec<Option<usize>>,
}

/// `chunks`: the index's chunks as a read-only sequence, fetched from the parent on first use
/// and again in a cell that starts with a newer index version.
#[pyclass(frozen, sequence, module = "_rlm", name = "Chunks")]
pub(in crate::repl) struct Chunks {
    blob: Arc<BlobReader>,
    ask: AskParent,
    /// The index version of the current cell.
    version: AtomicU64,
    /// The table and the cell version it was fetched under.
    cache: Mutex<Option<(u64, Arc<ChunkTable>)>>,
}

impl Chunks {
    pub(in crate::repl) fn new(blob: Arc<BlobReader>, ask: AskParent) -> Chunks {
        Chunks {
            blob,
            ask,
            version: AtomicU64::new(0),
            cache: Mutex::new(None),
        }
    }

    /// Called at the start of each cell.
    pub(in crate::repl) fn set_version(&self, version: u64) {
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
pub(in crate::repl) struct ChunksIter {
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
pub(in crate::repl) struct PyChunk {
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
