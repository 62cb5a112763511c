//! Resource limits of the worker: memory (address space), CPU time, file size, no core dumps.
//!
//! No `RLIMIT_NPROC`: it counts every process of the user (an editor, a shell, a build), so a low
//! value breaks the user's session, a high one stops nothing, and it is not enforced for root.
//! New processes are refused by seccomp instead (`seccomp/`), which also holds for root.

use super::{SandboxConfig, SandboxError, human_bytes};
use std::io;

/// Sets the limits (soft and hard, so model code cannot raise them again; seccomp also forbids
/// `setrlimit` afterwards, which root could otherwise use). Returns a description.
pub(super) fn apply(cfg: &SandboxConfig, mapped_bytes: u64) -> Result<String, SandboxError> {
    let memory = cfg.memory_bytes.saturating_add(mapped_bytes);
    // RLIMIT_CPU: SIGXCPU at the soft limit (fatal: the worker does not handle it), SIGKILL at the
    // hard one.
    set(libc::RLIMIT_AS, memory, memory, "the memory limit")?;
    set(
        libc::RLIMIT_CPU,
        cfg.cpu_seconds,
        cfg.cpu_seconds.saturating_add(2),
        "the CPU-time limit",
    )?;
    set(
        libc::RLIMIT_FSIZE,
        cfg.file_size_bytes,
        cfg.file_size_bytes,
        "the file-size limit",
    )?;
    set(libc::RLIMIT_CORE, 0, 0, "disabling core dumps")?;
    // Past RLIMIT_FSIZE a write fails with EFBIG (Python: OSError "File too large") instead of
    // killing the worker with SIGXFSZ. The embedded Python does not install its signal handlers.
    // SAFETY: SIG_IGN is a valid disposition for SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    Ok(format!(
        "memory {}, CPU {} s, files up to {}",
        human_bytes(memory),
        cfg.cpu_seconds,
        human_bytes(cfg.file_size_bytes)
    ))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// Sets a limit, never above the current hard limit (only root could raise it).
fn set(resource: Resource, soft: u64, hard: u64, what: &'static str) -> Result<(), SandboxError> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut cur) } != 0 {
        return Err(SandboxError::Step {
            step: what,
            source: io::Error::last_os_error(),
        });
    }
    let hard = (hard as libc::rlim_t).min(cur.rlim_max);
    let new = libc::rlimit {
        rlim_cur: (soft as libc::rlim_t).min(hard),
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit.
    if unsafe { libc::setrlimit(resource, &new) } != 0 {
        return Err(SandboxError::Step {
            step: what,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
