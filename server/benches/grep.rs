//! `grep` through the REPL against ripgrep, on a large real tree: every `.rs` file under
//! `~/.cargo/registry/src/*/` (the sources `cargo fetch` placed there; `RLM_GREP_BENCH_ROOT`
//! overrides the root). Target: within 2x of `rg` on the same files and pattern.
//!
//! Each measurement is the median of several runs of one REPL cell, timed in the parent
//! (`Repl::exec`: the round trip to the worker, the search in Rust over the mapped workspace, and
//! the Python list of up to 1,000 `(path, line, text)` tuples), beside `rg -c` (count matching
//! lines per file, the least output ripgrep can write) and `rg -n` (all matching lines, to a
//! file) on the same files, with a warm page cache. The number of matching lines is compared.
//!
//! Run: `bench/grep.sh` (installs ripgrep if missing), or `cargo bench -p rlm-lsp --bench grep`.
#![allow(clippy::print_stdout)]

use futures::future::BoxFuture;
use rlm_lsp::repl::{ContextBlob, Repl, ReplConfig, SubCalls};
use rlm_lsp::workspace::{Snapshot, SourceFile};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

struct NoSub;

impl SubCalls for NoSub {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move { vec![Err("no model in this benchmark".into()); prompts.len()] })
    }
}

/// The directories to search: `$RLM_GREP_BENCH_ROOT`, else `~/.cargo/registry/src/*/`.
fn roots() -> Vec<PathBuf> {
    if let Some(root) = std::env::var_os("RLM_GREP_BENCH_ROOT") {
        return vec![PathBuf::from(root)];
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let src = home.join("registry/src");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Every `.rs` file under `roots`, as ripgrep `-uu` sees them: hidden files and ignored files
/// included, symlinks not followed.
fn rust_files(roots: &[PathBuf]) -> Snapshot {
    let mut files = Vec::new();
    for root in roots {
        let walk = ignore::WalkBuilder::new(root)
            .standard_filters(false)
            .follow_links(false)
            .build();
        for entry in walk.filter_map(|e| e.ok()) {
            let path = entry.path();
            if !entry.file_type().is_some_and(|t| t.is_file())
                || path.extension().is_none_or(|e| e != "rs")
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let rel = path
                .strip_prefix(root.parent().unwrap_or(root))
                .unwrap_or(path);
            files.push(SourceFile {
                path: rel.to_string_lossy().into_owned(),
                text: String::from_utf8_lossy(&bytes).into_owned().into(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Snapshot {
        root: roots.first().cloned().unwrap_or_default(),
        files,
        stats: Default::default(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `rg` RUNS times; (median time, matching lines).
fn rg(args: &[&str], pattern: &str, roots: &[PathBuf], out: &Path) -> Option<(Duration, u64)> {
    let run = || {
        let started = Instant::now();
        let o = Command::new("rg")
            .args(["-uu", "-g", "*.rs"])
            .args(args)
            .arg("--")
            .arg(pattern)
            .args(roots)
            .stdout(Stdio::from(std::fs::File::create(out).ok()?))
            .status()
            .ok()?;
        let took = started.elapsed();
        // 1: no match; 2: error.
        (o.code() != Some(2)).then_some(took)
    };
    run()?; // warm-up
    let times: Vec<Duration> = (0..RUNS).filter_map(|_| run()).collect();
    if times.is_empty() {
        return None;
    }
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let lines = if args.contains(&"-c") {
        text.lines()
            .filter_map(|l| l.rsplit(':').next()?.parse::<u64>().ok())
            .sum()
    } else {
        text.lines().count() as u64
    };
    Some((median(times), lines))
}

fn rg_available() -> bool {
    Command::new("rg")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Python string literal for `s`.
fn py(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn main() {
    let roots = roots();
    let started = Instant::now();
    let snap = rust_files(&roots);
    let bytes = snap.total_bytes();
    if snap.files.is_empty() {
        println!(
            "grep bench: no .rs files under {roots:?}; run `cargo fetch` in the repository first \
             (or set RLM_GREP_BENCH_ROOT)"
        );
        return;
    }
    println!(
        "grep bench: {} .rs files, {:.1} MB under {} ({} roots), read in {:.0} ms",
        snap.files.len(),
        bytes as f64 / 1e6,
        roots
            .first()
            .map(|r| r.display().to_string())
            .unwrap_or_default(),
        roots.len(),
        ms(started.elapsed())
    );
    let have_rg = rg_available();
    if !have_rg {
        println!(
            "ripgrep (rg) is not installed: the rg columns are skipped. Install it with \
             `apt-get install -y ripgrep` (bench/grep.sh does) to get the ratio."
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let rg_out = tmp.path().join("rg.out");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let blob = ContextBlob::write(&snap).unwrap();
        drop(snap);
        let cfg = ReplConfig {
            worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
            cell_timeout: Duration::from_secs(120),
            ..ReplConfig::default()
        };
        let mut repl = Repl::start(cfg, blob).await.unwrap();
        // Touch every page of the mapping once (as a first question would).
        let out = repl
            .exec("print(len(grep('zzzz_never_there_zzzz')))", &NoSub, None)
            .await
            .unwrap();
        assert_eq!(out.error, None, "{out:?}");

        println!(
            "{:<42} {:>7} {:>9} {:>9} {:>9} {:>8}",
            "pattern", "lines", "REPL ms", "rg -c ms", "rg -n ms", "REPL/rg"
        );
        for (label, pattern, ignore_case) in [
            ("literal", "unsafe impl", false),
            ("literal, -i", "deprecated", true),
            ("regex, prefix literal", r"fn\s+\w+_mut\b", false),
            ("regex, inner literal", r"[A-Z][a-z]+Error\b", false),
            ("regex, no literal", r"\b\d{5,}\b", false),
        ] {
            let cell = format!(
                "r = grep({}, ignore_case={})\nprint(len(r))",
                py(pattern),
                if ignore_case { "True" } else { "False" }
            );
            let mut times = Vec::new();
            let mut total = 0u64;
            for _ in 0..RUNS + 1 {
                let t = Instant::now();
                let out = repl.exec(&cell, &NoSub, None).await.unwrap();
                times.push(t.elapsed());
                assert_eq!(out.error, None, "{out:?}");
                // "[grep: N lines match in all; ..." when more than returned, else len(r).
                total = match out.stdout.strip_prefix("[grep: ") {
                    Some(rest) => rest
                        .split(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    None => out.stdout.trim().parse().unwrap_or(0),
                };
            }
            times.remove(0); // warm-up
            let ours = median(times);
            let flags = |more: &[&'static str]| {
                let mut v: Vec<&str> = if ignore_case { vec!["-i"] } else { vec![] };
                v.extend_from_slice(more);
                v
            };
            let (rg_c, rg_n) = if have_rg {
                (
                    rg(&flags(&["-c"]), pattern, &roots, &rg_out),
                    rg(&flags(&["-n", "--no-heading"]), pattern, &roots, &rg_out),
                )
            } else {
                (None, None)
            };
            let show = |r: &Option<(Duration, u64)>| match r {
                Some((d, _)) => format!("{:.1}", ms(*d)),
                None => "-".into(),
            };
            let ratio = match &rg_c {
                Some((d, _)) => format!("{:.2}x", ours.as_secs_f64() / d.as_secs_f64()),
                None => "-".into(),
            };
            println!(
                "{:<42} {:>7} {:>9.1} {:>9} {:>9} {:>8}",
                format!("{label}: {pattern}"),
                total,
                ms(ours),
                show(&rg_c),
                show(&rg_n),
                ratio
            );
            for (name, r) in [("rg -c", &rg_c), ("rg -n", &rg_n)] {
                if let Some((_, lines)) = r
                    && *lines != total
                {
                    println!("  note: {name} counted {lines} matching lines, grep {total}");
                }
            }
        }
        repl.shutdown().await;
    });
    println!(
        "REPL/rg is the REPL cell's time over `rg -c`'s (target: <= 2x). rg walks and reads the \
         files from the page cache; the REPL searches the workspace already mapped in the worker."
    );
}
