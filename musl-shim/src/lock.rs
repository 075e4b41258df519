//! Byte-range locks of `fcntl(2)`: classic POSIX record locks (`F_SETLK`, `F_SETLKW`,
//! `F_GETLK`), owned by a process, and open file description locks (`F_OFD_*`), owned by
//! one open file. The app's processes share one table ([`Locks`], in the shim), as they
//! share one tree.
//!
//! As on Linux: a process's locks on a file go when it closes *any* fd of that file, and
//! when it ends; an OFD lock goes with the last fd of its open file. A lock's range is split
//! by an unlock or a lock of the other type in its middle, and an owner's adjacent or
//! overlapping ranges of one type merge. Read locks are shared, write locks exclusive;
//! an owner never conflicts with itself. A waiter (`F_SETLKW`) is parked until any I/O
//! changes (every release bumps the I/O generation) and tries again; a wait on a process
//! that itself waits for one of the caller's locks fails with `EDEADLK`.

use crate::errno::*;
use crate::fd::OpenFile;
use crate::vfs::Ino;
use alloc::collections::BTreeMap;
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::RefCell;

/// Who holds a lock.
#[derive(Clone)]
pub enum Owner<'a> {
    /// A process (classic POSIX locks).
    Process(u32),
    /// An open file description (OFD locks); dead once the open file is dropped.
    File(Weak<RefCell<OpenFile<'a>>>),
}

impl<'a> Owner<'a> {
    pub fn of_file(f: &Rc<RefCell<OpenFile<'a>>>) -> Self {
        Owner::File(Rc::downgrade(f))
    }
    fn same(&self, o: &Owner<'a>) -> bool {
        match (self, o) {
            (Owner::Process(a), Owner::Process(b)) => a == b,
            (Owner::File(a), Owner::File(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
    fn alive(&self) -> bool {
        match self {
            Owner::Process(_) => true,
            Owner::File(w) => w.strong_count() > 0,
        }
    }
}

/// One held range, `[start, end)`; `end` is `u64::MAX` for "to the end of the file, however
/// it grows" (`l_len` 0).
#[derive(Clone)]
pub struct Lock<'a> {
    pub owner: Owner<'a>,
    pub start: u64,
    pub end: u64,
    pub write: bool,
    /// What `F_GETLK` reports as `l_pid`: the owner's pid, -1 for an OFD lock.
    pub pid: i32,
}

impl Lock<'_> {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }
}

/// A request: a range, and the type it asks for (`None` unlocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
    pub write: Option<bool>,
}

/// Every byte-range lock of the app, by file, and what each waiting process waits for.
#[derive(Default)]
pub struct Locks<'a> {
    files: BTreeMap<Ino, Vec<Lock<'a>>>,
    waiting: BTreeMap<u32, (Ino, Range)>,
}

impl<'a> Locks<'a> {
    /// The first live lock on `ino` that a request by `owner` for `r` conflicts with.
    pub fn conflict(&self, ino: Ino, owner: &Owner<'a>, r: Range) -> Option<&Lock<'a>> {
        let write = r.write?;
        self.files.get(&ino)?.iter().find(|l| l.owner.alive() && !l.owner.same(owner) && l.overlaps(r.start, r.end) && (write || l.write))
    }

    /// Sets (or with `r.write` None, clears) `owner`'s lock on `r` of `ino`, when nothing
    /// conflicts: `EBLOCK` when something does (`F_SETLK` turns it into `EAGAIN`), or
    /// `EDEADLK` when the holder is a process waiting for a lock of `owner`'s.
    pub fn set(&mut self, ino: Ino, owner: Owner<'a>, pid: i32, r: Range) -> SysResult<()> {
        if let Some(held) = self.conflict(ino, &owner, r) {
            return Err(if self.would_deadlock(ino, &owner, held) { EDEADLK } else { EBLOCK });
        }
        let locks = self.files.entry(ino).or_default();
        locks.retain(|l| l.owner.alive());
        let mut kept = Vec::with_capacity(locks.len() + 2);
        let (mut start, mut end) = (r.start, r.end);
        for l in locks.drain(..) {
            if !l.owner.same(&owner) {
                kept.push(l);
            } else if r.write == Some(l.write) && l.start <= end && start <= l.end {
                // The same type, overlapping or adjacent: one range.
                start = start.min(l.start);
                end = end.max(l.end);
            } else if !l.overlaps(start, end) {
                kept.push(l);
            } else {
                if l.start < start {
                    kept.push(Lock { end: start, ..l.clone() });
                }
                if l.end > end {
                    kept.push(Lock { start: end, ..l });
                }
            }
        }
        if let Some(write) = r.write {
            kept.push(Lock { owner, start, end, write, pid });
        }
        kept.sort_by_key(|l| l.start);
        *locks = kept;
        if locks.is_empty() {
            self.files.remove(&ino);
        }
        Ok(())
    }

    /// Whether `held`'s owner is a process waiting for a range `owner` holds (the
    /// two-party deadlock Linux detects).
    fn would_deadlock(&self, ino: Ino, owner: &Owner<'a>, held: &Lock<'a>) -> bool {
        let (Owner::Process(_), Owner::Process(other)) = (owner, &held.owner) else { return false };
        let Some(&(wino, want)) = self.waiting.get(other) else { return false };
        let Some(write) = want.write else { return false };
        let _ = ino;
        self.files.get(&wino).is_some_and(|ls| ls.iter().any(|l| l.owner.same(owner) && l.overlaps(want.start, want.end) && (write || l.write)))
    }

    /// Notes that `pid` waits for `r` on `ino` (or, with None, no longer waits).
    pub fn set_waiting(&mut self, pid: u32, wait: Option<(Ino, Range)>) {
        match wait {
            Some(w) => self.waiting.insert(pid, w),
            None => self.waiting.remove(&pid),
        };
    }

    /// Drops every lock of process `pid` on `ino` (it closed an fd of the file); whether
    /// any went.
    pub fn release(&mut self, ino: Ino, pid: u32) -> bool {
        let Some(locks) = self.files.get_mut(&ino) else { return false };
        let before = locks.len();
        locks.retain(|l| l.owner.alive() && !l.owner.same(&Owner::Process(pid)));
        let gone = locks.len() != before;
        if locks.is_empty() {
            self.files.remove(&ino);
        }
        gone
    }

    /// Drops every lock of process `pid` (it ended) and the locks of open files that are
    /// gone; whether any went.
    pub fn release_process(&mut self, pid: u32) -> bool {
        self.waiting.remove(&pid);
        let inos: Vec<Ino> = self.files.keys().copied().collect();
        let mut gone = false;
        for ino in inos {
            gone |= self.release(ino, pid);
        }
        gone
    }

    /// Whether `ino` has locks (a close of one of its fds may have let a waiter in).
    pub fn any(&self, ino: Ino) -> bool {
        self.files.contains_key(&ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64, write: Option<bool>) -> Range {
        Range { start, end, write }
    }
    fn ranges(l: &Locks<'_>, ino: Ino) -> Vec<(u64, u64, bool)> {
        l.files.get(&ino).map_or(Vec::new(), |v| v.iter().map(|l| (l.start, l.end, l.write)).collect())
    }

    #[test]
    fn ranges_split_and_merge() {
        let mut l = Locks::default();
        let p = Owner::Process(1);
        l.set(7, p.clone(), 1, r(0, 100, Some(true))).unwrap();
        l.set(7, p.clone(), 1, r(40, 60, None)).unwrap();
        assert_eq!(ranges(&l, 7), [(0, 40, true), (60, 100, true)]);
        l.set(7, p.clone(), 1, r(40, 60, Some(false))).unwrap();
        assert_eq!(ranges(&l, 7), [(0, 40, true), (40, 60, false), (60, 100, true)]);
        l.set(7, p.clone(), 1, r(40, 60, Some(true))).unwrap();
        assert_eq!(ranges(&l, 7), [(0, 100, true)], "adjacent ranges of one type merge");
        l.set(7, p, 1, r(0, u64::MAX, None)).unwrap();
        assert!(!l.any(7));
    }

    #[test]
    fn readers_share_writers_exclude_and_deadlocks_are_seen() {
        let mut l = Locks::default();
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        l.set(7, a.clone(), 1, r(0, 10, Some(false))).unwrap();
        l.set(7, b.clone(), 2, r(5, 15, Some(false))).unwrap();
        assert_eq!(l.set(7, b.clone(), 2, r(0, 1, Some(true))), Err(EBLOCK));
        assert_eq!(l.conflict(7, &b, r(0, 1, Some(true))).map(|k| k.pid), Some(1));
        l.set(7, a.clone(), 1, r(20, 30, Some(true))).unwrap();
        l.set_waiting(2, Some((7, r(20, 21, Some(true)))));
        assert_eq!(l.set(7, a, 1, r(5, 6, Some(true))), Err(EDEADLK), "2 waits for 1's range");
        assert!(l.release_process(2));
        assert_eq!(ranges(&l, 7), [(0, 10, false), (20, 30, true)]);
    }
}
