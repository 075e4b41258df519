//! fcntl byte-range locks between the app's processes: POSIX locks owned by a process
//! (dropped when it closes any fd of the file, or ends), OFD locks owned by an open file,
//! conflicts, F_GETLK's report, waiting and deadlock.

use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;
use musl_shim::{Action, GuestMemory};

const FL: u64 = SCRATCH + 0x900;
const F_GETLK: u64 = 5;
const F_SETLK: u64 = 6;
const F_SETLKW: u64 = 7;
const F_OFD_GETLK: u64 = 36;
const F_OFD_SETLK: u64 = 37;
const RD: u16 = 0;
const WR: u16 = 1;
const UN: u16 = 2;

impl T {
    /// fcntl(fd, cmd, &{ty, SEEK_SET, start, len}).
    fn lock(&mut self, fd: u64, cmd: u64, ty: u16, start: i64, len: i64) -> i64 {
        self.put_flock(ty, start, len);
        self.call(FCNTL, &[fd, cmd, FL])
    }
    fn put_flock(&mut self, ty: u16, start: i64, len: i64) {
        let mut b = [0u8; 32];
        b[0..2].copy_from_slice(&ty.to_le_bytes());
        b[8..16].copy_from_slice(&start.to_le_bytes());
        b[16..24].copy_from_slice(&len.to_le_bytes());
        self.p.mem.write(FL, &b).unwrap();
    }
    /// F_GETLK's answer: (type, start, len, pid).
    fn getlk(&mut self, fd: u64, cmd: u64, ty: u16, start: i64, len: i64) -> (u16, i64, i64, i32) {
        assert_eq!(self.lock(fd, cmd, ty, start, len), 0);
        let mut b = [0u8; 32];
        self.p.mem.read(FL, &mut b).unwrap();
        let i = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        (u16::from_le_bytes([b[0], b[1]]), i(8), i(16), i32::from_le_bytes(b[24..28].try_into().unwrap()))
    }
}

#[test]
fn posix_locks_conflict_between_processes_and_go_with_any_close() {
    let mut t = T::with_tasks();
    let fd = t.open("/tmp/locked", 0o102) as u64;
    assert_eq!(t.lock(fd, F_SETLK, WR, 10, 20), 0);
    assert_eq!(t.lock(fd, F_SETLK, RD, 0, 0), 0, "an owner never conflicts with itself");
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.getlk(fd, F_GETLK, WR, 0, 5), (RD, 0, 0, 1), "the parent's read lock over all");
    assert_eq!(t.lock(fd, F_SETLK, RD, 0, 5), 0, "readers share");
    assert_eq!(t.lock(fd, F_SETLK, WR, 0, 5), EAGAIN.ret());
    t.run_as(1);
    assert_eq!(t.getlk(fd, F_GETLK, WR, 0, 5), (RD, 0, 5, child as i32));
    // Closing another fd of the file drops the parent's locks.
    let other = t.open("/tmp/locked", 0) as u64;
    assert_eq!(t.call(CLOSE, &[other]), 0);
    t.run_as(child);
    assert_eq!(t.lock(fd, F_SETLK, WR, 5, 100), 0, "the parent's locks are gone");
    t.run_as(1);
    assert_eq!(t.getlk(fd, F_GETLK, RD, 50, 1), (WR, 5, 100, child as i32));
    assert_eq!(t.getlk(fd, F_GETLK, WR, 0, 1), (RD, 0, 5, child as i32), "its read lock was split");
    t.run_as(child);
    assert_eq!(t.action(EXIT_GROUP, &[0]), Action::Exit(0));
    t.run_as(1);
    assert_eq!(t.getlk(fd, F_GETLK, WR, 0, 0).0, UN, "the child's locks went with it");
}

#[test]
fn ofd_locks_belong_to_the_open_file() {
    let mut t = T::with_tasks();
    let a = t.open("/tmp/ofd", 0o102) as u64;
    let b = t.open("/tmp/ofd", 2) as u64;
    assert_eq!(t.lock(a, F_OFD_SETLK, WR, 0, 10), 0);
    assert_eq!(t.lock(b, F_OFD_SETLK, WR, 5, 1), EAGAIN.ret(), "another open file of the same process");
    assert_eq!(t.getlk(b, F_OFD_GETLK, RD, 0, 0), (WR, 0, 10, -1));
    assert_eq!(t.lock(b, F_SETLK, RD, 0, 1), EAGAIN.ret(), "POSIX and OFD locks conflict");
    let d = t.call(DUP, &[a]) as u64;
    assert_eq!(t.call(CLOSE, &[a]), 0);
    assert_eq!(t.lock(b, F_OFD_SETLK, WR, 5, 1), EAGAIN.ret(), "a dup keeps the open file");
    assert_eq!(t.call(CLOSE, &[d]), 0);
    assert_eq!(t.lock(b, F_OFD_SETLK, WR, 5, 1), 0, "gone with the last fd");
    t.put_flock(WR, 0, 1);
    t.p.mem.write(FL + 24, &7i32.to_le_bytes()).unwrap();
    assert_eq!(t.call(FCNTL, &[b, F_OFD_SETLK, FL]), EINVAL.ret(), "l_pid must be 0");
    let r = t.open("/tmp/ofd", 0) as u64;
    assert_eq!(t.lock(r, F_SETLK, WR, 0, 1), EBADF.ret(), "a write lock needs a writable fd");
}

#[test]
fn setlkw_waits_for_the_holder_and_sees_a_deadlock() {
    let mut t = T::with_tasks();
    let fd = t.open("/tmp/wait", 0o102) as u64;
    assert_eq!(t.lock(fd, F_SETLK, WR, 0, 10), 0);
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.lock(fd, F_SETLK, WR, 20, 10), 0);
    t.put_flock(WR, 0, 1);
    assert_eq!(t.action(FCNTL, &[fd, F_SETLKW, FL]), Action::Block, "the child waits for the parent");
    t.run_as(1);
    assert_eq!(t.lock(fd, F_SETLKW, WR, 20, 1), EDEADLK.ret(), "the parent would wait for the waiting child");
    assert_eq!(t.lock(fd, F_SETLK, UN, 0, 0), 0);
    let events = t.s.take_events();
    assert!(!events.is_empty(), "the unlock wakes the waiter: {events:?}");
    t.run_as(child);
    assert_eq!(t.lock(fd, F_SETLKW, WR, 0, 1), 0, "its retry gets the lock");
}
