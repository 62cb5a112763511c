//! The roots of a workspace and how they are walked.

use crate::workspace::{self, RootSpec, Snapshot, WalkOptions};
use std::path::PathBuf;

/// The roots of a workspace, as `rlm-lsp ask` takes them: the workspace, other writable roots,
/// read-only extra roots, and optionally the sources of every crate the roots' `Cargo.lock`
/// files name.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The first root (`--workspace`).
    pub workspace: PathBuf,
    /// More writable roots (`--root`).
    pub roots: Vec<PathBuf>,
    /// Read-only roots (`--extra-root`): a dependency's sources, a `site-packages`.
    pub extra_roots: Vec<PathBuf>,
    /// Add the crates each writable root's `Cargo.lock` names (`--cargo-deps`).
    pub cargo_deps: bool,
    pub walk: WalkOptions,
}

impl PartialEq for Roots {
    fn eq(&self, other: &Roots) -> bool {
        let (a, b) = (&self.walk, &other.walk);
        self.workspace == other.workspace
            && self.roots == other.roots
            && self.extra_roots == other.extra_roots
            && self.cargo_deps == other.cargo_deps
            && (
                a.max_file_bytes,
                a.max_total_bytes,
                a.include_hidden,
                a.respect_gitignore,
            ) == (
                b.max_file_bytes,
                b.max_total_bytes,
                b.include_hidden,
                b.respect_gitignore,
            )
    }
}

impl Roots {
    /// One root with the default walk options.
    pub fn new(workspace: impl Into<PathBuf>) -> Roots {
        Roots {
            workspace: workspace.into(),
            roots: Vec::new(),
            extra_roots: Vec::new(),
            cargo_deps: false,
            walk: WalkOptions::default(),
        }
    }

    /// Every root to walk: the workspace, the other roots, the crates of `--cargo-deps`, then
    /// the extra roots (read-only).
    pub fn specs(&self) -> anyhow::Result<Vec<RootSpec>> {
        let mut specs: Vec<RootSpec> = std::iter::once(&self.workspace)
            .chain(&self.roots)
            .map(|p| RootSpec {
                path: p.clone(),
                read_only: false,
            })
            .collect();
        if self.cargo_deps {
            for spec in specs.clone() {
                let Some(deps) = workspace::cargo_dependency_roots(&spec.path) else {
                    anyhow::bail!(
                        "--cargo-deps: {} has no Cargo.lock (run `cargo generate-lockfile` there)",
                        spec.path.display()
                    );
                };
                if !deps.missing.is_empty() {
                    // Often platform-specific crates (windows-*, wasm-*) that cargo never unpacks here.
                    let shown: Vec<_> = deps.missing.iter().take(5).map(String::as_str).collect();
                    let more = deps.missing.len() - shown.len();
                    tracing::info!(
                        "{} locked crates have no sources on disk (`cargo fetch` in {} unpacks those this platform needs): {}{}",
                        deps.missing.len(),
                        spec.path.display(),
                        shown.join(", "),
                        if more > 0 {
                            format!(", and {more} more")
                        } else {
                            String::new()
                        }
                    );
                }
                specs.extend(deps.roots.into_iter().map(|path| RootSpec {
                    path,
                    read_only: true,
                }));
            }
        }
        specs.extend(self.extra_roots.iter().map(|p| RootSpec {
            path: p.clone(),
            read_only: true,
        }));
        Ok(specs)
    }

    /// Walks every root (see [`workspace::walk_roots`]).
    pub fn walk(&self) -> anyhow::Result<Snapshot> {
        Ok(workspace::walk_roots(&self.specs()?, &self.walk)?)
    }
}
