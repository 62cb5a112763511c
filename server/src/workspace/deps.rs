//! Finding the sources of a project's dependencies, to add them as read-only extra roots:
//! the crates `Cargo.lock` names, as `cargo fetch` unpacked them under `$CARGO_HOME/registry/src`.

use std::path::{Path, PathBuf};

/// The dependency source directories found for one workspace, and the crates not on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CargoDeps {
    pub roots: Vec<PathBuf>,
    /// `name@version` of locked registry crates whose sources are not unpacked (run `cargo fetch`).
    pub missing: Vec<String>,
}

/// Reads `<workspace>/Cargo.lock` and maps each crates.io package to its unpacked sources.
/// Returns `None` when there is no lock file.
pub fn cargo_dependency_roots(workspace: &Path) -> Option<CargoDeps> {
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).ok()?;
    let registry_dirs = registry_src_dirs();
    let mut deps = CargoDeps::default();
    for (name, version) in registry_packages(&lock) {
        let dir_name = format!("{name}-{version}");
        match registry_dirs
            .iter()
            .map(|d| d.join(&dir_name))
            .find(|p| p.is_dir())
        {
            Some(p) => deps.roots.push(p),
            None => deps.missing.push(format!("{name}@{version}")),
        }
    }
    Some(deps)
}

/// `[[package]]` entries with a registry source, as (name, version).
fn registry_packages(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(name), Some(version), Some(source)) =
            (field("name"), field("version"), field("source"))
            && source.starts_with("registry+")
        {
            out.push((name, version));
        }
    }
    out
}

/// `$CARGO_HOME/registry/src/<index>/` for every registry index cargo has unpacked into.
fn registry_src_dirs() -> Vec<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = cargo_home.map(|h| h.join("registry/src")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(src)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registry_packages_from_a_lock_file() {
        let lock = r#"
version = 4

[[package]]
name = "anyhow"
version = "1.0.99"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "abc"

[[package]]
name = "rlm-lsp"
version = "0.1.0"
dependencies = ["anyhow"]

[[package]]
name = "local-git"
version = "0.2.0"
source = "git+https://example.com/x#abc"
"#;
        assert_eq!(
            registry_packages(lock),
            vec![("anyhow".to_string(), "1.0.99".to_string())]
        );
    }

    #[test]
    fn this_projects_own_dependencies_are_found() {
        // The build fetched them, so every registry crate in our lock file is unpacked.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let deps = cargo_dependency_roots(repo).expect("Cargo.lock at the repository root");
        assert!(deps.roots.len() > 50, "{} roots", deps.roots.len());
        assert!(
            deps.roots.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("serde_json-"))),
            "serde_json's sources are among the roots"
        );
    }
}
