//! `cargo check --offline` of a crate's copy, the build that scores a refactor task. The copy's
//! manifest is stripped of what needs crates beyond the library's own dependencies: its
//! dev-dependencies, its test, bench and example targets (`autotests` and the like turned off),
//! and the optional dependencies its default features do not enable (with the features that
//! need them). Its `Cargo.lock` is removed, so the offline resolution takes the versions `cargo
//! fetch` of `fixtures/eval/crates` unpacked, and a `rust-toolchain` file, so rustup installs
//! nothing. The check enables every feature left (more of the code is compiled), or the default
//! ones when a task says so. Builds share one target directory per crate under
//! `~/.cache/rlm-lsp/eval-check-target/`, so every check after the first is incremental.
//!
//! The same check runs in two places: the engine's check command (`rlm-eval check-crate` in
//! the scratch copy the engine made, [`command_line`]) and the scorer ([`check_changes`], in a
//! scratch copy of its own with the plan applied). The registry's sources are never written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `cargo check` said.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// The first errors (or the output's end), at most [`ERROR_CHARS`] characters.
    pub errors: String,
}

/// Characters of a failed check's errors kept.
pub const ERROR_CHARS: usize = 1500;

/// How a crate is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettings {
    pub target_dir: PathBuf,
    /// `--all-features` (every feature the stripped manifest keeps), else the default features.
    pub all_features: bool,
    pub timeout: Duration,
}

/// `~/.cache/rlm-lsp/eval-check-target` (`$XDG_CACHE_HOME/rlm-lsp/...` when set): the target
/// directories of the checks, one per crate ([`target_dir`]).
pub fn default_target_root() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("rlm-lsp").join("eval-check-target")
}

/// The target directory of a crate's checks under `root` (`syn@2.0.119` -> `ROOT/syn_2.0.119`).
pub fn target_dir(root: &Path, label: &str) -> PathBuf {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join(safe)
}

/// One `[section]` of a manifest: its header line (empty for the lines before the first) and
/// its lines, header included.
struct Section {
    header: String,
    lines: Vec<String>,
}

fn sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section {
        header: String::new(),
        lines: Vec::new(),
    }];
    let mut in_multiline = false;
    for line in text.lines() {
        let t = line.trim();
        if !in_multiline && t.starts_with('[') && !t.starts_with("[\"") && !line.starts_with(' ') {
            out.push(Section {
                header: t.split('#').next().unwrap_or(t).trim().to_string(),
                lines: Vec::new(),
            });
        }
        if line.matches("\"\"\"").count() % 2 == 1 || line.matches("'''").count() % 2 == 1 {
            in_multiline = !in_multiline;
        }
        if let Some(s) = out.last_mut() {
            s.lines.push(line.to_string());
        }
    }
    out
}

/// `[dependencies.NAME]`-style headers (also `build-`, `dev-` and `target.X.`): the table kind
/// (`dependencies`, `dev-dependencies`, `build-dependencies`) and the dependency's name, or the
/// kind alone for a `[dependencies]` table.
fn dependency_header(header: &str) -> Option<(&'static str, Option<String>)> {
    let inner = header.strip_prefix('[')?.strip_suffix(']')?;
    if inner.starts_with('[') {
        return None;
    }
    // Drop a leading `target.<cfg>.`: the cfg may be quoted and contain dots.
    let rest = if let Some(r) = inner.strip_prefix("target.") {
        let r = r.trim_start();
        if let Some(q) = r.strip_prefix('"') {
            q.split_once('"')?.1.strip_prefix('.')?
        } else if let Some(q) = r.strip_prefix('\'') {
            q.split_once('\'')?.1.strip_prefix('.')?
        } else {
            r.split_once('.')?.1
        }
    } else {
        inner
    };
    for kind in ["dev-dependencies", "build-dependencies", "dependencies"] {
        if rest == kind {
            return Some((kind, None));
        }
        if let Some(name) = rest.strip_prefix(kind).and_then(|n| n.strip_prefix('.')) {
            return Some((kind, Some(name.trim_matches('"').to_string())));
        }
    }
    None
}

/// The `[features]` table: each feature's entries, in order.
fn parse_features(lines: &[String]) -> Vec<(String, Vec<String>)> {
    let body: String = lines.iter().skip(1).map(|l| format!("{l}\n")).collect();
    let mut out = Vec::new();
    let mut rest = body.as_str();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_matches('"').to_string();
        let after = &rest[eq + 1..];
        let Some(open) = after.find('[') else { break };
        let Some(close) = after[open..].find(']') else {
            break;
        };
        let list = &after[open + 1..open + close];
        let entries = list
            .split(',')
            .map(|e| e.trim().trim_matches('"').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if !key.is_empty() && !key.starts_with('#') {
            out.push((key, entries));
        }
        rest = &after[open + close + 1..];
    }
    out
}

/// A manifest with what only tests, benches, examples and unused optional dependencies need
/// taken out (see the module documentation). Written for the normalized manifests of published
/// crates, and plain hand-written ones.
pub fn strip_manifest(text: &str) -> String {
    let mut secs = sections(text);
    // Targets and tables only tests need.
    secs.retain(|s| {
        let h = s.header.as_str();
        !(h == "[[test]]"
            || h == "[[bench]]"
            || h == "[[example]]"
            || dependency_header(h).is_some_and(|(k, _)| k == "dev-dependencies"))
    });
    // Dependencies: name -> optional in every table that names it.
    let mut deps: BTreeMap<String, bool> = BTreeMap::new();
    for s in &secs {
        match dependency_header(&s.header) {
            Some((_, Some(name))) => {
                let optional = s
                    .lines
                    .iter()
                    .any(|l| l.replace(' ', "").starts_with("optional=true"));
                let e = deps.entry(name).or_insert(true);
                *e = *e && optional;
            }
            Some((_, None)) => {
                for l in s.lines.iter().skip(1) {
                    if let Some((k, v)) = l.split_once('=') {
                        let k = k.trim().trim_matches('"').to_string();
                        if k.is_empty() || k.starts_with('#') {
                            continue;
                        }
                        let optional = v.replace(' ', "").contains("optional=true");
                        let e = deps.entry(k).or_insert(true);
                        *e = *e && optional;
                    }
                }
            }
            None => {}
        }
    }
    let features: Vec<(String, Vec<String>)> = secs
        .iter()
        .find(|s| s.header == "[features]")
        .map(|s| parse_features(&s.lines))
        .unwrap_or_default();
    let feature_names: BTreeSet<&str> = features.iter().map(|(k, _)| k.as_str()).collect();
    // Optional dependencies the default features enable.
    let mut needed: BTreeSet<String> = BTreeSet::new();
    let mut todo = vec!["default".to_string()];
    let mut seen = BTreeSet::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        for e in features
            .iter()
            .find(|(k, _)| *k == f)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
        {
            if let Some(d) = e.strip_prefix("dep:") {
                needed.insert(d.to_string());
            } else if let Some((d, _)) = e.split_once('/') {
                if !d.ends_with('?') {
                    needed.insert(d.to_string());
                }
            } else if feature_names.contains(e.as_str()) {
                todo.push(e.clone());
            } else if deps.get(e).copied() == Some(true) {
                needed.insert(e.clone());
            }
        }
    }
    let dropped: BTreeSet<String> = deps
        .iter()
        .filter(|(d, optional)| **optional && !needed.contains(*d))
        .map(|(d, _)| d.clone())
        .collect();
    let kept = |d: &str| deps.contains_key(d) && !dropped.contains(d);
    // Features: an entry naming a dropped dependency drops its feature (a weak `d?/f` entry
    // is dropped alone), and so on until nothing changes.
    let mut live: BTreeMap<String, Vec<String>> = features.iter().cloned().collect();
    loop {
        let mut changed = false;
        let names: BTreeSet<String> = live.keys().cloned().collect();
        for (k, entries) in live.clone() {
            let mut keep_entries = Vec::new();
            let mut bad = false;
            for e in entries {
                let ok = if let Some(d) = e.strip_prefix("dep:") {
                    kept(d)
                } else if let Some((d, _)) = e.split_once('/') {
                    match d.strip_suffix('?') {
                        Some(weak) => {
                            if !kept(weak) {
                                changed = true;
                                continue;
                            }
                            true
                        }
                        None => kept(d),
                    }
                } else if feature_names.contains(e.as_str()) {
                    names.contains(&e)
                } else {
                    kept(&e)
                };
                if ok {
                    keep_entries.push(e);
                } else {
                    bad = true;
                }
            }
            if bad && k != "default" {
                live.remove(&k);
                changed = true;
            } else {
                if bad {
                    changed = true;
                }
                live.insert(k.clone(), keep_entries);
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = String::new();
    for s in &secs {
        let h = s.header.as_str();
        match dependency_header(h) {
            Some((_, Some(name))) if dropped.contains(&name) => continue,
            Some((_, None)) => {
                for l in &s.lines {
                    let name = l
                        .split_once('=')
                        .map(|(k, _)| k.trim().trim_matches('"').to_string());
                    if name.is_some_and(|n| dropped.contains(&n)) {
                        continue;
                    }
                    out.push_str(l);
                    out.push('\n');
                }
                continue;
            }
            _ => {}
        }
        if h == "[features]" {
            out.push_str("[features]\n");
            for (k, _) in &features {
                if let Some(v) = live.get(k) {
                    let list: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
                    out.push_str(&format!("{k:?} = [{}]\n", list.join(", ")));
                }
            }
            out.push('\n');
            continue;
        }
        if h == "[package]" {
            out.push_str(&s.lines[0]);
            out.push_str("\nautotests = false\nautobenches = false\nautoexamples = false\n");
            for l in s.lines.iter().skip(1) {
                let key = l.split('=').next().unwrap_or_default().trim();
                if matches!(key, "autotests" | "autobenches" | "autoexamples") {
                    continue;
                }
                out.push_str(l);
                out.push('\n');
            }
            continue;
        }
        for l in &s.lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Dependency names of a manifest (every table, dev-dependencies included): the crates a path
/// in its code may start with.
pub fn dependency_names(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in sections(manifest) {
        match dependency_header(&s.header) {
            Some((_, Some(name))) => out.push(name),
            Some((_, None)) => {
                for l in s.lines.iter().skip(1) {
                    if let Some((k, _)) = l.split_once('=') {
                        let k = k.trim().trim_matches('"');
                        if !k.is_empty() && !k.starts_with('#') {
                            out.push(k.to_string());
                        }
                    }
                }
            }
            None => {}
        }
    }
    out
}

/// Makes the crate copy at `dir` checkable offline: strips its manifest, removes its lock file
/// and toolchain file.
pub fn prepare_copy(dir: &Path) -> std::io::Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, strip_manifest(&text))?;
    for f in ["Cargo.lock", "rust-toolchain", "rust-toolchain.toml"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

/// Copies a crate's directory (everything but `target/` and `.git/`) to `dest`.
pub fn copy_crate(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let ty = entry.file_type()?;
        let to = dest.join(&name);
        if ty.is_dir() {
            copy_crate(&entry.path(), &to)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// The cargo invocation of a check, in the prepared copy `dir`.
fn cargo_command(dir: &Path, s: &CheckSettings) -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("check")
        .arg("--offline")
        .arg("--color")
        .arg("never");
    if s.all_features {
        cmd.arg("--all-features");
    }
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", &s.target_dir)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(std::process::Stdio::null());
    cmd
}

/// `rlm-eval check-crate`: prepares the copy in the current directory and runs the check there,
/// its output on stdout and stderr; the exit code is cargo's.
pub fn check_here(s: &CheckSettings) -> anyhow::Result<i32> {
    let dir = std::env::current_dir()?;
    prepare_copy(&dir)?;
    let status = cargo_command(&dir, s).status()?;
    Ok(status.code().unwrap_or(1))
}

/// The check command the engine runs in its scratch copy (with `sh -c`).
pub fn command_line(exe: &Path, s: &CheckSettings) -> String {
    format!(
        "{} check-crate --target-dir {}{}",
        shell_quote(&exe.display().to_string()),
        shell_quote(&s.target_dir.display().to_string()),
        if s.all_features {
            ""
        } else {
            " --default-features"
        }
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the check of the prepared copy `dir`, with the time limit.
pub async fn run_check(dir: &Path, s: &CheckSettings) -> CheckResult {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::from(cargo_command(dir, s));
    cmd.kill_on_drop(true).process_group(0);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CheckResult {
                passed: false,
                exit_code: None,
                timed_out: false,
                duration_ms: 0,
                errors: format!("cargo did not start: {e}"),
            };
        }
    };
    let pid = child.id();
    match tokio::time::timeout(s.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let passed = out.status.success();
            CheckResult {
                passed,
                exit_code: out.status.code(),
                timed_out: false,
                duration_ms: started.elapsed().as_millis() as u64,
                errors: if passed {
                    String::new()
                } else {
                    first_errors(&text, ERROR_CHARS)
                },
            }
        }
        Ok(Err(e)) => CheckResult {
            passed: false,
            exit_code: None,
            timed_out: false,
            duration_ms: started.elapsed().as_millis() as u64,
            errors: format!("waiting for cargo: {e}"),
        },
        Err(_) => {
            if let Some(pid) = pid {
                // The whole group: cargo and the compilers it started.
                // SAFETY: kill with a process group id has no memory preconditions.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            CheckResult {
                passed: false,
                exit_code: None,
                timed_out: true,
                duration_ms: started.elapsed().as_millis() as u64,
                errors: format!("cargo check ran out of time ({} s)", s.timeout.as_secs()),
            }
        }
    }
}

/// The lines of cargo's output that say `error`, each with the few lines after it (where and
/// why), at most `max_chars`; the output's end when there are none.
pub fn first_errors(output: &str, max_chars: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() && out.len() < max_chars {
        if lines[i].starts_with("error") {
            for l in &lines[i..(i + 5).min(lines.len())] {
                out.push_str(l);
                out.push('\n');
            }
            i += 5;
        } else {
            i += 1;
        }
    }
    if out.is_empty() {
        let skip = output.chars().count().saturating_sub(max_chars);
        return output.chars().skip(skip).collect();
    }
    out.chars().take(max_chars).collect()
}

/// Copies the crate at `crate_dir` into a scratch directory, writes `changes` (crate-relative
/// path -> new text; `None` removes the file), prepares the copy and checks it. The scratch
/// copy is deleted afterwards; `crate_dir` is never written.
pub async fn check_changes(
    crate_dir: &Path,
    changes: &[(String, Option<String>)],
    s: &CheckSettings,
) -> anyhow::Result<CheckResult> {
    let scratch = tempfile::Builder::new()
        .prefix("rlm-eval-check-")
        .tempdir()?;
    let name = crate_dir
        .file_name()
        .map_or_else(|| "crate".into(), |n| n.to_os_string());
    let dir = scratch.path().join(name);
    copy_crate(crate_dir, &dir)?;
    for (rel, text) in changes {
        anyhow::ensure!(
            !rel.starts_with('/') && !rel.split('/').any(|c| c == ".."),
            "{rel}: not a path inside the crate"
        );
        let p = dir.join(rel);
        match text {
            Some(t) => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&p, t)?;
            }
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    prepare_copy(&dir)?;
    Ok(run_check(&dir, s).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[package]
edition = "2021"
name = "demo"
version = "1.0.0"
autotests = false
keywords = [
    "x",
]

[features]
default = [
    "std",
    "fancy",
]
std = []
fancy = ["dep:quote", "helper?/extra"]
fuzz = ["dep:arbitrary"]
more = ["fuzz"]
proc = ["proc-macro2/proc-macro"]
test = ["syn-test-suite/all-features"]

[lib]
path = "src/lib.rs"

[[test]]
name = "t"
path = "tests/t.rs"

[[bench]]
name = "b"
path = "benches/b.rs"

[dependencies.proc-macro2]
version = "1"

[dependencies.quote]
version = "1"
optional = true

[dependencies.arbitrary]
version = "1"
optional = true

[dependencies.helper]
version = "1"
optional = true

[dev-dependencies.syn-test-suite]
version = "0"

[target."cfg(unix)".dev-dependencies.libc]
version = "0.2"

[target.'cfg(windows)'.dependencies.winapi]
version = "0.3"
"#;

    #[test]
    fn manifests_lose_dev_targets_and_unused_optional_dependencies() {
        let s = strip_manifest(MANIFEST);
        for gone in [
            "[[test]]",
            "[[bench]]",
            "syn-test-suite",
            "libc",
            "arbitrary",
            "[dependencies.helper]",
            "fuzz",
            "more",
            "\"test\"",
            "autotests = false\nautotests",
        ] {
            assert!(!s.contains(gone), "{gone} left in:\n{s}");
        }
        for kept in [
            "[dependencies.quote]",
            "[dependencies.proc-macro2]",
            "\"fancy\" = [\"dep:quote\"]",
            "\"proc\" = [\"proc-macro2/proc-macro\"]",
            "\"default\" = [\"std\", \"fancy\"]",
            "[target.'cfg(windows)'.dependencies.winapi]",
            "autotests = false\nautobenches = false\nautoexamples = false",
            "keywords = [\n    \"x\",\n]",
        ] {
            assert!(s.contains(kept), "{kept} missing from:\n{s}");
        }
        assert_eq!(
            dependency_names(MANIFEST),
            vec![
                "proc-macro2",
                "quote",
                "arbitrary",
                "helper",
                "syn-test-suite",
                "libc",
                "winapi"
            ]
        );
        let plain = "[package]\nname = \"t\"\nversion = \"0.1.0\"\n\n[dependencies]\nfoo = { version = \"1\", optional = true }\nbar = \"1\"\n\n[dev-dependencies]\nbaz = \"1\"\n";
        let s = strip_manifest(plain);
        assert!(
            !s.contains("foo") && s.contains("bar = \"1\"") && !s.contains("baz"),
            "{s}"
        );
    }

    #[test]
    fn command_lines_quote_paths() {
        let s = CheckSettings {
            target_dir: "/tmp/it's here".into(),
            all_features: false,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            command_line(Path::new("/bin/rlm-eval"), &s),
            "'/bin/rlm-eval' check-crate --target-dir '/tmp/it'\\''s here' --default-features"
        );
        assert!(
            target_dir(&default_target_root(), "syn@2.0.119")
                .ends_with("rlm-lsp/eval-check-target/syn_2.0.119")
        );
    }
}
