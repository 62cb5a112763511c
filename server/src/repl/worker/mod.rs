//! The worker process: `rlm-lsp __repl-worker`. Embeds CPython (pyo3), exposes the workspace and
//! the helpers to model code, and runs cells on request of the parent (see `protocol.rs`).
//!
//! Start-up order matters:
//! 1. move the protocol off fds 0/1 (model code cannot write into it by accident);
//! 2. read `Init`, map the context blob;
//! 3. start Python, install `_rlm` and the prelude;
//! 4. [`harden_before_model_code`]: the sandbox (`sandbox/`), then the parent watchdog thread
//!    (Landlock confines the calling thread and the threads it starts later);
//! 5. send `Ready`; from here on model code runs.

mod context;
mod output;

use super::blob::BlobReader;
use super::capture::{cap_string, finish_pair};
use super::protocol::{self, CellDone, EditOp, FrameError, FromWorker, SubCallResult, ToWorker};
use super::sandbox::{self, SandboxConfig, SandboxError};
use super::tools::{Chunks, ChunksIter, PyChunk, PyDefinition, PySearchHit, Tools};
use context::{Context, ContextIter};
use output::CapturedOutput;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const PRELUDE: &str = include_str!("../prelude.py");
const EDITS: &str = include_str!("../edits.py");
const FIND: &str = include_str!("../find.py");
/// A final answer or variable larger than this is cut (head and tail kept) to fit in a frame.
const MAX_VALUE_BYTES: usize = 16 << 20;
/// Upper bound for `max_output_bytes`, so a `Done` frame always fits in `MAX_FRAME_BYTES`.
const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Exit codes of the worker process.
const EXIT_OK: i32 = 0;
const EXIT_SETUP: i32 = 70;
const EXIT_PROTOCOL: i32 = 71;

struct Proto {
    reader: BufReader<File>,
    writer: File,
}

/// The protocol streams; shared by the main loop and `_rlm.subcall` (which model code may call
/// from any thread: the lock serializes whole request/reply exchanges).
static PROTO: OnceLock<Mutex<Proto>> = OnceLock::new();

fn proto() -> MutexGuard<'static, Proto> {
    PROTO
        .get()
        .expect("protocol streams are set up before Python starts")
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn send(p: &mut Proto, msg: &FromWorker) -> Result<(), FrameError> {
    let frame = protocol::encode(msg)?;
    p.writer.write_all(&frame)?;
    Ok(())
}

/// Last-resort diagnostics go to fd 2, which the parent drains into its log.
fn log_stderr(msg: &str) {
    let _ = writeln!(io::stderr(), "rlm-lsp repl worker: {msg}");
}

/// Entry point of `rlm-lsp __repl-worker`; returns the process exit code.
pub fn worker_main() -> i32 {
    let (reader, writer) = match take_protocol_fds() {
        Ok(fds) => fds,
        Err(e) => {
            log_stderr(&format!("cannot set up the protocol file descriptors: {e}"));
            return EXIT_SETUP;
        }
    };
    let _ = PROTO.set(Mutex::new(Proto {
        reader: BufReader::with_capacity(64 << 10, reader),
        writer,
    }));

    let fatal = |message: String| {
        log_stderr(&message);
        let _ = send(&mut proto(), &FromWorker::Fatal { message });
        EXIT_SETUP
    };
    let init = protocol::read_frame_sync::<_, ToWorker>(&mut proto().reader);
    let (blob_path, workdir, max_output, sandbox_cfg) = match init {
        Ok(Some(ToWorker::Init {
            blob,
            workdir,
            max_output_bytes,
            sandbox,
        })) => (blob, workdir, max_output_bytes, sandbox),
        Ok(None) => return EXIT_OK,
        Ok(Some(other)) => return fatal(format!("expected Init, got {other:?}")),
        Err(e) => return fatal(format!("reading Init: {e}")),
    };
    let max_output = (max_output.min(MAX_OUTPUT_BYTES as u64) as usize).max(64);
    let blob = match BlobReader::open(&blob_path) {
        Ok(b) => b,
        Err(e) => return fatal(e),
    };
    let (files, bytes) = (blob.len() as u64, blob.bytes());

    Python::initialize();
    let host = match Python::attach(|py| Host::install(py, blob, max_output)) {
        Ok(h) => h,
        Err(e) => return fatal(format!("cannot set up Python: {e}")),
    };
    let mapped = std::fs::metadata(&blob_path).map_or(0, |m| m.len());
    let sandbox_status =
        match Python::attach(|py| harden_before_model_code(py, &workdir, &sandbox_cfg, mapped)) {
            Ok(status) => status,
            Err(e) => {
                let message = e.to_string();
                log_stderr(&format!("the sandbox is not available: {message}"));
                let _ = send(&mut proto(), &FromWorker::SandboxFailed { message });
                return EXIT_SETUP;
            }
        };
    start_parent_watchdog();
    let ready = FromWorker::Ready {
        python: Python::version_str().to_string(),
        files,
        bytes,
        sandbox: sandbox_status,
    };
    if send(&mut proto(), &ready).is_err() {
        return EXIT_PROTOCOL;
    }
    serve(&host)
}

/// The main loop: one request at a time until `Shutdown` or the parent goes away.
fn serve(host: &Host) -> i32 {
    loop {
        // Python is not attached while waiting, so threads started by model code keep running.
        let msg = protocol::read_frame_sync::<_, ToWorker>(&mut proto().reader);
        let reply = match msg {
            Ok(None) | Ok(Some(ToWorker::Shutdown)) => return end_process_group(),
            Ok(Some(ToWorker::Exec {
                code,
                index_version,
            })) => FromWorker::Done(Python::attach(|py| host.run_cell(py, &code, index_version))),
            Ok(Some(ToWorker::GetVar { name })) => FromWorker::Var {
                value: Python::attach(|py| host.get_var(py, &name)),
            },
            Ok(Some(other)) => {
                log_stderr(&format!("unexpected message {other:?}"));
                return EXIT_PROTOCOL;
            }
            Err(e) => {
                log_stderr(&format!("protocol error: {e}"));
                return EXIT_PROTOCOL;
            }
        };
        if let Err(e) = send(&mut proto(), &reply) {
            log_stderr(&format!("cannot send a reply: {e}"));
            return EXIT_PROTOCOL;
        }
    }
}

/// Everything the worker does to confine itself before the first line of model code runs: work in
/// the private directory the parent created (also `HOME` and `TMPDIR`), then the sandbox (rlimits,
/// Landlock, seccomp, the audit hook; see `sandbox/`). Python, the prelude and the context blob are
/// loaded before this point, so the rules only need to allow what model code itself may do. Runs
/// on the worker's only thread. Returns the sandbox status line.
fn harden_before_model_code(
    py: Python<'_>,
    workdir: &Path,
    cfg: &SandboxConfig,
    mapped_bytes: u64,
) -> Result<String, SandboxError> {
    std::env::set_current_dir(workdir).map_err(|source| SandboxError::Step {
        step: "entering the working directory",
        source,
    })?;
    sandbox::harden(py, cfg, workdir, mapped_bytes)
}

/// Duplicates the protocol streams to new close-on-exec fds, then points fd 0 at `/dev/null` and
/// fd 1 at fd 2, so that writes to fd 1 (by `os.write`, C code or subprocesses) go to the log.
fn take_protocol_fds() -> io::Result<(File, File)> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain fd syscalls on fds this process owns; the new fds are owned by the returned
    // `File`s and nothing else closes them.
    unsafe {
        let rd = check(libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3))?;
        let wr = check(libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3))?;
        let null = check(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY))?;
        check(libc::dup2(null, 0))?;
        if null != 0 {
            libc::close(null);
        }
        check(libc::dup2(2, 1))?;
        Ok((File::from_raw_fd(rd), File::from_raw_fd(wr)))
    }
}

/// Kills whatever model code started in the worker's process group (background processes),
/// then the worker itself. Only when the worker leads its own group, as the parent arranges.
fn end_process_group() -> i32 {
    // SAFETY: getpid/getpgrp/kill have no memory-safety preconditions.
    unsafe {
        if libc::getpgrp() == libc::getpid() {
            libc::kill(0, libc::SIGKILL);
        }
    }
    EXIT_OK
}

/// If the parent dies without killing us (crash, SIGKILL), kill our whole process group: a cell
/// stuck in a loop would otherwise never notice.
fn start_parent_watchdog() {
    // SAFETY: getppid and kill have no memory-safety preconditions.
    let parent = unsafe { libc::getppid() };
    let _ = std::thread::Builder::new()
        .name("parent-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if unsafe { libc::getppid() } != parent {
                    end_process_group();
                    unsafe { libc::_exit(EXIT_SETUP) };
                }
            }
        });
}

/// `run_cell`'s tuple: final answer, error, restored helpers, reads, namespace, edits (JSON).
type RunCellResult<'py> = (
    Option<Bound<'py, PyString>>,
    Option<Bound<'py, PyString>>,
    Vec<String>,
    Vec<(String, u64)>,
    Vec<(String, u64)>,
    String,
);

/// What the prelude's `run_cell` returns.
#[derive(Default)]
struct CellResult {
    final_answer: Option<String>,
    error: Option<String>,
    restored_helpers: Vec<String>,
    reads: Vec<(String, u64)>,
    namespace: Vec<(String, u64)>,
    edits: Vec<EditOp>,
}

/// The Python side of the worker.
struct Host {
    chunks: Py<Chunks>,
    run_cell: Py<PyAny>,
    get_var: Py<PyAny>,
    out: Py<CapturedOutput>,
    err: Py<CapturedOutput>,
    max_output: usize,
}

impl Host {
    fn install(py: Python<'_>, blob: BlobReader, max_output: usize) -> PyResult<Host> {
        let m = PyModule::new(py, "_rlm")?;
        m.add_class::<Context>()?;
        m.add_class::<ContextIter>()?;
        m.add_class::<CapturedOutput>()?;
        m.add_class::<Tools>()?;
        m.add_class::<Chunks>()?;
        m.add_class::<ChunksIter>()?;
        m.add_class::<PyChunk>()?;
        m.add_class::<PyDefinition>()?;
        m.add_class::<PySearchHit>()?;
        m.add_function(wrap_pyfunction!(subcall, &m)?)?;
        py.import("sys")?.getattr("modules")?.set_item("_rlm", &m)?;
        // Helper modules the prelude imports (`edits.py`, `find.py`).
        for (source, file, name) in [
            (EDITS, c"<rlm edits>", c"_rlm_edits"),
            (FIND, c"<rlm find>", c"_rlm_find"),
        ] {
            let code = CString::new(source)?;
            let module = PyModule::from_code(py, &code, file, name)?;
            py.import("sys")?
                .getattr("modules")?
                .set_item(name.to_str().unwrap_or_default(), module)?;
        }
        let code = CString::new(PRELUDE)?;
        let prelude = PyModule::from_code(py, &code, c"<rlm prelude>", c"_rlm_prelude")?;
        let blob = Arc::new(blob);
        let context = Py::new(py, Context::new(blob.clone()))?;
        let tools = Py::new(py, Tools::new(blob.clone(), ask_parent))?;
        let chunks = Py::new(py, Chunks::new(blob, ask_parent))?;
        let out = Py::new(py, CapturedOutput::new("<stdout>", max_output))?;
        let err = Py::new(py, CapturedOutput::new("<stderr>", max_output))?;
        prelude.getattr("setup")?.call1((
            context,
            tools,
            chunks.clone_ref(py),
            out.clone_ref(py),
            err.clone_ref(py),
        ))?;
        Ok(Host {
            chunks,
            run_cell: prelude.getattr("run_cell")?.unbind(),
            get_var: prelude.getattr("get_var")?.unbind(),
            out,
            err,
            max_output,
        })
    }

    fn run_cell(&self, py: Python<'_>, code: &str, index_version: u64) -> CellDone {
        self.chunks.get().set_version(index_version);
        self.out.get().clear();
        self.err.get().clear();
        let result = self.run_cell.call1(py, (code,)).and_then(|r| {
            let (final_answer, error, restored, reads, namespace, edits): RunCellResult<'_> =
                r.extract(py)?;
            let edits: Vec<EditOp> = serde_json::from_str(&edits).map_err(|e| {
                PyRuntimeError::new_err(format!("the proposed edits are malformed: {e}"))
            })?;
            Ok(CellResult {
                final_answer: final_answer
                    .map(|s| cap_string(s.to_string_lossy().into_owned(), MAX_VALUE_BYTES)),
                error: error.map(|s| s.to_string_lossy().into_owned()),
                restored_helpers: restored,
                reads,
                namespace,
                edits,
            })
        });
        let result = result.unwrap_or_else(|e| CellResult {
            error: Some(format!("internal error in the REPL runner: {e}")),
            ..CellResult::default()
        });
        let out = self.out.get().lock();
        let err = self.err.get().lock();
        let (stdout, stderr) = finish_pair(&out, &err, self.max_output);
        CellDone {
            stdout,
            stderr,
            output_bytes: out.total() + err.total(),
            final_answer: result.final_answer,
            error: result.error,
            restored_helpers: result.restored_helpers,
            reads: result.reads,
            namespace: result.namespace,
            edits: result.edits,
        }
    }

    fn get_var(&self, py: Python<'_>, name: &str) -> Option<String> {
        match self.get_var.call1(py, (name,)) {
            Ok(v) => v
                .extract::<Option<Bound<'_, PyString>>>(py)
                .ok()
                .flatten()
                .map(|s| cap_string(s.to_string_lossy().into_owned(), MAX_VALUE_BYTES)),
            Err(e) => Some(format!("<reading {name} failed: {e}>")),
        }
    }
}

/// Sends `msg` to the parent and waits for its reply, with Python detached (other Python threads
/// run meanwhile). Only the request/reply pairs of the protocol go through here, one at a time.
/// A parent that went away ends the worker.
fn ask_parent(py: Python<'_>, msg: FromWorker) -> Result<ToWorker, String> {
    py.detach(move || {
        let mut p = proto();
        match send(&mut p, &msg) {
            Ok(()) => {}
            Err(e @ FrameError::TooLarge { .. }) => {
                return Err(format!("the request is too large: {e}"));
            }
            Err(e) => {
                log_stderr(&format!("cannot send a request to the parent: {e}"));
                std::process::exit(EXIT_PROTOCOL);
            }
        }
        match protocol::read_frame_sync::<_, ToWorker>(&mut p.reader) {
            Ok(None) | Ok(Some(ToWorker::Shutdown)) => std::process::exit(end_process_group()),
            Ok(Some(reply)) => Ok(reply),
            Err(e) => {
                log_stderr(&format!("reading the parent's reply: {e}"));
                std::process::exit(EXIT_PROTOCOL);
            }
        }
    })
}

/// `_rlm.subcall(prompts, contexts=None) -> list[tuple[bool, str]]`: asks the parent to run
/// sub-model calls, or child RLM runs when `contexts` (JSON specs or None, one per prompt) is given.
#[pyfunction]
#[pyo3(signature = (prompts, contexts=None))]
fn subcall(
    py: Python<'_>,
    prompts: Vec<String>,
    contexts: Option<Vec<Option<String>>>,
) -> PyResult<Vec<(bool, String)>> {
    let n = prompts.len();
    let request = FromWorker::SubCallRequest { prompts, contexts };
    let mut results = match ask_parent(py, request) {
        Ok(ToWorker::SubCallReply { results }) => results,
        Ok(other) => {
            log_stderr(&format!("expected SubCallReply, got {other:?}"));
            std::process::exit(EXIT_PROTOCOL);
        }
        Err(e) => return Err(PyRuntimeError::new_err(format!("llm_query: {e}"))),
    };
    results.resize(n, SubCallResult::Err("no answer from the parent".into()));
    Ok(results
        .into_iter()
        .map(|r| match r {
            SubCallResult::Ok(s) => (true, s),
            SubCallResult::Err(s) => (false, s),
        })
        .collect())
}
