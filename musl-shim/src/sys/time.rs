//! Time syscalls, from the platform's [`Clock`](crate::platform::Clock).

use super::Outcome;
use crate::errno::*;
use crate::platform::{ClockId, Platform, Timespec};
use crate::task::Wait;
use crate::{Action, Shim};

fn clock_arg(id: u64) -> SysResult<ClockId> {
    match id as i32 {
        0 | 5 | 8 | 11 => Ok(ClockId::Realtime),
        1 | 4 | 6 | 7 | 9 => Ok(ClockId::Monotonic),
        2 | 3 => Ok(ClockId::Cpu),
        _ => Err(EINVAL),
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

pub fn clock_gettime<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let t = env.now(clock_arg(a[0])?);
    write_ts(env, a[1], t)?;
    Ok(0)
}

pub fn clock_getres<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    clock_arg(a[0])?;
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
        let clock = clock_arg(a[0])?;
        if clock == ClockId::Cpu {
            return Err(EINVAL);
        }
        let t = read_ts(env, a[2])?;
        Ok(if a[1] & 1 != 0 { t.as_nanos().saturating_sub(env.now(clock).as_nanos()) } else { t.as_nanos() })
    })();
    match ns {
        Ok(ns) => sleep_for(s, env, ns),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

pub fn times<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        let cpu = env.now(ClockId::Cpu).as_nanos() / 10_000_000;
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&cpu.to_le_bytes());
        env.write(a[0], &b)?;
    }
    Ok(env.now(ClockId::Monotonic).as_nanos() / 10_000_000)
}
