//! Shared by `tests/e2e_mcp.rs` and `tests/e2e_acp.rs`: Node and the official client SDKs that
//! `scripts/setup-agents.sh` installs, and a run of one of the client scripts in this folder.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub const SETUP: &str = "run scripts/setup-agents.sh first (it installs Node 24 and the MCP and \
                         ACP client SDKs from npm, pinned by tests/agents/package-lock.json)";

/// Node (`RLM_AGENTS_NODE`, else the link `scripts/setup-agents.sh` leaves in `.rlm/agents/`),
/// after checking the SDKs are installed.
pub fn node() -> PathBuf {
    let node = std::env::var_os("RLM_AGENTS_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".rlm/agents/node"));
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("no Node at {}: {e}; {SETUP}", node.display()));
    assert!(
        version.status.success(),
        "{} --version failed; {SETUP}",
        node.display()
    );
    let modules = repo().join("tests/agents/node_modules");
    for dep in ["@modelcontextprotocol/sdk", "@agentclientprotocol/sdk"] {
        assert!(
            modules.join(dep).join("package.json").is_file(),
            "tests/agents/node_modules/{dep} is missing; {SETUP}"
        );
    }
    node
}

/// What a client script printed (its last stdout line, as JSON) and its stderr.
pub struct Driven {
    pub result: serde_json::Value,
    pub stderr: String,
}

/// Variables about this machine rather than the run's settings, passed on to the servers (with
/// every `RLM_LOCAL_*`: where the local model is and how it runs).
const KEPT: [&str; 4] = [
    "RLM_CACHE_DIR",
    "RLM_LLAMA_SERVER",
    "RLM_LOG",
    "RLM_UNSAFE_NO_SANDBOX",
];

/// Runs `tests/agents/SCRIPT ARGS` with the real `rlm-lsp` and the given environment (the other
/// `RLM_*` variables removed, so the server takes its settings from `env` only); fails the
/// test, with the script's output, if it fails or takes longer than `timeout`. Variables about
/// the machine ([`KEPT`], `RLM_LOCAL_*`) are kept.
pub fn drive(script: &str, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Driven {
    let node = node();
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .args(args)
        .current_dir(repo().join("tests/agents"))
        .env("RLM_BIN", env!("CARGO_BIN_EXE_rlm-lsp"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (var, _) in std::env::vars() {
        if var.starts_with("RLM_")
            && !KEPT.contains(&var.as_str())
            && !var.starts_with("RLM_LOCAL_")
        {
            cmd.env_remove(&var);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("node starts");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| {
        let mut s = String::new();
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_string(&mut s))
            .unwrap();
        s
    };
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    match status {
        None => {
            panic!("{script} {args:?} took over {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
        Some(s) if !s.success() => {
            panic!("{script} {args:?} failed ({s})\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
        Some(_) => {}
    }
    let last = stdout.lines().last().unwrap_or_default();
    let result = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("{script}: no JSON result ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    Driven { result, stderr }
}

/// A workspace of `files` in a temporary directory.
pub fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, text) in files {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}

/// A root-model reply that runs one code cell: a grep, then FINAL with `answer`.
pub fn cell_final(answer: &str) -> rlm_lsp::llm::scripted::Step {
    let literal = serde_json::to_string(answer).unwrap(); // a JSON string is a Python literal
    rlm_lsp::llm::scripted::Step::Reply(format!(
        "Let me look.\n```repl\nprint(grep('alpha'))\nFINAL({literal})\n```\n"
    ))
}
