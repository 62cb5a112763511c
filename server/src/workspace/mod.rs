//! The workspace as RLM context: walking the roots and holding an immutable snapshot of their text.

mod deps;
mod walk;

pub use deps::{CargoDeps, cargo_dependency_roots};
pub use walk::{RootSpec, WalkOptions, is_walked, walk, walk_roots};

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One indexed file and its text. The path is `/`-separated and relative to its root; with
/// several roots it starts with the root's name (`tokio-1.40.0/src/lib.rs`), so every path says
/// which root it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    /// Shared: a new snapshot that changes one file shares every other file's text.
    pub text: Arc<String>,
}

/// An immutable view of the workspace; runs hold it for their whole life.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The first root (the only one in a single-root workspace).
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<SourceFile>,
    pub stats: IndexStats,
}

impl Snapshot {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.text.len() as u64).sum()
    }

    pub fn get(&self, path: &str) -> Option<&SourceFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// A new snapshot in which `path` holds `text` (an editor's unsaved buffer, or a new file).
    /// Every other file's text is shared, and runs holding this snapshot keep seeing it unchanged.
    pub fn with_text(&self, path: &str, text: String) -> Snapshot {
        let mut next = self.clone();
        let file = SourceFile {
            path: path.to_string(),
            text: Arc::new(text),
        };
        match next.files.binary_search_by(|f| f.path.as_str().cmp(path)) {
            Ok(i) => next.files[i] = file,
            Err(i) => next.files.insert(i, file),
        }
        next.recount();
        next
    }

    /// A new snapshot with `path` read again from disk, or left out when it is gone, binary or
    /// over the size cap (the reason is recorded in the statistics).
    pub fn with_file_from_disk(&self, path: &str, opts: &WalkOptions) -> Snapshot {
        self.with_files_from_disk(&[path], opts)
    }

    /// `with_file_from_disk` for many files at once, copying the file list once (a checkout
    /// that touches thousands of files must not copy it thousands of times).
    pub fn with_files_from_disk(&self, paths: &[&str], opts: &WalkOptions) -> Snapshot {
        let mut next = self.clone();
        for &path in paths {
            next.stats.skipped.retain(|s| s.path != path);
            next.stats.lossy_utf8.retain(|p| p != path);
            let disk = self.disk_path(path);
            let found = walk::Found {
                path: path.to_string(),
                size: std::fs::metadata(&disk).map_or(0, |m| m.len()),
                disk: disk.clone(),
            };
            let pos = next.files.binary_search_by(|f| f.path.as_str().cmp(path));
            match walk::read_one(found, opts) {
                Ok((file, lossy)) => {
                    if lossy {
                        next.stats.lossy_utf8.push(path.to_string());
                    }
                    match pos {
                        Ok(i) => next.files[i] = file,
                        Err(i) => next.files.insert(i, file),
                    }
                }
                Err(skipped) => {
                    if let Ok(i) = pos {
                        next.files.remove(i);
                    }
                    // A file that is simply gone is no longer part of the workspace, not a skip.
                    let gone =
                        matches!(&skipped.reason, SkipReason::Unreadable { .. }) && !disk.exists();
                    if !gone {
                        next.stats.skipped.push(skipped);
                    }
                }
            }
        }
        next.recount();
        next
    }

    fn recount(&mut self) {
        self.stats.files_indexed = self.files.len();
        self.stats.bytes_indexed = self.total_bytes();
        for r in &mut self.stats.roots {
            let (files, bytes) = self
                .files
                .iter()
                .filter(|f| f.path.starts_with(r.prefix.as_str()))
                .fold((0, 0u64), |(n, b), f| (n + 1, b + f.text.len() as u64));
            r.files = files;
            r.bytes = bytes;
        }
    }

    /// The root a snapshot path belongs to, and the path inside that root.
    pub fn root_of<'a>(&self, path: &'a str) -> Option<(&RootStats, &'a str)> {
        if self.stats.roots.len() <= 1 {
            return self.stats.roots.first().map(|r| (r, path));
        }
        self.stats
            .roots
            .iter()
            .find_map(|r| path.strip_prefix(r.prefix.as_str()).map(|rel| (r, rel)))
    }

    /// Where a snapshot path lives on disk.
    pub fn disk_path(&self, path: &str) -> PathBuf {
        match self.root_of(path) {
            Some((r, rel)) => r.path.join(rel),
            None => self.root.join(path),
        }
    }
}

/// One root of the workspace as walked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RootStats {
    /// Its name in paths: the directory's name, made unique among the roots.
    pub name: String,
    pub path: PathBuf,
    /// Extra roots (dependency sources, site-packages) are for reading only.
    pub read_only: bool,
    /// What the paths of its files start with: empty for a single root, else `name/`.
    pub prefix: String,
    pub files: usize,
    pub bytes: u64,
}

impl RootStats {
    pub(crate) fn new(path: &Path, name: String, read_only: bool) -> Self {
        RootStats {
            name,
            path: path.to_path_buf(),
            read_only,
            prefix: String::new(),
            files: 0,
            bytes: 0,
        }
    }
}

/// What the walk saw: what it kept, what it skipped and why.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IndexStats {
    pub roots: Vec<RootStats>,
    pub files_indexed: usize,
    pub bytes_indexed: u64,
    /// Files whose bytes were not valid UTF-8; they are indexed with U+FFFD replacements.
    pub lossy_utf8: Vec<String>,
    pub skipped: Vec<SkippedFile>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SkippedFile {
    pub path: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// Larger than the per-file cap.
    TooLarge { bytes: u64, cap: u64 },
    /// Looks binary (a NUL byte in the first 8 KiB).
    Binary,
    /// Indexing it would pass the total-size cap.
    TotalCapReached { cap: u64 },
    /// Could not be read (permissions, a directory that cannot be listed, ...).
    Unreadable { error: String },
    /// Its path is not valid UTF-8: it could not be named, nor an edit written back to it.
    NonUtf8Name,
}

impl SkipReason {
    /// The reason's name, as in the JSON statistics (`too_large`, `binary`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::TooLarge { .. } => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::TotalCapReached { .. } => "total_cap_reached",
            SkipReason::Unreadable { .. } => "unreadable",
            SkipReason::NonUtf8Name => "non_utf8_name",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::TooLarge { bytes, cap } => {
                write!(f, "too large ({bytes} bytes > cap of {cap} bytes)")
            }
            SkipReason::Binary => write!(f, "binary"),
            SkipReason::TotalCapReached { cap } => {
                write!(f, "total size cap of {cap} bytes reached")
            }
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
            SkipReason::NonUtf8Name => write!(f, "file name is not valid UTF-8"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace {0} does not exist")]
    NotFound(PathBuf),
    #[error("workspace {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read workspace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
