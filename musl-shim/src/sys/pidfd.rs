//! Process file descriptors: `pidfd_open` makes one, readable (poll) once its process has
//! ended; `pidfd_send_signal` signals through one, or through an fd of a `/proc/<pid>`
//! directory as Linux also takes.

use super::signal::kill;
use super::Outcome;
use crate::errno::*;
use crate::fd::{new_entry, Cx, FileObject, O_CLOEXEC, O_NONBLOCK, O_RDWR};
use crate::pipe::POLLIN;
use crate::stat::Stat;
use crate::Shim;
use alloc::boxed::Box;
use alloc::rc::Rc;
use core::cell::Cell;

/// A pidfd: its process, and whether that process has ended (set by `end_process`).
pub struct PidFd {
    pid: u32,
    ended: Rc<Cell<bool>>,
}

impl<'a> FileObject<'a> for PidFd {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, _buf: &mut [u8]) -> SysResult<usize> {
        Err(EINVAL)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        // An anonymous inode, as Linux's.
        Ok(Stat::synthetic(0o600, 0, 0x0e))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        if self.ended.get() {
            POLLIN
        } else {
            0
        }
    }
    fn pidfd(&self) -> Option<u32> {
        Some(self.pid)
    }
}

/// `pidfd_open(pid, flags)`: EINVAL for flags other than PIDFD_NONBLOCK or a pid not
/// above 0, ESRCH for no such process (a zombie is still one). The fd is close-on-exec.
pub fn pidfd_open(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let (pid, flags) = (a[0] as i32, a[1] as u32);
    if flags & !O_NONBLOCK != 0 || pid <= 0 {
        return Err(EINVAL);
    }
    let pid = pid as u32;
    let ended = s.tasks.procs.get(&pid).ok_or(ESRCH)?.ended.is_some();
    let flag = s.tasks.pidfds.entry(pid).or_insert_with(|| Rc::new(Cell::new(ended))).clone();
    let obj = PidFd { pid, ended: flag };
    s.fds.install(new_entry(Box::new(obj), O_RDWR | O_CLOEXEC | (flags & O_NONBLOCK)), 0).map(|fd| fd as u64)
}

/// `pidfd_send_signal(pidfd, sig, info, flags)`: `kill` of the fd's process. `info` is
/// not read; flags must be 0.
pub fn pidfd_send_signal(s: &mut Shim<'_>, a: [u64; 6]) -> Outcome {
    if a[3] != 0 {
        return Outcome::Ret(Err(EINVAL));
    }
    match pidfd_pid(s, a[0]) {
        Ok(pid) => kill(s, i64::from(pid), a[1]),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

/// The process a pidfd or a /proc/<pid> directory fd names; EBADF for any other fd.
fn pidfd_pid(s: &Shim<'_>, fd: u64) -> SysResult<u32> {
    let file = s.fds.get(super::fs::fd_arg(fd))?.file.clone();
    let f = file.borrow();
    if let Some(pid) = f.obj.pidfd() {
        return Ok(pid);
    }
    let path = s.vfs.path_of(f.obj.ino().ok_or(EBADF)?);
    let digits = path.strip_prefix(b"/proc/").ok_or(EBADF)?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(EBADF);
    }
    Ok(digits.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
}
