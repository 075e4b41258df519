//! Job control: a process stopped by SIGSTOP, or by SIGTSTP, SIGTTIN or SIGTTOU whose
//! action is the default, runs no more until SIGCONT continues it (or SIGKILL ends it).
//!
//! The stop takes hold at syscalls, where the shim sees a thread: the thread that stopped
//! its own process parks as its syscall returns (with that syscall's value, returned at
//! SIGCONT), and any other thread of it parks when it enters its next syscall, which runs
//! once the process is continued (a thread that spins without syscalls runs on). A
//! thread parked in another wait stays there, and parks as stopped if it is woken. The
//! parent learns of the stop and of the continuation through wait4 and waitid (`WUNTRACED`,
//! `WCONTINUED`) and through SIGCHLD, unless its SIGCHLD action has `SA_NOCLDSTOP`.
//!
//! As on Linux, SIGTSTP, SIGTTIN and SIGTTOU to a process of an orphaned process group
//! (no member has a parent in another group of its session) are discarded; a stop signal
//! its process blocks or ignores does nothing; and SIGCONT continues a stopped process
//! whatever its action, then goes on to the handler if it has one. Without tasks there
//! is no one to continue the app, and stop signals are ignored.

use crate::task::{Pid, Resume, Wait};
use crate::Shim;

pub const SIGCHLD: u64 = 17;
pub const SIGCONT: u64 = 18;
pub const SIGSTOP: u64 = 19;
pub const SIGTSTP: u64 = 20;
pub const SIGTTIN: u64 = 21;
pub const SIGTTOU: u64 = 22;
const SA_NOCLDSTOP: u64 = 1;

/// What a parent's wait may learn of a live child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Stopped by this signal.
    Stopped(u32),
    /// Continued by SIGCONT.
    Continued,
}

impl Report {
    /// wait4's status word: `sig << 8 | 0x7f` for a stop, 0xffff for a continuation.
    pub fn wait_status(self) -> u32 {
        match self {
            Report::Stopped(sig) => (sig << 8) | 0x7f,
            Report::Continued => 0xffff,
        }
    }
    /// waitid's si_code and si_status: CLD_STOPPED with the signal, CLD_CONTINUED with
    /// SIGCONT.
    pub fn siginfo(self) -> (u32, u32) {
        match self {
            Report::Stopped(sig) => (5, sig),
            Report::Continued => (6, SIGCONT as u32),
        }
    }
}

/// Whether `sig` stops a process by default.
pub fn is_stop(sig: u64) -> bool {
    matches!(sig, SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU)
}

/// Process `pid`'s action for `sig` and its (current thread's) signal mask.
fn disposition(s: &Shim<'_>, pid: Pid, sig: u64) -> Option<(u64, u64)> {
    let p = if pid == s.proc_.pid { &s.proc_ } else { &s.tasks.parked.get(&pid)?.proc_ };
    Some((p.sigactions[(sig - 1) as usize][0], p.sigmask))
}

/// Whether process group `pgid` is orphaned: none of its live members has a live parent
/// in another group of the same session.
pub fn orphaned(s: &Shim<'_>, pgid: Pid) -> bool {
    let procs = &s.tasks.procs;
    !procs.values().filter(|p| p.pgid == pgid && p.ended.is_none()).any(|p| {
        procs.get(&p.parent).is_some_and(|q| q.ended.is_none() && q.pgid != pgid && q.sid == p.sid)
    })
}

/// Job control's part of `sig` sent to process `pid` (1..=64): SIGCONT continues it; a
/// stop signal with the default action stops it. True when the signal is dealt with
/// entirely (the caller does nothing more with it).
pub fn on_signal(s: &mut Shim<'_>, pid: Pid, sig: u64) -> bool {
    if sig == SIGCONT {
        resume(s, pid);
        return false;
    }
    if !is_stop(sig) {
        return false;
    }
    let Some((handler, mask)) = disposition(s, pid, sig) else { return false };
    let blocked = mask & (1 << (sig - 1)) != 0;
    if sig != SIGSTOP && (handler != 0 || blocked) {
        return false;
    }
    if !s.tasks.enabled {
        return true;
    }
    let pgid = s.tasks.procs.get(&pid).map_or(pid, |p| p.pgid);
    if sig == SIGSTOP || !orphaned(s, pgid) {
        stop(s, pid, sig);
    }
    true
}

/// Stops process `pid`, telling its parent.
fn stop(s: &mut Shim<'_>, pid: Pid, sig: u64) {
    let Some(p) = s.tasks.procs.get_mut(&pid) else { return };
    if p.ended.is_some() || p.stopped {
        return;
    }
    p.stopped = true;
    p.report = Some(Report::Stopped(sig as u32));
    let parent = p.parent;
    tell_parent(s, parent);
}

/// Continues process `pid` if it is stopped: its parked threads go on, and its parent is
/// told.
fn resume(s: &mut Shim<'_>, pid: Pid) {
    let Some(p) = s.tasks.procs.get_mut(&pid) else { return };
    if !p.stopped {
        return;
    }
    p.stopped = false;
    p.report = Some(Report::Continued);
    let parent = p.parent;
    let parked: alloc::vec::Vec<(u32, Option<i64>)> = s
        .tasks
        .threads
        .iter()
        .filter_map(|(&tid, t)| match t.wait {
            Some(Wait::Stopped { value }) if t.pid == pid => Some((tid, value)),
            _ => None,
        })
        .collect();
    for (tid, value) in parked {
        s.tasks.wake(tid, value.map_or(Resume::Retry, Resume::Value));
    }
    tell_parent(s, parent);
}

/// A child of `parent` stopped or continued: its waits look again, and SIGCHLD comes
/// unless its action says SA_NOCLDSTOP.
fn tell_parent(s: &mut Shim<'_>, parent: Pid) {
    s.tasks.wake_child_waiters(parent);
    let flags = if parent == s.proc_.pid {
        Some(s.proc_.sigactions[(SIGCHLD - 1) as usize][1])
    } else {
        s.tasks.parked.get(&parent).map(|p| p.proc_.sigactions[(SIGCHLD - 1) as usize][1])
    };
    if flags.is_some_and(|f| f & SA_NOCLDSTOP == 0) {
        crate::sys::signal::notify(s, parent, SIGCHLD);
    }
}

/// Whether process `pid` is stopped.
pub fn is_stopped(s: &Shim<'_>, pid: Pid) -> bool {
    s.tasks.enabled && s.tasks.procs.get(&pid).is_some_and(|p| p.stopped)
}

/// Parks the current thread if its process is stopped: at SIGCONT it returns `value`, or
/// (`None`) runs its syscall again. Returns whether it parked.
pub fn park_if_stopped(s: &mut Shim<'_>, value: Option<i64>) -> bool {
    if !is_stopped(s, s.proc_.pid) {
        return false;
    }
    let cur = s.tasks.cur;
    s.tasks.block(cur, Wait::Stopped { value }, None);
    true
}
