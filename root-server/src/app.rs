//! One app: its seL4 objects (CNode, VSpace, TCB, IPC buffer, badged fault endpoint), its
//! Linux personality (a musl-shim [`Shim`]) and the platform the shim runs against.

use crate::console;
use crate::ut::{self, root_path, Budget};
use crate::vm::{Global, Space};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use musl_shim::errno::EFAULT;
use musl_shim::mm::{RegionKind, PAGE};
use musl_shim::start::{self, LoadPlan, StackInfo};
use musl_shim::{AddressSpace, Clock, ClockId, Config, Console, Entropy, GuestMemory, Prot, Shim, SysResult, Timespec};
use sel4::cap;
use sel4::CapTypeForObjectOfFixedSize as _;

/// The fault endpoint's slot in every app's CNode.
const APP_FAULT_EP: u64 = 1;
/// An app's CNode: 4 slots (only the fault endpoint is used).
const APP_CNODE_BITS: usize = 2;
/// Where the app's IPC buffer lives: above the stack top, past a guard page.
pub const IPC_BUFFER: u64 = start::STACK_TOP + PAGE;
/// Untyped bytes for the TCB, VSpace, CNodes and page tables, besides the app's pages.
const OBJECT_OVERHEAD: u64 = 256 * 1024;

/// Why an app could not be started.
pub type StartError = String;

pub struct App {
    pub name: String,
    pub shim: Shim<'static>,
    pub space: Space,
    pub budget: Budget,
    pub tcb: cap::Tcb,
    /// Our slots holding the app's TCB, VSpace and CNode caps (storage CNodes: `space`).
    slots: Vec<usize>,
    traps: Vec<u64>,
    bias: u64,
    rng: u64,
    pub syscalls: u64,
    /// Kernel entries spent on syscalls that returned to the app (trap to resume).
    pub syscall_entries: u64,
    /// Most root-heap bytes this app's state may take (see `kernel::charged`).
    pub heap_quota: usize,
    pub done: bool,
    /// Pages the ELF's PT_LOADs cover: for the measurement note.
    pub image_pages: u64,
}

/// What the shim sees: the app's memory and our console, clock and entropy.
pub struct Env<'a> {
    pub g: &'a mut Global,
    pub space: &'a mut Space,
    pub budget: &'a mut Budget,
    pub rng: &'a mut u64,
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
}

impl Console for Env<'_> {
    fn console_write(&mut self, _fd: i32, bytes: &[u8]) -> usize {
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
            // CPU time is not accounted per thread: wall time since boot bounds it.
            ClockId::Monotonic | ClockId::Cpu => Timespec::from_nanos(crate::time::monotonic_ns()),
        }
    }
    fn sleep(&mut self, ns: u64) {
        // Without the shim's tasks nothing else can run meanwhile: wait it out.
        let end = crate::time::monotonic_ns().saturating_add(ns);
        while crate::time::monotonic_ns() < end {}
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
    fn slot_of(&self, va: usize) -> Option<usize> {
        let i = va.checked_sub(self.start)? / PAGE as usize;
        (i < self.count).then_some(self.first + i)
    }
}

/// An app's description, already unescaped from the manifest.
pub struct AppSpec<'b> {
    pub name: String,
    pub binary: String,
    pub rootfs: &'static [u8],
    /// The entrypoint as a page-aligned bundle member (`<rootfs>.exe`), when there is one.
    pub exe: Option<&'static [u8]>,
    pub frames: ImageFrames,
    pub traps: &'b [u8],
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

fn elf_of(shim: &Shim<'static>, path: &str) -> Result<&'static [u8], StartError> {
    use musl_shim::vfs::{Data, Found, Kind, ROOT};
    match shim.vfs.resolve(ROOT, path.as_bytes(), true) {
        Ok(Found::Node(ino)) => match &shim.vfs.node(ino).kind {
            Kind::File(Data::Image(b)) => Ok(b),
            _ => Err(format!("{path} is not a regular file in the rootfs")),
        },
        _ => Err(format!("{path} is not in the rootfs")),
    }
}

impl App {
    /// Creates the app's objects, loads its ELF and builds its stack; the TCB is left
    /// suspended (see [`App::resume`]). On failure everything it got is given back.
    pub fn create(g: &mut Global, ep: cap::Endpoint, id: usize, a: AppSpec<'_>, heap_quota: usize) -> Result<App, StartError> {
        let mut budget = Budget::new(0);
        let mut slots = Vec::new();
        let r = Self::build(g, ep, id, a, heap_quota, &mut budget, &mut slots);
        if r.is_err() {
            g.evict_app(id);
            let _ = budget.release(&mut g.pool);
            for s in slots {
                let _ = root_path(s).delete();
                g.slots.free(s);
            }
        }
        r
    }

    fn build(
        g: &mut Global,
        ep: cap::Endpoint,
        id: usize,
        a: AppSpec<'_>,
        heap_quota: usize,
        budget: &mut Budget,
        slots: &mut Vec<usize>,
    ) -> Result<App, StartError> {
        let ctx = |what: &str, e: ut::Error| format!("{what}: {e}");
        let spec = a.spec;
        let heap_bytes = u64::from(spec.heap_pages) * PAGE;
        let stack_bytes = u64::from(spec.stack_pages).max(4) * PAGE;

        let mut traps: Vec<u64> = a.traps.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        traps.sort_unstable();

        // The shim first: it finds the ELF in the rootfs.
        let probe = Shim::new(a.rootfs, empty_config());
        let elf = elf_of(&probe, &a.binary)?;
        drop(probe);
        let plan = LoadPlan::parse(elf).map_err(|e| format!("{}: {e}", a.binary))?;
        let bias = plan.bias();
        let layout = start::layout(&plan, heap_bytes, stack_bytes).map_err(|e| format!("{}: {e}", a.binary))?;
        // Distinct pages the PT_LOADs cover (not the span: static musl leaves a gap).
        let mut image_set = alloc::collections::BTreeSet::new();
        for seg in &plan.segments {
            let first = seg.vaddr / PAGE;
            let last = (seg.vaddr + seg.memsz.max(1) - 1) / PAGE;
            image_set.extend(first..=last);
        }
        let image_pages = image_set.len() as u64;
        // Frames and tables, and a storage CNode slot (32 bytes) for each.
        let pages = image_pages + stack_bytes / PAGE + u64::from(spec.heap_pages) + 1;
        let limit = (image_pages + stack_bytes / PAGE + u64::from(spec.heap_pages) + 1) * PAGE
            + spec.extra_untyped_bytes()
            + OBJECT_OVERHEAD
            + pages * 32;
        budget.limit = limit;

        // Kernel objects, in our CNode.
        let mut obj = |g: &mut Global, budget: &mut Budget, bp: sel4::ObjectBlueprint, what: &str| -> Result<usize, StartError> {
            let s = g.slots.alloc().map_err(|e| ctx(what, e))?;
            slots.push(s);
            budget
                .retype(&mut g.pool, &mut g.slots, &bp, &ut::root_cnode().absolute_cptr_for_self(), s)
                .map_err(|e| ctx(what, e))?;
            Ok(s)
        };
        let vspace_slot = obj(g, budget, sel4::cap_type::VSpace::object_blueprint(), "VSpace")?;
        let cnode_slot = obj(g, budget, sel4::ObjectBlueprint::CNode { size_bits: APP_CNODE_BITS }, "CNode")?;
        let tcb_slot = obj(g, budget, sel4::cap_type::Tcb::object_blueprint(), "TCB")?;
        let vspace = cap::VSpace::from_bits(vspace_slot as u64);
        let cnode = cap::CNode::from_bits(cnode_slot as u64);
        let tcb = cap::Tcb::from_bits(tcb_slot as u64);
        let kerr = |what: &str, e: sel4::Error| format!("{what}: {e}");
        sel4::init_thread::slot::ASID_POOL.cap().asid_pool_assign(vspace).map_err(|e| kerr("assigning an ASID", e))?;
        // The fault endpoint, badged with the app's id. Write to send the fault, GrantReply
        // so the kernel can give us the reply capability.
        cnode
            .absolute_cptr_from_bits_with_depth(APP_FAULT_EP, APP_CNODE_BITS)
            .mint(&root_path(ep.bits() as usize), sel4::CapRights::new(true, false, false, true), id as u64 + 1)
            .map_err(|e| kerr("minting the fault endpoint", e))?;
        let mut space = Space::new(id, vspace);
        // The Linux side: load the ELF, build the stack.
        let mut shim = Shim::new(a.rootfs, Config {
            uid: a.uid,
            gid: a.gid,
            cwd: a.cwd,
            hostname: String::from("selkie"),
            layout,
            stack_size: stack_bytes,
        });
        shim.vfs.set_tmpfs_limit(heap_quota / 2);
        shim.set_exe(&a.binary);
        let mut rng = 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 32) ^ elf.len() as u64;
        // Storage CNodes made so far live in `space`: on failure their slots go back too.
        let started = (|| -> Result<(), StartError> {
            let cspace_data = sel4::CNodeCapData::new(0, sel4::WORD_SIZE - APP_CNODE_BITS);
            space
                .map_special(g, budget, IPC_BUFFER, |frame| {
                    tcb.tcb_configure(sel4::CPtr::from_bits(APP_FAULT_EP), cnode, cspace_data, vspace, IPC_BUFFER, frame)
                })
                .map_err(|e| ctx("configuring the TCB", e))?;
            let prio = u64::from(spec.priority).min(254);
            let mcp = u64::from(spec.max_priority).min(254).max(prio);
            tcb.tcb_set_sched_params(sel4::init_thread::slot::TCB.cap(), mcp, prio).map_err(|e| kerr("setting priorities", e))?;

            let (entry, sp) = {
                // Read-only segments straight from the bundle when the entrypoint is there
                // page-aligned; the rest is copied by musl-shim's loader.
                let shared = match a.exe {
                    Some(exe) if exe.as_ptr() as usize % PAGE as usize == 0 && exe == elf => shareable(&plan, exe.len()),
                    _ => Vec::new(),
                };
                let mut copied = plan.clone();
                copied.segments = plan.segments.iter().enumerate().filter(|(i, _)| !shared.contains(i)).map(|(_, s)| *s).collect();
                for &i in &shared {
                    let s = plan.segments[i];
                    let start = (s.vaddr + bias) & !(PAGE - 1);
                    let end = musl_shim::mm::page_up(s.vaddr + bias + s.memsz).unwrap_or(start);
                    let file = a.exe.map_or(0, |e| e.as_ptr() as usize) as u64 + (s.offset & !(PAGE - 1));
                    for k in 0..(end - start) / PAGE {
                        let slot = a.frames.slot_of((file + k * PAGE) as usize).ok_or("the entrypoint lies outside our image")?;
                        space.map_shared(g, budget, start + k * PAGE, slot, s.prot).map_err(|e| ctx("mapping a shared segment", e))?;
                    }
                    space.add_range(start, end, s.prot);
                    shim.mm.record(start, end, s.prot, RegionKind::Image);
                }
                let mut env = Env { g, space: &mut space, budget, rng: &mut rng };
                start::load(&mut env, &mut shim.mm, &copied, elf, bias).map_err(|e| format!("loading {}: {e}", a.binary))?;
                let top = start::map_stack(&mut env, &mut shim.mm, stack_bytes, plan.exec_stack).map_err(|e| format!("stack: {e}"))?;
                let auxv = start::auxv(&plan, bias, a.uid, a.gid, start::HWCAP_A57);
                let mut random = [0u8; 16];
                env.fill(&mut random);
                let argv: Vec<&[u8]> = a.argv.iter().map(|v| v.as_slice()).collect();
                let envp: Vec<&[u8]> = a.envp.iter().map(|v| v.as_slice()).collect();
                let info = StackInfo { argv: &argv, envp: &envp, execfn: a.binary.as_bytes(), random, auxv: &auxv };
                let sp = start::build_stack(&mut env, top, &info).map_err(|e| format!("stack: {e}"))?;
                (plan.entry.wrapping_add(bias), sp)
            };
            let mut regs = sel4::UserContext::default();
            *regs.pc_mut() = entry;
            *regs.sp_mut() = sp;
            tcb.tcb_write_all_registers(false, &mut regs).map_err(|e| kerr("writing registers", e))?;
            Ok(())
        })();
        if let Err(e) = started {
            slots.extend(space.storage_slots.drain(..));
            return Err(e);
        }
        Ok(App {
            name: a.name,
            shim,
            space,
            budget: core::mem::replace(budget, Budget::new(0)),
            tcb,
            slots: core::mem::take(slots),
            traps,
            bias,
            rng,
            syscalls: 0,
            syscall_entries: 0,
            heap_quota,
            done: false,
            image_pages,
        })
    }

    pub fn resume(&self) -> sel4::Result<()> {
        self.tcb.tcb_resume()
    }

    /// Whether `pc` is a rewritten `svc #0`.
    pub fn is_trap(&self, pc: u64) -> bool {
        self.traps.binary_search(&pc.wrapping_sub(self.bias)).is_ok()
    }

    /// Runs a syscall through the shim.
    pub fn syscall(&mut self, g: &mut Global, nr: u64, args: [u64; 6]) -> musl_shim::Action {
        self.syscalls += 1;
        let mut env = Env { g, space: &mut self.space, budget: &mut self.budget, rng: &mut self.rng };
        self.shim.syscall(&mut env, nr, args)
    }

    /// Emulates an EL0 read of a CPU ID register (`mrs xN, MIDR_EL1` and the rest of the
    /// ID space, op0=3 op1=0 CRn=0), as Linux does when AT_HWCAP has CPUID: glibc's startup
    /// reads MIDR_EL1. Ok(false): the instruction at `pc` is something else.
    pub fn emulate_id_register(&mut self, g: &mut Global, pc: u64) -> Result<bool, sel4::Error> {
        let mut word = [0u8; 4];
        if self.space.read(g, &mut self.budget, pc, &mut word).is_err() {
            return Ok(false);
        }
        let Some((rt, value)) = id_register_read(u32::from_le_bytes(word)) else { return Ok(false) };
        let count = 3 + rt as u64 + 1;
        let mut regs = self.tcb.tcb_read_registers(false, count)?;
        if rt != 31 {
            *regs.gpr_mut(rt as usize) = value;
        }
        *regs.pc_mut() = pc + 4;
        self.tcb.tcb_write_registers(false, count, &mut regs)?;
        Ok(true)
    }

    pub fn fault_in(&mut self, g: &mut Global, addr: u64) -> ut::Result<bool> {
        self.space.fault_in(g, &mut self.budget, addr)
    }

    /// Stops the app and gives back everything it had: its untyped chunks are revoked
    /// (which deletes its TCB, VSpace, CNodes, frames and tables) and returned to the pool.
    pub fn destroy(&mut self, g: &mut Global) {
        if self.done {
            return;
        }
        self.done = true;
        let _ = self.tcb.tcb_suspend();
        let st = self.space.stats;
        // Frames backing each kind of region now (the IPC buffer is "other").
        let (mut image, mut stack, mut heap, mut other) = (0, 0, 0, 0);
        for vpage in self.space.present() {
            match self.shim.mm.lookup(vpage).map(|r| r.kind) {
                Some(RegionKind::Image) => image += 1,
                Some(RegionKind::Stack) => stack += 1,
                Some(RegionKind::Brk | RegionKind::Anon | RegionKind::File) => heap += 1,
                None => other += 1,
            }
        }
        crate::report!(
            "stats {}: {} syscalls, {} kernel entries for those that returned; frames peak {}, at exit image {} ({} shared with the bundle; PT_LOADs cover {} pages) stack {} heap {} other {}; {} tables; {} lazy faults; {} of {} untyped bytes in {} chunks; root heap {} of {} bytes",
            self.name,
            self.syscalls,
            self.syscall_entries,
            st.frames_peak,
            image,
            st.shared_frames,
            self.image_pages,
            stack,
            heap,
            other,
            st.tables,
            st.lazy_faults,
            self.budget.used,
            self.budget.limit,
            self.budget.chunks(),
            crate::kernel::charged(self.space.app),
            self.heap_quota
        );
        g.evict_app(self.space.app);
        if let Err(e) = self.budget.release(&mut g.pool) {
            log::error!("{}: revoking its memory: {e}", self.name);
        }
        // Our bookkeeping for it goes too (freed while charged to it, see main.rs).
        self.shim = Shim::new(&[], empty_config());
        self.space.forget();
        let storage = core::mem::take(&mut self.space.storage_slots);
        for s in self.slots.drain(..).chain(storage) {
            // Revocation emptied them; delete is a no-op on an empty slot.
            let _ = root_path(s).delete();
            g.slots.free(s);
        }
    }
}
