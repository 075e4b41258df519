//! aarch64 Linux syscall numbers (asm-generic/unistd.h) and the table of those serviced.

macro_rules! syscalls {
    ($($family:ident { $($name:ident = $nr:expr),* $(,)? })*) => {
        $($(pub const $name: u64 = $nr;)*)*
        /// Every serviced syscall: (number, name, family module).
        pub const SERVICED: &[(u64, &str, &str)] = &[
            $($(($nr, stringify!($name), stringify!($family)),)*)*
        ];
    };
}

syscalls! {
    fs {
        GETCWD = 17, DUP = 23, DUP3 = 24, FCNTL = 25, IOCTL = 29, MKDIRAT = 34, UNLINKAT = 35,
        FTRUNCATE = 46, FACCESSAT = 48, CHDIR = 49, FCHDIR = 50, FCHMOD = 52, FCHMODAT = 53,
        FCHOWNAT = 54, FCHOWN = 55, OPENAT = 56, CLOSE = 57, GETDENTS64 = 61, LSEEK = 62,
        READ = 63, WRITE = 64, READV = 65, WRITEV = 66, PREAD64 = 67, PWRITE64 = 68,
        PREADV = 69, PWRITEV = 70, PSELECT6 = 72, PPOLL = 73, READLINKAT = 78, NEWFSTATAT = 79, FSTAT = 80,
        SENDFILE = 71, SYNC = 81, FSYNC = 82, FDATASYNC = 83, TIMERFD_CREATE = 85, TIMERFD_SETTIME = 86, TIMERFD_GETTIME = 87, UTIMENSAT = 88, UMASK = 166,
        STATX = 291, CLOSE_RANGE = 436, FACCESSAT2 = 439, PIPE2 = 59,
        SYMLINKAT = 36, LINKAT = 37, INOTIFY_INIT1 = 26, MKNODAT = 33, INOTIFY_ADD_WATCH = 27, INOTIFY_RM_WATCH = 28, FLOCK = 32, FALLOCATE = 47, COPY_FILE_RANGE = 285, MEMFD_CREATE = 279, RENAMEAT = 38, STATFS = 43, TRUNCATE = 45, FSTATFS = 44, RENAMEAT2 = 276, FCHMODAT2 = 452,
    }
    xattr {
        SETXATTR = 5, LSETXATTR = 6, FSETXATTR = 7, GETXATTR = 8, LGETXATTR = 9, FGETXATTR = 10,
        LISTXATTR = 11, LLISTXATTR = 12, FLISTXATTR = 13, REMOVEXATTR = 14, LREMOVEXATTR = 15,
        FREMOVEXATTR = 16,
    }
    mm {
        BRK = 214, MUNMAP = 215, MREMAP = 216, MMAP = 222, MPROTECT = 226, MSYNC = 227,
        MLOCK = 228, MUNLOCK = 229, MADVISE = 233,
    }
    process {
        EXIT = 93, EXIT_GROUP = 94, WAITID = 95, SET_TID_ADDRESS = 96, FUTEX = 98,
        SET_ROBUST_LIST = 99, GET_ROBUST_LIST = 100, SCHED_GETAFFINITY = 123, SCHED_YIELD = 124,
        SETREGID = 143, SETGID = 144, SETREUID = 145, SETUID = 146, SETRESUID = 147, GETRESUID = 148,
        SETRESGID = 149, GETRESGID = 150, GETGROUPS = 158, SETGROUPS = 159, SETPGID = 154, GETPGID = 155, GETSID = 156, SETSID = 157, UNAME = 160, GETRLIMIT = 163,
        SETRLIMIT = 164, GETRUSAGE = 165, PRCTL = 167, GETPID = 172, GETPPID = 173, GETUID = 174,
        GETEUID = 175, GETGID = 176, GETEGID = 177, GETTID = 178, SYSINFO = 179, WAIT4 = 260,
        PRLIMIT64 = 261, GETRANDOM = 278, CLONE = 220, EXECVE = 221,
        SCHED_SETAFFINITY = 122, SETPRIORITY = 140, GETPRIORITY = 141, PERSONALITY = 92,
    }
    time {
        NANOSLEEP = 101, CLOCK_GETTIME = 113, CLOCK_GETRES = 114, CLOCK_NANOSLEEP = 115,
        TIMES = 153, GETTIMEOFDAY = 169, CLOCK_SETTIME = 112, SETTIMEOFDAY = 170,
    }
    poll {
        EVENTFD2 = 19, EPOLL_CREATE1 = 20, EPOLL_CTL = 21, EPOLL_PWAIT = 22, EPOLL_PWAIT2 = 441,
    }
    net {
        SOCKET = 198, SOCKETPAIR = 199, BIND = 200, LISTEN = 201, ACCEPT = 202, CONNECT = 203,
        GETSOCKNAME = 204, GETPEERNAME = 205, SENDTO = 206, RECVFROM = 207, SETSOCKOPT = 208,
        GETSOCKOPT = 209, SHUTDOWN = 210, SENDMSG = 211, RECVMSG = 212, ACCEPT4 = 242,
    }
    signal {
        KILL = 129, TKILL = 130, TGKILL = 131, SIGALTSTACK = 132, RT_SIGACTION = 134,
        RT_SIGSUSPEND = 133, RT_SIGPROCMASK = 135, RT_SIGPENDING = 136, RT_SIGRETURN = 139,
        RT_SIGTIMEDWAIT = 137, PIDFD_SEND_SIGNAL = 424, PIDFD_OPEN = 434,
    }
    itimer {
        GETITIMER = 102, SETITIMER = 103,
    }
}

/// Whether `nr` resolves a path or reads a directory, so /proc must be current first.
pub fn looks_up_paths(nr: u64) -> bool {
    matches!(
        nr,
        OPENAT | NEWFSTATAT | STATX | READLINKAT | FACCESSAT | FACCESSAT2 | CHDIR | FCHDIR | GETDENTS64 | STATFS | EXECVE | LINKAT
            | INOTIFY_ADD_WATCH | SETXATTR | LSETXATTR | GETXATTR | LGETXATTR | LISTXATTR | LLISTXATTR | REMOVEXATTR | LREMOVEXATTR
    )
}

/// Whether `nr` returns EINTR after a handler even with SA_RESTART (Linux's
/// ERESTARTNOHAND: the waits for readiness, as signal(7) lists them).
pub fn never_restarted(nr: u64) -> bool {
    matches!(nr, PPOLL | PSELECT6 | EPOLL_PWAIT | EPOLL_PWAIT2)
}

/// Whether `nr` sends a signal (a thread in rt_sigtimedwait may have one to take).
pub fn sends_signals(nr: u64) -> bool {
    matches!(nr, KILL | TKILL | TGKILL | PIDFD_SEND_SIGNAL)
}

/// Whether `nr` may change a file's times (so the shim reads the clock first).
pub fn stamps_files(nr: u64) -> bool {
    matches!(
        nr,
        OPENAT | WRITE | WRITEV | PWRITE64 | PWRITEV | FTRUNCATE | TRUNCATE | FALLOCATE | MKDIRAT | UNLINKAT | RENAMEAT | RENAMEAT2
            | LINKAT | SYMLINKAT | MKNODAT | FCHMOD | FCHMODAT | FCHMODAT2 | FCHOWN | FCHOWNAT | UTIMENSAT | SENDFILE | COPY_FILE_RANGE
            | MEMFD_CREATE
    )
}

/// Names of a few syscalls that are not serviced, for clearer logs.
pub fn name(nr: u64) -> &'static str {
    if let Some(&(_, n, _)) = SERVICED.iter().find(|s| s.0 == nr) {
        return n;
    }
    match nr {
        437 => "OPENAT2",
        435 => "CLONE3",
        283 => "MEMBARRIER",
        293 => "RSEQ",
        _ => "?",
    }
}
