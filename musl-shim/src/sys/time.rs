//! Time syscalls, from the platform's [`Clock`](crate::platform::Clock). The CPU-time
//! clocks (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID and the ids
//! `clock_getcpuclockid`/`pthread_getcpuclockid` make, Linux's `(~id << 3) | kind`, with
//! kind 2 for a process and 6 for a thread) read the task table's accounts, which leave
//! out the time a thread spent parked (see [`crate::task::CpuTime`]).

use super::Outcome;
use crate::errno::*;
use crate::platform::{ClockId, Platform, Timespec};
use crate::task::Wait;
use crate::{Action, Shim};

use crate::task::{Pid, Tid};

/// A clock an app names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clk {
    Wall(ClockId),
    Process(Pid),
    Thread(Tid),
}

fn clock_arg(id: u64) -> SysResult<ClockId> {
    match id as i32 {
        0 | 5 | 8 | 11 => Ok(ClockId::Realtime),
        1 | 4 | 6 | 7 | 9 => Ok(ClockId::Monotonic),
        _ => Err(EINVAL),
    }
}

/// Decodes a clock id, CPU clocks included: EINVAL for an unknown one, a CPU clock of
/// no such process (a thread's must be of the caller's process), or an fd clock.
fn clock_of(s: &Shim<'_>, id: u64) -> SysResult<Clk> {
    let id = id as i32;
    match id {
        2 => return Ok(Clk::Process(s.proc_.pid)),
        3 => return Ok(Clk::Thread(s.tasks.cur)),
        0.. => return clock_arg(id as u64).map(Clk::Wall),
        _ => {}
    }
    if id & 3 == 3 {
        return Err(EINVAL);
    }
    let who = u32::try_from(!(id >> 3)).map_err(|_| EINVAL)?;
    if id & 4 != 0 {
        let tid = if who == 0 { s.tasks.cur } else { who };
        return match s.tasks.pid_of(tid) {
            Some(p) if p == s.proc_.pid => Ok(Clk::Thread(tid)),
            _ => Err(EINVAL),
        };
    }
    let pid = if who == 0 { s.proc_.pid } else { who };
    if s.tasks.procs.get(&pid).is_some_and(|p| p.ended.is_none()) {
        Ok(Clk::Process(pid))
    } else {
        Err(EINVAL)
    }
}

/// The time on `c` now.
fn read_clock<E: Platform>(s: &Shim<'_>, env: &mut E, c: Clk) -> Timespec {
    match c {
        Clk::Wall(id) => env.now(id),
        Clk::Process(pid) => Timespec::from_nanos(s.tasks.process_cpu(pid).unwrap_or(0)),
        Clk::Thread(tid) => Timespec::from_nanos(s.tasks.thread_cpu(tid).unwrap_or(0)),
    }
}

fn write_ts<E: Platform>(env: &mut E, at: u64, t: Timespec) -> SysResult<()> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&t.sec.to_le_bytes());
    b[8..].copy_from_slice(&u64::from(t.nsec).to_le_bytes());
    env.write(at, &b)
}

/// Reads and validates a `struct timespec`.
pub fn read_ts<E: Platform>(env: &mut E, at: u64) -> SysResult<Timespec> {
    let sec = env.read_u64(at)?;
    let nsec = env.read_u64(at.wrapping_add(8))?;
    if (sec as i64) < 0 || nsec >= 1_000_000_000 {
        return Err(EINVAL);
    }
    Ok(Timespec { sec, nsec: nsec as u32 })
}

pub fn clock_gettime<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let t = read_clock(s, env, clock_of(s, a[0])?);
    write_ts(env, a[1], t)?;
    Ok(0)
}

pub fn clock_getres<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    clock_of(s, a[0])?;
    if a[1] != 0 {
        write_ts(env, a[1], Timespec { sec: 0, nsec: 1 })?;
    }
    Ok(0)
}

pub fn gettimeofday<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        let t = env.now(ClockId::Realtime);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&t.sec.to_le_bytes());
        b[8..].copy_from_slice(&u64::from(t.nsec / 1000).to_le_bytes());
        env.write(a[0], &b)?;
    }
    if a[1] != 0 {
        env.write(a[1], &[0u8; 8])?;
    }
    Ok(0)
}

/// Sleeps `ns`: with tasks the thread is parked until its deadline (other threads run);
/// without, the platform sleeps.
fn sleep_for<E: Platform>(s: &mut Shim<'_>, env: &mut E, ns: u64) -> Outcome {
    if ns == 0 {
        return Outcome::Ret(Ok(0));
    }
    if s.tasks.enabled {
        let deadline = env.now(ClockId::Monotonic).as_nanos().saturating_add(ns);
        let cur = s.tasks.cur;
        s.tasks.block(cur, Wait::Sleep, Some((deadline, 0)));
        return Outcome::Action(Action::Block);
    }
    env.sleep(ns);
    Outcome::Ret(Ok(0))
}

pub fn nanosleep<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    match read_ts(env, a[0]) {
        Ok(t) => sleep_for(s, env, t.as_nanos()),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

pub fn clock_nanosleep<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    let ns = (|| {
        let s = &*s;
        // Waiting for CPU time to pass is not done (EINVAL, as Linux answers for the
        // caller's own thread clock).
        let Clk::Wall(clock) = clock_of(s, a[0])? else { return Err(EINVAL) };
        let t = read_ts(env, a[2])?;
        Ok(if a[1] & 1 != 0 { t.as_nanos().saturating_sub(env.now(clock).as_nanos()) } else { t.as_nanos() })
    })();
    match ns {
        Ok(ns) => sleep_for(s, env, ns),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

/// `clock_settime`: only CLOCK_REALTIME and CPU clocks can be set on Linux, and a
/// container may set neither (EPERM, after EINVAL for a bad time); others are EINVAL.
pub fn clock_settime<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    match clock_of(s, a[0])? {
        Clk::Wall(ClockId::Realtime) if a[0] == 0 => {
            read_ts(env, a[1])?;
            Err(EPERM)
        }
        Clk::Wall(_) => Err(EINVAL),
        _ if (a[0] as i32) < 0 => Err(EPERM),
        _ => Err(EINVAL),
    }
}

/// `settimeofday`: EPERM, after EINVAL for a bad time.
pub fn settimeofday<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        let usec = env.read_u64(a[0].wrapping_add(8))?;
        if (env.read_u64(a[0])? as i64) < 0 || usec >= 1_000_000 {
            return Err(EINVAL);
        }
    }
    Err(EPERM)
}

pub fn times<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        let cpu = s.tasks.process_cpu(s.proc_.pid).unwrap_or(0) / 10_000_000;
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&cpu.to_le_bytes());
        env.write(a[0], &b)?;
    }
    Ok(env.now(ClockId::Monotonic).as_nanos() / 10_000_000)
}
