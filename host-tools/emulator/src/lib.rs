//! selkie-emulator: runs apps on the host under unicorn (aarch64), servicing their
//! syscalls with musl-shim — the same personality the seL4 root server uses. [`run`] runs
//! one app; [`run_all`] runs a compose project's apps together on their networks.
//!
//! The app runs REWRITTEN: its `svc #0` words were turned into `udf #0x5e1c` at pack time
//! (selkie-svc-rewrite). A `udf` at a trap-table address is a syscall, exactly as on seL4;
//! a `udf` elsewhere, an unrewritten `svc`, a `brk #n` or a memory fault ends the app with
//! a report like the root server's: app name, pc, fault address, kind.

mod host;
mod regs;
mod sched;
mod shared;

use anyhow::{bail, Result};
use musl_shim::mm::PAGE;
use musl_shim::start::LoadPlan;
use musl_shim::vfs::{Found, Kind, ROOT};
use selkie_manifest::App;
use std::fmt;
use unicorn_engine::HookType;

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
    /// Never started: an app it was held back for (its manifest's `after`) did not exit
    /// with status 0, for the reason given.
    NotStarted(String),
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
            // What compose gives for a dependency that failed.
            Ending::NotStarted(_) => 1,
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

/// Runs `app` from `rootfs_cpio` with its text store `text` (`musl_shim::text`: where the
/// `svc`s of each ELF are; empty: none, they are found when a file is mapped). The app's
/// stdout and stderr are this process's. Its threads and processes (clone, fork, execve)
/// are scheduled here on one host thread; see [`sched`].
pub fn run(app: &App<String>, rootfs_cpio: &[u8], text: &[u8], opts: &Options) -> Result<ExitReport> {
    let mut m = sched::Machine::start(app, rootfs_cpio, text, opts)?;
    let bus = new_bus(&[app])?;
    m.join_bus(&bus)?;
    m.run()
}

/// A bus with every channel `apps` publish or consume, each ring in ordinary memory.
fn new_bus(apps: &[&App<String>]) -> Result<musl_shim::channel::SharedBus> {
    let lists: Vec<(Vec<&str>, Vec<&str>)> = apps
        .iter()
        .map(|a| (a.spec.publishes.iter().map(String::as_str).collect(), a.spec.consumes.iter().map(String::as_str).collect()))
        .collect();
    let refs: Vec<(&[&str], &[&str])> = lists.iter().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
    let bus: musl_shim::channel::SharedBus = Default::default();
    for name in musl_shim::channel::plan(&refs) {
        bus.borrow_mut()
            .add(name, Box::new(musl_shim::channel::HeapRing::default()))
            .map_err(|_| anyhow::anyhow!("channel {name}: more than {} channels in one image", musl_shim::channel::MAX_CHANNELS))?;
    }
    Ok(bus)
}

/// One app of several run together by [`run_all`].
pub struct Service<'r> {
    pub app: &'r App<String>,
    pub rootfs: &'r [u8],
    pub text: &'r [u8],
}

/// How [`run_all`] runs its apps.
#[derive(Debug, Clone, Default)]
pub struct ComposeOptions {
    pub emu: Options,
    /// When this app ends, the others are stopped (compose's `--exit-code-from`).
    pub ends_with: Option<String>,
    /// When any app ends, the others are stopped (compose's `--abort-on-container-exit`).
    pub abort_on_exit: bool,
}

/// Runs `services` together on this host thread, as `selkie compose up --emulate` does:
/// they start in the given order, share the networks their manifests name (the same
/// addresses, `/etc/hosts` and isolation as on seL4: [`musl_shim::net::plan`]), and
/// their output lines are prefixed `NAME | `. Returns each app's name and report, in the
/// given order, when every app has ended; an app whose threads all wait is stuck only
/// when every app is (another may still wake it). An app with an `after` list runs once
/// those apps have exited with status 0, and is never run if one ends otherwise. Each
/// ending is printed as a line `NAME exited with code N` (compose's words), or
/// `NAME not started: WHY`.
pub fn run_all(services: &[Service<'_>], opts: &ComposeOptions) -> Result<Vec<(String, ExitReport)>> {
    if let Some(e) = &opts.ends_with {
        if !services.iter().any(|s| s.app.name == *e) {
            bail!("--exit-code-from {e}: no such service");
        }
    }
    let mut machines = Vec::new();
    for s in services {
        machines.push(sched::Machine::start(s.app, s.rootfs, s.text, &opts.emu)?);
    }
    let named: Vec<(&str, Vec<&str>)> =
        services.iter().map(|s| (s.app.name.as_str(), s.app.networks.iter().map(String::as_str).collect())).collect();
    let plan = musl_shim::net::plan(&named);
    let net = std::rc::Rc::new(std::cell::RefCell::new(musl_shim::net::Net::default()));
    let gen: musl_shim::pipe::IoGen = std::rc::Rc::new(std::cell::Cell::new(0));
    let width = services.iter().map(|s| s.app.name.len()).max().unwrap_or(0);
    for ((m, member), s) in machines.iter_mut().zip(&plan).zip(services) {
        net.borrow_mut().set_member(member.address, member.mask);
        m.join(&net, &gen, member, Some(host::Output::new(&s.app.name, width)));
    }
    let bus = new_bus(&services.iter().map(|s| s.app).collect::<Vec<_>>())?;
    for m in &mut machines {
        m.join_bus(&bus)?;
    }
    let mut reports: Vec<Option<ExitReport>> = services.iter().map(|_| None).collect();
    let ended = |name: &str, r: &ExitReport| match &r.ending {
        Ending::NotStarted(why) => println!("{name} not started: {why}"),
        _ => println!("{name} exited with code {}", r.status()),
    };
    // Apps held back until others have exited with status 0 (the manifest's `after`).
    let mut held: Vec<bool> = services.iter().map(|s| !s.app.after.is_empty()).collect();
    loop {
        for i in 0..services.len() {
            if !held[i] || reports[i].is_some() {
                continue;
            }
            use selkie_manifest::{Dependency, Release};
            let verdict = selkie_manifest::release(services[i].app.after.iter().map(String::as_str), |d| {
                match services.iter().position(|s| s.app.name == d) {
                    None => Dependency::Failed(format!("{d} failed to start")),
                    Some(j) => match &reports[j] {
                        None => Dependency::Pending,
                        Some(r) if r.ending == Ending::Exited(0) => Dependency::Completed,
                        Some(ExitReport { ending: Ending::NotStarted(_), .. }) => Dependency::Failed(format!("{d} was not started")),
                        Some(r) => Dependency::Failed(format!("{d} exited with code {}", r.status())),
                    },
                }
            });
            match verdict {
                Release::Wait => {}
                Release::Start => held[i] = false,
                Release::Never(why) => {
                    let r = ExitReport { ending: Ending::NotStarted(why), syscalls: 0, unserviced: Vec::new() };
                    ended(&services[i].app.name, &r);
                    reports[i] = Some(r);
                }
            }
        }
        let mut ran = false;
        let mut deadline: Option<u64> = None;
        for (i, m) in machines.iter_mut().enumerate() {
            if reports[i].is_some() || held[i] {
                continue;
            }
            match m.step()? {
                sched::Step::Ran => ran = true,
                sched::Step::Idle(d) => {
                    deadline = match (deadline, d) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
                sched::Step::Ended(e) => {
                    let r = m.report(e);
                    ended(&services[i].app.name, &r);
                    reports[i] = Some(r);
                    ran = true;
                    if opts.abort_on_exit || opts.ends_with.as_deref() == Some(services[i].app.name.as_str()) {
                        // Compose's abort-on-container-exit: the others are stopped.
                        for (j, m) in machines.iter().enumerate() {
                            if reports[j].is_none() {
                                let r = m.report(Ending::Killed(9));
                                ended(&services[j].app.name, &r);
                                reports[j] = Some(r);
                            }
                        }
                        break;
                    }
                }
            }
        }
        if reports.iter().all(Option::is_some) {
            break;
        }
        if ran {
            continue;
        }
        match deadline {
            Some(d) => {
                let now = host::now(musl_shim::ClockId::Monotonic).as_nanos();
                if d > now {
                    std::thread::sleep(std::time::Duration::from_nanos((d - now).min(1_000_000_000)));
                }
            }
            None => {
                // Every app waits for another: none can go on (those held back are
                // given up on next time round, as these end).
                for (i, m) in machines.iter().enumerate() {
                    if reports[i].is_none() && !held[i] {
                        let r = m.report(Ending::Faulted(m.stuck()));
                        ended(&services[i].app.name, &r);
                        reports[i] = Some(r);
                    }
                }
            }
        }
    }
    Ok(services.iter().zip(reports).map(|(s, r)| (s.app.name.clone(), r.expect("every app ended"))).collect())
}

/// The whole pages of read-only code segments that no writable segment touches: what the
/// root server maps shared from the bundle's text store, and so refuses to write into for
/// a syscall.
fn shared_text(plan: &LoadPlan, bias: u64) -> Vec<std::ops::Range<u64>> {
    let pages = |s: &musl_shim::start::Segment| {
        let start = (s.vaddr & !(PAGE - 1)).wrapping_add(bias);
        let end = (s.vaddr.saturating_add(s.memsz).saturating_add(PAGE - 1) & !(PAGE - 1)).wrapping_add(bias);
        start..end
    };
    let writable: Vec<_> = plan.segments.iter().filter(|s| s.prot.w()).map(pages).collect();
    plan.segments
        .iter()
        .filter(|s| !s.prot.w() && s.prot.x())
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


#[doc(hidden)]
pub fn _hook_types() -> HookType {
    host::FAULT_HOOKS
}
