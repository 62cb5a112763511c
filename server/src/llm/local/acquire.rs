//! Joining the shared server or starting it: the locks, the keeper's start, the wait for the
//! model, and the clean-up of what a crashed keeper left (see the parent module's doc).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::sys::{self, Health, LockKind};
use super::{
    KEEPER_HANDSHAKE_TIMEOUT, KEEPER_LOCK, KEEPER_LOG, KEEPER_SUBCOMMAND, LOG_TAIL_LINES,
    LocalModelError, LocalServerConfig, LocalServerHandle, MODEL_FILE, SERVER_LOG, STATE_FILE,
    STATE_LOCK, STATE_LOCK_TIMEOUT, StateFile, USERS_LOCK, io_err, serving,
};

pub(super) fn read_state(dir: &Path) -> Option<StateFile> {
    let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a keeper holds `keeper.lock` (a brief shared lock succeeds only if none does).
pub(super) fn keeper_alive(dir: &Path) -> Result<bool, LocalModelError> {
    let path = dir.join(KEEPER_LOCK);
    let file = sys::open_lock_file(&path).map_err(io_err("open", &path))?;
    let free = sys::try_lock(&file, LockKind::Shared).map_err(io_err("lock", &path))?;
    Ok(!free)
}

fn check_installed(config: &LocalServerConfig) -> Result<(), LocalModelError> {
    for (what, env_var, path) in [
        (
            "llama-server".to_string(),
            "RLM_LLAMA_SERVER",
            &config.llama_server,
        ),
        (
            format!("the local model ({MODEL_FILE})"),
            "RLM_LOCAL_MODEL",
            &config.model,
        ),
    ] {
        if !path.is_file() {
            return Err(LocalModelError::NotInstalled {
                what,
                env_var,
                tried: vec![format!("{} (no such file)", path.display())],
            });
        }
    }
    Ok(())
}

pub(super) fn acquire(config: &LocalServerConfig) -> Result<LocalServerHandle, LocalModelError> {
    check_installed(config)?;
    let dir = state_dir(config)?;

    let state_lock_path = dir.join(STATE_LOCK);
    let state_lock =
        sys::open_lock_file(&state_lock_path).map_err(io_err("open", &state_lock_path))?;
    if !sys::lock_with_timeout(&state_lock, LockKind::Exclusive, STATE_LOCK_TIMEOUT)
        .map_err(io_err("lock", &state_lock_path))?
    {
        return Err(LocalModelError::LockTimeout {
            path: state_lock_path,
            timeout: STATE_LOCK_TIMEOUT,
        });
    }

    let state = match (keeper_alive(&dir)?, read_state(&dir)) {
        (true, Some(state)) => {
            tracing::debug!(
                port = state.port,
                keeper = state.keeper_pid,
                "joining the shared local model server"
            );
            state
        }
        (alive, stale) => {
            if alive {
                // A keeper without a state file (someone deleted it): it cannot be joined.
                kill_orphan_keeper(&dir);
            }
            if let Some(stale) = &stale {
                tracing::info!(
                    keeper = stale.keeper_pid,
                    server = stale.server_pid,
                    "removing stale local model state"
                );
                kill_stale_server(stale);
            }
            let path = dir.join(STATE_FILE);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
            start_keeper(config, &dir)?
        }
    };

    let users_path = dir.join(USERS_LOCK);
    let users_lock = sys::open_lock_file(&users_path).map_err(io_err("open", &users_path))?;
    // The keeper holds users.lock exclusively only while it holds state.lock, which we hold now.
    if !sys::lock_with_timeout(&users_lock, LockKind::Shared, Duration::from_secs(5))
        .map_err(io_err("lock", &users_path))?
    {
        return Err(LocalModelError::LockTimeout {
            path: users_path,
            timeout: Duration::from_secs(5),
        });
    }
    drop(state_lock);

    let state = wait_ready(config, &dir, state)?;
    serving::register(
        state.port,
        dir.clone(),
        state.keeper_pid,
        config.startup_timeout,
    );
    Ok(LocalServerHandle {
        users_lock,
        base_url: format!("http://127.0.0.1:{}/v1", state.port),
        model_name: config.model_name(),
        dir,
        state,
    })
}

/// Creates (0700: the state file holds the server's API key) and returns the model's state
/// directory: under the cache directory, or, when that cannot hold it, under a directory of this
/// user's own elsewhere (see the parent module's doc), with one warning.
fn state_dir(config: &LocalServerConfig) -> Result<PathBuf, LocalModelError> {
    let dir = config.instance_dir();
    let usable = |dir: &Path| -> std::io::Result<()> {
        create_private(dir, true)?;
        // The directory may exist and still refuse new files.
        sys::open_lock_file(&dir.join(STATE_LOCK)).map(drop)
    };
    let Err(first) = usable(&dir) else {
        return Ok(dir);
    };
    let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
    let other = fallback_base()
        .map(|base| base.join("local-server").join(name))
        .and_then(|other| usable(&other).map(|()| other));
    match other {
        Ok(other) => {
            let without = format!("the local model keeps its state in {}", other.display());
            super::warn_cache_unwritable(&dir, &first, &without);
            tracing::info!("the local model's state is in {}", other.display());
            Ok(other)
        }
        Err(_) => Err(io_err("create", &dir)(first)),
    }
}

/// `$XDG_RUNTIME_DIR/rlm-lsp`, else `$TMPDIR/rlm-lsp-UID`: created 0700, and used only if this
/// user owns it and no one else may write to it (a shared `/tmp` may hold one planted by another
/// user).
fn fallback_base() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = sys::effective_uid();
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("rlm-lsp"),
        None => std::env::temp_dir().join(format!("rlm-lsp-{uid}")),
    };
    create_private(&base, false)?;
    let meta = std::fs::symlink_metadata(&base)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory of this user", base.display()),
        ));
    }
    Ok(base)
}

/// Creates a 0700 directory (and, if `parents`, its missing parents); one that exists is fine.
fn create_private(dir: &Path, parents: bool) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(parents);
    match std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Starts a keeper and waits for its `state.json`. Called with `state.lock` held.
fn start_keeper(config: &LocalServerConfig, dir: &Path) -> Result<StateFile, LocalModelError> {
    let port =
        sys::free_loopback_port().map_err(io_err("reserve a port on", Path::new("127.0.0.1")))?;
    let log_path = dir.join(KEEPER_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("open", &log_path))?;
    // Keep the log from growing forever: start over when it passes 1 MiB.
    if log.metadata().is_ok_and(|m| m.len() > 1 << 20) {
        let _ = log.set_len(0);
    }
    let log_err = log.try_clone().map_err(io_err("open", &log_path))?;

    let mut cmd = Command::new(&config.keeper_exe);
    cmd.arg(KEEPER_SUBCOMMAND)
        .arg("--dir")
        .arg(dir)
        .arg("--server")
        .arg(&config.llama_server)
        .arg("--model")
        .arg(&config.model)
        .arg("--alias")
        .arg(config.model_name())
        .arg("--port")
        .arg(port.to_string())
        .arg("--ctx")
        .arg(config.ctx_size.to_string())
        .arg("--parallel")
        .arg(config.parallel.to_string())
        .arg("--threads")
        .arg(config.threads.to_string())
        .arg("--linger-ms")
        .arg(config.linger.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    sys::detach_into_new_session(&mut cmd);
    let failed = |reason: String| LocalModelError::KeeperFailed {
        exe: config.keeper_exe.clone(),
        reason,
        log: log_path.clone(),
        log_tail: sys::tail(&log_path, LOG_TAIL_LINES),
    };
    let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
    let pid = child.id();
    tracing::info!(keeper = pid, port, "starting the shared local model server");

    let deadline = Instant::now() + KEEPER_HANDSHAKE_TIMEOUT;
    loop {
        if let Some(state) = read_state(dir).filter(|s| s.keeper_pid == pid) {
            // Reap the keeper when it exits, so it never lingers as a zombie of this process.
            let _ = thread::Builder::new()
                .name("rlm-keeper-reaper".to_string())
                .spawn(move || child.wait());
            return Ok(state);
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(failed(format!("it exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(failed(e.to_string())),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "it did not start llama-server within {}s",
                KEEPER_HANDSHAKE_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (holding only the users lock) until the server answers `/health` with 200.
fn wait_ready(
    config: &LocalServerConfig,
    dir: &Path,
    mut state: StateFile,
) -> Result<StateFile, LocalModelError> {
    let deadline = Instant::now() + config.startup_timeout;
    let server_log = dir.join(SERVER_LOG);
    let mut pause = Duration::from_millis(50);
    loop {
        if sys::health(state.port, Duration::from_secs(2)) == Health::Ready {
            return Ok(state);
        }
        match read_state(dir) {
            // A keeper that failed was replaced by another user's: follow it.
            Some(current) if current.keeper_pid != state.keeper_pid => state = current,
            Some(_) if keeper_alive(dir)? => {}
            _ => {
                return Err(LocalModelError::ServerExited {
                    log_tail: sys::tail(&server_log, LOG_TAIL_LINES),
                    log: server_log,
                    model: config.model.clone(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(LocalModelError::StartTimeout {
                server_pid: state.server_pid,
                port: state.port,
                timeout: config.startup_timeout,
                log_tail: sys::tail(&server_log, LOG_TAIL_LINES),
                log: server_log,
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Kills a llama-server left from a dead keeper, but only if its command line shows it is the one
/// `state.json` describes (the pid may have been reused by an unrelated process). PDEATHSIG makes
/// this a rare case: it needs a keeper that died between fork and prctl.
fn kill_stale_server(stale: &StateFile) {
    let Some(args) = sys::cmdline(stale.server_pid) else {
        return;
    };
    let port = stale.port.to_string();
    let ours = args.windows(2).any(|w| w[0] == "--port" && w[1] == port)
        && args.iter().any(|a| Path::new(a) == stale.model);
    if ours && sys::pid_alive(stale.server_pid) {
        tracing::warn!(
            pid = stale.server_pid,
            "killing a llama-server left by a dead keeper"
        );
        sys::send_signal(stale.server_pid, libc::SIGKILL);
    }
}

/// Kills a live keeper that has no `state.json` (its pid is the content of `keeper.lock`) and
/// waits for its lock to be released.
fn kill_orphan_keeper(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join(KEEPER_LOCK))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(pid) = pid
        && sys::cmdline(pid).is_some_and(|args| args.iter().any(|a| a == KEEPER_SUBCOMMAND))
    {
        tracing::warn!(pid, "killing a local model keeper that lost its state file");
        sys::send_signal(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && keeper_alive(dir).unwrap_or(false) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}
