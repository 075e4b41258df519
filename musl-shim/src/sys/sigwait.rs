//! Waiting for signals (rt_sigtimedwait, which sigwait and sigwaitinfo use), and signals
//! the shim itself raises at a time (interval timers).

use super::signal::{interrupt_thread, signal_other, SIGKILL, SIGSTOP};
use super::Outcome;
use crate::errno::*;
use crate::platform::Platform;
use crate::sigframe::{default_ignored, SA_RESTART};
use crate::task::{Resume, Wait};
use crate::{Action, Shim};

const SIG_IGN: u64 = 1;

/// A signal to process `pid` that no syscall of its sends (a timer): pending on the
/// process and, when not blocked, waking one of its waiting threads (the current one
/// too: the runner may have parked it) with EINTR.
pub fn post(s: &mut Shim<'_>, pid: u32, sig: u64) {
    if pid != s.proc_.pid {
        signal_other(s, pid, sig);
        wake_sigwaiters(s);
        return;
    }
    let bit = 1u64 << (sig - 1);
    let [handler, flags, ..] = s.proc_.sigactions[(sig - 1) as usize];
    let cur = s.tasks.cur;
    let mask_of = |k: u32, m: u64| if k == cur { s.proc_.sigmask } else { m };
    if handler == SIG_IGN || (handler == 0 && default_ignored(sig) && s.proc_.sigmask & bit == 0) {
        return;
    }
    s.proc_.pending |= bit;
    let waiting = s.tasks.threads.iter().find(|(&k, t)| t.pid == pid && t.wait.is_some() && mask_of(k, t.sigmask) & bit == 0).map(|(&k, _)| k);
    if let Some(tid) = waiting {
        interrupt_thread(s, tid, flags & SA_RESTART != 0);
    }
    wake_sigwaiters(s);
}

/// The signals pending for thread `tid` (its own and its process's).
fn pending_for(s: &Shim<'_>, tid: u32) -> u64 {
    let Some(t) = s.tasks.threads.get(&tid) else { return 0 };
    let process = if t.pid == s.proc_.pid { s.proc_.pending } else { s.tasks.parked.get(&t.pid).map_or(0, |p| p.proc_.pending) };
    t.pending | process
}

/// Retries the threads in rt_sigtimedwait for which a signal of their set is pending.
pub fn wake_sigwaiters(s: &mut Shim<'_>) {
    let ready: alloc::vec::Vec<u32> = s
        .tasks
        .threads
        .iter()
        .filter_map(|(&k, t)| match t.wait {
            Some(Wait::SigWait { set }) if pending_for(s, k) & set != 0 => Some(k),
            _ => None,
        })
        .collect();
    for tid in ready {
        s.tasks.wake(tid, Resume::Retry);
    }
}

/// Takes the lowest pending signal of `set` for the current thread (its own first).
fn take_pending(s: &mut Shim<'_>, set: u64) -> Option<u64> {
    let cur = s.tasks.cur;
    let mine = s.tasks.threads.get(&cur).map_or(0, |t| t.pending) & set;
    let from = if mine != 0 { mine } else { s.proc_.pending & set };
    if from == 0 {
        return None;
    }
    let bit = from & from.wrapping_neg();
    if mine != 0 {
        if let Some(t) = s.tasks.threads.get_mut(&cur) {
            t.pending &= !bit;
        }
    } else {
        s.proc_.pending &= !bit;
    }
    Some(u64::from(bit.trailing_zeros()) + 1)
}

/// Writes a `siginfo_t` for `sig`: SI_USER from this process (who sent it is not kept).
fn write_siginfo<E: Platform>(s: &Shim<'_>, env: &mut E, at: u64, sig: u64) -> SysResult<()> {
    let mut b = [0u8; 128];
    b[..4].copy_from_slice(&(sig as u32).to_le_bytes());
    b[16..20].copy_from_slice(&s.proc_.pid.to_le_bytes());
    b[20..24].copy_from_slice(&s.proc_.uid.to_le_bytes());
    env.write(at, &b)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a pending signal of `set`,
/// or waits for one: EAGAIN when `timeout` passes (at once for a zero one), EINTR when
/// a handled signal outside the set comes.
pub fn rt_sigtimedwait<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    match sigtimedwait(s, env, a) {
        Ok(Some(sig)) => Outcome::Ret(Ok(sig)),
        Ok(None) => Outcome::Action(Action::Block),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

fn sigtimedwait<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<Option<u64>> {
    if a[3] != 8 {
        return Err(EINVAL);
    }
    let set = env.read_u64(a[0])? & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
    let timeout = if a[2] != 0 { Some(super::time::read_ts(env, a[2])?.as_nanos()) } else { None };
    if let Some(sig) = take_pending(s, set) {
        if a[1] != 0 {
            write_siginfo(s, env, a[1], sig)?;
        }
        return Ok(Some(sig));
    }
    if timeout == Some(0) || !s.tasks.enabled {
        return Err(EAGAIN);
    }
    let cur = s.tasks.cur;
    let deadline = timeout.map(|t| (s.tasks.clock.saturating_add(t), EAGAIN.ret()));
    s.tasks.block(cur, Wait::SigWait { set }, deadline);
    Ok(None)
}
