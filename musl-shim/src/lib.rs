//! musl-shim: the Linux personality of selkie.
//!
//! It decodes aarch64 Linux syscalls (number plus six arguments) and services them
//! against small traits: [`GuestMemory`] for the app's memory and [`Platform`] for the
//! console, clock, entropy and address space. The same code runs in the host emulator
//! (`selkie-emulator`, over unicorn) and in the seL4 root server (over frames it maps).
//!
//! - [`Shim::syscall`] is the dispatcher; it returns an [`Action`] telling the caller
//!   whether to resume the app with a value or end it.
//! - [`start`] plans an ELF's loading and builds the initial stack.
//! - One module per syscall family under [`sys`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod errno;
pub mod fd;
pub mod mem;
pub mod mm;
pub mod platform;
pub mod start;
pub mod stat;
pub mod sys;
pub mod testing;
pub mod vfs;

pub use errno::{Errno, SysResult};
pub use mem::GuestMemory;
pub use platform::{AddressSpace, Clock, ClockId, Console, Entropy, Platform, Prot, Timespec};

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use fd::{FdTable, O_RDONLY, O_WRONLY};
use mm::{MemLayout, MemoryMap};
use vfs::{Found, Ino, Vfs, ROOT};

/// What the caller does after a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Resume the app with this value in x0 (negative: `-errno`).
    Return(i64),
    /// The app exited with this status (0..=255).
    Exit(i32),
    /// The app was killed by this signal (abort, a fatal kill to itself).
    Killed(i32),
}

/// Who the app is and where it starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub uid: u32,
    pub gid: u32,
    /// Absolute working directory; the root when it does not exist.
    pub cwd: String,
    pub hostname: String,
    pub layout: MemLayout,
    /// Stack size in bytes (for RLIMIT_STACK).
    pub stack_size: u64,
}

/// Per-process state besides files and memory.
#[derive(Debug, Clone)]
pub struct Process {
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub stack_size: u64,
    pub tid_address: u64,
    pub robust_list: (u64, u64),
    pub umask: u32,
    pub sigmask: u64,
    /// Blocked signals sent while their default action was fatal.
    pub pending: u64,
    /// Raw aarch64 `struct sigaction` per signal (handler, flags, restorer, mask).
    pub sigactions: [[u64; 4]; 64],
    /// Raw `stack_t` (sp, flags, size).
    pub altstack: [u64; 3],
    pub name: [u8; 16],
}

/// The app's pid (and tid): 1, as a container's first process.
pub const PID: u32 = 1;

/// One app's Linux personality.
pub struct Shim<'a> {
    pub vfs: Vfs<'a>,
    pub fds: FdTable<'a>,
    pub mm: MemoryMap,
    pub cwd: Ino,
    pub proc_: Process,
    logged: BTreeSet<u64>,
}

impl<'a> Shim<'a> {
    /// A shim for an app whose rootfs is `rootfs_cpio`, with fds 0, 1 and 2 on the console.
    pub fn new(rootfs_cpio: &'a [u8], cfg: Config) -> Self {
        let vfs = Vfs::from_cpio(rootfs_cpio);
        let cwd = match vfs.resolve(ROOT, cfg.cwd.as_bytes(), true) {
            Ok(Found::Node(ino)) if vfs.node(ino).is_dir() => ino,
            _ => ROOT,
        };
        let mut fds = FdTable::default();
        for (fd, flags) in [(0, O_RDONLY), (1, O_WRONLY), (2, O_WRONLY)] {
            let entry = fd::new_entry(Box::new(fd::Stdio { fd }), flags);
            let _ = fds.install_at(entry, fd as usize);
        }
        let mut name = [0u8; 16];
        name[..6].copy_from_slice(b"selkie");
        Shim {
            vfs,
            fds,
            mm: MemoryMap::new(cfg.layout),
            cwd,
            proc_: Process {
                uid: cfg.uid,
                gid: cfg.gid,
                hostname: cfg.hostname,
                stack_size: cfg.stack_size,
                tid_address: 0,
                robust_list: (0, 0),
                umask: 0o022,
                sigmask: 0,
                pending: 0,
                sigactions: [[0; 4]; 64],
                altstack: [0, 2, 0],
                name,
            },
            logged: BTreeSet::new(),
        }
    }

    /// Makes /proc/self/exe a link to the app's binary (what Rust's `current_exe` reads).
    pub fn set_exe(&mut self, path: &str) {
        self.vfs.set_exe(path.as_bytes());
    }

    /// Services syscall `nr` with arguments x0..x5.
    pub fn syscall<E: Platform>(&mut self, env: &mut E, nr: u64, a: [u64; 6]) -> Action {
        match sys::dispatch(self, env, nr, a) {
            Some(sys::Outcome::Ret(Ok(v))) => Action::Return(v as i64),
            Some(sys::Outcome::Ret(Err(e))) => Action::Return(e.ret()),
            Some(sys::Outcome::Exit(s)) => Action::Exit(s),
            Some(sys::Outcome::Killed(s)) => Action::Killed(s),
            None => {
                if self.logged.insert(nr) {
                    log::warn!(
                        "unserviced syscall {} ({}), args {:x?}: -ENOSYS",
                        nr,
                        sys::nr::name(nr),
                        a
                    );
                }
                Action::Return(errno::ENOSYS.ret())
            }
        }
    }

    /// Whether `nr` is serviced.
    pub fn is_serviced(nr: u64) -> bool {
        sys::nr::SERVICED.iter().any(|s| s.0 == nr)
    }

    /// Syscall numbers that returned ENOSYS so far.
    pub fn unserviced_seen(&self) -> Vec<u64> {
        self.logged.iter().copied().collect()
    }
}
