//! Interval timers (setitimer, getitimer; musl's alarm is setitimer). ITIMER_REAL runs on
//! the monotonic clock and sends SIGALRM; ITIMER_VIRTUAL (SIGVTALRM) and ITIMER_PROF
//! (SIGPROF) run on the process's CPU time (see [`crate::task::CpuTime`]): both count
//! user and system time alike, and time a thread was runnable counts as run, so they are
//! approximate. Due timers fire when the runner expires deadlines and after each
//! syscall; the signal goes to the process as `kill` would send it, waking a thread that
//! waits with it unblocked.

use crate::errno::*;
use crate::platform::Platform;
use crate::task::{Itimer, Pid};
use crate::Shim;

const SIGALRM: u64 = 14;
const SIGVTALRM: u64 = 26;
const SIGPROF: u64 = 27;
const SIGNALS: [u64; 3] = [SIGALRM, SIGVTALRM, SIGPROF];

/// Reads a `struct timeval` as ns: EINVAL for a negative one or usec past a second.
fn read_tv<E: Platform>(env: &mut E, at: u64) -> SysResult<u64> {
    let sec = env.read_u64(at)? as i64;
    let usec = env.read_u64(at.wrapping_add(8))? as i64;
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(usec as u64 * 1000))
}

/// Writes ns as a `struct timeval`, rounding up so that an armed timer never reads 0.
fn tv_bytes(ns: u64) -> [u8; 16] {
    let us = ns.div_ceil(1000);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(us / 1_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(us % 1_000_000).to_le_bytes());
    b
}

/// The clock timer `which` of process `pid` runs on, now.
fn clock_now(s: &Shim<'_>, pid: Pid, which: usize) -> u64 {
    if which == 0 {
        s.tasks.clock
    } else {
        s.tasks.process_cpu(pid).unwrap_or(0)
    }
}

/// Writes timer `which`'s interval and time left as a `struct itimerval`.
fn write_itimer<E: Platform>(s: &Shim<'_>, env: &mut E, which: usize, at: u64) -> SysResult<()> {
    let pid = s.proc_.pid;
    let it = s.tasks.procs.get(&pid).map(|p| p.itimers[which]).unwrap_or_default();
    let left = if it.next == 0 { 0 } else { it.next.saturating_sub(clock_now(s, pid, which)).max(1) };
    env.write(at, &tv_bytes(it.interval))?;
    env.write(at.wrapping_add(16), &tv_bytes(left))
}

fn which_arg(v: u64) -> SysResult<usize> {
    match v as i32 {
        w @ 0..=2 => Ok(w as usize),
        _ => Err(EINVAL),
    }
}

pub fn getitimer<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let which = which_arg(a[0])?;
    write_itimer(s, env, which, a[1])?;
    Ok(0)
}

/// `setitimer(which, new, old)`: a zero value disarms; the old setting is written first.
pub fn setitimer<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let which = which_arg(a[0])?;
    let (interval, value) = if a[1] != 0 { (read_tv(env, a[1])?, read_tv(env, a[1].wrapping_add(16))?) } else { (0, 0) };
    if a[2] != 0 {
        write_itimer(s, env, which, a[2])?;
    }
    let pid = s.proc_.pid;
    let next = if value == 0 { 0 } else { clock_now(s, pid, which).saturating_add(value) };
    if let Some(p) = s.tasks.procs.get_mut(&pid) {
        p.itimers[which] = Itimer { next, interval: if next == 0 { 0 } else { interval } };
    }
    s.tasks.itimers_armed |= next != 0;
    Ok(0)
}

/// Fires every due timer of every process (re-arming those with an interval).
pub fn fire(s: &mut Shim<'_>) {
    if !s.tasks.itimers_armed {
        return;
    }
    let mut due = alloc::vec::Vec::new();
    let mut armed = false;
    let pids: alloc::vec::Vec<Pid> = s.tasks.procs.iter().filter(|(_, p)| p.ended.is_none()).map(|(&k, _)| k).collect();
    for pid in pids {
        for which in 0..3 {
            let now = clock_now(s, pid, which);
            let Some(p) = s.tasks.procs.get_mut(&pid) else { continue };
            let it = &mut p.itimers[which];
            if it.next != 0 && it.next <= now {
                due.push((pid, SIGNALS[which]));
                it.next = if it.interval == 0 { 0 } else { it.next.saturating_add(it.interval).max(now.saturating_add(1)) };
            }
            armed |= it.next != 0;
        }
    }
    s.tasks.itimers_armed = armed;
    for (pid, sig) in due {
        super::sigwait::post(s, pid, sig);
    }
}
