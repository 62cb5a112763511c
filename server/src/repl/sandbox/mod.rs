//! The worker's sandbox: what model-written code may touch.
//!
//! The worker confines itself after Python and the helpers are loaded and before the first line of
//! model code runs ([`harden`], called by the worker). On Linux:
//!
//! - **rlimits** (`rlimits.rs`): address space, CPU time, file size, no core dumps;
//! - **Landlock** (`landlock.rs`): read-only access to the Python installation, the shared
//!   libraries and [`SandboxConfig::read_paths`]; read-write access to the worker's private
//!   working directory only; no TCP bind or connect (ABI >= 4); no signals to, nor abstract Unix
//!   sockets of, processes outside the sandbox (ABI >= 6);
//! - **seccomp** (`seccomp/`): no new sockets (only `AF_UNIX` stream `socketpair`s), no sending
//!   to an address (`sendto` with one, `sendmsg`), no `connect`, no new processes (`fork`, `vfork`,
//!   `clone` without `CLONE_THREAD`, `execve`), no `ptrace` and kin, no mounts, namespaces, `bpf`,
//!   `io_uring`, kernel keyrings, modules, no raising of rlimits, no scheduling changes
//!   (`setpriority`, `sched_set*`, `ioprio_set`) and no leaving the process group;
//! - an **audit hook** (`hook.py`) that raises the same denials one step earlier with a message the
//!   model can act on ("writing outside the sandbox is not allowed"). It explains; the kernel
//!   enforces.
//!
//! Where Landlock or seccomp is missing (old kernels, other systems) the worker refuses to run model
//! code, unless the user opted out explicitly ([`UNSAFE_NO_SANDBOX_ENV`]). See `docs/security.md`.

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod rlimits;
#[cfg(target_os = "linux")]
mod seccomp;

use pyo3::prelude::*;
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Setting this environment variable to `1` (or `true`, `yes`) in the server's environment runs
/// model code without the sandbox. Logged, and shown in the sandbox status.
pub const UNSAFE_NO_SANDBOX_ENV: &str = "RLM_UNSAFE_NO_SANDBOX";

const HOOK: &str = include_str!("hook.py");

/// What the worker's sandbox allows; part of [`ReplConfig`](super::ReplConfig).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// `false` only by an explicit opt-out: model code then runs with the user's full rights.
    /// The default is `true` unless [`UNSAFE_NO_SANDBOX_ENV`] is set.
    pub enabled: bool,
    /// Directories (or files) model code may read besides the Python installation, e.g. the
    /// workspace roots. None by default: the workspace reaches the worker as the context blob,
    /// which the worker maps before it restricts itself, so model code never needs the files
    /// themselves (and cannot read what the walker skipped, such as a gitignored `.env`).
    pub read_paths: Vec<PathBuf>,
    /// Address-space limit (`RLIMIT_AS`) in bytes; the size of the context blob is added to it.
    pub memory_bytes: u64,
    /// CPU-time limit (`RLIMIT_CPU`) for the worker's whole life, in seconds. The per-cell wall
    /// clock timeout is separate (`ReplConfig::cell_timeout`).
    pub cpu_seconds: u64,
    /// Largest file model code may write (`RLIMIT_FSIZE`), in bytes.
    pub file_size_bytes: u64,
    /// For tests of the refusal path: behave as if the kernel had no Landlock.
    #[doc(hidden)]
    pub pretend_unsupported: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: !opted_out_by_env(),
            read_paths: Vec::new(),
            memory_bytes: 4 << 30,
            cpu_seconds: 20 * 60,
            file_size_bytes: 1 << 30,
            pretend_unsupported: false,
        }
    }
}

/// True when [`UNSAFE_NO_SANDBOX_ENV`] asks to run without the sandbox.
pub fn opted_out_by_env() -> bool {
    std::env::var(UNSAFE_NO_SANDBOX_ENV).is_ok_and(|v| is_yes(&v))
}

fn is_yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The status string of a worker run without the sandbox.
pub fn status_off() -> String {
    format!(
        "off: model code runs with your full rights (opted out with {UNSAFE_NO_SANDBOX_ENV}=1 or \
         --unsafe-no-sandbox)"
    )
}

/// Why the worker could not confine itself. The worker then refuses to run model code.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The system lacks a mechanism the sandbox needs (Landlock, seccomp, Linux itself).
    #[error("{0}")]
    Unavailable(String),
    /// A step failed on a system that has the mechanisms.
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        source: std::io::Error,
    },
    #[error("installing the sandbox's audit hook: {0}")]
    Hook(String),
}

impl SandboxError {
    fn step(step: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
        move |source| SandboxError::Step { step, source }
    }
}

/// Confines the calling process (the worker) for good: rlimits, Landlock, seccomp, and the audit
/// hook that explains denials. Returns the status line shown to the user.
///
/// Must run on the worker's only thread (Landlock restricts the calling thread and the threads it
/// starts later), after Python and the prelude are loaded and the context blob is mapped
/// (`mapped_bytes`, added to the memory limit), and before any model code.
pub fn harden(
    py: Python<'_>,
    cfg: &SandboxConfig,
    workdir: &Path,
    mapped_bytes: u64,
) -> Result<String, SandboxError> {
    if !cfg.enabled {
        return Ok(status_off());
    }
    imp::harden(py, cfg, workdir, mapped_bytes)
}

/// Adds what the sandbox knows to an error the model will read: a bare `MemoryError` becomes
/// "memory limit reached".
pub fn explain_error(error: String, cfg: &SandboxConfig) -> String {
    if !cfg.enabled {
        return error;
    }
    let trimmed = error.trim_end();
    let last = trimmed.lines().last().unwrap_or("");
    if last == "MemoryError" || last.starts_with("MemoryError: ") {
        let detail = last.strip_prefix("MemoryError").unwrap_or("");
        let start = trimmed.len() - last.len();
        return format!(
            "{}MemoryError: memory limit reached (the REPL may use {} of memory){}; work on \
             smaller pieces, e.g. one file at a time, and drop big variables with del\n",
            &trimmed[..start],
            human_bytes(cfg.memory_bytes),
            if detail.trim_start_matches(": ").is_empty() {
                String::new()
            } else {
                format!(" [{}]", detail.trim_start_matches(": "))
            },
        );
    }
    error
}

/// Adds what the sandbox knows to the description of a worker that died: the CPU limit, an
/// allocation that failed at the memory limit.
pub fn explain_death(
    signal: Option<i32>,
    stderr_tail: &str,
    cfg: &SandboxConfig,
) -> Option<String> {
    if !cfg.enabled {
        return None;
    }
    #[cfg(unix)]
    if signal == Some(libc::SIGXCPU) {
        return Some(format!(
            "CPU time limit reached (the REPL may use {} s of CPU in all)",
            cfg.cpu_seconds
        ));
    }
    #[cfg(unix)]
    if signal == Some(libc::SIGSYS) {
        return Some("a system call the sandbox forbids was made".into());
    }
    let _ = signal;
    // Rust's allocation-failure abort, or CPython's fatal error, in the worker's own stderr.
    if stderr_tail.contains("memory allocation of")
        || (stderr_tail.contains("Fatal Python error") && stderr_tail.contains("MemoryError"))
    {
        return Some(format!(
            "memory limit reached (the REPL may use {} of memory)",
            human_bytes(cfg.memory_bytes)
        ));
    }
    None
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

/// Paths the sandbox needs to know about the running Python: its `sys.path` (the standard library,
/// `lib-dynload`, site-packages) and its prefixes' `lib` directories (a Python outside `/usr`).
fn python_paths(py: Python<'_>) -> PyResult<Vec<PathBuf>> {
    let code = CString::new(
        "import sys\n\
         out = [p for p in sys.path if p]\n\
         out += [p + '/lib' for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix} if p not in ('/', '/usr')]\n",
    )
    .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let globals = pyo3::types::PyDict::new(py);
    py.run(&code, Some(&globals), None)?;
    let out: Vec<String> = globals
        .get_item("out")?
        .map(|v| v.extract())
        .transpose()?
        .unwrap_or_default();
    Ok(out.into_iter().map(PathBuf::from).collect())
}

/// Installs `hook.py`'s audit hook, which raises clear `PermissionError`s for what the kernel is
/// about to deny.
fn install_hook(
    py: Python<'_>,
    workdir: &Path,
    read_roots: &[PathBuf],
    read_files: &[PathBuf],
    write_files: &[PathBuf],
) -> Result<(), SandboxError> {
    let err = |e: PyErr| SandboxError::Hook(e.to_string());
    let code = CString::new(HOOK).map_err(|e| SandboxError::Hook(e.to_string()))?;
    let module = PyModule::from_code(py, &code, c"<rlm sandbox>", c"_rlm_sandbox").map_err(err)?;
    let strs = |v: &[PathBuf]| -> Vec<String> {
        v.iter().map(|p| p.to_string_lossy().into_owned()).collect()
    };
    module
        .getattr("install")
        .and_then(|f| {
            f.call1((
                workdir.to_string_lossy().into_owned(),
                strs(read_roots),
                strs(read_files),
                strs(write_files),
            ))
        })
        .map_err(err)?;
    Ok(())
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::io;

    /// System directories the dynamic loader and Python's C extensions read from at run time.
    const SYSTEM_READ_DIRS: &[&str] = &[
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib32",
        "/lib",
        "/lib64",
        "/lib32",
        "/usr/local/lib",
        "/usr/share/zoneinfo",
        // os.cpu_count() and friends.
        "/sys/devices/system/cpu",
    ];
    /// Single files model code may read: the loader's cache (ctypes.CDLL), the time zone, sources
    /// of randomness.
    const SYSTEM_READ_FILES: &[&str] = &[
        "/etc/ld.so.cache",
        "/etc/localtime",
        "/dev/urandom",
        "/dev/random",
        "/dev/zero",
    ];
    /// Single files model code may write.
    const SYSTEM_WRITE_FILES: &[&str] = &["/dev/null"];

    pub(super) fn harden(
        py: Python<'_>,
        cfg: &SandboxConfig,
        workdir: &Path,
        mapped_bytes: u64,
    ) -> Result<String, SandboxError> {
        let abi = if cfg.pretend_unsupported {
            0
        } else {
            landlock::abi_version()
        };
        if abi < 1 {
            return Err(SandboxError::Unavailable(landlock::unavailable_reason(
                cfg.pretend_unsupported,
            )));
        }
        if !seccomp::available() {
            return Err(SandboxError::Unavailable(
                "this kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)".into(),
            ));
        }
        let threads = thread_count();
        if threads != 1 {
            return Err(SandboxError::Step {
                step: "the worker must be single-threaded when it confines itself",
                source: io::Error::other(format!("{threads} threads are running")),
            });
        }

        let workdir = workdir
            .canonicalize()
            .map_err(SandboxError::step("resolving the working directory"))?;
        let mut read_roots: Vec<PathBuf> = Vec::new();
        let mut add_root = |p: PathBuf| {
            // A root of "/" would allow reading everything: never.
            if p.is_absolute() && p.parent().is_some() && p.exists() && !read_roots.contains(&p) {
                read_roots.push(p);
            }
        };
        for p in python_paths(py).map_err(|e| SandboxError::Hook(e.to_string()))? {
            add_root(p);
        }
        for p in mapped_library_dirs() {
            add_root(p);
        }
        for p in SYSTEM_READ_DIRS {
            add_root(PathBuf::from(p));
        }
        for p in &cfg.read_paths {
            add_root(p.clone());
        }
        let existing = |v: &[&str]| -> Vec<PathBuf> {
            v.iter().map(PathBuf::from).filter(|p| p.exists()).collect()
        };
        let read_files = existing(SYSTEM_READ_FILES);
        let write_files = existing(SYSTEM_WRITE_FILES);

        // The hook first: installing it imports nothing later steps forbid, and it must be in
        // place before model code.
        install_hook(py, &workdir, &read_roots, &read_files, &write_files)?;
        // rlimits before seccomp, which forbids raising or setting them afterwards.
        let limits = rlimits::apply(cfg, mapped_bytes)?;
        let fs = landlock::restrict(&landlock::Rules {
            read_roots: &read_roots,
            read_files: &read_files,
            write_files: &write_files,
            workdir: &workdir,
        })?;
        seccomp::install(abi)?;
        Ok(format!("on: {fs}; seccomp; {limits}"))
    }

    fn thread_count() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1)
    }

    /// Directories of the shared libraries already mapped (libpython, libc, libffi, ...): a
    /// Python in an unusual prefix keeps working, and C extensions can load their dependencies.
    fn mapped_library_dirs() -> Vec<PathBuf> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            let file = Path::new(path);
            let is_lib = file
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".so"));
            if let (true, Some(dir)) = (is_lib && path.starts_with('/'), file.parent())
                && !dirs.iter().any(|d| d == dir)
            {
                dirs.push(dir.to_path_buf());
            }
        }
        dirs
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn harden(
        _py: Python<'_>,
        _cfg: &SandboxConfig,
        _workdir: &Path,
        _mapped_bytes: u64,
    ) -> Result<String, SandboxError> {
        Err(SandboxError::Unavailable(format!(
            "the sandbox needs Linux (Landlock and seccomp); this is {}",
            std::env::consts::OS
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_memory_error_says_the_limit_was_reached() {
        let cfg = SandboxConfig {
            enabled: true,
            ..SandboxConfig::default()
        };
        let tb = "Traceback (most recent call last):\n  File \"<cell 1>\", line 1, in <module>\nMemoryError\n";
        let got = explain_error(tb.to_string(), &cfg);
        assert!(got.starts_with("Traceback"), "{got}");
        assert!(
            got.contains("MemoryError: memory limit reached (the REPL may use 4.0 GiB of memory)"),
            "{got}"
        );
        let other = "Traceback ...\nValueError: MemoryError\n".to_string();
        assert_eq!(explain_error(other.clone(), &cfg), other);
        let off = SandboxConfig {
            enabled: false,
            ..cfg
        };
        assert_eq!(explain_error(tb.to_string(), &off), tb);
    }

    #[test]
    fn deaths_by_sandbox_limits_are_named() {
        let cfg = SandboxConfig {
            enabled: true,
            ..SandboxConfig::default()
        };
        let cpu = explain_death(Some(libc::SIGXCPU), "", &cfg).unwrap();
        assert!(cpu.contains("CPU time limit reached"), "{cpu}");
        let mem = explain_death(
            Some(libc::SIGABRT),
            "memory allocation of 1048576 bytes failed",
            &cfg,
        )
        .unwrap();
        assert!(mem.contains("memory limit reached"), "{mem}");
        assert_eq!(explain_death(Some(libc::SIGSEGV), "", &cfg), None);
    }

    #[test]
    fn the_opt_out_is_explicit() {
        // Only the values a person would type to mean "yes".
        for (v, off) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            ("0", false),
            ("", false),
        ] {
            assert_eq!(is_yes(v), off, "{v:?}");
        }
        assert!(status_off().contains(UNSAFE_NO_SANDBOX_ENV));
    }
}
