//! Where the llama-server binary, the model and the state directory are (see the lookup order in
//! the parent module's doc), and the tuning variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::{
    DEFAULT_CTX, DEFAULT_PARALLEL, DEFAULT_STARTUP_TIMEOUT, LLAMA_CPP_DIR, LocalModelError,
    LocalServerConfig, MAX_DEFAULT_THREADS, MODEL_FILE,
};

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

/// Warns, once per process whatever fails first, that the cache directory cannot be written:
/// runs go on without what it would hold (`without`).
pub(crate) fn warn_cache_unwritable(path: &Path, error: &std::io::Error, without: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "cannot write to the cache directory ({}: {error}); runs go on without it: {without}. Set RLM_CACHE_DIR to a writable directory",
            path.display()
        );
    });
}

/// The user's cache directory for rlm-lsp: `$RLM_CACHE_DIR`, else `$XDG_CACHE_HOME/rlm-lsp`,
/// else `~/.cache/rlm-lsp`.
pub fn user_cache_dir() -> Result<PathBuf, LocalModelError> {
    cache_dir(&|k| std::env::var_os(k))
}

pub(super) fn cache_dir(
    var: &impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, LocalModelError> {
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
