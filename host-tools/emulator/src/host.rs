//! The host side of the musl-shim traits: guest memory and address space over unicorn,
//! console over this process's stdio, clocks, and entropy from the OS.

use anyhow::{anyhow, Result};
use musl_shim::errno::{SysResult, EFAULT, EINVAL, ENOMEM};
use musl_shim::{AddressSpace, Clock, ClockId, Console, Entropy, GuestMemory, Prot, Timespec};
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use unicorn_engine::{HookType, MemType, RegisterARM64, Unicorn};

pub const EXCP_UDEF: u32 = 1;
pub const EXCP_SWI: u32 = 2;
pub const EXCP_BKPT: u32 = 7;

pub const XREG: [RegisterARM64; 6] =
    [RegisterARM64::X0, RegisterARM64::X1, RegisterARM64::X2, RegisterARM64::X3, RegisterARM64::X4, RegisterARM64::X5];

pub const FAULT_HOOKS: HookType = HookType(
    HookType::MEM_READ_UNMAPPED.0
        | HookType::MEM_WRITE_UNMAPPED.0
        | HookType::MEM_FETCH_UNMAPPED.0
        | HookType::MEM_READ_PROT.0
        | HookType::MEM_WRITE_PROT.0
        | HookType::MEM_FETCH_PROT.0,
);

/// What stopped the emulation.
#[derive(Debug, Clone)]
pub enum Event {
    Interrupt { intno: u32, pc: u64 },
    Memory { kind: crate::FaultKind, addr: u64 },
}

#[derive(Default)]
pub struct Hooks {
    pub event: Option<Event>,
    /// Translation blocks the running thread may still start before it is preempted
    /// (0: no limit). Counted by a block hook, so a thread stops at a block boundary on
    /// the emulating thread itself: stopping from a timer thread (unicorn's timeout)
    /// corrupted multi-threaded Go programs.
    pub budget: u64,
}

pub fn install_hooks(uc: &mut Unicorn<'_, Hooks>) -> Result<()> {
    uc.add_intr_hook(|uc, intno| {
        let pc = uc.pc_read().unwrap_or(0);
        uc.get_data_mut().event = Some(Event::Interrupt { intno, pc });
        let _ = uc.emu_stop();
    })
    .map_err(|e| anyhow!("intr hook: {e:?}"))?;
    uc.add_block_hook(1, 0, |uc, _addr, _size| {
        let d = uc.get_data_mut();
        if d.budget > 0 {
            d.budget -= 1;
            if d.budget == 0 {
                let _ = uc.emu_stop();
            }
        }
    })
    .map_err(|e| anyhow!("block hook: {e:?}"))?;
    uc.add_mem_hook(FAULT_HOOKS, 1, 0, |uc, ty, addr, _size, _value| {
        use crate::FaultKind::*;
        let kind = match ty {
            MemType::READ_UNMAPPED => ReadUnmapped,
            MemType::WRITE_UNMAPPED => WriteUnmapped,
            MemType::FETCH_UNMAPPED => FetchUnmapped,
            MemType::READ_PROT => ReadProtection,
            MemType::WRITE_PROT => WriteProtection,
            MemType::FETCH_PROT => FetchProtection,
            other => Other(format!("{other:?}")),
        };
        uc.get_data_mut().event = Some(Event::Memory { kind, addr });
        false
    })
    .map_err(|e| anyhow!("memory hook: {e:?}"))?;
    Ok(())
}

/// The platform for one syscall (or for loading): unicorn plus the host.
pub struct Env<'e, 'u> {
    uc: &'e mut Unicorn<'u, Hooks>,
    terminals: [bool; 3],
    /// Pages a syscall may not write into on the app's behalf: the ELF's read-only code,
    /// which the root server maps shared from the bundle's text store (so it answers
    /// EFAULT, as Linux does for text). Empty while loading.
    protected: Vec<std::ops::Range<u64>>,
    /// Where fd 1 and 2 go when several apps share this process's stdout: each line
    /// prefixed with the app's name (`None`: straight to stdio).
    out: Option<Output>,
}

/// One app's share of stdout and stderr when several apps run together: whole lines, each
/// prefixed `NAME | ` as `docker compose up` prints its services' output.
#[derive(Clone)]
pub struct Output(std::rc::Rc<std::cell::RefCell<Lines>>);

pub struct Lines {
    prefix: String,
    /// What fd 1 and fd 2 wrote since their last newline.
    partial: [Vec<u8>; 2],
}

impl Output {
    /// `name` padded to `width`, as compose aligns its columns.
    pub fn new(name: &str, width: usize) -> Output {
        Output(std::rc::Rc::new(std::cell::RefCell::new(Lines { prefix: format!("{name:<width$} | "), partial: [Vec::new(), Vec::new()] })))
    }

    fn write(&self, fd: i32, bytes: &[u8]) -> std::io::Result<()> {
        let mut l = self.0.borrow_mut();
        let i = usize::from(fd == 2);
        l.partial[i].extend_from_slice(bytes);
        let Some(end) = l.partial[i].iter().rposition(|&b| b == b'\n') else { return Ok(()) };
        let done: Vec<u8> = l.partial[i].drain(..=end).collect();
        let mut text = Vec::with_capacity(done.len() + 16);
        for line in done.split_inclusive(|&b| b == b'\n') {
            text.extend_from_slice(l.prefix.as_bytes());
            text.extend_from_slice(line);
        }
        emit(fd, &text)
    }

    /// Writes out what is left without a newline (the app has ended).
    pub fn flush(&self) {
        let mut l = self.0.borrow_mut();
        for (i, fd) in [(0, 1), (1, 2)] {
            if !l.partial[i].is_empty() {
                let mut text = l.prefix.clone().into_bytes();
                text.append(&mut l.partial[i]);
                text.push(b'\n');
                let _ = emit(fd, &text);
            }
        }
    }
}

fn emit(fd: i32, bytes: &[u8]) -> std::io::Result<()> {
    if fd == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(bytes).and_then(|_| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(bytes).and_then(|_| o.flush())
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl<'e, 'u> Env<'e, 'u> {
    pub fn new(uc: &'e mut Unicorn<'u, Hooks>) -> Self {
        START.get_or_init(Instant::now);
        Env {
            uc,
            terminals: [
                std::io::stdin().is_terminal(),
                std::io::stdout().is_terminal(),
                std::io::stderr().is_terminal(),
            ],
            protected: Vec::new(),
            out: None,
        }
    }

    /// Sends fd 1 and 2 through `out` (several apps on one stdout).
    pub fn with_output(mut self, out: Option<Output>) -> Self {
        if out.is_some() {
            self.terminals = [false; 3];
        }
        self.out = out;
        self
    }

    /// An environment for servicing the app's syscalls, refusing writes into `protected`.
    pub fn for_syscall(uc: &'e mut Unicorn<'u, Hooks>, protected: &[std::ops::Range<u64>]) -> Self {
        Env { protected: protected.to_vec(), ..Env::new(uc) }
    }
    pub fn reg(&self, r: RegisterARM64) -> u64 {
        self.uc.reg_read(r).unwrap_or(0)
    }
}

fn uc_prot(p: Prot) -> unicorn_engine::Prot {
    unicorn_engine::Prot(p.0 & 7)
}

impl GuestMemory for Env<'_, '_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.uc.mem_read(addr, buf).map_err(|_| EFAULT)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> SysResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let end = addr.saturating_add(bytes.len() as u64);
        if self.protected.iter().any(|r| r.start < end && addr < r.end) {
            return Err(EFAULT);
        }
        self.uc.mem_write(addr, bytes).map_err(|_| EFAULT)
    }
}

impl AddressSpace for Env<'_, '_> {
    fn map(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        self.uc.mem_map(start, len, uc_prot(prot)).map_err(|e| {
            log::debug!("mem_map({start:#x}, {len:#x}) failed: {e:?}");
            ENOMEM
        })
    }
    fn unmap(&mut self, start: u64, len: u64) -> SysResult<()> {
        self.uc.mem_unmap(start, len).map_err(|_| EINVAL)?;
        // Code pages may be reused: drop cached translations.
        let _ = self.uc.ctl_remove_cache(start, start + len);
        Ok(())
    }
    fn protect(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        self.uc.mem_protect(start, len, uc_prot(prot)).map_err(|_| ENOMEM)?;
        let _ = self.uc.ctl_remove_cache(start, start + len);
        Ok(())
    }
}

impl Console for Env<'_, '_> {
    fn console_write(&mut self, fd: i32, bytes: &[u8]) -> usize {
        let ok = match &self.out {
            Some(out) => out.write(fd, bytes),
            None => emit(fd, bytes),
        };
        if ok.is_ok() {
            bytes.len()
        } else {
            0
        }
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        if self.out.is_some() {
            // Apps that share stdout get no stdin, as `docker compose up` attaches none.
            return 0;
        }
        std::io::stdin().lock().read(buf).unwrap_or(0)
    }
    fn is_terminal(&self, fd: i32) -> bool {
        usize::try_from(fd).ok().and_then(|i| self.terminals.get(i)).copied().unwrap_or(false)
    }
}

/// The host's clocks as the app sees them.
pub fn now(clock: ClockId) -> Timespec {
    match clock {
        ClockId::Realtime => {
            let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            Timespec { sec: d.as_secs(), nsec: d.subsec_nanos() }
        }
        ClockId::Monotonic | ClockId::Cpu => {
            let d = START.get_or_init(Instant::now).elapsed();
            // Monotonic starts at an arbitrary non-zero point, like Linux's boot time.
            let base = if clock == ClockId::Monotonic { 1_000 } else { 0 };
            Timespec { sec: base + d.as_secs(), nsec: d.subsec_nanos() }
        }
    }
}

impl Clock for Env<'_, '_> {
    fn now(&mut self, clock: ClockId) -> Timespec {
        now(clock)
    }
    fn sleep(&mut self, ns: u64) {
        std::thread::sleep(Duration::from_nanos(ns.min(60_000_000_000)));
    }
}

impl Entropy for Env<'_, '_> {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom_fill(buf).is_err() {
            // No OS entropy: a time-seeded xorshift, never silent zeros.
            let mut x = Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
            for b in buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
    }
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}
