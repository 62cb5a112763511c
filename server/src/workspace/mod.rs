//! The workspace as RLM context: walking the roots and holding an immutable snapshot of their text.

mod walk;

pub use walk::{WalkOptions, walk};

use serde::Serialize;
use std::path::PathBuf;

/// One indexed file: its workspace-relative path (always `/`-separated) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// An immutable view of the workspace; runs hold it for their whole life.
#[derive(Debug, Clone)]
pub struct Snapshot {
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
}

/// What the walk saw: what it kept, what it skipped and why.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IndexStats {
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
    /// Could not be read (permissions, vanished, ...).
    Unreadable { error: String },
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
