//! File syscalls: open, read, write, stat, directories, fds, ioctl, poll.

use super::CHUNK;
use crate::errno::*;
use crate::fd::*;
use crate::mem::GuestMemory;
use crate::platform::{Devices, Platform};
use crate::stat::Stat;
use crate::vfs::{Found, Ino, Kind, Ts, PATH_MAX, S_IFDIR};
use crate::pipe::{POLLERR, POLLHUP, POLLIN, POLLOUT};
use crate::Shim;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

pub const AT_FDCWD: i64 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_REMOVEDIR: u64 = 0x200;
pub const AT_EACCESS: u64 = 0x200;
pub const AT_EMPTY_PATH: u64 = 0x1000;

/// An fd argument: the low 32 bits, sign-extended (as the kernel reads an `int`).
pub fn fd_arg(v: u64) -> i64 {
    v as i32 as i64
}

pub(crate) fn cx<'c, 'a, E: Platform>(s: &'c mut Shim<'a>, env: &'c mut E) -> Cx<'c, 'a> {
    let now = env.now(crate::ClockId::Monotonic).as_nanos();
    Cx { vfs: &mut s.vfs, dev: env as &mut dyn Devices, now }
}

/// Reads a path argument.
pub fn path_arg<E: GuestMemory>(env: &mut E, addr: u64) -> SysResult<Vec<u8>> {
    env.read_cstr(addr, PATH_MAX - 1)
}

/// The directory a `*at` call starts from.
fn at_dir(s: &Shim<'_>, dirfd: i64) -> SysResult<Ino> {
    if dirfd == AT_FDCWD {
        return Ok(s.cwd);
    }
    let file = s.fds.get(dirfd)?.file.clone();
    let ino = file.borrow().obj.ino().ok_or(ENOTDIR)?;
    if s.vfs.node(ino).is_dir() {
        Ok(ino)
    } else {
        Err(ENOTDIR)
    }
}

/// Resolves (dirfd, path), with AT_EMPTY_PATH meaning the dirfd itself.
pub(crate) fn lookup<E: Platform>(s: &Shim<'_>, env: &mut E, dirfd: u64, path: u64, flags: u64) -> SysResult<Found> {
    let p = path_arg(env, path)?;
    let dirfd = fd_arg(dirfd);
    if p.is_empty() {
        if flags & AT_EMPTY_PATH != 0 {
            if dirfd == AT_FDCWD {
                return Ok(Found::Node(s.cwd));
            }
            s.fds.get(dirfd)?;
            return Ok(Found::Fd(dirfd as i32));
        }
        return Err(ENOENT);
    }
    let start = if p[0] == b'/' { crate::vfs::ROOT } else { at_dir(s, dirfd)? };
    s.vfs.resolve(start, &p, flags & AT_SYMLINK_NOFOLLOW == 0)
}

fn stat_found<E: Platform>(s: &mut Shim<'_>, env: &mut E, f: Found) -> SysResult<Stat> {
    match f {
        Found::Node(ino) => Ok(Stat::of_node(&s.vfs, ino)),
        Found::Fd(fd) => {
            let file = s.fds.file(i64::from(fd))?;
            let f = file.borrow();
            f.obj.stat(&cx(s, env))
        }
        Found::ProcFd { pid, fd, info: false } => {
            let file = proc_fd_file(s, pid, fd)?;
            let f = file.borrow();
            f.obj.stat(&cx(s, env))
        }
        Found::ProcFd { pid, fd, info: true } => {
            proc_fd_file(s, pid, fd)?;
            Ok(crate::procfs::fdinfo_stat(fd))
        }
    }
}

/// The open file behind fd `fd` of process `pid` (/proc/<pid>/fd/N): ENOENT when it has
/// no such fd, or is a zombie.
fn proc_fd_file<'a>(s: &Shim<'a>, pid: u32, fd: i32) -> SysResult<alloc::rc::Rc<core::cell::RefCell<crate::fd::OpenFile<'a>>>> {
    let fds = if pid == s.proc_.pid { &s.fds } else { &s.tasks.parked.get(&pid).ok_or(ENOENT)?.fds };
    fds.get(i64::from(fd)).map(|e| e.file.clone()).map_err(|_| ENOENT)
}

/// The node of `file` when it is a regular file.
fn regular_behind(s: &Shim<'_>, file: alloc::rc::Rc<core::cell::RefCell<OpenFile<'_>>>) -> Option<Found> {
    let ino = file.borrow().obj.ino()?;
    matches!(s.vfs.node(ino).kind, Kind::File(_)).then_some(Found::Node(ino))
}

/// What /proc/<pid>/fdinfo/N says of fd `fd` of process `pid`.
fn fdinfo_of<E: Platform>(s: &mut Shim<'_>, env: &mut E, pid: u32, fd: i32) -> SysResult<Vec<u8>> {
    let file = proc_fd_file(s, pid, fd)?;
    let fds = if pid == s.proc_.pid { &s.fds } else { &s.tasks.parked.get(&pid).ok_or(ENOENT)?.fds };
    let cloexec = fds.get(i64::from(fd)).is_ok_and(|e| e.cloexec);
    let mut f = file.borrow_mut();
    let pos = f.obj.lseek(&mut cx(s, env), 0, 1).unwrap_or(0);
    let node = f.obj.ino();
    let st = f.obj.stat(&cx(s, env)).unwrap_or_default();
    Ok(crate::procfs::fdinfo(pos, f.flags, cloexec, node.map(|i| s.vfs.node(i).fs), st.ino))
}

pub fn openat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[2] as u32;
    let p = path_arg(env, a[1])?;
    if p.is_empty() {
        return Err(ENOENT);
    }
    let start = if p[0] == b'/' { crate::vfs::ROOT } else { at_dir(s, fd_arg(a[0]))? };
    let acc = flags & O_ACCMODE;
    let wants_write = flags & O_PATH == 0 && (acc == O_WRONLY || acc == O_RDWR);
    if flags & O_TMPFILE == O_TMPFILE {
        return open_tmpfile(s, start, &p, flags, a[3] as u32);
    }
    let found = match s.vfs.resolve(start, &p, flags & O_NOFOLLOW == 0) {
        Ok(f) => {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(EEXIST);
            }
            f
        }
        Err(ENOENT) if flags & O_CREAT != 0 && flags & O_PATH == 0 => {
            if flags & O_DIRECTORY != 0 || p.ends_with(b"/") {
                return Err(EISDIR);
            }
            let (dir, name) = s.vfs.resolve_parent(start, &p)?;
            let perm = a[3] as u32 & 0o7777 & !s.proc_.umask;
            let (uid, gid) = (s.proc_.uid, s.proc_.gid);
            Found::Node(s.vfs.create_file(dir, name, perm, uid, gid)?)
        }
        Err(e) => return Err(e),
    };
    // A regular file's fd link opens the file anew (its own offset), as on Linux.
    let found = match found {
        Found::Fd(fd) => regular_behind(s, s.fds.file(i64::from(fd))?).unwrap_or(found),
        Found::ProcFd { pid, fd, info: false } => regular_behind(s, proc_fd_file(s, pid, fd)?).unwrap_or(found),
        f => f,
    };
    let ino = match found {
        Found::Fd(fd) => {
            let mut entry = s.fds.get(i64::from(fd))?.clone();
            entry.cloexec = flags & O_CLOEXEC != 0;
            return s.fds.install(entry, 0).map(|v| v as u64);
        }
        Found::Node(ino) => ino,
        Found::ProcFd { pid, fd, info: false } => {
            let file = proc_fd_file(s, pid, fd)?;
            let entry = crate::fd::FdEntry { file, cloexec: flags & O_CLOEXEC != 0 };
            return s.fds.install(entry, 0).map(|v| v as u64);
        }
        Found::ProcFd { pid, fd, info: true } => {
            if wants_write {
                return Err(EACCES);
            }
            let text = fdinfo_of(s, env, pid, fd)?;
            let dir = match s.vfs.resolve(crate::vfs::ROOT, alloc::format!("/proc/{pid}/fdinfo").as_bytes(), false) {
                Ok(Found::Node(d)) => d,
                _ => return Err(ENOENT),
            };
            let obj = Box::new(crate::procfs::Snapshot::of_bytes(text, dir, crate::procfs::fdinfo_stat(fd)));
            return s.fds.install(new_entry(obj, flags & (O_ACCMODE | O_CLOEXEC)), 0).map(|v| v as u64);
        }
    };
    if let (Kind::Dev(d), 0) = (&s.vfs.node(ino).kind, flags & O_PATH) {
        if let Some(r) = crate::pty::open(s, env, *d, ino, flags) {
            return r;
        }
    }
    let node = s.vfs.node(ino);
    if flags & O_DIRECTORY != 0 && !node.is_dir() {
        return Err(ENOTDIR);
    }
    let obj: Box<dyn FileObject<'_>> = match &node.kind {
        _ if flags & O_PATH != 0 && !node.is_dir() => Box::new(PathOnly { ino }),
        Kind::Symlink(_) | Kind::SelfLink => return Err(ELOOP),
        Kind::Gen(g) => {
            if wants_write || flags & O_TRUNC != 0 {
                return Err(EACCES);
            }
            let g = *g;
            Box::new(crate::procfs::Snapshot::open(s, env, g, ino))
        }
        Kind::Dir { .. } | Kind::FdDir { .. } => {
            if wants_write {
                return Err(EISDIR);
            }
            // /proc/<pid>/fd lists the fds, with the one this open is about to get.
            let fds = match node.kind {
                Kind::FdDir { pid, .. } if pid == s.proc_.pid => {
                    let mut fds: Vec<usize> = s.fds.open_fds().collect();
                    let next = (0..).find(|&i| !s.fds.is_open(i as i64)).unwrap_or(0);
                    fds.push(next);
                    fds.sort_unstable();
                    fds
                }
                // Another process's (none for a zombie).
                Kind::FdDir { pid, .. } => s.tasks.parked.get(&pid).map(|p| p.fds.open_fds().collect()).unwrap_or_default(),
                _ => Vec::new(),
            };
            Box::new(Directory { ino, pos: 0, fds })
        }
        Kind::File(_) => {
            if wants_write {
                if !node.writable() {
                    return Err(EROFS);
                }
                if flags & O_TRUNC != 0 {
                    s.vfs.truncate(ino, 0)?;
                }
            }
            Box::new(RegularFile::open(&mut s.vfs, ino))
        }
        Kind::Dev(crate::vfs::Dev::Channel(n)) => {
            let ch = usize::from(*n);
            let read = flags & O_PATH == 0 && acc != O_WRONLY;
            if (wants_write && !s.publishes.contains(&ch)) || (read && !s.consumes.contains(&ch)) {
                return Err(EACCES);
            }
            let bus = s.bus.as_ref().ok_or(ENXIO)?;
            Box::new(crate::channel::ChannelEnd::open(bus, &s.tasks.io_gen, ch, read, wants_write, ino))
        }
        Kind::Dev(d) => {
            if matches!(d, crate::vfs::Dev::Tty) && !(0..3).any(|fd| env.is_terminal(fd)) {
                return Err(ENXIO);
            }
            Box::new(DevFile { dev: *d, ino })
        }
        Kind::Other(crate::vfs::S_IFIFO) => open_fifo(s, ino, flags)?,
        Kind::Other(_) => return Err(ENXIO),
    };
    let status = flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_PATH | O_CLOEXEC);
    s.fds.install(new_entry(obj, status), 0).map(|v| v as u64)
}

/// pipe2(fds, flags): O_CLOEXEC, O_NONBLOCK (O_DIRECT is refused).
/// Opens a fifo as Linux does: read-write at once; for reading, once a writer has it
/// open or is waiting to (at once with O_NONBLOCK); for writing, once a reader has it open
/// or is waiting (ENXIO with O_NONBLOCK). A waiting open parks its thread ([`EBLOCK`]) and
/// runs again when either side changes.
fn open_fifo<'a>(s: &mut Shim<'a>, ino: Ino, flags: u32) -> SysResult<Box<dyn FileObject<'a> + 'a>> {
    use crate::pipe::FifoEnd;
    let boxed = |e: FifoEnd| -> Box<dyn FileObject<'a> + 'a> {
        match e {
            FifoEnd::R(r) => Box::new(r),
            FifoEnd::W(w) => Box::new(w),
        }
    };
    let gen = s.tasks.io_gen.clone();
    let fifo = s.fifos.entry(ino).or_insert_with(|| crate::pipe::Fifo::new(&gen, ino as u64 + 1));
    let me = s.tasks.cur;
    let acc = flags & O_ACCMODE;
    if acc == O_RDWR {
        return Ok(Box::new(crate::pipe::FifoBoth { r: fifo.reader(), w: fifo.writer() }));
    }
    let write = acc == O_WRONLY;
    // The other side came while this open waited: its end is made.
    if let Some(Some(end)) = s.fifo_openers.remove(&(ino, me, write)) {
        return Ok(boxed(end));
    }
    // Opens of the other side that wait complete now, with this one.
    let waiting: Vec<(Ino, u32, bool)> =
        s.fifo_openers.iter().filter(|(&(i, _, w), end)| i == ino && w != write && end.is_none()).map(|(k, _)| *k).collect();
    for k in &waiting {
        let end = if k.2 { FifoEnd::W(fifo.writer()) } else { FifoEnd::R(fifo.reader()) };
        s.fifo_openers.insert(*k, Some(end));
    }
    let ready = !waiting.is_empty() || if write { fifo.readers() > 0 } else { fifo.writers() > 0 };
    if ready || (!write && flags & O_NONBLOCK != 0) {
        s.fifo_openers.remove(&(ino, me, write));
        return Ok(boxed(if write { FifoEnd::W(fifo.writer()) } else { FifoEnd::R(fifo.reader()) }));
    }
    if write && flags & O_NONBLOCK != 0 {
        return Err(ENXIO);
    }
    if s.fifo_openers.insert((ino, me, write), None).is_none() {
        crate::pipe::bump(&gen);
    }
    Err(EBLOCK)
}

/// `O_TMPFILE`: an unnamed file in the directory `p`, open for writing.
fn open_tmpfile(s: &mut Shim<'_>, start: Ino, p: &[u8], flags: u32, mode: u32) -> SysResult<u64> {
    if flags & O_ACCMODE == O_RDONLY || flags & (O_CREAT | O_PATH) != 0 {
        return Err(EINVAL);
    }
    let Found::Node(dir) = s.vfs.resolve(start, p, true)? else { return Err(ENOTDIR) };
    let perm = mode & 0o7777 & !s.proc_.umask;
    let ino = s.vfs.tmpfile(dir, perm, (s.proc_.uid, s.proc_.gid))?;
    let status = flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    s.fds.install(new_entry(Box::new(RegularFile::open(&mut s.vfs, ino)), status), 0).map(|v| v as u64)
}

pub fn pipe2<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[1] as u32;
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let ino = 0x2_0000 + s.tasks.alloc_pipe_ino();
    let (r, w) = crate::pipe::new_pipe(&s.tasks.io_gen, ino);
    let status = flags & (O_NONBLOCK | O_CLOEXEC);
    let rfd = s.fds.install(new_entry(Box::new(r), O_RDONLY | status), 0)?;
    let wfd = match s.fds.install(new_entry(Box::new(w), O_WRONLY | status), 0) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = s.fds.close(i64::from(rfd));
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&rfd.to_le_bytes());
    b[4..].copy_from_slice(&wfd.to_le_bytes());
    if let Err(e) = env.write(a[0], &b) {
        let _ = s.fds.close(i64::from(rfd));
        let _ = s.fds.close(i64::from(wfd));
        return Err(e);
    }
    Ok(0)
}

pub fn close(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    super::lock::close_fd(s, fd_arg(a[0])).map(|_| 0)
}

/// close_range(first, last, flags): CLOSE_RANGE_CLOEXEC (4) marks instead of closing.
pub fn close_range(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
    if first > last || flags & !(2 | 4) != 0 {
        return Err(EINVAL);
    }
    let open: Vec<usize> = s.fds.open_fds().filter(|&fd| fd as u64 >= u64::from(first) && fd as u64 <= u64::from(last)).collect();
    for fd in open {
        if flags & 4 != 0 {
            s.fds.get_mut(fd as i64)?.cloexec = true;
        } else {
            super::lock::close_fd(s, fd as i64)?;
        }
    }
    Ok(0)
}

/// sendfile(out, in, *offset, count): copies through a bounce buffer, as read + write.
pub fn sendfile<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (out_fd, in_fd) = (fd_arg(a[0]), fd_arg(a[1]));
    let input = s.fds.file(in_fd)?;
    let output = s.fds.file(out_fd)?;
    if !input.borrow().readable() || !output.borrow().writable() {
        return Err(EBADF);
    }
    if Rc::ptr_eq(&input, &output) {
        return Err(EINVAL);
    }
    let mut off = if a[2] != 0 { Some(offset_arg(env.read_u64(a[2])?)?) } else { None };
    let count = check_count(a[3])?;
    let done = copy_between(s, env, &input, &output, &mut off, &mut None, count)?;
    if let (Some(o), true) = (off, a[2] != 0) {
        env.write_u64(a[2], o)?;
    }
    Ok(done)
}

type Open<'a> = Rc<core::cell::RefCell<OpenFile<'a>>>;

/// Copies up to `count` bytes from `input` to `output` through a bounce buffer, at the
/// given offsets (advanced) or the files' positions; what was copied before an error counts.
fn copy_between<'a, E: Platform>(
    s: &mut Shim<'a>,
    env: &mut E,
    input: &Open<'a>,
    output: &Open<'a>,
    in_off: &mut Option<u64>,
    out_off: &mut Option<u64>,
    count: u64,
) -> SysResult<u64> {
    let mut buf = vec![0u8; (count as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < count {
        let want = ((count - done) as usize).min(CHUNK);
        let n = {
            let mut f = input.borrow_mut();
            let r = match *in_off {
                Some(o) => f.obj.pread(&mut cx(s, env), &mut buf[..want], o),
                None => f.obj.read(&mut cx(s, env), &mut buf[..want]),
            };
            match r {
                Ok(n) => n,
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            break;
        }
        let append = output.borrow().flags & O_APPEND != 0;
        let r = match *out_off {
            Some(o) => output.borrow_mut().obj.pwrite(&mut cx(s, env), &buf[..n], o),
            None => output.borrow_mut().obj.write(&mut cx(s, env), &buf[..n], append),
        };
        let w = match r {
            Ok(w) => w,
            Err(_) if done > 0 => break,
            Err(e) => return Err(e),
        };
        done += w as u64;
        for o in [&mut *in_off, &mut *out_off].into_iter().flatten() {
            *o += w as u64;
        }
        if w < n {
            break;
        }
    }
    Ok(done)
}

/// mknodat(dirfd, path, mode, dev): regular files, fifos and socket names; device nodes
/// need privileges a container does not have (EPERM).
pub fn mknodat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mode = a[2] as u32;
    let (dir, name) = parent_of(s, env, a[0], a[1])?;
    let perm = mode & 0o7777 & !s.proc_.umask;
    let owner = (s.proc_.uid, s.proc_.gid);
    match mode & crate::vfs::S_IFMT {
        0 | crate::vfs::S_IFREG => s.vfs.create_file(dir, &name, perm, owner.0, owner.1).map(|_| 0),
        t @ (crate::vfs::S_IFIFO | crate::vfs::S_IFSOCK) => s.vfs.mknod(dir, &name, t, perm, owner).map(|_| 0),
        0o020000 | 0o060000 => Err(EPERM),
        _ => Err(EINVAL),
    }
}

/// inotify_init1(flags): IN_NONBLOCK, IN_CLOEXEC.
pub fn inotify_init1(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[0] as u32;
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let obj = crate::inotify::Inotify::new(&s.tasks.io_gen);
    s.fds.install(new_entry(Box::new(obj), O_RDONLY | flags), 0).map(|fd| fd as u64)
}

/// The queue of the inotify instance `fd` (EINVAL when it is another kind of file).
fn inotify_queue(s: &Shim<'_>, fd: u64) -> SysResult<crate::inotify::SharedQueue> {
    let file = s.fds.file(fd_arg(fd))?;
    let f = file.borrow();
    f.obj.as_inotify().map(|i| i.queue.clone()).ok_or(EINVAL)
}

/// inotify_add_watch(fd, path, mask).
pub fn inotify_add_watch<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let queue = inotify_queue(s, a[0])?;
    let mask = a[2] as u32;
    let nofollow = if crate::inotify::follows(mask) { 0 } else { AT_SYMLINK_NOFOLLOW };
    let ino = found_ino(s, lookup(s, env, AT_FDCWD as u64, a[1], nofollow)?)?;
    let is_dir = s.vfs.node(ino).is_dir();
    s.vfs.watches.add(&queue, ino, is_dir, mask).map(|wd| wd as u64)
}

/// inotify_rm_watch(fd, wd).
pub fn inotify_rm_watch(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let queue = inotify_queue(s, a[0])?;
    s.vfs.watches.remove(&queue, a[1] as i32).map(|_| 0)
}

/// copy_file_range(fd_in, *off_in, fd_out, *off_out, len, flags): between regular files.
pub fn copy_file_range<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[5] != 0 {
        return Err(EINVAL);
    }
    let input = s.fds.file(fd_arg(a[0]))?;
    let output = s.fds.file(fd_arg(a[2]))?;
    if !input.borrow().readable() || !output.borrow().writable() || output.borrow().flags & O_APPEND != 0 {
        return Err(EBADF);
    }
    for f in [&input, &output] {
        match f.borrow().obj.ino().map(|i| &s.vfs.node(i).kind) {
            Some(Kind::File(_)) => {}
            Some(Kind::Dir { .. }) => return Err(EISDIR),
            _ => return Err(EINVAL),
        }
    }
    let mut in_off = if a[1] != 0 { Some(offset_arg(env.read_u64(a[1])?)?) } else { None };
    let mut out_off = if a[3] != 0 { Some(offset_arg(env.read_u64(a[3])?)?) } else { None };
    let done = copy_between(s, env, &input, &output, &mut in_off, &mut out_off, check_count(a[4])?)?;
    for (addr, off) in [(a[1], in_off), (a[3], out_off)] {
        if let (Some(o), true) = (off, addr != 0) {
            env.write_u64(addr, o)?;
        }
    }
    Ok(done)
}

/// fallocate(fd, mode, offset, len): mode 0 makes the file at least offset + len long
/// (counted against the quota at once, ENOSPC past it); FALLOC_FL_KEEP_SIZE only checks;
/// PUNCH_HOLE|KEEP_SIZE zeroes the range. Other modes: EOPNOTSUPP.
pub fn fallocate<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (mode, off, len) = (a[1] as u32, a[2] as i64, a[3] as i64);
    if off < 0 || len <= 0 {
        return Err(EINVAL);
    }
    let end = (off as u64).checked_add(len as u64).ok_or(EFBIG)?;
    let file = s.fds.file(fd_arg(a[0]))?;
    if !file.borrow().writable() {
        return Err(EBADF);
    }
    let ino = file.borrow().obj.ino().ok_or(ENODEV)?;
    match s.vfs.node(ino).kind {
        Kind::File(_) => {}
        Kind::Dir { .. } => return Err(EISDIR),
        _ => return Err(ENODEV),
    }
    let size = s.vfs.node(ino).size();
    match mode {
        0 if end > size => s.vfs.truncate(ino, end).map(|_| 0),
        0 | 1 => Ok(0),
        3 => {
            let stop = end.min(size);
            if stop > off as u64 {
                s.vfs.zero_range(ino, off as u64, stop)?;
            }
            let _ = env;
            Ok(0)
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// flock(fd, op): advisory locks are granted at once (the app's processes share one
/// tree and no other app sees it); bad operations and fds get Linux's errors.
pub fn flock(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    s.fds.get(fd_arg(a[0]))?;
    match a[1] as u32 & !4 {
        1 | 2 | 8 => Ok(0),
        _ => Err(EINVAL),
    }
}

/// memfd_create(name, flags): an unnamed file in the app's /dev/shm (counted as tmpfs).
pub fn memfd_create<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    const MFD_CLOEXEC: u64 = 1;
    const MFD_ALLOW_SEALING: u64 = 2;
    let name = env.read_cstr(a[0], 250).map_err(|e| if e == ENAMETOOLONG { EINVAL } else { e })?;
    let _ = name;
    if a[1] & !(MFD_CLOEXEC | MFD_ALLOW_SEALING) != 0 {
        return Err(EINVAL);
    }
    let Found::Node(shm) = s.vfs.resolve(crate::vfs::ROOT, b"/dev/shm", true)? else { return Err(ENOENT) };
    let ino = s.vfs.tmpfile(shm, 0o777, (s.proc_.uid, s.proc_.gid))?;
    let flags = O_RDWR | if a[1] & MFD_CLOEXEC != 0 { O_CLOEXEC } else { 0 };
    s.fds.install(new_entry(Box::new(RegularFile::open(&mut s.vfs, ino)), flags), 0).map(|v| v as u64)
}

/// Reads up to `len` bytes from `fd` into guest `buf`, at `off` or the file position.
fn read_into<E: Platform>(s: &mut Shim<'_>, env: &mut E, fd: i64, buf: u64, len: u64, off: Option<u64>) -> SysResult<u64> {
    let file = s.fds.file(fd)?;
    let mut f = file.borrow_mut();
    if !f.readable() {
        return Err(EBADF);
    }
    let mut done: u64 = 0;
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    while done < len {
        let want = ((len - done) as usize).min(CHUNK);
        let r = match off {
            Some(o) => f.obj.pread(&mut cx(s, env), &mut tmp[..want], o + done),
            None => f.obj.read(&mut cx(s, env), &mut tmp[..want]),
        };
        let n = match r {
            Ok(n) => n,
            Err(_) if done > 0 => break,
            Err(EBLOCK) if f.flags & O_NONBLOCK != 0 => return Err(EAGAIN),
            Err(e) => return Err(e),
        };
        if n > 0 {
            if let Err(e) = env.write(buf.wrapping_add(done), &tmp[..n]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

fn write_from<E: Platform>(s: &mut Shim<'_>, env: &mut E, fd: i64, buf: u64, len: u64, off: Option<u64>) -> SysResult<u64> {
    let file = s.fds.file(fd)?;
    let mut f = file.borrow_mut();
    if !f.writable() {
        return Err(EBADF);
    }
    let append = f.flags & O_APPEND != 0;
    let mut done: u64 = 0;
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    while done < len {
        let want = ((len - done) as usize).min(CHUNK);
        if let Err(e) = env.read(buf.wrapping_add(done), &mut tmp[..want]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        let r = match off {
            Some(o) => f.obj.pwrite(&mut cx(s, env), &tmp[..want], o + done),
            None => f.obj.write(&mut cx(s, env), &tmp[..want], append),
        };
        let n = match r {
            Ok(n) => n,
            Err(_) if done > 0 => return Ok(done),
            Err(EBLOCK) if f.flags & O_NONBLOCK != 0 => return Err(EAGAIN),
            Err(e) => return Err(e),
        };
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

fn check_count(len: u64) -> SysResult<u64> {
    if len > i64::MAX as u64 {
        Err(EINVAL)
    } else {
        Ok(len.min(0x7fff_f000))
    }
}

fn offset_arg(o: u64) -> SysResult<u64> {
    if (o as i64) < 0 {
        Err(EINVAL)
    } else {
        Ok(o)
    }
}

pub fn read<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    read_into(s, env, fd_arg(a[0]), a[1], check_count(a[2])?, None)
}

pub fn write<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    write_from(s, env, fd_arg(a[0]), a[1], check_count(a[2])?, None)
}

pub fn pread64<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    read_into(s, env, fd_arg(a[0]), a[1], check_count(a[2])?, Some(offset_arg(a[3])?))
}

pub fn pwrite64<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    write_from(s, env, fd_arg(a[0]), a[1], check_count(a[2])?, Some(offset_arg(a[3])?))
}

/// Most iovecs in one call (IOV_MAX).
const IOV_MAX: u64 = 1024;

fn iovecs<E: Platform>(env: &mut E, iov: u64, cnt: u64) -> SysResult<Vec<(u64, u64)>> {
    if cnt > IOV_MAX {
        return Err(EINVAL);
    }
    let mut out = Vec::with_capacity(cnt as usize);
    let mut total: u64 = 0;
    for i in 0..cnt {
        let at = iov.checked_add(i * 16).ok_or(EFAULT)?;
        let base = env.read_u64(at)?;
        let len = env.read_u64(at.wrapping_add(8))?;
        total = total.checked_add(len).ok_or(EINVAL)?;
        if total > i64::MAX as u64 {
            return Err(EINVAL);
        }
        out.push((base, len));
    }
    Ok(out)
}

/// One buffer's transfer: read_into or write_from.
type Transfer<E> = fn(&mut Shim<'_>, &mut E, i64, u64, u64, Option<u64>) -> SysResult<u64>;

/// readv/writev (and their p- forms): `op` over each iovec until one comes up short; an
/// error after some bytes moved ends the call with the count so far, as Linux does.
fn vectored<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], off: Option<u64>, op: Transfer<E>) -> SysResult<u64> {
    let fd = fd_arg(a[0]);
    s.fds.get(fd)?;
    let off = off.map(offset_arg).transpose()?;
    let mut done = 0;
    for (base, len) in iovecs(env, a[1], a[2])? {
        let n = match op(s, env, fd, base, len, off.map(|o| o + done)) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n;
        if n < len {
            break;
        }
    }
    Ok(done)
}

pub fn readv<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], off: Option<u64>) -> SysResult<u64> {
    vectored(s, env, a, off, read_into::<E>)
}

pub fn writev<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], off: Option<u64>) -> SysResult<u64> {
    vectored(s, env, a, off, write_from::<E>)
}

pub fn lseek<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let file = s.fds.file(fd_arg(a[0]))?;
    let mut f = file.borrow_mut();
    f.obj.lseek(&mut cx(s, env), a[1] as i64, a[2] as u32)
}

pub fn fstat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let fd = fd_arg(a[0]);
    s.fds.get(fd)?;
    let st = stat_found(s, env, Found::Fd(fd as i32))?;
    env.write(a[1], &st.to_bytes())?;
    Ok(0)
}

pub fn newfstatat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[3] & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800) != 0 {
        return Err(EINVAL);
    }
    let f = lookup(s, env, a[0], a[1], a[3])?;
    let st = stat_found(s, env, f)?;
    env.write(a[2], &st.to_bytes())?;
    Ok(0)
}

pub fn statx<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let f = lookup(s, env, a[0], a[1], a[2])?;
    let st = stat_found(s, env, f)?;
    env.write(a[4], &st.to_statx())?;
    Ok(0)
}

pub fn getdents64<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let file = s.fds.file(fd_arg(a[0]))?;
    let mut f = file.borrow_mut();
    let max = (a[2] as usize).min(CHUNK);
    let mut out = Vec::new();
    let n = f.obj.getdents(&mut cx(s, env), &mut out, max)?;
    env.write(a[1], &out[..n])?;
    Ok(n as u64)
}

pub fn readlinkat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if (a[3] as i64) <= 0 {
        return Err(EINVAL);
    }
    let f = lookup(s, env, a[0], a[1], AT_SYMLINK_NOFOLLOW)?;
    let target: Vec<u8> = match f {
        Found::Node(ino) => s.vfs.link_target(ino).ok_or(EINVAL)?,
        Found::ProcFd { info: true, .. } => return Err(EINVAL),
        Found::Fd(fd) | Found::ProcFd { fd, .. } => {
            let file = match f {
                Found::ProcFd { pid, .. } => proc_fd_file(s, pid, fd)?,
                _ => s.fds.file(i64::from(fd))?,
            };
            let f = file.borrow();
            match f.obj.ino() {
                Some(ino) if s.vfs.node(ino).is_dir() => s.vfs.path_of(ino),
                Some(ino) => match s.vfs.find_path(ino) {
                    Some(p) => p,
                    None => alloc::format!("/inode:{} (deleted)", Stat::of_node(&s.vfs, ino).ino).into_bytes(),
                },
                None if f.obj.is_terminal(&cx(s, env)) => b"/dev/pts/0".to_vec(),
                None => alloc::format!("pipe:[{}]", fd).into_bytes(),
            }
        }
    };
    let n = target.len().min(a[3] as usize);
    env.write(a[2], &target[..n])?;
    Ok(n as u64)
}

pub fn faccessat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], v2: bool) -> SysResult<u64> {
    let mode = a[2];
    let flags = if v2 { a[3] } else { 0 };
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let f = lookup(s, env, a[0], a[1], flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?;
    let Found::Node(ino) = f else { return Ok(0) };
    let n = s.vfs.node(ino);
    if mode & 2 != 0 && !n.writable() && matches!(n.kind, Kind::File(_) | Kind::Dir { .. }) {
        return Err(EROFS);
    }
    let perm = n.perm;
    let (uid, gid) = (s.proc_.uid, s.proc_.gid);
    if uid == 0 {
        if mode & 1 != 0 && perm & 0o111 == 0 && n.ftype() != S_IFDIR {
            return Err(EACCES);
        }
        return Ok(0);
    }
    let bits = if n.uid == uid {
        perm >> 6
    } else if n.gid == gid {
        perm >> 3
    } else {
        perm
    } & 7;
    if (mode as u32) & !bits != 0 {
        return Err(EACCES);
    }
    Ok(0)
}

pub fn getcwd<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mut p = s.vfs.path_of(s.cwd);
    p.push(0);
    if (a[1] as usize) < p.len() {
        return Err(ERANGE);
    }
    env.write(a[0], &p)?;
    Ok(p.len() as u64)
}

pub fn chdir<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let f = lookup(s, env, AT_FDCWD as u64, a[0], 0)?;
    match f {
        Found::Node(ino) if s.vfs.node(ino).is_dir() => {
            s.cwd = ino;
            Ok(0)
        }
        _ => Err(ENOTDIR),
    }
}

pub fn fchdir(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    s.cwd = at_dir(s, fd_arg(a[0]).max(0))?;
    Ok(0)
}

pub fn dup(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let mut e = s.fds.get(fd_arg(a[0]))?.clone();
    e.cloexec = false;
    s.fds.install(e, 0).map(|v| v as u64)
}

pub fn dup3(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let (old, new) = (fd_arg(a[0]), fd_arg(a[1]));
    if old == new || a[2] as u32 & !O_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    let mut e = s.fds.get(old)?.clone();
    e.cloexec = a[2] as u32 & O_CLOEXEC != 0;
    let new = usize::try_from(new).map_err(|_| EBADF)?;
    if s.fds.is_open(new as i64) {
        super::lock::close_fd(s, new as i64)?;
    }
    s.fds.install_at(e, new)?;
    Ok(new as u64)
}

pub const F_DUPFD: u64 = 0;
pub const F_GETFD: u64 = 1;
pub const F_SETFD: u64 = 2;
pub const F_GETFL: u64 = 3;
pub const F_SETFL: u64 = 4;
pub const F_NOTIFY: u64 = 1026;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const F_SETPIPE_SZ: u64 = 1031;
pub const F_GETPIPE_SZ: u64 = 1032;

pub fn fcntl<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let fd = fd_arg(a[0]);
    let entry = s.fds.get(fd)?.clone();
    match a[1] {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = usize::try_from(a[2] as i32).map_err(|_| EINVAL)?;
            if min >= MAX_FDS {
                return Err(EINVAL);
            }
            let mut e = entry;
            e.cloexec = a[1] == F_DUPFD_CLOEXEC;
            s.fds.install(e, min).map(|v| v as u64)
        }
        F_GETFD => Ok(u64::from(entry.cloexec)),
        F_SETFD => {
            s.fds.get_mut(fd)?.cloexec = a[2] & 1 != 0;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(entry.file.borrow().flags)),
        F_SETFL => {
            let mut f = entry.file.borrow_mut();
            let keep = f.flags & !(O_APPEND | O_NONBLOCK);
            f.flags = keep | (a[2] as u32 & (O_APPEND | O_NONBLOCK));
            Ok(0)
        }
        cmd if super::lock::is_lock_cmd(cmd) => super::lock::fcntl_lock(s, env, a[0], cmd, a[2]),
        F_NOTIFY => dnotify(s, &entry, a[2]),
        F_GETPIPE_SZ => entry.file.borrow_mut().obj.pipe_size(None).map(|n| n as u64),
        F_SETPIPE_SZ => entry.file.borrow_mut().obj.pipe_size(Some(a[2])).map(|n| n as u64),
        _ => Err(EINVAL),
    }
}

/// `F_NOTIFY` (dnotify): an empty event mask (DN_MULTISHOT aside) removes a watch there
/// never is, as on Linux; watching is not offered (EINVAL, as a kernel without dnotify
/// answers), after ENOTDIR for a file that is not a directory.
fn dnotify(s: &Shim<'_>, entry: &FdEntry<'_>, arg: u64) -> SysResult<u64> {
    const DN_MULTISHOT: u64 = 0x8000_0000;
    if arg as u32 as u64 & !DN_MULTISHOT == 0 {
        return Ok(0);
    }
    match entry.file.borrow().obj.ino() {
        Some(ino) if s.vfs.node(ino).is_dir() => Err(EINVAL),
        _ => Err(ENOTDIR),
    }
}

pub const TCGETS: u64 = 0x5401;
pub const TCSETS: u64 = 0x5402;
pub const TCSETSW: u64 = 0x5403;
pub const TCSETSF: u64 = 0x5404;
pub const TIOCGPGRP: u64 = 0x540f;
pub const TIOCSPGRP: u64 = 0x5410;
pub const TIOCGWINSZ: u64 = 0x5413;
pub const TIOCSWINSZ: u64 = 0x5414;
pub const FIONBIO: u64 = 0x5421;
pub const FIONCLEX: u64 = 0x5450;
pub const FIOCLEX: u64 = 0x5451;

pub fn ioctl<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let fd = fd_arg(a[0]);
    let file = s.fds.file(fd)?;
    match a[1] {
        FIOCLEX | FIONCLEX => {
            s.fds.get_mut(fd)?.cloexec = a[1] == FIOCLEX;
            return Ok(0);
        }
        FIONBIO => {
            let on = env.read_u32(a[2])? != 0;
            let mut f = file.borrow_mut();
            f.flags = if on { f.flags | O_NONBLOCK } else { f.flags & !O_NONBLOCK };
            return Ok(0);
        }
        _ => {}
    }
    let pty = file.borrow().obj.pty();
    if let Some(end) = pty {
        let readable = file.borrow().readable();
        return crate::pty::ioctl(s, env, &end, readable, a);
    }
    if a[1] == crate::pty::FIONREAD {
        let n = file.borrow().obj.fionread();
        if let Some(n) = n {
            env.write_u32(a[2], n.min(i32::MAX as usize) as u32)?;
            return Ok(0);
        }
    }
    let tty = file.borrow().obj.is_terminal(&cx(s, env));
    if !tty {
        return Err(ENOTTY);
    }
    match a[1] {
        TIOCGWINSZ => {
            let (rows, cols) = env.winsize();
            let mut b = [0u8; 8];
            b[0..2].copy_from_slice(&rows.to_le_bytes());
            b[2..4].copy_from_slice(&cols.to_le_bytes());
            env.write(a[2], &b)?;
            Ok(0)
        }
        TCGETS => {
            // A cooked terminal: ICRNL|IXON, OPOST|ONLCR, B38400|CS8|CREAD, ISIG|ICANON|ECHO...
            let mut b = [0u8; 36];
            b[0..4].copy_from_slice(&0x500u32.to_le_bytes());
            b[4..8].copy_from_slice(&0x5u32.to_le_bytes());
            b[8..12].copy_from_slice(&0xbfu32.to_le_bytes());
            b[12..16].copy_from_slice(&0x8a3bu32.to_le_bytes());
            let cc = [3u8, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22];
            b[17..17 + cc.len()].copy_from_slice(&cc);
            env.write(a[2], &b)?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF | TIOCSWINSZ | TIOCSPGRP => Ok(0),
        TIOCGPGRP => {
            env.write_u32(a[2], crate::PID)?;
            Ok(0)
        }
        _ => Err(ENOTTY),
    }
}

/// ppoll(fds, n, timeout, sigmask): readiness from each fd object; with tasks and nothing
/// ready, the thread waits for I/O (retried on each change) until the timeout.
pub fn ppoll<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> super::Outcome {
    let r = ppoll_inner(s, env, a);
    wait_ready(s, env, r, a[2])
}

/// pselect6(n, readfds, writefds, exceptfds, timeout, sigmask): ppoll's readiness over
/// fd_sets; a set comes back holding only its ready fds, and the result counts them.
pub fn pselect6<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> super::Outcome {
    let r = pselect6_inner(s, env, a);
    wait_ready(s, env, r, a[4])
}

fn pselect6_inner<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let n = a[0] as i64;
    if !(0..=MAX_FDS as i64).contains(&n) {
        return Err(EINVAL);
    }
    let cur = s.tasks.cur;
    let timeout = if s.tasks.take_timed_out(cur) { Some(0) } else { read_timeout(env, a[4])? };
    let words = (n as usize).div_ceil(64);
    // (set address, what makes an fd ready for it, the set as given)
    let kinds: [(u64, u16); 3] = [(a[1], POLLIN | POLLHUP | POLLERR), (a[2], POLLOUT | POLLERR), (a[3], 0x2 /* POLLPRI */)];
    let mut sets = [Vec::new(), Vec::new(), Vec::new()];
    for (i, &(at, _)) in kinds.iter().enumerate() {
        if at != 0 {
            for w in 0..words {
                sets[i].push(env.read_u64(at.wrapping_add(w as u64 * 8))?);
            }
        }
    }
    let mut ready = 0u64;
    let mut out = [alloc::vec![0u64; words], alloc::vec![0u64; words], alloc::vec![0u64; words]];
    for fd in 0..n as usize {
        let (w, bit) = (fd / 64, 1u64 << (fd % 64));
        if !sets.iter().any(|set| set.get(w).is_some_and(|x| x & bit != 0)) {
            continue;
        }
        let file = s.fds.file(fd as i64)?;
        let st = file.borrow().obj.poll(&cx(s, env));
        for (i, &(_, mask)) in kinds.iter().enumerate() {
            if sets[i].get(w).is_some_and(|x| x & bit != 0) && st & mask != 0 {
                out[i][w] |= bit;
                ready += 1;
            }
        }
    }
    if ready == 0 && timeout != Some(0) {
        if s.tasks.enabled {
            return Err(EBLOCK_POLL);
        }
        if let Some(ns) = timeout {
            env.sleep(ns);
        }
    }
    for (i, &(at, _)) in kinds.iter().enumerate() {
        if at != 0 {
            for (w, x) in out[i].iter().enumerate() {
                env.write_u64(at.wrapping_add(w as u64 * 8), *x)?;
            }
        }
    }
    Ok(ready)
}

/// A readiness call's result: nothing ready yet parks the thread on I/O until the
/// timeout at `timeout_at` (a timespec; 0: none), when the call returns 0.
fn wait_ready<E: Platform>(s: &mut Shim<'_>, env: &mut E, r: SysResult<u64>, timeout_at: u64) -> super::Outcome {
    match r {
        Err(EBLOCK_POLL) => {
            // Woken by I/O, the call runs again and starts its timeout anew.
            let deadline = read_timeout(env, timeout_at)
                .ok()
                .flatten()
                .map(|ns| (env.now(crate::ClockId::Monotonic).as_nanos().saturating_add(ns), crate::task::TIMED_OUT_RETRY));
            s.block_on_io(deadline);
            super::Outcome::Action(crate::Action::Block)
        }
        r => super::Outcome::Ret(r),
    }
}

/// A `struct timespec` at `at` in nanoseconds (`None` for a null pointer).
pub(crate) fn read_timeout<E: Platform>(env: &mut E, at: u64) -> SysResult<Option<u64>> {
    if at == 0 {
        return Ok(None);
    }
    let sec = env.read_u64(at)?;
    let nsec = env.read_u64(at.wrapping_add(8))?;
    if nsec >= 1_000_000_000 || (sec as i64) < 0 {
        return Err(EINVAL);
    }
    Ok(Some(sec.saturating_mul(1_000_000_000).saturating_add(nsec)))
}

fn ppoll_inner<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let n = a[1];
    if n > MAX_FDS as u64 {
        return Err(EINVAL);
    }
    let cur = s.tasks.cur;
    let timeout = if s.tasks.take_timed_out(cur) { Some(0) } else { read_timeout(env, a[2])? };
    let mut ready = 0;
    let mut results = Vec::new();
    for i in 0..n {
        let at = a[0].checked_add(i * 8).ok_or(EFAULT)?;
        let mut pfd = [0u8; 8];
        env.read(at, &mut pfd)?;
        let fd = i32::from_le_bytes([pfd[0], pfd[1], pfd[2], pfd[3]]);
        let events = u16::from_le_bytes([pfd[4], pfd[5]]);
        let revents: u16 = if fd < 0 {
            0
        } else if let Ok(file) = s.fds.file(i64::from(fd)) {
            let st = file.borrow().obj.poll(&cx(s, env));
            // POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not.
            st & (events | 0x8 | 0x10)
        } else {
            0x20 // POLLNVAL
        };
        if revents != 0 {
            ready += 1;
        }
        results.push((at, revents));
    }
    if ready == 0 && timeout != Some(0) {
        if s.tasks.enabled {
            return Err(EBLOCK_POLL);
        }
        if let Some(ns) = timeout {
            env.sleep(ns);
        }
    }
    for (at, revents) in results {
        env.write(at.wrapping_add(6), &revents.to_le_bytes())?;
    }
    Ok(ready)
}

/// ppoll's "nothing ready yet": the dispatcher parks the thread on I/O with the timeout.
pub const EBLOCK_POLL: Errno = Errno(513);

pub fn mkdirat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let p = path_arg(env, a[1])?;
    let start = if p.first() == Some(&b'/') { crate::vfs::ROOT } else { at_dir(s, fd_arg(a[0]))? };
    let (dir, name) = s.vfs.resolve_parent(start, &p)?;
    let perm = a[2] as u32 & 0o7777 & !s.proc_.umask;
    let (uid, gid) = (s.proc_.uid, s.proc_.gid);
    s.vfs.mkdir(dir, name, perm, uid, gid).map(|_| 0)
}

pub fn unlinkat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[2] & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    let p = path_arg(env, a[1])?;
    let start = if p.first() == Some(&b'/') { crate::vfs::ROOT } else { at_dir(s, fd_arg(a[0]))? };
    let (dir, name) = s.vfs.resolve_parent(start, &p)?;
    s.vfs.unlink(dir, name, a[2] & AT_REMOVEDIR != 0).map(|_| 0)
}

pub fn ftruncate<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if (a[1] as i64) < 0 {
        return Err(EINVAL);
    }
    let file = s.fds.file(fd_arg(a[0]))?;
    let mut f = file.borrow_mut();
    if !f.writable() {
        return Err(EINVAL);
    }
    f.obj.truncate(&mut cx(s, env), a[1]).map(|_| 0)
}

/// truncate(path, length): as ftruncate, on a path (symlinks followed).
pub fn truncate<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if (a[1] as i64) < 0 {
        return Err(EINVAL);
    }
    let ino = found_ino(s, lookup(s, env, AT_FDCWD as u64, a[0], 0)?)?;
    if s.vfs.node(ino).is_dir() {
        return Err(EISDIR);
    }
    s.vfs.truncate(ino, a[1]).map(|_| 0)
}

/// Changes a node's metadata (not on /proc).
fn set_meta(s: &mut Shim<'_>, ino: Ino, perm: Option<u32>, owner: Option<(u32, u32)>) -> SysResult<u64> {
    if !s.vfs.node(ino).writable() {
        return Err(EROFS);
    }
    s.vfs.touch(ino, false);
    s.vfs.notify_changed(ino, crate::inotify::IN_ATTRIB);
    let n = s.vfs.node_mut(ino);
    if let Some(p) = perm {
        n.perm = p & 0o7777;
    }
    if let Some((u, g)) = owner {
        if u != u32::MAX {
            n.uid = u;
        }
        if g != u32::MAX {
            n.gid = g;
        }
    }
    Ok(0)
}

fn fd_ino(s: &Shim<'_>, fd: u64) -> SysResult<Ino> {
    s.fds.get(fd_arg(fd))?.file.borrow().obj.ino().ok_or(EINVAL)
}

fn found_ino(s: &Shim<'_>, f: Found) -> SysResult<Ino> {
    match f {
        Found::Node(i) => Ok(i),
        Found::Fd(fd) => fd_ino(s, fd as u64),
        Found::ProcFd { pid, fd, info: false } => proc_fd_file(s, pid, fd)?.borrow().obj.ino().ok_or(EINVAL),
        Found::ProcFd { .. } => Err(EPERM),
    }
}

pub fn fchmod(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let ino = fd_ino(s, a[0])?;
    set_meta(s, ino, Some(a[1] as u32), None)
}

pub fn fchmodat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let ino = found_ino(s, lookup(s, env, a[0], a[1], 0)?)?;
    set_meta(s, ino, Some(a[2] as u32), None)
}

pub fn fchown(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let ino = fd_ino(s, a[0])?;
    set_meta(s, ino, None, Some((a[1] as u32, a[2] as u32)))
}

pub fn fchownat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let ino = found_ino(s, lookup(s, env, a[0], a[1], a[4])?)?;
    set_meta(s, ino, None, Some((a[2] as u32, a[3] as u32)))
}

const UTIME_NOW: u64 = (1 << 30) - 1;
const UTIME_OMIT: u64 = (1 << 30) - 2;

/// Sets the access and modification times: now, or `times[0]` and `times[1]`
/// (UTIME_NOW, UTIME_OMIT); the status change time becomes now.
pub fn utimensat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[3] & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let f = if a[1] == 0 { Found::Fd(fd_arg(a[0]) as i32) } else { lookup(s, env, a[0], a[1], a[3])? };
    let ino = found_ino(s, f)?;
    let now = s.vfs.now;
    let (atime, mtime) = if a[2] == 0 {
        (Some(now), Some(now))
    } else {
        let mut t = [0u8; 32];
        env.read(a[2], &mut t)?;
        let word = |i: usize| u64::from_le_bytes(t[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let pick = |i: usize| -> SysResult<Option<Ts>> {
            match word(2 * i + 1) {
                UTIME_OMIT => Ok(None),
                UTIME_NOW => Ok(Some(now)),
                ns if ns < 1_000_000_000 => Ok(Some(Ts { sec: word(2 * i), nsec: ns as u32 })),
                _ => Err(EINVAL),
            }
        };
        (pick(0)?, pick(1)?)
    };
    if !s.vfs.node(ino).writable() {
        return Err(EROFS);
    }
    if atime.is_none() && mtime.is_none() {
        return Ok(0);
    }
    s.vfs.touch(ino, false);
    s.vfs.notify_changed(ino, crate::inotify::IN_ATTRIB);
    let n = s.vfs.node_mut(ino);
    if let Some(t) = atime {
        n.atime = t;
    }
    if let Some(t) = mtime {
        n.mtime = t;
    }
    Ok(0)
}

/// Resolves the parent directory of the path at `addr` from `dirfd`: (dir, last name).
fn parent_of<E: Platform>(s: &Shim<'_>, env: &mut E, dirfd: u64, addr: u64) -> SysResult<(Ino, Vec<u8>)> {
    let p = path_arg(env, addr)?;
    let start = if p.first() == Some(&b'/') { crate::vfs::ROOT } else { at_dir(s, fd_arg(dirfd))? };
    let (dir, name) = s.vfs.resolve_parent(start, &p)?;
    Ok((dir, name.to_vec()))
}

/// renameat2(olddirfd, oldpath, newdirfd, newpath, flags).
pub fn renameat2<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (odir, oname) = parent_of(s, env, a[0], a[1])?;
    let (ndir, nname) = parent_of(s, env, a[2], a[3])?;
    s.vfs.rename(odir, &oname, ndir, &nname, a[4] as u32).map(|_| 0)
}

const AT_SYMLINK_FOLLOW: u64 = 0x400;

/// linkat(olddirfd, oldpath, newdirfd, newpath, flags): also names an `O_TMPFILE` file
/// (AT_EMPTY_PATH, or its /proc/self/fd link with AT_SYMLINK_FOLLOW).
pub fn linkat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[4] & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let nofollow = if a[4] & AT_SYMLINK_FOLLOW != 0 { 0 } else { AT_SYMLINK_NOFOLLOW };
    let found = lookup(s, env, a[0], a[1], nofollow | (a[4] & AT_EMPTY_PATH))?;
    let ino = found_ino(s, found)?;
    let (ndir, nname) = parent_of(s, env, a[2], a[3])?;
    s.vfs.link(ino, ndir, &nname).map(|_| 0)
}

/// symlinkat(target, newdirfd, linkpath).
pub fn symlinkat<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let target = path_arg(env, a[0])?;
    let (dir, name) = parent_of(s, env, a[1], a[2])?;
    s.vfs.symlink(dir, &name, &target, (s.proc_.uid, s.proc_.gid)).map(|_| 0)
}

/// fchmodat2(dirfd, path, mode, flags): fchmodat with AT_SYMLINK_NOFOLLOW and
/// AT_EMPTY_PATH (a symlink's own mode cannot change: EOPNOTSUPP, as on Linux).
pub fn fchmodat2<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[3] & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let ino = found_ino(s, lookup(s, env, a[0], a[1], a[3])?)?;
    if matches!(s.vfs.node(ino).kind, Kind::Symlink(_) | Kind::SelfLink) {
        return Err(EOPNOTSUPP);
    }
    set_meta(s, ino, Some(a[2] as u32), None)
}

/// Writes the aarch64 `struct statfs` (120 bytes) of the filesystem `ino` is on.
fn write_statfs<E: Platform>(s: &Shim<'_>, env: &mut E, ino: Ino, buf: u64) -> SysResult<u64> {
    let fs = s.vfs.node(ino).fs;
    let (ftype, flags, blocks, bfree, files) = s.vfs.statfs(fs);
    let fsid = fs as u64 + 1;
    let words: [u64; 15] = [ftype, 4096, blocks, bfree, bfree, files.max(1) + 65_536, 65_536, fsid, 255, 4096, flags, 0, 0, 0, 0];
    let mut b = [0u8; 120];
    for (i, w) in words.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    env.write(buf, &b)?;
    Ok(0)
}

pub fn statfs<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let ino = found_ino(s, lookup(s, env, AT_FDCWD as u64, a[0], 0)?)?;
    write_statfs(s, env, ino, a[1])
}

pub fn fstatfs<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let ino = fd_ino(s, a[0])?;
    write_statfs(s, env, ino, a[1])
}
