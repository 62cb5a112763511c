//! Private temp directories that outlive no process for long: the context blob, a worker's
//! working directory, a refactor check's scratch copy. Each holds a lock file that its process
//! keeps locked for as long as the directory lives; a process killed with SIGKILL (or crashed)
//! leaves its directories behind, unlocked, and the next process to create one removes them. A
//! blob is as large as the workspace, so an editor crash must not leave one for good.
//!
//! The lock is an `flock` on `.rlm-lock`, which holds across PID namespaces (unlike a pid in the
//! name); it is created under another name and renamed once locked, so a sweeping process
//! never sees it unlocked while its directory is being made.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The prefixes of the directories made here, the ones a sweep looks at.
pub const PREFIXES: [&str; 3] = ["rlm-context-", "rlm-repl-", "rlm-check-"];

const LOCK: &str = ".rlm-lock";

/// A new directory `<temp dir>/<prefix><random>`, removed when dropped, and by a later process
/// if this one dies first.
#[derive(Debug)]
pub struct OwnedTempDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl OwnedTempDir {
    pub fn new(prefix: &str) -> io::Result<OwnedTempDir> {
        sweep_in_background();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let pending = dir.path().join(".rlm-lock.new");
        let lock = File::create(&pending)?;
        try_lock(&lock)?;
        std::fs::rename(&pending, dir.path().join(LOCK))?;
        Ok(OwnedTempDir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// An exclusive lock, or `WouldBlock` when another open file holds one.
fn try_lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor this `File` owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sweeps the temp directory once per process, on a thread of its own (the first directory is
/// often made on an async thread, and the temp directory may be large).
fn sweep_in_background() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("rlm-temp-sweep".into())
            .spawn(|| {
                let removed = sweep(&std::env::temp_dir());
                if !removed.is_empty() {
                    tracing::info!(
                        "removed {} temp directories left by ended rlm-lsp processes",
                        removed.len()
                    );
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the temp directory sweep: {e}");
        }
    });
}

/// Removes the directories under `parent` made by [`OwnedTempDir`] whose process is gone (their
/// lock file unlocked); returns them. Directories without a lock file are left alone.
pub fn sweep(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !PREFIXES.iter().any(|p| name.starts_with(p))
            || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(LOCK)) else {
            continue;
        };
        // Locked by us now: its owner is gone, and no one else can be using it.
        if try_lock(&lock).is_ok() && std::fs::remove_dir_all(&dir).is_ok() {
            removed.push(dir);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_whose_owner_is_gone_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let dir = parent.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("context.bin"), "text").unwrap();
            dir
        };
        // Left by a process that died: a lock file no one holds.
        let stale = make("rlm-context-dead");
        File::create(stale.join(LOCK)).unwrap();
        // Alive: its lock is held (here, by this test).
        let live = make("rlm-repl-live");
        let held = File::create(live.join(LOCK)).unwrap();
        try_lock(&held).unwrap();
        // Being made, or from an older version: no lock file.
        let unlocked = make("rlm-check-new");
        // Not ours.
        let other = make("other-dir");
        File::create(other.join(LOCK)).unwrap();

        assert_eq!(sweep(parent.path()), vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(live.exists() && unlocked.exists() && other.exists());
        drop(held);
        assert_eq!(sweep(parent.path()), vec![live]);
    }

    #[test]
    fn a_directory_is_locked_while_it_lives_and_removed_when_dropped() {
        let dir = OwnedTempDir::new("rlm-repl-").unwrap();
        let path = dir.path().to_path_buf();
        let lock = File::open(path.join(LOCK)).unwrap();
        assert!(try_lock(&lock).is_err(), "held by the directory's owner");
        drop(dir);
        assert!(!path.exists());
    }
}
