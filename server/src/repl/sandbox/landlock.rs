//! Landlock: the filesystem (and TCP, signals, abstract sockets) as model code sees it.
//!
//! The ruleset targets ABI 7 and is applied best-effort: a kernel with an older ABI enforces what
//! it knows. What older ABIs miss is covered elsewhere: `truncate(2)` by seccomp (ABI < 3), TCP by
//! seccomp's socket rule (ABI < 4), signals by seccomp's `kill` rule (ABI < 6). Without Landlock at
//! all (ABI 0) the worker refuses to run model code.

use super::SandboxError;
use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::io;
use std::path::{Path, PathBuf};

/// The ABI the rules are written for; newer kernels are not asked for more.
const TARGET: ABI = ABI::V7;

/// The Landlock ABI version of the running kernel; 0 when Landlock is missing or disabled.
pub(super) fn abi_version() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer and size 0, this call only returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 { 0 } else { v as i32 }
}

/// Why Landlock is unavailable, in words the user can act on.
pub(super) fn unavailable_reason(pretended: bool) -> String {
    if pretended {
        return "Landlock is not available (simulated for a test)".into();
    }
    let err = {
        // SAFETY: as in abi_version.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                1 as libc::c_uint,
            )
        };
        if v < 0 {
            io::Error::last_os_error().raw_os_error()
        } else {
            None
        }
    };
    match err {
        Some(libc::EOPNOTSUPP) => "Landlock is built into this kernel but not enabled; add \
             `landlock` to the `lsm=` kernel boot parameter (or CONFIG_LSM)"
            .into(),
        _ => "this kernel has no Landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK is \
              needed)"
            .into(),
    }
}

pub(super) struct Rules<'a> {
    /// Read-only directories (and files below them).
    pub read_roots: &'a [PathBuf],
    /// Read-only single files.
    pub read_files: &'a [PathBuf],
    /// Read-write single files (`/dev/null`).
    pub write_files: &'a [PathBuf],
    /// The only writable directory.
    pub workdir: &'a Path,
}

/// Restricts the calling thread (and the threads it starts) for good. Returns a description of
/// what is enforced.
pub(super) fn restrict(rules: &Rules<'_>) -> Result<String, SandboxError> {
    let abi = abi_version();
    let fail = |e: ::landlock::RulesetError| SandboxError::Step {
        step: "applying the Landlock ruleset",
        source: io::Error::other(e),
    };
    let read = AccessFs::from_read(TARGET);
    let file = AccessFs::from_file(TARGET);
    // Everything in the working directory, except creating device files (as root, a block device
    // node would give raw access to a disk).
    let workdir = AccessFs::from_all(TARGET) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let beneath = |path: &Path, access: BitFlags<AccessFs>| {
        PathFd::new(path)
            .map(|fd| PathBeneath::new(fd, access))
            .map_err(|e| SandboxError::Step {
                step: "opening a path for the Landlock ruleset",
                source: io::Error::other(format!("{}: {e}", path.display())),
            })
    };

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET))
        .map_err(fail)?
        .handle_access(AccessNet::from_all(TARGET))
        .map_err(fail)?
        .scope(Scope::from_all(TARGET))
        .map_err(fail)?
        .create()
        .map_err(fail)?;
    for dir in rules.read_roots {
        ruleset = ruleset.add_rule(beneath(dir, read)?).map_err(fail)?;
    }
    for f in rules.read_files {
        ruleset = ruleset.add_rule(beneath(f, read & file)?).map_err(fail)?;
    }
    for f in rules.write_files {
        let rw = (AccessFs::ReadFile | AccessFs::WriteFile) & file;
        ruleset = ruleset.add_rule(beneath(f, rw)?).map_err(fail)?;
    }
    ruleset = ruleset
        .add_rule(beneath(rules.workdir, workdir)?)
        .map_err(fail)?;
    let status = ruleset.restrict_self().map_err(fail)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(SandboxError::Unavailable(
            "the kernel did not enforce the Landlock ruleset".into(),
        ));
    }
    let mut parts = vec!["filesystem"];
    if abi >= 4 {
        parts.push("tcp");
    }
    if abi >= 6 {
        parts.push("signals");
        parts.push("abstract sockets");
    }
    Ok(format!("landlock ABI {abi} ({})", parts.join(", ")))
}
