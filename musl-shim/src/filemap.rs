//! Shared mappings of files (`MAP_SHARED` of a regular file of the tree: tmpfs, the
//! rootfs layer, memfd, /dev/shm, image files).
//!
//! The file's bytes stay in the tree; each process keeps, per mapping, a copy of what the
//! mapping held when it was last brought together with the file (its *snapshot*). At every
//! syscall of the process, before and after the shim services it, [`sync`] writes the bytes
//! the app stored into the mapping since then (those that differ from the snapshot) to the
//! file, and then shows the file's bytes in the mapping (zeros past its end). So a store
//! through the mapping is in the file by the process's next syscall (read, msync, munmap,
//! exit, a futex wake), and a write to the file, by this process or another, shows in the
//! mapping by the next syscall of each mapping process. A fork keeps the mapping shared
//! (the child has the same snapshots). What is not there: a process that only spins on
//! mapped memory, making no syscall, does not see another's stores, and stores made
//! between a process's last syscall and a fatal signal are lost.

use crate::errno::*;
use crate::mem::GuestMemory;
use crate::vfs::{Ino, Vfs};
use alloc::vec;
use alloc::vec::Vec;

/// [`crate::Shim::map_limit`] unless the runner sets it: 64 MiB of shared file mappings.
pub const DEFAULT_LIMIT: usize = 64 << 20;

/// Whether `more` bytes of shared file mappings fit in the app's limit, counting those of
/// every process (the running one's and the parked ones'); `ENOMEM` when they do not.
pub fn room(s: &crate::Shim<'_>, more: u64) -> SysResult<()> {
    let held = |maps: &[FileMap]| maps.iter().map(|m| m.len).fold(0u64, u64::saturating_add);
    let parked = s.tasks.parked.values().map(|p| held(&p.mm.files)).fold(0u64, u64::saturating_add);
    let total = held(&s.mm.files).saturating_add(parked).saturating_add(more);
    if total > s.map_limit as u64 {
        return Err(ENOMEM);
    }
    Ok(())
}

/// One shared mapping of `len` bytes of file `ino` from offset `off`, at `start`.
#[derive(Debug, Clone)]
pub struct FileMap {
    pub start: u64,
    pub len: u64,
    pub ino: Ino,
    pub off: u64,
    /// Opened for writing: the app's stores reach the file.
    pub writable: bool,
    snap: Vec<u8>,
    /// Keeps the file's bytes while it is mapped, even once no name links it.
    hold: alloc::rc::Rc<()>,
    /// Its frames are shared with another process (the runner gave a forked child the
    /// same frames): the memory is the truth, and the file's bytes come back into it only
    /// when something else changed them (see [`sync`]).
    pub aliased: bool,
    /// [`Vfs::data_gen`] when it last met the file.
    gen: u64,
}

impl FileMap {
    /// A mapping whose guest bytes are `shown` now.
    pub fn new(start: u64, ino: Ino, off: u64, writable: bool, shown: Vec<u8>, hold: alloc::rc::Rc<()>) -> Self {
        FileMap { start, len: shown.len() as u64, ino, off, writable, snap: shown, hold, aliased: false, gen: 0 }
    }
    /// The part of this mapping at `start` (file offset `off`) whose snapshot is `snap`.
    fn part(&self, start: u64, off: u64, snap: Vec<u8>) -> Self {
        FileMap { aliased: self.aliased, gen: self.gen, ..FileMap::new(start, self.ino, off, self.writable, snap, self.hold.clone()) }
    }
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What a mapping of `len` bytes of `ino` from `off` shows: the file's bytes, then zeros.
pub fn contents(vfs: &Vfs<'_>, ino: Ino, off: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let data = crate::fd::data_of(vfs, ino).unwrap_or(&[]);
    let from = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
    let n = len.min(data.len() - from);
    out[..n].copy_from_slice(&data[from..from + n]);
    out
}

/// Brings every mapping in `maps` together with its file (see the module docs).
pub fn sync(maps: &mut [FileMap], vfs: &mut Vfs<'_>, mem: &mut dyn GuestMemory) {
    for m in maps {
        // A mapping the app can no longer read (its pages went) is left as it was.
        let _ = sync_one(m, vfs, mem);
    }
}

fn sync_one(m: &mut FileMap, vfs: &mut Vfs<'_>, mem: &mut dyn GuestMemory) -> SysResult<()> {
    let len = usize::try_from(m.len).map_err(|_| ENOMEM)?;
    let mut now = vec![0u8; len];
    mem.read(m.start, &mut now)?;
    if m.writable {
        store_changes(m, &now, vfs);
    }
    if m.aliased && m.gen == vfs.data_gen(m.ino) {
        // Shared frames: another process's stores are in `now` already, and a copy of
        // the file written back could undo a store made since the file got it.
        m.snap = now;
        return Ok(());
    }
    let file = contents(vfs, m.ino, m.off, len);
    if file != now {
        mem.write(m.start, &file)?;
    }
    m.snap = file;
    m.gen = vfs.data_gen(m.ino);
    Ok(())
}

/// Writes to the file the runs of `now` that differ from the snapshot, within the file's
/// length (stores past its end are not kept, as on Linux).
fn store_changes(m: &FileMap, now: &[u8], vfs: &mut Vfs<'_>) {
    let size = crate::fd::data_of(vfs, m.ino).map_or(0, |d| d.len() as u64);
    let valid = usize::try_from(size.saturating_sub(m.off).min(m.len)).unwrap_or(0);
    let mut i = 0;
    while i < valid {
        if now[i] == m.snap[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < valid && now[j] != m.snap[j] {
            j += 1;
        }
        let gen = vfs.data_gen(m.ino);
        let _ = vfs.write_at(m.ino, m.off + i as u64, &now[i..j]);
        if m.aliased {
            // The other holders of these frames have the bytes already.
            vfs.set_data_gen(m.ino, gen);
        }
        i = j;
    }
}

/// Marks every shared file mapping in `maps` as sharing its frames with another process
/// (after a fork that gave the child the parent's frames).
pub fn set_aliased(maps: &mut [FileMap], vfs: &Vfs<'_>) {
    for m in maps {
        m.aliased = true;
        m.gen = vfs.data_gen(m.ino);
    }
}

/// Takes `[start, end)` out of the mappings (munmap, or a mapping placed over them): the
/// parts before and after it stay.
pub fn trim(maps: &mut Vec<FileMap>, start: u64, end: u64) {
    let mut kept = Vec::with_capacity(maps.len());
    for m in maps.drain(..) {
        if m.end() <= start || m.start >= end {
            kept.push(m);
            continue;
        }
        if m.start < start {
            let n = (start - m.start) as usize;
            kept.push(m.part(m.start, m.off, m.snap[..n].to_vec()));
        }
        if m.end() > end {
            let n = (end - m.start) as usize;
            kept.push(m.part(end, m.off + n as u64, m.snap[n..].to_vec()));
        }
    }
    *maps = kept;
}

/// Takes out the mapping that starts at `start` (mremap moves or resizes it).
pub fn take(maps: &mut Vec<FileMap>, start: u64) -> Option<FileMap> {
    let i = maps.iter().position(|m| m.start == start)?;
    Some(maps.remove(i))
}

/// Puts back `m`, now `len` bytes at `start` (after mremap), with what the guest shows
/// there as its snapshot: the next [`sync`] fills it from the file.
pub fn moved(maps: &mut Vec<FileMap>, m: FileMap, start: u64, len: u64, mem: &mut dyn GuestMemory) -> SysResult<()> {
    let mut shown = vec![0u8; usize::try_from(len).map_err(|_| ENOMEM)?];
    mem.read(start, &mut shown)?;
    maps.push(FileMap::new(start, m.ino, m.off, m.writable, shown, m.hold));
    Ok(())
}
