//! Workspaces as they are found on disk, through the real binary (`rlm-lsp index`, `ask`, `serve`)
//! or the walk itself: symbolic-link loops and special files, files deleted or unreadable while
//! the walk reads them, file names that are not UTF-8, a 5 GB tree under `--max-total-bytes`, a
//! file changed on disk between a refactor plan and its application, and a cache directory that
//! cannot be written. Every wait is bounded only to turn a hang into a failure.

#![allow(clippy::print_stderr)] // notes what could not be checked here

mod support;

use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::workspace::{SkipReason, WalkOptions, walk};
use serde_json::{Value, json};
use std::io::BufReader;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rlm-lsp");

fn note(message: &str) {
    eprintln!("[odd_workspaces] {message}");
}

/// `rlm-lsp` with no model settings from the environment and a cache of its own.
fn rlm(cache: &Path) -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "RLM_BASE_URL",
        "RLM_MODEL",
        "RLM_SUB_BASE_URL",
        "RLM_SUB_MODEL",
        "RLM_API_KEY_ENV",
        "RLM_LOG",
    ] {
        c.env_remove(var);
    }
    c.env("RLM_CACHE_DIR", cache);
    c
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `rlm-lsp index --json --no-parse` of `ws`.
fn index(ws: &Path, extra: &[&str]) -> Value {
    let o = index_cmd(ws, extra).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn index_cmd(ws: &Path, extra: &[&str]) -> Command {
    let mut c = rlm(&ws.join("../cache"));
    c.args(["index", "--json", "--no-parse", "--workspace"])
        .arg(ws)
        .args(extra);
    c
}

fn skipped(v: &Value) -> Vec<(String, String)> {
    v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn symlink_loops_and_special_files_end_the_walk_with_the_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "src/main.rs", "fn main() {}\n");
    write(&ws, "src/lib.rs", "pub fn f() {}\n");
    use std::os::unix::fs::symlink;
    symlink(".", ws.join("loop")).unwrap();
    symlink("..", ws.join("src/up")).unwrap();
    symlink("self", ws.join("self")).unwrap();
    symlink("a", ws.join("b")).unwrap();
    symlink("b", ws.join("a")).unwrap();
    symlink("nowhere", ws.join("dangling")).unwrap();
    symlink("src/main.rs", ws.join("main_link.rs")).unwrap();
    // A FIFO: opening it to read would block until a writer comes, which never happens.
    let fifo = ws.join("pipe.rs");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());

    for flags in [&[][..], &["--hidden", "--no-ignore"][..]] {
        let v = index(&ws, flags);
        assert_eq!(v["files"], 2, "{v}");
        assert_eq!(v["skipped"], json!([]), "{v}");
    }
    let snap = walk(&ws, &WalkOptions::default()).unwrap();
    let paths: Vec<&str> = snap.files.iter().map(|f| f.path.as_str()).collect();
    // Links are not followed: no file twice, nothing outside the root, no endless descent.
    assert_eq!(paths, ["src/lib.rs", "src/main.rs"]);
}

#[test]
fn files_deleted_during_the_walk_are_left_out_and_the_rest_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().to_path_buf();
    let n = 3000;
    for i in 0..n {
        write(
            &ws,
            &format!("d{}/f{i:04}.txt", i % 30),
            &format!("file {i}\n"),
        );
    }
    // Odd files are deleted while the walk lists and reads them; even ones stay.
    let deleter = {
        let ws = ws.clone();
        std::thread::spawn(move || {
            for i in (1..n).step_by(2).rev() {
                let _ = std::fs::remove_file(ws.join(format!("d{}/f{i:04}.txt", i % 30)));
            }
        })
    };
    let snap = walk(&ws, &WalkOptions::default()).unwrap();
    deleter.join().unwrap();
    for f in &snap.files {
        let i: usize = f.path[f.path.len() - 8..f.path.len() - 4].parse().unwrap();
        assert_eq!(f.text.as_str(), format!("file {i}\n"), "{}", f.path);
    }
    let kept: Vec<usize> = snap
        .files
        .iter()
        .map(|f| f.path[f.path.len() - 8..f.path.len() - 4].parse().unwrap())
        .collect();
    for i in (0..n).step_by(2) {
        assert!(kept.contains(&i), "f{i:04}.txt was never deleted");
    }
    // A file that vanished is no longer part of the workspace: not a skip to report.
    assert_eq!(snap.stats.skipped, vec![], "{:?}", snap.stats.skipped);
}

/// Whether this process may read files whatever their mode (root, or CAP_DAC_OVERRIDE).
fn reads_everything(probe: &Path) -> bool {
    std::fs::read(probe).is_ok()
}

#[test]
fn unreadable_files_and_directories_are_reported_by_name() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "src/main.rs", "fn main() {}\n");
    write(&ws, "secret.txt", "no\n");
    write(&ws, "locked/inner.rs", "fn hidden() {}\n");
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&ws.join("secret.txt"), 0o000).unwrap();
    mode(&ws.join("locked"), 0o000).unwrap();
    let root = reads_everything(&ws.join("secret.txt"));

    let mut cmd = index_cmd(&ws, &[]);
    if root {
        // Root reads any file whatever its mode: the walk runs without the two capabilities
        // that allow it (dropped from the bounding set before exec), as a normal user would.
        // SAFETY: prctl(2) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                // CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (linux/capability.h).
                for cap in [1 as libc::c_ulong, 2] {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let out = cmd.output();
    mode(&ws.join("locked"), 0o755).unwrap();
    mode(&ws.join("secret.txt"), 0o644).unwrap();
    let o = match out {
        Ok(o) => o,
        Err(e) if root => {
            note(&format!(
                "running as root without CAP_SETPCAP ({e}): unreadable files cannot be made here; not checked"
            ));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"], 1, "{v}");
    let skipped = skipped(&v);
    assert_eq!(
        skipped,
        [
            ("locked".to_string(), "unreadable".to_string()),
            ("secret.txt".to_string(), "unreadable".to_string())
        ],
        "{v}"
    );
    for s in v["skipped"].as_array().unwrap() {
        let error = s["reason"]["error"].as_str().unwrap();
        assert!(error.contains("Permission denied"), "{error}");
    }
}

#[test]
fn file_names_that_are_not_utf8_are_left_out_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "ok.rs", "fn ok() {}\n");
    let bad_file = ws.join(std::ffi::OsStr::from_bytes(b"caf\xe9.rs"));
    let bad_dir = ws.join(std::ffi::OsStr::from_bytes(b"d\xff"));
    let made = std::fs::write(&bad_file, "fn cafe() {}\n")
        .and_then(|()| std::fs::create_dir(&bad_dir))
        .and_then(|()| std::fs::write(bad_dir.join("x.rs"), "fn x() {}\n"));
    if let Err(e) = made {
        note(&format!(
            "this file system refuses names that are not UTF-8 ({e}): not checked"
        ));
        return;
    }
    let v = index(&ws, &[]);
    assert_eq!(v["files"], 1, "{v}");
    assert_eq!(
        skipped(&v),
        [
            ("caf\u{fffd}.rs".to_string(), "non_utf8_name".to_string()),
            ("d\u{fffd}/x.rs".to_string(), "non_utf8_name".to_string())
        ],
        "{v}"
    );
    let o = rlm(&tmp.path().join("cache"))
        .args(["index", "--no-parse", "--workspace"])
        .arg(&ws)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("caf\u{fffd}.rs: file name is not valid UTF-8"),
        "{text}"
    );
}

/// Bytes this process has read through read(2) and friends so far.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_5_gb_tree_is_capped_by_max_total_bytes_without_being_read() {
    const BIG: u64 = 4 * 1024 * 1024; // the default per-file cap: each big file is allowed alone
    const BIG_FILES: usize = 1280; // 5 GiB in all
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    for i in 0..10 {
        write(
            &ws,
            &format!("a/small{i}.rs"),
            &format!("fn small{i}() {{}}\n"),
        );
    }
    std::fs::create_dir_all(ws.join("big")).unwrap();
    for i in 0..BIG_FILES {
        // Sparse: 4 MiB each on paper, no blocks on disk.
        let f = std::fs::File::create(ws.join(format!("big/f{i:04}.rs"))).unwrap();
        f.set_len(BIG).unwrap();
    }
    let cap: u64 = 64 * 1024;

    let before = bytes_read();
    let started = std::time::Instant::now();
    let snap = walk(
        &ws,
        &WalkOptions {
            max_total_bytes: cap,
            ..WalkOptions::default()
        },
    )
    .unwrap();
    let read = bytes_read() - before;
    note(&format!(
        "5 GiB tree ({BIG_FILES} sparse files of 4 MiB, 10 small ones) capped at {cap} bytes: \
         walked in {:.0} ms, {read} bytes read by this process meanwhile",
        started.elapsed().as_secs_f64() * 1e3
    ));
    assert_eq!(snap.files.len(), 10);
    assert!(snap.total_bytes() <= cap);
    let capped = snap
        .stats
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::TotalCapReached { cap })
        .count();
    assert_eq!(capped, BIG_FILES);
    // Other tests of this binary read a little meanwhile; 5 GiB is far beyond that.
    assert!(read < 256 * 1024 * 1024, "the walk read {read} bytes");

    // The command line says so.
    let v = index(&ws, &["--max-total-bytes", &cap.to_string()]);
    assert_eq!(v["files"], 10);
    assert_eq!(v["skipped_by_reason"]["total_cap_reached"], BIG_FILES);
    let o = rlm(&tmp.path().join("cache"))
        .args([
            "index",
            "--no-parse",
            "--max-total-bytes",
            &cap.to_string(),
            "--workspace",
        ])
        .arg(&ws)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "skipped: {BIG_FILES} (total_cap_reached {BIG_FILES})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "big/f0000.rs: total size cap of {cap} bytes reached"
        )),
        "{text}"
    );
}

/// A language server over stdio with a scripted model; answers `workspace/applyEdit` with
/// `applied: true` and counts those requests.
struct Lsp {
    child: Child,
    w: ChildStdin,
    r: BufReader<ChildStdout>,
    next: i64,
    apply_edits: usize,
}

impl Lsp {
    fn start(ws: &Path, cache: &Path, base_url: &str) -> Lsp {
        let mut child = rlm(cache)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let w = child.stdin.take().unwrap();
        let r = BufReader::new(child.stdout.take().unwrap());
        let mut lsp = Lsp {
            child,
            w,
            r,
            next: 0,
            apply_edits: 0,
        };
        let uri = format!("file://{}", ws.canonicalize().unwrap().display());
        let init = lsp.request(
            "initialize",
            json!({"processId": null, "rootUri": uri, "capabilities": {},
                   "workspaceFolders": [{"uri": uri, "name": "ws"}],
                   "initializationOptions": {"baseUrl": base_url, "model": "scripted",
                                             "responseCache": "off"}}),
        );
        assert!(init["result"]["capabilities"].is_object(), "{init}");
        lsp.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        lsp
    }

    fn send(&mut self, msg: &Value) {
        support::write_frame_blocking(&mut self.w, msg);
    }

    fn read(&mut self) -> Value {
        support::read_frame_blocking(&mut self.r)
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.read();
            if m.get("method").is_some() && m.get("id").is_some() {
                let result = if m["method"] == "workspace/applyEdit" {
                    self.apply_edits += 1;
                    json!({"applied": true})
                } else {
                    Value::Null
                };
                self.send(&json!({"jsonrpc": "2.0", "id": m["id"], "result": result}));
            } else if m["id"] == id {
                return m;
            }
        }
    }

    fn command(&mut self, command: &str, argument: Value) -> Value {
        self.request(
            "workspace/executeCommand",
            json!({"command": command, "arguments": [argument]}),
        )
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_file_changed_on_disk_after_the_plan_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "src/a.rs", "pub fn alpha() -> u32 {\n    42\n}\n");
    write(&ws, "src/b.rs", "fn main() {\n    alpha();\n}\n");
    let rename = "```repl\nprint(rename_symbol(\"alpha\", \"alpha2\"))\n```\n";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(ScriptedServer::start(
            [rename, "FINAL(Renamed.)", rename, "FINAL(Renamed.)"]
                .map(|s| Step::Reply(s.into()))
                .to_vec(),
            SubRule::Echo,
        ))
        .unwrap();
    let mut lsp = Lsp::start(&ws, &tmp.path().join("cache"), &server.base_url());
    let plan = |lsp: &mut Lsp| {
        let r = lsp.command(
            "rlm.planRefactor",
            json!({"instruction": "rename alpha to alpha2"}),
        );
        r["result"]["planId"]
            .as_str()
            .unwrap_or_else(|| panic!("no plan: {r}"))
            .to_string()
    };

    // Changed on disk behind the server's back: no buffer holds it, no watched-file event came.
    let id = plan(&mut lsp);
    let b = ws.join("src/b.rs");
    std::fs::write(&b, "fn main() {\n    alpha(); // edited meanwhile\n}\n").unwrap();
    let r = lsp.command("rlm.applyPlan", json!({"id": id}));
    assert_eq!(r["result"]["applied"], false, "{r}");
    let why = r["result"]["failureReason"].as_str().unwrap();
    assert!(
        why.contains("changed since the plan was made: src/b.rs"),
        "{why}"
    );
    assert_eq!(lsp.apply_edits, 0, "nothing was sent to the editor");

    // Unchanged since its plan: sent to the editor.
    std::fs::write(&b, "fn main() {\n    alpha();\n}\n").unwrap();
    let id = plan(&mut lsp);
    let r = lsp.command("rlm.applyPlan", json!({"id": id}));
    assert_eq!(r["result"]["applied"], true, "{r}");
    assert_eq!(lsp.apply_edits, 1);
}

#[test]
fn an_unwritable_cache_directory_costs_the_cache_not_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "notes.txt", "hello world\n");
    // Under a regular file: no one can create it, root included.
    std::fs::write(tmp.path().join("file"), "").unwrap();
    let cache = tmp.path().join("file/cache");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(ScriptedServer::start(
            vec![
                Step::Reply(
                    "```repl\nprint(llm_query_batched(['one', 'two', 'three']))\n```".into(),
                ),
                Step::Reply("FINAL(Three sub-calls answered.)".into()),
            ],
            SubRule::Echo,
        ))
        .unwrap();
    let o: Output = rlm(&cache)
        .args([
            "ask",
            "--model",
            "scripted",
            "--base-url",
            &server.base_url(),
        ])
        .arg("--workspace")
        .arg(&ws)
        .arg("What do the notes say?")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Three sub-calls answered."),
        "{err}"
    );
    let subs = server
        .requests()
        .iter()
        .filter(|r| !r["messages"].to_string().contains("\"system\""))
        .count();
    assert_eq!(subs, 3, "three sub-calls, none from a cache");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot write to the cache directory"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("sub-call answers are not cached"),
        "{err}"
    );
}
