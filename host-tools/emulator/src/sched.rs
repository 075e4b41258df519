//! The emulator's scheduler: every process of the app is one unicorn CPU with its own
//! memory (a fork copies it, but for the pages of shared file mappings, which
//! [`crate::shared`] maps into both), every thread a saved register set that is loaded
//! into its process's CPU when it runs. One host thread runs them all, round robin: a thread runs
//! until it blocks, ends or has had its slice. Blocking, waking, and the processes' and
//! threads' bookkeeping are musl-shim's ([`musl_shim::task`]); this module only runs what
//! the shim decides and delivers its traps.

use crate::host::{self, Env, Event, Hooks};
use crate::regs::Regs;
use crate::{shared_text, Ending, ExitReport, Fault, FaultKind, Options};
use anyhow::{anyhow, Context, Result};
use musl_shim::mm::{MemoryMap, PAGE};
use musl_shim::start::{self, LoadPlan, StackInfo};
use musl_shim::text::{SDK_CALL_LABEL as SDK_CALL, SDK_CALL_NR};
use musl_shim::task::{Ended, Event as TaskEvent, Pid, Resume, Tid};
use musl_shim::vfs::{Found, Kind, ROOT};
use musl_shim::sigframe::{self, Delivery, SIGTRAMP};
use musl_shim::{Action, ClockId, Config, ExecImage, Shim, Spawn};
use selkie_manifest::App;
use crate::shared::SharedPages;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};
use unicorn_engine::{Arch, Arm64CpuModel, Mode, RegisterARM64, Unicorn};

/// How long a thread runs before another runnable one gets the CPU.
/// How a syscall passes its number and arguments.
#[derive(Clone, Copy, Debug)]
enum Abi {
    /// Linux's: the arguments in x0..x5, the number in this register (x8 for a rewritten
    /// `svc`, x7 for selkie-SDK code).
    Linux(RegisterARM64),
    /// The selkie SDK's seL4_Call: the number from the label, `len` arguments in x2..x5.
    /// The result goes to x0 as for Linux's: the SDK's musl takes x2 only after a reply.
    Call { nr: u64, len: usize },
}

const SLICE: Duration = Duration::from_millis(10);
/// The same in translation blocks started: what the block hook counts.
const SLICE_BLOCKS: u64 = 200_000;

type Cpu = Unicorn<'static, Hooks>;

/// One process: its CPU and memory, and what its loaded image traps on.
struct Proc {
    uc: Cpu,
    /// Read-only image pages a syscall may not write into (shared text on seL4).
    protected: Vec<Range<u64>>,
    /// The thread whose registers are in `uc` now.
    loaded: Option<Tid>,
    /// Pages `uc` shares with other processes (after `uc`: it must be dropped first).
    shared: Vec<Rc<SharedPages>>,
}

struct Thread {
    pid: Pid,
    /// Saved registers while another thread has the CPU (`None`: they are in the CPU).
    regs: Option<Regs>,
    /// Where the thread's last syscall trapped, when it is parked in it.
    parked_at: Option<u64>,
}

pub struct Machine<'r> {
    app: &'r App<String>,
    opts: &'r Options,
    shim: Shim<'r>,
    procs: BTreeMap<Pid, Proc>,
    threads: BTreeMap<Tid, Thread>,
    runq: VecDeque<Tid>,
    syscalls: u64,
    heap: u64,
    stack: u64,
    /// A fault of the first process: the app's end.
    first_fault: Option<Fault>,
    /// Other apps run on this host thread too (see [`crate::run_all`]): a thread gets its
    /// slice and no more even when it is the app's only runnable one.
    shared: bool,
    /// Where the app's stdout and stderr go when it shares them.
    out: Option<host::Output>,
}

/// What one [`Machine::step`] did.
pub enum Step {
    /// A thread ran (or a timeout was taken).
    Ran,
    /// Nothing can run until this deadline (monotonic ns), or (`None`) until another app
    /// wakes a thread of this one.
    Idle(Option<u64>),
    /// The app has ended.
    Ended(Ending),
}

/// A page above every app's stack (and its 44-bit address space use) holding one `clrex`:
/// run on every switch between threads of a CPU, so that a store-exclusive of a thread
/// preempted inside its load-exclusive/store-exclusive loop fails and retries, as it does
/// on hardware. Without it, QEMU's value-compared monitor lets the resumed thread's store
/// succeed against the other thread's load: two threads would hold one lock.
const CLREX_PAGE: u64 = 0x7f_ffff_0000;
const CLREX: u32 = 0xd503_3f5f;

fn new_cpu() -> Result<Cpu> {
    let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, Hooks::default())
        .map_err(|e| anyhow!("unicorn: {e:?}"))?;
    uc.ctl_set_cpu_model(Arm64CpuModel::A72 as i32).map_err(|e| anyhow!("cpu model: {e:?}"))?;
    host::install_hooks(&mut uc)?;
    uc.mem_map(CLREX_PAGE, PAGE, unicorn_engine::Prot::EXEC | unicorn_engine::Prot::READ)
        .map_err(|e| anyhow!("clrex page: {e:?}"))?;
    uc.mem_write(CLREX_PAGE, &CLREX.to_le_bytes()).map_err(|e| anyhow!("clrex page: {e:?}"))?;
    // The signal trampoline (a handler's return address without SA_RESTORER).
    uc.mem_map(SIGTRAMP, PAGE, unicorn_engine::Prot::EXEC | unicorn_engine::Prot::READ)
        .map_err(|e| anyhow!("sigtramp page: {e:?}"))?;
    uc.mem_write(SIGTRAMP, &sigframe::sigtramp_code()).map_err(|e| anyhow!("sigtramp page: {e:?}"))?;
    // FP/SIMD on (CPACR_EL1.FPEN = 0b11).
    uc.reg_write(RegisterARM64::CPACR_EL1, 3 << 20).map_err(|e| anyhow!("{e:?}"))?;
    Ok(uc)
}

/// What loading an image into a fresh CPU gave.
struct Loaded {
    uc: Cpu,
    protected: Vec<Range<u64>>,
    sp: u64,
    pc: u64,
}

impl<'r> Machine<'r> {
    pub fn start(app: &'r App<String>, rootfs_cpio: &'r [u8], text: &'r [u8], opts: &'r Options) -> Result<Self> {
        let heap = u64::from(app.spec.heap_pages) * PAGE;
        let stack = u64::from(app.spec.stack_pages) * PAGE;
        let empty = musl_shim::mm::MemLayout { brk_start: 0, heap_limit: 0, mmap_bottom: 0, mmap_top: 0 };
        let mut shim = Shim::new(
            rootfs_cpio,
            Config {
                uid: app.uid,
                gid: app.gid,
                cwd: app.cwd.clone(),
                hostname: opts.hostname.clone(),
                layout: empty,
                stack_size: stack,
            },
        );
        if !text.is_empty() {
            let store = musl_shim::text::TextStore::parse(text).map_err(|e| anyhow!("app {}: its text store: {e}", app.name))?;
            shim.set_text_store(store);
        }
        shim.enable_tasks(musl_shim::task::DEFAULT_MAX_TASKS.max(app.spec.max_threads + app.spec.max_processes));
        shim.set_task_limits(app.spec.max_threads, app.spec.max_processes);
        shim.vfs.set_rootfs_limit(usize::try_from(app.spec.rootfs_write_bytes).unwrap_or(usize::MAX));
        let mut m = Machine {
            app,
            opts,
            shim,
            procs: BTreeMap::new(),
            threads: BTreeMap::new(),
            runq: VecDeque::new(),
            syscalls: 0,
            heap,
            stack,
            first_fault: None,
            shared: false,
            out: None,
        };
        let img = ExecImage {
            path: app.binary.as_bytes().to_vec(),
            execfn: app.binary.as_bytes().to_vec(),
            argv: app.argv.iter().map(|s| s.as_bytes().to_vec()).collect(),
            envp: app.envp.iter().map(|s| s.as_bytes().to_vec()).collect(),
        };
        m.shim.set_program(&img);
        let l = m.load(&img).with_context(|| format!("app {}", app.name))?;
        let pid = musl_shim::PID;
        m.install(pid, pid, l)?;
        Ok(m)
    }

    /// The program at `path` in the rootfs, as the image has it, with the file offsets of
    /// its syscall words (its pack-time trap table; see `musl_shim::text`).
    fn program(&self, path: &[u8]) -> Result<(Vec<u8>, Vec<u64>)> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let ino = match self.shim.vfs.resolve(ROOT, path, true) {
            Ok(Found::Node(ino)) => ino,
            _ => anyhow::bail!("{shown} not found in the rootfs"),
        };
        match &self.shim.vfs.node(ino).kind {
            Kind::File(d) => Ok((d.bytes().to_vec(), self.shim.traps_of(d.bytes()))),
            _ => anyhow::bail!("{shown} in the rootfs is not a regular file"),
        }
    }

    /// Loads `img` into a fresh CPU and the current process's fresh memory map: the
    /// program, and its interpreter when it has one (started first, with AT_BASE).
    fn load(&mut self, img: &ExecImage) -> Result<Loaded> {
        let shown = String::from_utf8_lossy(&img.path).into_owned();
        let (elf, traps) = self.program(&img.path)?;
        let plan = LoadPlan::parse(&elf).map_err(|e| anyhow!("{shown}: {e}"))?;
        let bias = plan.bias();
        let layout = start::layout(&plan, self.heap, self.stack).map_err(|e| anyhow!("{shown}: {e}"))?;
        self.shim.mm = MemoryMap::new(layout);
        let mut uc = new_cpu()?;
        let mut env = Env::new(&mut uc);
        start::load(&mut env, &mut self.shim.mm, &plan, &elf, bias, &traps).map_err(|e| anyhow!("{shown}: loading: {e}"))?;
        let mut auxv = start::auxv(&plan, bias, self.shim.proc_.uid, self.shim.proc_.gid, start::HWCAP_A57);
        let mut pc = plan.entry.wrapping_add(bias);
        if let Some(interp) = &plan.interp {
            let ishown = String::from_utf8_lossy(interp).into_owned();
            drop(env);
            let (ielf, itraps) = self.program(interp).with_context(|| format!("{shown}: its interpreter"))?;
            env = Env::new(&mut uc);
            let iplan = LoadPlan::parse(&ielf).map_err(|e| anyhow!("{ishown}: {e}"))?;
            let ibias = start::interp_bias(&iplan, &layout).map_err(|e| anyhow!("{ishown}: {e}"))?;
            start::load(&mut env, &mut self.shim.mm, &iplan, &ielf, ibias, &itraps).map_err(|e| anyhow!("{ishown}: loading: {e}"))?;
            let (lo, _) = iplan.span();
            auxv = start::with_interp(auxv, lo.wrapping_add(ibias));
            pc = iplan.entry.wrapping_add(ibias);
        }
        self.shim.mm.add_traps([SIGTRAMP + 4]);
        let top = start::map_stack(&mut env, &mut self.shim.mm, self.stack, plan.exec_stack).map_err(|e| anyhow!("{e}"))?;
        let mut random = [0u8; 16];
        musl_shim::Entropy::fill(&mut env, &mut random);
        let argv: Vec<&[u8]> = img.argv.iter().map(|s| s.as_slice()).collect();
        let envp: Vec<&[u8]> = img.envp.iter().map(|s| s.as_slice()).collect();
        let info = StackInfo { argv: &argv, envp: &envp, execfn: &img.execfn, random, auxv: &auxv };
        let sp = start::build_stack(&mut env, top, &info).map_err(|e| anyhow!("{shown}: stack: {e}"))?;
        drop(env);
        Ok(Loaded { uc, protected: shared_text(&plan, bias), sp, pc })
    }

    /// Makes `l` process `pid`'s image, with thread `tid` about to start at its entry.
    fn install(&mut self, pid: Pid, tid: Tid, mut l: Loaded) -> Result<()> {
        l.uc.reg_write(RegisterARM64::SP, l.sp).map_err(|e| anyhow!("{e:?}"))?;
        l.uc.reg_write(RegisterARM64::PC, l.pc).map_err(|e| anyhow!("{e:?}"))?;
        self.procs.insert(pid, Proc { uc: l.uc, protected: l.protected, loaded: Some(tid), shared: Vec::new() });
        self.threads.insert(tid, Thread { pid, regs: None, parked_at: None });
        self.runq.push_back(tid);
        Ok(())
    }

    /// Runs the app alone until it ends.
    pub fn run(mut self) -> Result<ExitReport> {
        let ending = loop {
            match self.step()? {
                Step::Ran => {}
                Step::Idle(Some(d)) => {
                    let now = self.now();
                    if d > now {
                        std::thread::sleep(Duration::from_nanos((d - now).min(1_000_000_000)));
                    }
                }
                Step::Idle(None) => break Ending::Faulted(self.stuck()),
                Step::Ended(e) => break e,
            }
        };
        Ok(self.report(ending))
    }

    /// The fault of an app whose threads all wait for something that cannot come.
    pub fn stuck(&self) -> Fault {
        Fault {
            app: self.app.name.clone(),
            pc: 0,
            addr: 0,
            kind: FaultKind::Other(format!("every thread is blocked forever ({} threads)", self.threads.len())),
        }
    }

    /// How the app ended, its fault (if any) printed as the root server prints it.
    pub fn report(&self, ending: Ending) -> ExitReport {
        if let Some(o) = &self.out {
            o.flush();
        }
        if let Ending::Faulted(f) = &ending {
            eprintln!("{f}");
        }
        ExitReport { ending, syscalls: self.syscalls, unserviced: self.shim.unserviced_seen() }
    }

    /// Runs one thread for a slice, or says why none can run.
    pub fn step(&mut self) -> Result<Step> {
        self.apply_events()?;
        if let Some(f) = self.first_fault.take() {
            return Ok(Step::Ended(Ending::Faulted(f)));
        }
        if let Some(end) = self.shim.app_ended() {
            return Ok(Step::Ended(match end {
                Ended::Exited(c) => Ending::Exited(c),
                Ended::Killed(s) => Ending::Killed(s),
            }));
        }
        let Some(tid) = self.runq.pop_front() else {
            return Ok(match self.shim.next_deadline() {
                Some(d) if d <= self.now() => {
                    let now = self.now();
                    self.shim.expire(now);
                    Step::Ran
                }
                d => Step::Idle(d),
            });
        };
        if let Some(limit) = self.opts.max_syscalls {
            if self.syscalls >= limit {
                let f = Fault { app: self.app.name.clone(), pc: 0, addr: 0, kind: FaultKind::Other(format!("stopped after {} syscalls", self.syscalls)) };
                return Ok(Step::Ended(Ending::Faulted(f)));
            }
        }
        self.run_slice(tid)?;
        Ok(Step::Ran)
    }

    /// Shares this host thread (and stdout, through `out`) with other apps on the
    /// network `net`, as member `m` of it.
    pub fn join(&mut self, net: &std::rc::Rc<std::cell::RefCell<musl_shim::net::Net>>, gen: &musl_shim::pipe::IoGen, m: &musl_shim::net::Membership, out: Option<host::Output>) {
        self.shim.join_network(net.clone(), gen.clone(), m.address, &m.hosts);
        self.shared = true;
        self.out = out;
    }

    /// Gives the app its channels on `bus` (the image's; see `musl_shim::channel`).
    pub fn join_bus(&mut self, bus: &musl_shim::channel::SharedBus) -> Result<()> {
        let p: Vec<&str> = self.app.spec.publishes.iter().map(String::as_str).collect();
        let c: Vec<&str> = self.app.spec.consumes.iter().map(String::as_str).collect();
        self.shim.join_bus(bus.clone(), &p, &c).map_err(|e| anyhow!("app {}: its channels: {e:?}", self.app.name))
    }

    fn now(&mut self) -> u64 {
        let mut probe = ClockProbe;
        musl_shim::Clock::now(&mut probe, ClockId::Monotonic).as_nanos()
    }

    /// Applies what the shim decided for threads other than the one that ran.
    fn apply_events(&mut self) -> Result<()> {
        let now = self.now();
        self.shim.expire(now);
        for ev in self.shim.take_events() {
            match ev {
                TaskEvent::Wake { tid, resume } => {
                    let Some(t) = self.threads.get_mut(&tid) else { continue };
                    let Some(at) = t.parked_at.take() else { continue };
                    let pid = t.pid;
                    let (pc, x0) = match resume {
                        Resume::Value(v) => (at + 4, Some(v as u64)),
                        Resume::Retry => (at, None),
                    };
                    self.set_pc_x0(pid, tid, pc, x0)?;
                    if self.shim.switch_to(tid) {
                        if let Some(p) = self.procs.get_mut(&pid) {
                            let mut env = Env::for_syscall(&mut p.uc, &p.protected);
                            self.shim.sync_mappings(&mut env);
                        }
                    }
                    self.runq.push_back(tid);
                }
                TaskEvent::ProcessGone { pid } => self.drop_process(pid),
                TaskEvent::ThreadGone { tid } => {
                    self.threads.remove(&tid);
                    self.runq.retain(|&t| t != tid);
                    for p in self.procs.values_mut() {
                        if p.loaded == Some(tid) {
                            p.loaded = None;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn drop_process(&mut self, pid: Pid) {
        self.procs.remove(&pid);
        self.threads.retain(|_, t| t.pid != pid);
        let threads = &self.threads;
        self.runq.retain(|t| threads.contains_key(t));
    }

    /// Sets a (possibly saved) thread's pc and x0.
    fn set_pc_x0(&mut self, pid: Pid, tid: Tid, pc: u64, x0: Option<u64>) -> Result<()> {
        let p = self.procs.get_mut(&pid).ok_or_else(|| anyhow!("no process {pid}"))?;
        let t = self.threads.get_mut(&tid).ok_or_else(|| anyhow!("no thread {tid}"))?;
        match &mut t.regs {
            Some(r) => {
                r.pc = pc;
                if let Some(v) = x0 {
                    r.x[0] = v;
                }
            }
            None => {
                debug_assert_eq!(p.loaded, Some(tid));
                p.uc.reg_write(RegisterARM64::PC, pc).map_err(|e| anyhow!("{e:?}"))?;
                if let Some(v) = x0 {
                    p.uc.reg_write(RegisterARM64::X0, v).map_err(|e| anyhow!("{e:?}"))?;
                }
            }
        }
        Ok(())
    }

    /// Puts `tid`'s registers into its process's CPU, saving those of the thread there.
    fn load_thread(&mut self, tid: Tid) -> Result<()> {
        let pid = self.threads[&tid].pid;
        let p = self.procs.get_mut(&pid).ok_or_else(|| anyhow!("no process {pid}"))?;
        if p.loaded == Some(tid) {
            return Ok(());
        }
        if let Some(old) = p.loaded.take() {
            if let Some(t) = self.threads.get_mut(&old) {
                t.regs = Some(Regs::save(&p.uc)?);
            }
        }
        let regs = self.threads.get_mut(&tid).unwrap().regs.take().ok_or_else(|| anyhow!("thread {tid} has no saved registers"))?;
        p.uc.emu_start(CLREX_PAGE, CLREX_PAGE + 4, 0, 0).map_err(|e| anyhow!("clrex: {e:?}"))?;
        p.uc.get_data_mut().event = None;
        regs.restore(&mut p.uc)?;
        p.loaded = Some(tid);
        Ok(())
    }

    /// Whether a thread other than the running one could run now: queued, just woken by
    /// the shim (not queued until the next step), or parked with a deadline that has
    /// passed (it wakes when the next step expires deadlines), or another app's.
    fn others_ready(&mut self) -> bool {
        if self.shared || !self.runq.is_empty() || !self.shim.tasks.events.is_empty() {
            return true;
        }
        let now = self.now();
        self.shim.next_deadline().is_some_and(|d| d <= now)
    }

    /// Runs `tid` until it traps, faults or has had its slice.
    fn run_slice(&mut self, tid: Tid) -> Result<()> {
        self.load_thread(tid)?;
        let pid = self.threads[&tid].pid;
        self.shim.switch_to(tid);
        if self.shim.signal_ready() && !self.take_signals(tid)? {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            // Threads the shim woke are runnable too, though not queued until the next step.
            let others = self.shared || !self.runq.is_empty() || !self.shim.tasks.events.is_empty() || self.shim.next_deadline().is_some();
            let p = self.procs.get_mut(&pid).unwrap();
            let pc = p.uc.pc_read().unwrap_or(0);
            p.uc.get_data_mut().budget = if others { SLICE_BLOCKS } else { 0 };
            let res = p.uc.emu_start(pc, u64::MAX, 0, 0);
            let event = p.uc.get_data_mut().event.take();
            let cur = p.uc.pc_read().unwrap_or(0);
            match event {
                Some(Event::Interrupt { intno: intno @ (host::EXCP_UDEF | host::EXCP_SWI), pc }) => {
                    self.shim.switch_to(tid);
                    let (at, abi) = if intno == host::EXCP_UDEF {
                        // A rewritten svc: a syscall only at a trap-table address.
                        let udf = read_insn(&p.uc, pc) == Some(selkie_svc_rewrite::UDF_WORD);
                        if !(udf && self.shim.mm.is_trap(pc)) {
                            return self.fault(tid, pc, pc, FaultKind::Undefined);
                        }
                        (pc, Abi::Linux(RegisterARM64::X8))
                    } else {
                        // An svc (pc is past it): only selkie-SDK code may make one, as the
                        // root server takes it: an seL4_Call on CPtr 1 (x7 = -1) with the
                        // number in the label, or the number in x7.
                        let at = pc.wrapping_sub(4);
                        if !self.shim.mm.sdk_syscalls {
                            return self.fault(tid, at, at, FaultKind::UnrewrittenSvc);
                        }
                        let reg = |r| p.uc.reg_read(r).unwrap_or(0);
                        if reg(RegisterARM64::X7) == u64::MAX {
                            let info = reg(RegisterARM64::X1);
                            if reg(RegisterARM64::X0) != 1 || (info >> 12) & !SDK_CALL_NR != SDK_CALL {
                                return self.fault(tid, at, at, FaultKind::Other(format!("an seL4 Call, message info {info:#x}")));
                            }
                            (at, Abi::Call { nr: (info >> 12) & SDK_CALL_NR, len: ((info & 0x7f) as usize).min(4) })
                        } else {
                            (at, Abi::Linux(RegisterARM64::X7))
                        }
                    };
                    match self.syscall(tid, at, abi)? {
                        Go::On if started.elapsed() < SLICE || !self.others_ready() => continue,
                        Go::On => {
                            self.runq.push_back(tid);
                            return Ok(());
                        }
                        Go::Stop => return Ok(()),
                    }
                }
                Some(Event::Interrupt { intno: host::EXCP_BKPT, pc: at }) => {
                    let imm = read_insn(&p.uc, at).map(|w| ((w >> 5) & 0xffff) as u16).unwrap_or(0);
                    return self.fault(tid, at, at, FaultKind::Breakpoint(imm));
                }
                Some(Event::Interrupt { intno, pc: at }) => return self.fault(tid, at, at, FaultKind::Other(format!("exception {intno}"))),
                Some(Event::Memory { kind, addr }) => return self.fault(tid, cur, addr, kind),
                None => match res {
                    // The slice ran out: someone else's turn.
                    Ok(()) if others => {
                        self.runq.push_back(tid);
                        return Ok(());
                    }
                    Ok(()) => return self.fault(tid, cur, cur, FaultKind::Other("emulation stopped".into())),
                    Err(e) => return self.fault(tid, cur, cur, FaultKind::Other(format!("unicorn: {e:?}"))),
                },
            }
        }
    }

    /// A fault ends the thread's process with the fault's signal, reported like the root
    /// server reports it; the app's other processes go on.
    fn fault(&mut self, tid: Tid, pc: u64, addr: u64, kind: FaultKind) -> Result<()> {
        let pid = self.threads[&tid].pid;
        let sig = kind.signal();
        let f = Fault { app: self.app.name.clone(), pc, addr, kind };
        if pid == musl_shim::PID {
            self.first_fault = Some(f);
        } else {
            eprintln!("{f} (process {pid})");
        }
        self.shim.switch_to(tid);
        self.shim.kill_current(sig);
        self.drop_process(pid);
        Ok(())
    }

    /// Services the syscall `tid` trapped on at `at`, made as `abi` says.
    fn syscall(&mut self, tid: Tid, at: u64, abi: Abi) -> Result<Go> {
        let pid = self.threads[&tid].pid;
        self.shim.switch_to(tid);
        let p = self.procs.get_mut(&pid).unwrap();
        let mut env = Env::for_syscall(&mut p.uc, &p.protected).with_output(self.out.clone());
        let (nr, args) = match abi {
            Abi::Linux(nr_reg) => (env.reg(nr_reg), [0, 1, 2, 3, 4, 5].map(|i| env.reg(host::XREG[i]))),
            Abi::Call { nr, len } => {
                // The arguments are the message's words, x2..x5; the rest are zero.
                let mut args = [0; 6];
                for (i, a) in args.iter_mut().enumerate().take(len) {
                    *a = env.reg(host::XREG[i + 2]);
                }
                (nr, args)
            }
        };
        self.syscalls += 1;
        let action = self.shim.syscall(&mut env, nr, args);
        drop(env);
        if self.opts.trace {
            log::debug!("{} [{tid}]: syscall {} ({}) {:x?} -> {:?}", self.app.name, nr, musl_shim::sys::nr::name(nr), args, action);
        }
        let p = self.procs.get_mut(&pid).unwrap();
        let set = |p: &mut Proc, pc: u64, x0: u64| -> Result<()> {
            p.uc.reg_write(RegisterARM64::X0, x0).map_err(|e| anyhow!("{e:?}"))?;
            p.uc.reg_write(RegisterARM64::PC, pc).map_err(|e| anyhow!("{e:?}"))
        };
        match action {
            Action::Return(v) => {
                set(p, at + 4, v as u64)?;
                if self.shim.signal_ready() && !self.take_signals(tid)? {
                    return Ok(Go::Stop);
                }
                Ok(Go::On)
            }
            Action::SigReturn => {
                let mut regs = Regs::save(&p.uc)?;
                let mut u = regs.to_user();
                let mut env = Env::new(&mut p.uc);
                if self.shim.sigreturn(&mut env, &mut u).is_err() {
                    drop(env);
                    eprintln!("[selkie] {}: rt_sigreturn with a bad frame at sp {:#x}: SIGSEGV", self.app.name, u.sp);
                    self.shim.kill_current(11);
                    self.drop_process(pid);
                    return Ok(Go::Stop);
                }
                drop(env);
                regs.set_user(&u);
                regs.restore(&mut p.uc)?;
                if self.shim.signal_ready() && !self.take_signals(tid)? {
                    return Ok(Go::Stop);
                }
                Ok(Go::On)
            }
            Action::Exit(_) | Action::Killed(_) => {
                self.drop_process(pid);
                Ok(Go::Stop)
            }
            Action::Block => {
                self.threads.get_mut(&tid).unwrap().parked_at = Some(at);
                Ok(Go::Stop)
            }
            Action::ThreadExit => {
                self.threads.remove(&tid);
                p.loaded = None;
                Ok(Go::Stop)
            }
            Action::Spawned(sp) => self.spawn(tid, pid, at, *sp),
            Action::Exec(img) => {
                match self.load(&img) {
                    Ok(l) => {
                        self.procs.remove(&pid);
                        self.threads.retain(|_, t| t.pid != pid);
                        self.runq.retain(|&t| t != tid);
                        self.shim.set_program(&img);
                        self.install(pid, tid, l)?;
                        // install queued it at the back; it goes on now.
                        self.runq.retain(|&t| t != tid);
                        Ok(Go::On)
                    }
                    Err(e) => {
                        // Past execve's point of no return: Linux kills the process too.
                        eprintln!("[selkie] {}: execve {}: {e:#}", self.app.name, String::from_utf8_lossy(&img.path));
                        self.shim.kill_current(9);
                        self.drop_process(pid);
                        Ok(Go::Stop)
                    }
                }
            }
        }
    }

    /// Delivers the current thread's pending signals (it is loaded in its CPU); false
    /// when one ended its process.
    fn take_signals(&mut self, tid: Tid) -> Result<bool> {
        let pid = self.threads[&tid].pid;
        let p = self.procs.get_mut(&pid).unwrap();
        let mut regs = Regs::save(&p.uc)?;
        let mut u = regs.to_user();
        let mut env = Env::new(&mut p.uc);
        let d = self.shim.deliver_signal(&mut env, &mut u);
        drop(env);
        match d {
            Delivery::None => Ok(true),
            Delivery::Handler(_) => {
                regs.set_user(&u);
                regs.restore(&mut p.uc)?;
                Ok(true)
            }
            Delivery::Killed(sig) => {
                self.shim.kill_current(sig);
                self.drop_process(pid);
                Ok(false)
            }
        }
    }

    /// Starts the child of a clone: a copy of the caller's registers after the syscall,
    /// x0 = 0; for a new process, in a copy of the caller's memory.
    fn spawn(&mut self, tid: Tid, pid: Pid, at: u64, sp: Spawn) -> Result<Go> {
        let p = self.procs.get_mut(&pid).unwrap();
        let mut regs = Regs::save(&p.uc)?;
        regs.pc = at + 4;
        regs.x[0] = 0;
        if sp.stack != 0 {
            regs.sp = sp.stack;
        }
        if let Some(tls) = sp.tls {
            regs.tpidr = tls;
        }
        let child_pid = if sp.new_process { sp.child } else { pid };
        if sp.new_process {
            let mut uc = new_cpu()?;
            copy_memory(&p.uc, &mut uc)?;
            // MAP_SHARED file mappings: the child gets the parent's pages, not copies, as
            // on seL4, so each sees the other's stores at once.
            let ranges = self.shim.shared_file_ranges(pid);
            let mut shared = Vec::new();
            if !ranges.is_empty() {
                match crate::shared::share(&mut p.uc, &mut p.shared, &mut uc, &ranges) {
                    Ok(pages) => shared = pages,
                    Err(e) => log::debug!("fork: {e:#}; the shared file mappings stay copies, met with the file at syscalls"),
                }
            }
            if let Some(at) = sp.child_settid {
                let _ = uc.mem_write(at, &sp.child.to_le_bytes());
            }
            let protected = p.protected.clone();
            let aliased = !shared.is_empty();
            self.procs.insert(child_pid, Proc { uc, protected, loaded: None, shared });
            if aliased {
                self.shim.share_file_frames(pid);
                self.shim.share_file_frames(child_pid);
            }
        }
        self.threads.insert(sp.child, Thread { pid: child_pid, regs: Some(regs), parked_at: None });
        self.runq.push_back(sp.child);
        let p = self.procs.get_mut(&pid).unwrap();
        if sp.parent_blocks {
            self.threads.get_mut(&tid).unwrap().parked_at = Some(at);
            Ok(Go::Stop)
        } else {
            p.uc.reg_write(RegisterARM64::X0, u64::from(sp.child)).map_err(|e| anyhow!("{e:?}"))?;
            p.uc.reg_write(RegisterARM64::PC, at + 4).map_err(|e| anyhow!("{e:?}"))?;
            Ok(Go::On)
        }
    }
}

/// Whether the thread that made a syscall goes on running.
enum Go {
    On,
    Stop,
}

/// The host's monotonic clock, as the shim's platform reads it.
struct ClockProbe;

impl musl_shim::Clock for ClockProbe {
    fn now(&mut self, clock: ClockId) -> musl_shim::Timespec {
        host::now(clock)
    }
    fn sleep(&mut self, ns: u64) {
        std::thread::sleep(Duration::from_nanos(ns));
    }
}

/// Copies every mapped region of `from` into `to`, with the same protections (fork).
/// An eager copy: the emulator has no copy-on-write.
fn copy_memory(from: &Cpu, to: &mut Cpu) -> Result<()> {
    let regions = from.mem_regions().map_err(|e| anyhow!("mem_regions: {e:?}"))?;
    let mut buf = Vec::new();
    for r in regions {
        if r.begin == CLREX_PAGE || r.begin == SIGTRAMP {
            continue;
        }
        let len = (r.end - r.begin + 1) as usize;
        if r.perms == 0 {
            // A PROT_NONE reservation (Go's are gigabytes): mapped, not copied; bytes an app
            // wrote and then protected away are lost to the child.
            to.mem_map(r.begin, len as u64, unicorn_engine::Prot::NONE).map_err(|e| anyhow!("fork: mapping {:#x}: {e:?}", r.begin))?;
            continue;
        }
        buf.resize(len, 0);
        from.mem_read(r.begin, &mut buf).map_err(|e| anyhow!("fork: reading {:#x}: {e:?}", r.begin))?;
        to.mem_map(r.begin, len as u64, unicorn_engine::Prot(r.perms)).map_err(|e| anyhow!("fork: mapping {:#x}: {e:?}", r.begin))?;
        // The child's new memory is zero already: chunks of zeros (most of an 8 MiB stack)
        // are not written, so the host does not make them resident.
        for (i, chunk) in buf.chunks(64 << 10).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                let at = r.begin + (i as u64) * (64 << 10);
                to.mem_write(at, chunk).map_err(|e| anyhow!("fork: writing {at:#x}: {e:?}"))?;
            }
        }
    }
    Ok(())
}

fn read_insn<D>(uc: &Unicorn<'_, D>, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    uc.mem_read(at, &mut b).ok()?;
    Some(u32::from_le_bytes(b))
}
