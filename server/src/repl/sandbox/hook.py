"""rlm-lsp sandbox: plain-words denials for model code.

The kernel enforces the sandbox (Landlock, seccomp; server/src/repl/sandbox/). Its denials are
terse ("[Errno 13] Permission denied", "[Errno 1] Operation not permitted"), and some are silent
(os.system returns a status). This audit hook mirrors the rules and raises the same denial one step
earlier, as a PermissionError that says what is not allowed, so the model can change course.
It never allows anything: code that gets past it (ctypes) still meets the kernel.

Some denials have no audit event to hook: os.setpriority, os.nice, os.sched_setaffinity,
os.sched_setscheduler, os.sched_setparam and os.setpgid (CPython 3.11) fail with the kernel's
"[Errno 1] Operation not permitted", socket.socketpair() for anything but a stream pair with
"[Errno 13] Permission denied".
"""

import errno
import os
import sys

_AF_UNIX = 1  # on Linux; importing socket here would cost start-up time

_PROCESS = (
    "starting processes is not allowed in the sandbox (no subprocess, os.system, os.fork or "
    "exec); do the work in Python"
)
_NETWORK = "network access is not allowed in the sandbox"
_SOCKET = _NETWORK + " (no new sockets; socket.socketpair() works within the process)"
_SEND = (
    _NETWORK + " (sendto and sendmsg are refused; send and sendall on a socket.socketpair() work)"
)
_WRITE = (
    "writing outside the sandbox is not allowed (only the working directory, os.getcwd(), is "
    "writable; the workspace is read-only)"
)
_METADATA = (
    "changing file modes, owners, times or attributes is not allowed in the sandbox; write a new "
    "file in the working directory instead"
)
_READ = (
    "reading outside the sandbox is not allowed (the workspace's files are in `context`, e.g. "
    "context[path])"
)

_PROCESS_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "subprocess.Popen",
        "pty.spawn",
    }
)
_NETWORK_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "socket.connect",
        "socket.bind",
        "urllib.Request",
        "http.client.connect",
        "ftplib.connect",
        "smtplib.connect",
        "poplib.connect",
        "imaplib.open",
        "nntplib.connect",
        "telnetlib.Telnet.open",
        "webbrowser.open",
    }
)
# event -> (indexes of paths written, index of dir_fd or None)
_WRITE_EVENTS = {
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.mkdir": ((0,), 2),
    "os.rename": ((0, 1), 2),
    "os.link": ((1,), 3),
    "os.symlink": ((1,), 2),
    "os.truncate": ((0,), None),
    "shutil.rmtree": ((0,), 1),
}
_METADATA_EVENTS = frozenset(
    {"os.chmod", "os.chown", "os.utime", "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags"}
)
_READ_EVENTS = {"os.listdir": 0, "os.scandir": 0}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install(workdir, read_roots, read_files, write_files):
    """Adds the audit hook. Paths are absolute; directories allow everything below them."""
    realpath, fspath, fsdecode, lexists = os.path.realpath, os.fspath, os.fsdecode, os.path.lexists

    def prefixes(paths):
        return tuple(p.rstrip("/") + "/" for p in paths)

    work = realpath(workdir)
    write_dirs = prefixes([work])
    read_dirs = prefixes([realpath(p) for p in read_roots] + [work])
    writable_files = frozenset(realpath(p) for p in write_files)
    readable_files = frozenset(realpath(p) for p in read_files) | writable_files

    def resolve(path, dir_fd=None):
        """The absolute real path, or None when the hook cannot tell (file descriptors)."""
        if dir_fd not in (None, -1) or isinstance(path, int):
            return None
        try:
            path = fspath(path)
            if isinstance(path, bytes):
                path = fsdecode(path)
            return realpath(path)
        except Exception:
            return None

    def writable(path):
        return path in writable_files or (path + "/").startswith(write_dirs)

    def readable(path):
        return path in readable_files or (path + "/").startswith(read_dirs)

    def check_write(path, dir_fd=None):
        p = resolve(path, dir_fd)
        if p is not None and not writable(p):
            raise PermissionError(errno.EACCES, _WRITE, p)

    def check_read(path, dir_fd=None):
        p = resolve(path, dir_fd)
        # A missing file outside: let the OS answer (FileNotFoundError), as importlib expects.
        if p is not None and not readable(p) and lexists(p):
            raise PermissionError(errno.EACCES, _READ, p)

    def new_socket(frame):
        """Whether socket.socket() is creating a socket (`fileno` None) rather than wrapping a
        descriptor. Other callers (`_socket` directly) are left to the kernel."""
        init = getattr(getattr(sys.modules.get("socket"), "socket", None), "__init__", None)
        code = getattr(init, "__code__", None)
        return frame.f_code is code and frame.f_locals.get("fileno", 0) is None

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(flags, int) and flags & _WRITE_FLAGS or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            ):
                check_write(path)
            else:
                check_read(path)
        elif event in _WRITE_EVENTS:
            indexes, fd_index = _WRITE_EVENTS[event]
            dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
            for i in indexes:
                check_write(args[i], dir_fd)
        elif event in _READ_EVENTS:
            check_read(args[_READ_EVENTS[event]])
        elif event in _METADATA_EVENTS:
            raise PermissionError(errno.EPERM, _METADATA)
        elif event in _PROCESS_EVENTS:
            raise PermissionError(errno.EPERM, _PROCESS)
        elif event == "socket.__new__":
            # Raised for new sockets and for descriptors being wrapped (socketpair(), accept(),
            # fromfd(); family -1 when not given). The kernel refuses every new socket.
            family = args[1]
            if family != -1 and (family != _AF_UNIX or new_socket(sys._getframe(1))):
                raise PermissionError(errno.EACCES, _SOCKET)
        elif event in ("socket.sendto", "socket.sendmsg"):
            raise PermissionError(errno.EACCES, _SEND)
        elif event in _NETWORK_EVENTS:
            raise PermissionError(errno.EACCES, _NETWORK)

    sys.addaudithook(hook)
