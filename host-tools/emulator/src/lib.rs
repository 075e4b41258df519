//! selkie-emulator: runs one app on the host under unicorn (aarch64), servicing its
//! syscalls with musl-shim — the same personality the seL4 root server uses.
//!
//! The app runs REWRITTEN: its `svc #0` words were turned into `udf #0x5e1c` at pack time
//! (selkie-svc-rewrite). A `udf` at a trap-table address is a syscall, exactly as on seL4;
//! a `udf` elsewhere, an unrewritten `svc`, a `brk #n` or a memory fault ends the app with
//! a report like the root server's: app name, pc, fault address, kind.

mod host;

use anyhow::{anyhow, bail, Context, Result};
use host::{Env, Event, Hooks};
use musl_shim::mm::PAGE;
use musl_shim::start::{self, LoadPlan, StackInfo};
use musl_shim::vfs::{Found, Kind, ROOT};
use musl_shim::{Action, Config, Shim};
use selkie_manifest::App;
use std::fmt;
use unicorn_engine::{Arch, Arm64CpuModel, HookType, Mode, RegisterARM64, Unicorn};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// uname's nodename.
    pub hostname: String,
    /// Stop after this many syscalls (a runaway guard); `None` for no limit.
    pub max_syscalls: Option<u64>,
    /// Log every syscall at `debug` level.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { hostname: "selkie".into(), max_syscalls: None, trace: false }
    }
}

/// What went wrong when an app faulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    ReadUnmapped,
    WriteUnmapped,
    FetchUnmapped,
    ReadProtection,
    WriteProtection,
    FetchProtection,
    /// A `udf` (or other undefined instruction) that is not at a trap-table address.
    Undefined,
    /// `brk #imm`: a deliberate crash (musl's a_crash is `brk #0x3e8`).
    Breakpoint(u16),
    /// An `svc` left unrewritten: unsafe on seL4, so refused here too.
    UnrewrittenSvc,
    /// Anything else unicorn stopped on.
    Other(String),
}

impl FaultKind {
    /// The Linux signal this fault would raise.
    pub fn signal(&self) -> i32 {
        match self {
            FaultKind::Undefined | FaultKind::UnrewrittenSvc => 4, // SIGILL
            FaultKind::Breakpoint(_) => 5,                          // SIGTRAP
            _ => 11,                                                 // SIGSEGV
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::ReadUnmapped => write!(f, "read of unmapped memory"),
            FaultKind::WriteUnmapped => write!(f, "write to unmapped memory"),
            FaultKind::FetchUnmapped => write!(f, "instruction fetch from unmapped memory"),
            FaultKind::ReadProtection => write!(f, "read of protected memory"),
            FaultKind::WriteProtection => write!(f, "write to read-only memory"),
            FaultKind::FetchProtection => write!(f, "instruction fetch from non-executable memory"),
            FaultKind::Undefined => write!(f, "undefined instruction"),
            FaultKind::Breakpoint(n) => write!(f, "breakpoint (brk #{n:#x})"),
            FaultKind::UnrewrittenSvc => write!(f, "svc not rewritten at pack time"),
            FaultKind::Other(s) => write!(f, "{s}"),
        }
    }
}

/// A fault, as the root server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub app: String,
    pub pc: u64,
    pub addr: u64,
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[selkie] {}: fault: {} at pc {:#x}, address {:#x}", self.app, self.kind, self.pc, self.addr)
    }
}

/// How the app ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Killed by a signal it sent itself (abort).
    Killed(i32),
    Faulted(Fault),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    pub ending: Ending,
    /// Syscalls serviced.
    pub syscalls: u64,
    /// Numbers that got ENOSYS.
    pub unserviced: Vec<u64>,
}

impl ExitReport {
    /// The status a shell (or `docker run`) reports: the exit code, or 128 + signal.
    pub fn status(&self) -> i32 {
        match &self.ending {
            Ending::Exited(c) => *c,
            Ending::Killed(s) => 128 + s,
            Ending::Faulted(f) => 128 + f.kind.signal(),
        }
    }
}

/// Reads a file out of a cpio rootfs, following symlinks (what the root server does to
/// find an app's binary).
pub fn read_rootfs_file(rootfs_cpio: &[u8], path: &str) -> Result<Vec<u8>> {
    let vfs = musl_shim::vfs::Vfs::from_cpio(rootfs_cpio);
    match vfs.resolve(ROOT, path.as_bytes(), true) {
        Ok(Found::Node(ino)) => match &vfs.node(ino).kind {
            Kind::File(d) => Ok(d.bytes().to_vec()),
            _ => bail!("{path} in the rootfs is not a regular file"),
        },
        _ => bail!("{path} not found in the rootfs"),
    }
}

/// Runs `app` from `rootfs_cpio`; `traps` are the link-time addresses of its rewritten
/// `svc`s. The app's stdout and stderr are this process's.
pub fn run(app: &App<String>, rootfs_cpio: &[u8], traps: &[u64], opts: &Options) -> Result<ExitReport> {
    let elf = read_rootfs_file(rootfs_cpio, &app.binary).with_context(|| format!("app {}", app.name))?;
    let plan = LoadPlan::parse(&elf).map_err(|e| anyhow!("{}: {}: {e}", app.name, app.binary))?;
    let bias = plan.bias();
    let heap = u64::from(app.spec.heap_pages) * PAGE;
    let stack = u64::from(app.spec.stack_pages) * PAGE;
    let layout = start::layout(&plan, heap, stack).map_err(|e| anyhow!("{}: {e}", app.name))?;
    let mut shim = Shim::new(
        rootfs_cpio,
        Config {
            uid: app.uid,
            gid: app.gid,
            cwd: app.cwd.clone(),
            hostname: opts.hostname.clone(),
            layout,
            stack_size: stack,
        },
    );

    shim.set_exe(&app.binary);

    let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, Hooks::default())
        .map_err(|e| anyhow!("unicorn: {e:?}"))?;
    uc.ctl_set_cpu_model(Arm64CpuModel::A72 as i32).map_err(|e| anyhow!("cpu model: {e:?}"))?;
    host::install_hooks(&mut uc)?;
    let mut env = Env::new(&mut uc);

    start::load(&mut env, &mut shim.mm, &plan, &elf, bias).map_err(|e| anyhow!("{}: loading: {e}", app.name))?;
    let top = start::map_stack(&mut env, &mut shim.mm, stack, plan.exec_stack).map_err(|e| anyhow!("{e}"))?;
    let mut random = [0u8; 16];
    musl_shim::Entropy::fill(&mut env, &mut random);
    let argv: Vec<&[u8]> = app.argv.iter().map(|s| s.as_bytes()).collect();
    let envp: Vec<&[u8]> = app.envp.iter().map(|s| s.as_bytes()).collect();
    let auxv = start::auxv(&plan, bias, app.uid, app.gid, start::HWCAP_A57);
    let info = StackInfo { argv: &argv, envp: &envp, execfn: app.binary.as_bytes(), random, auxv: &auxv };
    let sp = start::build_stack(&mut env, top, &info).map_err(|e| anyhow!("{}: stack: {e}", app.name))?;
    drop(env);

    uc.reg_write(RegisterARM64::SP, sp).map_err(|e| anyhow!("{e:?}"))?;
    // FP/SIMD on (CPACR_EL1.FPEN = 0b11).
    uc.reg_write(RegisterARM64::CPACR_EL1, 3 << 20).map_err(|e| anyhow!("{e:?}"))?;

    let protected = shared_text(&plan, bias);
    let mut pc = plan.entry.wrapping_add(bias);
    let mut syscalls = 0u64;
    let fault = |pc: u64, addr: u64, kind: FaultKind| Ending::Faulted(Fault { app: app.name.clone(), pc, addr, kind });
    let ending = loop {
        let res = uc.emu_start(pc, u64::MAX, 0, 0);
        let event = uc.get_data_mut().event.take();
        let cur = uc.pc_read().unwrap_or(0);
        match event {
            Some(Event::Interrupt { intno, pc: at }) => match intno {
                host::EXCP_UDEF => {
                    let insn = read_insn(&uc, at);
                    if insn == Some(selkie_svc_rewrite::UDF_WORD) && traps.binary_search(&at.wrapping_sub(bias)).is_ok() {
                        let mut env = Env::for_syscall(&mut uc, &protected);
                        let nr = env.reg(RegisterARM64::X8);
                        let args = [0, 1, 2, 3, 4, 5].map(|i| env.reg(host::XREG[i]));
                        syscalls += 1;
                        let action = shim.syscall(&mut env, nr, args);
                        if opts.trace {
                            log::debug!("{}: syscall {} ({}) {:x?} -> {:?}", app.name, nr, musl_shim::sys::nr::name(nr), args, action);
                        }
                        match action {
                            Action::Return(v) => {
                                env.set_reg(RegisterARM64::X0, v as u64);
                                pc = at + 4;
                            }
                            Action::Exit(s) => break Ending::Exited(s),
                            Action::Killed(s) => break Ending::Killed(s),
                        }
                        if opts.max_syscalls.is_some_and(|m| syscalls >= m) {
                            break fault(at, 0, FaultKind::Other(format!("stopped after {syscalls} syscalls")));
                        }
                    } else {
                        break fault(at, at, FaultKind::Undefined);
                    }
                }
                host::EXCP_SWI => break fault(at.wrapping_sub(4), at.wrapping_sub(4), FaultKind::UnrewrittenSvc),
                host::EXCP_BKPT => {
                    let imm = read_insn(&uc, at).map(|w| ((w >> 5) & 0xffff) as u16).unwrap_or(0);
                    break fault(at, at, FaultKind::Breakpoint(imm));
                }
                n => break fault(at, at, FaultKind::Other(format!("exception {n}"))),
            },
            Some(Event::Memory { kind, addr }) => break fault(cur, addr, kind),
            None => match res {
                Ok(()) => break fault(cur, cur, FaultKind::Other("emulation stopped".into())),
                Err(e) => break fault(cur, cur, FaultKind::Other(format!("unicorn: {e:?}"))),
            },
        }
    };
    if let Ending::Faulted(f) = &ending {
        eprintln!("{f}");
    }
    Ok(ExitReport { ending, syscalls, unserviced: shim.unserviced_seen() })
}

/// The whole pages of read-only segments that no writable segment touches: what the root
/// server maps shared from the bundle, and so refuses to write into for a syscall.
fn shared_text(plan: &LoadPlan, bias: u64) -> Vec<std::ops::Range<u64>> {
    let pages = |s: &musl_shim::start::Segment| {
        let start = (s.vaddr & !(PAGE - 1)).wrapping_add(bias);
        let end = (s.vaddr.saturating_add(s.memsz).saturating_add(PAGE - 1) & !(PAGE - 1)).wrapping_add(bias);
        start..end
    };
    let writable: Vec<_> = plan.segments.iter().filter(|s| s.prot.w()).map(pages).collect();
    plan.segments
        .iter()
        .filter(|s| !s.prot.w())
        .map(pages)
        .map(|mut r| {
            for w in &writable {
                if w.start < r.end && r.start < w.end {
                    // Shrink away from the shared page(s).
                    if w.start <= r.start { r.start = r.start.max(w.end) } else { r.end = r.end.min(w.start) }
                }
            }
            r
        })
        .filter(|r| r.start < r.end)
        .collect()
}

fn read_insn<D>(uc: &Unicorn<'_, D>, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    uc.mem_read(at, &mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

#[doc(hidden)]
pub fn _hook_types() -> HookType {
    host::FAULT_HOOKS
}
