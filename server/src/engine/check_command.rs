//! The user's own check of a refactor plan: the plan applied to a scratch copy of the writable
//! roots (never the workspace), then the command the user configured (`checkCommand`, such as
//! `cargo check --offline`, `tsc --noEmit`, `python -m pyflakes .`) run there, outside the
//! sandbox, with a time limit. The model never chooses what runs.

use super::refactor::{CheckedPlan, file_changes};
use crate::workspace::Snapshot;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The command and its limits, from the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckCommand {
    /// Run with `sh -c` in the copy of the first writable root.
    pub command: String,
    pub timeout: Duration,
}

/// What the command said about the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    pub command: String,
    pub passed: bool,
    /// The exit code; `None` when it was killed (timeout) or could not start.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The end of its output (stdout and stderr together).
    pub output_tail: String,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the plan has no writable root to check")]
    NoRoot,
    #[error("copying {path} to a scratch directory for the check: {source}")]
    Copy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the check command `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
}

/// The variables that hold API keys (`apiKeyEnv` and the like name them), as the settings of
/// this process have named them so far. The check command runs the model's edits (a build
/// script, a test) outside the sandbox, so they are taken out of its environment.
static KEY_VARIABLES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Keeps the variable `name` out of every check command's environment from now on.
pub fn hide_variable(name: &str) {
    KEY_VARIABLES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string());
}

/// Characters of output kept in [`CheckOutcome::output_tail`].
const TAIL_CHARS: usize = 4000;

/// Applies `plan` to a scratch copy of the writable roots of `snapshot` (their files as the
/// snapshot holds them, unsaved buffers included) and runs the check command there.
pub async fn run(
    check: &CheckCommand,
    plan: &CheckedPlan,
    snapshot: &Snapshot,
) -> Result<CheckOutcome, CheckError> {
    let scratch = crate::repl::owned_dir::OwnedTempDir::new("rlm-check-").map_err(|source| {
        CheckError::Copy {
            path: std::env::temp_dir(),
            source,
        }
    })?;
    let workdir = prepare(plan, snapshot, scratch.path())?;
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&check.command)
        .current_dir(&workdir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    for var in KEY_VARIABLES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        cmd.env_remove(var);
    }
    // A Rust project's copy builds incrementally in one target directory per project.
    if std::env::var_os("CARGO_TARGET_DIR").is_none()
        && let Ok(dir) = crate::llm::local::user_cache_dir()
    {
        let root = snapshot.stats.roots.iter().find(|r| !r.read_only);
        let key = root.map_or(String::new(), |r| short_hash(&r.path.display().to_string()));
        cmd.env("CARGO_TARGET_DIR", dir.join("check-target").join(key));
    }
    // Both streams in one pipe, in the order they were written.
    let (reader, writer) = std::io::pipe().map_err(|source| CheckError::Start {
        command: check.command.clone(),
        source,
    })?;
    let writer2 = writer.try_clone().map_err(|source| CheckError::Start {
        command: check.command.clone(),
        source,
    })?;
    cmd.stdout(writer).stderr(writer2);
    let mut child = cmd.spawn().map_err(|source| CheckError::Start {
        command: check.command.clone(),
        source,
    })?;
    drop(cmd);
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut out = Vec::new();
        let _ = { reader }.read_to_end(&mut out);
        out
    });
    let (exit_code, timed_out) = match tokio::time::timeout(check.timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(_)) => (None, false),
        Err(_) => {
            if let Some(pid) = child.id() {
                // The whole group: `sh`, cargo and the compilers it started.
                // SAFETY: kill with a process group id has no memory preconditions.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            (None, true)
        }
    };
    let output = read.await.unwrap_or_default();
    let output = String::from_utf8_lossy(&output);
    Ok(CheckOutcome {
        command: check.command.clone(),
        passed: exit_code == Some(0),
        exit_code,
        timed_out,
        output_tail: tail(&output, TAIL_CHARS),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Writes the writable roots into `scratch` with the plan applied; the directory to run the
/// command in (the first writable root's copy).
fn prepare(plan: &CheckedPlan, snapshot: &Snapshot, scratch: &Path) -> Result<PathBuf, CheckError> {
    let roots: Vec<_> = snapshot
        .stats
        .roots
        .iter()
        .filter(|r| !r.read_only)
        .collect();
    let first = roots.first().ok_or(CheckError::NoRoot)?;
    let copy_of = |name: &str| scratch.join(if name.is_empty() { "root" } else { name });
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckError::Copy { path, source }
    };
    for root in &roots {
        let dest = copy_of(&root.name);
        // What the build needs beyond the snapshot (manifests, lock files, hidden config), as
        // the walk sees it: ignored build output (target/, node_modules/) stays out.
        let walk = ignore::WalkBuilder::new(&root.path)
            .hidden(false)
            .require_git(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for entry in walk.flatten() {
            let Ok(rel) = entry.path().strip_prefix(&root.path) else {
                continue;
            };
            let target = dest.join(rel);
            if entry.file_type().is_some_and(|t| t.is_dir()) {
                std::fs::create_dir_all(&target).map_err(io(&target))?;
            } else if entry.file_type().is_some_and(|t| t.is_file()) {
                std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            }
        }
    }
    let disk = |path: &str| -> Option<PathBuf> {
        let (root, rel) = snapshot.root_of(path)?;
        (!root.read_only).then(|| copy_of(&root.name).join(rel))
    };
    // The snapshot's text wins over the disk (unsaved buffers), then the plan's changes.
    for f in &snapshot.files {
        if let Some(target) = disk(&f.path) {
            write(&target, &f.text).map_err(io(&target))?;
        }
    }
    for change in file_changes(plan, snapshot) {
        let Some(old) = disk(&change.path) else {
            continue;
        };
        match &change.renamed_to {
            Some(to) => {
                let Some(new) = disk(to) else { continue };
                let _ = std::fs::remove_file(&old);
                write(&new, &change.new).map_err(io(&new))?;
            }
            None => write(&old, &change.new).map_err(io(&old))?,
        }
    }
    Ok(copy_of(&first.name))
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The last `n` characters of `s`, from a line start when one is near.
fn tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let cut: String = s.chars().skip(count - n).collect();
    match cut.find('\n') {
        Some(i) if i < 200 => cut[i + 1..].to_string(),
        _ => cut,
    }
}

/// The first errors of a failed check, for the model: lines that say `error` and the few lines
/// after each (a compiler's location and code), at most `max_chars`.
pub fn first_errors(output: &str, max_chars: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() && out.len() < max_chars {
        let l = lines[i];
        if l.to_ascii_lowercase().contains("error") && !l.trim_start().starts_with("warning") {
            for l in &lines[i..(i + 6).min(lines.len())] {
                out.push_str(l);
                out.push('\n');
            }
            i += 6;
        } else {
            i += 1;
        }
    }
    if out.is_empty() {
        return tail(output, max_chars);
    }
    if out.len() > max_chars {
        out = out.chars().take(max_chars).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::RootSpec;

    fn plan_for(snap: &Snapshot, answer: &str) -> CheckedPlan {
        super::super::refactor::check(answer, snap)
    }

    #[tokio::test]
    async fn the_command_sees_the_plan_applied_and_the_workspace_stays_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "build/\n").unwrap();
        std::fs::create_dir(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/big.bin"), "not copied").unwrap();
        let snap = crate::workspace::walk_roots(
            &[RootSpec {
                path: dir.path().to_path_buf(),
                read_only: false,
            }],
            &Default::default(),
        )
        .unwrap();
        let plan = plan_for(
            &snap,
            "```edit a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n",
        );
        assert_eq!(plan.edits.len(), 1);
        let check = CheckCommand {
            command: "cat a.py; test -e build/big.bin && echo copied-build; test -e .gitignore && echo hidden-ok; grep -q 'x = 2' a.py".into(),
            timeout: Duration::from_secs(30),
        };
        let out = run(&check, &plan, &snap).await.unwrap();
        assert!(out.passed, "{out:?}");
        assert_eq!(out.output_tail, "x = 2\nhidden-ok\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.py")).unwrap(),
            "x = 1\n"
        );

        let failing = CheckCommand {
            command: "echo 'error[E0425]: cannot find value `y`' >&2; exit 3".into(),
            timeout: Duration::from_secs(30),
        };
        let out = run(&failing, &plan, &snap).await.unwrap();
        assert_eq!((out.passed, out.exit_code), (false, Some(3)));
        assert!(first_errors(&out.output_tail, 500).contains("E0425"));

        let slow = CheckCommand {
            command: "sleep 30".into(),
            timeout: Duration::from_millis(300),
        };
        let started = Instant::now();
        let out = run(&slow, &plan, &snap).await.unwrap();
        assert!(out.timed_out && !out.passed, "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
