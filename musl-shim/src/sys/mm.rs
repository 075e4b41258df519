//! Memory syscalls: brk, mmap (anonymous, private file copies and shared file mappings),
//! munmap, mprotect, mremap, msync, madvise.

use super::fs::{cx, fd_arg};
use crate::errno::*;
use crate::mm::{page_up, RegionKind, PAGE};
use crate::platform::{Platform, Prot};
use crate::Shim;

pub const MAP_SHARED: u64 = 0x01;
pub const MAP_PRIVATE: u64 = 0x02;
pub const MAP_SHARED_VALIDATE: u64 = 0x03;
pub const MAP_FIXED: u64 = 0x10;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MAP_FIXED_NOREPLACE: u64 = 0x100000;
pub const MREMAP_MAYMOVE: u64 = 1;
pub const MADV_DONTNEED: u64 = 4;
/// A private file mapping is written into the app's frames this many bytes at a time.
const COPY_CHUNK: usize = 64 << 10;

fn prot_arg(p: u64) -> SysResult<Prot> {
    // PROT_GROWSDOWN/GROWSUP are accepted and ignored; PROT_BTI/MTE too.
    let p = p & !(0x0100_0000 | 0x0200_0000 | 0x10 | 0x20);
    if p & !7 != 0 {
        return Err(EINVAL);
    }
    Ok(Prot(p as u32))
}

pub fn brk<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    Ok(s.mm.brk(env, a[0]))
}

pub fn mmap<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let [addr, len, prot, flags, fd, off] = a;
    let prot = prot_arg(prot)?;
    if len == 0 || off % PAGE != 0 {
        return Err(EINVAL);
    }
    let share = flags & MAP_SHARED_VALIDATE;
    if share == 0 {
        return Err(EINVAL);
    }
    let len = page_up(len).ok_or(ENOMEM)?;
    let fixed = flags & MAP_FIXED != 0;
    if flags & MAP_FIXED_NOREPLACE != 0 {
        let end = addr.checked_add(len).ok_or(ENOMEM)?;
        if addr % PAGE != 0 {
            return Err(EINVAL);
        }
        if s.mm.regions().any(|r| r.start < end && r.end > addr) {
            return Err(EEXIST);
        }
    }
    let fixed = fixed || flags & MAP_FIXED_NOREPLACE != 0;
    if flags & MAP_ANONYMOUS != 0 {
        return s.mm.map_anon(env, addr, len, prot, fixed, RegionKind::Anon);
    }
    // A private (or read-only shared) copy of file data.
    let file = s.fds.file(fd_arg(fd))?;
    let f = file.borrow();
    if !f.readable() {
        return Err(EACCES);
    }
    if let Some(ch) = f.obj.as_channel() {
        let (runner, bytes) = ch.ring();
        drop(f);
        return map_channel(s, env, addr, len, prot, off, fixed, runner, &bytes);
    }
    if share != MAP_PRIVATE && prot.w() && !f.writable() {
        return Err(EACCES);
    }
    let data_ino = f.obj.ino().filter(|&i| crate::fd::data_of(&s.vfs, i).is_some());
    if let Some(ino) = data_ino.filter(|_| share != MAP_PRIVATE && !prot.x()) {
        let writable = f.writable();
        drop(f);
        return map_file_shared(s, env, addr, len, prot, off, fixed, ino, writable);
    }
    if share != MAP_PRIVATE && prot.w() {
        // Writes would have to reach a device: not supported.
        return Err(ENODEV);
    }
    // Code of the image mapped read-only starts with the text store's rewritten pages:
    // the runner maps them without a copy where it can (`shared` bytes of the mapping).
    let node_bytes = f.obj.ino().and_then(|ino| crate::fd::data_of(&s.vfs, ino));
    let stored = match node_bytes {
        Some(src) if prot.x() && !prot.w() && share == MAP_PRIVATE => s.stored_text(src).and_then(|t| t.code_at(off)),
        _ => None,
    };
    // What to copy: [from, end) of the source, after the pages shared with the text store.
    // A file of the tree is read in place once mapped (its bytes are never copied whole
    // into the runner's heap, which may be smaller than the file); other objects' bytes
    // are taken now, fallibly.
    let from_tree = node_bytes.is_some();
    let (from, end, start, owned, traps, code) = {
        let mut owned = alloc::vec::Vec::new();
        let src: &[u8] = match node_bytes {
            Some(b) => b,
            None => {
                let c = cx(s, env);
                let b = f.obj.map_source(&c)?;
                owned.try_reserve_exact(b.len()).map_err(|_| ENOMEM)?;
                owned.extend_from_slice(b);
                &owned
            }
        };
        let code = stored.map(|c| &c[..c.len().min(len as usize)]);
        let shared = code.map_or(0, |c| page_up(c.len() as u64).unwrap_or(len).min(len) as usize);
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(src.len());
        let end = start.saturating_add(len as usize).min(src.len());
        let mut traps = alloc::vec::Vec::new();
        if prot.x() && crate::text::sdk_abi(src) {
            s.mm.sdk_syscalls = true;
        } else if prot.x() {
            for t in s.traps_of(src) {
                let Ok(t) = usize::try_from(t) else { continue };
                if t >= start && t.saturating_add(4) <= end {
                    traps.push((t - start) as u64);
                }
            }
        }
        let from = start.saturating_add(shared).min(end);
        (from, end, start, owned, traps, code)
    };
    let ino = f.obj.ino();
    drop(f);
    let at = s.mm.map_anon(env, addr, len, prot, fixed, RegionKind::File)?;
    let mut shared = 0;
    if let Some(code) = code {
        let n = page_up(code.len() as u64).unwrap_or(len).min(len);
        env.unmap(at, n)?;
        if env.map_shared(at, code, prot) {
            s.mm.record(at, at + n, prot, RegionKind::Image);
        } else {
            env.map(at, n, prot)?;
            env.write(at, code)?;
        }
        shared = n;
    }
    if from < end {
        let src: &[u8] = match (from_tree, ino) {
            (true, Some(ino)) => crate::fd::data_of(&s.vfs, ino).unwrap_or(&[]),
            _ => &owned,
        };
        let src = &src[..end.min(src.len())];
        // In chunks, with the trapping `udf` written over the syscall words.
        let mut buf = alloc::vec![0u8; (end - from).min(COPY_CHUNK)];
        let mut c0 = from;
        while c0 < src.len() {
            let c1 = (c0 + buf.len()).min(src.len());
            let chunk = &mut buf[..c1 - c0];
            chunk.copy_from_slice(&src[c0..c1]);
            for &t in &traps {
                let t = t as usize + start;
                if t >= c0 && t + 4 <= c1 {
                    chunk[t - c0..t - c0 + 4].copy_from_slice(&crate::text::UDF_WORD.to_le_bytes());
                }
            }
            env.write(at + shared + (c0 - from) as u64, chunk)?;
            c0 = c1;
        }
    }
    s.mm.add_traps(traps.into_iter().map(|o| at + o));
    Ok(at)
}

/// A shared mapping of a file of the tree ([`crate::filemap`]): the file's bytes now, kept
/// in step with the file at each syscall.
#[allow(clippy::too_many_arguments)]
fn map_file_shared<E: Platform>(s: &mut Shim<'_>, env: &mut E, addr: u64, len: u64, prot: Prot, off: u64, fixed: bool, ino: crate::vfs::Ino, writable: bool) -> SysResult<u64> {
    let n = usize::try_from(len).map_err(|_| ENOMEM)?;
    crate::filemap::room(s, len)?;
    let at = s.mm.map_anon(env, addr, len, prot, fixed, RegionKind::File)?;
    let shown = crate::filemap::contents(&s.vfs, ino, off, n);
    env.write(at, &shown)?;
    let hold = s.vfs.hold(ino);
    s.mm.files.push(crate::filemap::FileMap::new(at, ino, off, writable, shown, hold));
    Ok(at)
}

/// A consumer's view of a channel's ring (crate::channel): read-only, from offset 0, at
/// most the ring. Shared with the runner's ring when it can map its pages, else a copy of
/// the ring as it is now.
#[allow(clippy::too_many_arguments)]
fn map_channel<E: Platform>(s: &mut Shim<'_>, env: &mut E, addr: u64, len: u64, prot: Prot, off: u64, fixed: bool, runner: Option<usize>, bytes: &[u8]) -> SysResult<u64> {
    if prot.w() || prot.x() {
        return Err(EACCES);
    }
    if off != 0 || len > bytes.len() as u64 {
        return Err(EINVAL);
    }
    let at = s.mm.map_anon(env, addr, len, prot, fixed, RegionKind::File)?;
    if let Some(r) = runner {
        env.unmap(at, len)?;
        if env.map_runner_pages(at, r, len, prot) {
            s.mm.record(at, at + len, prot, RegionKind::Image);
            return Ok(at);
        }
        env.map(at, len, prot)?;
    }
    env.write(at, &bytes[..len as usize])?;
    Ok(at)
}

/// How many bytes of our heap an mmap with arguments `a` takes on the way (0 for an
/// anonymous mapping or a bad argument, which mmap then refuses): a chunk of a private
/// mapping of a file of the tree, two copies of a shared one, or the whole source of
/// another object. A runner with a small heap checks it first.
pub fn mmap_copy_size(s: &Shim<'_>, a: [u64; 6]) -> u64 {
    let [_, len, prot, flags, fd, off] = a;
    if flags & MAP_ANONYMOUS != 0 {
        return 0;
    }
    let Ok(prot) = prot_arg(prot) else { return 0 };
    let Ok(file) = s.fds.file(fd_arg(fd)) else { return 0 };
    let f = file.borrow();
    let Some(ino) = f.obj.ino() else { return len };
    let Some(src) = crate::fd::data_of(&s.vfs, ino) else {
        return s.vfs.node(ino).size().saturating_add(len);
    };
    let private = flags & MAP_SHARED_VALIDATE == MAP_PRIVATE;
    if !private && !prot.x() {
        // The shown bytes, and the snapshot each syscall compares them with.
        return len.saturating_mul(2);
    }
    let stored = if prot.x() && !prot.w() && private { s.stored_text(src).and_then(|t| t.code_at(off)) } else { None };
    let shared = stored.map_or(0, |c| page_up(c.len() as u64).unwrap_or(len).min(len));
    let start = off.min(src.len() as u64);
    let end = start.saturating_add(len).min(src.len() as u64);
    // Written into the app's frames a chunk at a time.
    (end - start.saturating_add(shared).min(end)).min(COPY_CHUNK as u64)
}

pub fn munmap<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    s.mm.unmap(env, a[0], a[1]).map(|_| 0)
}

pub fn mprotect<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let prot = prot_arg(a[2])?;
    s.mm.protect(env, a[0], a[1], prot).map(|_| 0)
}

pub fn mremap<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[3] & !MREMAP_MAYMOVE != 0 {
        // MREMAP_FIXED and MREMAP_DONTUNMAP are not supported.
        return Err(EINVAL);
    }
    let Some(file) = crate::filemap::take(&mut s.mm.files, a[0]) else {
        return s.mm.remap(env, a[0], a[1], a[2], a[3] & MREMAP_MAYMOVE != 0);
    };
    // A shared file mapping stays one where it goes (the next sync shows the file there),
    // at its new length within the limit (it is out of the count while taken).
    if let Err(e) = crate::filemap::room(s, page_up(a[2]).unwrap_or(u64::MAX)) {
        s.mm.files.push(file);
        return Err(e);
    }
    let r = s.mm.remap(env, a[0], a[1], a[2], a[3] & MREMAP_MAYMOVE != 0);
    let (at, len) = match r {
        Ok(at) => (at, page_up(a[2]).unwrap_or(file.len)),
        Err(_) => (file.start, file.len),
    };
    crate::filemap::moved(&mut s.mm.files, file, at, len, env)?;
    r
}

/// msync(addr, len, flags): the bytes are in the file already (every syscall syncs the
/// shared mappings); Linux's argument checks remain.
pub fn msync<E: Platform>(s: &mut Shim<'_>, _env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    let [addr, len, flags, ..] = a;
    if !addr.is_multiple_of(PAGE) || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC {
        return Err(EINVAL);
    }
    let end = addr.checked_add(page_up(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
    let mut at = addr;
    while at < end {
        at = s.mm.lookup(at).ok_or(ENOMEM)?.end;
    }
    Ok(0)
}

pub fn madvise<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if !a[0].is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    if a[2] == MADV_DONTNEED {
        s.mm.discard(env, a[0], a[1])?;
    }
    Ok(0)
}
