//! The shared local model server against the real llama-server and the real Qwen2.5-Coder model:
//! sharing between users, shutdown after the last one, and recovery from crashes (SIGKILL) of a
//! user, of the keeper, and from a stale state file. No mocks.
//!
//! Needs `scripts/setup.sh` to have installed the model and llama-server (found like rlm-lsp finds
//! them: `RLM_LLAMA_SERVER`/`RLM_LOCAL_MODEL`, PATH, the repository's `.rlm/`, the user cache).
//! Each test keeps its lock and state files in its own temporary directory and loads the model
//! once or twice (a few seconds from the page cache); the tests run one at a time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rlm_lsp::llm::local::{LocalServer, LocalServerConfig, LocalServerHandle};

/// One llama-server at a time: the machine has few cores and each server takes ~1 GB.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[allow(clippy::print_stderr)]
fn note(message: &str) {
    eprintln!("[local_model] {message}");
}

/// The real model and llama-server, with state files under `state_dir`.
fn config(state_dir: &Path, ctx: Option<u32>) -> LocalServerConfig {
    let mut config = LocalServerConfig::from_env().unwrap_or_else(|e| {
        panic!("the local model is not installed: run scripts/setup.sh (CI must install it)\n{e}")
    });
    config.keeper_exe = PathBuf::from(env!("CARGO_BIN_EXE_rlm-lsp"));
    config.state_dir = state_dir.to_path_buf();
    config.startup_timeout = Duration::from_secs(120);
    if let Some(ctx) = ctx {
        config.ctx_size = ctx;
    }
    config
}

fn acquire(config: &LocalServerConfig) -> LocalServerHandle {
    let start = Instant::now();
    let handle = LocalServer::acquire_blocking(config).unwrap_or_else(|e| panic!("{e}"));
    note(&format!(
        "acquired {} (keeper {}, llama-server {}) in {:.1}s",
        handle.base_url(),
        handle.keeper_pid(),
        handle.server_pid(),
        start.elapsed().as_secs_f64()
    ));
    handle
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

fn wait_gone(pids: &[u32], within: Duration) -> Duration {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            start.elapsed() < within,
            "processes {:?} still alive after {within:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Field `n` (0 = state) after the command name in /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(n)?
        .parse()
        .ok()
}

fn parent_pid(pid: u32) -> Option<u32> {
    stat_field(pid, 1)
}

fn session_id(pid: u32) -> Option<u32> {
    stat_field(pid, 3)
}

/// Live processes whose command line satisfies `pred`.
fn processes(pred: impl Fn(u32, &[String]) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid) && pred(*pid, &cmdline(*pid)))
        .collect()
}

/// Keepers whose state directory lies under `state_dir`.
fn keepers_under(state_dir: &Path) -> Vec<u32> {
    let dir = state_dir.to_string_lossy().into_owned();
    processes(|_, args| {
        args.iter().any(|a| a == "__llama-keeper") && args.iter().any(|a| a.starts_with(&dir))
    })
}

/// llama-server processes whose parent is one of `keepers`.
fn servers_of(keepers: &[u32]) -> Vec<u32> {
    processes(|pid, args| {
        args.first().is_some_and(|a| a.ends_with("llama-server"))
            && parent_pid(pid).is_some_and(|p| keepers.contains(&p))
    })
}

fn health(port: u16) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A real chat completion through the OpenAI-compatible endpoint.
fn chat(handle: &LocalServerHandle, prompt: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/chat/completions", handle.base_url());
    let body = serde_json::json!({
        "model": handle.model_name(),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 24,
        "temperature": 0,
    });
    let start = Instant::now();
    let response: serde_json::Value = runtime.block_on(async {
        let client = reqwest::Client::new();
        // Without the key the server refuses: other local users and web pages cannot use it.
        let refused = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(
            refused.status().as_u16(),
            401,
            "a request without the API key"
        );
        let response = client
            .post(&url)
            .bearer_auth(
                handle
                    .api_key()
                    .expect("this llama-server takes an API key"),
            )
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert!(
            response.status().is_success(),
            "POST {url}: HTTP {}",
            response.status()
        );
        response.json().await.unwrap()
    });
    let text = response["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("not a chat completion: {response}"))
        .to_string();
    note(&format!(
        "chat completion in {:.1}s: {text:?}",
        start.elapsed().as_secs_f64()
    ));
    text
}

#[test]
fn two_users_share_one_server_which_stops_after_the_last_leaves() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // The real defaults (32K context over 2 slots), as rlm-lsp runs it.
    let config = config(tmp.path(), None);

    // Two users at once: one starts the server, the other waits for it and joins.
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| acquire(&config));
        let b = s.spawn(|| acquire(&config));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.port(), b.port());
    assert_eq!(a.keeper_pid(), b.keeper_pid());
    assert_eq!(a.server_pid(), b.server_pid());
    assert_eq!(a.base_url(), format!("http://127.0.0.1:{}/v1", a.port()));
    assert_eq!(a.model_name(), "qwen2.5-coder-1.5b-instruct-q4_k_m");
    assert_eq!(a.context(), (32768, 2));
    let keepers = keepers_under(tmp.path());
    assert_eq!(keepers, vec![a.keeper_pid()], "exactly one keeper");
    // Its own session: a terminal's Ctrl-C or hang-up does not reach it.
    assert_eq!(session_id(a.keeper_pid()), Some(a.keeper_pid()));
    assert_ne!(session_id(a.keeper_pid()), session_id(std::process::id()));
    assert_eq!(
        servers_of(&keepers),
        vec![a.server_pid()],
        "exactly one llama-server"
    );
    let args = cmdline(a.server_pid());
    for expected in [["--host", "127.0.0.1"], ["-np", "2"], ["-c", "32768"]] {
        assert!(
            args.windows(2).any(|w| w == expected),
            "llama-server runs with {expected:?}: {args:?}"
        );
    }

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(a.state_dir()), 0o700);
    assert_eq!(mode(&a.state_dir().join("state.json")), 0o600);
    assert_eq!(mode(&a.state_dir().join("api-key")), 0o600);
    assert!(
        !format!("{a:?}").contains(a.api_key().unwrap()),
        "Debug hides the key"
    );

    let text = chat(
        &a,
        "Write a Python function that returns the sum of two numbers.",
    );
    assert!(!text.trim().is_empty());

    // The first user leaves: the second still has the server.
    drop(a);
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(health(b.port()), Some(200));
    assert!(b.is_alive());

    // The last user leaves: keeper and server are gone, state removed.
    let (keeper, server, dir) = (b.keeper_pid(), b.server_pid(), b.state_dir().to_path_buf());
    drop(b);
    let took = wait_gone(&[keeper, server], Duration::from_secs(8));
    note(&format!(
        "server stopped {:.1}s after the last user left",
        took.as_secs_f64()
    ));
    assert!(!dir.join("state.json").exists());
}

/// Run by `a_killed_user_does_not_leave_the_server_running` in a child process: acquires, reports,
/// and waits to be killed.
#[test]
#[ignore = "helper process started by a_killed_user_does_not_leave_the_server_running"]
fn helper_user_process() {
    let Some(state_dir) = std::env::var_os("RLM_TEST_HELPER_STATE_DIR") else {
        return;
    };
    let handle = acquire(&config(Path::new(&state_dir), Some(4096)));
    let mut out = std::io::stdout();
    writeln!(
        out,
        "READY {} {} {}",
        handle.port(),
        handle.keeper_pid(),
        handle.server_pid()
    )
    .unwrap();
    out.flush().unwrap();
    thread::sleep(Duration::from_secs(600));
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_user_does_not_leave_the_server_running() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), Some(4096));

    // Another process acquires first, so the keeper is its child, and it will be SIGKILLed.
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_user_process", "--ignored", "--nocapture"])
            .env("RLM_TEST_HELPER_STATE_DIR", tmp.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(helper.0.stdout.take().unwrap()).lines();
    let ready = loop {
        let line = lines
            .next()
            .expect("the helper process exited before acquiring the server")
            .unwrap();
        if let Some(rest) = line.strip_prefix("READY ") {
            break rest.to_string();
        }
    };
    let fields: Vec<u32> = ready.split(' ').map(|f| f.parse().unwrap()).collect();
    let (port, keeper, server) = (u16::try_from(fields[0]).unwrap(), fields[1], fields[2]);

    // This process joins the same server, then leaves: the helper is the last user.
    let mine = acquire(&config);
    assert_eq!(
        (mine.port(), mine.keeper_pid(), mine.server_pid()),
        (port, keeper, server)
    );
    assert_eq!(servers_of(&keepers_under(tmp.path())), vec![server]);
    drop(mine);
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(health(port), Some(200), "the helper still uses the server");

    // SIGKILL the last user (which also started the keeper): no orphan is left.
    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    let took = wait_gone(&[keeper, server], Duration::from_secs(8));
    note(&format!(
        "server stopped {:.1}s after its last user was killed",
        took.as_secs_f64()
    ));
    assert!(keepers_under(tmp.path()).is_empty());
}

#[test]
fn killing_the_keeper_kills_llama_server_and_the_next_user_recovers() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), Some(4096));

    let first = acquire(&config);
    let (keeper, server) = (first.keeper_pid(), first.server_pid());
    Command::new("kill")
        .args(["-KILL", &keeper.to_string()])
        .status()
        .unwrap();
    let took = wait_gone(&[keeper, server], Duration::from_secs(5));
    note(&format!(
        "llama-server died {:.1}s after its keeper was killed",
        took.as_secs_f64()
    ));
    assert!(!first.is_alive());
    // The dead keeper's state.json is still there; the next user must start over cleanly.
    assert!(first.state_dir().join("state.json").exists());

    // The async entry point, as rlm-lsp uses it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let second = runtime
        .block_on(LocalServer::acquire_with(config.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(second.keeper_pid(), keeper);
    assert!(second.is_alive());
    assert_eq!(health(second.port()), Some(200));
    let text = chat(&second, "Say hello.");
    assert!(!text.trim().is_empty());

    let (keeper, server) = (second.keeper_pid(), second.server_pid());
    drop(first);
    drop(second);
    wait_gone(&[keeper, server], Duration::from_secs(8));
}

#[test]
fn a_stale_state_file_is_recovered() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), Some(4096));

    // A state file naming a live process that is no keeper (pid reuse: this test process), a dead
    // llama-server, and a port nobody serves.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let dir = config.instance_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stale = serde_json::json!({
        "keeper_pid": std::process::id(),
        "server_pid": dead_pid,
        "port": unused_port,
        "model": config.model,
        "server": config.llama_server,
        "ctx": 4096, "parallel": 2, "threads": 2, "started_at": 0,
    });
    std::fs::write(dir.join("state.json"), stale.to_string()).unwrap();
    std::fs::write(dir.join("keeper.lock"), "999999999").unwrap();

    let handle = acquire(&config);
    assert_ne!(handle.keeper_pid(), std::process::id());
    assert_ne!(handle.port(), 0);
    assert_eq!(health(handle.port()), Some(200));
    let (keeper, server) = (handle.keeper_pid(), handle.server_pid());
    drop(handle);
    wait_gone(&[keeper, server], Duration::from_secs(8));
}

#[test]
fn a_missing_model_fails_with_the_paths_tried_and_the_setup_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), None);
    config.model = tmp.path().join("missing.gguf");
    let err = LocalServer::acquire_blocking(&config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}/missing.gguf", tmp.path().display())),
        "{err}"
    );
    assert!(err.contains("scripts/setup.sh"), "{err}");
    assert!(err.contains("RLM_BASE_URL"), "{err}");
}

#[test]
fn a_keeper_that_cannot_start_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), None);
    // An executable without the hidden subcommand exits at once without starting anything.
    config.keeper_exe = PathBuf::from("/bin/true");
    let err = LocalServer::acquire_blocking(&config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keeper (`/bin/true __llama-keeper`) failed to start"),
        "{err}"
    );
    assert!(err.contains("keeper.log"), "{err}");
    assert!(err.contains("RLM_BASE_URL"), "{err}");
}

#[test]
fn a_broken_model_file_reports_the_server_log() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), None);
    config.model = tmp.path().join("broken.gguf");
    std::fs::write(&config.model, b"this is not a GGUF file").unwrap();
    let start = Instant::now();
    let err = LocalServer::acquire_blocking(&config)
        .unwrap_err()
        .to_string();
    note(&format!(
        "failed in {:.1}s: {err}",
        start.elapsed().as_secs_f64()
    ));
    assert!(
        err.starts_with("llama-server exited before the model was loaded"),
        "{err}"
    );
    assert!(err.contains("llama-server.log"), "{err}");
    assert!(err.contains("broken.gguf"), "{err}");
    assert!(keepers_under(tmp.path()).is_empty());
}
