//! Pseudo-terminals: `/dev/ptmx` (a symlink to `/dev/pts/ptmx`, as a container runtime
//! lays it out) makes a master, `/dev/pts/N` its slave, with Linux's n_tty line discipline
//! between them.
//!
//! A [`Pty`] is shared by its ends ([`PtyFile`]s). What the master writes is the slave's
//! input: `ICRNL`/`INLCR`/`IGNCR`, in canonical mode line editing (`VERASE`, `VWERASE`,
//! `VKILL`, `VEOF`, `VEOL`), `ECHO` (with `ECHOE`, `ECHOK`, `ECHOKE`, `ECHOCTL`, `ECHONL`)
//! back to the master, and with `ISIG` `VINTR`, `VQUIT` and `VSUSP` signal the foreground
//! process group. What the slave writes reaches the master through `OPOST` (`ONLCR`,
//! `OCRNL`). The slave opens only once unlocked (`TIOCSPTLCK`; `EIO` before). When the
//! slave is closed by all, the master reads `EIO` once drained; when the master closes,
//! the slave hangs up (reads 0, writes and ioctls `EIO`), its /dev/pts entry goes, and the
//! session leader of the session it controlled gets SIGHUP and SIGCONT.
//!
//! Sessions: a pty is the controlling terminal of at most one session (`TIOCSCTTY`, or
//! the first open of the slave without `O_NOCTTY` by a session leader that has none),
//! with a foreground process group (`TIOCSPGRP`). When the session leader ends, the group
//! in the foreground gets SIGHUP and the pty controls no session. The signals the line
//! discipline raises wait in the pty until [`settle`] (after every syscall) sends them.
//!
//! Job control ([`gate`], before a read, write or ioctl of a slave): a process whose
//! group is not the foreground group of its controlling terminal that reads it sends
//! SIGTTIN to its group, and one that writes it with `TOSTOP` set, or changes it
//! (tcsetattr, tcsetpgrp, tcflush, tcflow, tcdrain), sends SIGTTOU; the default action
//! stops the group ([`crate::jobctl`]) and the call runs again once it is continued; with
//! a handler it fails with `EINTR`. A read with SIGTTIN ignored or blocked, or any of
//! these from an orphaned group, gives `EIO` (`ENOTTY` for tcsetpgrp); a write or change
//! with SIGTTOU ignored or blocked goes ahead. `VSUSP` (^Z) stops the foreground group
//! through SIGTSTP.
//!
//! Non-canonical reads follow VMIN and VTIME as POSIX says: MIN>0 TIME=0 waits for MIN
//! bytes (or the buffer's size); MIN>0 TIME>0 waits for a first byte, then returns once
//! MIN have come or TIME tenths of a second passed since the last one came; MIN=0 TIME>0
//! returns what comes first, or 0 after TIME; MIN=0 TIME=0 returns what there is.
//! Not modelled: packet mode.

use crate::errno::*;
use crate::fd::{new_entry, Cx, FileObject, O_ACCMODE, O_APPEND, O_CLOEXEC, O_NOCTTY, O_NONBLOCK};
use crate::pipe::{bump, IoGen, POLLERR, POLLHUP, POLLIN, POLLOUT};
use crate::platform::Platform;
use crate::stat::{makedev, Stat};
use crate::sys::Outcome;
use crate::task::Pid;
use crate::vfs::{Dev, Found, Fs, Ino, Kind, Vfs, ROOT, S_IFCHR};
use crate::Shim;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;
use core::cell::RefCell;

/// Most ptys an app may have at once (Linux's kernel.pty.max is 4096).
pub const MAX_PTYS: u32 = 256;
/// Bytes queued each way before a writer waits.
pub const PTY_CAPACITY: usize = 16 * 1024;
/// Most bytes waiting for the master: what the slave wrote (room is checked against
/// [`PTY_CAPACITY`] before ONLCR may double it) plus echo, which is dropped past this, as
/// Linux drops echo that finds no room.
const OUTPUT_MAX: usize = 2 * PTY_CAPACITY + 64;
/// Longest canonical line (N_TTY_BUF_SIZE - 1): past it only a line end is taken.
const MAX_CANON: usize = 4095;
/// The slaves' major (UNIX98_PTY_SLAVE_MAJOR).
pub const PTS_MAJOR: u32 = 136;

// termios flags (asm-generic/termbits.h).
const IGNCR: u32 = 0o200;
const ICRNL: u32 = 0o400;
const INLCR: u32 = 0o100;
const IXON: u32 = 0o2000;
const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;
const OCRNL: u32 = 0o10;
const ISIG: u32 = 0o1;
const TOSTOP: u32 = 0o400;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100000;
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VTIME: usize = 5;
const VMIN: usize = 6;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VWERASE: usize = 14;
const VEOL2: usize = 16;

// ioctls.
const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TCFLSH: u64 = 0x540b;
const TIOCEXCL: u64 = 0x540c;
const TIOCNXCL: u64 = 0x540d;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCOUTQ: u64 = 0x5411;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
pub const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGETD: u64 = 0x5424;
const TIOCGSID: u64 = 0x5429;
const TIOCGPTN: u64 = 0x8004_5430;
const TIOCSPTLCK: u64 = 0x4004_5431;
const TIOCGPTLCK: u64 = 0x8004_5439;

const SIGHUP: u64 = 1;
const SIGINT: u64 = 2;
const SIGQUIT: u64 = 3;
const SIGCONT: u64 = 18;
const SIGTSTP: u64 = 20;
const SIGWINCH: u64 = 28;

/// The kernel's `struct termios` (36 bytes on aarch64: no speeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Termios {
    /// What a new pty's slave has (tty_std_termios with the pty driver's c_cflag):
    /// ICRNL|IXON, OPOST|ONLCR, B38400|CS8|CREAD, ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|
    /// ECHOKE|IEXTEN, and ^C ^\ ^? ^U ^D, VMIN 1, ^Q ^S ^Z ^R ^O ^W ^V.
    pub fn standard() -> Termios {
        let mut cc = [0u8; 19];
        cc[..16].copy_from_slice(&[3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22]);
        Termios { iflag: ICRNL | IXON, oflag: OPOST | ONLCR, cflag: 0o277, lflag: 0x8a3b, line: 0, cc }
    }
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        for (i, w) in [self.iflag, self.oflag, self.cflag, self.lflag].iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        b[16] = self.line;
        b[17..].copy_from_slice(&self.cc);
        b
    }
    pub fn from_bytes(b: &[u8; 36]) -> Termios {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&b[17..]);
        Termios { iflag: w(0), oflag: w(4), cflag: w(8), lflag: w(12), line: b[16], cc }
    }
    /// Whether `c` is the special character `i` (0 disables one).
    fn is(&self, i: usize, c: u8) -> bool {
        self.cc[i] != 0 && self.cc[i] == c
    }
}

/// One pty: the slave's termios and queues, shared by every open end.
pub struct Pty {
    pub index: u32,
    pub termios: Termios,
    /// rows, cols, xpixel, ypixel.
    pub winsize: [u16; 4],
    /// Locked until `TIOCSPTLCK` with 0 (unlockpt).
    pub locked: bool,
    /// Bytes the slave may read; in canonical mode, in lines whose lengths are `lines`
    /// (0: an end of file).
    input: VecDeque<u8>,
    lines: VecDeque<usize>,
    /// The canonical line being edited, each byte with whether it echoed as `^X`.
    edit: Vec<(u8, bool)>,
    /// Bytes the master may read (the slave's output and the echo).
    output: VecDeque<u8>,
    masters: usize,
    slaves: usize,
    /// The slave was open and all its files closed since (the master then reads EIO).
    slave_closed: bool,
    /// The master is gone: the slave is hung up.
    hung_up: bool,
    /// The session it controls, and that session's foreground process group.
    pub session: Option<Pid>,
    pub pgrp: Option<Pid>,
    /// Signals raised and not yet sent: (kill's pid argument, signal).
    signals: Vec<(i64, u64)>,
    /// The owner of the slave's node (the opener of the master).
    owner: (u32, u32),
    /// Monotonic ns when the master last wrote (VTIME's inter-byte timer).
    last_input: u64,
    gen: IoGen,
}

/// The app's ptys, by index, with whether /dev/pts holds their slave's node.
#[derive(Default)]
pub struct Ptys {
    list: Vec<(u32, Weak<RefCell<Pty>>, bool)>,
}

impl Ptys {
    /// Whether the app has never had a pty (or all are gone).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    fn find(&self, index: u32) -> Option<Rc<RefCell<Pty>>> {
        self.list.iter().find(|e| e.0 == index).and_then(|e| e.1.upgrade())
    }
    fn live(&self) -> impl Iterator<Item = Rc<RefCell<Pty>>> + '_ {
        self.list.iter().filter_map(|e| e.1.upgrade())
    }
}

impl Pty {
    fn readable_len(&self) -> usize {
        if self.canonical() {
            self.lines.iter().sum()
        } else {
            self.input.len()
        }
    }
    fn canonical(&self) -> bool {
        self.termios.lflag & ICANON != 0
    }
    /// Bytes a non-canonical read waits for: VMIN (up to `want`) without a VTIME, else one.
    fn raw_need(&self, want: usize) -> usize {
        let min = usize::from(self.termios.cc[VMIN]);
        if self.termios.cc[VTIME] == 0 { min.min(want).max(1) } else { 1 }
    }
    fn slave_ready(&self) -> bool {
        if self.canonical() {
            !self.lines.is_empty()
        } else {
            !self.input.is_empty() && self.input.len() >= self.raw_need(usize::MAX)
        }
    }
    /// Queues bytes for the master (echo past [`OUTPUT_MAX`] is dropped).
    fn emit(&mut self, bytes: &[u8]) {
        if self.output.len() + bytes.len() <= OUTPUT_MAX {
            self.output.extend(bytes);
        }
    }
    /// A byte out through OPOST.
    fn put_out(&mut self, c: u8) {
        let t = self.termios;
        if t.oflag & OPOST != 0 {
            if c == b'\n' && t.oflag & ONLCR != 0 {
                return self.emit(b"\r\n");
            }
            if c == b'\r' && t.oflag & OCRNL != 0 {
                return self.emit(b"\n");
            }
        }
        self.emit(&[c]);
    }
    /// Queues a signal for [`settle`] (once per kind per syscall).
    fn raise(&mut self, target: i64, sig: u64) {
        if !self.signals.contains(&(target, sig)) {
            self.signals.push((target, sig));
        }
    }
    /// Echoes `c`: a control character other than tab and newline as `^X` with ECHOCTL.
    /// Returns whether it took two columns.
    fn echo(&mut self, c: u8) -> bool {
        let ctl = self.termios.lflag & ECHOCTL != 0 && (c < 32 || c == 127) && c != b'\t';
        if ctl {
            self.emit(&[b'^', c ^ 0x40]);
        } else {
            self.put_out(c);
        }
        ctl
    }
    /// Removes the last edited character, echoing its erasure.
    fn erase_one(&mut self) -> bool {
        let Some((_, wide)) = self.edit.pop() else { return false };
        if self.termios.lflag & ECHO != 0 {
            for _ in 0..if wide { 2 } else { 1 } {
                self.emit(b"\x08 \x08");
            }
        }
        true
    }
    /// Ends the edited line (`end`: the line-end byte it keeps; none for VEOF).
    fn push_line(&mut self, end: Option<u8>) {
        let mut n = self.edit.len();
        self.input.extend(self.edit.drain(..).map(|(c, _)| c));
        if let Some(c) = end {
            self.input.push_back(c);
            n += 1;
        }
        self.lines.push_back(n);
    }
    fn flush_input(&mut self) {
        self.input.clear();
        self.lines.clear();
        self.edit.clear();
    }
    /// The line discipline: one byte the master wrote.
    fn receive(&mut self, mut c: u8) {
        let t = self.termios;
        let echo = t.lflag & ECHO != 0;
        if t.lflag & ISIG != 0 {
            let sig = if t.is(VINTR, c) {
                Some(SIGINT)
            } else if t.is(VQUIT, c) {
                Some(SIGQUIT)
            } else if t.is(VSUSP, c) {
                Some(SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                if let Some(g) = self.pgrp {
                    self.raise(-i64::from(g), sig);
                }
                if t.lflag & NOFLSH == 0 {
                    self.flush_input();
                }
                if echo {
                    self.echo(c);
                }
                return;
            }
        }
        if c == b'\r' {
            if t.iflag & IGNCR != 0 {
                return;
            }
            if t.iflag & ICRNL != 0 {
                c = b'\n';
            }
        } else if c == b'\n' && t.iflag & INLCR != 0 {
            c = b'\r';
        }
        if !self.canonical() {
            self.input.push_back(c);
            if echo {
                self.echo(c);
            } else if c == b'\n' && t.lflag & ECHONL != 0 {
                self.put_out(c);
            }
            return;
        }
        if t.is(VERASE, c) || t.is(VKILL, c) || (t.lflag & IEXTEN != 0 && t.is(VWERASE, c)) {
            if self.edit.is_empty() {
                return;
            }
            if t.is(VERASE, c) {
                if t.lflag & ECHOE != 0 || !echo {
                    self.erase_one();
                } else {
                    self.edit.pop();
                    self.echo(c);
                }
            } else if t.is(VKILL, c) {
                if echo && (t.lflag & ECHOKE == 0 || t.lflag & ECHOE == 0) {
                    self.edit.clear();
                    self.echo(c);
                    if t.lflag & ECHOK != 0 {
                        self.put_out(b'\n');
                    }
                } else {
                    while self.erase_one() {}
                }
            } else {
                // VWERASE: the blanks before the cursor, then the word.
                while self.edit.last().is_some_and(|e| e.0 == b' ' || e.0 == b'\t') {
                    self.erase_one();
                }
                while self.edit.last().is_some_and(|e| e.0 != b' ' && e.0 != b'\t') {
                    self.erase_one();
                }
            }
            return;
        }
        if t.is(VEOF, c) {
            self.push_line(None);
            return;
        }
        if c == b'\n' || t.is(VEOL, c) || t.is(VEOL2, c) {
            if c == b'\n' {
                if echo || t.lflag & ECHONL != 0 {
                    self.put_out(b'\n');
                }
            } else if echo {
                self.echo(c);
            }
            self.push_line(Some(c));
            return;
        }
        if self.edit.len() >= MAX_CANON {
            return;
        }
        let wide = echo && self.echo(c);
        self.edit.push((c, wide));
    }
    /// Switches canonical mode off (the edited line becomes input) or on.
    fn set_termios(&mut self, new: Termios) {
        let was = self.canonical();
        self.termios = new;
        if was && !self.canonical() {
            self.input.extend(self.edit.drain(..).map(|(c, _)| c));
            self.lines.clear();
        } else if !was && self.canonical() {
            let pending: Vec<(u8, bool)> = self.input.drain(..).map(|c| (c, false)).collect();
            self.edit.splice(0..0, pending);
        }
    }
}

/// An open end of a pty.
pub struct PtyFile {
    pty: Rc<RefCell<Pty>>,
    master: bool,
    /// The node it was opened by (for fstat and *at).
    ino: Ino,
}

/// What an ioctl needs of a pty end.
pub struct End {
    pub pty: Rc<RefCell<Pty>>,
    pub master: bool,
}

impl PtyFile {
    fn new(pty: Rc<RefCell<Pty>>, master: bool, ino: Ino) -> PtyFile {
        {
            let mut p = pty.borrow_mut();
            if master {
                p.masters += 1;
            } else {
                p.slaves += 1;
                p.slave_closed = false;
            }
            bump(&p.gen);
        }
        PtyFile { pty, master, ino }
    }
}

impl Drop for PtyFile {
    fn drop(&mut self) {
        let mut p = self.pty.borrow_mut();
        if self.master {
            p.masters -= 1;
            if p.masters == 0 {
                // tty_vhangup of the slave: its session's leader is told.
                p.hung_up = true;
                if let Some(sid) = p.session.take() {
                    p.signals.push((i64::from(sid), SIGHUP));
                    p.signals.push((i64::from(sid), SIGCONT));
                }
                p.pgrp = None;
            }
        } else {
            p.slaves -= 1;
            if p.slaves == 0 {
                p.slave_closed = true;
            }
        }
        bump(&p.gen);
    }
}

impl<'a> FileObject<'a> for PtyFile {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let mut p = self.pty.borrow_mut();
        if self.master {
            if p.output.is_empty() {
                return if p.slave_closed { Err(EIO) } else if buf.is_empty() { Ok(0) } else { Err(EBLOCK) };
            }
            let n = buf.len().min(p.output.len());
            for (d, s) in buf[..n].iter_mut().zip(p.output.drain(..n)) {
                *d = s;
            }
            bump(&p.gen);
            return Ok(n);
        }
        if p.hung_up {
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = if p.canonical() {
            let Some(&line) = p.lines.front() else { return Err(EBLOCK) };
            let n = line.min(buf.len());
            if n == line {
                p.lines.pop_front();
            } else if let Some(l) = p.lines.front_mut() {
                *l -= n;
            }
            n
        } else {
            // VMIN 0 reads what there is at once (a VTIME wait is not kept).
            if p.termios.cc[VMIN] != 0 && p.input.len() < p.raw_need(buf.len()) {
                return Err(EBLOCK);
            }
            buf.len().min(p.input.len())
        };
        for (d, s) in buf[..n].iter_mut().zip(p.input.drain(..n)) {
            *d = s;
        }
        bump(&p.gen);
        Ok(n)
    }
    fn write(&mut self, cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        let mut p = self.pty.borrow_mut();
        if buf.is_empty() {
            return Ok(0);
        }
        let n = if self.master {
            p.last_input = cx.now;
            let room = PTY_CAPACITY.saturating_sub(p.input.len() + p.edit.len() + p.lines.len());
            if room == 0 {
                return Err(EBLOCK);
            }
            let n = buf.len().min(room);
            for &c in &buf[..n] {
                p.receive(c);
            }
            n
        } else {
            if p.hung_up {
                return Err(EIO);
            }
            let room = PTY_CAPACITY.saturating_sub(p.output.len());
            if room == 0 {
                return Err(EBLOCK);
            }
            let n = buf.len().min(room);
            for &c in &buf[..n] {
                p.put_out(c);
            }
            n
        };
        bump(&p.gen);
        Ok(n)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        let p = self.pty.borrow();
        // The node it was opened by while it still names it (ttyname compares the two).
        let own = if self.master { Dev::Ptmx } else { Dev::Pts(p.index) };
        if matches!(cx.vfs.node(self.ino).kind, Kind::Dev(d) if d == own || d == Dev::Tty) {
            return Ok(Stat::of_node(cx.vfs, self.ino));
        }
        let (perm, rdev, owner) = if self.master {
            (0o666, makedev(5, 2), (0, 0))
        } else {
            (0o620, makedev(PTS_MAJOR + p.index / 256, p.index % 256), p.owner)
        };
        let mut st = Stat::synthetic(S_IFCHR | perm, u64::from(p.index) + if self.master { 2 } else { 3 }, crate::stat::ROOTFS_DEV + Fs::Devpts as u64);
        st.rdev = rdev;
        st.uid = owner.0;
        st.gid = owner.1;
        st.blksize = 1024;
        Ok(st)
    }
    fn is_terminal(&self, _cx: &Cx<'_, 'a>) -> bool {
        self.master || !self.pty.borrow().hung_up
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        let p = self.pty.borrow();
        if self.master {
            let mut r = 0;
            if !p.output.is_empty() {
                r |= POLLIN;
            }
            if p.slave_closed {
                r |= POLLHUP;
            }
            if p.input.len() + p.edit.len() + p.lines.len() < PTY_CAPACITY {
                r |= POLLOUT;
            }
            return r;
        }
        if p.hung_up {
            return POLLIN | POLLOUT | POLLERR | POLLHUP;
        }
        let mut r = 0;
        if p.slave_ready() {
            r |= POLLIN;
        }
        if p.output.len() < PTY_CAPACITY {
            r |= POLLOUT;
        }
        r
    }
    fn fionread(&self) -> Option<usize> {
        let p = self.pty.borrow();
        Some(if self.master { p.output.len() } else { p.readable_len() })
    }
    fn pty(&self) -> Option<End> {
        Some(End { pty: self.pty.clone(), master: self.master })
    }
}

/// The /dev/pts directory.
fn pts_dir(vfs: &Vfs<'_>) -> Option<Ino> {
    match vfs.resolve(ROOT, b"/dev/pts", false) {
        Ok(Found::Node(d)) if vfs.node(d).fs == Fs::Devpts => Some(d),
        _ => None,
    }
}

/// Adds /dev/pts (devpts, with its `ptmx`) and the /dev/ptmx link to it, over what the
/// image has there.
pub fn add_devpts(vfs: &mut Vfs<'_>, dev: Ino) {
    let pts = vfs.ensure_dir(dev, b"pts", Fs::Devpts);
    vfs.empty_dir(pts);
    vfs.replace(pts, b"ptmx", Kind::Dev(Dev::Ptmx), 0o666, Fs::Devpts);
    vfs.replace(dev, b"ptmx", Kind::Symlink(b"pts/ptmx".to_vec()), 0o777, Fs::Dev);
}

/// The pty whose controlling session is the current process's, if any.
fn ctty_of(s: &Shim<'_>) -> Option<Rc<RefCell<Pty>>> {
    let sid = my_ids(s).1;
    s.ptys.live().find(|p| p.borrow().session == Some(sid))
}

/// (pgid, sid) of the current process.
fn my_ids(s: &Shim<'_>) -> (Pid, Pid) {
    let pid = s.proc_.pid;
    s.tasks.procs.get(&pid).map_or((pid, pid), |p| (p.pgid, p.sid))
}

/// Makes `pty` the controlling terminal of the current process's session.
fn set_ctty(s: &Shim<'_>, pty: &Rc<RefCell<Pty>>) {
    let (pgid, sid) = my_ids(s);
    let mut p = pty.borrow_mut();
    p.session = Some(sid);
    p.pgrp = Some(pgid);
}

/// openat of /dev/pts/ptmx (a new pty's master), /dev/pts/N (its slave) or, for a
/// process whose session has a pty as controlling terminal, /dev/tty (that slave).
/// `None`: not a pty (the console's /dev/tty).
pub fn open<E: Platform>(s: &mut Shim<'_>, _env: &mut E, dev: Dev, ino: Ino, flags: u32) -> Option<SysResult<u64>> {
    let (pty, master) = match dev {
        Dev::Ptmx => match new_pty(s) {
            Ok(p) => (p, true),
            Err(e) => return Some(Err(e)),
        },
        Dev::Pts(n) => match s.ptys.find(n) {
            Some(p) if p.borrow().hung_up => return Some(Err(EIO)),
            Some(p) if p.borrow().locked => return Some(Err(EIO)),
            Some(p) => (p, false),
            None => return Some(Err(EIO)),
        },
        Dev::Tty => (ctty_of(s)?, false),
        _ => return None,
    };
    if !master && dev != Dev::Tty && flags & O_NOCTTY == 0 {
        let (pid, sid) = (s.proc_.pid, my_ids(s).1);
        if pid == sid && ctty_of(s).is_none() && pty.borrow().session.is_none() {
            set_ctty(s, &pty);
        }
    }
    let file = PtyFile::new(pty, master, ino);
    let status = flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    Some(s.fds.install(new_entry(Box::new(file), status), 0).map(|v| v as u64))
}

/// A new pty at the lowest free index, with its /dev/pts node.
fn new_pty(s: &mut Shim<'_>) -> SysResult<Rc<RefCell<Pty>>> {
    s.ptys.list.retain(|e| e.1.strong_count() > 0);
    let index = (0..MAX_PTYS).find(|i| !s.ptys.list.iter().any(|e| e.0 == *i)).ok_or(ENOSPC)?;
    let pty = Rc::new(RefCell::new(Pty {
        index,
        termios: Termios::standard(),
        winsize: [0; 4],
        locked: true,
        input: VecDeque::new(),
        lines: VecDeque::new(),
        edit: Vec::new(),
        output: VecDeque::new(),
        masters: 0,
        slaves: 0,
        slave_closed: false,
        hung_up: false,
        session: None,
        pgrp: None,
        signals: Vec::new(),
        owner: (s.proc_.uid, 5),
        last_input: 0,
        gen: s.tasks.io_gen.clone(),
    }));
    s.ptys.list.push((index, Rc::downgrade(&pty), false));
    sync_nodes(s);
    Ok(pty)
}

/// Makes /dev/pts list the ptys whose master is open.
fn sync_nodes(s: &mut Shim<'_>) {
    let Some(dir) = pts_dir(&s.vfs) else { return };
    for e in s.ptys.list.iter_mut() {
        let want = e.1.upgrade().is_some_and(|p| !p.borrow().hung_up);
        if want == e.2 {
            continue;
        }
        let name = alloc::format!("{}", e.0);
        if want {
            let owner = e.1.upgrade().map_or((0, 0), |p| p.borrow().owner);
            s.vfs.replace(dir, name.as_bytes(), Kind::Dev(Dev::Pts(e.0)), 0o620, Fs::Devpts);
            if let Some(&ino) = s.vfs.dir_entries(dir).and_then(|m| m.get(name.as_bytes())) {
                let n = s.vfs.node_mut(ino);
                (n.uid, n.gid) = owner;
            }
        } else {
            s.vfs.remove_tree(dir, name.as_bytes());
        }
        e.2 = want;
    }
    s.ptys.list.retain(|e| e.2 || e.1.strong_count() > 0);
}

/// After every syscall: sends the signals the ptys raised, hangs up the terminals whose
/// session leader has ended (SIGHUP to their foreground group), and brings /dev/pts up
/// to date. Returns the signal that ends the current process, if one does.
pub fn settle(s: &mut Shim<'_>) -> Option<i32> {
    if s.ptys.list.is_empty() {
        return None;
    }
    let mut signals = Vec::new();
    for pty in s.ptys.live() {
        let mut p = pty.borrow_mut();
        if let Some(sid) = p.session {
            let leader_gone = s.tasks.procs.get(&sid).is_none_or(|q| q.ended.is_some());
            if leader_gone {
                if let Some(g) = p.pgrp {
                    p.signals.push((-i64::from(g), SIGHUP));
                }
                p.session = None;
                p.pgrp = None;
            }
        }
        signals.append(&mut p.signals);
    }
    let stale = s.ptys.list.iter().any(|e| e.2 != e.1.upgrade().is_some_and(|p| !p.borrow().hung_up) || e.1.strong_count() == 0);
    if stale {
        sync_nodes(s);
    }
    let mut killed = None;
    for (target, sig) in signals {
        if let crate::sys::Outcome::Killed(k) = crate::sys::signal::kill(s, target, sig) {
            killed = Some(k);
        }
    }
    killed
}

/// Before a read, write or ioctl: job control for a process of a background group on
/// its controlling terminal, then the VMIN/VTIME timers of a non-canonical read of a
/// slave. `None`: the call goes on as usual.
pub fn gate<E: Platform>(s: &mut Shim<'_>, env: &mut E, nr: u64, a: [u64; 6]) -> Option<Outcome> {
    use crate::sys::nr::{IOCTL, READ, READV, WRITE, WRITEV};
    if s.ptys.list.is_empty() || !matches!(nr, READ | READV | WRITE | WRITEV | IOCTL) {
        return None;
    }
    let (end, nonblock) = {
        let f = s.fds.get(a[0] as i32 as i64).ok()?.file.borrow();
        (f.obj.pty()?, f.flags & O_NONBLOCK != 0)
    };
    if end.master {
        return None;
    }
    let sig = match nr {
        READ | READV => Some(crate::jobctl::SIGTTIN),
        WRITE | WRITEV if end.pty.borrow().termios.lflag & TOSTOP != 0 => Some(crate::jobctl::SIGTTOU),
        IOCTL if changes_terminal(a[1]) => Some(crate::jobctl::SIGTTOU),
        _ => None,
    };
    if let Some(o) = sig.and_then(|sig| background(s, &end.pty, sig)) {
        // tcsetpgrp says ENOTTY where the others say EIO.
        return Some(match o {
            Outcome::Ret(Err(EIO)) if nr == IOCTL && a[1] == TIOCSPGRP => Outcome::Ret(Err(ENOTTY)),
            o => o,
        });
    }
    if nr == READ {
        return timed_read(s, env, &end.pty, a[2], nonblock);
    }
    None
}

/// The ioctls that change a terminal, which a background group may not make.
fn changes_terminal(cmd: u64) -> bool {
    matches!(cmd, TCSETS | TCSETSW | TCSETSF | TCFLSH | TCXONC | TCSBRK | TIOCSPGRP)
}

/// Linux's tty_check_change: a process not in the foreground group of `pty`, its
/// controlling terminal, signals its group with `sig` (and the call runs again once the
/// group is continued, or fails with EINTR for a handler), or fails with EIO when its
/// group is orphaned or (SIGTTIN) it ignores or blocks the signal. `None`: go ahead.
fn background(s: &mut Shim<'_>, pty: &Rc<RefCell<Pty>>, sig: u64) -> Option<Outcome> {
    if !ctty_of(s).is_some_and(|c| Rc::ptr_eq(&c, pty)) {
        return None;
    }
    let pgid = my_ids(s).0;
    if pty.borrow().pgrp.is_none_or(|fg| fg == pgid) {
        return None;
    }
    let i = (sig - 1) as usize;
    if s.proc_.sigmask & (1 << i) != 0 || s.proc_.sigactions[i][0] == 1 {
        return (sig == crate::jobctl::SIGTTIN).then_some(Outcome::Ret(Err(EIO)));
    }
    if crate::jobctl::orphaned(s, pgid) {
        return Some(Outcome::Ret(Err(EIO)));
    }
    if let Outcome::Killed(k) = crate::sys::signal::kill(s, -i64::from(pgid), sig) {
        return Some(Outcome::Killed(k));
    }
    if crate::jobctl::park_if_stopped(s, None) {
        return Some(Outcome::Action(crate::Action::Block));
    }
    Some(Outcome::Ret(Err(EINTR)))
}

/// The VTIME part of a non-canonical read of `pty` (see the module's docs); `None` when
/// the read goes on as usual (it has what it waits for, or there is no timer).
fn timed_read<E: Platform>(s: &mut Shim<'_>, env: &mut E, pty: &Rc<RefCell<Pty>>, len: u64, nonblock: bool) -> Option<Outcome> {
    let (time, min, avail, last) = {
        let p = pty.borrow();
        if p.canonical() || p.hung_up || p.termios.cc[VTIME] == 0 || len == 0 {
            return None;
        }
        (u64::from(p.termios.cc[VTIME]) * 100_000_000, usize::from(p.termios.cc[VMIN]), p.input.len(), p.last_input)
    };
    let now = env.now(crate::platform::ClockId::Monotonic).as_nanos();
    let wait = |s: &mut Shim<'_>, deadline| {
        s.block_on_io(Some(deadline));
        Some(Outcome::Action(crate::Action::Block))
    };
    if min == 0 {
        // What comes first, or 0 once TIME has passed since the call began.
        let timed_out = s.tasks.take_timed_out(s.tasks.cur);
        return match () {
            _ if avail > 0 => None,
            _ if timed_out || !s.tasks.enabled => Some(Outcome::Ret(Ok(0))),
            _ if nonblock => Some(Outcome::Ret(Err(EAGAIN))),
            _ => wait(s, (now.saturating_add(time), crate::task::TIMED_OUT_RETRY)),
        };
    }
    // MIN bytes, or what came before TIME passed since the last byte (after a first one).
    let need = min.min(usize::try_from(len).unwrap_or(usize::MAX));
    let due = last.saturating_add(time);
    if avail == 0 || avail >= need || nonblock || !s.tasks.enabled || now >= due {
        return None;
    }
    wait(s, (due, crate::task::RETRY))
}

fn put<E: Platform>(env: &mut E, at: u64, v: u32) -> SysResult<u64> {
    env.write_u32(at, v)?;
    Ok(0)
}

/// The ioctls of a pty end (on the master, the terminal ones act on its slave, as Linux's
/// do): termios, window size, controlling terminal and foreground group, pty number and
/// lock, queue sizes.
pub fn ioctl<E: Platform>(s: &mut Shim<'_>, env: &mut E, end: &End, readable: bool, a: [u64; 6]) -> SysResult<u64> {
    let (cmd, arg) = (a[1], a[2]);
    if !end.master && end.pty.borrow().hung_up {
        return Err(if cmd == TIOCSPGRP { ENOTTY } else { EIO });
    }
    let mine = ctty_of(s).is_some_and(|c| Rc::ptr_eq(&c, &end.pty));
    match cmd {
        TCGETS => {
            let t = end.pty.borrow().termios;
            env.write(arg, &t.to_bytes())?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF => {
            let mut b = [0u8; 36];
            env.read(arg, &mut b)?;
            let mut p = end.pty.borrow_mut();
            if cmd == TCSETSF {
                p.flush_input();
            }
            p.set_termios(Termios::from_bytes(&b));
            bump(&p.gen);
            Ok(0)
        }
        TCSBRK | TCXONC | TIOCEXCL | TIOCNXCL => Ok(0),
        TCFLSH => {
            let mut p = end.pty.borrow_mut();
            // TCIFLUSH 0, TCOFLUSH 1, TCIOFLUSH 2: this end's input, output or both.
            let (inq, outq) = match arg {
                0 => (true, false),
                1 => (false, true),
                2 => (true, true),
                _ => return Err(EINVAL),
            };
            let (flush_slave_in, flush_master_in) = if end.master { (outq, inq) } else { (inq, outq) };
            if flush_slave_in {
                p.flush_input();
            }
            if flush_master_in {
                p.output.clear();
            }
            bump(&p.gen);
            Ok(0)
        }
        TIOCGWINSZ => {
            let w = end.pty.borrow().winsize;
            let mut b = [0u8; 8];
            for (i, v) in w.iter().enumerate() {
                b[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
            }
            env.write(arg, &b)?;
            Ok(0)
        }
        TIOCSWINSZ => {
            let mut b = [0u8; 8];
            env.read(arg, &mut b)?;
            let w = [0, 1, 2, 3].map(|i| u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]));
            let mut p = end.pty.borrow_mut();
            if p.winsize != w {
                p.winsize = w;
                if let Some(g) = p.pgrp {
                    p.raise(-i64::from(g), SIGWINCH);
                }
            }
            Ok(0)
        }
        FIONREAD => {
            let n = {
                let p = end.pty.borrow();
                if end.master { p.output.len() } else { p.readable_len() }
            };
            put(env, arg, n as u32)
        }
        TIOCOUTQ => {
            let p = end.pty.borrow();
            let n = if end.master { p.input.len() + p.edit.len() } else { p.output.len() };
            drop(p);
            put(env, arg, n as u32)
        }
        TIOCGETD => put(env, arg, 0),
        TIOCGPTN | TIOCSPTLCK | TIOCGPTLCK if !end.master => Err(ENOTTY),
        TIOCGPTN => {
            let n = end.pty.borrow().index;
            put(env, arg, n)
        }
        TIOCSPTLCK => {
            let v = env.read_u32(arg)?;
            end.pty.borrow_mut().locked = v != 0;
            Ok(0)
        }
        TIOCGPTLCK => {
            let v = end.pty.borrow().locked;
            put(env, arg, u32::from(v))
        }
        TIOCSCTTY => {
            let pid = s.proc_.pid;
            let (_, sid) = my_ids(s);
            if pid == sid && mine {
                return Ok(0);
            }
            if pid != sid || ctty_of(s).is_some() {
                return Err(EPERM);
            }
            if !readable && s.proc_.uid != 0 {
                return Err(EPERM);
            }
            // Stealing it from another session: root only, with arg 1.
            if end.pty.borrow().session.is_some() && (arg != 1 || s.proc_.uid != 0) {
                return Err(EPERM);
            }
            set_ctty(s, &end.pty);
            Ok(0)
        }
        TIOCNOTTY => {
            if !mine {
                return Err(ENOTTY);
            }
            let (pid, sid) = (s.proc_.pid, my_ids(s).1);
            if pid == sid {
                // The session leader gives it up: its foreground group is hung up.
                let mut p = end.pty.borrow_mut();
                if let Some(g) = p.pgrp {
                    p.signals.push((-i64::from(g), SIGHUP));
                    p.signals.push((-i64::from(g), SIGCONT));
                }
                p.session = None;
                p.pgrp = None;
            }
            Ok(0)
        }
        TIOCGPGRP => {
            if !end.master && !mine {
                return Err(ENOTTY);
            }
            let g = end.pty.borrow().pgrp.unwrap_or(0);
            put(env, arg, g)
        }
        TIOCGSID => {
            if !end.master && !mine {
                return Err(ENOTTY);
            }
            let sid = end.pty.borrow().session.ok_or(ENOTTY)?;
            put(env, arg, sid)
        }
        TIOCSPGRP => {
            if !mine {
                return Err(ENOTTY);
            }
            let g = env.read_u32(arg)? as i32;
            if g < 0 {
                return Err(EINVAL);
            }
            let sid = my_ids(s).1;
            let g = g as u32;
            let group: Vec<Pid> = s.tasks.procs.iter().filter(|(_, p)| p.pgid == g && p.ended.is_none()).map(|(&k, _)| k).collect();
            if group.is_empty() {
                return Err(ESRCH);
            }
            if s.tasks.procs.iter().any(|(_, p)| p.pgid == g && p.ended.is_none() && p.sid != sid) {
                return Err(EPERM);
            }
            end.pty.borrow_mut().pgrp = Some(g);
            Ok(0)
        }
        _ => Err(ENOTTY),
    }
}
