//! Pipe capacity: F_GETPIPE_SZ and F_SETPIPE_SZ, and writes that honour it.

use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;

const F_SETPIPE_SZ: u64 = 1031;
const F_GETPIPE_SZ: u64 = 1032;
const O_NONBLOCK: u64 = 0o4000;

/// A non-blocking pipe: (read end, write end).
fn pipe(t: &mut T) -> (u64, u64) {
    assert_eq!(t.call(PIPE2, &[SCRATCH, O_NONBLOCK]), 0);
    let mut b = [0u8; 8];
    musl_shim::GuestMemory::read(&mut t.p.mem, SCRATCH, &mut b).unwrap();
    (u64::from(u32::from_le_bytes(b[..4].try_into().unwrap())), u64::from(u32::from_le_bytes(b[4..].try_into().unwrap())))
}

#[test]
fn pipe_size_rounds_to_pages_and_refuses_what_linux_refuses() {
    let mut t = T::new();
    let (r, w) = pipe(&mut t);
    assert_eq!(t.call(FCNTL, &[w, F_GETPIPE_SZ]), 65536, "Linux's default");
    assert_eq!(t.call(FCNTL, &[r, F_SETPIPE_SZ, 5000]), 8192, "rounded up to a power of two pages");
    assert_eq!(t.call(FCNTL, &[w, F_GETPIPE_SZ]), 8192, "both ends share it");
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, 0]), 4096, "one page at least");
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, 1 << 20]), 1 << 20, "pipe-max-size is allowed");
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, (1 << 20) + 1]), EPERM.ret(), "past pipe-max-size");
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, (1 << 31) + 1]), EINVAL.ret());
    assert_eq!(t.call(FCNTL, &[0, F_GETPIPE_SZ]), EBADF.ret(), "not a pipe");
    // With 3 pages queued, 2 pages will not do.
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 3 * 4096]), 3 * 4096);
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, 8192]), EBUSY.ret());
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, 16384]), 16384);
    assert_eq!(t.call(FCNTL, &[w, F_GETPIPE_SZ]), 16384);
}

#[test]
fn writes_stop_at_the_pipe_size() {
    let mut t = T::new();
    let (r, w) = pipe(&mut t);
    assert_eq!(t.call(FCNTL, &[w, F_SETPIPE_SZ, 4096]), 4096);
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 3000]), 3000);
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 2000]), EAGAIN.ret(), "PIPE_BUF writes go in whole or not at all");
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 1096]), 1096, "what is left of the page");
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 1]), EAGAIN.ret(), "full");
    assert_eq!(t.call(READ, &[r, SCRATCH, 4096]), 4096);
    assert_eq!(t.call(WRITE, &[w, SCRATCH, 4096]), 4096, "one whole page fits again");
}

#[test]
fn proc_gives_the_pipe_max_size() {
    let mut t = T::new();
    assert_eq!(t.cat("/proc/sys/fs/pipe-max-size").unwrap(), b"1048576\n");
}

#[test]
fn dnotify_only_removes_watches() {
    const F_NOTIFY: u64 = 1026;
    let mut t = T::new();
    let dir = t.open("/tmp", 0o200000) as u64;
    let file = t.open("/tmp/f", 0o101) as u64;
    assert_eq!(t.call(FCNTL, &[dir, F_NOTIFY, 0x8000_0000]), 0, "DN_MULTISHOT alone: no events");
    assert_eq!(t.call(FCNTL, &[file, F_NOTIFY, 0]), 0);
    assert_eq!(t.call(FCNTL, &[file, F_NOTIFY, 1]), ENOTDIR.ret());
    assert_eq!(t.call(FCNTL, &[dir, F_NOTIFY, 1]), EINVAL.ret(), "no dnotify");
}
