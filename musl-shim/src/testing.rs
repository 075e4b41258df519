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
        if !start.is_multiple_of(4096) || !len.is_multiple_of(4096) || len == 0 || self.mapped_bytes() + len > self.map_budget {
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
        self.now_ns = self.now_ns.saturating_add(1000);
        match clock {
            ClockId::Realtime => Timespec::from_nanos(self.now_ns.saturating_add(1_700_000_000_000_000_000)),
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

/// Fixed guest addresses holding useful paths, so random sequences reach deep paths.
pub const FUZZ_PATHS: [(&str, u64); 10] = [
    ("/data/link", 0x18000),
    ("/tmp/f", 0x18100),
    ("/dev/zero", 0x18200),
    ("/data", 0x18300),
    ("/proc/self/fd/1", 0x18400),
    ("/data/loop", 0x18500),
    ("..", 0x18600),
    ("/tmp", 0x18700),
    ("/dev/ptmx", 0x18800),
    ("/dev/pts/0", 0x18900),
];

/// Scratch memory the fuzz inputs point into.
pub const FUZZ_SCRATCH: u64 = 0x10000;

/// Runs a random syscall sequence decoded from `data` against a fresh shim. Used by the
/// fuzz target (`musl-shim/fuzz`) and the smoke test; panics only on a real bug (a panic
/// inside the shim, or heap accounting exceeding its bound).
pub fn run_sequence(data: &[u8]) {
    use crate::mm::MemLayout;
    use crate::{Action, Config, Shim};
    let cpio = sample_rootfs();
    let layout = MemLayout { brk_start: 0x20_0000, heap_limit: 4 << 20, mmap_bottom: 0x60_0000, mmap_top: 0x1000_0000 };
    let cfg = Config { uid: 0, gid: 0, cwd: "/".into(), hostname: "fuzz".into(), layout, stack_size: 1 << 16 };
    let mut shim = Shim::new(&cpio, cfg);
    let mut p = FakePlatform::new();
    p.map_budget = 16 << 20;
    p.mem.add(FUZZ_SCRATCH, 0x10000);
    for (path, at) in FUZZ_PATHS {
        let _ = p.mem.write(at, path.as_bytes());
    }
    // Odd first byte: threads, processes and blocking on, as the runners have them.
    let tasks = data.first().is_some_and(|b| b & 1 == 1);
    if tasks {
        shim.enable_tasks(16);
        shim.set_task_limits(8, 4);
    }
    let (head, mut rest) = data.split_at(data.len().min(256));
    let _ = p.mem.write(FUZZ_SCRATCH, head);
    let mut take = |n: usize| -> u64 {
        let mut b = [0u8; 8];
        let k = n.min(rest.len());
        b[..k].copy_from_slice(&rest[..k]);
        rest = &rest[k..];
        u64::from_le_bytes(b)
    };
    let serviced = crate::sys::nr::SERVICED;
    for _ in 0..64 {
        let sel = take(1) as usize;
        if sel == 0 && take(1) == 0 {
            break;
        }
        let nr = if sel < 250 { serviced[sel % serviced.len()].0 } else { take(2) };
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = match take(1) % 5 {
                0 => take(1) as i8 as i64 as u64,
                1 => FUZZ_SCRATCH + take(2) % 0x10000,
                2 => FUZZ_PATHS[take(1) as usize % FUZZ_PATHS.len()].1,
                3 => take(3) << 12,
                _ => take(8),
            };
        }
        let action = shim.syscall(&mut p, nr, args);
        if !tasks {
            if matches!(action, Action::Exit(_) | Action::Killed(_)) {
                break;
            }
        } else {
            // Run like a runner would: a new image gets a fresh map, blocked and ended
            // threads stop, and the next syscall comes from some thread still runnable.
            if let Action::Exec(_) = action {
                shim.mm = crate::mm::MemoryMap::new(layout);
            }
            let now = crate::Clock::now(&mut p, crate::ClockId::Monotonic).as_nanos();
            shim.expire(now.saturating_add(take(2) << 20));
            let _ = shim.take_events();
            if shim.app_ended().is_some() {
                break;
            }
            let runnable: alloc::vec::Vec<u32> =
                shim.tasks.threads.iter().filter(|(_, t)| t.wait.is_none()).map(|(&k, _)| k).collect();
            if runnable.is_empty() {
                break;
            }
            let next = runnable[take(1) as usize % runnable.len()];
            assert!(shim.switch_to(next), "a runnable thread could not be switched to");
        }
        assert!(shim.mm.heap_used() <= layout.heap_limit, "heap accounting exceeded its bound");
    }
}

/// Builds the VFS from arbitrary bytes (as a corrupt or hostile rootfs cpio) and walks it:
/// resolving every name in both follow modes, listing every directory, computing paths.
/// Used by the `rootfs` fuzz target; must never panic.
pub fn walk_arbitrary_rootfs(data: &[u8]) {
    use crate::vfs::{Vfs, ROOT};
    // Half the inputs get a valid newc header in front, so the fuzzer starts past the magic.
    let wrapped;
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) {
        wrapped = [&sample_rootfs()[..], data].concat();
        &wrapped[..]
    } else {
        data
    };
    let vfs = Vfs::from_cpio(bytes);
    let mut todo = alloc::vec![(ROOT, alloc::vec![b'/'])];
    let mut seen = 0;
    while let Some((dir, path)) = todo.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        let _ = vfs.path_of(dir);
        let Some(entries) = vfs.dir_entries(dir) else { continue };
        for (name, &ino) in entries {
            let mut p = path.clone();
            if p.len() > 1 {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            let _ = vfs.resolve(ROOT, &p, true);
            let _ = vfs.resolve(ROOT, &p, false);
            let _ = vfs.resolve_parent(ROOT, &p);
            if vfs.node(ino).is_dir() && ino != dir {
                todo.push((ino, p));
            }
        }
    }
}
