//! Process syscalls: futex (one thread), robust lists, uname, limits, prctl, sysinfo,
//! getrandom. The trivial ones (getpid, exit, ...) are answered in the dispatcher.

use crate::errno::*;
use crate::platform::{ClockId, Platform};
use crate::Shim;

pub const ETIMEDOUT: Errno = Errno(110);

/// futex with one thread: WAIT returns EAGAIN when the value changed, and otherwise
/// sleeps out its timeout (or returns EINTR, a permitted spurious wakeup, rather than
/// deadlocking); WAKE wakes nobody.
pub fn futex<E: Platform>(_s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let op = a[1] & 0x7f;
    match op {
        // WAIT, WAIT_BITSET
        0 | 9 => {
            if op == 9 && a[5] as u32 == 0 {
                return Err(EINVAL);
            }
            let cur = env.read_u32(a[0])?;
            if cur != a[2] as u32 {
                return Err(EAGAIN);
            }
            if a[3] != 0 {
                let t = super::time::read_ts(env, a[3])?;
                let ns = if op == 9 {
                    // WAIT_BITSET takes an absolute time.
                    let clock = if a[1] & 256 != 0 { ClockId::Realtime } else { ClockId::Monotonic };
                    t.as_nanos().saturating_sub(env.now(clock).as_nanos())
                } else {
                    t.as_nanos()
                };
                env.sleep(ns);
                return Err(ETIMEDOUT);
            }
            Err(EINTR)
        }
        // WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, WAKE_BITSET
        1 | 3 | 4 | 5 | 10 => {
            if op == 4 && env.read_u32(a[0])? != a[5] as u32 {
                return Err(EAGAIN);
            }
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

pub fn set_robust_list(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    if a[1] != 24 {
        return Err(EINVAL);
    }
    s.proc_.robust_list = (a[0], a[1]);
    Ok(0)
}

pub fn get_robust_list<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 && a[0] as u32 != crate::PID {
        return Err(ESRCH);
    }
    env.write_u64(a[1], s.proc_.robust_list.0)?;
    env.write_u64(a[2], 24)?;
    Ok(0)
}

pub fn sched_getaffinity<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[1] < 8 || !a[1].is_multiple_of(8) {
        return Err(EINVAL);
    }
    env.write_u64(a[2], 1)?;
    Ok(8)
}

pub fn uname<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mut b = [0u8; 65 * 6];
    let host = s.proc_.hostname.as_bytes();
    let fields: [&[u8]; 6] = [b"Linux", host, b"6.1.0-selkie", b"#1 SMP selkie", b"aarch64", b"(none)"];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(64);
        b[65 * i..65 * i + n].copy_from_slice(&f[..n]);
    }
    env.write(a[0], &b)?;
    Ok(0)
}

const RLIM_INFINITY: u64 = u64::MAX;

/// prlimit64(pid, resource, new, old); getrlimit/setrlimit come here too.
pub fn prlimit<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 && a[0] as u32 != crate::PID {
        return Err(ESRCH);
    }
    let (cur, max) = match a[1] {
        3 => (s.proc_.stack_size, s.proc_.stack_size),         // STACK
        7 => (crate::fd::MAX_FDS as u64, crate::fd::MAX_FDS as u64), // NOFILE
        2 | 9 => (s.mm.layout.heap_limit, s.mm.layout.heap_limit), // DATA, AS
        4 => (0, RLIM_INFINITY),                                 // CORE
        0 | 1 | 5 | 6 | 8 | 10 | 11 | 12 | 13 | 14 | 15 => (RLIM_INFINITY, RLIM_INFINITY),
        _ => return Err(EINVAL),
    };
    if a[3] != 0 {
        env.write_u64(a[3], cur)?;
        env.write_u64(a[3].wrapping_add(8), max)?;
    }
    if a[2] != 0 {
        let new_cur = env.read_u64(a[2])?;
        let new_max = env.read_u64(a[2].wrapping_add(8))?;
        if new_cur > new_max {
            return Err(EINVAL);
        }
        if new_max > max {
            return Err(EPERM);
        }
    }
    Ok(0)
}

pub fn getrusage<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let who = a[0] as i32;
    if !matches!(who, -1..=1) {
        return Err(EINVAL);
    }
    let mut b = [0u8; 144];
    if who != -1 {
        let t = env.now(ClockId::Cpu);
        b[0..8].copy_from_slice(&t.sec.to_le_bytes());
        b[8..16].copy_from_slice(&u64::from(t.nsec / 1000).to_le_bytes());
    }
    env.write(a[1], &b)?;
    Ok(0)
}

pub fn prctl<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    match a[0] {
        15 => {
            // PR_SET_NAME
            let name = env.read_cstr(a[1], 4096)?;
            let n = name.len().min(15);
            s.proc_.name = [0; 16];
            s.proc_.name[..n].copy_from_slice(&name[..n]);
            Ok(0)
        }
        16 => {
            // PR_GET_NAME
            let name = s.proc_.name;
            env.write(a[1], &name)?;
            Ok(0)
        }
        1 | 36 | 38 => Ok(0), // PDEATHSIG, CHILD_SUBREAPER, NO_NEW_PRIVS
        2 => {
            env.write_u32(a[1], 0)?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

pub fn sysinfo<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mut b = [0u8; 112];
    let up = env.now(ClockId::Monotonic).sec;
    b[0..8].copy_from_slice(&up.to_le_bytes());
    let total = s.mm.layout.heap_limit;
    b[32..40].copy_from_slice(&total.to_le_bytes());
    b[40..48].copy_from_slice(&total.saturating_sub(s.mm.heap_used()).to_le_bytes());
    b[80..82].copy_from_slice(&1u16.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    env.write(a[0], &b)?;
    Ok(0)
}

pub fn getrandom<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[2] & !7 != 0 {
        return Err(EINVAL);
    }
    let len = a[1].min(32 << 20);
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        env.fill(&mut buf[..n]);
        if let Err(e) = env.write(a[0].wrapping_add(done), &buf[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as u64;
    }
    Ok(done)
}
