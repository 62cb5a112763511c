//! Shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `fixtures/haystack` (git-ignored), generated on first use: 420 files, 431K tokens, one magic
/// number.
pub fn haystack() -> PathBuf {
    let dir = repo().join("fixtures/haystack");
    if !dir.join(".complete").exists() {
        let out = Command::new("python3")
            .arg(repo().join("fixtures/gen_haystack.py"))
            .arg(&dir)
            .output()
            .expect("python3 runs fixtures/gen_haystack.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.join(".complete"), "").unwrap();
    }
    dir
}
