//! The keeper: a small detached process (`rlm-lsp __llama-keeper ...`) that owns one llama-server.
//!
//! It is single-threaded on purpose: `PR_SET_PDEATHSIG` fires when the *thread* that forked the
//! child exits, so with one thread "the keeper died" and "llama-server gets SIGKILL" are the same
//! event, however the keeper dies.
//!
//! Life cycle (see the protocol in the parent module's doc):
//! 1. take `keeper.lock` exclusively for its whole life and write its pid into it;
//! 2. spawn llama-server (stdout/stderr to `llama-server.log`), tied to the keeper by PDEATHSIG;
//! 3. write `state.json` (mode 0600, with the server's API key; its spawner holds `state.lock`
//!    and waits for exactly this file);
//! 4. every [`POLL`]: if llama-server exited after it had loaded the model (`/health` answered
//!    200), start it again once, on the same port with the same key, and rewrite `state.json`
//!    with its pid; if it exited before that, or within [`RESTART_WINDOW`] of a restart, remove
//!    `state.json` and exit 1. Otherwise take `state.lock`, try `users.lock` exclusively without
//!    blocking: success means no user holds its shared lock, so after the linger time stop
//!    llama-server, remove `state.json`, exit 0.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::sys::{self, LockKind};
use super::{API_KEY_FILE, KEEPER_LOCK, SERVER_LOG, STATE_FILE, STATE_LOCK, StateFile, USERS_LOCK};

/// How often the keeper checks for remaining users and for llama-server's death.
const POLL: Duration = Duration::from_millis(300);
/// How long llama-server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A llama-server that dies again this soon after a restart is not restarted: it would only
/// crash again (a model too large for memory, a broken GPU driver).
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The keeper's arguments, as [`super::start_keeper`] writes them.
#[derive(Debug)]
struct KeeperArgs {
    dir: PathBuf,
    server: PathBuf,
    model: PathBuf,
    alias: String,
    port: u16,
    ctx: u32,
    parallel: u32,
    threads: u32,
    linger: Duration,
}

impl KeeperArgs {
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut dir = None;
        let mut server = None;
        let mut model = None;
        let mut alias = None;
        let mut port = None;
        let mut ctx = None;
        let mut parallel = None;
        let mut threads = None;
        let mut linger_ms = None;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let flag = flag.to_string_lossy().into_owned();
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let text = || value.to_string_lossy().into_owned();
            let number = |name: &str| {
                text()
                    .parse::<u64>()
                    .map_err(|e| format!("{name} {:?}: {e}", text()))
            };
            match flag.as_str() {
                "--dir" => dir = Some(PathBuf::from(&value)),
                "--server" => server = Some(PathBuf::from(&value)),
                "--model" => model = Some(PathBuf::from(&value)),
                "--alias" => alias = Some(text()),
                "--port" => port = Some(number("--port")?),
                "--ctx" => ctx = Some(number("--ctx")?),
                "--parallel" => parallel = Some(number("--parallel")?),
                "--threads" => threads = Some(number("--threads")?),
                "--linger-ms" => linger_ms = Some(number("--linger-ms")?),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let narrow = |name: &str, v: Option<u64>| -> Result<u32, String> {
            let v = v.ok_or_else(|| format!("missing {name}"))?;
            u32::try_from(v).map_err(|_| format!("{name} {v} is too large"))
        };
        Ok(Self {
            dir: dir.ok_or("missing --dir")?,
            server: server.ok_or("missing --server")?,
            model: model.ok_or("missing --model")?,
            alias: alias.ok_or("missing --alias")?,
            port: u16::try_from(port.ok_or("missing --port")?)
                .map_err(|_| "--port out of range")?,
            ctx: narrow("--ctx", ctx)?,
            parallel: narrow("--parallel", parallel)?,
            threads: narrow("--threads", threads)?,
            linger: Duration::from_millis(linger_ms.unwrap_or(0)),
        })
    }
}

/// Entry point of the hidden `__llama-keeper` subcommand: `args` are the arguments after the
/// subcommand name, e.g. `keeper_main(std::env::args().skip(2).collect())`. Call it on the main
/// thread before anything else starts threads. Returns the process exit code. Logs go to stderr, which the spawner points at
/// `keeper.log` in the state directory.
pub fn keeper_main(args: Vec<String>) -> i32 {
    let args = match KeeperArgs::parse(args.into_iter().map(OsString::from)) {
        Ok(args) => args,
        Err(e) => {
            log(&format!("bad arguments: {e}"));
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("error: {e}"));
            1
        }
    }
}

fn log(message: &str) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let _ = writeln!(
        io::stderr(),
        "[{secs:.3}] keeper {}: {message}",
        std::process::id()
    );
}

fn run(args: &KeeperArgs) -> io::Result<()> {
    let dir = &args.dir;
    let keeper_lock = sys::open_lock_file(&dir.join(KEEPER_LOCK))?;
    // An acquirer may be probing this lock (a brief shared lock) at this very moment: wait a little.
    if !sys::lock_with_timeout(&keeper_lock, LockKind::Exclusive, Duration::from_secs(3))? {
        return Err(io::Error::other(format!(
            "another keeper holds {}; not starting a second llama-server",
            dir.join(KEEPER_LOCK).display()
        )));
    }
    keeper_lock.set_len(0)?;
    (&keeper_lock).write_all(std::process::id().to_string().as_bytes())?;

    let users = sys::open_lock_file(&dir.join(USERS_LOCK))?;
    let state_lock = sys::open_lock_file(&dir.join(STATE_LOCK))?;

    // One key for the keeper's life: a restarted llama-server takes the same one, so the
    // handles users hold stay valid.
    let flags = known_flags(&args.server);
    let api_key = if flags.iter().any(|f| f == "--api-key-file") {
        let key = new_api_key()?;
        write_private(&args.dir.join(API_KEY_FILE), &format!("{key}\n"))?;
        Some(key)
    } else {
        None
    };
    let mut server = spawn_server(args, &flags, api_key.is_some(), false)?;
    log(&format!(
        "started llama-server pid {} on 127.0.0.1:{} ({})",
        server.id(),
        args.port,
        args.model.display()
    ));
    let mut state = StateFile {
        keeper_pid: std::process::id(),
        server_pid: server.id(),
        port: args.port,
        model: args.model.clone(),
        server: args.server.clone(),
        ctx: args.ctx,
        parallel: args.parallel,
        threads: args.threads,
        started_at: now_secs(),
        api_key,
    };
    if let Err(e) = write_state(dir, &state) {
        stop_server(&mut server);
        return Err(e);
    }

    let mut idle_since: Option<Instant> = None;
    // Whether this llama-server has answered /health with 200 (loaded the model).
    let mut loaded = false;
    let mut restarted_at: Option<Instant> = None;
    loop {
        thread::sleep(POLL);
        if let Some(status) = server.try_wait()? {
            let crash_loop = restarted_at.is_some_and(|t| t.elapsed() < RESTART_WINDOW);
            if loaded && !crash_loop {
                log(&format!(
                    "llama-server exited on its own ({status}); starting it again on the same port"
                ));
                state_lock.lock()?;
                let restarted =
                    spawn_server(args, &flags, state.api_key.is_some(), true).and_then(|mut s| {
                        state.server_pid = s.id();
                        state.started_at = now_secs();
                        write_state(dir, &state).inspect_err(|_| stop_server(&mut s))?;
                        Ok(s)
                    });
                server = match restarted {
                    Ok(s) => s,
                    Err(e) => {
                        remove_state_if_ours(dir);
                        return Err(e);
                    }
                };
                state_lock.unlock()?;
                log(&format!("restarted llama-server as pid {}", server.id()));
                loaded = false;
                restarted_at = Some(Instant::now());
                continue;
            }
            log(&format!(
                "llama-server exited on its own ({status}){}; see {}",
                if loaded {
                    " again soon after a restart: giving up"
                } else {
                    " before it loaded the model"
                },
                dir.join(SERVER_LOG).display()
            ));
            state_lock.lock()?;
            remove_state_if_ours(dir);
            return Err(io::Error::other("llama-server exited"));
        }
        if !loaded && sys::health(args.port, Duration::from_secs(1)) == sys::Health::Ready {
            loaded = true;
            log(&format!(
                "llama-server pid {} loaded the model",
                server.id()
            ));
        }
        state_lock.lock()?;
        if sys::try_lock(&users, LockKind::Exclusive)? {
            // No process holds a shared lock on users.lock: nobody uses the server.
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= args.linger {
                log("no users left: stopping llama-server");
                stop_server(&mut server);
                remove_state_if_ours(dir);
                log("stopped");
                // Exiting releases state.lock, users.lock and keeper.lock together.
                return Ok(());
            }
            users.unlock()?;
        } else {
            idle_since = None;
        }
        state_lock.unlock()?;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_state(dir: &Path, state: &StateFile) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    sys::write_atomically(&dir.join(STATE_FILE), &json)
}

/// The options this build of llama-server knows, from its `--help`, so that an older llama-server
/// on PATH still starts (without a web-UI switch or an API key file).
fn known_flags(server: &Path) -> Vec<String> {
    Command::new(server)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|word| word.starts_with("--"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh random API key (192 bits from the kernel, hex).
fn new_api_key() -> io::Result<String> {
    let mut bytes = [0u8; 24];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only this user can read.
fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

/// Spawns llama-server with the options this build knows (`flags`), requiring the key in the
/// state directory's key file if `with_key`. A restart appends to the log, keeping the crash.
fn spawn_server(
    args: &KeeperArgs,
    flags: &[String],
    with_key: bool,
    restart: bool,
) -> io::Result<Child> {
    let log_path = args.dir.join(SERVER_LOG);
    let log_file = if restart {
        File::options().create(true).append(true).open(&log_path)?
    } else {
        File::create(&log_path)?
    };
    let mut cmd = Command::new(&args.server);
    cmd.arg("-m")
        .arg(&args.model)
        .arg("--alias")
        .arg(&args.alias)
        .args(["--host", "127.0.0.1", "--port"])
        .arg(args.port.to_string())
        .arg("-c")
        .arg(args.ctx.to_string())
        .arg("-np")
        .arg(args.parallel.to_string())
        .arg("-t")
        .arg(args.threads.to_string())
        .arg("-tb")
        .arg(args.threads.to_string());
    if flags.iter().any(|f| f == "--no-webui") {
        cmd.arg("--no-webui");
    }
    // Loopback is reachable by every local user and by any web page in a browser (llama-server
    // allows all CORS origins): require a key that only this user can read.
    if with_key {
        cmd.arg("--api-key-file").arg(args.dir.join(API_KEY_FILE));
    }
    cmd.env_remove("LLAMA_API_KEY")
        .env_remove("LLAMA_ARG_API_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    sys::kill_when_parent_dies(&mut cmd);
    cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", args.server.display()),
        )
    })
}

fn stop_server(server: &mut Child) {
    sys::send_signal(server.id(), libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    log("llama-server ignored SIGTERM: killing it");
    let _ = server.kill();
    let _ = server.wait();
}

fn remove_state_if_ours(dir: &Path) {
    let path = dir.join(STATE_FILE);
    let ours = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<StateFile>(&bytes).ok())
        .is_some_and(|state| state.keeper_pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_what_the_spawner_writes() {
        let args = KeeperArgs::parse(os(&[
            "--dir",
            "/d",
            "--server",
            "/s",
            "--model",
            "/m.gguf",
            "--alias",
            "m",
            "--port",
            "8080",
            "--ctx",
            "32768",
            "--parallel",
            "2",
            "--threads",
            "2",
            "--linger-ms",
            "0",
        ]))
        .unwrap();
        assert_eq!(args.port, 8080);
        assert_eq!(args.ctx, 32768);
        assert_eq!(args.dir, PathBuf::from("/d"));
        assert_eq!(args.linger, Duration::ZERO);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(KeeperArgs::parse(os(&["--port"])).is_err());
        assert!(KeeperArgs::parse(os(&["--bogus", "1"])).is_err());
        assert!(KeeperArgs::parse(os(&["--dir", "/d"])).is_err());
    }
}
