//! Readiness objects: eventfd and epoll instances, as fd objects.
//!
//! An epoll instance keeps its interest list (fd, events, data); `epoll_pwait` asks each
//! listed fd's object for its [`poll`](crate::fd::FileObject::poll) state, level-triggered
//! (`EPOLLET` reports edges, see [`Interest::last`]; ONESHOT disarms after one report). Waiting
//! is the task table's I/O wait: retried whenever an I/O object changes.

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::pipe::{bump, IoGen, POLLIN, POLLOUT};
use crate::stat::Stat;
use alloc::collections::BTreeMap;

/// eventfd: a 64-bit counter.
pub struct EventFd {
    count: u64,
    semaphore: bool,
    gen: IoGen,
}

const EVENTFD_MAX: u64 = u64::MAX - 1;

impl EventFd {
    pub fn new(init: u64, semaphore: bool, gen: &IoGen) -> Self {
        EventFd { count: init, semaphore, gen: gen.clone() }
    }
}

/// A timerfd: expires at `next` (monotonic ns), then every `interval` ns (0: once).
/// Reading gives the expirations since the last read (or since it was set).
pub struct TimerFd {
    /// Which clock its absolute times are on (0 realtime, 1 monotonic, 7 boottime).
    pub clock: u32,
    pub next: Option<u64>,
    pub interval: u64,
}

impl TimerFd {
    pub fn new(clock: u32) -> Self {
        TimerFd { clock, next: None, interval: 0 }
    }

    /// Takes the expirations up to `now`, moving `next` past it.
    pub fn take(&mut self, now: u64) -> u64 {
        match self.next {
            Some(n) if now >= n => {
                if self.interval == 0 {
                    self.next = None;
                    1
                } else {
                    let k = (now - n) / self.interval + 1;
                    self.next = Some(n.saturating_add(k.saturating_mul(self.interval)));
                    k
                }
            }
            _ => 0,
        }
    }
}

impl<'a> FileObject<'a> for TimerFd {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        match self.take(cx.now) {
            0 => Err(EBLOCK),
            k => {
                buf[..8].copy_from_slice(&k.to_le_bytes());
                Ok(8)
            }
        }
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(anon_stat(0x3_0002))
    }
    fn poll(&self, cx: &Cx<'_, 'a>) -> u16 {
        if self.next.is_some_and(|n| cx.now >= n) {
            POLLIN
        } else {
            0
        }
    }
    fn wakes_at(&self) -> Option<u64> {
        self.next
    }
    fn as_timerfd(&mut self) -> Option<&mut TimerFd> {
        Some(self)
    }
}

fn anon_stat(ino: u64) -> Stat {
    // anon_inode: no file type bits.
    Stat::synthetic(0o600, ino, 0x0d)
}

impl<'a> FileObject<'a> for EventFd {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        if self.count == 0 {
            return Err(EBLOCK);
        }
        let v = if self.semaphore { 1 } else { self.count };
        self.count -= v;
        buf[..8].copy_from_slice(&v.to_le_bytes());
        bump(&self.gen);
        Ok(8)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
        if v == u64::MAX {
            return Err(EINVAL);
        }
        if self.count.checked_add(v).is_none_or(|c| c > EVENTFD_MAX) {
            return Err(EBLOCK);
        }
        self.count += v;
        bump(&self.gen);
        Ok(8)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(anon_stat(0x3_0000))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        let mut r = 0;
        if self.count > 0 {
            r |= POLLIN;
        }
        if self.count < EVENTFD_MAX {
            r |= POLLOUT;
        }
        r
    }
}

pub const EPOLLIN: u32 = 0x1;
pub const EPOLLOUT: u32 = 0x4;
pub const EPOLLERR: u32 = 0x8;
pub const EPOLLHUP: u32 = 0x10;
pub const EPOLLRDHUP: u32 = 0x2000;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;

/// One interest: what is asked for and the caller's data word.
#[derive(Debug, Clone, Copy)]
pub struct Interest {
    pub events: u32,
    pub data: u64,
    /// ONESHOT reported: silent until re-armed by EPOLL_CTL_MOD.
    pub disarmed: bool,
    /// The readiness the last wait saw, and the I/O generation then: EPOLLET reports an fd
    /// when a bit newly appears, or when it is ready and some I/O happened since (more data
    /// for a readable fd is an edge on Linux; here any I/O of the app may count as one, so
    /// an edge-triggered waiter can get an event too many, never one too few).
    pub last: u32,
    pub gen: u64,
}

/// An epoll instance.
#[derive(Default)]
pub struct Epoll {
    pub interest: BTreeMap<i32, Interest>,
}

impl<'a> FileObject<'a> for Epoll {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EINVAL)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _append: bool) -> SysResult<usize> {
        Err(EINVAL)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(anon_stat(0x3_0001))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        // Readiness of an epoll fd itself (nested epoll) is not tracked.
        0
    }
    fn as_epoll(&mut self) -> Option<&mut Epoll> {
        Some(self)
    }
}
