//! Pseudo-terminals against the fake platform: /dev/ptmx and /dev/pts, the line
//! discipline (canonical editing, echo, CR/NL translation, signal characters), termios,
//! sessions and foreground groups, window size, blocking and hangups.

use super::{AT_FDCWD, SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;
use musl_shim::task::Ended;
use musl_shim::{Action, GuestMemory};

const BUF: u64 = 0x14000;
pub(crate) const O_RDWR: u64 = 2;
pub(crate) const O_NOCTTY: u64 = 0o400;
const O_NONBLOCK: u64 = 0o4000;

pub(crate) const TCGETS: u64 = 0x5401;
pub(crate) const TCSETS: u64 = 0x5402;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
pub(crate) const TIOCSPGRP: u64 = 0x5410;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;
pub(crate) const TIOCGPTN: u64 = 0x8004_5430;
pub(crate) const TIOCSPTLCK: u64 = 0x4004_5431;
const SIGCHLD: u64 = 17;

/// Pty helpers on the syscall harness, whose processes may fork and block.
impl T {
    pub(crate) fn with_tasks() -> T {
        let mut t = T::new();
        t.s.enable_tasks(64);
        t
    }
    pub(crate) fn action(&mut self, nr: u64, a: &[u64]) -> Action {
        let mut args = [0u64; 6];
        args[..a.len()].copy_from_slice(a);
        self.s.syscall(&mut self.p, nr, args)
    }
    /// A new pty, unlocked: (master, its number).
    fn openpt(&mut self) -> (u64, u32) {
        let m = self.open("/dev/ptmx", O_RDWR | O_NOCTTY);
        assert!(m >= 0, "open /dev/ptmx: {m}");
        let m = m as u64;
        assert_eq!(self.call(IOCTL, &[m, TIOCGPTN, BUF]), 0);
        let n = self.u32_at(BUF);
        self.p.mem.write(BUF, &0u32.to_le_bytes()).unwrap();
        assert_eq!(self.call(IOCTL, &[m, TIOCSPTLCK, BUF]), 0);
        (m, n)
    }
    fn u32_at(&mut self, at: u64) -> u32 {
        let mut b = [0u8; 4];
        self.p.mem.read(at, &mut b).unwrap();
        u32::from_le_bytes(b)
    }
    fn put(&mut self, fd: u64, bytes: &[u8]) -> i64 {
        self.p.mem.write(BUF, bytes).unwrap();
        self.call(WRITE, &[fd, BUF, bytes.len() as u64])
    }
    fn get(&mut self, fd: u64, max: u64) -> Result<Vec<u8>, i64> {
        let n = self.call(READ, &[fd, BUF, max]);
        if n < 0 {
            return Err(n);
        }
        let mut b = vec![0; n as usize];
        self.p.mem.read(BUF, &mut b).unwrap();
        Ok(b)
    }
    fn ioctl_u32(&mut self, fd: u64, cmd: u64) -> Result<u32, i64> {
        match self.call(IOCTL, &[fd, cmd, BUF]) {
            0 => Ok(self.u32_at(BUF)),
            e => Err(e),
        }
    }
    pub(crate) fn names(&mut self, dir: &str) -> Vec<String> {
        let fd = self.open(dir, 0o40000) as u64;
        let n = self.call(GETDENTS64, &[fd, BUF, 4096]);
        assert!(n > 0, "getdents64 {dir}: {n}");
        let mut b = vec![0; n as usize];
        self.p.mem.read(BUF, &mut b).unwrap();
        self.call(CLOSE, &[fd]);
        let mut out = Vec::new();
        let mut o = 0;
        while o < b.len() {
            let reclen = u16::from_le_bytes([b[o + 16], b[o + 17]]) as usize;
            let name = &b[o + 19..o + reclen];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
            o += reclen;
        }
        out.sort();
        out
    }
    /// fork: the child's pid (the parent stays current).
    pub(crate) fn fork(&mut self) -> u32 {
        match self.action(CLONE, &[SIGCHLD, 0, 0, 0, 0]) {
            Action::Spawned(sp) => sp.child,
            other => panic!("fork: {other:?}"),
        }
    }
    pub(crate) fn run_as(&mut self, pid: u32) {
        assert!(self.s.switch_to(pid), "no process {pid}");
    }
    fn ended(&self, pid: u32) -> Option<Ended> {
        self.s.tasks.procs.get(&pid).and_then(|p| p.ended)
    }
    /// The child process `pid` catches `sig` (a handler at a made-up address).
    pub(crate) fn catch(&mut self, sig: u64) {
        let act = self.at;
        self.at += 32;
        for (i, w) in [0x4000u64, 0, 0, 0].iter().enumerate() {
            self.p.mem.write(act + i as u64 * 8, &w.to_le_bytes()).unwrap();
        }
        assert_eq!(self.call(RT_SIGACTION, &[sig, act, 0, 8]), 0);
    }
    /// The current process blocks the signals of `mask`.
    pub(crate) fn block(&mut self, mask: u64) {
        let at = self.str("12345678");
        self.p.mem.write(at, &mask.to_le_bytes()).unwrap();
        assert_eq!(self.call(RT_SIGPROCMASK, &[0, at, 0, 8]), 0);
    }
    fn pending(&self, pid: u32) -> u64 {
        if self.s.proc_.pid == pid {
            return self.s.proc_.pending;
        }
        self.s.tasks.parked.get(&pid).map_or(0, |p| p.proc_.pending)
    }
}

#[test]
fn ptmx_makes_a_locked_pty_listed_in_dev_pts() {
    let mut t = T::with_tasks();
    assert_eq!(t.names("/dev/pts"), ["ptmx"]);
    let m = t.open("/dev/ptmx", O_RDWR | O_NOCTTY) as u64;
    assert_eq!(t.ioctl_u32(m, TIOCGPTN), Ok(0));
    assert_eq!(t.names("/dev/pts"), ["0", "ptmx"]);
    // Locked until unlockpt.
    assert_eq!(t.open("/dev/pts/0", O_RDWR), EIO.ret());
    t.p.mem.write(BUF, &0u32.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[m, TIOCSPTLCK, BUF]), 0);
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY);
    assert!(s >= 0, "{s}");
    // A second pty takes the next number; numbers are reused once both ends are gone.
    let (m2, n2) = t.openpt();
    assert_eq!(n2, 1);
    assert_eq!(t.names("/dev/pts"), ["0", "1", "ptmx"]);
    assert_eq!(t.call(CLOSE, &[m2]), 0);
    assert_eq!(t.names("/dev/pts"), ["0", "ptmx"]);
    let (_, n3) = t.openpt();
    assert_eq!(n3, 1);
    // The slave is a terminal with Linux's defaults; TIOCGPTN is the master's alone.
    assert_eq!(t.call(IOCTL, &[s as u64, TCGETS, BUF]), 0);
    let flags: Vec<u32> = (0..4).map(|i| t.u32_at(BUF + i * 4)).collect();
    assert_eq!(flags, [0x500, 0x5, 0xbf, 0x8a3b]);
    assert_eq!(t.ioctl_u32(s as u64, TIOCGPTN), Err(ENOTTY.ret()));
    // stat: a character device 136,0.
    assert_eq!(t.call(FSTAT, &[s as u64, BUF]), 0);
    assert_eq!(t.u32_at(BUF + 16) & 0o170000, 0o020000);
    assert_eq!(t.u32_at(BUF + 32), 136 << 8);
    // /dev/ptmx is runc's link into devpts.
    let link = t.str("/dev/ptmx");
    assert_eq!(t.call(READLINKAT, &[AT_FDCWD, link, BUF, 64]), 8);
}

#[test]
fn canonical_mode_edits_lines_and_echoes_them() {
    let mut t = T::with_tasks();
    let (m, _) = t.openpt();
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY) as u64;
    // Nothing yet: a read waits (or EAGAIN without blocking).
    assert_eq!(t.action(READ, &[s, BUF, 100]), Action::Block);
    let snb = t.open("/dev/pts/0", O_RDWR | O_NOCTTY | O_NONBLOCK) as u64;
    assert_eq!(t.get(snb, 100), Err(EAGAIN.ret()));
    // An incomplete line is not readable; CR becomes NL (ICRNL).
    assert_eq!(t.put(m, b"ab\x7fc"), 4);
    assert_eq!(t.ioctl_u32(s, FIONREAD), Ok(0));
    assert_eq!(t.get(snb, 100), Err(EAGAIN.ret()));
    assert_eq!(t.put(m, b"\r"), 1);
    assert_eq!(t.ioctl_u32(s, FIONREAD), Ok(3));
    assert_eq!(t.get(s, 100).unwrap(), b"ac\n");
    // Echo: erase as "\b \b", the line end through ONLCR.
    assert_eq!(t.ioctl_u32(m, FIONREAD), Ok(8));
    assert_eq!(t.get(m, 100).unwrap(), b"ab\x08 \x08c\r\n");
    // VKILL erases the line; VWERASE a word; control characters echo as ^X and erase
    // two columns.
    assert_eq!(t.put(m, b"junk\x15one two\x17x\x01\x7f\r"), 17);
    assert_eq!(t.get(s, 100).unwrap(), b"one x\n");
    let echo = t.get(m, 200).unwrap();
    assert_eq!(echo, b"junk\x08 \x08\x08 \x08\x08 \x08\x08 \x08one two\x08 \x08\x08 \x08\x08 \x08x^A\x08 \x08\x08 \x08\r\n");
    // One line per read, a short buffer takes part of it.
    assert_eq!(t.put(m, b"first\rsecond\r"), 13);
    assert_eq!(t.get(s, 3).unwrap(), b"fir");
    assert_eq!(t.get(s, 100).unwrap(), b"st\n");
    assert_eq!(t.get(s, 100).unwrap(), b"second\n");
    // VEOF ends a line without itself; at a line's start it reads as end of file.
    assert_eq!(t.put(m, b"tail\x04\x04"), 6);
    assert_eq!(t.get(s, 100).unwrap(), b"tail");
    assert_eq!(t.get(s, 100).unwrap(), b"");
    // The slave's output: NL as CR NL (ONLCR).
    t.get(m, 200).unwrap();
    assert_eq!(t.put(s, b"hi\nthere\n"), 9);
    assert_eq!(t.get(m, 100).unwrap(), b"hi\r\nthere\r\n");
    // Readiness.
    let pfd = t.at;
    t.at += 8;
    t.p.mem.write(pfd, &[s as u8, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    assert_eq!(t.call(PPOLL, &[pfd, 1, SCRATCH + 0x7000, 0, 8]), 0, "nothing to read");
    t.put(m, b"z\r");
    t.p.mem.write(SCRATCH + 0x7000, &[0u8; 16]).unwrap();
    assert_eq!(t.call(PPOLL, &[pfd, 1, SCRATCH + 0x7000, 0, 8]), 1);
}

#[test]
fn raw_mode_passes_bytes_through_without_echo() {
    let mut t = T::with_tasks();
    let (m, _) = t.openpt();
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY) as u64;
    assert_eq!(t.call(IOCTL, &[s, TCGETS, BUF]), 0);
    let lflag = t.u32_at(BUF + 12) & !(0o2 | 0o10); // ~ICANON ~ECHO
    let oflag = t.u32_at(BUF + 4) & !1; // ~OPOST
    t.p.mem.write(BUF + 12, &lflag.to_le_bytes()).unwrap();
    t.p.mem.write(BUF + 4, &oflag.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TCSETS, BUF]), 0);
    assert_eq!(t.put(m, b"x\x7f"), 2);
    assert_eq!(t.get(s, 100).unwrap(), b"x\x7f");
    assert_eq!(t.ioctl_u32(m, FIONREAD), Ok(0), "no echo");
    assert_eq!(t.put(s, b"a\nb"), 3);
    assert_eq!(t.get(m, 100).unwrap(), b"a\nb", "no ONLCR without OPOST");
    // The master's TCGETS is the slave's termios.
    assert_eq!(t.call(IOCTL, &[m, TCGETS, BUF]), 0);
    assert_eq!(t.u32_at(BUF + 12), lflag);
    // VMIN 3 (no VTIME): a read waits for three bytes.
    t.p.mem.write(BUF + 17 + 6, &[3]).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TCSETS, BUF]), 0);
    t.put(m, b"ab");
    assert_eq!(t.action(READ, &[s, BUF, 100]), Action::Block);
    t.put(m, b"c");
    assert_eq!(t.get(s, 100).unwrap(), b"abc");
    // VMIN 0: a read returns at once, with nothing.
    assert_eq!(t.call(IOCTL, &[s, TCGETS, BUF]), 0);
    t.p.mem.write(BUF + 17 + 6, &[0]).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TCSETS, BUF]), 0);
    assert_eq!(t.get(s, 100).unwrap(), b"");
}

#[test]
fn queues_are_bounded_and_fstat_agrees_with_the_node() {
    let mut t = T::with_tasks();
    let (m, _) = t.openpt();
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY | O_NONBLOCK) as u64;
    // ttyname: fstat of the slave is the stat of /dev/pts/0.
    assert_eq!(t.call(FSTAT, &[s, BUF]), 0);
    let mut a = [0u8; 16];
    t.p.mem.read(BUF, &mut a).unwrap();
    let path = t.str("/dev/pts/0");
    assert_eq!(t.call(NEWFSTATAT, &[AT_FDCWD, path, BUF, 0]), 0);
    let mut b = [0u8; 16];
    t.p.mem.read(BUF, &mut b).unwrap();
    assert_eq!(a, b, "st_dev and st_ino");
    // End-of-file characters nobody reads fill the slave's queue too: the master waits.
    assert_eq!(t.call(FCNTL, &[m, 4 /* F_SETFL */, O_NONBLOCK]), 0);
    let eofs = vec![4u8; 4096];
    let mut total = 0;
    loop {
        let n = t.put(m, &eofs);
        if n < 0 {
            assert_eq!(n, EAGAIN.ret());
            break;
        }
        total += n;
        assert!(total <= 64 * 1024, "unbounded");
    }
    // Echo that the master does not read is dropped past a bound; the slave still reads.
    let mut t = T::with_tasks();
    let (m, _) = t.openpt();
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY) as u64;
    for _ in 0..40 {
        assert_eq!(t.put(m, &[b'x'; 4095]), 4095);
        assert_eq!(t.put(m, b"\r"), 1);
        assert_eq!(t.get(s, 8192).unwrap().len(), 4096);
    }
    let queued = t.ioctl_u32(m, FIONREAD).unwrap();
    assert!((32 * 1024..40 * 4096).contains(&queued), "{queued}");
}

#[test]
fn interrupt_character_signals_the_foreground_group_of_the_session() {
    let mut t = T::with_tasks();
    let (m, n) = t.openpt();
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.call(SETSID, &[]), child as i64);
    // A session leader's first open of a terminal without O_NOCTTY makes it its own.
    let s = t.open(&format!("/dev/pts/{n}"), O_RDWR) as u64;
    assert_eq!(t.ioctl_u32(s, TIOCGSID), Ok(child));
    assert_eq!(t.ioctl_u32(s, TIOCGPGRP), Ok(child));
    // A grandchild in a group of its own, made the foreground.
    let grandchild = t.fork();
    assert_eq!(t.call(SETPGID, &[grandchild as u64, 0]), 0);
    t.p.mem.write(BUF, &grandchild.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), 0);
    // The grandchild waits in a read.
    t.run_as(grandchild);
    assert_eq!(t.action(READ, &[s, BUF, 100]), Action::Block);
    // The parent, outside the session: the slave is not its terminal.
    t.run_as(1);
    let ps = t.open(&format!("/dev/pts/{n}"), O_RDWR | O_NOCTTY) as u64;
    assert_eq!(t.ioctl_u32(ps, TIOCGPGRP), Err(ENOTTY.ret()));
    assert_eq!(t.ioctl_u32(m, TIOCGPGRP), Ok(grandchild));
    assert_eq!(t.put(m, b"half a line\x03"), 12);
    assert_eq!(t.ended(grandchild), Some(Ended::Killed(2)));
    assert_eq!(t.ended(child), None, "the session leader is not in the foreground");
    assert_eq!(t.get(m, 100).unwrap(), b"half a line^C");
    // The line was flushed: what comes next starts afresh.
    t.run_as(child);
    t.p.mem.write(BUF, &child.to_le_bytes()).unwrap();
    // Out of the foreground, in a group orphaned (its parent is in another session):
    // tcsetpgrp fails unless SIGTTOU is blocked or ignored, as a shell has it.
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), ENOTTY.ret());
    t.block(1 << 21);
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), 0);
    t.catch(2);
    t.catch(28);
    t.run_as(1);
    assert_eq!(t.put(m, b"\x03"), 1);
    assert_ne!(t.pending(child) & 2, 0, "SIGINT caught by the leader");
    // A window size change tells the foreground group, the same size again does not.
    t.p.mem.write(BUF, &[40, 0, 100, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(t.call(IOCTL, &[m, TIOCSWINSZ, BUF]), 0);
    assert_ne!(t.pending(child) & (1 << 27), 0, "SIGWINCH");
    t.run_as(child);
    t.s.proc_.pending = 0;
    assert_eq!(t.call(IOCTL, &[s, TIOCGWINSZ, BUF]), 0);
    assert_eq!((t.u32_at(BUF) & 0xffff, t.u32_at(BUF) >> 16), (40, 100));
    t.run_as(1);
    assert_eq!(t.call(IOCTL, &[m, TIOCSWINSZ, BUF]), 0);
    assert_eq!(t.pending(child) & (1 << 27), 0, "no change, no SIGWINCH");
    // VQUIT kills the leader (default action).
    assert_eq!(t.put(m, b"\x1c"), 1);
    assert_eq!(t.ended(child), Some(Ended::Killed(3)));
}

#[test]
fn controlling_terminal_rules() {
    let mut t = T::with_tasks();
    let (m, n) = t.openpt();
    let path = format!("/dev/pts/{n}");
    let child = t.fork();
    t.run_as(child);
    let s = t.open(&path, O_RDWR | O_NOCTTY) as u64;
    // Not a session leader.
    assert_eq!(t.call(IOCTL, &[s, TIOCSCTTY, 0]), EPERM.ret());
    assert_eq!(t.call(IOCTL, &[s, TIOCNOTTY, 0]), ENOTTY.ret());
    assert_eq!(t.call(SETSID, &[]), child as i64);
    // O_NOCTTY: still none; /dev/tty is then the console's (none here: ENXIO).
    assert_eq!(t.ioctl_u32(s, TIOCGSID), Err(ENOTTY.ret()));
    assert_eq!(t.open("/dev/tty", O_RDWR), ENXIO.ret());
    assert_eq!(t.call(IOCTL, &[s, TIOCSCTTY, 0]), 0);
    assert_eq!(t.call(IOCTL, &[s, TIOCSCTTY, 0]), 0, "again: already ours");
    assert_eq!(t.ioctl_u32(s, TIOCGSID), Ok(child));
    // /dev/tty is now this pty: what it writes reaches the master.
    let tty = t.open("/dev/tty", O_RDWR) as u64;
    assert_eq!(t.put(tty, b"via tty\n"), 8);
    // Groups: only of this session, and existing.
    t.p.mem.write(BUF, &1u32.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), EPERM.ret());
    t.p.mem.write(BUF, &999u32.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), ESRCH.ret());
    t.p.mem.write(BUF, &(-1i32).to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), EINVAL.ret());
    // Another session cannot take it.
    t.run_as(1);
    let other = t.fork();
    t.run_as(other);
    assert_eq!(t.call(SETSID, &[]), other as i64);
    let s2 = t.open(&path, O_RDWR) as u64;
    assert_eq!(t.ioctl_u32(s2, TIOCGSID), Err(ENOTTY.ret()), "taken: no implicit acquisition");
    t.s.proc_.uid = 1000;
    assert_eq!(t.call(IOCTL, &[s2, TIOCSCTTY, 1]), EPERM.ret());
    t.run_as(1);
    assert_eq!(t.get(m, 100).unwrap(), b"via tty\r\n");
    // The leader gives it up: the terminal has no session any more.
    t.run_as(child);
    assert_eq!(t.action(IOCTL, &[s, TIOCNOTTY, 0]), Action::Killed(1), "its own foreground group got SIGHUP");
    assert_eq!(t.ended(child), Some(Ended::Killed(1)));
    t.run_as(other);
    assert_eq!(t.call(IOCTL, &[s2, TIOCSCTTY, 0]), 0, "free again");
}

#[test]
fn slave_closed_by_all_gives_the_master_eio() {
    let mut t = T::with_tasks();
    let (m, _) = t.openpt();
    // Before any slave opens, a read waits.
    assert_eq!(t.action(READ, &[m, BUF, 100]), Action::Block);
    let s = t.open("/dev/pts/0", O_RDWR | O_NOCTTY) as u64;
    let s2 = t.call(DUP, &[s]) as u64;
    assert_eq!(t.put(s, b"last\n"), 5);
    assert_eq!(t.call(CLOSE, &[s]), 0);
    assert_eq!(t.call(CLOSE, &[s2]), 0);
    // What was written is read first, then EIO; poll says POLLHUP.
    let pfd = t.at;
    t.at += 8;
    t.p.mem.write(pfd, &[m as u8, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    assert_eq!(t.call(PPOLL, &[pfd, 1, 0, 0, 8]), 1);
    let mut rev = [0u8; 2];
    t.p.mem.read(pfd + 6, &mut rev).unwrap();
    assert_eq!(rev[0], 0x11, "POLLIN|POLLHUP");
    assert_eq!(t.get(m, 100).unwrap(), b"last\r\n");
    assert_eq!(t.get(m, 100), Err(EIO.ret()));
    // A slave opened again clears it.
    let _s3 = t.open("/dev/pts/0", O_RDWR | O_NOCTTY);
    assert_eq!(t.action(READ, &[m, BUF, 100]), Action::Block);
}

#[test]
fn master_close_hangs_up_the_slave_and_its_session_leader() {
    let mut t = T::with_tasks();
    let (m, n) = t.openpt();
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.call(CLOSE, &[m]), 0);
    assert_eq!(t.call(SETSID, &[]), child as i64);
    let s = t.open(&format!("/dev/pts/{n}"), O_RDWR) as u64;
    t.catch(1);
    // It waits for input when the master goes.
    assert_eq!(t.action(READ, &[s, BUF, 100]), Action::Block);
    t.run_as(1);
    t.s.take_events();
    assert_eq!(t.call(CLOSE, &[m]), 0);
    assert!(t.s.take_events().iter().any(|e| matches!(e, musl_shim::task::Event::Wake { tid, .. } if *tid == child)), "the reader is woken");
    assert_ne!(t.pending(child) & 1, 0, "SIGHUP to the session leader");
    assert_eq!(t.names("/dev/pts"), ["ptmx"]);
    t.run_as(child);
    assert_eq!(t.get(s, 100).unwrap(), b"");
    assert_eq!(t.put(s, b"x"), EIO.ret());
    assert_eq!(t.call(IOCTL, &[s, TCGETS, BUF]), EIO.ret());
    assert_eq!(t.open(&format!("/dev/pts/{n}"), O_RDWR), ENOENT.ret());
}

#[test]
fn session_leader_exit_hangs_up_the_foreground_group() {
    let mut t = T::with_tasks();
    let (_m, n) = t.openpt();
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.call(SETSID, &[]), child as i64);
    let s = t.open(&format!("/dev/pts/{n}"), O_RDWR) as u64;
    let job = t.fork();
    assert_eq!(t.call(SETPGID, &[job as u64, 0]), 0);
    t.p.mem.write(BUF, &job.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), 0);
    assert_eq!(t.action(EXIT_GROUP, &[0]), Action::Exit(0));
    assert_eq!(t.ended(job), Some(Ended::Killed(1)));
}

#[test]
fn random_traffic_and_ioctls_never_panic() {
    let mut t = T::with_tasks();
    let (m, n) = t.openpt();
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.call(SETSID, &[]), child as i64);
    let s = t.open(&format!("/dev/pts/{n}"), O_RDWR | O_NONBLOCK) as u64;
    assert_eq!(t.call(FCNTL, &[m, 4 /* F_SETFL */, O_NONBLOCK]), 0);
    t.run_as(1);
    // The parent, which may come to own the terminal, ignores what it could send.
    let ign = t.at;
    t.at += 32;
    t.p.mem.write(ign, &[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    for sig in [1, 2, 3, 20, 28] {
        assert_eq!(t.call(RT_SIGACTION, &[sig, ign, 0, 8]), 0);
    }
    let ioctls = [TCGETS, TCSETS, 0x5403, 0x5404, 0x5409, 0x540b, TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, 0x5411, TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCNOTTY, TIOCGSID, TIOCGPTN, TIOCSPTLCK, 0x8004_5439, 0x5424, 0x1234];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut done = 0;
    for _ in 0..20_000 {
        done += 1;
        let r = next();
        let bytes: Vec<u8> = (0..(r >> 8) % 48).map(|_| next() as u8 & 0x7f).collect();
        t.p.mem.write(BUF, &bytes).unwrap();
        let fd = if r & 1 == 0 { m } else { s };
        let a = match (r >> 1) % 4 {
            0 => t.action(WRITE, &[fd, BUF, bytes.len() as u64]),
            1 => t.action(READ, &[fd, BUF, (r >> 16) % 300]),
            _ => t.action(IOCTL, &[fd, ioctls[(r >> 20) as usize % ioctls.len()], BUF]),
        };
        match a {
            Action::Return(v) => assert!(v <= 300, "{v}"),
            Action::Killed(sig) => assert_ne!(t.s.proc_.pid, 1, "the parent killed by {sig}"),
            other => panic!("{other:?}"),
        }
        // Now and then as the child, while it lives.
        let alive = t.s.tasks.procs.get(&child).is_some_and(|p| p.ended.is_none());
        let as_child = alive && next() % 3 == 0;
        t.run_as(if as_child { child } else { 1 });
    }
    assert_eq!(done, 20_000);
}

#[test]
fn fionread_counts_a_pipes_bytes_too() {
    let mut t = T::with_tasks();
    assert_eq!(t.call(PIPE2, &[BUF + 64, 0]), 0);
    let (r, w) = (t.u32_at(BUF + 64) as u64, t.u32_at(BUF + 68) as u64);
    assert_eq!(t.put(w, b"12345"), 5);
    assert_eq!(t.ioctl_u32(r, FIONREAD), Ok(5));
    // A regular file is not a terminal: ENOTTY as before.
    let f = t.open("/foo.txt", 0) as u64;
    assert_eq!(t.ioctl_u32(f, TCGETS), Err(ENOTTY.ret()));
}
