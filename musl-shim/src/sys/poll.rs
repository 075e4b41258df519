//! Readiness syscalls: eventfd2 and epoll (ppoll is with the file syscalls).

use super::fs::{cx, fd_arg};
use super::Outcome;
use crate::errno::*;
use crate::fd::{new_entry, O_CLOEXEC, O_NONBLOCK, O_RDWR};
use crate::platform::{ClockId, Platform};
use crate::poll::{Epoll, EventFd, Interest, TimerFd, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLONESHOT};
use crate::{Action, Shim};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// eventfd2(initval, flags): EFD_SEMAPHORE (1), EFD_NONBLOCK, EFD_CLOEXEC.
pub fn eventfd2(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[1] as u32;
    if flags & !(1 | O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let obj = EventFd::new(a[0] as u32 as u64, flags & 1 != 0, &s.tasks.io_gen);
    s.fds.install(new_entry(Box::new(obj), O_RDWR | (flags & (O_NONBLOCK | O_CLOEXEC))), 0).map(|fd| fd as u64)
}

/// timerfd_create(clockid, flags): CLOCK_REALTIME (0), CLOCK_MONOTONIC (1) or
/// CLOCK_BOOTTIME (7, the same as monotonic here); TFD_NONBLOCK, TFD_CLOEXEC.
pub fn timerfd_create(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let (clock, flags) = (a[0] as u32, a[1] as u32);
    if !matches!(clock, 0 | 1 | 7) {
        return Err(EINVAL);
    }
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    s.fds.install(new_entry(Box::new(TimerFd::new(clock)), O_RDWR | flags), 0).map(|fd| fd as u64)
}

/// A `struct itimerspec` at `at`: (interval, value) in nanoseconds.
fn read_itimerspec<E: Platform>(env: &mut E, at: u64) -> SysResult<(u64, u64)> {
    if at == 0 {
        return Err(EFAULT);
    }
    let interval = super::fs::read_timeout(env, at)?.unwrap_or(0);
    let value = super::fs::read_timeout(env, at.wrapping_add(16))?.unwrap_or(0);
    Ok((interval, value))
}

fn write_itimerspec<E: Platform>(env: &mut E, at: u64, interval: u64, value: u64) -> SysResult<()> {
    for (i, v) in [interval, value].into_iter().enumerate() {
        let base = at.wrapping_add(i as u64 * 16);
        env.write_u64(base, v / 1_000_000_000)?;
        env.write_u64(base.wrapping_add(8), v % 1_000_000_000)?;
    }
    Ok(())
}

/// The time left and the interval of a timer, as timerfd_gettime gives them.
fn timer_state(t: &TimerFd, now: u64) -> (u64, u64) {
    (t.interval, t.next.map_or(0, |n| n.saturating_sub(now)))
}

/// timerfd_settime(fd, flags, new, old): TFD_TIMER_ABSTIME (1) takes `new`'s value as a
/// time on the timer's clock; a zero value disarms it.
pub fn timerfd_settime<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (fd, flags) = (fd_arg(a[0]), a[1]);
    if flags & !3 != 0 {
        return Err(EINVAL);
    }
    let (interval, value) = read_itimerspec(env, a[2])?;
    let now = env.now(ClockId::Monotonic).as_nanos();
    let real = env.now(ClockId::Realtime).as_nanos();
    let file = s.fds.file(fd)?;
    let mut f = file.borrow_mut();
    let t = f.obj.as_timerfd().ok_or(EINVAL)?;
    let old = timer_state(t, now);
    t.interval = interval;
    t.next = match (value, flags & 1 != 0) {
        (0, _) => None,
        (v, false) => Some(now.saturating_add(v)),
        // Absolute: on the realtime clock, moved onto the monotonic one.
        (v, true) if t.clock == 0 => Some(now.saturating_add(v.saturating_sub(real))),
        (v, true) => Some(v),
    };
    drop(f);
    if a[3] != 0 {
        write_itimerspec(env, a[3], old.0, old.1)?;
    }
    Ok(0)
}

pub fn timerfd_gettime<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let now = env.now(ClockId::Monotonic).as_nanos();
    let file = s.fds.file(fd_arg(a[0]))?;
    let mut f = file.borrow_mut();
    let t = f.obj.as_timerfd().ok_or(EINVAL)?;
    let (interval, value) = timer_state(t, now);
    drop(f);
    write_itimerspec(env, a[1], interval, value)?;
    Ok(0)
}

pub fn epoll_create1(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[0] as u32;
    if flags & !O_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    s.fds.install(new_entry(Box::new(Epoll::default()), O_RDWR | flags), 0).map(|fd| fd as u64)
}

/// epoll_ctl(epfd, op, fd, event): ADD 1, DEL 2, MOD 3.
pub fn epoll_ctl<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (epfd, op, fd) = (fd_arg(a[0]), a[1], fd_arg(a[2]));
    let ep = s.fds.file(epfd)?;
    let target = s.fds.file(fd)?;
    if fd == epfd {
        return Err(EINVAL);
    }
    // Regular files and directories cannot be polled by epoll (Linux: EPERM).
    let ino = target.borrow().obj.ino();
    if ino.is_some_and(|i| matches!(s.vfs.node(i).kind, crate::vfs::Kind::File(_) | crate::vfs::Kind::Dir { .. })) {
        return Err(EPERM);
    }
    let ev = if op != 2 {
        let events = env.read_u32(a[3])?;
        let data = env.read_u64(a[3].wrapping_add(8))?;
        Some(Interest { events, data, disarmed: false, last: 0, gen: 0 })
    } else {
        None
    };
    let mut f = ep.borrow_mut();
    let set = f.obj.as_epoll().ok_or(EINVAL)?;
    let key = fd as i32;
    match (op, ev) {
        (1, Some(ev)) => {
            if set.interest.contains_key(&key) {
                return Err(EEXIST);
            }
            set.interest.insert(key, ev);
        }
        (2, _) => {
            set.interest.remove(&key).ok_or(ENOENT)?;
        }
        (3, Some(ev)) => {
            *set.interest.get_mut(&key).ok_or(ENOENT)? = ev;
        }
        _ => return Err(EINVAL),
    }
    Ok(0)
}

/// epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask) and epoll_pwait2 (timeout
/// as a timespec). Level-triggered, or by edges for EPOLLET; an fd closed since it was added is dropped from the
/// list (Linux drops it once its last reference goes).
pub fn epoll_pwait<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], ts: bool) -> Outcome {
    let r = (|| -> SysResult<Option<u64>> {
        let max = a[2] as i32;
        if max <= 0 || max > 1 << 20 {
            return Err(EINVAL);
        }
        let timeout_ns: Option<u64> = if ts {
            if a[3] == 0 {
                None
            } else {
                Some(super::time::read_ts(env, a[3])?.as_nanos())
            }
        } else {
            let ms = a[3] as i32;
            (ms >= 0).then(|| ms as u64 * 1_000_000)
        };
        let ep = s.fds.file(fd_arg(a[0]))?;
        let list: Vec<(i32, Interest)> = {
            let mut f = ep.borrow_mut();
            let set = f.obj.as_epoll().ok_or(EINVAL)?;
            set.interest.iter().map(|(&k, &v)| (k, v)).collect()
        };
        let mut ready: Vec<(i32, u32, u64)> = Vec::new();
        let mut gone = Vec::new();
        let mut seen = Vec::new();
        let gen = s.tasks.io_gen.get();
        for (fd, int) in list {
            if int.disarmed {
                continue;
            }
            let Ok(file) = s.fds.file(i64::from(fd)) else {
                gone.push(fd);
                continue;
            };
            let st = u32::from(file.borrow().obj.poll(&cx(s, env)));
            let got = st & (int.events | EPOLLERR | EPOLLHUP) & !(EPOLLET | EPOLLONESHOT);
            let edge = int.events & EPOLLET == 0 || got & !int.last != 0 || int.gen != gen;
            seen.push((fd, got));
            if got != 0 && edge {
                ready.push((fd, got, int.data));
                if ready.len() == max as usize {
                    break;
                }
            }
        }
        {
            let mut f = ep.borrow_mut();
            let set = f.obj.as_epoll().ok_or(EINVAL)?;
            for fd in gone {
                set.interest.remove(&fd);
            }
            for (fd, got) in seen {
                if let Some(i) = set.interest.get_mut(&fd) {
                    i.last = got;
                    i.gen = gen;
                }
            }
            for (fd, _, _) in &ready {
                if let Some(i) = set.interest.get_mut(fd) {
                    if i.events & EPOLLONESHOT != 0 {
                        i.disarmed = true;
                    }
                }
            }
        }
        if ready.is_empty() {
            if timeout_ns == Some(0) {
                return Ok(Some(0));
            }
            if !s.tasks.enabled {
                if let Some(ns) = timeout_ns {
                    env.sleep(ns);
                }
                return Ok(Some(0));
            }
            let deadline = timeout_ns.map(|ns| (env.now(ClockId::Monotonic).as_nanos().saturating_add(ns), 0));
            s.block_on_io(deadline);
            return Ok(None);
        }
        let mut out = Vec::with_capacity(ready.len() * 16);
        for (_, ev, data) in &ready {
            out.extend_from_slice(&ev.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&data.to_le_bytes());
        }
        env.write(a[1], &out)?;
        Ok(Some(ready.len() as u64))
    })();
    match r {
        Ok(Some(v)) => Outcome::Ret(Ok(v)),
        Ok(None) => Outcome::Action(Action::Block),
        Err(e) => Outcome::Ret(Err(e)),
    }
}
