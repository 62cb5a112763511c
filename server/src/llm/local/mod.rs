//! The default model: a local llama.cpp `llama-server` serving Qwen2.5-Coder-1.5B-Instruct, shared
//! by every rlm-lsp process of the user (one per editor window, plus CLI runs).
//!
//! # Use
//!
//! `LocalServer::acquire().await` (or [`LocalServer::acquire_blocking`] without a runtime) returns
//! a [`LocalServerHandle`] once the model is loaded; send OpenAI-compatible requests to
//! [`LocalServerHandle::base_url`] (`http://127.0.0.1:PORT/v1`) with
//! [`LocalServerHandle::model_name`] and the bearer token [`LocalServerHandle::api_key`]. Keep the
//! handle for as long as the server is needed; dropping the last handle of the last process stops
//! the server. If the server crashes, [`LocalServerHandle::is_alive`] turns false: drop the handle
//! and acquire again. Linux only (`flock`, `prctl`, `/proc`).
//!
//! # Where the binary and the model are found
//!
//! The first match wins; an explicit environment variable that names a missing file is an error
//! (no silent fallback):
//!
//! 1. `RLM_LLAMA_SERVER` / `RLM_LOCAL_MODEL`: explicit paths;
//! 2. `llama-server` on `PATH` (the binary only);
//! 3. a `.rlm/` directory found by walking up from the running executable's directory
//!    (`target/release/rlm-lsp` finds `<repo>/.rlm`): `.rlm/bin/llama-server`,
//!    `.rlm/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`;
//! 4. the user cache directory `${RLM_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/rlm-lsp}`:
//!    `llama.cpp-11434.0.0/bin/llama-server`, `models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`.
//!
//! `scripts/setup.sh` installs both. When either is missing, [`LocalModelError::NotInstalled`] lists
//! every path tried.
//!
//! Tuning (environment): `RLM_LOCAL_CTX` (total context, default 32768, split over 2 slots),
//! `RLM_LOCAL_THREADS` (default: available cores, at most 8), `RLM_LOCAL_STARTUP_TIMEOUT` (seconds
//! to wait for the model to load, default 180), `RLM_LOCAL_LINGER` (seconds the server stays up
//! after its last user leaves, default 0).
//!
//! llama-server runs as `-m MODEL --alias STEM --host 127.0.0.1 --port P -c CTX -np 2 -t T -tb T
//! --no-webui --api-key-file KEYFILE`: two slots of CTX/2 tokens each, so the root conversation
//! keeps its own slot (its prompt cache serves every root iteration; prompt caching is on by
//! default) while sub-calls use the other. The API key is random per start and stored with mode
//! 0600 (`api-key`, `state.json` in a 0700 directory): the port on 127.0.0.1 is reachable by other
//! local users and by web pages (llama-server allows every CORS origin, and its `/slots` endpoint
//! shows prompts, which hold the user's code); the key keeps them out. `/health` needs no key.
//!
//! # Sharing protocol
//!
//! State lives in `<cache>/local-server/<model-stem>-<hash of the model's canonical path>/`, one
//! directory per model file, so two different models never fight over one server:
//!
//! - `state.lock`: `flock` mutex for every start/stop decision;
//! - `users.lock`: every live user holds a *shared* `flock` on its own open file for as long as it
//!   uses the server ([`LocalServerHandle`] owns that descriptor);
//! - `keeper.lock`: the keeper holds it *exclusively* for its whole life (its pid is the content).
//!   Trying a shared lock on it is a liveness test that pid reuse cannot fool;
//! - `state.json`: keeper pid, llama-server pid, port, API key, model, settings, start time;
//! - `keeper.log`, `llama-server.log`: logs, the latter shown in start-up errors.
//!
//! The kernel drops `flock`s when a process dies, SIGKILL included, so crashed users and crashed
//! keepers are noticed without pid files being trusted.
//!
//! Acquire: lock `state.lock`. If the keeper is alive, read `state.json`. Otherwise remove any stale
//! state (killing a leftover llama-server only if its command line proves it is ours), pick a free
//! port, and start a keeper: this same executable re-run as `rlm-lsp __llama-keeper ...`, in its own
//! session (`setsid`: a terminal Ctrl-C or hang-up never reaches it), stdio to `keeper.log`. The
//! acquirer, still holding `state.lock`, waits for the keeper's `state.json`. Then it takes its
//! shared lock on `users.lock` and only then releases `state.lock`: the keeper decides to stop
//! only while holding `state.lock`, so a new user can never slip in during a shutdown. Finally it
//! waits, without any lock, for `GET /health` to answer 200 (the model is loaded), following a
//! restarted keeper if one replaced a failed one meanwhile.
//!
//! The keeper ([`keeper_main`]) is single-threaded and spawns llama-server with
//! `PR_SET_PDEATHSIG = SIGKILL`, so killing the keeper by any means kills the server. Every 300 ms
//! it takes `state.lock` and tries `users.lock` exclusively without blocking; success means no user
//! is left: it stops llama-server (SIGTERM, then SIGKILL after 5 s), removes `state.json` and exits.
//! If llama-server dies after it had loaded the model, the keeper starts it again once, on the same
//! port with the same key (so every handle stays valid) and records its new pid in `state.json`;
//! if it dies before loading, or again within a minute of a restart, the keeper removes
//! `state.json` and exits: waiting acquirers then report the tail of `llama-server.log`.
//!
//! # When llama-server dies under a run
//!
//! Handles register in this process by port ([`serving`]). A model client whose request to such a
//! port fails at the transport level (refused, reset) asks [`wait_until_serving`]: it waits for
//! the keeper's restart to answer `/health`, then the request is sent again; if the keeper gave up
//! or was killed, the call fails at once with [`LocalModelError::Stopped`], and front ends that
//! keep their models resolve them again on the next question ([`stopped`]), which starts a new
//! keeper.
//!
//! If the cache directory cannot hold the state directory (read-only home), the state goes to
//! `$XDG_RUNTIME_DIR/rlm-lsp/local-server`, else `$TMPDIR/rlm-lsp-UID/local-server` (created 0700,
//! refused unless this user owns it), with one warning.
//!
//! The acquisition itself is blocking code (file locks, process start, model load);
//! [`LocalServer::acquire`] runs it on tokio's blocking pool.

mod acquire;
mod keeper;
mod lookup;
mod serving;
mod sys;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use acquire::{acquire, keeper_alive, read_state};
pub use keeper::keeper_main;
#[cfg(test)]
use lookup::cache_dir;
pub use lookup::user_cache_dir;
pub(crate) use lookup::warn_cache_unwritable;
pub use serving::{stopped, wait_until_serving};

/// The name of the hidden subcommand that runs [`keeper_main`].
pub const KEEPER_SUBCOMMAND: &str = "__llama-keeper";
/// The default model's file name.
pub const MODEL_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";
/// The llama.cpp build `scripts/setup.sh` installs in the cache directory.
pub const LLAMA_CPP_DIR: &str = "llama.cpp-11434.0.0";

const DEFAULT_CTX: u32 = 32768;
const DEFAULT_PARALLEL: u32 = 2;
const MAX_DEFAULT_THREADS: u32 = 8;
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

const STATE_FILE: &str = "state.json";
const STATE_LOCK: &str = "state.lock";
const USERS_LOCK: &str = "users.lock";
const KEEPER_LOCK: &str = "keeper.lock";
const KEEPER_LOG: &str = "keeper.log";
const SERVER_LOG: &str = "llama-server.log";
const API_KEY_FILE: &str = "api-key";

/// How long an acquirer waits for `state.lock` (held by another acquirer starting a keeper, or by
/// a keeper stopping its server).
const STATE_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a freshly spawned keeper has to write `state.json`.
const KEEPER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a log shown in an error.
const LOG_TAIL_LINES: usize = 15;

/// Why the local model is not available. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    /// The llama-server binary or the model file was not found.
    #[error(
        "{what} not found; tried:\n  {}\nRun scripts/setup.sh to install the local model and llama-server, set {env_var} to its path, or set RLM_BASE_URL to use another model server",
        tried.join("\n  ")
    )]
    NotInstalled {
        /// "llama-server" or "the local model (...)".
        what: String,
        /// The environment variable that overrides the lookup.
        env_var: &'static str,
        /// Every location tried, in order.
        tried: Vec<String>,
    },
    /// A tuning variable has a value that cannot be used.
    #[error("{var}={value:?} is invalid: {reason}; fix or unset it")]
    InvalidEnv {
        var: &'static str,
        value: String,
        reason: String,
    },
    /// No cache directory could be determined.
    #[error(
        "cannot find a cache directory for the local model's state: set RLM_CACHE_DIR (or HOME)"
    )]
    NoCacheDir,
    /// The path of the running executable (which hosts the keeper) is unknown.
    #[error(
        "cannot find the rlm-lsp executable to start the local model keeper ({0}); set RLM_BASE_URL to use a model server started by hand"
    )]
    NoKeeperExe(#[source] std::io::Error),
    /// A file-system operation on the state directory failed.
    #[error("cannot {action} {}: {source}; check permissions or set RLM_CACHE_DIR to a writable directory", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the start/stop lock for too long.
    #[error(
        "timed out after {}s waiting for {} (another rlm-lsp process is starting or stopping the local model); retry, or if no rlm-lsp is running, delete {}",
        timeout.as_secs(),
        path.display(),
        path.parent().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
    )]
    LockTimeout { path: PathBuf, timeout: Duration },
    /// The keeper could not be started or exited before it started llama-server.
    #[error(
        "the local model keeper (`{exe} __llama-keeper`) failed to start: {reason}. Last lines of {log}:\n{log_tail}\nRebuild rlm-lsp (scripts/setup.sh) if this executable lacks the keeper, or set RLM_BASE_URL to use another model server",
        exe = exe.display(),
        log = log.display()
    )]
    KeeperFailed {
        exe: PathBuf,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },
    /// llama-server exited before it was ready.
    #[error(
        "llama-server exited before the model was loaded. Last lines of {}:\n{log_tail}\nCheck that {} is a complete GGUF file (re-run scripts/setup.sh) and that llama-server runs on this machine",
        log.display(),
        model.display()
    )]
    ServerExited {
        log: PathBuf,
        log_tail: String,
        model: PathBuf,
    },
    /// llama-server did not answer `/health` with 200 in time.
    #[error(
        "llama-server (pid {server_pid}, port {port}) did not load the model within {}s. Last lines of {}:\n{log_tail}\nRaise RLM_LOCAL_STARTUP_TIMEOUT if this machine is slow; if it is stuck, kill pid {server_pid} and retry",
        timeout.as_secs(),
        log.display()
    )]
    StartTimeout {
        server_pid: u32,
        port: u16,
        timeout: Duration,
        log: PathBuf,
        log_tail: String,
    },
    /// The keeper stopped (it was killed, or llama-server kept crashing) while this process used
    /// the model.
    #[error(
        "the local model stopped during the run (llama-server exited and its keeper did not restart it). Last lines of {}:\n{log_tail}\nAsk again to start it anew; if it keeps stopping, check free memory and {}",
        log.display(),
        keeper_log.display()
    )]
    Stopped {
        log: PathBuf,
        log_tail: String,
        keeper_log: PathBuf,
    },
    /// The blocking task running the acquisition panicked or was cancelled.
    #[error("starting the local model was interrupted: {0}")]
    Interrupted(String),
}

/// What the keeper writes to `state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StateFile {
    keeper_pid: u32,
    server_pid: u32,
    port: u16,
    model: PathBuf,
    server: PathBuf,
    ctx: u32,
    parallel: u32,
    threads: u32,
    /// Seconds since the Unix epoch.
    started_at: u64,
    /// The key llama-server requires (`Authorization: Bearer ...`); `None` for a build that cannot
    /// read a key file.
    #[serde(default)]
    api_key: Option<String>,
}

/// Everything needed to find or start the shared local server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalServerConfig {
    /// The llama-server executable.
    pub llama_server: PathBuf,
    /// The GGUF model file.
    pub model: PathBuf,
    /// The executable that runs [`keeper_main`] for the hidden subcommand `__llama-keeper`
    /// (normally the running rlm-lsp itself).
    pub keeper_exe: PathBuf,
    /// The `local-server` directory; each model gets a subdirectory ([`Self::instance_dir`]).
    pub state_dir: PathBuf,
    /// Total context in tokens, split evenly over the slots.
    pub ctx_size: u32,
    /// Parallel slots (`-np`).
    pub parallel: u32,
    /// Threads for generation and prompt processing (`-t`, `-tb`).
    pub threads: u32,
    /// How long to wait for the model to load.
    pub startup_timeout: Duration,
    /// How long the server stays up after its last user leaves.
    pub linger: Duration,
}

/// Entry points for the shared local model server.
pub struct LocalServer;

impl LocalServer {
    /// Finds the local model (see the module doc), joins the running shared llama-server or starts
    /// one, and resolves once the model is loaded (up to [`LocalServerConfig::startup_timeout`]).
    /// The blocking work (file locks, process start, model load) runs on tokio's blocking pool;
    /// dropping the future early is safe (a handle obtained after that is dropped, releasing the
    /// server).
    pub async fn acquire() -> Result<LocalServerHandle, LocalModelError> {
        Self::acquire_with(LocalServerConfig::from_env()?).await
    }

    /// [`Self::acquire`] with an explicit configuration.
    pub async fn acquire_with(
        config: LocalServerConfig,
    ) -> Result<LocalServerHandle, LocalModelError> {
        tokio::task::spawn_blocking(move || acquire(&config))
            .await
            .map_err(|e| LocalModelError::Interrupted(e.to_string()))?
    }

    /// [`Self::acquire_with`] without an async runtime: blocks the calling thread until the model
    /// is loaded.
    pub fn acquire_blocking(
        config: &LocalServerConfig,
    ) -> Result<LocalServerHandle, LocalModelError> {
        acquire(config)
    }
}

/// A running, loaded, shared llama-server, kept alive for as long as this handle lives.
///
/// The handle owns an open descriptor of `users.lock` with a shared `flock`; dropping the handle
/// closes it. When the last handle of the last process is gone (or that process dies), the keeper
/// stops the server within about half a second.
pub struct LocalServerHandle {
    users_lock: File,
    dir: PathBuf,
    state: StateFile,
    model_name: String,
    base_url: String,
}

impl LocalServerHandle {
    /// The OpenAI-compatible base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model name to send in requests.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The API key to send as `Authorization: Bearer KEY`. A fresh random key per server start,
    /// readable only by this user, so other local users and web pages cannot use the server.
    /// `None` when the llama-server build cannot take a key file (then no key is needed).
    pub fn api_key(&self) -> Option<&str> {
        self.state.api_key.as_deref()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// The keeper process's pid.
    pub fn keeper_pid(&self) -> u32 {
        self.state.keeper_pid
    }

    /// The llama-server process's pid (a new one after the keeper restarted it).
    pub fn server_pid(&self) -> u32 {
        read_state(&self.dir)
            .filter(|s| s.keeper_pid == self.state.keeper_pid)
            .map_or(self.state.server_pid, |s| s.server_pid)
    }

    /// Total context of the server in tokens and its number of slots (each slot gets
    /// `ctx / parallel`).
    pub fn context(&self) -> (u32, u32) {
        (self.state.ctx, self.state.parallel)
    }

    /// The directory with the state, lock and log files.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the keeper behind this handle still runs. After a crash of the keeper or of
    /// llama-server this turns false; acquire a new handle then.
    pub fn is_alive(&self) -> bool {
        keeper_alive(&self.dir).unwrap_or(false)
            && read_state(&self.dir).is_some_and(|s| s.keeper_pid == self.state.keeper_pid)
    }

    /// Gives the server up now (the same as dropping the handle).
    pub fn release(self) {
        drop(self);
    }
}

impl std::fmt::Debug for LocalServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is never printed.
        f.debug_struct("LocalServerHandle")
            .field("base_url", &self.base_url)
            .field("model_name", &self.model_name)
            .field("keeper_pid", &self.state.keeper_pid)
            .field("server_pid", &self.state.server_pid)
            .field("state_dir", &self.dir)
            .field(
                "api_key",
                &self.state.api_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Drop for LocalServerHandle {
    fn drop(&mut self) {
        // Closing the descriptor (right after this) releases the lock anyway; unlocking first
        // makes the intent explicit and is harmless.
        let _ = self.users_lock.unlock();
        serving::unregister(self.state.port, self.state.keeper_pid);
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalModelError {
    let path = path.to_path_buf();
    move |source| LocalModelError::Io {
        action,
        path,
        source,
    }
}
