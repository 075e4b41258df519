//! One app: its processes (each a VSpace with its frames and an untyped budget of its
//! own, all charged to the app's account), its threads (each a TCB with a small CNode
//! holding the fault endpoint badged for that thread alone), its Linux personality (a
//! musl-shim [`Shim`] with tasks on) and the platform the shim runs against.
//!
//! The shim decides; this module carries it out (see host-tools/emulator/src/sched.rs for
//! the emulator's counterpart): a blocked thread is simply not replied to, and a wake
//! rewrites its pc and x0 with `TCB_WriteRegisters(resume)`, which restarts it.

use crate::console;
use crate::ut::{self, root_path, Budget, CHUNK_BITS};
use crate::vm::{self, Global, Space};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use musl_shim::errno::EFAULT;
use musl_shim::mm::{MemoryMap, RegionKind, PAGE};
use musl_shim::start::{self, LoadPlan, StackInfo};
use musl_shim::sigframe::{self, Delivery, UserRegs, SIGTRAMP};
use musl_shim::task::{Event, Pid, Resume, Tid};
use musl_shim::{AddressSpace, Clock, ClockId, Config, Console, Entropy, ExecImage, GuestMemory, Prot, Shim, Spawn, SysResult, Timespec};
use sel4::cap;
use sel4::CapTypeForObjectOfFixedSize as _;

/// The fault endpoint's slot in every thread's CNode.
const FAULT_EP_SLOT: u64 = 1;
/// A thread's CNode: 4 slots (only the fault endpoint is used).
const THREAD_CNODE_BITS: usize = 2;
/// Untyped bytes for VSpace, CNodes and page tables, besides the app's pages.
const OBJECT_OVERHEAD: u64 = 256 * 1024;
/// Untyped bytes for one more process's VSpace, page tables and storage CNode.
const PROC_OVERHEAD: u64 = 64 * 1024;
/// Chunks of a forked or exec'd process's budget (pid 1's are `ut::CHUNK_BITS`).
const PROC_CHUNK_BITS: usize = 18;
const CLONE_THREAD: u64 = 0x10000;

/// Why an app could not be started.
pub type StartError = String;

/// A thread's kernel objects: reused for the app's next thread when one ends.
pub struct Unit {
    /// The badge of its fault endpoint: names this thread in `Global::owners`.
    pub badge: u64,
    pub tcb: cap::Tcb,
    cnode: cap::CNode,
}

/// Where a thread is, as far as we are concerned.
pub enum Run {
    /// Running, or waiting for our reply to its current fault.
    Running,
    /// Parked in the syscall at `at` (not replied to); `regs` (pc, sp, spsr, x0..x8) as it
    /// trapped.
    Blocked { at: u64, regs: sel4::UserContext },
}

pub struct Thread {
    pub pid: Pid,
    pub unit: Unit,
    pub run: Run,
}

/// One process: its address space and what its image traps on.
pub struct Proc {
    pub space: Space,
    pub budget: Budget,
    /// Our slot holding the VSpace cap (the object is in `budget`).
    vspace_slot: usize,
    /// Pages the ELF's PT_LOADs cover.
    pub image_pages: u64,
}

/// Counters for the stats line.
#[derive(Default, Clone, Copy)]
pub struct AppStats {
    pub threads_made: u64,
    pub threads_peak: u64,
    pub forks: u64,
    pub frames_copied: u64,
    /// Kernel entries the forks took (address space copy, child thread).
    pub fork_entries: u64,
    pub execs: u64,
    pub blocks: u64,
    pub wakes: u64,
}

pub struct App {
    pub id: usize,
    pub name: String,
    pub shim: Shim<'static>,
    /// The app's own chunks: its threads' TCBs and CNodes. Its account is shared by
    /// every process's budget.
    budget: Budget,
    pub procs: BTreeMap<Pid, Proc>,
    pub threads: BTreeMap<Tid, Thread>,
    spare: Vec<Unit>,
    /// Our slots holding thread objects' caps (in `budget`).
    unit_slots: Vec<usize>,
    ep: cap::Endpoint,
    prio: u64,
    mcp: u64,
    /// Our own image's frames (the bundle's text store and the signal trampoline are in it).
    frames: ImageFrames,
    heap_bytes: u64,
    stack_bytes: u64,
    rng: u64,
    pub syscalls: u64,
    /// Syscalls that returned to the app at once, and the kernel entries they took (trap
    /// to resume).
    pub returned: u64,
    pub syscall_entries: u64,
    /// Identity calls answered at once ([`App::quick_call`]): each also one of `syscalls`
    /// and of `returned`, with its two kernel entries, when they are reported.
    pub quick: u64,
    /// Most root-heap bytes this app's state may take (see `kernel::charged`).
    pub heap_quota: usize,
    pub done: bool,
    /// On a network shared with other apps (see main.rs).
    pub networked: bool,
    /// The apps that must exit with status 0 before this one starts (the manifest's
    /// `after`), and whether it is still held back for them (created, not yet resumed).
    pub after: Vec<String>,
    pub held: bool,
    /// How it ended, as its report says (`None`: not yet, or stopped by us).
    pub ended: Option<musl_shim::task::Ended>,
    pub stats: AppStats,
    /// pid 1's frames at its end, for the stats line.
    first_space: Option<vm::VmStats>,
}

/// What the shim sees: the current process's memory and our console, clock and entropy.
pub struct Env<'a> {
    pub g: &'a mut Global,
    pub space: &'a mut Space,
    pub budget: &'a mut Budget,
    pub rng: &'a mut u64,
    /// Our image's frames: bundle pages (the text store's code) can be mapped from them.
    pub frames: ImageFrames,
}

impl GuestMemory for Env<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        self.space.read(self.g, self.budget, addr, buf).map_err(|_| EFAULT)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> SysResult<()> {
        self.space.write(self.g, self.budget, addr, bytes).map_err(|_| EFAULT)
    }
}

fn range(start: u64, len: u64) -> SysResult<(u64, u64)> {
    let end = start.checked_add(len).ok_or(musl_shim::errno::EINVAL)?;
    Ok((start & !(PAGE - 1), musl_shim::mm::page_up(end).ok_or(musl_shim::errno::EINVAL)?))
}

impl AddressSpace for Env<'_> {
    fn map(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        let (s, e) = range(start, len)?;
        self.space.map(self.g, s, e, prot).map_err(|_| musl_shim::errno::ENOMEM)
    }
    fn unmap(&mut self, start: u64, len: u64) -> SysResult<()> {
        let (s, e) = range(start, len)?;
        self.space.unmap(self.g, s, e).map_err(|_| musl_shim::errno::EINVAL)
    }
    fn protect(&mut self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        let (s, e) = range(start, len)?;
        self.space.protect(self.g, s, e, prot).map_err(|_| musl_shim::errno::ENOMEM)
    }
    fn map_shared(&mut self, start: u64, code: &[u8], prot: Prot) -> bool {
        let at = code.as_ptr() as usize;
        let pages = code.len().div_ceil(PAGE as usize);
        if at % PAGE as usize != 0 || start % PAGE != 0 || prot.w() {
            return false;
        }
        self.map_image_pages(start, at, pages, prot)
    }
    fn map_runner_pages(&mut self, start: u64, addr: usize, len: u64, prot: Prot) -> bool {
        // Our image's pages (a channel's ring): mapped as the bundle's are.
        if addr % PAGE as usize != 0 || len % PAGE != 0 || prot.w() || prot.x() {
            return false;
        }
        let Ok(n) = usize::try_from(len) else { return false };
        self.map_image_pages(start, addr, n / PAGE as usize, prot)
    }
}

impl Env<'_> {
    /// Maps `pages` pages of our own image from address `at` at `start`, read-only, no
    /// copy (frames shared with the bundle, or a channel's ring).
    fn map_image_pages(&mut self, start: u64, at: usize, pages: usize, prot: Prot) -> bool {
        let Some(slots) = (0..pages).map(|k| self.frames.slot_of(at + k * PAGE as usize)).collect::<Option<Vec<_>>>() else { return false };
        let end = start + pages as u64 * PAGE;
        for (k, slot) in slots.into_iter().enumerate() {
            if self.space.map_shared(self.g, self.budget, start + k as u64 * PAGE, slot, prot).is_err() {
                let _ = self.space.unmap(self.g, start, end);
                return false;
            }
        }
        self.space.add_range(start, end, prot);
        true
    }
}

impl Console for Env<'_> {
    fn console_write(&mut self, _fd: i32, bytes: &[u8]) -> usize {
        crate::stages::mark(crate::stages::Stage::FirstOutput);
        console::write_bytes(bytes);
        bytes.len()
    }
    fn is_terminal(&self, fd: i32) -> bool {
        // Line-buffered stdout, as on a terminal: output interleaves by line across apps.
        fd == 1 || fd == 2
    }
}

impl Clock for Env<'_> {
    fn now(&mut self, clock: ClockId) -> Timespec {
        match clock {
            ClockId::Realtime => Timespec::from_nanos(crate::time::realtime_ns()),
            // The shim accounts each thread's CPU time; this only starts the first one's
            // (wall time since boot bounds it).
            ClockId::Monotonic | ClockId::Cpu => Timespec::from_nanos(crate::time::monotonic_ns()),
        }
    }
    fn sleep(&mut self, _ns: u64) {
        // Never reached: with the shim's tasks on, a sleep parks the thread and the timer
        // wakes it (busy-waiting here would stall every other app).
    }
}

impl Entropy for Env<'_> {
    fn fill(&mut self, buf: &mut [u8]) {
        // xorshift64*: not cryptographic (no entropy source is wired up yet).
        for b in buf {
            let mut x = *self.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *self.rng = x;
            *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// Where our own image's frames are: slot `first` holds the frame at virtual address
/// `start`, and so on, page by page (bootinfo's user image frames).
#[derive(Clone, Copy)]
pub struct ImageFrames {
    pub first: usize,
    pub start: usize,
    pub count: usize,
}

impl ImageFrames {
    /// Our slot holding the frame at virtual address `va`.
    pub fn slot_of(&self, va: usize) -> Option<usize> {
        let i = va.checked_sub(self.start)? / PAGE as usize;
        (i < self.count).then_some(self.first + i)
    }
}

/// An app's description, already unescaped from the manifest.
pub struct AppSpec<'b> {
    pub name: String,
    pub binary: String,
    pub rootfs: &'static [u8],
    /// The rootfs's text store (`musl_shim::text`), page-aligned in our image; empty
    /// when the bundle has none.
    pub text: &'static [u8],
    pub frames: ImageFrames,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub spec: &'b selkie_manifest::Spec<selkie_manifest::Text<'b>>,
}

/// Decodes `mrs xRt, <ID register>` and gives what Linux shows EL0 for a Cortex-A57:
/// MIDR and MPIDR as the hardware has them, ID_AA64PFR0 (EL0/EL1 AArch64, FP, AdvSIMD),
/// ID_AA64ISAR0 (AES+PMULL, SHA1, SHA2, CRC32), 0 for the other (hidden) fields and
/// registers.
fn id_register_read(insn: u32) -> Option<(u32, u64)> {
    // MRS: 1101 0101 0011 op0[19] op1[18:16] CRn[15:12] CRm[11:8] op2[7:5] Rt[4:0]
    if insn & 0xfff0_0000 != 0xd530_0000 || insn & (1 << 19) == 0 {
        return None;
    }
    let (op1, crn, crm, op2, rt) = ((insn >> 16) & 7, (insn >> 12) & 15, (insn >> 8) & 15, (insn >> 5) & 7, insn & 31);
    if op1 != 0 || crn != 0 {
        return None;
    }
    let value = match (crm, op2) {
        (0, 0) => 0x411f_d070,   // MIDR_EL1: ARM Cortex-A57 r1p0
        (0, 5) => 0x8000_0000,   // MPIDR_EL1
        (4, 0) => 0x11,          // ID_AA64PFR0_EL1
        (6, 0) => 0x1_1120,      // ID_AA64ISAR0_EL1
        _ => 0,
    };
    Some((rt, value))
}

/// Segments that can be mapped straight from the bundle: read-only, file-backed to their
/// end, offset and address congruent modulo a page, no page shared with another segment,
/// no relocation inside.
fn shareable(plan: &LoadPlan, elf_len: usize) -> Vec<usize> {
    let pages = |s: &start::Segment| (s.vaddr / PAGE, (s.vaddr + s.memsz.max(1) - 1) / PAGE);
    (0..plan.segments.len())
        .filter(|&i| {
            let s = &plan.segments[i];
            let (lo, hi) = pages(s);
            !s.prot.w()
                && s.prot.0 != 0
                && s.filesz == s.memsz
                && s.offset % PAGE == s.vaddr % PAGE
                && s.offset + s.filesz <= elf_len as u64
                && plan.segments.iter().enumerate().all(|(j, t)| j == i || pages(t).1 < lo || pages(t).0 > hi)
                && !plan.relative.iter().any(|&(off, _)| off >= s.vaddr && off < s.vaddr + s.memsz)
        })
        .collect()
}

fn empty_config() -> Config {
    let layout = musl_shim::mm::MemLayout { brk_start: 0, heap_limit: 0, mmap_bottom: 0, mmap_top: 0 };
    Config { uid: 0, gid: 0, cwd: String::from("/"), hostname: String::new(), layout, stack_size: 0 }
}

/// The bytes of the regular file `path` of the rootfs (as packed: tmpfs files are not
/// programs we can run).
fn elf_of(shim: &Shim<'static>, path: &[u8]) -> Result<&'static [u8], StartError> {
    use musl_shim::vfs::{Data, Found, Kind, ROOT};
    let shown = String::from_utf8_lossy(path);
    match shim.vfs.resolve(ROOT, path, true) {
        Ok(Found::Node(ino)) => match &shim.vfs.node(ino).kind {
            Kind::File(Data::Image(b)) => Ok(b),
            Kind::File(_) => Err(format!("{shown} was written at run time; only the image's own files can be run")),
            _ => Err(format!("{shown} is not a regular file in the rootfs")),
        },
        _ => Err(format!("{shown} is not in the rootfs")),
    }
}

/// A thread's registers as the shim's signal frames hold them; FP/SIMD as zeros (seL4
/// cannot read them from another thread).
fn user_regs(r: &sel4::UserContext) -> UserRegs {
    let mut x = [0u64; 31];
    for (i, v) in x.iter_mut().enumerate() {
        *v = *r.gpr(i);
    }
    UserRegs { x, sp: *r.sp(), pc: *r.pc(), pstate: *r.spsr(), fpsr: 0, fpcr: 0, v: [[0; 16]; 32] }
}

/// Puts the shim's registers back: x0..x30, sp, pc and the condition flags (the rest of
/// SPSR stays ours; FP/SIMD is not touched).
fn set_user_regs(r: &mut sel4::UserContext, u: &UserRegs) {
    for (i, v) in u.x.iter().enumerate() {
        *r.gpr_mut(i) = *v;
    }
    *r.sp_mut() = u.sp;
    *r.pc_mut() = u.pc;
    *r.spsr_mut() = (*r.spsr() & !0xf000_0000) | (u.pstate & 0xf000_0000);
}

/// Untyped bytes one thread takes: its TCB and its CNode.
fn thread_bytes() -> u64 {
    let tcb = 1u64 << sel4::cap_type::Tcb::object_blueprint().physical_size_bits();
    let cnode = 1u64 << sel4::ObjectBlueprint::CNode { size_bits: THREAD_CNODE_BITS }.physical_size_bits();
    tcb + cnode
}

impl Proc {
    /// Revokes everything the process had and frees our slots for it.
    fn destroy(mut self, g: &mut Global) {
        g.evict_space(self.space.key);
        if let Err(e) = self.budget.release(&mut g.pool) {
            log::error!("revoking a process's memory: {e}");
        }
        self.space.forget();
        for s in core::mem::take(&mut self.space.storage_slots).into_iter().chain([self.vspace_slot]) {
            // Revocation emptied them; delete is a no-op on an empty slot.
            let _ = root_path(s).delete();
            g.slots.free(s);
        }
    }
}

impl App {
    /// Creates the app's first process and thread, loads its ELF and builds its stack; the
    /// thread is left suspended (see [`App::resume`]). On failure everything it got is
    /// given back.
    pub fn create(g: &mut Global, ep: cap::Endpoint, id: usize, a: AppSpec<'_>, heap_quota: usize) -> Result<App, StartError> {
        let spec = a.spec;
        let heap_bytes = u64::from(spec.heap_pages) * PAGE;
        let stack_bytes = u64::from(spec.stack_pages).max(4) * PAGE;
        let mut shim = Shim::new(a.rootfs, Config {
            uid: a.uid,
            gid: a.gid,
            cwd: a.cwd,
            hostname: String::from("selkie"),
            layout: empty_config().layout,
            stack_size: stack_bytes,
        });
        shim.vfs.set_write_limit(heap_quota / 2);
        // A shared file mapping keeps a copy here, and a sync holds two more for a moment.
        shim.map_limit = heap_quota / 8;
        shim.vfs.set_rootfs_limit(usize::try_from(spec.rootfs_write_bytes).unwrap_or(usize::MAX));
        if !a.text.is_empty() {
            let store = musl_shim::text::TextStore::parse(a.text).map_err(|e| format!("its text store: {e}"))?;
            shim.set_text_store(store);
        }
        shim.enable_tasks(musl_shim::task::DEFAULT_MAX_TASKS.max(spec.max_threads + spec.max_processes));
        shim.set_task_limits(spec.max_threads, spec.max_processes);
        let elf = elf_of(&shim, a.binary.as_bytes())?;
        let plan = LoadPlan::parse(elf).map_err(|e| format!("{}: {e}", a.binary))?;
        let image_pages = image_pages(&plan);
        // Frames and tables with a storage CNode slot (32 bytes) each, every thread the
        // manifest allows, the kernel objects of every process it allows (their frames
        // come out of the same heap and stack allowance), and the app's extra budget.
        let pages = image_pages + stack_bytes / PAGE + u64::from(spec.heap_pages) + 1;
        let limit = pages * PAGE
            + pages * 32
            + spec.extra_untyped_bytes()
            + OBJECT_OVERHEAD
            + u64::from(spec.max_threads) * thread_bytes()
            + u64::from(spec.max_processes) * PROC_OVERHEAD;
        let prio = u64::from(spec.priority).min(254);
        let mut app = App {
            id,
            name: a.name,
            shim,
            budget: Budget::new(limit),
            procs: BTreeMap::new(),
            threads: BTreeMap::new(),
            spare: Vec::new(),
            unit_slots: Vec::new(),
            ep,
            prio,
            mcp: u64::from(spec.max_priority).min(254).max(prio),
            frames: a.frames,
            heap_bytes,
            stack_bytes,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 32) ^ elf.len() as u64,
            syscalls: 0,
            returned: 0,
            syscall_entries: 0,
            quick: 0,
            heap_quota,
            done: false,
            networked: false,
            after: Vec::new(),
            held: false,
            ended: None,
            stats: AppStats::default(),
            first_space: None,
        };
        let img = ExecImage {
            path: a.binary.clone().into_bytes(),
            execfn: a.binary.into_bytes(),
            argv: a.argv,
            envp: a.envp,
        };
        app.shim.set_program(&img);
        let r = (|| {
            let (proc_, pc, sp) = app.load(g, musl_shim::PID, &img)?;
            app.procs.insert(musl_shim::PID, proc_);
            let unit = app.take_unit(g).map_err(|e| format!("the first thread: {e}"))?;
            let mut regs = sel4::UserContext::default();
            *regs.pc_mut() = pc;
            *regs.sp_mut() = sp;
            app.start_thread(g, musl_shim::PID, musl_shim::PID, unit, &mut regs, false).map_err(|e| format!("the first thread: {e}"))
        })();
        match r {
            Ok(()) => Ok(app),
            Err(e) => {
                app.release(g);
                Err(e)
            }
        }
    }

    /// Loads `img` into a new address space for process `pid` (the shim's current one,
    /// whose memory map is reset for it); returns the process, the entry point and the
    /// initial sp.
    fn load(&mut self, g: &mut Global, pid: Pid, img: &ExecImage) -> Result<(Proc, u64, u64), StartError> {
        let shown = String::from_utf8_lossy(&img.path).into_owned();
        let elf = elf_of(&self.shim, &img.path)?;
        let plan = LoadPlan::parse(elf).map_err(|e| format!("{shown}: {e}"))?;
        // Its syscall words: the pack-time trap table (musl_shim::text).
        let traps = self.shim.traps_of(elf);
        let bias = plan.bias();
        let layout = start::layout(&plan, self.heap_bytes, self.stack_bytes).map_err(|e| format!("{shown}: {e}"))?;
        // A dynamic program starts in its interpreter (ld.so), loaded from the rootfs under
        // the mmap area's top.
        let interp = match &plan.interp {
            Some(path) => {
                let ishown = String::from_utf8_lossy(path).into_owned();
                let ielf = elf_of(&self.shim, path).map_err(|e| format!("{shown}: its interpreter: {e}"))?;
                let iplan = LoadPlan::parse(ielf).map_err(|e| format!("{ishown}: {e}"))?;
                if iplan.interp.is_some() {
                    return Err(format!("{ishown}: an interpreter with an interpreter"));
                }
                let ibias = start::interp_bias(&iplan, &layout).map_err(|e| format!("{ishown}: {e}"))?;
                let itraps = self.shim.traps_of(ielf);
                Some((ishown, ielf, iplan, ibias, itraps))
            }
            None => None,
        };
        let chunk_bits = if pid == musl_shim::PID { CHUNK_BITS } else { PROC_CHUNK_BITS };
        let mut p = self.new_proc(g, chunk_bits).map_err(|e| format!("{shown}: a new address space: {e}"))?;
        p.image_pages = image_pages(&plan);
        self.shim.mm = MemoryMap::new(layout);
        let (uid, gid) = (self.shim.proc_.uid, self.shim.proc_.gid);
        let r = (|| -> Result<(u64, u64), StartError> {
            let ctx = |what: &str, e: ut::Error| format!("{what}: {e}");
            // The signal trampoline: a handler's return address without SA_RESTORER.
            let tramp = self.frames.slot_of(crate::kernel::sigtramp_addr()).ok_or("the signal trampoline lies outside our image")?;
            if crate::kernel::SIGTRAMP_PAGE.0[..8] != sigframe::sigtramp_code() {
                return Err(String::from("the signal trampoline differs from musl-shim's"));
            }
            let rx = Prot(Prot::READ | Prot::EXEC);
            p.space.map_shared(g, &mut p.budget, SIGTRAMP, tramp, rx).map_err(|e| ctx("mapping the signal trampoline", e))?;
            p.space.add_range(SIGTRAMP, SIGTRAMP + PAGE, rx);
            self.shim.mm.add_traps([SIGTRAMP + 4]);
            // Code segments straight from the text store's rewritten copy; the rest is
            // copied by musl-shim's loader, which writes the traps into what it copies.
            let copied = self.map_stored_code(g, &mut p, &shown, &plan, elf, bias, &traps)?;
            let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
            start::load(&mut env, &mut self.shim.mm, &copied, elf, bias, &traps).map_err(|e| format!("loading {shown}: {e}"))?;
            let mut auxv = start::auxv(&plan, bias, uid, gid, start::HWCAP_A57);
            let mut pc = plan.entry.wrapping_add(bias);
            if let Some((ishown, ielf, iplan, ibias, itraps)) = &interp {
                let icopied = self.map_stored_code(g, &mut p, ishown, iplan, ielf, *ibias, itraps)?;
                let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
                start::load(&mut env, &mut self.shim.mm, &icopied, ielf, *ibias, itraps).map_err(|e| format!("loading {ishown}: {e}"))?;
                auxv = start::with_interp(auxv, iplan.span().0.wrapping_add(*ibias));
                pc = iplan.entry.wrapping_add(*ibias);
            }
            let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
            let top = start::map_stack(&mut env, &mut self.shim.mm, self.stack_bytes, plan.exec_stack).map_err(|e| format!("stack: {e}"))?;
            let mut random = [0u8; 16];
            env.fill(&mut random);
            let argv: Vec<&[u8]> = img.argv.iter().map(|v| v.as_slice()).collect();
            let envp: Vec<&[u8]> = img.envp.iter().map(|v| v.as_slice()).collect();
            let info = StackInfo { argv: &argv, envp: &envp, execfn: &img.execfn, random, auxv: &auxv };
            let sp = start::build_stack(&mut env, top, &info).map_err(|e| format!("stack: {e}"))?;
            Ok((pc, sp))
        })();
        match r {
            Ok((pc, sp)) => Ok((p, pc, sp)),
            Err(e) => {
                p.destroy(g);
                Err(e)
            }
        }
    }

    /// Maps the code segments of `elf` (at `bias`) that can be shared straight from the
    /// frames of its rewritten copy in the text store, records them and their traps
    /// (`traps`: file offsets), and returns the plan of what is left to copy.
    #[allow(clippy::too_many_arguments)]
    fn map_stored_code(
        &mut self,
        g: &mut Global,
        p: &mut Proc,
        shown: &str,
        plan: &LoadPlan,
        elf: &'static [u8],
        bias: u64,
        traps: &[u64],
    ) -> Result<LoadPlan, StartError> {
        let mut copied = plan.clone();
        let Some(stored) = self.shim.stored_text(elf) else { return Ok(copied) };
        let mut shared = LoadPlan { segments: Vec::new(), ..plan.clone() };
        copied.segments.clear();
        let candidates = shareable(plan, elf.len());
        for (i, s) in plan.segments.iter().enumerate() {
            let lo = s.offset & !(PAGE - 1);
            let pages = (musl_shim::mm::page_up(s.offset + s.filesz).unwrap_or(lo) - lo) / PAGE;
            let want = (s.offset + s.filesz).min(elf.len() as u64) - lo;
            let bytes = stored.bytes(lo, want).filter(|b| b.as_ptr() as usize % PAGE as usize == 0);
            let (Some(bytes), true) = (bytes, s.prot.x() && candidates.contains(&i)) else {
                copied.segments.push(*s);
                continue;
            };
            let start = (s.vaddr + bias) & !(PAGE - 1);
            for k in 0..pages {
                let slot = self.frames.slot_of(bytes.as_ptr() as usize + (k * PAGE) as usize).ok_or_else(|| format!("{shown}: its text lies outside our image"))?;
                p.space.map_shared(g, &mut p.budget, start + k * PAGE, slot, s.prot).map_err(|e| format!("{shown}: mapping shared code: {e}"))?;
            }
            p.space.add_range(start, start + pages * PAGE, s.prot);
            self.shim.mm.record(start, start + pages * PAGE, s.prot, RegionKind::Image);
            shared.segments.push(*s);
        }
        self.shim.mm.add_traps(start::trap_addrs(&shared, traps, bias));
        Ok(copied)
    }

    /// A new empty address space whose budget (chunks of `2^chunk_bits`) is charged to
    /// the app's account.
    fn new_proc(&mut self, g: &mut Global, chunk_bits: usize) -> ut::Result<Proc> {
        let mut budget = self.budget.sharing(chunk_bits);
        let slot = g.slots.alloc()?;
        let r = budget.retype(&mut g.pool, &mut g.slots, &sel4::cap_type::VSpace::object_blueprint(), &ut::root_cnode().absolute_cptr_for_self(), slot);
        let r = r.and_then(|()| {
            vm::entries(2);
            let vspace = cap::VSpace::from_bits(slot as u64);
            sel4::init_thread::slot::ASID_POOL.cap().asid_pool_assign(vspace).map_err(ut::Error::from)?;
            Ok(vspace)
        });
        match r {
            Ok(vspace) => Ok(Proc {
                space: Space::new(g.new_space_key(), vspace),
                budget,
                vspace_slot: slot,
                image_pages: 0,
            }),
            Err(e) => {
                let _ = budget.release(&mut g.pool);
                let _ = root_path(slot).delete();
                g.slots.free(slot);
                Err(e)
            }
        }
    }

    /// A new thread's objects: a TCB, and a CNode holding our endpoint badged for it
    /// alone (Write to send faults, GrantReply so the kernel can give us the reply cap).
    fn new_unit(&mut self, g: &mut Global) -> ut::Result<Unit> {
        let obj = |app: &mut App, g: &mut Global, bp: sel4::ObjectBlueprint| -> ut::Result<usize> {
            let s = g.slots.alloc()?;
            app.unit_slots.push(s);
            app.budget.retype(&mut g.pool, &mut g.slots, &bp, &ut::root_cnode().absolute_cptr_for_self(), s)?;
            vm::entries(1);
            Ok(s)
        };
        let tcb = cap::Tcb::from_bits(obj(self, g, sel4::cap_type::Tcb::object_blueprint())? as u64);
        let cnode = cap::CNode::from_bits(obj(self, g, sel4::ObjectBlueprint::CNode { size_bits: THREAD_CNODE_BITS })? as u64);
        let badge = g.new_badge();
        vm::entries(2);
        cnode
            .absolute_cptr_from_bits_with_depth(FAULT_EP_SLOT, THREAD_CNODE_BITS)
            .mint(&root_path(self.ep.bits() as usize), sel4::CapRights::new(true, false, false, true), badge)?;
        tcb.tcb_set_sched_params(sel4::init_thread::slot::TCB.cap(), self.mcp, self.prio)?;
        Ok(Unit { badge, tcb, cnode })
    }

    /// A spare thread unit, or a new one.
    fn take_unit(&mut self, g: &mut Global) -> ut::Result<Unit> {
        match self.spare.pop() {
            Some(u) => Ok(u),
            None => self.new_unit(g),
        }
    }

    /// Starts thread `tid` of process `pid` on `unit` with `regs` (all registers).
    fn start_thread(&mut self, g: &mut Global, tid: Tid, pid: Pid, unit: Unit, regs: &mut sel4::UserContext, resume: bool) -> sel4::Result<()> {
        let Some(p) = self.procs.get(&pid) else {
            self.spare.push(unit);
            return Err(sel4::Error::InvalidArgument);
        };
        let cspace = sel4::CNodeCapData::new(0, sel4::WORD_SIZE - THREAD_CNODE_BITS);
        vm::entries(2);
        // The core the thread runs on (SMP kernels: see cores.rs).
        let r = unit
            .tcb
            .tcb_set_space(sel4::CPtr::from_bits(FAULT_EP_SLOT), unit.cnode, cspace, p.space.vspace)
            .and_then(|()| crate::cores::place(unit.tcb, self.id).map(|_| ()))
            .and_then(|()| unit.tcb.tcb_write_all_registers(resume, regs));
        if let Err(e) = r {
            self.spare.push(unit);
            return Err(e);
        }
        g.owners.insert(unit.badge, (self.id, tid));
        self.threads.insert(tid, Thread { pid, unit, run: Run::Running });
        self.stats.threads_made += 1;
        self.stats.threads_peak = self.stats.threads_peak.max(self.threads.len() as u64);
        Ok(())
    }

    pub fn resume(&self) -> sel4::Result<()> {
        for t in self.threads.values() {
            vm::entries(1);
            t.unit.tcb.tcb_resume()?;
        }
        Ok(())
    }

    pub fn tcb_of(&self, tid: Tid) -> Option<cap::Tcb> {
        self.threads.get(&tid).map(|t| t.unit.tcb)
    }

    pub fn pid_of(&self, tid: Tid) -> Option<Pid> {
        self.threads.get(&tid).map(|t| t.pid)
    }

    /// Whether `pc` is a rewritten `svc #0` in thread `tid`'s process (the shim's
    /// per-process trap set: its image's, its interpreter's, and those of the files it
    /// mapped executable).
    pub fn is_trap(&mut self, tid: Tid, pc: u64) -> bool {
        self.shim.switch_to(tid) && self.shim.mm.is_trap(pc)
    }

    /// Whether thread `tid`'s process runs code built with the selkie SDK, whose `svc #0`
    /// carries the Linux syscall number in x7: its UnknownSyscall faults are syscalls.
    pub fn sdk_syscalls(&mut self, tid: Tid) -> bool {
        self.shim.switch_to(tid) && self.shim.mm.sdk_syscalls
    }

    /// Thread `tid`'s SDK call of syscall `nr` answered at once, when the shim can
    /// ([`musl_shim::Shim::quick_syscall`]: an identity call, and nothing due after it).
    /// `None`: it goes the usual way.
    pub fn quick_call(&mut self, tid: Tid, nr: u64) -> Option<i64> {
        if !self.sdk_syscalls(tid) {
            return None;
        }
        let v = self.shim.quick_syscall(tid, nr)?;
        self.quick += 1;
        Some(v)
    }

    /// Thread `tid`'s TCB and process, in one lookup.
    pub fn thread(&self, tid: Tid) -> Option<(cap::Tcb, Pid)> {
        self.threads.get(&tid).map(|t| (t.unit.tcb, t.pid))
    }

    /// Runs a syscall of thread `tid` through the shim.
    pub fn syscall(&mut self, g: &mut Global, tid: Tid, nr: u64, args: [u64; 6]) -> musl_shim::Action {
        match self.pid_of(tid) {
            Some(pid) => self.syscall_in(g, tid, pid, nr, args),
            None => {
                self.syscalls += 1;
                musl_shim::Action::Killed(9)
            }
        }
    }

    /// Runs a syscall of thread `tid`, of process `pid` (see [`App::thread`]), through the shim.
    pub fn syscall_in(&mut self, g: &mut Global, tid: Tid, pid: Pid, nr: u64, args: [u64; 6]) -> musl_shim::Action {
        self.syscalls += 1;
        let Some(p) = self.procs.get_mut(&pid) else { return musl_shim::Action::Killed(9) };
        if !self.shim.switch_to(tid) {
            return musl_shim::Action::Killed(9);
        }
        let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
        self.shim.syscall(&mut env, nr, args)
    }

    /// Takes the current thread's (`tid`'s) due signal into `regs`, all its registers as
    /// they are to resume: a handler's frame is written on its stack and `regs` enter the
    /// handler. seL4 gives us no other thread's FP/SIMD registers, so the frame's FP record
    /// holds zeros (a handler reading it sees zeros); delivery happens only where a syscall
    /// returns, where the caller-saved vector registers are dead and the callee-saved ones
    /// are kept by the handler itself.
    pub fn take_signal(&mut self, g: &mut Global, tid: Tid, regs: &mut sel4::UserContext) -> Delivery {
        let Some(p) = self.pid_of(tid).and_then(|pid| self.procs.get_mut(&pid)) else { return Delivery::Killed(9) };
        if !self.shim.switch_to(tid) {
            return Delivery::Killed(9);
        }
        let mut u = user_regs(regs);
        let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
        let d = self.shim.deliver_signal(&mut env, &mut u);
        if let Delivery::Handler(_) = d {
            set_user_regs(regs, &u);
        }
        d
    }

    /// `rt_sigreturn` of thread `tid`: `regs` (all of them, as it trapped) get what the
    /// frame at its sp holds, FP/SIMD left alone. Err: the frame could not be read.
    pub fn sigreturn(&mut self, g: &mut Global, tid: Tid, regs: &mut sel4::UserContext) -> Result<(), ()> {
        let Some(p) = self.pid_of(tid).and_then(|pid| self.procs.get_mut(&pid)) else { return Err(()) };
        if !self.shim.switch_to(tid) {
            return Err(());
        }
        let mut u = user_regs(regs);
        let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
        self.shim.sigreturn(&mut env, &mut u)?;
        set_user_regs(regs, &u);
        Ok(())
    }

    /// A signal's default action ended the current process (thread `tid`'s).
    pub fn killed_by_signal(&mut self, g: &mut Global, tid: Tid, sig: i32) {
        let pid = self.pid_of(tid);
        if self.shim.switch_to(tid) {
            self.shim.kill_current(sig);
        }
        // The app's end (pid 1) is the caller's to report; the rest goes now.
        if self.shim.app_ended().is_none() {
            if let Some(pid) = pid {
                self.drop_process(g, pid);
            }
        }
    }

    /// Before the shim sees a clone: makes sure the child's objects can be had, so that
    /// running out gives EAGAIN rather than a child the shim knows and we cannot start.
    pub fn prepare_clone(&mut self, g: &mut Global, tid: Tid, flags: u64) -> bool {
        if self.spare.is_empty() {
            match self.new_unit(g) {
                Ok(u) => self.spare.push(u),
                Err(_) => return false,
            }
        }
        if flags & CLONE_THREAD == 0 {
            let cost = self.pid_of(tid).and_then(|p| self.procs.get(&p)).map_or(u64::MAX, |p| p.space.copy_cost());
            // Plus a fresh chunk's worth of slack: budgets fill chunk by chunk.
            if self.budget.left() < cost.saturating_add(1 << PROC_CHUNK_BITS) {
                return false;
            }
        }
        true
    }

    /// Before the shim maps a file for thread `tid` (mmap arguments `args`): whether our
    /// heap can take the copy the shim makes on the way (`musl_shim::sys::mm::mmap_copy_size`:
    /// the mapped part of an image file past the pages shared from the text store, or a file
    /// written at run time whole). Probed with one allocation of that size, freed at once,
    /// so that an mmap of a big file gets ENOMEM instead of the root server running out of
    /// heap.
    pub fn room_for_file_map(&mut self, tid: Tid, args: [u64; 6]) -> bool {
        if !self.shim.switch_to(tid) {
            return true;
        }
        let need = musl_shim::sys::mm::mmap_copy_size(&self.shim, args).saturating_add(64 << 10);
        let mut probe: Vec<u8> = Vec::new();
        usize::try_from(need).is_ok_and(|n| probe.try_reserve_exact(n).is_ok())
    }

    /// Parks thread `tid` in its syscall at `at`.
    pub fn block(&mut self, tid: Tid, at: u64, regs: sel4::UserContext) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.run = Run::Blocked { at, regs };
            self.stats.blocks += 1;
        }
    }

    /// Starts the child of a clone made by thread `tid` (parked at `at`): a copy of its
    /// registers after the syscall with x0 = 0, in a copy of its memory for a new process.
    pub fn spawn(&mut self, g: &mut Global, tid: Tid, at: u64, sp: &Spawn) -> Result<(), String> {
        let (Some(pid), Some(tcb)) = (self.pid_of(tid), self.tcb_of(tid)) else { return Err(String::from("no such thread")) };
        let before = vm::entries_so_far();
        let r = self.spawn_inner(g, pid, tcb, at, sp);
        if sp.new_process {
            self.stats.fork_entries += vm::entries_so_far() - before;
        }
        r
    }

    fn spawn_inner(&mut self, g: &mut Global, pid: Pid, tcb: cap::Tcb, at: u64, sp: &Spawn) -> Result<(), String> {
        vm::entries(1);
        let mut regs = tcb.tcb_read_all_registers(false).map_err(|e| format!("reading registers: {e}"))?;
        *regs.pc_mut() = at + 4;
        *regs.gpr_mut(0) = 0;
        if sp.stack != 0 {
            *regs.sp_mut() = sp.stack;
        }
        if let Some(tls) = sp.tls {
            regs.inner_mut().tpidr_el0 = tls;
        }
        let child_pid = if sp.new_process { sp.child } else { pid };
        if sp.new_process {
            let mut child = self.new_proc(g, PROC_CHUNK_BITS).map_err(|e| format!("a new address space: {e}"))?;
            let parent = self.procs.get_mut(&pid).ok_or("no parent process")?;
            child.image_pages = parent.image_pages;
            let shared = self.shim.shared_file_ranges(pid);
            match child.space.copy_of(g, &mut child.budget, &mut parent.space, &mut parent.budget, &shared) {
                Ok(n) => {
                    self.stats.forks += 1;
                    self.stats.frames_copied += n;
                    if !shared.is_empty() {
                        self.shim.share_file_frames(pid);
                        self.shim.share_file_frames(child_pid);
                    }
                }
                Err(e) => {
                    child.destroy(g);
                    return Err(format!("copying the address space: {e}"));
                }
            }
            if let Some(at) = sp.child_settid {
                let _ = child.space.write(g, &mut child.budget, at, &sp.child.to_le_bytes());
            }
            self.procs.insert(child_pid, child);
        }
        let unit = self.take_unit(g).map_err(|e| format!("the child's thread: {e}"))?;
        self.start_thread(g, sp.child, child_pid, unit, &mut regs, true).map_err(|e| format!("starting the child: {e}"))
    }

    /// The child of a clone could not be started: the shim learns that it ended at once.
    pub fn spawn_failed(&mut self, g: &mut Global, parent: Tid, sp: &Spawn) {
        if sp.new_process {
            if self.shim.switch_to(sp.child) {
                self.shim.kill_current(9);
            }
            self.drop_process(g, sp.child);
        } else if let Some(pid) = self.shim.pid_of(sp.child) {
            // The thread "exits" before running: the shim's exit path clears its tid.
            if self.shim.switch_to(sp.child) {
                if let Some(p) = self.procs.get_mut(&pid) {
                    let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
                    let _ = self.shim.syscall(&mut env, 93, [0; 6]);
                }
            }
        }
        self.shim.switch_to(parent);
    }

    /// execve of thread `tid`: the program goes into a new address space, the process's
    /// other threads end, the old space is torn down, and `tid` goes on at the new entry
    /// (its registers written; the caller replies).
    pub fn exec(&mut self, g: &mut Global, tid: Tid, img: &ExecImage) -> Result<(), String> {
        let (Some(pid), Some(tcb)) = (self.pid_of(tid), self.tcb_of(tid)) else { return Err(String::from("no such thread")) };
        let (p, pc, sp) = self.load(g, pid, img)?;
        let others: Vec<Tid> = self.threads.iter().filter(|(&t, th)| t != tid && th.pid == pid).map(|(&t, _)| t).collect();
        for t in others {
            self.retire_thread(g, t);
        }
        let cspace = sel4::CNodeCapData::new(0, sel4::WORD_SIZE - THREAD_CNODE_BITS);
        let cnode = self.threads.get(&tid).map(|t| t.unit.cnode).ok_or("no such thread")?;
        vm::entries(2);
        let mut regs = sel4::UserContext::default();
        *regs.pc_mut() = pc;
        *regs.sp_mut() = sp;
        let r = tcb
            .tcb_set_space(sel4::CPtr::from_bits(FAULT_EP_SLOT), cnode, cspace, p.space.vspace)
            .and_then(|()| tcb.tcb_write_all_registers(false, &mut regs));
        if let Err(e) = r {
            p.destroy(g);
            return Err(format!("switching the thread over: {e}"));
        }
        if let Some(old) = self.procs.insert(pid, p) {
            old.destroy(g);
        }
        self.shim.set_program(&img);
        self.stats.execs += 1;
        Ok(())
    }

    /// Thread `tid` is gone: its TCB is stopped and kept for the next thread.
    pub fn retire_thread(&mut self, g: &mut Global, tid: Tid) {
        if let Some(t) = self.threads.remove(&tid) {
            vm::entries(1);
            let _ = t.unit.tcb.tcb_suspend();
            g.owners.remove(&t.unit.badge);
            self.spare.push(t.unit);
        }
    }

    /// Process `pid` is gone: its threads stop, its memory is given back.
    pub fn drop_process(&mut self, g: &mut Global, pid: Pid) {
        let threads: Vec<Tid> = self.threads.iter().filter(|(_, t)| t.pid == pid).map(|(&t, _)| t).collect();
        for t in threads {
            self.retire_thread(g, t);
        }
        if let Some(p) = self.procs.remove(&pid) {
            if pid == musl_shim::PID {
                self.first_space = Some(p.space.stats);
            }
            p.destroy(g);
        }
    }

    /// Wakes thread `tid` (blocked, `woken` its pc, sp, spsr and x0..x8 to resume with)
    /// into the handler of its due signal, or ends its process by the signal.
    fn wake_into_signal(&mut self, g: &mut Global, tid: Tid, tcb: cap::Tcb, woken: &sel4::UserContext) {
        vm::entries(1);
        let mut regs = match tcb.tcb_read_all_registers(false) {
            Ok(r) => r,
            Err(e) => {
                log::error!("{}: reading thread {tid}'s registers: {e}", self.name);
                return self.killed_by_signal(g, tid, 9);
            }
        };
        *regs.pc_mut() = *woken.pc();
        *regs.gpr_mut(0) = *woken.gpr(0);
        match self.take_signal(g, tid, &mut regs) {
            Delivery::Killed(sig) => self.killed_by_signal(g, tid, sig),
            Delivery::None | Delivery::Handler(_) => {
                vm::entries(1);
                if let Err(e) = tcb.tcb_write_all_registers(true, &mut regs) {
                    log::error!("{}: waking thread {tid}: {e}", self.name);
                }
            }
        }
    }

    /// Carries out what the shim decided for threads other than the caller (and what
    /// doing so made it decide: a signal ending a process wakes its parent).
    pub fn apply_events(&mut self, g: &mut Global) {
        loop {
            let events = self.shim.take_events();
            if events.is_empty() || self.done {
                return;
            }
            self.apply(g, events);
        }
    }

    fn apply(&mut self, g: &mut Global, events: Vec<Event>) {
        for ev in events {
            match ev {
                Event::Wake { tid, resume } => {
                    let Some(t) = self.threads.get_mut(&tid) else { continue };
                    let Run::Blocked { at, mut regs } = core::mem::replace(&mut t.run, Run::Running) else { continue };
                    match resume {
                        Resume::Value(v) => {
                            *regs.gpr_mut(0) = v as u64;
                            *regs.pc_mut() = at + 4;
                        }
                        Resume::Retry => *regs.pc_mut() = at,
                    }
                    let tcb = t.unit.tcb;
                    self.stats.wakes += 1;
                    let current = self.shim.switch_to(tid);
                    if let Some(p) = self.pid_of(tid).and_then(|pid| self.procs.get_mut(&pid)).filter(|_| current) {
                        // Its memory may be older than what another process stored while it
                        // was blocked.
                        let mut env = Env { g, space: &mut p.space, budget: &mut p.budget, rng: &mut self.rng, frames: self.frames };
                        self.shim.sync_mappings(&mut env);
                    }
                    if current && self.shim.signal_ready() {
                        // A signal is due as the thread resumes: its handler runs first.
                        self.wake_into_signal(g, tid, tcb, &regs);
                        continue;
                    }
                    // Restarting the thread drops the reply we never sent.
                    vm::entries(1);
                    if let Err(e) = tcb.tcb_write_registers(true, 4, &mut regs) {
                        log::error!("{}: waking thread {tid}: {e}", self.name);
                    }
                }
                Event::ProcessGone { pid } => self.drop_process(g, pid),
                Event::ThreadGone { tid } => self.retire_thread(g, tid),
            }
        }
    }

    /// Whether every thread is parked with nothing that could wake it: no deadline, and
    /// no thread running to make a wake.
    pub fn deadlocked(&self) -> bool {
        !self.threads.is_empty() && self.threads.values().all(|t| matches!(t.run, Run::Blocked { .. })) && self.shim.next_deadline().is_none()
    }

    /// Emulates an EL0 read of a CPU ID register (`mrs xN, MIDR_EL1` and the rest of the
    /// ID space, op0=3 op1=0 CRn=0), as Linux does when AT_HWCAP has CPUID: glibc's startup
    /// reads MIDR_EL1. Ok(false): the instruction at `pc` is something else.
    pub fn emulate_id_register(&mut self, g: &mut Global, tid: Tid, pc: u64) -> Result<bool, sel4::Error> {
        let (Some(pid), Some(tcb)) = (self.pid_of(tid), self.tcb_of(tid)) else { return Ok(false) };
        let Some(p) = self.procs.get_mut(&pid) else { return Ok(false) };
        let mut word = [0u8; 4];
        if p.space.read(g, &mut p.budget, pc, &mut word).is_err() {
            return Ok(false);
        }
        let Some((rt, value)) = id_register_read(u32::from_le_bytes(word)) else { return Ok(false) };
        let count = 3 + rt as u64 + 1;
        let mut regs = tcb.tcb_read_registers(false, count)?;
        if rt != 31 {
            *regs.gpr_mut(rt as usize) = value;
        }
        *regs.pc_mut() = pc + 4;
        tcb.tcb_write_registers(false, count, &mut regs)?;
        Ok(true)
    }

    pub fn fault_in(&mut self, g: &mut Global, tid: Tid, addr: u64) -> ut::Result<bool> {
        let Some(p) = self.pid_of(tid).and_then(|pid| self.procs.get_mut(&pid)) else { return Ok(false) };
        p.space.fault_in(g, &mut p.budget, addr)
    }

    /// Stops the app and gives back everything it had, with a stats line.
    pub fn destroy(&mut self, g: &mut Global) {
        if self.done {
            return;
        }
        self.done = true;
        for t in self.threads.values() {
            vm::entries(1);
            let _ = t.unit.tcb.tcb_suspend();
        }
        let (mut image, mut stack, mut heap, mut other) = (0, 0, 0, 0);
        let first = self.procs.get(&musl_shim::PID);
        if let Some(p) = first {
            // Frames backing each kind of region now (the shim's map is pid 1's when its
            // end was the app's end).
            for vpage in p.space.present() {
                match self.shim.mm.lookup(vpage).map(|r| r.kind) {
                    Some(RegionKind::Image) => image += 1,
                    Some(RegionKind::Stack) => stack += 1,
                    Some(RegionKind::Brk | RegionKind::Anon | RegionKind::File) => heap += 1,
                    None => other += 1,
                }
            }
        }
        let st = first.map(|p| p.space.stats).or(self.first_space).unwrap_or_default();
        let image_pages = first.map_or(0, |p| p.image_pages);
        let a = self.stats;
        crate::report!(
            "stats {}: {} syscalls, {} kernel entries for the {} that returned at once; frames peak {}, at exit image {} ({} shared with the bundle; PT_LOADs cover {} pages) stack {} heap {} other {}; {} tables; {} lazy faults; {} of {} untyped bytes; root heap {} of {} bytes (peak {}); threads {} made, {} at most at once; {} blocked, {} woken; {} forks copying {} frames in {} kernel entries; {} execs; {} files' syscalls found at run time (not in the text store)",
            self.name,
            self.syscalls + self.quick,
            self.syscall_entries + 2 * self.quick,
            self.returned + self.quick,
            st.frames_peak,
            image,
            st.shared_frames,
            image_pages,
            stack,
            heap,
            other,
            st.tables,
            st.lazy_faults,
            self.budget.used(),
            self.budget.limit(),
            crate::kernel::charged(self.id),
            self.heap_quota,
            crate::kernel::charged_peak(self.id),
            a.threads_made,
            a.threads_peak,
            a.blocks,
            a.wakes,
            a.forks,
            a.frames_copied,
            a.fork_entries,
            a.execs,
            self.shim.scanned_files()
        );
        self.release(g);
    }

    /// Gives back every object and slot (the threads may still be running).
    fn release(&mut self, g: &mut Global) {
        for (_, t) in core::mem::take(&mut self.threads) {
            g.owners.remove(&t.unit.badge);
        }
        self.spare.clear();
        for (_, p) in core::mem::take(&mut self.procs) {
            p.destroy(g);
        }
        if let Err(e) = self.budget.release(&mut g.pool) {
            log::error!("{}: revoking its threads: {e}", self.name);
        }
        for s in self.unit_slots.drain(..) {
            let _ = root_path(s).delete();
            g.slots.free(s);
        }
        // Our bookkeeping for it goes too (freed while charged to it, see main.rs).
        self.shim = Shim::new(&[], empty_config());
    }
}

/// Distinct pages the PT_LOADs cover (not the span: static musl leaves a gap).
fn image_pages(plan: &LoadPlan) -> u64 {
    let mut set = alloc::collections::BTreeSet::new();
    for seg in &plan.segments {
        let first = seg.vaddr / PAGE;
        let last = (seg.vaddr + seg.memsz.max(1) - 1) / PAGE;
        set.extend(first..=last);
    }
    set.len() as u64
}
