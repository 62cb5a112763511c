//! Soak: the language server as an editor keeps it for days. In process (over a duplex pipe,
//! with the scripted model server and the real REPL worker), 300 consecutive asks with hover
//! after each, an explain every 10th, a refactor plan every 25th and a run cancelled mid-cell
//! every 15th (once its root model has replied: its cell about to run, or sleeping). Resident
//! memory, open descriptors, threads and child processes after all of them stay within a small
//! bound of the figures after the first 10 (printed). No worker outlives
//! the server, in process or as `rlm-lsp serve` ended by `exit` or by `kill -9`, and what a
//! killed server leaves in the temp directory the next one removes.
//!
//! The figures are of this test process, which holds the server and the scripted model server;
//! the tests here run one at a time (`SERIAL`) so that the other tests' processes are not
//! counted.

mod support;

use rlm_lsp::engine::Models;
use rlm_lsp::llm::RetryPolicy;
use rlm_lsp::llm::scripted::{KeyedStep, ScriptedServer, Step, SubRule};
use rlm_lsp::lsp::{ServerOptions, serve};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{
    LspClient, ProcFigures, SMALL_WORKSPACE, alive, cell, descendants, note, poll, repl_workers,
    root_model_replied, write_workspace,
};
use tokio::io::{AsyncRead, AsyncWrite};

/// One test at a time: each counts this process's children and descriptors.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ASKS: usize = 300;

/// A cell that sleeps: a run cancelled while it runs kills its worker.
fn sleeping_cell() -> Step {
    cell("import time\ntime.sleep(120)")
}

fn uri(root: &Path, rel: &str) -> String {
    format!("file://{}", root.join(rel).display())
}

/// Keys are closed by `z` so that no key is a prefix of another (`q1z` is not in `q10z`).
fn ask_key(i: usize) -> String {
    format!("soakq{i:03}z")
}
fn cancel_key(i: usize) -> String {
    format!("soakcancel{i:03}z")
}
fn refactor_key(i: usize) -> String {
    format!("soakrefactor{i:03}z")
}

const EXPLAIN_KEY: &str = "Explain the symbol `alpha`";

fn explains(i: usize) -> bool {
    i % 10 == 5
}
fn refactors(i: usize) -> bool {
    i % 25 == 12
}
fn cancels(i: usize) -> bool {
    i % 15 == 7
}

/// The script of the whole soak, in the order the runs come; each run's steps are keyed by its
/// question, so a step a cancelled run never asked for is never taken by another.
fn script() -> Vec<KeyedStep> {
    let plan = "Rename alpha to first.\n```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n\
                =======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n";
    let mut steps = Vec::new();
    for i in 0..ASKS {
        steps.push((
            Some(ask_key(i)),
            cell("n = len(context)\nFINAL(f'{n} files')"),
        ));
        if explains(i) {
            steps.push((
                Some(EXPLAIN_KEY.into()),
                Step::Reply("FINAL(alpha returns 42; main calls it at a.rs:6)".into()),
            ));
        }
        if refactors(i) {
            steps.push((Some(refactor_key(i)), cell(&format!("FINAL({plan:?})"))));
        }
        if cancels(i) {
            steps.push((Some(cancel_key(i)), sleeping_cell()));
        }
    }
    steps
}

/// Starts a run of `command` with `argument` and cancels it once its root model has replied.
async fn cancel_mid_cell<R, W>(c: &mut LspClient<R, W>, id: &str, argument: Value)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let req = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [argument]}),
        )
        .await;
    c.read_until(|m| root_model_replied(m, id)).await;
    let r = c.command("rlm.cancel", json!({"id": id})).await;
    assert_eq!(r["result"]["cancelled"], true, "{r}");
    let r = c.wait_response(req).await;
    assert_eq!(r["error"]["code"], -32800, "a cancelled run: {r}");
}

/// This process at rest: once no worker is left, its figures.
async fn at_rest() -> ProcFigures {
    let me = std::process::id();
    poll(
        "the workers of ended runs exit",
        Duration::from_secs(60),
        || descendants(me).is_empty(),
    )
    .await;
    ProcFigures::of(me)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_asks_leave_memory_descriptors_threads_and_processes_as_they_were() {
    let _serial = SERIAL.lock().await;
    let (_dir, root) = write_workspace(SMALL_WORKSPACE);
    let answers = tempfile::tempdir().unwrap();
    let scripted = ScriptedServer::start_keyed(script(), SubRule::Echo)
        .await
        .unwrap();
    let opts = ServerOptions {
        worker_exe: Some(env!("CARGO_BIN_EXE_rlm-lsp").into()),
        models: Some(Models::same(scripted.client().with_retry(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }))),
        answers_dir: Some(answers.path().to_path_buf()),
        ..ServerOptions::default()
    };
    let (w, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, r) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(serve(server_in, server_out, opts));
    let mut c = LspClient::new(r, w);
    c.initialize(&root, json!({"maxIterations": 3})).await;
    let a_rs = uri(&root, "a.rs");

    let started = Instant::now();
    let mut first = None;
    let (mut explained, mut planned, mut cancelled) = (0, 0, 0);
    for i in 0..ASKS {
        let r = c
            .command(
                "rlm.ask",
                json!({"question": format!("How many files? ({})", ask_key(i))}),
            )
            .await;
        assert_eq!(r["result"]["answer"], "2 files", "ask {i}: {r}");
        let hover = c
            .request(
                "textDocument/hover",
                json!({"textDocument": {"uri": a_rs}, "position": {"line": 5, "character": 6}}),
            )
            .await;
        let text = hover["result"]["contents"]["value"].as_str().unwrap_or("");
        assert!(text.contains("fn alpha() -> u32"), "hover {i}: {hover}");
        if explains(i) {
            let r = c
                .command(
                    "rlm.explain",
                    json!({"uri": a_rs, "position": {"line": 5, "character": 6}}),
                )
                .await;
            assert_eq!(r["result"]["symbol"], "alpha", "explain {i}: {r}");
            explained += 1;
        }
        if refactors(i) {
            let r = c
                .command(
                    "rlm.planRefactor",
                    json!({"instruction": format!("rename alpha to first ({})", refactor_key(i))}),
                )
                .await;
            assert!(r["result"]["edit"]["changes"].is_object(), "plan {i}: {r}");
            planned += 1;
        }
        if cancels(i) {
            let id = format!("cancel-{i}");
            let question = format!("Wait. ({})", cancel_key(i));
            cancel_mid_cell(&mut c, &id, json!({"question": question, "id": id})).await;
            cancelled += 1;
        }
        // Notifications are only kept for the cancels above; an editor does not keep them.
        c.notifications.clear();
        if i == 9 {
            first = Some(at_rest().await);
        }
    }
    let elapsed = started.elapsed();
    let first = first.unwrap();
    let last = at_rest().await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    note(
        "lsp_soak",
        &format!(
            "{ASKS} asks, {explained} explains, {planned} refactor plans, {cancelled} runs \
             cancelled mid-cell, {ASKS} hovers in {:.0} s; after 10 asks: {first}; after \
             {ASKS}: {last}; drift: rss {:+.1} MiB, fds {:+}, threads {:+}",
            elapsed.as_secs_f64(),
            mib(last.rss_kib) - mib(first.rss_kib),
            last.fds as i64 - first.fds as i64,
            last.threads as i64 - first.threads as i64,
        ),
    );
    // A leak of one descriptor, thread or worker per run shows as hundreds; noise is a few (the
    // connection pool, the runtime's blocking threads coming and going).
    assert!(last.fds <= first.fds + 8, "descriptors: {first} -> {last}");
    assert!(
        last.threads <= first.threads + 8,
        "threads: {first} -> {last}"
    );
    assert_eq!(last.children, 0, "{last}");
    // Measured: +3 MiB. 24 MiB is what keeping 85 KiB a run would add over 290 runs.
    assert!(
        last.rss_kib <= first.rss_kib + (24 << 10),
        "resident memory: {first} -> {last}"
    );

    c.shutdown().await;
    server.await.unwrap();
    assert!(descendants(std::process::id()).is_empty());
}

/// `rlm-lsp serve` on `root`, its model the scripted server, its temp directory `tmp`; its
/// stderr is dropped.
fn spawn_serve(root: &Path, tmp: &Path, scripted: &ScriptedServer) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rlm-lsp"))
        .arg("serve")
        .current_dir(root)
        .env("RLM_BASE_URL", scripted.base_url())
        .env("RLM_MODEL", "scripted")
        .env("RLM_CACHE_DIR", tmp.join("cache"))
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

type ServeClient = LspClient<tokio::process::ChildStdout, tokio::process::ChildStdin>;

/// Starts `rlm-lsp serve` and initializes it.
async fn start_serve(
    root: &Path,
    tmp: &Path,
    scripted: &ScriptedServer,
) -> (tokio::process::Child, ServeClient) {
    let mut server = spawn_serve(root, tmp, scripted);
    let mut c = LspClient::new(server.stdout.take().unwrap(), server.stdin.take().unwrap());
    c.initialize(root, json!({"maxIterations": 3})).await;
    (server, c)
}

/// Starts `rlm-lsp serve`, and a run whose cell sleeps; returns the server, its client and the
/// worker running the cell.
async fn serve_with_a_sleeping_cell(
    root: &Path,
    tmp: &Path,
    scripted: &ScriptedServer,
) -> (tokio::process::Child, ServeClient, Vec<u32>) {
    let (server, mut c) = start_serve(root, tmp, scripted).await;
    c.start_request(
        "workspace/executeCommand",
        json!({"command": "rlm.ask", "arguments": [{"question": "Wait. (soaksleep)", "id": "s"}]}),
    )
    .await;
    c.read_until(|m| root_model_replied(m, "s")).await;
    let running = repl_workers(server.id().unwrap());
    assert_eq!(running.len(), 1, "one worker for the run: {running:?}");
    (server, c, running)
}

/// Waits until the processes `pids` are gone, and says how long after `since` they were.
async fn gone(pids: &[u32], since: Instant, what: &str) {
    poll(what, Duration::from_secs(30), || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    note(
        "lsp_soak",
        &format!("{what} gone {:.2} s after", since.elapsed().as_secs_f64()),
    );
}

/// The directories of the context blob and workers (`rlm-*`) in `tmp`.
fn temp_dirs(tmp: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rlm-"))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_outlives_rlm_lsp_serve_after_exit_or_kill_9() {
    let _serial = SERIAL.lock().await;
    let (_dir, root) = write_workspace(SMALL_WORKSPACE);
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let scripted = ScriptedServer::start_keyed(
        vec![
            (Some("soaksleep".into()), sleeping_cell()),
            (Some("soaksleep".into()), sleeping_cell()),
            (Some("soakquick".into()), cell("FINAL('done')")),
        ],
        SubRule::Echo,
    )
    .await
    .unwrap();

    // `shutdown` and `exit` during a run: the server ends (its stdin still open) and so does
    // the worker; their temp directories go with them.
    let (mut server, mut c, running) = serve_with_a_sleeping_cell(&root, tmp, &scripted).await;
    c.shutdown().await;
    let ended = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("rlm-lsp serve ends after exit, its input still open")
        .unwrap();
    assert!(status.success(), "{status}");
    gone(&running, ended, "exit during a run: server and worker").await;
    assert_eq!(temp_dirs(tmp), Vec::<PathBuf>::new());
    drop(c);

    // `kill -9` during a run: the worker notices its parent is gone and ends its process group.
    let (mut server, c, running) = serve_with_a_sleeping_cell(&root, tmp, &scripted).await;
    server.start_kill().unwrap();
    let killed = Instant::now();
    server.wait().await.unwrap();
    gone(&running, killed, "kill -9 during a run: the worker").await;
    drop(c);
    // What it leaves, the context blob and the worker's directory, the next start removes.
    let left = temp_dirs(tmp);
    assert!(left.len() >= 2, "the blob's and the worker's: {left:?}");
    let (mut server, mut c) = start_serve(&root, tmp, &scripted).await;
    let r = c
        .command("rlm.ask", json!({"question": "Done? (soakquick)"}))
        .await;
    assert_eq!(r["result"]["answer"], "done", "{r}");
    poll(
        "the next start removes what a killed server left",
        Duration::from_secs(30),
        || temp_dirs(tmp).iter().all(|d| !left.contains(d)),
    )
    .await;
    c.shutdown().await;
    server.wait().await.unwrap();
    assert_eq!(temp_dirs(tmp), Vec::<PathBuf>::new());
}
