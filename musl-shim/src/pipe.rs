//! Pipes: a bounded byte queue with a read end and a write end, each an fd object.
//!
//! A read from an empty pipe whose write end is still open, and a write into a full pipe,
//! return [`EBLOCK`]: the dispatcher parks the thread (or answers `EAGAIN` for an
//! `O_NONBLOCK` file) and retries the syscall after the next change to any pipe. Every
//! change bumps the shared I/O generation ([`IoGen`]) the task table watches.

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::stat::Stat;
use crate::vfs::S_IFIFO;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

/// Bytes a new pipe holds (Linux's default pipe size); `F_SETPIPE_SZ` changes it.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// The most `F_SETPIPE_SZ` grants (/proc/sys/fs/pipe-max-size): a container's root has
/// no CAP_SYS_RESOURCE to go past it.
pub const PIPE_MAX_SIZE: usize = 1024 * 1024;
const PAGE: usize = 4096;
/// Writes up to this size are atomic (POSIX PIPE_BUF).
pub const PIPE_BUF: usize = 4096;

/// A counter bumped whenever an I/O object's state changes (data, readers, writers).
pub type IoGen = Rc<Cell<u64>>;

pub fn bump(gen: &IoGen) {
    gen.set(gen.get().wrapping_add(1));
}

struct PipeBuf {
    data: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Bytes it may hold: a power-of-two number of pages.
    capacity: usize,
    /// Inode number shown by fstat (both ends share it).
    ino: u64,
}

impl PipeBuf {
    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// `F_SETPIPE_SZ`: Linux takes the argument's low 32 bits and rounds them up to a
    /// power-of-two number of pages (one at least); EINVAL past 2 GiB, EPERM past
    /// [`PIPE_MAX_SIZE`], EBUSY when the pages of bytes queued would not fit. Returns the
    /// new capacity.
    fn resize(&mut self, size: u64) -> SysResult<usize> {
        let size = size as u32;
        if size > 1 << 31 {
            return Err(EINVAL);
        }
        let cap = (size as usize).max(PAGE).next_power_of_two();
        if cap > PIPE_MAX_SIZE && cap > self.capacity {
            return Err(EPERM);
        }
        if self.data.len().div_ceil(PAGE) > cap / PAGE {
            return Err(EBUSY);
        }
        self.capacity = cap;
        Ok(cap)
    }
}

/// `F_GETPIPE_SZ` (`set` None) and `F_SETPIPE_SZ` on either end of a pipe.
fn pipe_size(buf: &RefCell<PipeBuf>, gen: &IoGen, set: Option<u64>) -> SysResult<usize> {
    let Some(size) = set else { return Ok(buf.borrow().capacity) };
    let cap = buf.borrow_mut().resize(size)?;
    // More room may let a waiting writer in.
    bump(gen);
    Ok(cap)
}

/// poll(2) bits.
pub const POLLIN: u16 = 0x1;
pub const POLLOUT: u16 = 0x4;
pub const POLLERR: u16 = 0x8;
pub const POLLHUP: u16 = 0x10;

/// Makes a pipe: (read end, write end).
pub fn new_pipe(gen: &IoGen, ino: u64) -> (PipeReader, PipeWriter) {
    let buf = Rc::new(RefCell::new(PipeBuf { data: VecDeque::new(), readers: 1, writers: 1, capacity: PIPE_CAPACITY, ino }));
    (PipeReader { buf: buf.clone(), gen: gen.clone() }, PipeWriter { buf, gen: gen.clone() })
}

pub struct PipeReader {
    buf: Rc<RefCell<PipeBuf>>,
    gen: IoGen,
}

pub struct PipeWriter {
    buf: Rc<RefCell<PipeBuf>>,
    gen: IoGen,
}

fn fifo_stat(ino: u64) -> Stat {
    Stat::synthetic(S_IFIFO | 0o600, ino, 0x0c)
}

impl<'a> FileObject<'a> for PipeReader {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let mut p = self.buf.borrow_mut();
        if p.data.is_empty() {
            return if p.writers == 0 || buf.is_empty() { Ok(0) } else { Err(EBLOCK) };
        }
        let n = buf.len().min(p.data.len());
        for (dst, src) in buf[..n].iter_mut().zip(p.data.drain(..n)) {
            *dst = src;
        }
        bump(&self.gen);
        Ok(n)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &[u8], _append: bool) -> SysResult<usize> {
        Err(EBADF)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(fifo_stat(self.buf.borrow().ino))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        let p = self.buf.borrow();
        let mut r = 0;
        if !p.data.is_empty() {
            r |= POLLIN;
        }
        if p.writers == 0 {
            r |= POLLHUP;
        }
        r
    }
    fn fionread(&self) -> Option<usize> {
        Some(self.buf.borrow().data.len())
    }
    fn pipe_size(&mut self, set: Option<u64>) -> SysResult<usize> {
        pipe_size(&self.buf, &self.gen, set)
    }
}

impl<'a> FileObject<'a> for PipeWriter {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EBADF)
    }
    /// Writes what fits; a write of at most [`PIPE_BUF`] bytes goes in whole or waits.
    /// `EPIPE` when no reader is left (the dispatcher raises SIGPIPE).
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        let mut p = self.buf.borrow_mut();
        if p.readers == 0 {
            return Err(EPIPE);
        }
        let room = p.room();
        if buf.is_empty() {
            return Ok(0);
        }
        if room == 0 || (buf.len() <= PIPE_BUF && room < buf.len()) {
            return Err(EBLOCK);
        }
        let n = buf.len().min(room);
        p.data.extend(&buf[..n]);
        bump(&self.gen);
        Ok(n)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(fifo_stat(self.buf.borrow().ino))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        let p = self.buf.borrow();
        if p.readers == 0 {
            POLLOUT | POLLERR
        } else if p.room() >= PIPE_BUF.min(p.capacity) {
            POLLOUT
        } else {
            0
        }
    }
    fn pipe_size(&mut self, set: Option<u64>) -> SysResult<usize> {
        pipe_size(&self.buf, &self.gen, set)
    }
}

/// A named pipe (a fifo node of the tree): every open of it gets an end of one buffer.
pub struct Fifo {
    buf: Rc<RefCell<PipeBuf>>,
    gen: IoGen,
}

impl Fifo {
    pub fn new(gen: &IoGen, ino: u64) -> Fifo {
        Fifo { buf: Rc::new(RefCell::new(PipeBuf { data: VecDeque::new(), readers: 0, writers: 0, capacity: PIPE_CAPACITY, ino })), gen: gen.clone() }
    }
    pub fn readers(&self) -> usize {
        self.buf.borrow().readers
    }
    pub fn writers(&self) -> usize {
        self.buf.borrow().writers
    }
    pub fn reader(&self) -> PipeReader {
        self.buf.borrow_mut().readers += 1;
        bump(&self.gen);
        PipeReader { buf: self.buf.clone(), gen: self.gen.clone() }
    }
    pub fn writer(&self) -> PipeWriter {
        self.buf.borrow_mut().writers += 1;
        bump(&self.gen);
        PipeWriter { buf: self.buf.clone(), gen: self.gen.clone() }
    }
}

/// One end of a fifo, made for an open still waiting.
pub enum FifoEnd {
    R(PipeReader),
    W(PipeWriter),
}

/// A fifo opened O_RDWR: both ends in one file.
pub struct FifoBoth {
    pub r: PipeReader,
    pub w: PipeWriter,
}

impl<'a> FileObject<'a> for FifoBoth {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        self.r.read(cx, buf)
    }
    fn write(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], append: bool) -> SysResult<usize> {
        self.w.write(cx, buf, append)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        self.r.stat(cx)
    }
    fn poll(&self, cx: &Cx<'_, 'a>) -> u16 {
        (self.r.poll(cx) & POLLIN) | (self.w.poll(cx) & POLLOUT)
    }
    fn fionread(&self) -> Option<usize> {
        self.r.fionread()
    }
    fn pipe_size(&mut self, set: Option<u64>) -> SysResult<usize> {
        self.r.pipe_size(set)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.buf.borrow_mut().readers -= 1;
        bump(&self.gen);
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.buf.borrow_mut().writers -= 1;
        bump(&self.gen);
    }
}
