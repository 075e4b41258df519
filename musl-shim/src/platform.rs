//! What the shim needs from whoever runs the app: console, clock, entropy and the address
//! space. The emulator implements these over the host and unicorn; the seL4 root server
//! over the serial console, a timer and frames it maps (possibly lazily).

use crate::errno::SysResult;
use crate::mem::GuestMemory;

/// Page protections, as in `mmap(2)`'s `PROT_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prot(pub u32);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    pub const RW: Prot = Prot(3);
    pub fn r(self) -> bool {
        self.0 & Self::READ != 0
    }
    pub fn w(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    pub fn x(self) -> bool {
        self.0 & Self::EXEC != 0
    }
}

/// The app's standard streams.
pub trait Console {
    /// Writes to fd 1 (stdout) or 2 (stderr); returns the bytes taken.
    fn console_write(&mut self, fd: i32, bytes: &[u8]) -> usize;
    /// Reads from the console (fd 0); 0 is end of input. Defaults to no input at all,
    /// as `docker run` without `-i`.
    fn console_read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
    /// Whether fd 0, 1 or 2 is a terminal (answers `TIOCGWINSZ`/`TCGETS`).
    fn is_terminal(&self, fd: i32) -> bool;
    /// The terminal's (rows, columns).
    fn winsize(&self) -> (u16, u16) {
        (24, 80)
    }
}

/// Linux clock ids the shim distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockId {
    Realtime,
    Monotonic,
    /// CPU time of the process or thread.
    Cpu,
}

/// Time since the clock's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timespec {
    pub sec: u64,
    pub nsec: u32,
}

impl Timespec {
    pub fn from_nanos(ns: u64) -> Self {
        Timespec { sec: ns / 1_000_000_000, nsec: (ns % 1_000_000_000) as u32 }
    }
    pub fn as_nanos(self) -> u64 {
        self.sec.saturating_mul(1_000_000_000).saturating_add(u64::from(self.nsec))
    }
}

pub trait Clock {
    fn now(&mut self, clock: ClockId) -> Timespec;
    /// Blocks the app for about `ns` nanoseconds.
    fn sleep(&mut self, ns: u64);
}

pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The app's address space: page-aligned anonymous ranges (zero-filled on map).
pub trait AddressSpace {
    fn map(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()>;
    fn unmap(&mut self, start: u64, len: u64) -> SysResult<()>;
    fn protect(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()>;
    /// Maps `code` (page-aligned bytes of the bundle: a text store's rewritten segment,
    /// whole pages) at `start` without copying it, read-only. `false` (the default) when
    /// this runner cannot: the caller maps fresh pages and copies.
    fn map_shared(&mut self, _start: u64, _code: &[u8], _prot: Prot) -> bool {
        false
    }
    /// Maps `len` bytes of the runner's own memory at address `addr` (whole pages, a
    /// channel's ring) at `start`, read-only and shared: later writes by the runner show
    /// through. `false` (the default) when this runner cannot.
    fn map_runner_pages(&mut self, _start: u64, _addr: usize, _len: u64, _prot: Prot) -> bool {
        false
    }
}

/// Guest memory and address space together (what mremap needs to move bytes).
pub trait Memory: GuestMemory + AddressSpace {
    fn aspace(&mut self) -> &mut dyn AddressSpace;
}
impl<T: GuestMemory + AddressSpace> Memory for T {
    fn aspace(&mut self) -> &mut dyn AddressSpace {
        self
    }
}

/// Console and entropy, as the fd objects see them.
pub trait Devices: Console + Entropy {}
impl<T: Console + Entropy> Devices for T {}

/// Everything a syscall may need.
pub trait Platform: GuestMemory + AddressSpace + Console + Clock + Entropy {}
impl<T: GuestMemory + AddressSpace + Console + Clock + Entropy> Platform for T {}
