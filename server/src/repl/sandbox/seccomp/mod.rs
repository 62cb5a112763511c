//! seccomp: the system calls model code may not make.
//!
//! A small classic-BPF program, built here (no libseccomp). Denied calls fail with `EPERM` or
//! `EACCES` (Python raises `PermissionError`), never by killing the worker, except a call made
//! under another architecture (32-bit `int 0x80` on x86-64), which kills it.
//!
//! - sockets, by allow-list: the worker talks to the server over pipes it had before the filter,
//!   so it needs no new socket. `socket()` is refused for every family and type (`EACCES`: no
//!   TCP, UDP, raw, netlink, nor Unix sockets; `AF_UNIX` + `SOCK_RAW` is a datagram socket to the
//!   kernel, able to reach `/dev/log`, the journal or systemd's notify socket). `socketpair()` only
//!   for `AF_UNIX` `SOCK_STREAM` (flags allowed), for in-process plumbing such as
//!   `socket.socketpair()` and asyncio's self-pipe: a connected pair reaches nothing else.
//!   `sendto()` only with a NULL destination (that is `send()`); `sendmsg()`/`sendmmsg()` never
//!   (their destination is inside `struct msghdr`, which seccomp cannot read); `connect()`,
//!   `bind()`, `listen()` never. Calls on descriptors the process already has (receiving,
//!   `shutdown`, socket options) are allowed.
//! - file metadata, which Landlock does not cover: `chmod`, `chown`, `utime*`, extended
//!   attributes, and the `chattr` ioctls (`FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR`), by path or by
//!   descriptor: otherwise a read-only file could still have its mode, owner, times or immutable
//!   flag changed (root owns every file).
//! - processes: `fork`, `vfork`, `clone` without `CLONE_THREAD` (threads keep working), `clone3`
//!   (`ENOSYS`, so the C library falls back to `clone`, whose flags can be checked), `execve`.
//!   Unlike `RLIMIT_NPROC` this also holds for root and does not count the user's other processes.
//! - signals: `kill` only to the worker's own process group or itself, `tgkill` and
//!   `rt_(tg)sigqueueinfo` only to itself; `tkill`, pidfds refused.
//! - other processes' memory and the kernel: `ptrace`, `process_vm_*`, `kcmp`, mounts and
//!   namespaces, `bpf`, `perf_event_open`, `io_uring` (its operations bypass seccomp), keyrings,
//!   modules, `kexec`, `reboot`, swap, clocks, `syslog`, handles (`open_by_handle_at`),
//!   `userfaultfd`, `personality`, terminal injection (`TIOCSTI`).
//! - limits: `setrlimit` and `prlimit64` with a new limit (root could raise the hard limits).
//! - scheduling: `setpriority` (`nice`), `sched_setaffinity`, `sched_setattr`,
//!   `sched_setscheduler`, `sched_setparam`, `ioprio_set`, `migrate_pages`, `move_pages`: they
//!   take a pid, a process group or a user, so model code could slow the user's other processes.
//!   Reading the same settings is allowed.
//! - process groups: `setpgid`, `setsid`; the worker stays the leader of its own group, the one
//!   `kill(0)` reaches and the server kills.
//! - `truncate(2)` by path when Landlock is older than ABI 3 (which cannot check it).

use super::SandboxError;
use std::io;

// Classic BPF opcodes (linux/filter.h).
/// BPF_LD | BPF_W | BPF_ABS (the first two are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_AND_K: u16 = 0x04 | 0x50;
const BPF_RET_K: u16 = 0x06;

// seccomp return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// x32 system calls on x86-64 carry this bit in their number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const CLONE_THREAD: u32 = 0x0001_0000;
/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
const CLONE_NEW_MASK: u32 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
const SOCK_TYPE_MASK: u32 = 0xf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

fn ret(v: u32) -> Insn {
    stmt(BPF_RET_K, v)
}

fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

/// What one system call gets; every body ends in a return on all of its paths.
enum Body {
    Errno(i32),
    /// Allowed for threads: `CLONE_THREAD` set, no `CLONE_NEW*`; else EPERM.
    Clone,
    /// Allowed for `AF_UNIX` `SOCK_STREAM` (any flags), else EACCES.
    Socketpair,
    /// Allowed when the low 32 bits of the argument are one of the values, else EPERM.
    ArgIn(u32, Vec<u32>),
    /// Denied (EPERM) when the low 32 bits of the argument are one of the values.
    ArgNotIn(u32, Vec<u32>),
    /// Allowed when the (pointer) argument is NULL, else the errno.
    ArgNull(u32, i32),
}

impl Body {
    fn insns(&self) -> Vec<Insn> {
        let eperm = ret(errno(libc::EPERM));
        let eacces = ret(errno(libc::EACCES));
        match self {
            Body::Errno(e) => vec![ret(errno(*e))],
            Body::Clone => vec![
                stmt(BPF_LD_W_ABS, off_arg_lo(0)),
                jump(BPF_JSET_K, CLONE_NEW_MASK, 2, 0),
                jump(BPF_JSET_K, CLONE_THREAD, 0, 1),
                ret(RET_ALLOW),
                eperm,
            ],
            // The kernel reads both arguments as `int`: the low halves are what it sees.
            Body::Socketpair => vec![
                stmt(BPF_LD_W_ABS, off_arg_lo(0)),
                jump(BPF_JEQ_K, libc::AF_UNIX as u32, 1, 0),
                eacces,
                stmt(BPF_LD_W_ABS, off_arg_lo(1)),
                stmt(BPF_AND_K, SOCK_TYPE_MASK),
                jump(BPF_JEQ_K, libc::SOCK_STREAM as u32, 1, 0),
                eacces,
                ret(RET_ALLOW),
            ],
            Body::ArgIn(arg, values) => {
                let n = values.len();
                let mut v = vec![stmt(BPF_LD_W_ABS, off_arg_lo(*arg))];
                for (k, &value) in values.iter().enumerate() {
                    // From the k-th test (position k + 1), `allow` is at n + 2.
                    v.push(jump(BPF_JEQ_K, value, (n - k) as u8, 0));
                }
                v.push(eperm);
                v.push(ret(RET_ALLOW));
                v
            }
            Body::ArgNotIn(arg, values) => {
                let n = values.len();
                let mut v = vec![stmt(BPF_LD_W_ABS, off_arg_lo(*arg))];
                for (k, &value) in values.iter().enumerate() {
                    v.push(jump(BPF_JEQ_K, value, (n - k) as u8, 0));
                }
                v.push(ret(RET_ALLOW));
                v.push(eperm);
                v
            }
            Body::ArgNull(arg, e) => vec![
                stmt(BPF_LD_W_ABS, off_arg_lo(*arg)),
                jump(BPF_JEQ_K, 0, 0, 2),
                stmt(BPF_LD_W_ABS, off_arg_hi(*arg)),
                jump(BPF_JEQ_K, 0, 1, 0),
                ret(errno(*e)),
                ret(RET_ALLOW),
            ],
        }
    }
}

/// System calls refused with EPERM whatever their arguments.
fn denied() -> Vec<libc::c_long> {
    use libc::*;
    let mut v = vec![
        // Starting programs.
        SYS_execve,
        SYS_execveat,
        // Other processes' memory, descriptors and signals.
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_process_madvise,
        SYS_kcmp,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_pidfd_send_signal,
        SYS_tkill,
        // Mounts and namespaces.
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_unshare,
        SYS_setns,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_move_mount,
        SYS_open_tree,
        SYS_mount_setattr,
        // The kernel's attack surface, and ways around the other rules.
        SYS_bpf,
        SYS_perf_event_open,
        SYS_fanotify_init,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_userfaultfd,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_personality,
        // Administration (root in CI and containers).
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_reboot,
        SYS_swapon,
        SYS_swapoff,
        SYS_acct,
        SYS_quotactl,
        SYS_syslog,
        SYS_sethostname,
        SYS_setdomainname,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_vhangup,
        // Limits stay as set.
        SYS_setrlimit,
        // Scheduling, also of the user's other processes (by pid, process group or user):
        // niceness, CPU affinity, scheduling policy, I/O priority, NUMA placement.
        SYS_setpriority,
        SYS_sched_setaffinity,
        SYS_sched_setattr,
        SYS_sched_setscheduler,
        SYS_sched_setparam,
        SYS_ioprio_set,
        SYS_migrate_pages,
        SYS_move_pages,
        // The worker stays the leader of its own process group, which `kill(0)` addresses and
        // the server kills.
        SYS_setpgid,
        SYS_setsid,
        // File metadata (Landlock checks contents and names, not modes, owners, times, xattrs).
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchmodat2,
        SYS_fchown,
        SYS_fchownat,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_utimensat,
        SYS_quotactl_fd,
        // Newer calls (same numbers on every architecture): setxattrat, removexattrat,
        // file_setattr.
        463,
        466,
        469,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        SYS_fork,
        SYS_vfork,
        SYS_iopl,
        SYS_ioperm,
        SYS_uselib,
        SYS_lookup_dcookie,
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_utime,
        SYS_utimes,
        SYS_futimesat,
    ]);
    v
}

/// The filter for a worker whose pid (and process group id) is `pid`, on a kernel with Landlock
/// ABI `landlock_abi`.
fn rules(pid: u32, landlock_abi: i32) -> Vec<(libc::c_long, Body)> {
    use libc::*;
    let mut r: Vec<(c_long, Body)> = vec![
        (SYS_clone, Body::Clone),
        (SYS_clone3, Body::Errno(ENOSYS)),
        // Sockets: no new ones but connected stream pairs, no addressing anything.
        (SYS_socket, Body::Errno(EACCES)),
        (SYS_socketpair, Body::Socketpair),
        (SYS_connect, Body::Errno(EACCES)),
        (SYS_bind, Body::Errno(EACCES)),
        (SYS_listen, Body::Errno(EACCES)),
        // send() is sendto() with a NULL destination.
        (SYS_sendto, Body::ArgNull(4, EACCES)),
        // The destination is inside struct msghdr, which seccomp cannot read.
        (SYS_sendmsg, Body::Errno(EACCES)),
        (SYS_sendmmsg, Body::Errno(EACCES)),
        // kill(0) is the worker's own process group (it leads it), kill(pid) itself.
        (SYS_kill, Body::ArgIn(0, vec![0, pid, pid.wrapping_neg()])),
        (SYS_tgkill, Body::ArgIn(0, vec![pid])),
        (SYS_rt_sigqueueinfo, Body::ArgIn(0, vec![pid])),
        (SYS_rt_tgsigqueueinfo, Body::ArgIn(0, vec![pid])),
        (SYS_prlimit64, Body::ArgNull(2, EPERM)),
        (
            SYS_ioctl,
            Body::ArgNotIn(
                1,
                vec![
                    TIOCSTI as u32,
                    0x541C,      // TIOCLINUX
                    0x4008_6602, // FS_IOC_SETFLAGS
                    0x4004_6602, // FS_IOC32_SETFLAGS
                    0x401c_5820, // FS_IOC_FSSETXATTR
                    0x4008_7602, // FS_IOC_SETVERSION
                ],
            ),
        ),
    ];
    if landlock_abi < 3 {
        r.push((SYS_truncate, Body::Errno(EPERM)));
    }
    r.extend(denied().into_iter().map(|nr| (nr, Body::Errno(EPERM))));
    r
}

fn build(pid: u32, landlock_abi: i32) -> Vec<Insn> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        ret(RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
        p.push(ret(errno(libc::ENOSYS)));
    }
    for (nr, body) in rules(pid, landlock_abi) {
        let body = body.insns();
        assert!(body.len() < 256, "a rule body fits a BPF jump");
        p.push(jump(BPF_JEQ_K, nr as u32, 0, body.len() as u8));
        p.extend(body);
    }
    p.push(ret(RET_ALLOW));
    p
}

/// Whether the kernel supports seccomp at all.
pub(super) fn available() -> bool {
    // SAFETY: PR_GET_SECCOMP takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}

/// Installs the filter on every thread of the process, for good (`PR_SET_NO_NEW_PRIVS` first).
pub(super) fn install(landlock_abi: i32) -> Result<(), SandboxError> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let prog = build(pid, landlock_abi);
    #[repr(C)]
    struct Fprog {
        len: libc::c_ushort,
        filter: *const Insn,
    }
    let fprog = Fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr(),
    };
    let step = |step: &'static str| move |source: io::Error| SandboxError::Step { step, source };
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(step("setting no_new_privs")(io::Error::last_os_error()));
    }
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
    // SAFETY: `fprog` points to `prog`, which outlives the call; the kernel copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const Fprog,
        )
    };
    match rc {
        0 => Ok(()),
        rc if rc > 0 => Err(step("installing the seccomp filter on every thread")(
            io::Error::other(format!("thread {rc} could not be synchronized")),
        )),
        _ => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) {
                return Err(SandboxError::Unavailable(format!(
                    "this kernel refused the seccomp filter ({e}); seccomp filters \
                     (CONFIG_SECCOMP_FILTER) are needed"
                )));
            }
            Err(step("installing the seccomp filter")(e))
        }
    }
}

#[cfg(test)]
mod tests;
