//! The local servers this process holds handles of, by port: a model client whose request to one
//! of them failed at the transport level waits here for the keeper to restart llama-server (or
//! learns that it stopped), and a front end that keeps resolved models learns here that they
//! point at a server that is gone.

use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::sys::{self, Health};
use super::{KEEPER_LOG, LOG_TAIL_LINES, LocalModelError, SERVER_LOG, keeper_alive, read_state};

/// A server some handle of this process holds.
#[derive(Clone, Debug)]
struct Serving {
    port: u16,
    dir: PathBuf,
    keeper_pid: u32,
    /// How long a restarted llama-server may take to load the model.
    startup_timeout: Duration,
    /// Live handles of this process on it.
    handles: usize,
}

static SERVING: Mutex<Vec<Serving>> = Mutex::new(Vec::new());

fn table() -> std::sync::MutexGuard<'static, Vec<Serving>> {
    SERVING.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn register(port: u16, dir: PathBuf, keeper_pid: u32, startup_timeout: Duration) {
    let mut t = table();
    match t
        .iter_mut()
        .find(|s| s.port == port && s.keeper_pid == keeper_pid)
    {
        Some(s) => s.handles += 1,
        None => t.push(Serving {
            port,
            dir,
            keeper_pid,
            startup_timeout,
            handles: 1,
        }),
    }
}

pub(super) fn unregister(port: u16, keeper_pid: u32) {
    let mut t = table();
    if let Some(i) = t
        .iter()
        .position(|s| s.port == port && s.keeper_pid == keeper_pid)
    {
        t[i].handles -= 1;
        if t[i].handles == 0 {
            t.remove(i);
        }
    }
}

/// The port of a base URL the local server handles give out (`http://127.0.0.1:PORT/v1`).
fn port_of(base_url: &str) -> Option<u16> {
    let rest = base_url.strip_prefix("http://127.0.0.1:")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The newest registration for the port of `base_url` (a port is reused only after its keeper
/// is gone, so the newest is the one that may still serve).
fn lookup(base_url: &str) -> Option<Serving> {
    let port = port_of(base_url)?;
    table().iter().rev().find(|s| s.port == port).cloned()
}

impl Serving {
    /// Whether the keeper this process joined still runs and still owns the state directory.
    fn keeper_running(&self) -> bool {
        keeper_alive(&self.dir).unwrap_or(false)
            && read_state(&self.dir).is_some_and(|s| s.keeper_pid == self.keeper_pid)
    }

    fn stopped_error(&self) -> LocalModelError {
        let log = self.dir.join(SERVER_LOG);
        LocalModelError::Stopped {
            log_tail: sys::tail(&log, LOG_TAIL_LINES),
            log,
            keeper_log: self.dir.join(KEEPER_LOG),
        }
    }
}

/// Whether `base_url` is a local server this process joined whose keeper has stopped: models
/// resolved to it must be resolved again (which starts a new keeper). `false` for any other URL.
pub fn stopped(base_url: &str) -> bool {
    lookup(base_url).is_some_and(|s| !s.keeper_running())
}

/// For a request to `base_url` that failed at the transport level: `None` when it is not a local
/// server of this process; otherwise waits (blocking) until it answers `/health` with 200 again
/// (`Ok`: send the request again), or fails at once when its keeper has stopped, or after the
/// startup timeout.
pub fn wait_until_serving(base_url: &str) -> Option<Result<(), LocalModelError>> {
    let serving = lookup(base_url)?;
    let deadline = Instant::now() + serving.startup_timeout;
    let mut pause = Duration::from_millis(50);
    Some(loop {
        if sys::health(serving.port, Duration::from_secs(2)) == Health::Ready {
            break Ok(());
        }
        if !serving.keeper_running() {
            break Err(serving.stopped_error());
        }
        if Instant::now() >= deadline {
            let log = serving.dir.join(SERVER_LOG);
            break Err(LocalModelError::StartTimeout {
                server_pid: read_state(&serving.dir).map_or(0, |s| s.server_pid),
                port: serving.port,
                timeout: serving.startup_timeout,
                log_tail: sys::tail(&log, LOG_TAIL_LINES),
                log,
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_local_urls_only() {
        assert_eq!(port_of("http://127.0.0.1:8080/v1"), Some(8080));
        assert_eq!(port_of("http://127.0.0.1:31337"), Some(31337));
        assert_eq!(port_of("https://api.openai.com/v1"), None);
        assert_eq!(port_of("http://127.0.0.1:/v1"), None);
    }

    #[test]
    fn a_url_no_handle_holds_is_neither_stopped_nor_waited_for() {
        let url = "http://127.0.0.1:9/v1";
        assert!(!stopped(url));
        assert!(wait_until_serving(url).is_none());
        let dir = tempfile::tempdir().unwrap();
        register(9, dir.path().to_path_buf(), 1, Duration::from_secs(1));
        register(9, dir.path().to_path_buf(), 1, Duration::from_secs(1));
        // No keeper holds keeper.lock in that directory: stopped, and waiting fails at once.
        assert!(stopped(url));
        assert!(matches!(
            wait_until_serving(url),
            Some(Err(LocalModelError::Stopped { .. }))
        ));
        unregister(9, 1);
        assert!(stopped(url), "one handle is left");
        unregister(9, 1);
        assert!(!stopped(url));
    }
}
