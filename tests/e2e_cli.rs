//! The real `rlm-lsp` binary from the command line: bad input gets a clear message and a
//! non-zero exit, `index` reports what it skipped, and `ask` works end to end against a scripted
//! model server (the real local model has its own test, `e2e_local_model`).

use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use std::process::{Command, Output};

fn rlm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    for var in [
        "RLM_BASE_URL",
        "RLM_MODEL",
        "RLM_SUB_BASE_URL",
        "RLM_SUB_MODEL",
        "RLM_API_KEY_ENV",
    ] {
        c.env_remove(var);
    }
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn workspace(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, bytes) in files {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    dir
}

#[test]
fn missing_workspace_is_a_clear_error() {
    let o = rlm()
        .args(["ask", "--workspace", "/no/such/dir", "q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: workspace /no/such/dir does not exist"
    );
}

#[test]
fn empty_workspace_is_a_clear_error() {
    let dir = workspace(&[("blob.bin", b"\0\0\0")]);
    let o = rlm()
        .args(["ask", "--workspace"])
        .arg(dir.path())
        .arg("q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("has no text files to ask about (1 skipped"),
        "{err}"
    );
}

#[test]
fn unreachable_model_server_says_what_to_do() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = workspace(&[("a.txt", b"hello\n")]);
    let o = rlm()
        .args(["ask", "-q", "--model", "m", "--workspace"])
        .arg(dir.path())
        .arg("q")
        .env("RLM_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("no model server at http://127.0.0.1:{port}/v1")),
        "{err}"
    );
    assert!(err.contains("RLM_BASE_URL"), "{err}");
}

#[test]
fn api_key_variable_that_is_not_set() {
    let dir = workspace(&[("a.txt", b"hello\n")]);
    let o = rlm()
        .args([
            "ask",
            "-q",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ])
        .args(["--api-key-env", "RLM_TEST_SURELY_UNSET_KEY", "--workspace"])
        .arg(dir.path())
        .arg("q")
        .env_remove("RLM_TEST_SURELY_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("export RLM_TEST_SURELY_UNSET_KEY=<your key>"),
        "{err}"
    );
}

#[test]
fn index_reports_skipped_and_lossy_files() {
    let big = vec![b'x'; 2048];
    let dir = workspace(&[
        ("src/main.rs", b"fn main() {}\n"),
        ("latin1.txt", b"caf\xe9\n"),
        ("image.png", b"\x89PNG\0\0"),
        ("big.log", &big),
    ]);
    // A 50 MB file (sparse, so the test stays cheap) is skipped by the default cap, not read.
    let huge = std::fs::File::create(dir.path().join("dump.sql")).unwrap();
    huge.set_len(50 * 1024 * 1024).unwrap();
    let o = rlm()
        .args(["index", "--workspace"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("dump.sql: too large (52428800 bytes > cap of 4194304 bytes)"),
        "{}",
        stdout(&o)
    );
    std::fs::remove_file(dir.path().join("dump.sql")).unwrap();
    let o = rlm()
        .args(["index", "--max-file-bytes", "1024", "--workspace"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("root "), "{out}");
    // Without the timing line, which varies.
    let body: String = out
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("time: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body,
        "indexed: 2 files, 20 bytes, about 5 tokens\n\
         definitions: 1, chunks: 2\n  \
         rust: 1 files, 13 bytes, 1 definitions (function 1)\n  \
         text: 1 files, 7 bytes, 0 definitions\n\
         decoded lossily (invalid UTF-8): 1\n  latin1.txt\n\
         skipped: 2 (binary 1, too_large 1)\n  \
         big.log: too large (2048 bytes > cap of 1024 bytes)\n  image.png: binary\n"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("time: walk and read "),
        "{out}"
    );

    // --json: a `languages` object keyed by language name, and skips by reason.
    let o = rlm()
        .args(["index", "--json", "--max-file-bytes", "1024", "--workspace"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["languages"]["rust"]["files"], 1);
    assert_eq!(v["languages"]["rust"]["definitions"], 1);
    assert_eq!(v["skipped_by_reason"]["binary"], 1);
    assert_eq!(v["files"], 2);
    assert!(v["phases_ms"]["walk"].as_f64().is_some());
}

#[test]
fn ask_prints_markdown_then_a_summary_and_writes_a_trajectory() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(ScriptedServer::start(
            vec![
                Step::Reply(
                    "```repl\nprint([p for p in context if 'needle' in context[p]])\n```".into(),
                ),
                Step::Reply("FINAL(The needle is in `b.txt:1`.)".into()),
            ],
            SubRule::Echo,
        ))
        .unwrap();
    let dir = workspace(&[("a.txt", b"hay\n"), ("b.txt", b"needle\n")]);
    let out_dir = tempfile::tempdir().unwrap();
    let traj2 = out_dir.path().join("run.jsonl");
    let o = rlm()
        .args([
            "ask",
            "-q",
            "--base-url",
            &server.base_url(),
            "--trajectory",
        ])
        .arg(&traj2)
        .arg("--workspace")
        .arg(dir.path())
        .arg("Where is the needle?")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("The needle is in `b.txt:1`."));
    assert_eq!(lines.next(), Some(""));
    let summary = lines.next().unwrap();
    assert!(
        summary.starts_with("2 iterations, 0 sub-calls, root scripted: "),
        "{summary}"
    );
    assert_eq!(lines.next(), None);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&traj2)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The model's cell (the engine's first search is turn 0).
    let cell = events
        .iter()
        .find(|e| e["type"] == "code_cell" && e["iteration"] != 0)
        .unwrap();
    assert_eq!(cell["stdout"], "['b.txt']\n");
    assert_eq!(events.last().unwrap()["type"], "run_end");

    // --replay re-runs the recording without any model: the same code, the same answer.
    let o = rlm()
        .args(["ask", "-q", "--json", "--replay"])
        .arg(&traj2)
        .arg("--workspace")
        .arg(dir.path())
        .arg("Where is the needle?")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["answer"], "The needle is in `b.txt:1`.");
    assert_eq!(v["iterations"], 2);

    // --json: one object with the answer in `answer`.
    let server = rt
        .block_on(ScriptedServer::start(
            vec![Step::Reply("```repl\nFINAL(len(context))\n```".into())],
            SubRule::Echo,
        ))
        .unwrap();
    let o = rlm()
        .args([
            "ask",
            "-q",
            "--json",
            "--base-url",
            &server.base_url(),
            "--workspace",
        ])
        .arg(dir.path())
        .arg("How many files?")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["answer"], "2");
    assert_eq!(v["iterations"], 1);
    assert_eq!(v["usage"][0]["role"], "root");
}

/// A copy of a real crate this project depends on (memchr, unpacked by cargo when the project
/// was built; its version from Cargo.lock), to refactor.
fn memchr_copy() -> tempfile::TempDir {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"memchr\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    let src = std::fs::read_dir(format!("{home}/registry/src"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join(format!("memchr-{version}")))
        .find(|p| p.is_dir())
        .expect("memchr's sources, unpacked by cargo");
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path| {
        for entry in walk(from) {
            let rel = entry.strip_prefix(&src).unwrap();
            let to = dir.path().join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&entry, &to).unwrap();
        }
    };
    copy(&src);
    dir
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `rlm-lsp refactor` on a real crate: `--diff` prints the plan's diff and writes nothing;
/// `--apply` writes it; `--apply` refuses, naming the file, when a file changed on disk while
/// the model was planning.
#[test]
fn refactor_prints_a_diff_applies_it_and_refuses_a_changed_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let script = |final_delay_ms: u64| {
        rt.block_on(ScriptedServer::start(
            vec![
                Step::Reply(
                    "I will rename it everywhere.\n```repl\nprint(rename_symbol(\"memrchr3\", \"memrchr3_rev\"))\n```\n".into(),
                ),
                Step::Delayed(
                    std::time::Duration::from_millis(final_delay_ms),
                    "FINAL(Renamed `memrchr3` to `memrchr3_rev`.)".into(),
                ),
            ],
            SubRule::Echo,
        ))
        .unwrap()
    };
    let dir = memchr_copy();
    let lib = dir.path().join("src/memchr.rs");
    let before = std::fs::read_to_string(&lib).unwrap();
    let refactor = |server: &ScriptedServer, flag: &str| {
        rlm()
            .args([
                "refactor",
                "-q",
                flag,
                "--base-url",
                &server.base_url(),
                "--workspace",
            ])
            .arg(dir.path())
            .arg("rename memrchr3 to memrchr3_rev")
            .spawn_output()
    };

    let server = script(0);
    let o = refactor(&server, "--diff").wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let diff = stdout(&o);
    assert!(
        diff.contains("--- a/src/memchr.rs\n+++ b/src/memchr.rs"),
        "{diff}"
    );
    assert!(
        diff.contains("-pub fn memrchr3(") && diff.contains("+pub fn memrchr3_rev("),
        "{diff}"
    );
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        before,
        "--diff writes nothing"
    );

    // A file changed while the model plans: --apply refuses and names it.
    let server = script(3000);
    let child = refactor(&server, "--apply");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.requests().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the model was never asked twice"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::write(&lib, format!("{before}// edited meanwhile\n")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("not applied: src/memchr.rs changed on disk"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&lib, &before).unwrap();

    let server = script(0);
    let o = refactor(&server, "--apply").wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let after = std::fs::read_to_string(&lib).unwrap();
    assert!(after.contains("pub fn memrchr3_rev(") && !after.contains("pub fn memrchr3("));
    let naive = std::fs::read_to_string(dir.path().join("src/tests/memchr/naive.rs")).unwrap();
    assert!(naive.contains("fn memrchr3_rev("), "every file was written");
}

trait SpawnOutput {
    fn spawn_output(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    /// Spawns with stdout and stderr captured, to read with `wait_with_output`.
    fn spawn_output(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// `rlm-lsp explain PATH:LINE[:COL]`: the symbol the line defines (or the one under the
/// column), explained by a run that is told where the index says it is defined.
#[test]
fn explain_takes_a_path_and_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(ScriptedServer::start(
            vec![Step::Reply(
                "FINAL(`alpha` returns 42; `main` calls it at a.rs:5.)".into(),
            )],
            SubRule::Echo,
        ))
        .unwrap();
    let dir = workspace(&[(
        "a.rs",
        b"pub fn alpha() -> u32 {\n    42\n}\nfn main() {\n    alpha();\n}\n",
    )]);
    let o = rlm()
        .args([
            "explain",
            "-q",
            "--json",
            "--base-url",
            &server.base_url(),
            "--workspace",
        ])
        .arg(dir.path())
        .arg("a.rs:1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["symbol"], "alpha");
    assert_eq!(v["citations"][0]["verified"], true, "{v}");
    let asked = &server.requests()[0]["messages"][1]["content"];
    assert!(
        asked.as_str().unwrap().contains("defined at a.rs:1"),
        "{asked}"
    );
    let o = rlm()
        .args(["explain", "-q", "--workspace"])
        .arg(dir.path())
        .arg("a.rs")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("expected PATH:LINE or PATH:LINE:COL"),
        "{}",
        stderr(&o)
    );
}
