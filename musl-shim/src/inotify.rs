//! inotify: watches on the app's own tree. The [`Vfs`](crate::vfs::Vfs) keeps the watch
//! list and reports what changes through it ([`Watches::notify`]): names created, deleted
//! and moved in a watched directory (`IN_CREATE`, `IN_DELETE`, `IN_MOVED_FROM`/`TO`), and a
//! watched file's own changes (`IN_MODIFY`, `IN_ATTRIB`, `IN_DELETE_SELF`). Nothing else
//! writes to the tree, so these are all the events there are, except `IN_ACCESS`,
//! `IN_OPEN` and `IN_CLOSE_*`, which are not reported; a file's `IN_MODIFY` reaches a watch
//! on the file, not one on its directory.

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::pipe::{bump, IoGen, POLLIN};
use crate::stat::Stat;
use crate::vfs::Ino;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ISDIR: u32 = 0x4000_0000;
const IN_ONLYDIR: u32 = 0x0100_0000;
const IN_DONT_FOLLOW: u32 = 0x0200_0000;
const IN_MASK_ADD: u32 = 0x2000_0000;
const IN_ONESHOT: u32 = 0x8000_0000;
/// Every event a watch may ask for.
const IN_ALL_EVENTS: u32 = 0xfff;
/// Most events queued per instance (Linux's max_queued_events default).
const MAX_QUEUED: usize = 16384;

/// One inotify instance's queue of `struct inotify_event` records.
pub struct Queue {
    events: VecDeque<Vec<u8>>,
    next_wd: i32,
    gen: IoGen,
}

pub type SharedQueue = Rc<RefCell<Queue>>;

impl Queue {
    fn push(&mut self, wd: i32, mask: u32, cookie: u32, name: &[u8]) {
        if self.events.len() >= MAX_QUEUED {
            return;
        }
        // The name is NUL-terminated and padded to 16 bytes, as Linux lays it out.
        let len = if name.is_empty() { 0 } else { (name.len() + 1).next_multiple_of(16) };
        let mut e = Vec::with_capacity(16 + len);
        e.extend_from_slice(&wd.to_le_bytes());
        e.extend_from_slice(&mask.to_le_bytes());
        e.extend_from_slice(&cookie.to_le_bytes());
        e.extend_from_slice(&(len as u32).to_le_bytes());
        e.extend_from_slice(name);
        e.resize(16 + len, 0);
        // An event the same as the last one still queued is merged into it, as on Linux.
        if self.events.back() == Some(&e) {
            return;
        }
        self.events.push_back(e);
        bump(&self.gen);
    }
}

#[derive(Clone)]
struct Watch {
    queue: SharedQueue,
    wd: i32,
    ino: Ino,
    mask: u32,
}

/// The watches of every inotify instance of the app, kept by its tree.
#[derive(Clone, Default)]
pub struct Watches {
    list: Vec<Watch>,
    cookie: u32,
}

impl core::fmt::Debug for Watches {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Watches({})", self.list.len())
    }
}

impl Watches {
    /// Reports `mask` (with `name`, in a watched directory `ino`) to the watches on `ino`.
    pub fn notify(&mut self, ino: Ino, mask: u32, name: &[u8], cookie: u32) {
        if self.list.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (i, w) in self.list.iter().enumerate() {
            if w.ino == ino && w.mask & mask & IN_ALL_EVENTS != 0 {
                w.queue.borrow_mut().push(w.wd, mask, cookie, name);
                if w.mask & IN_ONESHOT != 0 {
                    gone.push(i);
                }
            }
        }
        for i in gone.into_iter().rev() {
            let w = self.list.remove(i);
            w.queue.borrow_mut().push(w.wd, IN_IGNORED, 0, &[]);
        }
    }

    /// The nodes watched (each once): the directories among them hear of their
    /// children's changes.
    pub fn watched(&self) -> Vec<Ino> {
        let mut v: Vec<Ino> = self.list.iter().map(|w| w.ino).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A cookie tying an IN_MOVED_FROM to its IN_MOVED_TO.
    pub fn next_cookie(&mut self) -> u32 {
        self.cookie = self.cookie.wrapping_add(1);
        self.cookie
    }

    /// `ino` is gone: its watches get IN_DELETE_SELF and IN_IGNORED and end.
    pub fn gone(&mut self, ino: Ino) {
        self.notify(ino, IN_DELETE_SELF, &[], 0);
        let (ended, kept): (Vec<Watch>, Vec<Watch>) = self.list.drain(..).partition(|w| w.ino == ino);
        self.list = kept;
        for w in ended {
            w.queue.borrow_mut().push(w.wd, IN_IGNORED, 0, &[]);
        }
    }

    /// inotify_add_watch's work once the path is resolved: a new watch descriptor, or
    /// the one this instance already has on `ino` (its mask replaced, or widened with
    /// IN_MASK_ADD).
    pub fn add(&mut self, queue: &SharedQueue, ino: Ino, is_dir: bool, mask: u32) -> SysResult<i32> {
        if mask & IN_ALL_EVENTS == 0 {
            return Err(EINVAL);
        }
        if mask & IN_ONLYDIR != 0 && !is_dir {
            return Err(ENOTDIR);
        }
        if let Some(w) = self.list.iter_mut().find(|w| Rc::ptr_eq(&w.queue, queue) && w.ino == ino) {
            w.mask = if mask & IN_MASK_ADD != 0 { w.mask | mask } else { mask };
            return Ok(w.wd);
        }
        let wd = {
            let mut q = queue.borrow_mut();
            q.next_wd += 1;
            q.next_wd
        };
        self.list.push(Watch { queue: queue.clone(), wd, ino, mask });
        Ok(wd)
    }

    pub fn remove(&mut self, queue: &SharedQueue, wd: i32) -> SysResult<()> {
        let i = self.list.iter().position(|w| Rc::ptr_eq(&w.queue, queue) && w.wd == wd).ok_or(EINVAL)?;
        let w = self.list.remove(i);
        w.queue.borrow_mut().push(wd, IN_IGNORED, 0, &[]);
        Ok(())
    }
}

/// Whether add_watch follows a symlink in the last component.
pub fn follows(mask: u32) -> bool {
    mask & IN_DONT_FOLLOW == 0
}

/// An inotify instance's fd.
pub struct Inotify {
    pub queue: SharedQueue,
}

impl Inotify {
    pub fn new(gen: &IoGen) -> Inotify {
        Inotify { queue: Rc::new(RefCell::new(Queue { events: VecDeque::new(), next_wd: 0, gen: gen.clone() })) }
    }
}

impl<'a> FileObject<'a> for Inotify {
    /// Whole events only; EINVAL when the first does not fit.
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let mut q = self.queue.borrow_mut();
        if q.events.is_empty() {
            return Err(EBLOCK);
        }
        let mut n = 0;
        while let Some(e) = q.events.front() {
            if n + e.len() > buf.len() {
                break;
            }
            buf[n..n + e.len()].copy_from_slice(e);
            n += e.len();
            q.events.pop_front();
        }
        if n == 0 {
            return Err(EINVAL);
        }
        bump(&q.gen);
        Ok(n)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::synthetic(0o600, 1, 0x0d))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        if self.queue.borrow().events.is_empty() {
            0
        } else {
            POLLIN
        }
    }
    fn fionread(&self) -> Option<usize> {
        Some(self.queue.borrow().events.iter().map(Vec::len).sum())
    }
    fn as_inotify(&self) -> Option<&Inotify> {
        Some(self)
    }
}
