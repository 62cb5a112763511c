//! The few operating-system pieces the shared local server needs: advisory file locks, process
//! liveness, a free loopback port, `/health` over plain HTTP/1.1, and the `pre_exec` hooks that detach
//! the keeper and tie llama-server's life to it. Linux only (`prctl`, `/proc`, `close_range`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Opens (creating it if needed) a file used only for its `flock`. Like every file std opens, the
/// descriptor is close-on-exec, so no child process ever inherits a lock.
pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    Shared,
    Exclusive,
}

/// Tries once to take a `flock`; `Ok(false)` when another open file holds a conflicting lock.
pub(crate) fn try_lock(file: &File, kind: LockKind) -> io::Result<bool> {
    let result = match kind {
        LockKind::Shared => file.try_lock_shared(),
        LockKind::Exclusive => file.try_lock(),
    };
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Takes a `flock`, polling until `timeout`; `Ok(false)` on timeout. Polling (rather than a blocking
/// `flock`) keeps the wait bounded, so a wedged holder turns into an error instead of a hang.
pub(crate) fn lock_with_timeout(
    file: &File,
    kind: LockKind,
    timeout: Duration,
) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if try_lock(file, kind)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid_t <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid_t, 0) };
    if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: "pid (comm) S ...": the comm may contain spaces or parentheses, so split at the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

/// The NUL-separated arguments of a live process, or `None` if it is gone.
pub(crate) fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Sends `signal` to `pid` (errors ignored: the process may already be gone).
pub(crate) fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid_t) = libc::pid_t::try_from(pid)
        && pid_t > 0
    {
        // SAFETY: plain kill(2) on a positive pid.
        unsafe {
            libc::kill(pid_t, signal);
        }
    }
}

/// Asks the kernel for a free port on 127.0.0.1 and releases it for the server to bind.
pub(crate) fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// What `GET /health` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// 200: the model is loaded and the server takes requests.
    Ready,
    /// Any other HTTP status (llama-server answers 503 while it loads the model).
    Loading,
    /// Nothing answered on the port.
    Down,
}

/// `GET /health` on 127.0.0.1:`port` with a short timeout, over a bare HTTP/1.1 exchange (no client
/// library and no async runtime needed in the keeper or in a blocking caller).
pub(crate) fn health(port: u16, timeout: Duration) -> Health {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Health::Down;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return Health::Down;
    }
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    match line.split_whitespace().nth(1) {
        Some("200") if line.starts_with("HTTP/") => Health::Ready,
        Some(_) if line.starts_with("HTTP/") => Health::Loading,
        _ => Health::Down,
    }
}

/// The last `max_lines` lines of a (log) file, reading at most its last 16 KiB.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 16 * 1024;
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if file
            .seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))
            .is_ok()
        {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "(empty)".to_string();
    }
    let from = lines.len().saturating_sub(max_lines);
    lines[from..].join("\n")
}

/// Marks every descriptor from 3 up close-on-exec, so a child keeps only the stdio it was given.
/// std's own descriptors are already close-on-exec; this catches ones inherited from an editor or
/// opened by C code without `O_CLOEXEC`. Async-signal-safe (one syscall); ignored where unsupported.
fn mark_inherited_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) with the CLOEXEC flag closes nothing; it only sets FD_CLOEXEC.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Detaches the child into its own session (no controlling terminal, own process group), so a
/// terminal's Ctrl-C or hang-up never reaches it.
pub(crate) fn detach_into_new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook only calls async-signal-safe functions (setsid, close_range).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            mark_inherited_fds_cloexec();
            Ok(())
        });
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it dies, however it dies. The
/// keeper is single-threaded, so that is "when the keeper dies".
pub(crate) fn kill_when_parent_dies(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the hook only calls async-signal-safe functions (prctl, getppid, close_range) and
    // builds an io::Error from a raw errno, which does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal would ever come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            mark_inherited_fds_cloexec();
            Ok(())
        });
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_kinds_conflict_as_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let a = open_lock_file(&path).unwrap();
        let b = open_lock_file(&path).unwrap();
        let c = open_lock_file(&path).unwrap();
        assert!(try_lock(&a, LockKind::Shared).unwrap());
        assert!(try_lock(&b, LockKind::Shared).unwrap());
        assert!(!try_lock(&c, LockKind::Exclusive).unwrap());
        drop(a);
        assert!(!try_lock(&c, LockKind::Exclusive).unwrap());
        drop(b);
        assert!(try_lock(&c, LockKind::Exclusive).unwrap());
    }

    #[test]
    fn own_process_is_alive_and_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(!pid_alive(0));
    }

    #[test]
    fn health_of_a_closed_port_is_down() {
        let port = free_loopback_port().unwrap();
        assert_eq!(health(port, Duration::from_millis(200)), Health::Down);
    }

    #[test]
    fn tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\n\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert_eq!(tail(&dir.path().join("missing"), 2), "(empty)");
    }
}
