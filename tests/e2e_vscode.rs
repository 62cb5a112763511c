//! The VS Code extension (`editors/vscode`) in real VS Code: code-server 4.139 (VS Code 1.139)
//! driven through Chromium by `editors/vscode/test/e2e.mjs` (playwright-core), with the real
//! `rlm-lsp` binary as its server and a scripted model on loopback. Through the command palette:
//! ask (the answer in the Markdown preview, a citation link that opens the file at its line),
//! the trajectory view, explain at the cursor, status, a refactor accepted in VS Code's refactor
//! preview (checked here on disk), the cancel of a slow run, and an API key from "Set API Key"
//! that reaches the model server through the server process's environment.
//!
//! Needs the toolchain of `scripts/setup-vscode.sh` (Node 24, code-server, chromium, the
//! extension's npm dependencies); without it the test fails and says to run that script.
//! Screenshots and logs: `target/test-output/vscode/`.

use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole driver run, from code-server's start to the last screenshot (about 30 s here).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(200);

const A_RS: &str = "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n";
const B_RS: &str = "fn beta() {}\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const SETUP: &str = "run scripts/setup-vscode.sh first (it installs Node 24, code-server, chromium \
                     and the extension's dependencies)";

struct Toolchain {
    node: PathBuf,
    code_server: PathBuf,
    chromium: PathBuf,
}

/// Node 24, code-server and chromium: from `RLM_VSCODE_NODE`, `RLM_CODE_SERVER` and
/// `RLM_CHROMIUM`, else the links `scripts/setup-vscode.sh` leaves in `.rlm/vscode/`.
fn toolchain() -> Result<Toolchain, String> {
    let local = repo().join(".rlm/vscode");
    let pick =
        |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    let node = pick("RLM_VSCODE_NODE", local.join("node"));
    let code_server = pick("RLM_CODE_SERVER", local.join("code-server"));
    let chromium = pick("RLM_CHROMIUM", local.join("chromium"));
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("no Node 24 at {}: {e}; {SETUP}", node.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    if !version.starts_with("v24.") {
        return Err(format!(
            "{} is Node {version:?}, code-server needs Node 24; {SETUP}",
            node.display()
        ));
    }
    if !code_server.join("out/node/entry.js").is_file() {
        return Err(format!(
            "no code-server at {}; {SETUP}",
            code_server.display()
        ));
    }
    if !chromium.exists() {
        return Err(format!("no chromium at {}; {SETUP}", chromium.display()));
    }
    let ext = repo().join("editors/vscode");
    for dep in ["playwright-core", "esbuild", "vscode-languageclient"] {
        if !ext.join("node_modules").join(dep).is_dir() {
            return Err(format!(
                "editors/vscode/node_modules/{dep} is missing; {SETUP}"
            ));
        }
    }
    Ok(Toolchain {
        node,
        code_server,
        chromium,
    })
}

/// A root-model reply that runs one code cell: a grep, then FINAL with `answer`.
fn cell_final(answer: &str) -> Step {
    let literal = serde_json::to_string(answer).unwrap(); // a JSON string is a Python literal
    Step::Reply(format!(
        "Let me look.\n```repl\nprint(grep('alpha'))\nFINAL({literal})\n```\n"
    ))
}

/// One keyed step per editor action, matched by words of its question.
fn script() -> Vec<(Option<String>, Step)> {
    let plan = "Rename alpha to first everywhere.\n\
```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n=======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n\
```edit a.rs\n<<<<<<< SEARCH\n    alpha();\n=======\n    first();\n>>>>>>> REPLACE\n```\n\
```edit b.rs\n<<<<<<< SEARCH\nfn beta() {}\n=======\nfn beta( {}\n>>>>>>> REPLACE\n```\n";
    let key = |k: &str| Some(k.to_string());
    vec![
        (
            key("alpha give back"),
            cell_final("alpha returns 42, see a.rs:2; not nowhere.rs:3"),
        ),
        // Sent back once (nowhere.rs is not in the workspace), the model insists.
        (
            key("alpha give back"),
            cell_final("alpha returns 42, see a.rs:2; not nowhere.rs:3"),
        ),
        (
            key("Explain the symbol `alpha`"),
            cell_final(
                "alpha is the answer function: it returns 42 (a.rs:1), and main calls it at a.rs:6.",
            ),
        ),
        (
            key("Explain the symbol `alpha`"),
            cell_final("alpha, explained from a code action: see a.rs:1."),
        ),
        (key("rename alpha to first"), cell_final(plan)),
        (key("Keyed question"), cell_final("beta is empty: b.rs:1")),
        (
            key("Slow question"),
            Step::Delayed(Duration::from_secs(90), "FINAL(too late)".into()),
        ),
    ]
}

fn run_logged(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vscode_extension_in_code_server() {
    let tools = toolchain().unwrap_or_else(|e| panic!("{e}"));
    let ext = repo().join("editors/vscode");
    // Bundle the extension as it is now (esbuild, about a second), so the test runs the source.
    run_logged(
        Command::new(&tools.node)
            .arg("esbuild.mjs")
            .current_dir(&ext),
        "the extension's esbuild bundle",
    );
    // The editor-free parts (settings mapping, citation links, trajectory tree) under node.
    run_logged(
        Command::new(&tools.node)
            .args(["--test", "test/unit.test.mjs"])
            .current_dir(&ext),
        "the extension's unit tests (node --test test/unit.test.mjs)",
    );

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("a.rs"), A_RS).unwrap();
    std::fs::write(ws.join("b.rs"), B_RS).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = rt
        .block_on(ScriptedServer::start_keyed(script(), SubRule::Echo))
        .expect("the scripted model server starts");

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-output/vscode");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let log_path = out_dir.join("driver.log");
    let log = std::fs::File::create(&log_path).unwrap();

    let mut driver = Command::new(&tools.node);
    driver
        .arg("test/e2e.mjs")
        .current_dir(&ext)
        .env("RLM_SERVER_BIN", env!("CARGO_BIN_EXE_rlm-lsp"))
        .env("RLM_WORKSPACE", &ws)
        .env("RLM_MODEL_URL", model.base_url())
        .env("RLM_OUT_DIR", &out_dir)
        .env("RLM_CODE_SERVER", &tools.code_server)
        .env("RLM_EXTENSION_DIR", &ext)
        .env("RLM_CHROMIUM", &tools.chromium)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The server must take its settings from VS Code only.
    for (var, _) in std::env::vars() {
        if var.starts_with("RLM_") && !var.starts_with("RLM_E2E") {
            driver.env_remove(&var);
        }
    }
    let started = Instant::now();
    let mut child = driver
        .spawn()
        .unwrap_or_else(|e| panic!("node did not start the driver: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut log_text = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut log_text))
        .unwrap();
    let report = format!(
        "driver log ({}):\n{log_text}\nscreenshots and logs in {}",
        log_path.display(),
        out_dir.display()
    );
    match status {
        None => panic!("the driver took over {DRIVER_TIMEOUT:?}; {report}"),
        Some(s) if !s.success() => panic!("the driver failed ({s}); {report}"),
        Some(_) => {}
    }
    #[allow(clippy::print_stdout)] // the test's own report, shown with --nocapture
    {
        println!("{report}\n(took {:.1} s)", started.elapsed().as_secs_f64());
    }

    // The refactor, accepted in the refactor preview, is on disk; the dropped edit is not.
    let a = std::fs::read_to_string(ws.join("a.rs")).unwrap();
    assert_eq!(
        a,
        "fn first() -> u32 {\n    42\n}\n\nfn main() {\n    first();\n}\n"
    );
    assert_eq!(std::fs::read_to_string(ws.join("b.rs")).unwrap(), B_RS);

    // Each editor action reached the model, with what the server makes of it.
    let bodies: Vec<String> = model.requests().iter().map(|r| r.to_string()).collect();
    for needle in [
        "alpha give back",
        "Explain the symbol `alpha`",
        "rename alpha to first",
        "Slow question about beta",
        "Keyed question about beta",
    ] {
        assert!(
            bodies.iter().any(|b| b.contains(needle)),
            "no model request carried {needle:?}"
        );
    }
    // The key set with "RLM: Set API Key" reached the model server, from the server process's
    // environment (the driver checked it is in no settings or log file).
    let heads = model.request_heads();
    let keyed = bodies
        .iter()
        .position(|b| b.contains("Keyed question"))
        .unwrap();
    assert!(
        heads[keyed]
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-e2e-not-a-real-key"),
        "the ask after Set API Key sent no key: {}",
        heads[keyed]
    );
    assert!(
        !heads[..keyed].iter().any(|h| h.contains("sk-e2e")),
        "a key was sent before it was set"
    );
    // The explain request names the definition site the index found (the cursor was on alpha).
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("Explain the symbol `alpha`") && b.contains("a.rs:1")),
        "the explain request lacks the definition site"
    );
    model.stop();
}
