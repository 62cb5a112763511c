//! The Python REPL worker: protocol, parent-side host, worker-side Python embedding.
//!
//! Architecture invariant: model-written code never runs in the server process. A [`Repl`] owns a
//! worker process (the same binary re-executed as `rlm-lsp __repl-worker`, in its own process
//! group) that embeds CPython. The workspace reaches the worker as a [`ContextBlob`] file it maps
//! into memory; everything else crosses the worker's stdin/stdout as small frames
//! (`protocol.rs`). A cell that runs too long, or a worker that dies, costs the run its variables,
//! never the server: the parent kills the whole process group and starts a fresh worker.
//!
//! - `protocol.rs`: frames and messages.
//! - `blob.rs`: [`ContextBlob`] (written by the parent) and its reader (in the worker).
//! - `host/`: [`Repl`], the parent side: spawning, timeouts, sub-calls, restarts.
//! - `worker/`: [`worker_main`], the worker side: Python, `context`, captured output.
//! - `tools/`: `grep`/`read`/call sites/match counts (Rust, over the mapped blob) and
//!   `symbols`/`outline`/`chunks`/`definitions`/enclosing functions/`implementations`/`search`
//!   (asked of the parent's index, [`IndexQueries`]).
//! - `index.rs`: [`IndexQueries`], what the parent's index answers, and [`StaticIndex`].
//! - `prelude.py`: the helpers model code sees and the cell runner.
//! - `sandbox/`: what model code may touch (Landlock, seccomp, rlimits, an audit hook that
//!   explains denials); applied by the worker before model code runs. See `docs/security.md`.
//! - `capture.rs`: bounded head+tail capture of output.

mod blob;
mod capture;
mod host;
mod index;
pub mod owned_dir;
mod protocol;
mod sandbox;
mod tools;
mod worker;

pub use blob::ContextBlob;
pub use host::Repl;
pub use index::{
    IndexQueries, SearchHit, StaticIndex, SymbolQuery, exact_definitions, filter_definitions,
    innermost_function, nest, parse_kind, search_chunks, search_document,
};
pub use protocol::EditOp;
pub use sandbox::{SandboxConfig, UNSAFE_NO_SANDBOX_ENV};
pub use worker::worker_main;

use futures::future::BoxFuture;
use std::path::PathBuf;
use std::time::Duration;

/// The hidden subcommand that runs [`worker_main`].
pub const WORKER_SUBCOMMAND: &str = "__repl-worker";

/// Default of [`ReplConfig::cell_wall_timeout`], in seconds.
pub const DEFAULT_CELL_WALL_SECS: u64 = 600;

/// How workers are started and limited.
#[derive(Debug, Clone)]
pub struct ReplConfig {
    /// The binary to run as `<worker_exe> __repl-worker`; the current executable by default.
    pub worker_exe: PathBuf,
    /// A cell running longer than this (not counting time spent answering sub-calls) is killed.
    pub cell_timeout: Duration,
    /// A cell is killed after this long whatever it waits for, sub-calls included: a loop over
    /// `llm_query` cannot run for ever.
    pub cell_wall_timeout: Duration,
    /// Bytes of a cell's stdout+stderr kept in [`CellOutput`] (head and tail); at most 16 MiB.
    pub max_output_bytes: usize,
    /// The worker's sandbox; on unless the user opted out (`RLM_UNSAFE_NO_SANDBOX=1`).
    pub sandbox: SandboxConfig,
}

impl Default for ReplConfig {
    fn default() -> Self {
        ReplConfig {
            worker_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rlm-lsp")),
            cell_timeout: Duration::from_secs(60),
            cell_wall_timeout: Duration::from_secs(DEFAULT_CELL_WALL_SECS),
            max_output_bytes: 1 << 20,
            sandbox: SandboxConfig::default(),
        }
    }
}

/// Answers the model calls made from inside the REPL (`llm_query`, `llm_query_batched`).
pub trait SubCalls: Send + Sync {
    /// One result per prompt, in order; `Err(message)` for a failed call.
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>>;

    /// `rlm_query`: a child RLM run per prompt, over the context given (a JSON spec:
    /// `{"text": str}` or `{"files": {path: text}}`), or the parent's workspace for `None`.
    /// Without recursion (the default, and at the last depth) these are plain model calls.
    fn rlm_batch(
        &self,
        prompts: Vec<String>,
        contexts: Vec<Option<String>>,
    ) -> BoxFuture<'_, Vec<Result<String, String>>> {
        let _ = contexts;
        self.batch(prompts)
    }
}

/// What one cell did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellOutput {
    /// Captured stdout (head and tail kept when huge, with a marker line saying how many bytes
    /// were dropped).
    pub stdout: String,
    pub stderr: String,
    /// True total bytes printed (stdout+stderr), including the dropped ones.
    pub output_bytes: u64,
    /// Set when the cell called `FINAL(x)` or `FINAL_VAR("name")`.
    pub final_answer: Option<String>,
    /// The Python traceback (last frames) when the cell raised, or the SyntaxError.
    pub error: Option<String>,
    /// The cell was killed after `cell_timeout`, or after `cell_wall_timeout` (then
    /// `over_wall_time` is set too); a fresh worker is running, variables are lost.
    pub timed_out: bool,
    /// The cell was killed after `cell_wall_timeout`, counting the time its sub-calls took.
    pub over_wall_time: bool,
    /// The worker died mid-cell (`os._exit`, a segfault, ...): what happened. A fresh worker is
    /// running, variables are lost.
    pub worker_died: Option<String>,
    /// Helpers (or `sys.stdout`/`sys.stderr`/`sys.stdin`) the code replaced or deleted, now
    /// restored.
    pub restored_helpers: Vec<String>,
    /// `(name, fingerprint)` of the variables the cell read before assigning them itself, as
    /// they were when it started (helpers and modules not included), in first-read order. The
    /// fingerprint is a hash of the value's type name, identity and length: a re-run of the same
    /// code over changed variables has different `reads`. Empty when the cell was not run.
    pub reads: Vec<(String, u64)>,
    /// `(name, fingerprint)` of every variable at the cell's end (not helpers, modules or names
    /// starting with `_`), sorted by name.
    pub namespace: Vec<(String, u64)>,
    /// Edits the cell proposed (nothing was written), in order.
    pub edits: Vec<EditOp>,
    /// Time the cell ran, excluding the time spent answering sub-calls.
    pub duration: Duration,
}

/// REPL failures the caller must handle; a failing cell is not one (see [`CellOutput`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error(
        "cannot write the workspace context file {path}: {source}; check that the temp directory \
         (TMPDIR) exists and has free space"
    )]
    Blob {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create a working directory for the Python REPL worker: {0}; check that the temp \
         directory (TMPDIR) exists and is writable"
    )]
    Workdir(std::io::Error),
    #[error(
        "cannot start the Python REPL worker {exe}: {source}; check that the rlm-lsp binary is \
         intact and executable"
    )]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Python REPL worker failed to start: {0}; check that libpython3.11 is installed \
         (scripts/setup.sh checks it) and see the log for the worker's stderr"
    )]
    Start(String),
    #[error(
        "cannot run model code: the REPL sandbox is not available: {0}. Set \
         RLM_UNSAFE_NO_SANDBOX=1 (or pass --unsafe-no-sandbox) to run model code without it, with \
         your full rights"
    )]
    Sandbox(String),
    #[error(
        "the Python REPL worker was not ready after {0:?}; the machine may be overloaded, retry"
    )]
    StartTimeout(Duration),
    #[error(
        "reading variable `{name}` from the REPL failed: {reason}; a fresh worker was started and \
         the variables are lost"
    )]
    GetVar { name: String, reason: String },
}
