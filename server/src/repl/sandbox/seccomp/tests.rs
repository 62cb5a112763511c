use super::*;

/// A classic-BPF interpreter for the few instructions the filter uses.
fn run(prog: &[Insn], arch: u32, nr: libc::c_long, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&(nr as i32).to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            BPF_LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            BPF_AND_K => acc &= i.k,
            BPF_RET_K => return i.k,
            BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                let taken = match i.code {
                    BPF_JEQ_K => acc == i.k,
                    BPF_JGE_K => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

const PID: u32 = 4242;

fn check(nr: libc::c_long, args: [u64; 6]) -> u32 {
    run(&build(PID, 7), AUDIT_ARCH, nr, args)
}

fn args(a: &[u64]) -> [u64; 6] {
    let mut v = [0u64; 6];
    v[..a.len()].copy_from_slice(a);
    v
}

#[test]
fn ordinary_calls_are_allowed() {
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_openat,
        libc::SYS_mmap,
        libc::SYS_futex,
        libc::SYS_getrandom,
        libc::SYS_truncate,
    ] {
        assert_eq!(check(nr, args(&[])), RET_ALLOW, "syscall {nr}");
    }
}

#[test]
fn threads_yes_processes_no() {
    // pthread_create's flags.
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(check(libc::SYS_clone, args(&[thread])), RET_ALLOW);
    // fork() and posix_spawn's vfork-style clone.
    let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
    assert_eq!(check(libc::SYS_clone, args(&[fork])), errno(libc::EPERM));
    let spawn = (libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64;
    assert_eq!(check(libc::SYS_clone, args(&[spawn])), errno(libc::EPERM));
    let ns = thread | libc::CLONE_NEWUSER as u64;
    assert_eq!(check(libc::SYS_clone, args(&[ns])), errno(libc::EPERM));
    assert_eq!(check(libc::SYS_clone3, args(&[])), errno(libc::ENOSYS));
    assert_eq!(check(libc::SYS_execve, args(&[])), errno(libc::EPERM));
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(check(libc::SYS_fork, args(&[])), errno(libc::EPERM));
        assert_eq!(check(libc::SYS_vfork, args(&[])), errno(libc::EPERM));
    }
}

#[test]
fn no_new_sockets_only_stream_socketpairs() {
    let denied = errno(libc::EACCES);
    let sock = |domain: i32, ty: i32| check(libc::SYS_socket, args(&[domain as u64, ty as u64]));
    let pair =
        |domain: i32, ty: i32| check(libc::SYS_socketpair, args(&[domain as u64, ty as u64]));
    for (domain, ty) in [
        (libc::AF_INET, libc::SOCK_STREAM),
        (libc::AF_INET6, libc::SOCK_DGRAM),
        (libc::AF_PACKET, libc::SOCK_RAW),
        (libc::AF_NETLINK, libc::SOCK_RAW),
        (libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC),
        // The kernel makes an AF_UNIX raw socket a datagram socket.
        (libc::AF_UNIX, libc::SOCK_RAW),
        (libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
        (libc::AF_UNIX, libc::SOCK_SEQPACKET),
    ] {
        assert_eq!(sock(domain, ty), denied, "socket({domain}, {ty})");
    }
    for ty in [
        libc::SOCK_STREAM,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
    ] {
        assert_eq!(
            pair(libc::AF_UNIX, ty),
            RET_ALLOW,
            "socketpair(AF_UNIX, {ty})"
        );
    }
    for (domain, ty) in [
        (libc::AF_UNIX, libc::SOCK_DGRAM),
        (libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC),
        (libc::AF_UNIX, libc::SOCK_RAW),
        (libc::AF_UNIX, libc::SOCK_SEQPACKET),
        (libc::AF_INET, libc::SOCK_STREAM),
    ] {
        assert_eq!(pair(domain, ty), denied, "socketpair({domain}, {ty})");
    }
    assert_eq!(check(libc::SYS_connect, args(&[3])), denied);
    assert_eq!(check(libc::SYS_bind, args(&[3])), denied);
    assert_eq!(check(libc::SYS_listen, args(&[3])), denied);
}

#[test]
fn sending_only_without_a_destination() {
    let denied = errno(libc::EACCES);
    // send() is sendto(fd, buf, len, flags, NULL, 0).
    let send = check(libc::SYS_sendto, args(&[3, 0x7000, 4, 0, 0, 0]));
    assert_eq!(send, RET_ALLOW);
    let to = check(libc::SYS_sendto, args(&[3, 0x7000, 4, 0, 0x7100, 110]));
    assert_eq!(to, denied);
    // A pointer above 4 GiB whose low half is zero is not NULL.
    let high = check(libc::SYS_sendto, args(&[3, 0x7000, 4, 0, 1 << 40, 110]));
    assert_eq!(high, denied);
    // The destination of sendmsg is inside struct msghdr, which seccomp cannot read.
    assert_eq!(check(libc::SYS_sendmsg, args(&[3, 0x7000, 0])), denied);
    assert_eq!(check(libc::SYS_sendmmsg, args(&[3, 0x7000, 1, 0])), denied);
    // Receiving and the other calls on descriptors the process already has.
    for nr in [
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_shutdown,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
    ] {
        assert_eq!(check(nr, args(&[3])), RET_ALLOW, "syscall {nr}");
    }
}

#[test]
fn scheduling_and_process_groups_stay_as_they_are() {
    for nr in [
        libc::SYS_setpriority,
        libc::SYS_sched_setaffinity,
        libc::SYS_sched_setattr,
        libc::SYS_sched_setscheduler,
        libc::SYS_sched_setparam,
        libc::SYS_ioprio_set,
        libc::SYS_migrate_pages,
        libc::SYS_move_pages,
        libc::SYS_setpgid,
        libc::SYS_setsid,
    ] {
        assert_eq!(check(nr, args(&[0])), errno(libc::EPERM), "syscall {nr}");
    }
    for nr in [
        libc::SYS_getpriority,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_getattr,
        libc::SYS_sched_getscheduler,
        libc::SYS_sched_getparam,
        libc::SYS_sched_yield,
        libc::SYS_ioprio_get,
        libc::SYS_getpgid,
    ] {
        assert_eq!(check(nr, args(&[0])), RET_ALLOW, "syscall {nr}");
    }
}

#[test]
fn signals_only_to_itself() {
    let kill = |pid: i32| check(libc::SYS_kill, args(&[pid as u32 as u64, 9]));
    assert_eq!(kill(0), RET_ALLOW);
    assert_eq!(kill(PID as i32), RET_ALLOW);
    assert_eq!(kill(-(PID as i32)), RET_ALLOW);
    assert_eq!(kill(-1), errno(libc::EPERM));
    assert_eq!(kill(1), errno(libc::EPERM));
    assert_eq!(
        check(libc::SYS_tgkill, args(&[PID as u64, 7, 11])),
        RET_ALLOW
    );
    assert_eq!(
        check(libc::SYS_tgkill, args(&[1, 1, 9])),
        errno(libc::EPERM)
    );
    assert_eq!(check(libc::SYS_tkill, args(&[1, 9])), errno(libc::EPERM));
}

#[test]
fn limits_can_be_read_not_set() {
    let get = check(
        libc::SYS_prlimit64,
        args(&[0, libc::RLIMIT_AS as u64, 0, 0x7000]),
    );
    assert_eq!(get, RET_ALLOW);
    let set = check(libc::SYS_prlimit64, args(&[0, 9, 0x7000, 0]));
    assert_eq!(set, errno(libc::EPERM));
    let set_high = check(libc::SYS_prlimit64, args(&[0, 9, 1 << 40, 0]));
    assert_eq!(set_high, errno(libc::EPERM));
    assert_eq!(check(libc::SYS_setrlimit, args(&[])), errno(libc::EPERM));
}

#[test]
fn the_rest_of_the_deny_list() {
    for nr in [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_io_uring_setup,
        libc::SYS_open_by_handle_at,
    ] {
        assert_eq!(check(nr, args(&[])), errno(libc::EPERM), "syscall {nr}");
    }
    for nr in [
        libc::SYS_fchmodat,
        libc::SYS_fchown,
        libc::SYS_utimensat,
        libc::SYS_fsetxattr,
    ] {
        assert_eq!(check(nr, args(&[])), errno(libc::EPERM), "syscall {nr}");
    }
    let chattr = check(libc::SYS_ioctl, args(&[3, 0x4008_6602]));
    assert_eq!(chattr, errno(libc::EPERM));
    let tiocsti = check(libc::SYS_ioctl, args(&[0, 0x5412 /* TIOCSTI */]));
    assert_eq!(tiocsti, errno(libc::EPERM));
    let tcgets = check(libc::SYS_ioctl, args(&[0, 0x5401 /* TCGETS */]));
    assert_eq!(tcgets, RET_ALLOW);
    // truncate(2) by path only where Landlock cannot check it.
    let old = run(&build(PID, 2), AUDIT_ARCH, libc::SYS_truncate, args(&[]));
    assert_eq!(old, errno(libc::EPERM));
}

#[test]
fn other_architectures_are_killed() {
    assert_eq!(
        run(&build(PID, 7), 0x4000_0003, libc::SYS_read, args(&[])),
        RET_KILL_PROCESS
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        check(X32_SYSCALL_BIT as libc::c_long + 41, args(&[2, 1])),
        errno(libc::ENOSYS)
    );
}
