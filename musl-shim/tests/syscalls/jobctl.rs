//! Job control against the fake platform: stops and continuations (SIGSTOP, SIGCONT, ^Z)
//! seen by wait4 and waitid, a background group's reads, writes and changes of its
//! controlling terminal (SIGTTIN, SIGTTOU, EIO), and VMIN/VTIME reads.

use super::pty::{O_NOCTTY, O_RDWR, TCGETS, TCSETS, TIOCGPTN, TIOCSPGRP, TIOCSPTLCK};
use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;
use musl_shim::task::{Event, Resume};
use musl_shim::{Action, GuestMemory};

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const STATUS: u64 = SCRATCH + 0x100;
const BUF: u64 = SCRATCH + 0x200;

impl T {
    /// wait4(pid, &status, options): (its value, the status).
    fn wait(&mut self, pid: u32, options: u64) -> (i64, u32) {
        self.p.mem.write(STATUS, &[0xaa; 4]).unwrap();
        let r = self.call(WAIT4, &[pid as u64, STATUS, options, 0]);
        let mut b = [0u8; 4];
        self.p.mem.read(STATUS, &mut b).unwrap();
        (r, u32::from_le_bytes(b))
    }
    fn stopped(&self, pid: u32) -> bool {
        self.s.tasks.procs.get(&pid).is_some_and(|p| p.stopped)
    }
    /// Whether the runner was told to wake `tid` with `resume`.
    fn woken(&mut self, tid: u32, resume: Resume) -> bool {
        self.s.take_events().contains(&Event::Wake { tid, resume })
    }
    /// A pty whose slave is the controlling terminal of a new session led by a child of
    /// the app: (master, slave, the leader). The leader is current.
    fn session(&mut self) -> (u64, u64, u32) {
        let m = self.open("/dev/ptmx", O_RDWR | O_NOCTTY) as u64;
        assert_eq!(self.call(IOCTL, &[m, TIOCGPTN, BUF]), 0);
        let mut n = [0u8; 4];
        self.p.mem.read(BUF, &mut n).unwrap();
        self.p.mem.write(BUF, &[0; 4]).unwrap();
        assert_eq!(self.call(IOCTL, &[m, TIOCSPTLCK, BUF]), 0);
        let leader = self.fork();
        self.run_as(leader);
        assert_eq!(self.call(SETSID, &[]), leader as i64);
        let s = self.open(&format!("/dev/pts/{}", u32::from_le_bytes(n)), O_RDWR) as u64;
        (m, s, leader)
    }
    /// A process in the background of a session's terminal, current: (slave, its pid).
    fn background_on_terminal(&mut self) -> (u64, u32) {
        let (_m, s, _leader) = self.session();
        let bg = self.background_child();
        self.run_as(bg);
        (s, bg)
    }
    /// A child of the current process in a process group of its own (current again after).
    fn background_child(&mut self) -> u32 {
        let c = self.fork();
        assert_eq!(self.call(SETPGID, &[c as u64, 0]), 0);
        c
    }
    fn termios(&mut self, s: u64, edit: impl FnOnce(&mut [u8; 36])) {
        assert_eq!(self.call(IOCTL, &[s, TCGETS, BUF]), 0);
        let mut b = [0u8; 36];
        self.p.mem.read(BUF, &mut b).unwrap();
        edit(&mut b);
        self.p.mem.write(BUF, &b).unwrap();
        assert_eq!(self.call(IOCTL, &[s, TCSETS, BUF]), 0);
    }
    fn write_bytes(&mut self, fd: u64, bytes: &[u8]) -> i64 {
        self.p.mem.write(BUF + 0x100, bytes).unwrap();
        self.call(WRITE, &[fd, BUF + 0x100, bytes.len() as u64])
    }
}

#[test]
fn sigstop_stops_a_child_until_sigcont_and_its_parent_sees_both() {
    let mut t = T::with_tasks();
    let child = t.fork();
    t.catch(17);
    assert_eq!(t.call(KILL, &[child as u64, 19]), 0);
    assert!(t.stopped(child));
    assert_ne!(t.s.proc_.pending & (1 << 16), 0, "SIGCHLD");
    let stat = String::from_utf8(t.cat(&format!("/proc/{child}/stat")).unwrap()).unwrap();
    assert!(stat.contains(") T "), "{stat}");
    assert_eq!(t.wait(child, WNOHANG), (0, 0xaaaa_aaaa), "a stop is not an exit");
    assert_eq!(t.wait(child, WUNTRACED), (child as i64, 0x137f), "WIFSTOPPED, WSTOPSIG 19");
    assert_eq!(t.wait(child, WUNTRACED | WNOHANG).0, 0, "told once");
    // The stopped child's next syscall waits for SIGCONT, then runs.
    t.run_as(child);
    assert_eq!(t.action(GETPID, &[]), Action::Block);
    t.run_as(1);
    assert_eq!(t.call(KILL, &[child as u64, 18]), 0);
    assert!(!t.stopped(child));
    assert!(t.woken(child, Resume::Retry));
    assert_eq!(t.wait(child, WCONTINUED), (child as i64, 0xffff), "WIFCONTINUED");
    // A process stopping itself stops as its kill returns, which it returns at SIGCONT.
    t.run_as(child);
    assert_eq!(t.action(KILL, &[child as u64, 19]), Action::Block);
    t.run_as(1);
    assert!(t.stopped(child));
    assert_eq!(t.call(KILL, &[child as u64, 9]), 0);
    assert_eq!(t.wait(child, WUNTRACED), (child as i64, 9), "SIGKILL ends a stopped process, its end told first");
}

#[test]
fn waitid_reports_stops_and_continuations() {
    let mut t = T::with_tasks();
    let child = t.fork();
    assert_eq!(t.call(KILL, &[child as u64, 19]), 0);
    // P_PID, WSTOPPED | WNOWAIT: CLD_STOPPED with the signal, kept for the next wait.
    assert_eq!(t.call(WAITID, &[1, child as u64, BUF, 2 | 0x0100_0000, 0]), 0);
    let mut si = [0u8; 28];
    t.p.mem.read(BUF, &mut si).unwrap();
    assert_eq!((si[8], si[24]), (5, 19));
    assert_eq!(t.wait(child, WUNTRACED).1, 0x137f);
    assert_eq!(t.call(WAITID, &[1, child as u64, BUF, 0, 0]), EINVAL.ret(), "no event asked for");
    assert_eq!(t.call(KILL, &[child as u64, 18]), 0);
    assert_eq!(t.call(WAITID, &[1, child as u64, BUF, 8, 0]), 0);
    t.p.mem.read(BUF, &mut si).unwrap();
    assert_eq!((si[8], si[24]), (6, 18), "CLD_CONTINUED");
}

#[test]
fn a_background_read_of_the_terminal_stops_its_group_with_sigttin() {
    let mut t = T::with_tasks();
    let (m, s, leader) = t.session();
    let bg = t.background_child();
    t.run_as(bg);
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block, "stopped");
    assert!(t.stopped(bg));
    t.run_as(leader);
    assert_eq!(t.wait(bg, WUNTRACED), (bg as i64, 0x157f), "WSTOPSIG SIGTTIN");
    // The leader hands it the terminal and continues it: the read runs again.
    t.p.mem.write(BUF, &bg.to_le_bytes()).unwrap();
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), 0);
    assert_eq!(t.call(KILL, &[bg as u64, 18]), 0);
    assert!(t.woken(bg, Resume::Retry));
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"hi\n"), 3);
    t.run_as(bg);
    assert_eq!(t.call(READ, &[s, BUF, 10]), 3);
    // Now the leader is in the background: its group is orphaned, so it reads EIO.
    t.run_as(leader);
    assert_eq!(t.call(READ, &[s, BUF, 10]), EIO.ret());
    assert!(!t.stopped(leader));
}

#[test]
fn sigttin_ignored_or_caught_does_not_stop_a_background_reader() {
    let mut t = T::with_tasks();
    let (s, bg) = t.background_on_terminal();
    t.catch(21);
    assert_eq!(t.call(READ, &[s, BUF, 10]), EINTR.ret(), "the handler runs");
    assert_ne!(t.s.proc_.pending & (1 << 20), 0);
    t.s.proc_.pending = 0;
    t.block(1 << 20);
    assert_eq!(t.call(READ, &[s, BUF, 10]), EIO.ret(), "blocked");
    assert!(!t.stopped(bg));
}

#[test]
fn background_writes_with_tostop_and_terminal_changes_send_sigttou() {
    let mut t = T::with_tasks();
    let (s, bg) = t.background_on_terminal();
    assert_eq!(t.write_bytes(s, b"ok"), 2, "no TOSTOP: a background write goes");
    assert_eq!(t.action(IOCTL, &[s, TCSETS, BUF]), Action::Block, "tcsetattr stops it");
    assert!(t.stopped(bg));
    t.run_as(1);
    assert_eq!(t.call(KILL, &[bg as u64, 18]), 0);
    t.run_as(bg);
    t.block(1 << 21);
    t.termios(s, |b| b[13] |= 1); // TOSTOP (0o400 of c_lflag), SIGTTOU blocked
    assert_eq!(t.write_bytes(s, b"ok"), 2, "SIGTTOU blocked: the write goes");
    t.s.proc_.sigmask = 0;
    assert_eq!(t.action(WRITE, &[s, BUF, 1]), Action::Block, "TOSTOP stops it");
    let bg_info = t.s.tasks.procs[&bg].report;
    assert_eq!(bg_info, Some(musl_shim::jobctl::Report::Stopped(22)));
}

#[test]
fn vsusp_stops_the_foreground_group() {
    let mut t = T::with_tasks();
    let (m, s, leader) = t.session();
    let fg = t.background_child();
    t.p.mem.write(BUF, &fg.to_le_bytes()).unwrap();
    t.block(1 << 21);
    assert_eq!(t.call(IOCTL, &[s, TIOCSPGRP, BUF]), 0);
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"\x1a"), 1);
    assert!(t.stopped(fg));
    assert!(!t.stopped(leader));
    t.run_as(leader);
    assert_eq!(t.wait(fg, WUNTRACED), (fg as i64, 0x147f), "WSTOPSIG SIGTSTP");
}

/// A raw slave with VMIN `min` and VTIME `time`, and its master: (master, slave).
fn raw(t: &mut T, min: u8, time: u8) -> (u64, u64) {
    let (m, s, _) = t.session();
    t.termios(s, |b| {
        b[12] &= !0o12; // ICANON, ECHO
        b[17 + 5] = time;
        b[17 + 6] = min;
    });
    (m, s)
}

#[test]
fn vmin_0_vtime_0_returns_at_once() {
    let mut t = T::with_tasks();
    let (_m, s) = raw(&mut t, 0, 0);
    assert_eq!(t.call(READ, &[s, BUF, 10]), 0);
}

#[test]
fn vmin_0_vtime_waits_for_a_byte_or_the_time() {
    let mut t = T::with_tasks();
    let (m, s) = raw(&mut t, 0, 5);
    let tid = t.s.current();
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block);
    let due = t.s.next_deadline().expect("a timeout");
    assert!((due - t.p.now_ns).abs_diff(500_000_000) < 1_000_000, "half a second");
    t.s.expire(due);
    assert!(t.woken(tid, Resume::Retry));
    assert_eq!(t.call(READ, &[s, BUF, 10]), 0, "timed out");
    // A byte that comes first is returned at once.
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block);
    let me = t.s.proc_.pid;
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"ab"), 2);
    t.run_as(me);
    assert!(t.woken(tid, Resume::Retry));
    assert_eq!(t.call(READ, &[s, BUF, 10]), 2);
}

#[test]
fn vmin_and_vtime_time_the_gap_after_the_first_byte() {
    let mut t = T::with_tasks();
    let (m, s) = raw(&mut t, 4, 2);
    let me = t.s.proc_.pid;
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block, "no byte: no timer");
    assert_eq!(t.s.next_deadline(), None);
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"a"), 1);
    let first = t.p.now_ns;
    t.run_as(me);
    t.s.take_events();
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block, "one byte of four");
    let due = t.s.next_deadline().expect("the inter-byte timer");
    assert!(due > first && due - first <= 200_000_000 && due - first > 199_000_000);
    t.p.now_ns = due;
    assert_eq!(t.call(READ, &[s, BUF, 10]), 1, "the gap passed");
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"wxyz!"), 5);
    t.run_as(me);
    assert_eq!(t.call(READ, &[s, BUF, 10]), 5, "MIN came: all there is");
}

#[test]
fn vmin_without_vtime_waits_for_min_bytes() {
    let mut t = T::with_tasks();
    let (m, s) = raw(&mut t, 3, 0);
    let me = t.s.proc_.pid;
    t.run_as(1);
    assert_eq!(t.write_bytes(m, b"ab"), 2);
    t.run_as(me);
    assert_eq!(t.action(READ, &[s, BUF, 10]), Action::Block);
    assert_eq!(t.s.next_deadline(), None);
    assert_eq!(t.call(READ, &[s, BUF, 2]), 2, "or the buffer's size");
}
