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
