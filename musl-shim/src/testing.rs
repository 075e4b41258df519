//! An in-memory platform and a newc cpio writer, for unit tests and the fuzz target.
//!
//! [`FakePlatform`] keeps guest memory in a [`VecMemory`], captures console output,
//! counts time forward on every read, and hands out counter bytes as "entropy".

use crate::errno::{SysResult, EINVAL};
use crate::mem::{GuestMemory, VecMemory};
use crate::platform::{AddressSpace, Clock, ClockId, Console, Entropy, Prot, Timespec};
use alloc::vec::Vec;

#[derive(Debug, Default, Clone)]
pub struct FakePlatform {
    pub mem: VecMemory,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdin: Vec<u8>,
    pub terminal: bool,
    pub now_ns: u64,
    pub slept_ns: u64,
    pub entropy_counter: u8,
    /// Mapped ranges as the platform sees them (start, len, prot).
    pub mapped: Vec<(u64, u64, Prot)>,
    /// Most bytes the fake will map in total (keeps fuzzing bounded).
    pub map_budget: u64,
}

impl FakePlatform {
    pub fn new() -> Self {
        FakePlatform { now_ns: 1_000_000_000, map_budget: 256 << 20, ..Default::default() }
    }
    fn mapped_bytes(&self) -> u64 {
        self.mapped.iter().map(|m| m.1).sum()
    }
}

impl GuestMemory for FakePlatform {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        self.mem.read(addr, buf)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> SysResult<()> {
        self.mem.write(addr, bytes)
    }
}

impl AddressSpace for FakePlatform {
    fn map(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        if start % 4096 != 0 || len % 4096 != 0 || len == 0 || self.mapped_bytes() + len > self.map_budget {
            return Err(EINVAL);
        }
        if self.mapped.iter().any(|&(s, l, _)| s < start + len && start < s + l) {
            return Err(EINVAL);
        }
        self.mem.add(start, len as usize);
        self.mapped.push((start, len, prot));
        Ok(())
    }
    fn unmap(&mut self, start: u64, len: u64) -> SysResult<()> {
        let end = start + len;
        let mut out = Vec::new();
        for &(s, l, p) in &self.mapped {
            let e = s + l;
            if e <= start || s >= end {
                out.push((s, l, p));
                continue;
            }
            if s < start {
                out.push((s, start - s, p));
            }
            if e > end {
                out.push((end, e - end, p));
            }
        }
        self.mapped = out;
        self.mem.remove(start, len);
        Ok(())
    }
    fn protect(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        for m in &mut self.mapped {
            if m.0 < start + len && start < m.0 + m.1 {
                m.2 = prot;
            }
        }
        Ok(())
    }
}

impl Console for FakePlatform {
    fn console_write(&mut self, fd: i32, bytes: &[u8]) -> usize {
        if fd == 2 { &mut self.stderr } else { &mut self.stdout }.extend_from_slice(bytes);
        bytes.len()
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.stdin.len());
        buf[..n].copy_from_slice(&self.stdin[..n]);
        self.stdin.drain(..n);
        n
    }
    fn is_terminal(&self, _fd: i32) -> bool {
        self.terminal
    }
}

impl Clock for FakePlatform {
    fn now(&mut self, clock: ClockId) -> Timespec {
        self.now_ns += 1000;
        match clock {
            ClockId::Realtime => Timespec::from_nanos(1_700_000_000_000_000_000 + self.now_ns),
            _ => Timespec::from_nanos(self.now_ns),
        }
    }
    fn sleep(&mut self, ns: u64) {
        self.now_ns = self.now_ns.saturating_add(ns);
        self.slept_ns = self.slept_ns.saturating_add(ns);
    }
}

impl Entropy for FakePlatform {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.entropy_counter = self.entropy_counter.wrapping_add(1);
            *b = self.entropy_counter;
        }
    }
}

/// One entry of a newc archive.
pub struct CpioEntry<'e> {
    pub name: &'e str,
    pub mode: u32,
    pub ino: u32,
    pub nlink: u32,
    pub data: &'e [u8],
}

/// Writes a newc ("070701") archive with a trailer.
pub fn newc(entries: &[CpioEntry<'_>]) -> Vec<u8> {
    use core::fmt::Write;
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, ino: u32, nlink: u32, data: &[u8]| {
        let mut h = alloc::string::String::new();
        let _ = write!(
            h,
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, nlink, 0, data.len(), 0, 1, 0, 0, name.len() + 1, 0
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for e in entries {
        push(e.name, e.mode, e.ino, e.nlink, e.data);
    }
    push("TRAILER!!!", 0, 0, 1, &[]);
    out
}

/// A small rootfs: /foo.txt, /bin/app, /data with a hardlink pair (data on the second
/// name, as GNU cpio writes it), symlinks (relative, absolute, loop, escaping).
pub fn sample_rootfs() -> Vec<u8> {
    let e = |name, mode, ino, nlink, data| CpioEntry { name, mode, ino, nlink, data };
    newc(&[
        e(".", 0o040755, 1, 2, b""),
        e("foo.txt", 0o100644, 2, 1, b"foo\n"),
        e("bin", 0o040755, 3, 2, b""),
        e("bin/app", 0o100755, 4, 1, b"\x7fELF"),
        e("data", 0o040755, 5, 2, b""),
        e("data/one", 0o100644, 6, 2, b""),
        e("data/two", 0o100644, 6, 2, b"shared\n"),
        e("data/link", 0o120777, 7, 1, b"two"),
        e("data/abs", 0o120777, 8, 1, b"/foo.txt"),
        e("data/loop", 0o120777, 9, 1, b"loop"),
        e("data/up", 0o120777, 10, 1, b"../../../../foo.txt"),
        e("data/dirlink", 0o120777, 11, 1, b"/bin"),
    ])
}
