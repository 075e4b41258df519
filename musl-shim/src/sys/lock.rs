//! fcntl's byte-range locks (`F_GETLK`, `F_SETLK`, `F_SETLKW` and the `F_OFD_*` ones) over
//! the app's lock table ([`crate::lock`]), and closing an fd, which drops the process's
//! locks on its file.

use super::fs::{cx, fd_arg};
use crate::errno::*;
use crate::lock::{Owner, Range};
use crate::platform::Platform;
use crate::Shim;

pub const F_GETLK: u64 = 5;
pub const F_SETLK: u64 = 6;
pub const F_SETLKW: u64 = 7;
pub const F_OFD_GETLK: u64 = 36;
pub const F_OFD_SETLK: u64 = 37;
pub const F_OFD_SETLKW: u64 = 38;
const F_RDLCK: u16 = 0;
const F_WRLCK: u16 = 1;
const F_UNLCK: u16 = 2;

/// Whether `cmd` is one of the lock commands.
pub fn is_lock_cmd(cmd: u64) -> bool {
    matches!(cmd, F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW)
}

/// aarch64's `struct flock`: type, whence, start, len, pid.
struct Flock {
    ty: u16,
    whence: u16,
    start: i64,
    len: i64,
    pid: i32,
}

fn read_flock<E: Platform>(env: &mut E, at: u64) -> SysResult<Flock> {
    let mut b = [0u8; 32];
    env.read(at, &mut b)?;
    let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    Ok(Flock { ty: u16::from_le_bytes([b[0], b[1]]), whence: u16::from_le_bytes([b[2], b[3]]), start: i64_at(8), len: i64_at(16), pid: i32::from_le_bytes([b[24], b[25], b[26], b[27]]) })
}

fn write_flock<E: Platform>(env: &mut E, at: u64, f: &Flock) -> SysResult<()> {
    let mut b = [0u8; 32];
    b[0..2].copy_from_slice(&f.ty.to_le_bytes());
    b[2..4].copy_from_slice(&f.whence.to_le_bytes());
    b[8..16].copy_from_slice(&f.start.to_le_bytes());
    b[16..24].copy_from_slice(&f.len.to_le_bytes());
    b[24..28].copy_from_slice(&f.pid.to_le_bytes());
    env.write(at, &b)
}

/// The byte range `fl` names, `base` being where its `whence` counts from.
fn range_of(fl: &Flock, base: u64) -> SysResult<Range> {
    let write = match fl.ty {
        F_RDLCK => Some(false),
        F_WRLCK => Some(true),
        F_UNLCK => None,
        _ => return Err(EINVAL),
    };
    let start = i128::from(base) + i128::from(fl.start);
    let (start, end) = match fl.len {
        0 => (start, i128::from(u64::MAX)),
        l if l > 0 => (start, start + i128::from(l)),
        l => (start + i128::from(l), start),
    };
    if start < 0 {
        return Err(EINVAL);
    }
    if end > i128::from(i64::MAX) && fl.len != 0 {
        return Err(EOVERFLOW);
    }
    Ok(Range { start: start as u64, end: end as u64, write })
}

/// fcntl(fd, cmd, struct flock *) for the lock commands.
pub fn fcntl_lock<E: Platform>(s: &mut Shim<'_>, env: &mut E, fd: u64, cmd: u64, at: u64) -> SysResult<u64> {
    let file = s.fds.file(fd_arg(fd))?;
    let mut fl = read_flock(env, at)?;
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    if ofd && fl.pid != 0 {
        return Err(EINVAL);
    }
    let (ino, readable, writable) = {
        let f = file.borrow();
        (f.obj.ino().ok_or(EBADF)?, f.readable(), f.writable())
    };
    let base = match fl.whence {
        0 => 0,
        1 => file.borrow_mut().obj.lseek(&mut cx(s, env), 0, 1)?,
        2 => s.vfs.node(ino).size(),
        _ => return Err(EINVAL),
    };
    let r = range_of(&fl, base)?;
    let pid = s.proc_.pid;
    let owner = if ofd { Owner::of_file(&file) } else { Owner::Process(pid) };
    if matches!(cmd, F_GETLK | F_OFD_GETLK) {
        if r.write.is_none() {
            return Err(EINVAL);
        }
        fl = match s.locks.conflict(ino, &owner, r) {
            Some(l) => {
                let len = if l.end == u64::MAX { 0 } else { (l.end - l.start) as i64 };
                Flock { ty: if l.write { F_WRLCK } else { F_RDLCK }, whence: 0, start: l.start as i64, len, pid: l.pid }
            }
            None => Flock { ty: F_UNLCK, ..fl },
        };
        return write_flock(env, at, &fl).map(|_| 0);
    }
    if r.write == Some(true) && !writable || r.write == Some(false) && !readable {
        return Err(EBADF);
    }
    let shown = if ofd { -1 } else { pid as i32 };
    let wait = matches!(cmd, F_SETLKW | F_OFD_SETLKW);
    let res = s.locks.set(ino, owner, shown, r);
    s.locks.set_waiting(pid, (wait && res == Err(EBLOCK) && !ofd).then_some((ino, r)));
    match res {
        Err(EBLOCK) if !wait => Err(EAGAIN),
        Ok(()) => {
            crate::pipe::bump(&s.tasks.io_gen);
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Closes `fd`: the calling process's locks on its file go (POSIX's rule, whichever fd
/// they were taken through), and waiters try again.
pub fn close_fd(s: &mut Shim<'_>, fd: i64) -> SysResult<()> {
    let ino = s.fds.get(fd)?.file.borrow().obj.ino();
    s.fds.close(fd)?;
    if let Some(ino) = ino.filter(|&i| s.locks.any(i)) {
        s.locks.release(ino, s.proc_.pid);
        crate::pipe::bump(&s.tasks.io_gen);
    }
    Ok(())
}
