//! Signal syscalls: actions, masks and pending signals. A default fatal signal ends its
//! process (at once, or once the mask lets it through); a caught one stays pending on its
//! process until a thread that does not block it returns from a syscall, when the runner
//! has [`crate::sigframe`] build the handler's frame. A caught signal for another process
//! interrupts one of its waiting threads (EINTR, or a restart with SA_RESTART).

use super::Outcome;
use crate::errno::*;
use crate::platform::Platform;
use crate::task::Ended;
use crate::{Shim, PID};
use alloc::vec::Vec;

pub const SIGKILL: u64 = 9;
pub const SIGSTOP: u64 = 19;
pub const SIGPIPE: u64 = 13;
const SIG_IGN: u64 = 1;

use crate::sigframe::{default_ignored, SA_RESTART};
use crate::task::{Resume, Wait};

/// kill(pid, sig): one process, the caller's group (0), every other process (-1) or
/// group -pid. Without tasks there is only the caller.
pub fn kill(s: &mut Shim<'_>, pid: i64, sig: u64) -> Outcome {
    if sig > 64 {
        return Outcome::Ret(Err(EINVAL));
    }
    let me = s.proc_.pid;
    let targets: Vec<u32> = if !s.tasks.enabled {
        if pid == i64::from(PID) || pid == 0 || pid == -1 || pid == -i64::from(PID) {
            alloc::vec![me]
        } else {
            Vec::new()
        }
    } else {
        let my_pgid = s.tasks.procs.get(&me).map(|p| p.pgid).unwrap_or(me);
        s.tasks
            .procs
            .iter()
            .filter(|(_, p)| p.ended.is_none())
            .filter(|(&id, p)| match pid {
                0 => p.pgid == my_pgid,
                -1 => id != me && id != PID,
                p2 if p2 > 0 => i64::from(id) == p2,
                g => i64::from(p.pgid) == -g,
            })
            .map(|(&id, _)| id)
            .collect()
    };
    if targets.is_empty() {
        return Outcome::Ret(Err(ESRCH));
    }
    if sig == 0 {
        return Outcome::Ret(Ok(0));
    }
    let mut mine = Outcome::Ret(Ok(0));
    for t in targets {
        if t == me {
            mine = kill_self(s, sig);
        } else {
            signal_other(s, t, sig);
        }
    }
    mine
}

/// tkill(tid, sig) and tgkill(tgid, tid, sig).
pub fn tgkill(s: &mut Shim<'_>, tgid: Option<i64>, tid: i64, sig: u64) -> Outcome {
    if sig > 64 || tid <= 0 || tgid.is_some_and(|g| g <= 0) {
        return Outcome::Ret(Err(EINVAL));
    }
    let Some(pid) = u32::try_from(tid).ok().and_then(|t| s.tasks.pid_of(t)) else {
        return Outcome::Ret(Err(ESRCH));
    };
    if tgid.is_some_and(|g| g != i64::from(pid)) {
        return Outcome::Ret(Err(ESRCH));
    }
    if sig == 0 {
        return Outcome::Ret(Ok(0));
    }
    let tid = tid as u32;
    if tid == s.tasks.cur {
        return kill_thread_self(s, sig);
    }
    // Another thread: a default action applies to its whole process; a handled signal
    // is pending on that thread alone, and interrupts its wait unless it blocks it.
    let bit = 1u64 << (sig - 1);
    let (sigmask, handler, flags) = if pid == s.proc_.pid {
        let t = s.tasks.threads.get(&tid).map_or(0, |t| t.sigmask);
        (t, s.proc_.sigactions[(sig - 1) as usize][0], s.proc_.sigactions[(sig - 1) as usize][1])
    } else {
        let Some(p) = s.tasks.parked.get(&pid) else { return Outcome::Ret(Err(ESRCH)) };
        let t = s.tasks.threads.get(&tid).map_or(0, |t| t.sigmask);
        (t, p.proc_.sigactions[(sig - 1) as usize][0], p.proc_.sigactions[(sig - 1) as usize][1])
    };
    if handler <= SIG_IGN {
        return if pid == s.proc_.pid { kill_self(s, sig) } else { signal_other(s, pid, sig); Outcome::Ret(Ok(0)) };
    }
    if let Some(t) = s.tasks.threads.get_mut(&tid) {
        t.pending |= bit;
        s.tasks.thread_signals = true;
    }
    if sigmask & bit == 0 {
        interrupt_thread(s, tid, flags & SA_RESTART != 0);
    }
    Outcome::Ret(Ok(0))
}

/// Wakes thread `tid` from its wait, if it waits, so that it takes a signal (see
/// [`interrupt_one`]).
pub(crate) fn interrupt_thread(s: &mut Shim<'_>, tid: u32, restart: bool) {
    let Some((wait, nr)) = s.tasks.threads.get(&tid).and_then(|t| Some((t.wait?, t.nr))) else { return };
    let resume = match wait {
        // A stopped process takes its signals once continued.
        Wait::Stopped { .. } => return,
        Wait::Io | Wait::Child if restart && !super::nr::never_restarted(nr) => Resume::Retry,
        _ => Resume::Value(EINTR.ret()),
    };
    s.tasks.wake(tid, resume);
}

/// `rt_sigsuspend(mask)`: waits with `mask` until a signal comes, then returns EINTR; the
/// handler's return puts the caller's mask back.
pub fn rt_sigsuspend<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    if a[1] != 8 {
        return Outcome::Ret(Err(EINVAL));
    }
    let mask = match env.read_u64(a[0]) {
        Ok(m) => m & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))),
        Err(e) => return Outcome::Ret(Err(e)),
    };
    let cur = s.tasks.cur;
    let old = s.proc_.sigmask;
    s.proc_.sigmask = mask;
    if let Some(t) = s.tasks.threads.get_mut(&cur) {
        t.suspended_mask = Some(old);
        s.tasks.thread_signals = true;
    }
    // A pending fatal signal the new mask lets through ends the process.
    if let Outcome::Killed(sig) = fatal_unblocked(s) {
        return Outcome::Killed(sig);
    }
    if s.signal_pending_unblocked() || !s.tasks.enabled {
        return Outcome::Ret(Err(EINTR));
    }
    s.tasks.block(cur, Wait::Signal, None);
    Outcome::Action(crate::Action::Block)
}

/// Ends the process for a pending default-fatal signal its mask does not block.
fn fatal_unblocked(s: &mut Shim<'_>) -> Outcome {
    let mine = s.tasks.threads.get(&s.tasks.cur).map_or(0, |t| t.pending);
    let ready = (s.proc_.pending | mine) & !s.proc_.sigmask;
    for sig in 1..=64u64 {
        if ready & (1 << (sig - 1)) != 0 && s.proc_.sigactions[(sig - 1) as usize][0] == 0 && !default_ignored(sig) {
            s.proc_.pending &= !(1 << (sig - 1));
            return Outcome::Killed(sig as i32);
        }
    }
    Outcome::Ret(Ok(0))
}

/// A signal the current thread sends itself (raise: tkill of its own tid): as
/// [`kill_self`], but a signal it blocks stays pending on this thread alone, not on the
/// process where another thread could take it.
fn kill_thread_self(s: &mut Shim<'_>, sig: u64) -> Outcome {
    let bit = 1u64 << (sig - 1);
    let blocked = s.proc_.sigmask & bit != 0 && sig != SIGKILL && sig != SIGSTOP;
    if !blocked || s.proc_.sigactions[(sig - 1) as usize][0] <= SIG_IGN {
        return kill_self(s, sig);
    }
    let cur = s.tasks.cur;
    match s.tasks.threads.get_mut(&cur) {
        Some(t) => {
            t.pending |= bit;
            s.tasks.thread_signals = true;
        }
        None => s.proc_.pending |= bit,
    }
    Outcome::Ret(Ok(0))
}

/// A signal to the current process: a fatal default action ends it at once or, when the
/// signal is blocked, as soon as the mask lets it through (musl's `raise` blocks signals
/// around its `tkill`). Handlers are not run yet.
pub fn kill_self(s: &mut Shim<'_>, sig: u64) -> Outcome {
    if crate::jobctl::on_signal(s, s.proc_.pid, sig) {
        return Outcome::Ret(Ok(0));
    }
    let blocked = s.proc_.sigmask & (1 << (sig - 1)) != 0 && sig != SIGKILL && sig != SIGSTOP;
    let handler = s.proc_.sigactions[(sig - 1) as usize][0];
    if sig == SIGKILL || (!blocked && handler == 0 && !default_ignored(sig)) {
        return Outcome::Killed(sig as i32);
    }
    if (blocked && handler == 0 && !default_ignored(sig)) || handler > SIG_IGN {
        // Delivered when this thread returns from the syscall (or once unblocked), or by
        // another thread of the process that waits with the signal unblocked.
        s.proc_.pending |= 1 << (sig - 1);
        if blocked && handler > SIG_IGN {
            let restart = s.proc_.sigactions[(sig - 1) as usize][1] & SA_RESTART != 0;
            let pid = s.proc_.pid;
            interrupt_one(s, pid, sig, restart);
        }
    }
    Outcome::Ret(Ok(0))
}

/// A signal to another, parked process: its default action applies.
pub(crate) fn signal_other(s: &mut Shim<'_>, pid: u32, sig: u64) {
    if crate::jobctl::on_signal(s, pid, sig) {
        return;
    }
    let Some(p) = s.tasks.parked.get_mut(&pid) else { return };
    let bit = 1u64 << (sig - 1);
    let blocked = p.proc_.sigmask & bit != 0 && sig != SIGKILL && sig != SIGSTOP;
    let handler = p.proc_.sigactions[(sig - 1) as usize][0];
    if sig == SIGKILL || (!blocked && handler == 0 && !default_ignored(sig)) {
        super::process::end_process(s, pid, Ended::Killed(sig as i32));
    } else if blocked && handler == 0 && !default_ignored(sig) {
        p.proc_.pending |= bit;
    } else if handler > SIG_IGN {
        p.proc_.pending |= bit;
        let restart = p.proc_.sigactions[(sig - 1) as usize][1] & SA_RESTART != 0;
        interrupt_one(s, pid, sig, restart);
    }
}

/// Wakes one waiting thread of process `pid` that does not block `sig`, so that it takes
/// the signal: its syscall returns EINTR, or runs again after the handler (SA_RESTART; not
/// for sleeps).
pub fn interrupt_one(s: &mut Shim<'_>, pid: u32, sig: u64, restart: bool) {
    let bit = 1u64 << (sig - 1);
    let cur = s.tasks.cur;
    let waiting = s.tasks.threads.iter().find(|(&k, t)| k != cur && t.pid == pid && t.wait.is_some() && t.sigmask & bit == 0).map(|(&k, _)| k);
    if let Some(tid) = waiting {
        interrupt_thread(s, tid, restart);
    }
}

/// A signal from the app's machinery (SIGCHLD at a child's exit) to process `pid`.
pub fn notify(s: &mut Shim<'_>, pid: u32, sig: u64) {
    if pid == s.proc_.pid {
        let _ = kill_self(s, sig);
    } else {
        signal_other(s, pid, sig);
    }
    super::sigwait::wake_sigwaiters(s);
}

/// Syscalls whose EPIPE comes with SIGPIPE.
pub fn raises_sigpipe(nr: u64) -> bool {
    use super::nr::*;
    matches!(nr, WRITE | WRITEV | PWRITE64 | PWRITEV | SENDFILE)
}

pub fn rt_sigaction<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let sig = a[0];
    if a[3] != 8 || sig == 0 || sig > 64 || (a[1] != 0 && (sig == SIGKILL || sig == SIGSTOP)) {
        return Err(EINVAL);
    }
    let i = (sig - 1) as usize;
    let old = s.proc_.sigactions[i];
    if a[1] != 0 {
        let mut new = [0u64; 4];
        for (k, w) in new.iter_mut().enumerate() {
            *w = env.read_u64(a[1].wrapping_add(8 * k as u64))?;
        }
        s.proc_.sigactions[i] = new;
    }
    if a[2] != 0 {
        let mut b = [0u8; 32];
        for (k, w) in old.iter().enumerate() {
            b[8 * k..8 * k + 8].copy_from_slice(&w.to_le_bytes());
        }
        env.write(a[2], &b)?;
    }
    Ok(0)
}

/// `rt_sigprocmask`, then a pending fatal signal the new mask unblocks ends the app.
pub fn rt_sigprocmask<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    if let Err(e) = set_mask(s, env, a) {
        return Outcome::Ret(Err(e));
    }
    // A pending default-fatal signal the new mask lets through ends the process now;
    // caught ones are delivered when this syscall returns.
    fatal_unblocked(s)
}

fn set_mask<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(EINVAL);
    }
    let old = s.proc_.sigmask;
    if a[1] != 0 {
        let set = env.read_u64(a[1])? & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
        s.proc_.sigmask = match a[0] {
            0 => old | set,
            1 => old & !set,
            2 => set,
            _ => return Err(EINVAL),
        };
    }
    if a[2] != 0 {
        env.write_u64(a[2], old)?;
    }
    Ok(0)
}

pub fn rt_sigpending<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[1] != 8 {
        return Err(EINVAL);
    }
    let mine = s.tasks.threads.get(&s.tasks.cur).map_or(0, |t| t.pending);
    env.write_u64(a[0], (s.proc_.pending | mine) & s.proc_.sigmask)?;
    Ok(0)
}

pub fn sigaltstack<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let old = s.proc_.altstack;
    if a[0] != 0 {
        let sp = env.read_u64(a[0])?;
        let flags = env.read_u32(a[0].wrapping_add(8))?;
        let size = env.read_u64(a[0].wrapping_add(16))?;
        if flags & !(2 | 0x8000_0000) != 0 {
            return Err(EINVAL);
        }
        if flags & 2 == 0 && size < 2048 {
            return Err(ENOMEM);
        }
        s.proc_.altstack = [sp, u64::from(flags), size];
    }
    if a[1] != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&old[0].to_le_bytes());
        b[8..12].copy_from_slice(&(old[1] as u32).to_le_bytes());
        b[16..24].copy_from_slice(&old[2].to_le_bytes());
        env.write(a[1], &b)?;
    }
    Ok(0)
}
