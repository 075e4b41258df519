//! The syscalls, one module per family; [`dispatch`] routes a number to its handler.

pub mod fs;
pub mod lock;
pub mod mm;
pub mod net;
pub mod nr;
pub mod pidfd;
pub mod poll;
pub mod process;
pub mod itimer;
pub mod signal;
pub mod sigwait;
pub mod time;
pub mod xattr;

use crate::errno::SysResult;
use crate::platform::Platform;
use crate::Shim;

/// A handler's result.
pub enum Outcome {
    Ret(SysResult<u64>),
    Exit(i32),
    Killed(i32),
    /// Anything else the runner must do (block, spawn, exec, thread exit).
    Action(crate::Action),
}

impl From<SysResult<u64>> for Outcome {
    fn from(r: SysResult<u64>) -> Self {
        Outcome::Ret(r)
    }
}

/// Largest chunk copied between the app and a file in one step.
pub const CHUNK: usize = 64 * 1024;

/// Which file an xattr call of a family starting at `first` (path, lpath, fd) names.
fn xattr_target(nr: u64, first: u64) -> xattr::Target {
    match nr.wrapping_sub(first) {
        0 => xattr::Target::Path,
        1 => xattr::Target::LinkPath,
        _ => xattr::Target::Fd,
    }
}

/// Routes `nr`; `None` when it is not serviced.
pub fn dispatch<E: Platform>(s: &mut Shim<'_>, env: &mut E, nr: u64, a: [u64; 6]) -> Option<Outcome> {
    use nr::*;
    if let Some(o) = crate::pty::gate(s, env, nr, a) {
        return Some(o);
    }
    let r: SysResult<u64> = match nr {
        // fs
        GETCWD => fs::getcwd(s, env, a),
        DUP => fs::dup(s, a),
        DUP3 => fs::dup3(s, a),
        FCNTL => fs::fcntl(s, env, a),
        IOCTL => fs::ioctl(s, env, a),
        MKDIRAT => fs::mkdirat(s, env, a),
        UNLINKAT => fs::unlinkat(s, env, a),
        RENAMEAT => fs::renameat2(s, env, [a[0], a[1], a[2], a[3], 0, 0]),
        RENAMEAT2 => fs::renameat2(s, env, a),
        COPY_FILE_RANGE => fs::copy_file_range(s, env, a),
        FALLOCATE => fs::fallocate(s, env, a),
        FLOCK => fs::flock(s, a),
        MKNODAT => fs::mknodat(s, env, a),
        INOTIFY_INIT1 => fs::inotify_init1(s, a),
        INOTIFY_ADD_WATCH => fs::inotify_add_watch(s, env, a),
        INOTIFY_RM_WATCH => fs::inotify_rm_watch(s, a),
        MEMFD_CREATE => fs::memfd_create(s, env, a),
        SCHED_SETAFFINITY => process::sched_setaffinity(s, env, a),
        GETPRIORITY => process::getpriority(s, a),
        SETPRIORITY => process::setpriority(s, a),
        PERSONALITY => process::personality(s, a),
        TRUNCATE => fs::truncate(s, env, a),
        LINKAT => fs::linkat(s, env, a),
        SYMLINKAT => fs::symlinkat(s, env, a),
        STATFS => fs::statfs(s, env, a),
        FSTATFS => fs::fstatfs(s, env, a),
        FCHMODAT2 => fs::fchmodat2(s, env, a),
        FTRUNCATE => fs::ftruncate(s, env, a),
        FACCESSAT | FACCESSAT2 => fs::faccessat(s, env, a, nr == FACCESSAT2),
        CHDIR => fs::chdir(s, env, a),
        FCHDIR => fs::fchdir(s, a),
        FCHMOD => fs::fchmod(s, a),
        FCHMODAT => fs::fchmodat(s, env, a),
        FCHOWNAT => fs::fchownat(s, env, a),
        FCHOWN => fs::fchown(s, a),
        OPENAT => fs::openat(s, env, a),
        CLOSE => fs::close(s, a),
        PIPE2 => fs::pipe2(s, env, a),
        CLOSE_RANGE => fs::close_range(s, a),
        SENDFILE => fs::sendfile(s, env, a),
        GETDENTS64 => fs::getdents64(s, env, a),
        LSEEK => fs::lseek(s, env, a),
        READ => fs::read(s, env, a),
        WRITE => fs::write(s, env, a),
        READV => fs::readv(s, env, a, None),
        WRITEV => fs::writev(s, env, a, None),
        PREAD64 => fs::pread64(s, env, a),
        PWRITE64 => fs::pwrite64(s, env, a),
        PREADV => fs::readv(s, env, a, Some(a[3])),
        PWRITEV => fs::writev(s, env, a, Some(a[3])),
        PPOLL => return Some(fs::ppoll(s, env, a)),
        PSELECT6 => return Some(fs::pselect6(s, env, a)),
        READLINKAT => fs::readlinkat(s, env, a),
        NEWFSTATAT => fs::newfstatat(s, env, a),
        FSTAT => fs::fstat(s, env, a),
        STATX => fs::statx(s, env, a),
        SYNC => Ok(0),
        FSYNC | FDATASYNC => s.fds.get(a[0] as i32 as i64).map(|_| 0),
        UTIMENSAT => fs::utimensat(s, env, a),
        UMASK => Ok(u64::from(core::mem::replace(&mut s.proc_.umask, a[0] as u32 & 0o777))),
        // xattr
        SETXATTR | LSETXATTR | FSETXATTR => xattr::setxattr(s, env, xattr_target(nr, SETXATTR), a),
        GETXATTR | LGETXATTR | FGETXATTR => xattr::getxattr(s, env, xattr_target(nr, GETXATTR), a),
        REMOVEXATTR | LREMOVEXATTR | FREMOVEXATTR => xattr::getxattr(s, env, xattr_target(nr, REMOVEXATTR), a),
        LISTXATTR | LLISTXATTR | FLISTXATTR => xattr::listxattr(s, env, xattr_target(nr, LISTXATTR), a),
        // mm
        BRK => mm::brk(s, env, a),
        MUNMAP => mm::munmap(s, env, a),
        MREMAP => mm::mremap(s, env, a),
        MMAP => mm::mmap(s, env, a),
        MPROTECT => mm::mprotect(s, env, a),
        MADVISE => mm::madvise(s, env, a),
        MSYNC => mm::msync(s, env, a),
        MLOCK | MUNLOCK => Ok(0),
        // process
        EXIT => return Some(process::exit_thread(s, env, (a[0] & 0xff) as i32)),
        EXIT_GROUP => return Some(Outcome::Exit((a[0] & 0xff) as i32)),
        WAITID => return Some(process::waitid(s, env, a)),
        WAIT4 => return Some(process::wait4(s, env, a)),
        CLONE => return Some(process::clone(s, env, a)),
        EXECVE => return Some(process::execve(s, env, a)),
        SET_TID_ADDRESS => {
            let cur = s.tasks.cur;
            if let Some(t) = s.tasks.threads.get_mut(&cur) {
                t.clear_tid = a[0];
            }
            Ok(u64::from(cur))
        }
        FUTEX => return Some(process::futex(s, env, a)),
        SET_ROBUST_LIST => process::set_robust_list(s, a),
        GET_ROBUST_LIST => process::get_robust_list(s, env, a),
        SCHED_GETAFFINITY => process::sched_getaffinity(env, a),
        SCHED_YIELD => Ok(0),
        SETPGID => process::setpgid(s, a),
        GETPGID => process::getpgid(s, a, false),
        GETSID => process::getpgid(s, a, true),
        SETSID => process::setsid(s),
        UNAME => process::uname(s, env, a),
        GETRLIMIT => process::prlimit(s, env, [0, a[0], 0, a[1], 0, 0]),
        SETRLIMIT => process::prlimit(s, env, [0, a[0], a[1], 0, 0, 0]),
        PRLIMIT64 => process::prlimit(s, env, a),
        GETRUSAGE => process::getrusage(s, env, a),
        PRCTL => process::prctl(s, env, a),
        GETPID | GETTID | GETPPID | GETUID | GETEUID | GETGID | GETEGID => Ok(process::identity(s, nr).unwrap_or(0)),
        SETUID => process::set_id(s, false, [a[0], u64::MAX, u64::MAX]),
        SETGID => process::set_id(s, true, [a[0], u64::MAX, u64::MAX]),
        SETREUID => process::set_id(s, false, [a[0], a[1], u64::MAX]),
        SETREGID => process::set_id(s, true, [a[0], a[1], u64::MAX]),
        SETRESUID => process::set_id(s, false, [a[0], a[1], a[2]]),
        SETRESGID => process::set_id(s, true, [a[0], a[1], a[2]]),
        GETRESUID => process::get_res_id(env, s.proc_.uid, a),
        GETRESGID => process::get_res_id(env, s.proc_.gid, a),
        GETGROUPS => process::getgroups(s, env, a),
        SETGROUPS => process::setgroups(s, env, a),
        SYSINFO => process::sysinfo(s, env, a),
        GETRANDOM => process::getrandom(env, a),
        // time
        NANOSLEEP => return Some(time::nanosleep(s, env, a)),
        CLOCK_GETTIME => time::clock_gettime(s, env, a),
        CLOCK_GETRES => time::clock_getres(s, env, a),
        CLOCK_SETTIME => time::clock_settime(s, env, a),
        SETTIMEOFDAY => time::settimeofday(env, a),
        CLOCK_NANOSLEEP => return Some(time::clock_nanosleep(s, env, a)),
        TIMES => time::times(s, env, a),
        GETTIMEOFDAY => time::gettimeofday(env, a),
        // poll
        EVENTFD2 => poll::eventfd2(s, a),
        EPOLL_CREATE1 => poll::epoll_create1(s, a),
        TIMERFD_CREATE => poll::timerfd_create(s, a),
        TIMERFD_SETTIME => poll::timerfd_settime(s, env, a),
        TIMERFD_GETTIME => poll::timerfd_gettime(s, env, a),
        EPOLL_CTL => poll::epoll_ctl(s, env, a),
        EPOLL_PWAIT => return Some(poll::epoll_pwait(s, env, a, false)),
        EPOLL_PWAIT2 => return Some(poll::epoll_pwait(s, env, a, true)),
        // net
        SOCKET => net::socket(s, a),
        SOCKETPAIR => net::socketpair(s, env, a),
        BIND => net::bind(s, env, a),
        LISTEN => net::listen(s, a),
        ACCEPT => net::accept4(s, env, a, 0),
        ACCEPT4 => net::accept4(s, env, a, a[3]),
        CONNECT => net::connect(s, env, a),
        GETSOCKNAME => net::getsockname(s, env, a, false),
        GETPEERNAME => net::getsockname(s, env, a, true),
        SENDTO => return Some(net::sendto(s, env, a)),
        RECVFROM => net::recvfrom(s, env, a),
        SENDMSG => return Some(net::sendmsg(s, env, a)),
        RECVMSG => net::recvmsg(s, env, a),
        SHUTDOWN => net::shutdown(s, a),
        SETSOCKOPT => net::setsockopt(s, env, a),
        GETSOCKOPT => net::getsockopt(s, env, a),
        // signal
        KILL => return Some(signal::kill(s, a[0] as i32 as i64, a[1])),
        TKILL => return Some(signal::tgkill(s, None, a[0] as i32 as i64, a[1])),
        TGKILL => return Some(signal::tgkill(s, Some(a[0] as i32 as i64), a[1] as i32 as i64, a[2])),
        SIGALTSTACK => signal::sigaltstack(s, env, a),
        RT_SIGACTION => signal::rt_sigaction(s, env, a),
        RT_SIGPROCMASK => return Some(signal::rt_sigprocmask(s, env, a)),
        RT_SIGPENDING => signal::rt_sigpending(s, env, a),
        RT_SIGSUSPEND => return Some(signal::rt_sigsuspend(s, env, a)),
        RT_SIGRETURN => return Some(Outcome::Action(crate::Action::SigReturn)),
        RT_SIGTIMEDWAIT => return Some(sigwait::rt_sigtimedwait(s, env, a)),
        PIDFD_SEND_SIGNAL => return Some(pidfd::pidfd_send_signal(s, a)),
        PIDFD_OPEN => pidfd::pidfd_open(s, a),
        GETITIMER => itimer::getitimer(s, env, a),
        SETITIMER => itimer::setitimer(s, env, a),
        _ => return None,
    };
    Some(Outcome::Ret(r))
}
