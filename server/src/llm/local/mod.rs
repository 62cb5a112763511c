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
//! If llama-server dies, the keeper removes `state.json` and exits; waiting acquirers then report
//! the tail of `llama-server.log`.
//!
//! The acquisition itself is blocking code (file locks, process start, model load);
//! [`LocalServer::acquire`] runs it on tokio's blocking pool.

mod keeper;
mod sys;

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use keeper::keeper_main;
use sys::{Health, LockKind};

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

impl LocalServerConfig {
    /// Resolves the configuration from the process environment and the running executable's
    /// location (see the module doc for the lookup order).
    pub fn from_env() -> Result<Self, LocalModelError> {
        let exe = std::env::current_exe().map_err(LocalModelError::NoKeeperExe)?;
        Self::resolve(|name| std::env::var_os(name), &exe)
    }

    /// Like [`Self::from_env`] with an explicit environment and executable path (for tests and
    /// for callers that layer their own configuration).
    pub fn resolve(
        env: impl Fn(&str) -> Option<OsString>,
        exe: &Path,
    ) -> Result<Self, LocalModelError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let cache = cache_dir(&var)?;
        let exe_dir = exe.parent().unwrap_or(exe);
        let local_dirs: Vec<PathBuf> = exe_dir
            .ancestors()
            .map(|a| a.join(".rlm"))
            .filter(|d| d.is_dir())
            .collect();

        let llama_server = find(
            "llama-server".to_string(),
            "RLM_LLAMA_SERVER",
            var("RLM_LLAMA_SERVER"),
            path_lookup(var("PATH"), "llama-server"),
            &local_dirs,
            exe_dir,
            Path::new("bin/llama-server"),
            cache.join(LLAMA_CPP_DIR).join("bin/llama-server"),
        )?;
        let model = find(
            format!("the local model ({MODEL_FILE})"),
            "RLM_LOCAL_MODEL",
            var("RLM_LOCAL_MODEL"),
            None,
            &local_dirs,
            exe_dir,
            &Path::new("models").join(MODEL_FILE),
            cache.join("models").join(MODEL_FILE),
        )?;

        let threads = match parse_var(&var, "RLM_LOCAL_THREADS", 1, 256)? {
            Some(t) => t,
            None => thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(2)
                .min(MAX_DEFAULT_THREADS),
        };
        let ctx_size = parse_var(&var, "RLM_LOCAL_CTX", 1024, 1 << 20)?.unwrap_or(DEFAULT_CTX);
        let startup_timeout = parse_var(&var, "RLM_LOCAL_STARTUP_TIMEOUT", 1, 86_400)?
            .map_or(DEFAULT_STARTUP_TIMEOUT, |s| Duration::from_secs(s.into()));
        let linger = parse_var(&var, "RLM_LOCAL_LINGER", 0, 86_400)?
            .map_or(Duration::ZERO, |s| Duration::from_secs(s.into()));

        Ok(Self {
            llama_server,
            model,
            keeper_exe: exe.to_path_buf(),
            state_dir: cache.join("local-server"),
            ctx_size,
            parallel: DEFAULT_PARALLEL,
            threads,
            startup_timeout,
            linger,
        })
    }

    /// The model name to send in requests (llama-server serves it under this alias): the model
    /// file's stem, e.g. `qwen2.5-coder-1.5b-instruct-q4_k_m`.
    pub fn model_name(&self) -> String {
        self.canonical_model()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".to_string())
    }

    /// The model path with symlinks resolved (`.rlm/models/...` links into the cache), so every
    /// way of naming one file leads to one server.
    fn canonical_model(&self) -> PathBuf {
        std::fs::canonicalize(&self.model).unwrap_or_else(|_| self.model.clone())
    }

    /// The directory holding this model's lock and state files.
    pub fn instance_dir(&self) -> PathBuf {
        let canonical = self.canonical_model();
        let hash = fnv1a(canonical.as_os_str().as_encoded_bytes());
        let stem: String = self
            .model_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir.join(format!("{stem}-{:08x}", hash as u32))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The user's cache directory for rlm-lsp: `$RLM_CACHE_DIR`, else `$XDG_CACHE_HOME/rlm-lsp`,
/// else `~/.cache/rlm-lsp`.
pub fn user_cache_dir() -> Result<PathBuf, LocalModelError> {
    cache_dir(&|k| std::env::var_os(k))
}

fn cache_dir(var: &impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, LocalModelError> {
    if let Some(dir) = var("RLM_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(xdg).join("rlm-lsp"));
    }
    var("HOME")
        .map(|home| PathBuf::from(home).join(".cache/rlm-lsp"))
        .ok_or(LocalModelError::NoCacheDir)
}

fn path_lookup(path: Option<OsString>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(&path?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One lookup, in the documented order; `tried` records every location for the error message.
#[allow(clippy::too_many_arguments)]
fn find(
    what: String,
    env_var: &'static str,
    explicit: Option<OsString>,
    on_path: Option<PathBuf>,
    local_dirs: &[PathBuf],
    exe_dir: &Path,
    in_local: &Path,
    in_cache: PathBuf,
) -> Result<PathBuf, LocalModelError> {
    let not_installed = |tried| LocalModelError::NotInstalled {
        what: what.clone(),
        env_var,
        tried,
    };
    if let Some(explicit) = explicit {
        let path = PathBuf::from(explicit);
        if path.is_file() {
            return Ok(path);
        }
        return Err(not_installed(vec![format!(
            "{env_var}={} (no such file)",
            path.display()
        )]));
    }
    let mut tried = vec![format!("{env_var} (not set)")];
    if env_var == "RLM_LLAMA_SERVER" {
        match on_path {
            Some(path) => return Ok(path),
            None => tried.push("`llama-server` on PATH (not found)".to_string()),
        }
    }
    for dir in local_dirs {
        let path = dir.join(in_local);
        if path.is_file() {
            return Ok(path);
        }
        tried.push(path.display().to_string());
    }
    if local_dirs.is_empty() {
        tried.push(format!(
            "a .rlm/{} in {} or a parent directory (no .rlm directory found)",
            in_local.display(),
            exe_dir.display()
        ));
    }
    if in_cache.is_file() {
        return Ok(in_cache);
    }
    tried.push(in_cache.display().to_string());
    Err(not_installed(tried))
}

fn parse_var(
    var: &impl Fn(&str) -> Option<OsString>,
    name: &'static str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, LocalModelError> {
    let Some(raw) = var(name) else {
        return Ok(None);
    };
    let value = raw.to_string_lossy().into_owned();
    let invalid = |reason: String| LocalModelError::InvalidEnv {
        var: name,
        value: value.clone(),
        reason,
    };
    let n: u32 = value
        .trim()
        .parse()
        .map_err(|e| invalid(format!("not a whole number ({e})")))?;
    if !(min..=max).contains(&n) {
        return Err(invalid(format!("must be between {min} and {max}")));
    }
    Ok(Some(n))
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

    /// The llama-server process's pid.
    pub fn server_pid(&self) -> u32 {
        self.state.server_pid
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

fn read_state(dir: &Path) -> Option<StateFile> {
    let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a keeper holds `keeper.lock` (a brief shared lock succeeds only if none does).
fn keeper_alive(dir: &Path) -> Result<bool, LocalModelError> {
    let path = dir.join(KEEPER_LOCK);
    let file = sys::open_lock_file(&path).map_err(io_err("open", &path))?;
    let free = sys::try_lock(&file, LockKind::Shared).map_err(io_err("lock", &path))?;
    Ok(!free)
}

fn check_installed(config: &LocalServerConfig) -> Result<(), LocalModelError> {
    for (what, env_var, path) in [
        (
            "llama-server".to_string(),
            "RLM_LLAMA_SERVER",
            &config.llama_server,
        ),
        (
            format!("the local model ({MODEL_FILE})"),
            "RLM_LOCAL_MODEL",
            &config.model,
        ),
    ] {
        if !path.is_file() {
            return Err(LocalModelError::NotInstalled {
                what,
                env_var,
                tried: vec![format!("{} (no such file)", path.display())],
            });
        }
    }
    Ok(())
}

fn acquire(config: &LocalServerConfig) -> Result<LocalServerHandle, LocalModelError> {
    check_installed(config)?;
    let dir = config.instance_dir();
    // Private: the state file holds the server's API key.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(io_err("create", &dir))?;

    let state_lock_path = dir.join(STATE_LOCK);
    let state_lock =
        sys::open_lock_file(&state_lock_path).map_err(io_err("open", &state_lock_path))?;
    if !sys::lock_with_timeout(&state_lock, LockKind::Exclusive, STATE_LOCK_TIMEOUT)
        .map_err(io_err("lock", &state_lock_path))?
    {
        return Err(LocalModelError::LockTimeout {
            path: state_lock_path,
            timeout: STATE_LOCK_TIMEOUT,
        });
    }

    let state = match (keeper_alive(&dir)?, read_state(&dir)) {
        (true, Some(state)) => {
            tracing::debug!(
                port = state.port,
                keeper = state.keeper_pid,
                "joining the shared local model server"
            );
            state
        }
        (alive, stale) => {
            if alive {
                // A keeper without a state file (someone deleted it): it cannot be joined.
                kill_orphan_keeper(&dir);
            }
            if let Some(stale) = &stale {
                tracing::info!(
                    keeper = stale.keeper_pid,
                    server = stale.server_pid,
                    "removing stale local model state"
                );
                kill_stale_server(stale);
            }
            let path = dir.join(STATE_FILE);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
            start_keeper(config, &dir)?
        }
    };

    let users_path = dir.join(USERS_LOCK);
    let users_lock = sys::open_lock_file(&users_path).map_err(io_err("open", &users_path))?;
    // The keeper holds users.lock exclusively only while it holds state.lock, which we hold now.
    if !sys::lock_with_timeout(&users_lock, LockKind::Shared, Duration::from_secs(5))
        .map_err(io_err("lock", &users_path))?
    {
        return Err(LocalModelError::LockTimeout {
            path: users_path,
            timeout: Duration::from_secs(5),
        });
    }
    drop(state_lock);

    let state = wait_ready(config, &dir, state)?;
    Ok(LocalServerHandle {
        users_lock,
        base_url: format!("http://127.0.0.1:{}/v1", state.port),
        model_name: config.model_name(),
        dir,
        state,
    })
}

/// Starts a keeper and waits for its `state.json`. Called with `state.lock` held.
fn start_keeper(config: &LocalServerConfig, dir: &Path) -> Result<StateFile, LocalModelError> {
    let port =
        sys::free_loopback_port().map_err(io_err("reserve a port on", Path::new("127.0.0.1")))?;
    let log_path = dir.join(KEEPER_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("open", &log_path))?;
    // Keep the log from growing forever: start over when it passes 1 MiB.
    if log.metadata().is_ok_and(|m| m.len() > 1 << 20) {
        let _ = log.set_len(0);
    }
    let log_err = log.try_clone().map_err(io_err("open", &log_path))?;

    let mut cmd = Command::new(&config.keeper_exe);
    cmd.arg(KEEPER_SUBCOMMAND)
        .arg("--dir")
        .arg(dir)
        .arg("--server")
        .arg(&config.llama_server)
        .arg("--model")
        .arg(&config.model)
        .arg("--alias")
        .arg(config.model_name())
        .arg("--port")
        .arg(port.to_string())
        .arg("--ctx")
        .arg(config.ctx_size.to_string())
        .arg("--parallel")
        .arg(config.parallel.to_string())
        .arg("--threads")
        .arg(config.threads.to_string())
        .arg("--linger-ms")
        .arg(config.linger.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    sys::detach_into_new_session(&mut cmd);
    let failed = |reason: String| LocalModelError::KeeperFailed {
        exe: config.keeper_exe.clone(),
        reason,
        log: log_path.clone(),
        log_tail: sys::tail(&log_path, LOG_TAIL_LINES),
    };
    let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
    let pid = child.id();
    tracing::info!(keeper = pid, port, "starting the shared local model server");

    let deadline = Instant::now() + KEEPER_HANDSHAKE_TIMEOUT;
    loop {
        if let Some(state) = read_state(dir).filter(|s| s.keeper_pid == pid) {
            // Reap the keeper when it exits, so it never lingers as a zombie of this process.
            let _ = thread::Builder::new()
                .name("rlm-keeper-reaper".to_string())
                .spawn(move || child.wait());
            return Ok(state);
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(failed(format!("it exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(failed(e.to_string())),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "it did not start llama-server within {}s",
                KEEPER_HANDSHAKE_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (holding only the users lock) until the server answers `/health` with 200.
fn wait_ready(
    config: &LocalServerConfig,
    dir: &Path,
    mut state: StateFile,
) -> Result<StateFile, LocalModelError> {
    let deadline = Instant::now() + config.startup_timeout;
    let server_log = dir.join(SERVER_LOG);
    let mut pause = Duration::from_millis(50);
    loop {
        if sys::health(state.port, Duration::from_secs(2)) == Health::Ready {
            return Ok(state);
        }
        match read_state(dir) {
            // A keeper that failed was replaced by another user's: follow it.
            Some(current) if current.keeper_pid != state.keeper_pid => state = current,
            Some(_) if keeper_alive(dir)? => {}
            _ => {
                return Err(LocalModelError::ServerExited {
                    log_tail: sys::tail(&server_log, LOG_TAIL_LINES),
                    log: server_log,
                    model: config.model.clone(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(LocalModelError::StartTimeout {
                server_pid: state.server_pid,
                port: state.port,
                timeout: config.startup_timeout,
                log_tail: sys::tail(&server_log, LOG_TAIL_LINES),
                log: server_log,
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Kills a llama-server left from a dead keeper, but only if its command line shows it is the one
/// `state.json` describes (the pid may have been reused by an unrelated process). PDEATHSIG makes
/// this a rare case: it needs a keeper that died between fork and prctl.
fn kill_stale_server(stale: &StateFile) {
    let Some(args) = sys::cmdline(stale.server_pid) else {
        return;
    };
    let port = stale.port.to_string();
    let ours = args.windows(2).any(|w| w[0] == "--port" && w[1] == port)
        && args.iter().any(|a| Path::new(a) == stale.model);
    if ours && sys::pid_alive(stale.server_pid) {
        tracing::warn!(
            pid = stale.server_pid,
            "killing a llama-server left by a dead keeper"
        );
        sys::send_signal(stale.server_pid, libc::SIGKILL);
    }
}

/// Kills a live keeper that has no `state.json` (its pid is the content of `keeper.lock`) and
/// waits for its lock to be released.
fn kill_orphan_keeper(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join(KEEPER_LOCK))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(pid) = pid
        && sys::cmdline(pid).is_some_and(|args| args.iter().any(|a| a == KEEPER_SUBCOMMAND))
    {
        tracing::warn!(pid, "killing a local model keeper that lost its state file");
        sys::send_signal(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && keeper_alive(dir).unwrap_or(false) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn touch_executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn missing_install_lists_every_path_tried() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("repo/target/release/rlm-lsp");
        let cache = tmp.path().join("cache");
        let empty_path = tmp.path().join("empty-bin");
        let err = LocalServerConfig::resolve(
            env(&[("RLM_CACHE_DIR", &cache), ("PATH", &empty_path)]),
            &exe,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("llama-server not found; tried:"), "{err}");
        assert!(err.contains("RLM_LLAMA_SERVER (not set)"), "{err}");
        assert!(err.contains("`llama-server` on PATH (not found)"), "{err}");
        assert!(err.contains("(no .rlm directory found)"), "{err}");
        assert!(
            err.contains(&format!(
                "{}/llama.cpp-11434.0.0/bin/llama-server",
                cache.display()
            )),
            "{err}"
        );
        assert!(err.contains("Run scripts/setup.sh"), "{err}");
        assert!(err.contains("RLM_BASE_URL"), "{err}");
    }

    #[test]
    fn lookup_order_env_then_path_then_dot_rlm_then_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let exe = repo.join("target/release/rlm-lsp");
        let cache = tmp.path().join("cache");
        let bin_dir = tmp.path().join("bin");
        let on_path = bin_dir.join("llama-server");
        let in_repo = repo.join(".rlm/bin/llama-server");
        let in_cache = cache.join("llama.cpp-11434.0.0/bin/llama-server");
        let model_repo = repo.join(".rlm/models").join(MODEL_FILE);
        let model_cache = cache.join("models").join(MODEL_FILE);
        for p in [&on_path, &in_repo, &in_cache, &model_repo, &model_cache] {
            touch_executable(p);
        }
        let explicit = tmp.path().join("explicit-server");
        touch_executable(&explicit);

        let resolve = |vars: &[(&str, &Path)]| LocalServerConfig::resolve(env(vars), &exe).unwrap();
        let c = resolve(&[
            ("RLM_CACHE_DIR", &cache),
            ("PATH", &bin_dir),
            ("RLM_LLAMA_SERVER", &explicit),
        ]);
        assert_eq!(c.llama_server, explicit);
        let c = resolve(&[("RLM_CACHE_DIR", &cache), ("PATH", &bin_dir)]);
        assert_eq!(c.llama_server, on_path);
        assert_eq!(c.model, model_repo);
        assert_eq!(c.state_dir, cache.join("local-server"));
        assert_eq!(c.keeper_exe, exe);
        std::fs::remove_file(&in_repo).unwrap();
        std::fs::remove_file(&model_repo).unwrap();
        let c = resolve(&[("RLM_CACHE_DIR", &cache)]);
        assert_eq!(c.llama_server, in_cache);
        assert_eq!(c.model, model_cache);
        assert_eq!(c.model_name(), "qwen2.5-coder-1.5b-instruct-q4_k_m");
        assert_eq!(c.ctx_size, DEFAULT_CTX);
        assert_eq!(c.parallel, 2);

        // An explicit path that does not exist is an error, not a silent fallback.
        let missing = tmp.path().join("nope.gguf");
        let err = LocalServerConfig::resolve(
            env(&[("RLM_CACHE_DIR", &cache), ("RLM_LOCAL_MODEL", &missing)]),
            &exe,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("RLM_LOCAL_MODEL=") && err.contains("(no such file)"),
            "{err}"
        );
    }

    #[test]
    fn cache_dir_falls_back_to_xdg_then_home() {
        let x = Path::new("/x");
        let h = Path::new("/h");
        assert_eq!(
            cache_dir(&env(&[("XDG_CACHE_HOME", x), ("HOME", h)])).unwrap(),
            x.join("rlm-lsp")
        );
        assert_eq!(
            cache_dir(&env(&[("HOME", h)])).unwrap(),
            h.join(".cache/rlm-lsp")
        );
        assert!(matches!(
            cache_dir(&env(&[])),
            Err(LocalModelError::NoCacheDir)
        ));
    }

    #[test]
    fn tuning_variables_are_validated() {
        let tmp = tempfile::tempdir().unwrap();
        let server = tmp.path().join("llama-server");
        let model = tmp.path().join(MODEL_FILE);
        touch_executable(&server);
        touch_executable(&model);
        let base = [
            ("RLM_LLAMA_SERVER", server.as_path()),
            ("RLM_LOCAL_MODEL", model.as_path()),
            ("RLM_CACHE_DIR", tmp.path()),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut vars: Vec<(&str, &Path)> = base.to_vec();
            vars.push((extra.0, Path::new(extra.1)));
            LocalServerConfig::resolve(env(&vars), Path::new("/bin/rlm-lsp"))
        };
        let c = with(("RLM_LOCAL_THREADS", "3")).unwrap();
        assert_eq!(c.threads, 3);
        let c = with(("RLM_LOCAL_CTX", "8192")).unwrap();
        assert_eq!(c.ctx_size, 8192);
        let err = with(("RLM_LOCAL_THREADS", "many")).unwrap_err().to_string();
        assert!(
            err.starts_with("RLM_LOCAL_THREADS=\"many\" is invalid"),
            "{err}"
        );
        let err = with(("RLM_LOCAL_CTX", "10")).unwrap_err().to_string();
        assert!(err.contains("between 1024 and"), "{err}");
    }

    #[test]
    fn instance_dir_is_per_model_and_stable_across_links() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join(MODEL_FILE);
        std::fs::write(&model, b"gguf").unwrap();
        let link = tmp.path().join("link.gguf");
        std::os::unix::fs::symlink(&model, &link).unwrap();
        let config = |model: PathBuf| LocalServerConfig {
            llama_server: PathBuf::from("/s"),
            model,
            keeper_exe: PathBuf::from("/e"),
            state_dir: PathBuf::from("/state"),
            ctx_size: DEFAULT_CTX,
            parallel: 2,
            threads: 2,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            linger: Duration::ZERO,
        };
        let a = config(model.clone()).instance_dir();
        assert!(a.starts_with("/state"));
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("qwen2.5-coder-1.5b-instruct-q4_k_m-")
        );
        // Same file through a symlink under another name: same server, same model name.
        assert_eq!(config(link.clone()).instance_dir(), a);
        assert_eq!(
            config(link).model_name(),
            "qwen2.5-coder-1.5b-instruct-q4_k_m"
        );
        let other = tmp.path().join("other.gguf");
        std::fs::write(&other, b"gguf").unwrap();
        assert_ne!(config(other).instance_dir(), a);
    }
}
