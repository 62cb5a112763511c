//! Walking a workspace root with ripgrep's walker (`ignore`): gitignore rules, hidden files,
//! per-file and total size caps, binary detection and lossy UTF-8 decoding.

use super::{IndexStats, RootStats, SkipReason, SkippedFile, Snapshot, SourceFile, WorkspaceError};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

/// A root to walk.
#[derive(Debug, Clone)]
pub struct RootSpec {
    pub path: PathBuf,
    /// Extra roots (dependency sources) are read-only: never the target of an edit.
    pub read_only: bool,
}

/// How much of the tree to take. The defaults keep a large monorepo in memory without surprises.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files larger than this are skipped (recorded with their size).
    pub max_file_bytes: u64,
    /// Once this many bytes are indexed, further files are skipped (recorded).
    pub max_total_bytes: u64,
    /// Include hidden files and directories (`.github/`, `.env.example`, ...).
    pub include_hidden: bool,
    /// Honour `.gitignore`, `.ignore` and git's global excludes.
    pub respect_gitignore: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_file_bytes: 4 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            include_hidden: false,
            respect_gitignore: true,
        }
    }
}

/// Bytes inspected for a NUL to call a file binary (git and ripgrep use the same idea).
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Reads every text file under `root` into an immutable snapshot, in path order.
pub fn walk(root: &Path, opts: &WalkOptions) -> Result<Snapshot, WorkspaceError> {
    walk_roots(
        &[RootSpec {
            path: root.to_path_buf(),
            read_only: false,
        }],
        opts,
    )
}

/// Reads several roots into one snapshot. With more than one root, every path starts with its
/// root's name (the directory name, made unique). The total-size cap is shared by all roots, in
/// the order given, so the user's own roots come before dependency sources.
pub fn walk_roots(specs: &[RootSpec], opts: &WalkOptions) -> Result<Snapshot, WorkspaceError> {
    let mut roots = Vec::with_capacity(specs.len());
    for spec in specs {
        let path = check_root(&spec.path)?;
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let mut name = base.clone();
        let mut n = 2;
        while roots.iter().any(|r: &RootStats| r.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        roots.push(RootStats::new(&path, name, spec.read_only));
    }
    if roots.len() > 1 {
        for r in &mut roots {
            r.prefix = format!("{}/", r.name);
        }
    }
    let mut files = Vec::new();
    let mut stats = IndexStats::default();
    // Bytes on disk of the files chosen so far, for the total cap.
    let mut total: u64 = 0;
    for root in &mut roots {
        let before = files.len();
        walk_one(root, opts, &mut files, &mut stats, &mut total);
        root.files = files.len() - before;
        root.bytes = files[before..].iter().map(|f| f.text.len() as u64).sum();
    }
    // Roots are each in order; one global byte order makes lookups by path binary searches.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    stats.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    stats.lossy_utf8.sort();
    stats.files_indexed = files.len();
    stats.bytes_indexed = roots.iter().map(|r| r.bytes).sum();
    stats.roots = roots;
    Ok(Snapshot {
        root: stats.roots[0].path.clone(),
        files,
        stats,
    })
}

fn check_root(root: &Path) -> Result<PathBuf, WorkspaceError> {
    let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WorkspaceError::NotFound(root.to_path_buf()),
        _ => WorkspaceError::Io {
            path: root.to_path_buf(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(WorkspaceError::NotADirectory(root.to_path_buf()));
    }
    root.canonicalize().map_err(|source| WorkspaceError::Io {
        path: root.to_path_buf(),
        source,
    })
}

/// A file the walk found, before it is read.
pub(super) struct Found {
    pub(super) path: String,
    pub(super) disk: PathBuf,
    pub(super) size: u64,
}

/// Walks one root in three steps: list the files on every core (ripgrep's parallel walker), apply
/// the caps in path order (so which files fit is deterministic), read the chosen ones on every core.
fn walk_one(
    root_stats: &RootStats,
    opts: &WalkOptions,
    files: &mut Vec<SourceFile>,
    stats: &mut IndexStats,
    total: &mut u64,
) {
    let root = root_stats.path.as_path();
    let prefix = root_stats.prefix.as_str();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(!opts.include_hidden)
        .git_ignore(opts.respect_gitignore)
        .git_global(opts.respect_gitignore)
        .git_exclude(opts.respect_gitignore)
        .ignore(opts.respect_gitignore)
        // A workspace that is not a git repository still has meaningful .gitignore files.
        .require_git(false)
        .follow_links(false)
        .build_parallel();
    let listed: Mutex<(Vec<Found>, Vec<SkippedFile>)> = Mutex::default();
    walker.run(|| {
        let listed = &listed;
        Box::new(move |entry| {
            let item = match entry {
                // A snapshot path is text: one that is not UTF-8 could not be mapped back to
                // the file (an edit would write another file), so the file is left out.
                Ok(e)
                    if e.file_type().is_some_and(|t| t.is_file())
                        && e.path()
                            .strip_prefix(root)
                            .unwrap_or(e.path())
                            .to_str()
                            .is_none() =>
                {
                    Err(SkippedFile {
                        path: rel_path(root, prefix, e.path()),
                        reason: SkipReason::NonUtf8Name,
                    })
                }
                // Symbolic links are not followed (a link may loop or leave the root), and
                // sockets, FIFOs and devices are not files: opening a FIFO would block.
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => Ok(Found {
                    path: rel_path(root, prefix, e.path()),
                    size: e.metadata().map(|m| m.len()).unwrap_or(0),
                    disk: e.into_path(),
                }),
                Ok(_) => return ignore::WalkState::Continue,
                Err(err) => {
                    let (path, error) = error_parts(&err);
                    let path = match path {
                        Some(path) => rel_path(root, prefix, path),
                        None => prefix.trim_end_matches('/').to_string(),
                    };
                    Err(SkippedFile {
                        // The root itself, in a single-root workspace.
                        path: if path.is_empty() { ".".into() } else { path },
                        reason: SkipReason::Unreadable { error },
                    })
                }
            };
            let mut l = listed.lock().unwrap_or_else(|e| e.into_inner());
            match item {
                Ok(f) => l.0.push(f),
                Err(s) => l.1.push(s),
            }
            ignore::WalkState::Continue
        })
    });
    let (mut found, unreadable) = listed.into_inner().unwrap_or_else(|e| e.into_inner());
    stats.skipped.extend(unreadable);
    found.sort_by(|a, b| a.path.cmp(&b.path));

    let mut chosen = Vec::with_capacity(found.len());
    for f in found {
        let reason = if f.size > opts.max_file_bytes {
            Some(SkipReason::TooLarge {
                bytes: f.size,
                cap: opts.max_file_bytes,
            })
        } else if *total + f.size > opts.max_total_bytes {
            Some(SkipReason::TotalCapReached {
                cap: opts.max_total_bytes,
            })
        } else {
            None
        };
        match reason {
            Some(reason) => stats.skipped.push(SkippedFile {
                path: f.path,
                reason,
            }),
            None => {
                *total += f.size;
                chosen.push(f);
            }
        }
    }
    let read: Vec<Option<Result<(SourceFile, bool), SkippedFile>>> = chosen
        .into_par_iter()
        .map(|f| {
            let disk = f.disk.clone();
            // A file deleted since it was listed is no longer part of the workspace, not a skip.
            let r = read_one(f, opts);
            let gone = matches!(&r, Err(s) if matches!(s.reason, SkipReason::Unreadable { .. }))
                && std::fs::symlink_metadata(&disk).is_err();
            (!gone).then_some(r)
        })
        .collect();
    for r in read.into_iter().flatten() {
        match r {
            Ok((file, lossy)) => {
                if lossy {
                    stats.lossy_utf8.push(file.path.clone());
                }
                files.push(file);
            }
            Err(s) => stats.skipped.push(s),
        }
    }
}

/// Whether a walk of `root` would list the file at `rel` (a path inside it): no hidden component
/// (unless hidden files are included), and not ignored by a `.gitignore` or `.ignore` in `root`
/// or a directory between it and the file, nor by `.git/info/exclude`. Used for files created
/// after the walk (watched-file events), so a build writing thousands of files under an ignored
/// `target/` adds none of them. Git's global excludes are not consulted.
pub fn is_walked(root: &Path, rel: &Path, opts: &WalkOptions) -> bool {
    let hidden = |c: &std::path::Component| c.as_os_str().to_string_lossy().starts_with('.');
    if !opts.include_hidden && rel.components().any(|c| hidden(&c)) {
        return false;
    }
    if !opts.respect_gitignore {
        return true;
    }
    let full = root.join(rel);
    let is_dir = full.is_dir();
    let mut dirs = vec![root.to_path_buf()];
    let mut dir = root.to_path_buf();
    for c in rel.parent().into_iter().flat_map(Path::components) {
        dir.push(c);
        dirs.push(dir.clone());
    }
    let exclude = root.join(".git/info/exclude");
    let files = std::iter::once((root.to_path_buf(), exclude)).chain(
        dirs.iter()
            .flat_map(|d| [".gitignore", ".ignore"].map(|name| (d.clone(), d.join(name)))),
    );
    for (base, file) in files {
        if !file.is_file() {
            continue;
        }
        let mut b = ignore::gitignore::GitignoreBuilder::new(&base);
        if b.add(&file).is_some() {
            continue;
        }
        if let Ok(gi) = b.build()
            && gi.matched_path_or_any_parents(&full, is_dir).is_ignore()
        {
            return false;
        }
    }
    true
}

/// Reads one chosen file: its text (lossily decoded when not UTF-8, then `true`), or why not.
pub(super) fn read_one(f: Found, opts: &WalkOptions) -> Result<(SourceFile, bool), SkippedFile> {
    let skip = |reason| SkippedFile {
        path: f.path.clone(),
        reason,
    };
    let bytes = read_capped(&f.disk, opts.max_file_bytes, f.size).map_err(|e| {
        skip(SkipReason::Unreadable {
            error: e.to_string(),
        })
    })?;
    if bytes.len() as u64 > opts.max_file_bytes {
        // Grew between listing and reading.
        return Err(skip(SkipReason::TooLarge {
            bytes: bytes.len() as u64,
            cap: opts.max_file_bytes,
        }));
    }
    if bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) {
        return Err(skip(SkipReason::Binary));
    }
    let (text, lossy) = match String::from_utf8(bytes) {
        Ok(t) => (t, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    Ok((
        SourceFile {
            path: f.path,
            text: Arc::new(text),
        },
        lossy,
    ))
}

/// Reads at most `cap + 1` bytes, so a file that grew past the cap is detected without reading it
/// all. `expected` (the size the walk saw) sizes the buffer once instead of growing it by doubling.
fn read_capped(path: &Path, cap: u64, expected: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(expected.min(cap) as usize + 1);
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The path a walker error is about (it may be wrapped in a depth or a line number) and the
/// error's own message, without the path.
fn error_parts(err: &ignore::Error) -> (Option<&Path>, String) {
    match err {
        ignore::Error::WithPath { path, err } => (Some(path), error_parts(err).1),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_parts(err)
        }
        ignore::Error::Partial(errs) if errs.len() == 1 => error_parts(&errs[0]),
        other => (None, other.to_string()),
    }
}

fn rel_path(root: &Path, prefix: &str, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let rel = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    format!("{prefix}{rel}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    /// Builds a tree from `(path, bytes)` pairs, walks it, and renders what was kept and skipped.
    fn check(files: &[(&str, &[u8])], opts: WalkOptions, expect: Expect) {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let snap = walk(dir.path(), &opts).unwrap();
        let mut out = String::new();
        for f in &snap.files {
            out.push_str(&format!("{} {:?}\n", f.path, f.text));
        }
        for s in &snap.stats.skipped {
            out.push_str(&format!("skipped {}: {}\n", s.path, s.reason));
        }
        for p in &snap.stats.lossy_utf8 {
            out.push_str(&format!("lossy {p}\n"));
        }
        out.push_str(&format!(
            "indexed {} files, {} bytes\n",
            snap.stats.files_indexed, snap.stats.bytes_indexed
        ));
        expect.assert_eq(&out);
    }

    #[test]
    fn keeps_text_and_records_skips() {
        check(
            &[
                ("src/main.rs", b"fn main() {}\n"),
                ("src/lib.rs", b"pub mod a;\n"),
                (".gitignore", b"target/\n*.log\n"),
                ("target/debug/out.rs", b"ignored\n"),
                ("build.log", b"ignored\n"),
                (".hidden/secret.txt", b"hidden\n"),
                ("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
                ("latin1.txt", b"caf\xe9\n"),
                ("big.txt", &[b'x'; 100]),
            ],
            WalkOptions {
                max_file_bytes: 64,
                ..WalkOptions::default()
            },
            expect![[r#"
                latin1.txt "caf�\n"
                src/lib.rs "pub mod a;\n"
                src/main.rs "fn main() {}\n"
                skipped big.txt: too large (100 bytes > cap of 64 bytes)
                skipped logo.png: binary
                lossy latin1.txt
                indexed 3 files, 31 bytes
            "#]],
        );
    }

    #[test]
    fn total_cap_skips_the_rest() {
        check(
            &[
                ("a.txt", b"aaaa\n"),
                ("b.txt", b"bbbb\n"),
                ("c.txt", b"cccc\n"),
            ],
            WalkOptions {
                max_total_bytes: 10,
                ..WalkOptions::default()
            },
            expect![[r#"
                a.txt "aaaa\n"
                b.txt "bbbb\n"
                skipped c.txt: total size cap of 10 bytes reached
                indexed 2 files, 10 bytes
            "#]],
        );
    }

    #[test]
    fn several_roots_prefix_paths_with_unique_names() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let app = a.path().join("app");
        let lib1 = b.path().join("lib");
        let lib2 = b.path().join("x/lib");
        for (dir, file) in [(&app, "main.rs"), (&lib1, "lib.rs"), (&lib2, "lib.rs")] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(file), "fn f() {}\n").unwrap();
        }
        let specs = [(&app, false), (&lib1, true), (&lib2, true)].map(|(p, ro)| RootSpec {
            path: p.clone(),
            read_only: ro,
        });
        let snap = walk_roots(&specs, &WalkOptions::default()).unwrap();
        let paths: Vec<_> = snap.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["app/main.rs", "lib-2/lib.rs", "lib/lib.rs"]);
        let (root, rel) = snap.root_of("lib-2/lib.rs").unwrap();
        assert_eq!(
            (root.name.as_str(), root.read_only, rel),
            ("lib-2", true, "lib.rs")
        );
        assert_eq!(
            snap.disk_path("app/main.rs"),
            app.canonicalize().unwrap().join("main.rs")
        );
        assert_eq!(snap.stats.roots.iter().map(|r| r.files).sum::<usize>(), 3);
    }

    #[test]
    fn one_file_changes_in_a_new_snapshot_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "fn a() {}\n").unwrap();
        std::fs::write(dir.path().join("b.rs"), "fn b() {}\n").unwrap();
        let v1 = walk(dir.path(), &WalkOptions::default()).unwrap();
        let v2 = v1.with_text("a.rs", "fn a2() {}\n".into());
        assert_eq!(v1.get("a.rs").unwrap().text.as_str(), "fn a() {}\n");
        assert_eq!(v2.get("a.rs").unwrap().text.as_str(), "fn a2() {}\n");
        assert!(Arc::ptr_eq(
            &v1.get("b.rs").unwrap().text,
            &v2.get("b.rs").unwrap().text
        ));
        let v3 = v2.with_text("c.rs", "fn c() {}\n".into());
        assert_eq!(v3.stats.files_indexed, 3);

        std::fs::write(dir.path().join("b.rs"), b"\0binary now").unwrap();
        std::fs::remove_file(dir.path().join("a.rs")).unwrap();
        let v4 = v3
            .with_file_from_disk("b.rs", &WalkOptions::default())
            .with_file_from_disk("a.rs", &WalkOptions::default());
        let paths: Vec<_> = v4.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["c.rs"]);
        assert_eq!(v4.stats.skipped.len(), 1, "{:?}", v4.stats.skipped);
        assert_eq!(v4.stats.skipped[0].reason, SkipReason::Binary);
        assert_eq!(v3.stats.files_indexed, 3, "the older snapshot is untouched");
    }

    #[test]
    fn is_walked_follows_the_walkers_ignore_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::create_dir_all(root.join("src/gen")).unwrap();
        std::fs::write(root.join("src/.ignore"), "gen/\n").unwrap();
        let opts = WalkOptions::default();
        let walked = |p: &str| is_walked(root, Path::new(p), &opts);
        assert!(walked("src/main.rs"));
        assert!(walked("README.md"));
        assert!(!walked("target/debug/build/x/out/gen.rs"));
        assert!(!walked("src/app.log"));
        assert!(!walked("src/gen/table.rs"));
        assert!(!walked(".env"));
        assert!(!walked("src/.cache/x.rs"));
        let all = WalkOptions {
            include_hidden: true,
            respect_gitignore: false,
            ..opts
        };
        assert!(is_walked(root, Path::new("target/x.rs"), &all));
        assert!(is_walked(root, Path::new(".env"), &all));
    }

    #[test]
    fn empty_and_missing_workspaces() {
        check(
            &[],
            WalkOptions::default(),
            expect![[r#"
                indexed 0 files, 0 bytes
            "#]],
        );
        let err = walk(Path::new("/definitely/not/here"), &WalkOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace /definitely/not/here does not exist"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = walk(file.path(), &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
    }
}
