//! Open files: the fd-object trait, the kinds of open file, and the fd table.
//!
//! Every method of [`FileObject`] has a default that fails the way Linux fails for a file
//! that cannot do it (Hermit style), so each kind implements only what it has.

use crate::errno::*;
use crate::platform::Devices;
use crate::stat::Stat;
use crate::vfs::{Data, Dev, Ino, Kind, Vfs, S_IFCHR, S_IFIFO};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Most open fds.
pub const MAX_FDS: usize = 1024;

pub const O_ACCMODE: u32 = 3;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
/// aarch64 values (asm-generic/fcntl.h overridden by arch/arm64).
pub const O_DIRECTORY: u32 = 0o40000;
/// `__O_TMPFILE | O_DIRECTORY`.
pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;
pub const O_NOFOLLOW: u32 = 0o100000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_PATH: u32 = 0o10000000;

/// What the fd objects may reach: the tree and the devices.
pub struct Cx<'c, 'a> {
    pub vfs: &'c mut Vfs<'a>,
    pub dev: &'c mut dyn Devices,
    /// Monotonic nanoseconds when the syscall began (timerfds read it).
    pub now: u64,
}

/// One kind of open file.
pub trait FileObject<'a> {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EINVAL)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _append: bool) -> SysResult<usize> {
        Err(EINVAL)
    }
    fn pread(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8], _off: u64) -> SysResult<usize> {
        Err(ESPIPE)
    }
    fn pwrite(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _off: u64) -> SysResult<usize> {
        Err(ESPIPE)
    }
    /// `whence`: 0 SET, 1 CUR, 2 END.
    fn lseek(&mut self, _cx: &mut Cx<'_, 'a>, _off: i64, _whence: u32) -> SysResult<u64> {
        Err(ESPIPE)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat>;
    /// Fills `out` with linux_dirent64 records; returns bytes used.
    fn getdents(&mut self, _cx: &mut Cx<'_, 'a>, _out: &mut Vec<u8>, _max: usize) -> SysResult<usize> {
        Err(ENOTDIR)
    }
    fn is_terminal(&self, _cx: &Cx<'_, 'a>) -> bool {
        false
    }
    /// The node behind this file, when it has one (for fchdir, *at with a dirfd, mmap).
    fn ino(&self) -> Option<Ino> {
        None
    }
    fn truncate(&mut self, _cx: &mut Cx<'_, 'a>, _len: u64) -> SysResult<()> {
        Err(EINVAL)
    }
    /// For `mmap`: the file's bytes.
    fn map_source<'c>(&self, _cx: &'c Cx<'_, 'a>) -> SysResult<&'c [u8]> {
        Err(ENODEV)
    }
    /// poll(2) readiness: files, devices and the console are always ready.
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        crate::pipe::POLLIN | crate::pipe::POLLOUT
    }
    /// Bytes ready to read without blocking (`FIONREAD`), for objects that queue them.
    fn fionread(&self) -> Option<usize> {
        None
    }
    /// `F_GETPIPE_SZ` (`set` None) or `F_SETPIPE_SZ`: a pipe's capacity; EBADF for
    /// anything else, as Linux answers.
    fn pipe_size(&mut self, _set: Option<u64>) -> SysResult<usize> {
        Err(EBADF)
    }
    /// The process, when this is a pidfd.
    fn pidfd(&self) -> Option<u32> {
        None
    }
    /// The socket, when this is one.
    fn as_socket(&mut self) -> Option<&mut crate::net::Socket> {
        None
    }
    /// The interest list, when this is an epoll instance.
    /// When this object becomes ready by time alone (a timerfd's next expiry, monotonic
    /// ns): a thread waiting on it is woken then.
    fn wakes_at(&self) -> Option<u64> {
        None
    }
    fn as_timerfd(&mut self) -> Option<&mut crate::poll::TimerFd> {
        None
    }
    /// The channel, when this is one (for `mmap`).
    fn as_channel(&self) -> Option<&crate::channel::ChannelEnd> {
        None
    }
    fn as_epoll(&mut self) -> Option<&mut crate::poll::Epoll> {
        None
    }
    fn as_inotify(&self) -> Option<&crate::inotify::Inotify> {
        None
    }
    /// The pty, when this is one of its ends (for its ioctls).
    fn pty(&self) -> Option<crate::pty::End> {
        None
    }
}

/// An open file description, shared by dup'd fds.
pub struct OpenFile<'a> {
    pub obj: Box<dyn FileObject<'a> + 'a>,
    /// Access mode and status flags (O_APPEND, O_NONBLOCK, ...).
    pub flags: u32,
}

impl OpenFile<'_> {
    pub fn readable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_WRONLY
    }
    pub fn writable(&self) -> bool {
        self.flags & O_PATH == 0 && matches!(self.flags & O_ACCMODE, O_WRONLY | O_RDWR)
    }
}

#[derive(Clone)]
pub struct FdEntry<'a> {
    pub file: Rc<RefCell<OpenFile<'a>>>,
    pub cloexec: bool,
}

/// The fd table. A fork clones it: the child's fds share the parent's open files.
#[derive(Default, Clone)]
pub struct FdTable<'a> {
    slots: Vec<Option<FdEntry<'a>>>,
}

impl<'a> FdTable<'a> {
    /// The earliest time one of these fds becomes ready by time alone (timerfds).
    pub fn earliest_wake(&self) -> Option<u64> {
        self.slots.iter().flatten().filter_map(|e| e.file.try_borrow().ok().and_then(|f| f.obj.wakes_at())).min()
    }

    pub fn get(&self, fd: i64) -> SysResult<&FdEntry<'a>> {
        usize::try_from(fd).ok().and_then(|i| self.slots.get(i)).and_then(|s| s.as_ref()).ok_or(EBADF)
    }
    pub fn get_mut(&mut self, fd: i64) -> SysResult<&mut FdEntry<'a>> {
        usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)).and_then(|s| s.as_mut()).ok_or(EBADF)
    }
    pub fn file(&self, fd: i64) -> SysResult<Rc<RefCell<OpenFile<'a>>>> {
        Ok(self.get(fd)?.file.clone())
    }
    /// Installs at the lowest free fd >= `min`.
    pub fn install(&mut self, entry: FdEntry<'a>, min: usize) -> SysResult<i32> {
        let mut i = min;
        while i < self.slots.len() && self.slots[i].is_some() {
            i += 1;
        }
        if i >= MAX_FDS {
            return Err(EMFILE);
        }
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(entry);
        Ok(i as i32)
    }
    /// Puts `entry` at exactly `fd`, closing what was there.
    pub fn install_at(&mut self, entry: FdEntry<'a>, fd: usize) -> SysResult<()> {
        if fd >= MAX_FDS {
            return Err(EBADF);
        }
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd] = Some(entry);
        Ok(())
    }
    pub fn close(&mut self, fd: i64) -> SysResult<()> {
        let slot = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)).ok_or(EBADF)?;
        slot.take().map(|_| ()).ok_or(EBADF)
    }
    pub fn is_open(&self, fd: i64) -> bool {
        self.get(fd).is_ok()
    }
    /// Open fds, ascending.
    pub fn open_fds(&self) -> impl Iterator<Item = usize> + use<'_, 'a> {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i)
    }
}

pub fn new_entry<'a>(obj: Box<dyn FileObject<'a> + 'a>, flags: u32) -> FdEntry<'a> {
    FdEntry {
        file: Rc::new(RefCell::new(OpenFile { obj, flags: flags & !O_CLOEXEC })),
        cloexec: flags & O_CLOEXEC != 0,
    }
}

fn seek(pos: u64, size: u64, off: i64, whence: u32) -> SysResult<u64> {
    let base = match whence {
        0 => 0,
        1 => pos,
        2 => size,
        _ => return Err(EINVAL),
    };
    let new = i128::from(base) + i128::from(off);
    if new < 0 || new > i128::from(i64::MAX) {
        return Err(EINVAL);
    }
    Ok(new as u64)
}

/// A regular file (image or tmpfs).
pub struct RegularFile {
    pub ino: Ino,
    pub pos: u64,
    /// Keeps the file's bytes while it is open, even once no name links it.
    _hold: alloc::rc::Rc<()>,
}

impl RegularFile {
    pub fn open(vfs: &mut Vfs<'_>, ino: Ino) -> RegularFile {
        RegularFile { ino, pos: 0, _hold: vfs.hold(ino) }
    }
}

fn file_bytes<'c>(vfs: &'c Vfs<'_>, ino: Ino) -> &'c [u8] {
    match &vfs.node(ino).kind {
        Kind::File(d) => d.bytes(),
        _ => &[],
    }
}

impl<'a> FileObject<'a> for RegularFile {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let n = self.pread(cx, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn pread(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8], off: u64) -> SysResult<usize> {
        let data = file_bytes(cx.vfs, self.ino);
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], append: bool) -> SysResult<usize> {
        if append {
            self.pos = file_bytes(cx.vfs, self.ino).len() as u64;
        }
        let n = cx.vfs.write_at(self.ino, self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn pwrite(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], off: u64) -> SysResult<usize> {
        cx.vfs.write_at(self.ino, off, buf)
    }
    fn lseek(&mut self, cx: &mut Cx<'_, 'a>, off: i64, whence: u32) -> SysResult<u64> {
        self.pos = seek(self.pos, cx.vfs.node(self.ino).size(), off, whence)?;
        Ok(self.pos)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::of_node(cx.vfs, self.ino))
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
    fn truncate(&mut self, cx: &mut Cx<'_, 'a>, len: u64) -> SysResult<()> {
        cx.vfs.truncate(self.ino, len)
    }
    fn map_source<'c>(&self, cx: &'c Cx<'_, 'a>) -> SysResult<&'c [u8]> {
        Ok(file_bytes(cx.vfs, self.ino))
    }
}

/// An open directory: getdents64 walks ".", ".." and its entries in name order.
pub struct Directory {
    pub ino: Ino,
    /// Index of the next entry (0 ".", 1 "..", then the sorted entries).
    pub pos: u64,
    /// For /proc/<pid>/fd and fdinfo: the fds open when it was opened (its own among them).
    pub fds: Vec<usize>,
}

pub const DT_UNKNOWN: u8 = 0;
pub fn dtype(mode: u32) -> u8 {
    ((mode >> 12) & 0xf) as u8
}

impl<'a> FileObject<'a> for Directory {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EISDIR)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _append: bool) -> SysResult<usize> {
        Err(EISDIR)
    }
    fn pread(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8], _off: u64) -> SysResult<usize> {
        Err(EISDIR)
    }
    fn lseek(&mut self, _cx: &mut Cx<'_, 'a>, off: i64, whence: u32) -> SysResult<u64> {
        match (whence, off) {
            (0, o) if o >= 0 => self.pos = o as u64,
            (1, o) => self.pos = seek(self.pos, 0, o, 1)?,
            _ => return Err(EINVAL),
        }
        Ok(self.pos)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::of_node(cx.vfs, self.ino))
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
    fn getdents(&mut self, cx: &mut Cx<'_, 'a>, out: &mut Vec<u8>, max: usize) -> SysResult<usize> {
        let vfs = &*cx.vfs;
        let empty = alloc::collections::BTreeMap::new();
        let fd_dir = vfs.dir_entries(self.ino).is_none();
        let entries = vfs.dir_entries(self.ino).unwrap_or(&empty);
        let parent = vfs.parent(self.ino);
        let mut idx = self.pos;
        let skip = idx.saturating_sub(2) as usize;
        let mut rest = entries.iter().skip(skip);
        let mut fds = self.fds.iter().skip(skip);
        let mut fd_name: Vec<u8>;
        loop {
            let (name, ino): (&[u8], Ino) = match idx {
                0 => (b".", self.ino),
                1 => (b"..", parent),
                _ if fd_dir => match fds.next() {
                    Some(fd) => {
                        fd_name = alloc::format!("{fd}").into_bytes();
                        (fd_name.as_slice(), self.ino)
                    }
                    None => break,
                },
                _ => match rest.next() {
                    Some((n, &i)) => (n.as_slice(), i),
                    None => break,
                },
            };
            let reclen = (19 + name.len() + 1 + 7) & !7;
            if out.len() + reclen > max {
                if out.is_empty() {
                    return Err(EINVAL);
                }
                break;
            }
            let start = out.len();
            out.extend_from_slice(&(ino as u64 + 1).to_le_bytes());
            out.extend_from_slice(&(idx + 1).to_le_bytes());
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            // fd entries are symlinks (DT_LNK), fdinfo ones files (DT_REG).
            let info = matches!(vfs.node(self.ino).kind, Kind::FdDir { info: true, .. });
            out.push(if fd_dir && idx >= 2 { if info { 8 } else { 10 } } else { dtype(vfs.node(ino).mode()) });
            out.extend_from_slice(name);
            out.resize(start + reclen, 0);
            idx += 1;
        }
        self.pos = idx;
        Ok(out.len())
    }
}

/// One of the /dev character devices.
pub struct DevFile {
    pub dev: Dev,
    pub ino: Ino,
}

impl<'a> FileObject<'a> for DevFile {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        match self.dev {
            Dev::Null => Ok(0),
            Dev::Zero | Dev::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Dev::Random | Dev::Urandom => {
                cx.dev.fill(buf);
                Ok(buf.len())
            }
            Dev::Tty | Dev::Console => Ok(cx.dev.console_read(buf)),
            // Opened as a ChannelEnd or a PtyFile, never as a DevFile.
            Dev::Channel(_) | Dev::Ptmx | Dev::Pts(_) => Err(EBADF),
        }
    }
    fn write(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        match self.dev {
            Dev::Full => Err(ENOSPC),
            Dev::Tty | Dev::Console => Ok(cx.dev.console_write(1, buf)),
            _ => Ok(buf.len()),
        }
    }
    fn pread(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8], _off: u64) -> SysResult<usize> {
        match self.dev {
            Dev::Tty | Dev::Console => Err(ESPIPE),
            _ => self.read(cx, buf),
        }
    }
    fn pwrite(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], _off: u64) -> SysResult<usize> {
        match self.dev {
            Dev::Tty | Dev::Console => Err(ESPIPE),
            _ => self.write(cx, buf, false),
        }
    }
    fn lseek(&mut self, _cx: &mut Cx<'_, 'a>, _off: i64, _whence: u32) -> SysResult<u64> {
        match self.dev {
            Dev::Tty | Dev::Console => Err(ESPIPE),
            _ => Ok(0),
        }
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::of_node(cx.vfs, self.ino))
    }
    fn is_terminal(&self, cx: &Cx<'_, 'a>) -> bool {
        matches!(self.dev, Dev::Tty | Dev::Console) && cx.dev.is_terminal(1)
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
    fn map_source<'c>(&self, _cx: &'c Cx<'_, 'a>) -> SysResult<&'c [u8]> {
        match self.dev {
            Dev::Zero => Ok(&[]),
            _ => Err(ENODEV),
        }
    }
}

/// fd 0, 1 or 2 as the app starts with them: the runner's console.
pub struct Stdio {
    pub fd: i32,
}

impl<'a> FileObject<'a> for Stdio {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        Ok(cx.dev.console_read(buf))
    }
    fn write(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        // Writing to stdin goes where a terminal's would: the output stream.
        let fd = if self.fd == 0 { 1 } else { self.fd };
        Ok(cx.dev.console_write(fd, buf))
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        let tty = cx.dev.is_terminal(self.fd);
        let mut st = Stat::default();
        st.mode = if tty { S_IFCHR | 0o620 } else { S_IFIFO | 0o600 };
        st.ino = 0x1_0000 + self.fd as u64;
        st.dev = 0x10;
        st.nlink = 1;
        st.blksize = 4096;
        if tty {
            st.rdev = crate::stat::makedev(136, 0);
        }
        Ok(st)
    }
    fn is_terminal(&self, cx: &Cx<'_, 'a>) -> bool {
        cx.dev.is_terminal(self.fd)
    }
}

/// An fd opened with O_PATH on something that is not a file (a symlink with O_NOFOLLOW,
/// a fifo): it can only be fstat'd and used as a dirfd.
pub struct PathOnly {
    pub ino: Ino,
}

impl<'a> FileObject<'a> for PathOnly {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EBADF)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _append: bool) -> SysResult<usize> {
        Err(EBADF)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::of_node(cx.vfs, self.ino))
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
}

/// Data of a tmpfs or image file, for tests.
pub fn data_of<'v>(vfs: &'v Vfs<'_>, ino: Ino) -> Option<&'v [u8]> {
    match &vfs.node(ino).kind {
        Kind::File(Data::Image(b)) => Some(b),
        Kind::File(Data::Owned(v)) => Some(v),
        _ => None,
    }
}
