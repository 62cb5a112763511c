//! The shared local model when it dies: llama-server killed under a run (its keeper starts it
//! again on the same port and the run goes on), the keeper killed under a run (the run ends with
//! a clear error; the next question starts a new keeper, in the CLI and in a long-lived language
//! server), two rlm-lsp processes sharing the model while the first exits, and stale state left
//! by crashed processes.
//!
//! Most tests run the real binaries (rlm-lsp and its keeper) with a stand-in for llama-server: a
//! shell script that execs `rlm-lsp __scripted-model --port PORT SCRIPT` on the port the keeper
//! chose, so a kill and a restart take milliseconds. One test kills the real llama-server serving
//! the real model (installed by `scripts/setup.sh`; like `local_model.rs`, it fails without it,
//! never skips). Every wait has a generous bound that only guards against a hang.

#![allow(clippy::print_stderr)] // reports what it measured

mod support;

use rlm_lsp::llm::local::{LocalServer, LocalServerConfig};
use rlm_lsp::llm::{ChatClient, ChatMessage, Endpoint, Role};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rlm-lsp");
/// Bounds waits that only fail when something hangs.
const HANG: Duration = Duration::from_secs(90);

fn note(message: &str) {
    eprintln!("[local_model_faults] {message}");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG, "still waiting for {what}");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        )
    })
}

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

/// A child process killed when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A workspace, a cache directory, a model file, and a stand-in llama-server serving `script`.
struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new(script: &Value) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        std::fs::create_dir_all(p.join("ws")).unwrap();
        std::fs::write(p.join("ws/notes.txt"), "hello world\n").unwrap();
        std::fs::write(p.join("model.gguf"), "a stand-in needs no weights\n").unwrap();
        std::fs::write(p.join("script.json"), script.to_string()).unwrap();
        std::fs::create_dir_all(p.join("bin")).unwrap();
        let server = p.join("bin/llama-server");
        // The keeper runs `llama-server --help` for the options it knows (none here: no key
        // file), then `llama-server -m MODEL ... --port PORT ...`; exec keeps the pid, so the
        // keeper's PDEATHSIG and a kill of the pid in state.json reach the scripted server.
        std::fs::write(
            &server,
            format!(
                "#!/bin/sh\n[ \"$1\" = --help ] && exit 0\nport=; prev=\nfor a in \"$@\"; do [ \"$prev\" = --port ] && port=$a; prev=$a; done\nexec '{BIN}' __scripted-model --port \"$port\" '{}' \"$@\"\n",
                p.join("script.json").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
        Setup { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn vars(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("RLM_CACHE_DIR", self.path("cache").into()),
            ("RLM_LLAMA_SERVER", self.path("bin/llama-server").into()),
            ("RLM_LOCAL_MODEL", self.path("model.gguf").into()),
            ("RLM_LOCAL_STARTUP_TIMEOUT", "60".into()),
        ]
    }

    /// `rlm-lsp` with the local model as its model (no `RLM_BASE_URL`), this setup's files.
    fn cmd(&self) -> Command {
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
        c.envs(self.vars());
        c
    }

    /// The keeper's state directory for this model, as rlm-lsp computes it.
    fn instance_dir(&self) -> PathBuf {
        let vars = self.vars();
        LocalServerConfig::resolve(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            },
            Path::new(BIN),
        )
        .unwrap()
        .instance_dir()
    }

    fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.instance_dir().join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn pid(&self, field: &str) -> u32 {
        let state = self.state().expect("state.json");
        u32::try_from(state[field].as_u64().unwrap()).unwrap()
    }

    fn keeper_log(&self) -> String {
        std::fs::read_to_string(self.instance_dir().join("keeper.log")).unwrap_or_default()
    }

    /// `rlm-lsp ask QUESTION` in the background, its stderr read line by line.
    fn ask(&self, question: &str) -> Run {
        self.ask_with(self.cmd(), question)
    }

    /// [`Self::ask`] with this command (other variables).
    fn ask_with(&self, mut cmd: Command, question: &str) -> Run {
        let mut child = cmd
            .args(["ask", "--workspace"])
            .arg(self.path("ws"))
            .arg(question)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, all) = (child.stderr.take().unwrap(), stderr.clone());
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Run {
            child: Guard(child),
            lines,
            stderr,
        }
    }

    /// Waits until no keeper of this setup runs (the last user left) and its server is gone.
    fn wait_stopped(&self, keeper: u32, server: u32) {
        wait_until("the keeper and llama-server to stop", || {
            !alive(keeper) && !alive(server)
        });
        assert!(self.state().is_none(), "state.json is removed");
    }
}

/// A background `rlm-lsp ask`.
struct Run {
    child: Guard,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Run {
    /// Waits for a line of stderr containing `text`.
    fn wait_line(&self, text: &str) {
        loop {
            match self.lines.recv_timeout(HANG) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "no stderr line with {text:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    fn finish(mut self) -> (ExitStatus, String, String) {
        let mut out = String::new();
        self.child
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.0.wait().unwrap();
        // The reader thread ends with the pipe; what it read is complete once it is closed.
        while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
        let err = self.stderr.lock().unwrap().clone();
        (status, out, err)
    }
}

/// A two-turn run: turn 1 runs a cell printing `mark`, turn 2 (keyed on that output, so a fresh
/// script after a restart answers it too) is `FINAL(answer)` after `delay_ms`.
fn two_turns(key: &str, mark: &str, answer: &str, delay_ms: u64) -> Vec<Value> {
    vec![
        json!({"when": mark, "reply": format!("FINAL({answer})"), "delay_ms": delay_ms}),
        json!({"when": key, "reply": format!("```repl\nprint('{mark}')\n```")}),
    ]
}

#[test]
fn llama_server_killed_mid_run_is_restarted_and_the_run_goes_on() {
    let setup =
        Setup::new(&json!({"root": two_turns("alpha", "step one", "alpha answered", 1500)}));
    let run = setup.ask("What does alpha do?");
    run.wait_line("turn 1: root model replied");
    // The keeper restarts only a server that had loaded its model: wait until it saw that.
    wait_until("the keeper to see the model loaded", || {
        setup.keeper_log().contains("loaded the model")
    });
    let (keeper, first) = (setup.pid("keeper_pid"), setup.pid("server_pid"));
    kill9(first);
    let (status, out, err) = run.finish();
    // Whether turn 2's request was in flight or not sent yet when the server died, the run
    // goes on (a request in flight is sent again: the real-model test below pins that case).
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("alpha answered"), "{out}\n{err}");
    let log = setup.keeper_log();
    assert!(log.contains("starting it again on the same port"), "{log}");
    let second: u32 = log
        .split("restarted llama-server as pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert_ne!(second, first, "a new llama-server");
    assert_eq!(
        log.matches(&format!("keeper {keeper}:")).count(),
        log.lines().count(),
        "one keeper did it all: {log}"
    );
    setup.wait_stopped(keeper, second);
}

#[test]
fn keeper_killed_mid_run_ends_the_run_with_a_clear_error_and_the_next_ask_starts_anew() {
    let mut steps = two_turns("alpha", "step one", "alpha answered", 1500);
    steps.push(json!({"when": "beta", "reply": "FINAL(beta answered)"}));
    let setup = Setup::new(&json!({ "root": steps }));
    let run = setup.ask("What does alpha do?");
    run.wait_line("turn 1: root model replied");
    let (keeper, server) = (setup.pid("keeper_pid"), setup.pid("server_pid"));
    // The keeper's death takes llama-server with it (PDEATHSIG): nothing restarts it.
    kill9(keeper);
    let (status, out, err) = run.finish();
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("the local model stopped during the run")
            && err.contains("Ask again to start it anew")
            && err.contains("llama-server.log"),
        "{err}"
    );
    assert!(!alive(server), "llama-server died with its keeper");

    // The next question starts a new keeper over the dead one's state.json.
    let started = Instant::now();
    let (status, out, err) = setup.ask("And beta?").finish();
    note(&format!(
        "next ask after the keeper was killed: {:.2} s (stand-in server)",
        started.elapsed().as_secs_f64()
    ));
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("beta answered"), "{out}");
    let log = setup.keeper_log();
    assert_eq!(log.matches("started llama-server").count(), 2, "{log}");
}

/// A language server over stdio, as an editor runs it.
struct Lsp {
    child: Guard,
    w: ChildStdin,
    r: BufReader<ChildStdout>,
    next: i64,
    /// Dropped when the test is done with the server; until then a watchdog kills a server that
    /// hangs, so a read of its output ends instead of blocking the test forever.
    _watchdog: std::sync::mpsc::Sender<()>,
}

fn watchdog(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = channel::<()>();
    thread::spawn(move || {
        if rx.recv_timeout(HANG * 3) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    tx
}

impl Lsp {
    fn start(setup: &Setup) -> Lsp {
        let mut child = setup
            .cmd()
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let w = child.stdin.take().unwrap();
        let r = BufReader::new(child.stdout.take().unwrap());
        let mut lsp = Lsp {
            _watchdog: watchdog(child.id()),
            child: Guard(child),
            w,
            r,
            next: 0,
        };
        let uri = format!(
            "file://{}",
            setup.path("ws").canonicalize().unwrap().display()
        );
        let init = lsp.request(
            "initialize",
            json!({"processId": null, "rootUri": uri, "capabilities": {},
                   "workspaceFolders": [{"uri": uri, "name": "ws"}]}),
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

    /// Sends a request and reads until its response, answering the server's requests.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.read();
            if m.get("method").is_some() && m.get("id").is_some() {
                self.send(&json!({"jsonrpc": "2.0", "id": m["id"], "result": null}));
            } else if m["id"] == id {
                return m;
            }
        }
    }

    fn ask(&mut self, question: &str) -> Value {
        self.request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": question}]}),
        )
    }

    /// `shutdown` and `exit`, as an editor closing; returns the exit status.
    fn exit(mut self) -> ExitStatus {
        self.request("shutdown", Value::Null);
        self.send(&json!({"jsonrpc": "2.0", "method": "exit"}));
        // The server exits once its input ends, as when an editor closes the pipe.
        let Lsp { mut child, w, .. } = self;
        drop(w);
        child.0.wait().unwrap()
    }
}

#[test]
fn a_language_server_whose_local_model_stopped_starts_it_again_on_the_next_ask() {
    let setup = Setup::new(&json!({"root": [
        {"when": "alpha", "reply": "FINAL(alpha answered)"},
        {"when": "beta", "reply": "FINAL(beta answered)"},
    ]}));
    let mut lsp = Lsp::start(&setup);
    let first = lsp.ask("What does alpha do?");
    assert_eq!(first["result"]["answer"], "alpha answered", "{first}");
    // The server keeps its models between runs; the model under them dies for good.
    let (keeper, server) = (setup.pid("keeper_pid"), setup.pid("server_pid"));
    kill9(keeper);
    wait_until("the keeper and its server to die", || {
        !alive(keeper) && !alive(server)
    });
    let second = lsp.ask("And beta?");
    assert_eq!(second["result"]["answer"], "beta answered", "{second}");
    let new_keeper = setup.pid("keeper_pid");
    assert_ne!(new_keeper, keeper, "a new keeper");
    let new_server = setup.pid("server_pid");
    assert!(lsp.exit().success());
    // The editor closed: nothing of the model is left running.
    setup.wait_stopped(new_keeper, new_server);
}

#[test]
fn the_first_of_two_processes_exits_mid_run_of_the_second() {
    let mut steps = two_turns("beta", "beta one", "beta answered", 3000);
    steps.push(json!({"when": "alpha", "reply": "FINAL(alpha answered)"}));
    let setup = Setup::new(&json!({ "root": steps }));
    // The first process (an editor's language server) starts the shared model.
    let mut first = Lsp::start(&setup);
    let a = first.ask("What does alpha do?");
    assert_eq!(a["result"]["answer"], "alpha answered", "{a}");
    let (keeper, server) = (setup.pid("keeper_pid"), setup.pid("server_pid"));

    // The second (a CLI run) joins it; the first exits while the second waits for its turn 2.
    let second = setup.ask("What does beta do?");
    second.wait_line("turn 1: root model replied");
    assert!(first.exit().success());
    let during = alive(keeper) && alive(server);
    let (status, out, err) = second.finish();
    assert!(
        during,
        "the model stopped when the first process exited, under the second's run"
    );
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("beta answered"), "{out}\n{err}");
    // One keeper and one llama-server served both, never stopped nor restarted meanwhile.
    let log = setup.keeper_log();
    assert_eq!(log.matches("started llama-server").count(), 1, "{log}");
    assert!(!log.contains("exited on its own"), "{log}");
    setup.wait_stopped(keeper, server);
}

#[test]
fn stale_state_from_crashed_processes_does_not_block_the_next_start() {
    let setup = Setup::new(&json!({"root": [
        {"when": "alpha", "reply": "FINAL(alpha answered)"},
        {"when": "beta", "reply": "FINAL(beta answered)"},
    ]}));
    let dir = setup.instance_dir();
    std::fs::create_dir_all(&dir).unwrap();

    // 1. A keeper that died between fork and prctl left its llama-server running, listed in
    // state.json; keeper.lock names a pid that is long gone; the lock files and the key file
    // stay behind.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let model = setup.path("model.gguf");
    let mut orphan = Guard(
        Command::new(setup.path("bin/llama-server"))
            .arg("-m")
            .arg(&model)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let orphan_pid = orphan.0.id();
    wait_until("the orphan server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let stale = json!({
        "keeper_pid": 999_999_999u32, "server_pid": orphan_pid, "port": port,
        "model": model, "server": setup.path("bin/llama-server"),
        "ctx": 4096, "parallel": 2, "threads": 2, "started_at": 0, "api_key": "stale",
    });
    std::fs::write(dir.join("state.json"), stale.to_string()).unwrap();
    std::fs::write(dir.join("keeper.lock"), "999999999").unwrap();
    for name in ["state.lock", "users.lock"] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    std::fs::write(dir.join("api-key"), "stale\n").unwrap();

    let (status, out, err) = setup.ask("What does alpha do?").finish();
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("alpha answered"), "{out}");
    // The leftover server, proven ours by its command line, was killed, not joined.
    let mut orphan_status = None;
    wait_until("the leftover server to be killed", || {
        orphan_status = orphan.0.try_wait().unwrap();
        orphan_status.is_some()
    });
    let orphan_status = orphan_status.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(orphan_status.signal(), Some(9), "{orphan_status}");
    wait_until("the keeper to stop", || setup.state().is_none());

    // 2. A state file cut short by a crash and a keeper.lock holding garbage.
    std::fs::write(dir.join("state.json"), "{\"keeper_pid\": 12").unwrap();
    std::fs::write(dir.join("keeper.lock"), "not a pid").unwrap();
    let (status, out, err) = setup.ask("And beta?").finish();
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("beta answered"), "{out}");
}

#[test]
fn an_unwritable_cache_directory_moves_the_local_models_state_with_one_warning() {
    let setup = Setup::new(&json!({"root": [
        {"when": "echo: sub one", "reply": "FINAL(alpha answered)"},
        {"when": "alpha", "reply": "```repl\nprint(llm_query('sub one'))\n```"},
    ]}));
    // Under a regular file: no one can create it, root included.
    std::fs::write(setup.path("file"), "").unwrap();
    std::fs::create_dir(setup.path("run")).unwrap();
    let mut cmd = setup.cmd();
    cmd.env("RLM_CACHE_DIR", setup.path("file/cache"))
        .env("XDG_RUNTIME_DIR", setup.path("run"));
    let (status, out, err) = setup.ask_with(cmd, "What does alpha do?").finish();
    assert!(status.success(), "{status}\n{err}");
    assert!(out.contains("alpha answered"), "{out}\n{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot write to the cache directory"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the state and the cache:\n{err}"
    );
    assert!(
        warnings[0].contains("the local model keeps its state in"),
        "{err}"
    );
    let moved = setup
        .path("run/rlm-lsp/local-server")
        .join(setup.instance_dir().file_name().unwrap());
    let log = std::fs::read_to_string(moved.join("keeper.log")).unwrap();
    assert!(log.contains("started llama-server"), "{log}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(setup.path("run/rlm-lsp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "private: the state holds the server's key"
    );
}

/// The real model and llama-server (as `local_model.rs` finds them), state under `state_dir`.
fn real_config(state_dir: &Path) -> LocalServerConfig {
    let mut config = LocalServerConfig::from_env().unwrap_or_else(|e| {
        panic!("the local model is not installed: run scripts/setup.sh (CI must install it)\n{e}")
    });
    config.keeper_exe = PathBuf::from(BIN);
    config.state_dir = state_dir.to_path_buf();
    config.startup_timeout = Duration::from_secs(120);
    config.ctx_size = 4096;
    config
}

#[test]
fn the_real_llama_server_killed_mid_answer_is_restarted_and_the_answer_comes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = real_config(tmp.path());
    let handle = LocalServer::acquire_blocking(&config).unwrap_or_else(|e| panic!("{e}"));
    let dir = handle.state_dir().to_path_buf();
    let keeper_log = || std::fs::read_to_string(dir.join("keeper.log")).unwrap_or_default();
    wait_until("the keeper to see the model loaded", || {
        keeper_log().contains("loaded the model")
    });
    let client = ChatClient::new(Endpoint {
        base_url: handle.base_url().to_string(),
        model: handle.model_name().to_string(),
        api_key: handle.api_key().map(str::to_string),
        api_key_env: None,
        // Generous: a loaded 2-core machine generates about one token a second.
        timeout: Duration::from_secs(600),
        max_tokens: 24,
        temperature: 0.0,
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let messages = vec![ChatMessage {
        role: Role::User,
        content: "Write a Python function that adds two numbers.".into(),
    }];
    let answer = runtime.spawn(async move { client.complete(&messages, &[]).await });

    // Kill it while it generates: llama-server logs each request's slot as it starts it.
    let server_log = dir.join("llama-server.log");
    wait_until("llama-server to start on the request", || {
        std::fs::read_to_string(&server_log)
            .is_ok_and(|l| l.contains("launch_slot") || l.contains("processing task"))
    });
    let first = handle.server_pid();
    kill9(first);
    let killed = Instant::now();
    wait_until("llama-server to be restarted and loaded", || {
        handle.server_pid() != first && keeper_log().matches("loaded the model").count() >= 2
    });
    let loaded = killed.elapsed();
    let completion = runtime
        .block_on(answer)
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let answered = killed.elapsed();
    note(&format!(
        "real llama-server killed mid-answer: loaded again after {:.1} s, answer after {:.1} s \
         ({} retries, {} completion tokens)",
        loaded.as_secs_f64(),
        answered.as_secs_f64(),
        completion.retries,
        completion.usage.completion_tokens
    ));
    assert!(!completion.text.trim().is_empty());
    assert!(completion.retries >= 1, "the request was sent again");
    assert!(handle.is_alive(), "the same keeper, still serving");
    let (keeper, server) = (handle.keeper_pid(), handle.server_pid());
    drop(handle);
    wait_until("the keeper and llama-server to stop", || {
        !alive(keeper) && !alive(server)
    });
}
