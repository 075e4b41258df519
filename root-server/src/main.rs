//! selkie's root server: the seL4 root task that starts every app of the embedded bundle
//! in its own CNode and VSpace, and services their Linux syscalls with musl-shim.
//!
//! Apps reach us through one endpoint, badged for each thread:
//! - UserException at a trap-table address: a rewritten `svc #0`, i.e. a Linux syscall
//!   (4 kernel entries: the trap, TCB_ReadRegisters, TCB_WriteRegisters, our ReplyRecv);
//! - UnknownSyscall from a process running selkie-SDK code (musl patched to put the Linux
//!   number in x7 too, sdk/musl-x7.patch): a Linux syscall whose registers are all in the
//!   fault message, answered by the reply itself (2 kernel entries: the trap, ReplyRecv);
//! - an seL4_Call from selkie-SDK code (its syscalls of up to four arguments): label
//!   `SDK_CALL | nr`, the arguments as the message, answered by a one-word reply (2 kernel
//!   entries, both on seL4's IPC fastpath);
//! - VMFault inside a valid lazily mapped range: a frame gets mapped;
//! - anything else kills the app with a report; the others keep running.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod app;
mod baseline;
mod console;
mod cores;
mod kernel;
mod stages;
mod time;
mod ut;
mod vm;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use app::{App, AppSpec};
use sel4::CapTypeForObjectOfFixedSize as _;
use sel4_root_task::{root_task, Never};
use vm::Global;

/// Heap kept for the root server itself; the rest of `kernel::heap_size()` is split evenly
/// into per-app quotas (shim state, tmpfs, page maps). An app over its quota is killed
/// before it can starve the others; half a quota bounds the bytes the app writes to its
/// rootfs and /tmp together, so filling either gives ENOSPC first.
const ROOT_HEAP: usize = 2 << 20;

/// Our stack: parsing the manifest (heapless vectors of up to 8 apps) takes tens of KiB.
const STACK_SIZE: usize = 512 << 10;

#[root_task(stack_size = STACK_SIZE)]
fn main(bootinfo: &sel4::BootInfoPtr) -> sel4::Result<Never> {
    stages::mark(stages::Stage::Entry);
    console::init_log(log::LevelFilter::Error);
    // Built without FP/SIMD (see build.sh): with our FPU disabled the kernel need not
    // save and restore FP state on every switch between an app and us.
    if cfg!(target_abi = "softfloat") {
        let flags = sel4::TcbFlagsBuilder::new().fpu_disabled(true).build();
        if let Err(e) = sel4::init_thread::slot::TCB.cap().tcb_set_flags(0, flags) {
            log::error!("disabling our FPU: {e}");
        }
    }
    match run(bootinfo) {
        Ok(()) => {}
        Err(e) => report!("root server failed: {e}"),
    }
    sel4::init_thread::suspend_self()
}

/// Finds a bundle member by name.
fn member<'a>(bundle: &'a [u8], name: &str) -> Option<&'a [u8]> {
    cpio_reader::iter_files(bundle).find(|e| e.name() == name || e.name().strip_prefix("./") == Some(name)).map(|e| e.file())
}

fn text(t: &selkie_manifest::Text<'_>, what: &str) -> Result<String, String> {
    if let Some(plain) = t.as_plain() {
        // No escapes (the usual case): no unescaping to run, nor to translate at boot.
        return Ok(String::from(plain));
    }
    let mut buf = alloc::vec![0u8; selkie_manifest::MAX_STR * 4];
    t.unescape_into(&mut buf).map(String::from).map_err(|e| format!("manifest {what}: {e:?}"))
}

/// The unescaped bytes of each string of a manifest list (argv, envp): one plain loop for
/// both (an iterator chain each was twice the code to translate at boot; issue 11).
fn texts(list: &[selkie_manifest::Text<'_>], what: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        out.push(text(t, what)?.into_bytes());
    }
    Ok(out)
}

/// Maps QEMU virt's PL031 (the wall clock) for `time::init`.
fn map_rtc(bootinfo: &sel4::BootInfo, slots: &mut ut::Slots, devices: &mut ut::Devices) -> Result<(), String> {
    if !sel4::sel4_cfg_bool!(PLAT_QEMU_ARM_VIRT) {
        return Err(String::from("no known RTC on this platform"));
    }
    let frame = devices.frame(bootinfo, slots, time::PL031_PADDR)?;
    let uncached = sel4::VmAttributes::NONE | sel4::VmAttributes::EXECUTE_NEVER;
    vm::map_frame(frame, sel4::init_thread::slot::VSPACE.cap(), kernel::rtc_addr(), sel4::CapRights::read_write(), uncached).map_err(|e| format!("mapping the RTC: {e}"))?;
    kernel::rtc_mapped();
    Ok(())
}

fn run(bootinfo: &sel4::BootInfoPtr) -> Result<(), String> {
    cores::init(bootinfo);
    let frames = bootinfo.user_image_frames();
    let image_start = kernel::image_start();
    let image_end = image_start + frames.range().len() * kernel::PAGE;
    // Free our window's pages: app frames get mapped there.
    for i in 0..kernel::WINDOW_PAGES {
        let ix = (kernel::window_addr(i) - image_start) / kernel::PAGE;
        frames.index(ix).cap().frame_unmap().map_err(|e| format!("unmapping window page {i}: {e}"))?;
    }
    let bundle: &'static [u8] = kernel::bundle(image_end)?;
    let manifest_json = member(bundle, "manifest.json").ok_or("the bundle has no manifest.json")?;
    let manifest = selkie_manifest::parse(manifest_json).map_err(|e| format!("manifest.json: {e:?}"))?;

    stages::mark(stages::Stage::Manifest);
    let mut slots = ut::Slots::new(bootinfo.empty().range());
    // Our page for the UART's registers is freed like the window's.
    let uart_ix = (kernel::uart_addr() - image_start) / kernel::PAGE;
    frames.index(uart_ix).cap().frame_unmap().map_err(|e| format!("unmapping the UART page: {e}"))?;
    let rtc_ix = (kernel::rtc_addr() - image_start) / kernel::PAGE;
    frames.index(rtc_ix).cap().frame_unmap().map_err(|e| format!("unmapping the RTC page: {e}"))?;
    let mut devices = ut::Devices::default();
    if let Err(e) = console::init_uart(bootinfo, &mut slots, &mut devices) {
        log::error!("console stays on seL4_DebugPutChar: {e}");
    }
    if let Err(e) = map_rtc(bootinfo, &mut slots, &mut devices) {
        log::error!("no RTC, realtime starts at a fixed epoch: {e}");
    }
    let clock = time::init();
    stages::mark(stages::Stage::Clock);
    let pool = ut::Pool::new(bootinfo);
    log::info!("{} bytes of RAM untypeds, {} device untypeds", pool.ram_bytes, pool.device_untypeds);
    let mut g = Global::new(slots, pool).map_err(|e| format!("setting up: {e}"))?;
    stages::mark(stages::Stage::Global);

    // One endpoint for every app's faults; the badge tells them apart.
    let ep_slot = g.slots.alloc().map_err(|e| format!("endpoint: {e}"))?;
    let first_chunk = g.pool.chunk(&mut g.slots, ut::CHUNK_BITS).map_err(|e| format!("endpoint: {e}"))?;
    ut::retype_one(sel4::cap::Untyped::from_bits(first_chunk as u64), &sel4::cap_type::Endpoint::object_blueprint(), &ut::root_cnode().absolute_cptr_for_self(), ep_slot)
        .map_err(|e| format!("endpoint: {e}"))?;
    let ep = sel4::cap::Endpoint::from_bits(ep_slot as u64);
    let timer = Timer::new(first_chunk);

    stages::mark(stages::Stage::Timer);
    let frames = app::ImageFrames { first: frames.range().start, start: image_start, count: frames.range().len() };
    let mut apps: Vec<App> = Vec::new();
    let mut failed = 0usize;
    for (id, a) in manifest.apps.iter().enumerate() {
        let name = text(&a.name, "name")?;
        let spec = (|| -> Result<AppSpec<'_>, String> {
            let rootfs_name = text(&a.rootfs, "rootfs")?;
            let rootfs = member(bundle, &rootfs_name).ok_or_else(|| format!("the bundle has no {rootfs_name}"))?;
            let store = match &a.text {
                Some(t) => {
                    let n = text(t, "text")?;
                    member(bundle, &n).ok_or_else(|| format!("the bundle has no {n}"))?
                }
                None => &[],
            };
            Ok(AppSpec {
                frames,
                name: name.clone(),
                binary: text(&a.binary, "binary")?,
                rootfs,
                text: store,
                argv: texts(&a.argv, "argv")?,
                envp: texts(&a.envp, "envp")?,
                cwd: text(&a.cwd, "cwd")?,
                uid: a.uid,
                gid: a.gid,
                spec: &a.spec,
            })
        })();
        let quota = kernel::heap_size().saturating_sub(ROOT_HEAP) / manifest.apps.len().max(1);
        kernel::charge_to(Some(id));
        let created = spec.and_then(|s| App::create(&mut g, ep, id, s, quota));
        kernel::charge_to(None);
        match created {
            Ok(mut app) => {
                for d in &a.after {
                    app.after.push(text(d, "after")?);
                }
                app.held = !app.after.is_empty();
                apps.push(app)
            }
            Err(e) => {
                report!("{name} failed to start: {e}");
                failed += 1;
            }
        }
    }
    // The apps of one image are on networks, as a compose project's services are (an app
    // that names none is on the image's `default` one): each has an address, and reaches
    // the apps that share a network with it, by name.
    if apps.len() > 1 {
        let nets: Vec<Vec<String>> = apps.iter().map(|a| manifest.apps[a.id].networks.iter().filter_map(|n| text(n, "network").ok()).collect()).collect();
        let named: Vec<(&str, Vec<&str>)> = apps.iter().zip(&nets).map(|(a, n)| (a.name.as_str(), n.iter().map(String::as_str).collect())).collect();
        let plan = musl_shim::net::plan(&named);
        let net = alloc::rc::Rc::new(core::cell::RefCell::new(musl_shim::net::Net::default()));
        let gen: musl_shim::pipe::IoGen = alloc::rc::Rc::new(core::cell::Cell::new(0));
        for m in &plan {
            net.borrow_mut().set_member(m.address, m.mask);
        }
        for (app, m) in apps.iter_mut().zip(&plan) {
            kernel::charge_to(Some(app.id));
            app.shim.join_network(net.clone(), gen.clone(), m.address, &m.hosts);
            app.networked = true;
            kernel::charge_to(None);
        }
    }
    join_channels(&manifest, &mut apps)?;
    stages::mark(stages::Stage::Apps);
    for app in apps.iter().filter(|a| !a.held) {
        app.resume().map_err(|e| format!("resuming {}: {e}", app.name))?;
    }
    stages::mark(stages::Stage::Resumed);
    let total = manifest.apps.len();
    let mut stats = Stats::default();
    let ends_with = manifest.ends_with.as_ref().map(|e| text(e, "ends_with")).transpose()?;
    serve(&mut g, ep, &mut apps, &mut stats, timer, ends_with.as_deref());
    let per = |ticks: u64| ticks * 1_000_000_000 / kernel::counter_frequency() / stats.messages.max(1);
    report!(
        "stats root: {} messages from apps, each {} ns handling and {} ns settling on average; {} needed no settling; {} identity calls answered at once besides",
        stats.messages,
        per(stats.handling),
        per(stats.settling),
        stats.unsettled,
        stats.quick
    );
    let exited = stats.exited;
    let killed = stats.killed;
    let failed = failed + stats.not_started;
    // Measured after the apps, so that it costs them no boot time.
    let ipc = match baseline::measure(&mut g) {
        Ok(ns) => format!("{ns} ns ({} round trips)", baseline::ROUND_TRIPS),
        Err(e) => format!("not measured ({e})"),
    };
    report!("stats root: bare seL4 IPC round trip (Call + ReplyRecv) {ipc}");
    let across = match frames.slot_of(kernel::ipc_pinger_entry()).map(|slot| baseline::measure_across(&mut g, slot)) {
        Some(Ok(ns)) => format!("{ns} ns ({} round trips)", baseline::ROUND_TRIPS),
        Some(Err(e)) => format!("not measured ({e})"),
        None => "not measured (the client's code is not in our image)".into(),
    };
    report!("stats root: bare seL4 IPC round trip between address spaces (Call + ReplyRecv) {across}");
    report!(
        "stats root: {} kernel entries counted, {} heap bytes in use, {} slots free, {} of {} RAM bytes free, {} window misses; realtime from {clock}, counter at {} Hz; {}",
        vm::entries_so_far(),
        kernel::heap_used(),
        g.slots.available(),
        g.pool.free_bytes(),
        g.pool.ram_bytes,
        g.alias_misses,
        kernel::counter_frequency(),
        cores::summary()
    );
    report!("stats root: boot stages: {}", stages::summary(kernel::counter_frequency()));
    report!("all {total} apps done: {exited} exited, {killed} killed, {failed} failed to start");
    Ok(())
}

const _: () = assert!(musl_shim::channel::MAX_CHANNELS == selkie_manifest::MAX_IMAGE_CHANNELS);

/// A channel's ring in pages of our image (`kernel::ring_*`), which `mmap` maps
/// read-only into consumers.
struct ImageRing(usize);

impl musl_shim::channel::RingMemory for ImageRing {
    fn read(&self, off: usize, buf: &mut [u8]) {
        kernel::ring_read(self.0, off, buf)
    }
    fn write(&mut self, off: usize, bytes: &[u8]) {
        kernel::ring_write(self.0, off, bytes)
    }
    fn runner_addr(&self) -> Option<usize> {
        Some(kernel::ring_addr(self.0))
    }
}

/// The image's channels (every app's `publishes` and `consumes`): one bus, each ring in
/// our image; every app gets the ones it names as /dev/selkie/channels/NAME.
fn join_channels(manifest: &selkie_manifest::Manifest<selkie_manifest::Text<'_>>, apps: &mut [App]) -> Result<(), String> {
    if apps.iter().all(|a| manifest.apps[a.id].spec.publishes.is_empty() && manifest.apps[a.id].spec.consumes.is_empty()) {
        return Ok(());
    }
    let names = |l: &[selkie_manifest::Text<'_>]| l.iter().map(|t| text(t, "channel")).collect::<Result<Vec<String>, String>>();
    let mut lists: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for app in apps.iter() {
        let spec = &manifest.apps[app.id].spec;
        lists.push((names(&spec.publishes)?, names(&spec.consumes)?));
    }
    let strs: Vec<(Vec<&str>, Vec<&str>)> = lists.iter().map(|(p, c)| (p.iter().map(String::as_str).collect(), c.iter().map(String::as_str).collect())).collect();
    let refs: Vec<(&[&str], &[&str])> = strs.iter().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
    let plan = musl_shim::channel::plan(&refs);
    if plan.is_empty() {
        return Ok(());
    }
    let bus: musl_shim::channel::SharedBus = Default::default();
    for (i, name) in plan.iter().enumerate() {
        bus.borrow_mut()
            .add(name, alloc::boxed::Box::new(ImageRing(i)))
            .map_err(|_| format!("channel {name}: more than {} channels in one image", musl_shim::channel::MAX_CHANNELS))?;
    }
    for (app, (p, c)) in apps.iter_mut().zip(&refs) {
        kernel::charge_to(Some(app.id));
        let r = app.shim.join_bus(bus.clone(), p, c);
        kernel::charge_to(None);
        r.map_err(|e| format!("{}: its channels: {e:?}", app.name))?;
    }
    log::info!("{} channels", plan.len());
    Ok(())
}

#[derive(Default)]
struct Stats {
    exited: usize,
    killed: usize,
    /// Apps held back for others that did not exit with status 0 (never started).
    not_started: usize,
    /// Counter ticks spent handling messages and settling after them, and how many.
    handling: u64,
    settling: u64,
    messages: u64,
    /// The last message was a syscall that returned at once and changed nothing that
    /// other threads or apps could be waiting for (`Shim::quiet_mark`): no settling.
    quiet: bool,
    /// Messages after which settling was skipped so.
    unsettled: u64,
    /// Identity calls answered before any of that (`quick_call`), not in `messages`.
    quick: u64,
}

/// The badge of the timer's notification, bound to our TCB: a Recv on the endpoint
/// returns it when the timer fires (threads' badges are small counters).
const TIMER_BADGE: u64 = 1 << 63;

/// The EL1 physical timer, programmed by us at EL0, its interrupt delivered to the
/// notification bound to our TCB. Its kernel objects are set up when the first deadline
/// is (`program`), so an image whose apps never sleep makes none of those kernel calls
/// at boot (issue 11, boot time).
struct Timer {
    /// Our chunk the notification is retyped from.
    untyped: usize,
    /// `None` until set up; then the interrupt's handler, or `Err` when setting up failed
    /// (said once: sleeps and timeouts never end).
    irq: Option<Result<sel4::cap::IrqHandler, ()>>,
    /// The deadline (monotonic ns) the timer is set for.
    armed: Option<u64>,
    fired: u64,
}

impl Timer {
    fn new(untyped: usize) -> Timer {
        kernel::timer_stop();
        Timer { untyped, irq: None, armed: None, fired: 0 }
    }

    /// Whether the timer's interrupt sees deadlines (false once setting it up failed).
    fn usable(&self) -> bool {
        !matches!(self.irq, Some(Err(())))
    }

    /// The notification, its badged copy for the interrupt, the interrupt's handler, and
    /// the notification bound to our TCB.
    fn set_up(g: &mut Global, untyped: usize) -> Result<sel4::cap::IrqHandler, String> {
        let here = ut::root_cnode().absolute_cptr_for_self();
        let err = |what: &str, e: sel4::Error| format!("{what}: {e}");
        let ntfn_slot = g.slots.alloc().map_err(|e| format!("{e}"))?;
        ut::retype_one(sel4::cap::Untyped::from_bits(untyped as u64), &sel4::cap_type::Notification::object_blueprint(), &here, ntfn_slot)
            .map_err(|e| err("the timer's notification", e))?;
        let badged = g.slots.alloc().map_err(|e| format!("{e}"))?;
        ut::root_path(badged).mint(&ut::root_path(ntfn_slot), sel4::CapRights::all(), TIMER_BADGE).map_err(|e| err("badging it", e))?;
        let irq_slot = g.slots.alloc().map_err(|e| format!("{e}"))?;
        sel4::init_thread::slot::IRQ_CONTROL
            .cap()
            .irq_control_get(time::TIMER_IRQ, &ut::root_path(irq_slot))
            .map_err(|e| err("IRQControl_Get of the EL1 physical timer's PPI", e))?;
        let irq = sel4::cap::IrqHandler::from_bits(irq_slot as u64);
        kernel::timer_stop();
        irq.irq_handler_set_notification(sel4::cap::Notification::from_bits(badged as u64)).map_err(|e| err("IRQHandler_SetNotification", e))?;
        sel4::init_thread::slot::TCB
            .cap()
            .tcb_bind_notification(sel4::cap::Notification::from_bits(ntfn_slot as u64))
            .map_err(|e| err("binding the notification to our TCB", e))?;
        irq.irq_handler_ack().map_err(|e| err("acknowledging the timer's interrupt", e))?;
        Ok(irq)
    }

    /// Sets the timer for the earliest deadline (monotonic ns), or stops it.
    fn program(&mut self, g: &mut Global, deadline: Option<u64>) {
        if deadline == self.armed {
            return;
        }
        if deadline.is_some() && self.irq.is_none() {
            let r = Timer::set_up(g, self.untyped);
            if let Err(e) = &r {
                log::error!("no timer, sleeps and timeouts never end: {e}");
            }
            self.irq = Some(r.map_err(|_| ()));
        }
        if !self.usable() {
            return;
        }
        match deadline {
            Some(d) => kernel::timer_arm(time::ticks_at(d)),
            None => kernel::timer_stop(),
        }
        self.armed = deadline;
    }
}

/// Copies of the message's first 14 words (the IPC buffer is reused by every call); those
/// past the message's length are stale.
fn message() -> [u64; 14] {
    sel4::with_ipc_buffer(|ib| {
        let regs = ib.msg_regs();
        core::array::from_fn(|i| regs[i])
    })
}

/// The arguments of an SDK Call of `len` words: its first four words, the rest 0. Word by
/// word and no more than these: the root server is built without FP/SIMD registers, so a
/// block copy (as `message` makes) is a call of memcpy, which costs more under QEMU than the
/// few words an SDK syscall sends.
fn call_args(len: usize) -> [u64; 6] {
    let n = len.min(4);
    sel4::with_ipc_buffer(|ib| {
        let regs = ib.msg_regs();
        core::array::from_fn(|i| if i < n { regs[i] } else { 0 })
    })
}

const LABEL_CAP_FAULT: u64 = 1;
const LABEL_UNKNOWN_SYSCALL: u64 = 2;
const LABEL_USER_EXCEPTION: u64 = 3;
const LABEL_VM_FAULT: u64 = 5;
const LABEL_VCPU_FAULT: u64 = 7;
/// An UnknownSyscall reply: seL4 restores x0..x7, FaultIP, SP, LR (ELR) and SPSR from it.
const SYSCALL_REPLY_LEN: usize = 12;
/// The UnknownSyscall message's words (seL4_UnknownSyscall_*, aarch64).
const US_FAULT_IP: usize = 8;
const US_SP: usize = 9;
const US_SPSR: usize = 11;
const US_SYSCALL: usize = 12;
/// An SDK-built syscall with up to four arguments is an seL4_Call on the thread's own
/// endpoint (sdk/musl-x7.patch): label `SDK_CALL | nr`, the arguments as its words. It
/// takes the kernel's IPC fastpath both ways, unlike a fault, which never does.
use musl_shim::text::{SDK_CALL_LABEL as SDK_CALL, SDK_CALL_NR, SDK_REPLY_LABEL as SDK_REPLY};

/// How a syscall reached us.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// A rewritten `svc` (a UserException): registers are read and written through the TCB.
    Rewritten,
    /// An SDK-built `svc` with the number in x7 (an UnknownSyscall fault): the message
    /// holds every register a syscall reads, and a plain return is the reply.
    Fault(&'a [u64; 14]),
    /// An SDK-built seL4_Call: its words are the arguments (the rest 0); a plain return is
    /// a one-word reply, anything else reads the registers when it needs them.
    Call { nr: u64, args: [u64; 6] },
}

/// What to do after handling one message.
enum Next {
    /// Reply to the thread that sent it (its registers are written).
    Reply,
    /// Reply to an UnknownSyscall fault with the 12 registers in `Global::syscall_reply`
    /// (x0..x7, FaultIP, SP, LR, SPSR: seL4's order), which the kernel writes back as it
    /// resumes the thread.
    ReplySyscall,
    /// Reply to an SDK seL4_Call with its result (label `SDK_REPLY`, one word).
    ReplyCall(u64),
    /// Leave it waiting (blocked, or gone) and take the next message.
    Wait,
}

fn serve(g: &mut Global, ep: sel4::cap::Endpoint, apps: &mut [App], stats: &mut Stats, mut timer: Timer, ends_with: Option<&str>) {
    let mut next = Next::Wait;
    // Whether an app may have ended or become free to start since the last look: not
    // after a quiet message (nothing changed but the caller's own state).
    let mut changed = true;
    loop {
        if changed {
            if let Some(last) = ends_with.filter(|e| apps.iter().any(|a| a.name == *e && a.done)) {
                // The image ends with this app (compose's --exit-code-from): stop the others.
                for a in apps.iter_mut().filter(|a| !a.done) {
                    report!("{} stopped: the image ends with {last}", a.name);
                    kernel::charge_to(Some(a.id));
                    a.destroy(g);
                    kernel::charge_to(None);
                    stats.killed += 1;
                    next = Next::Wait;
                }
            }
            if apps.iter().any(|a| a.held && !a.done) {
                release(g, apps, stats);
            }
            if apps.iter().all(|a| a.done) {
                return;
            }
        }
        changed = true;
        let (info, badge) = match next {
            Next::Reply => ep.reply_recv(sel4::MessageInfo::new(0, 0, 0, 0), ()),
            Next::ReplySyscall => {
                // Written only now: settling may have used the IPC buffer.
                sel4::with_ipc_buffer_mut(|ib| ib.msg_regs_mut()[..SYSCALL_REPLY_LEN].copy_from_slice(&g.syscall_reply));
                ep.reply_recv(sel4::MessageInfo::new(0, 0, 0, SYSCALL_REPLY_LEN), ())
            }
            // One borrow of the IPC buffer for the word and the call (this is the quick path).
            Next::ReplyCall(v) => sel4::with_ipc_buffer_mut(|ib| {
                ib.msg_regs_mut()[0] = v;
                ep.with(ib).reply_recv(sel4::MessageInfo::new(SDK_REPLY, 0, 0, 1), ())
            }),
            Next::Wait => ep.recv(()),
        };
        if badge & TIMER_BADGE != 0 {
            // The interrupt's delivery; the Recv it ended is counted with its message.
            vm::entries(1);
            next = Next::Wait;
            settle(g, apps, stats, &mut timer);
            if let Some(Ok(irq)) = timer.irq {
                timer.fired += 1;
                vm::entries(1);
                if let Err(e) = irq.irq_handler_ack() {
                    log::error!("acknowledging the timer: {e}");
                }
            }
            continue;
        }
        // An SDK identity call with nothing due after it: answered here, with no steps
        // around it and no settling after (a quiet message, which needs the timer).
        if is_sdk_call(info.label()) && timer.usable() {
            if let Some(v) = quick_call(g, apps, badge, info.label() & SDK_CALL_NR) {
                stats.quick += 1;
                changed = false;
                next = Next::ReplyCall(v as u64);
                continue;
            }
        }
        let t0 = kernel::counter();
        stats.quiet = false;
        next = handle(g, apps, stats, info.label(), info.length(), badge);
        let t1 = kernel::counter();
        // Without a timer, deadlines are only seen here.
        if stats.quiet && timer.usable() {
            stats.unsettled += 1;
            changed = false;
        } else {
            settle(g, apps, stats, &mut timer);
        }
        stats.handling += t1 - t0;
        stats.settling += kernel::counter() - t1;
        stats.messages += 1;
    }
}

/// Starts each app held back for others (the manifest's `after`, compose's
/// `service_completed_successfully`) once they have all exited with status 0, and gives
/// it up, never started, once one has ended otherwise.
fn release(g: &mut Global, apps: &mut [App], stats: &mut Stats) {
    for i in 0..apps.len() {
        if !apps[i].held || apps[i].done {
            continue;
        }
        use selkie_manifest::{Dependency, Release};
        let verdict = selkie_manifest::release(apps[i].after.iter().map(String::as_str), |d| match apps.iter().find(|a| a.name == d) {
            None => Dependency::Failed(format!("{d} failed to start")),
            Some(a) if !a.done => Dependency::Pending,
            Some(a) => match a.ended {
                Some(musl_shim::task::Ended::Exited(0)) => Dependency::Completed,
                Some(musl_shim::task::Ended::Exited(s)) => Dependency::Failed(format!("{d} exited with status {s}")),
                Some(musl_shim::task::Ended::Killed(s)) => Dependency::Failed(format!("{d} was killed by signal {s}")),
                None => Dependency::Failed(format!("{d} was stopped")),
            },
        });
        let app = &mut apps[i];
        match verdict {
            Release::Wait => {}
            Release::Start => {
                app.held = false;
                report!("{} starts: {} exited with status 0", app.name, app.after.join(", "));
                if let Err(e) = app.resume() {
                    report!("{} failed to start: resuming it: {e}", app.name);
                    kernel::charge_to(Some(app.id));
                    app.destroy(g);
                    kernel::charge_to(None);
                    stats.not_started += 1;
                }
            }
            Release::Never(why) => {
                report!("{} not started: {why}", app.name);
                kernel::charge_to(Some(app.id));
                app.destroy(g);
                kernel::charge_to(None);
                stats.not_started += 1;
            }
        }
    }
}

/// After each message: wakes threads whose deadline passed, carries out every app's
/// events, ends apps whose first process ended or whose threads can never wake, and
/// sets the timer for the next deadline.
fn settle(g: &mut Global, apps: &mut [App], stats: &mut Stats, timer: &mut Timer) {
    let now = time::monotonic_ns();
    let mut next: Option<u64> = None;
    // An app on a network waiting for ever may be woken by another app: it is stuck only
    // when every app on the network is.
    let all_stuck = apps.iter().filter(|a| !a.done && !a.held).all(|a| a.deadlocked());
    for app in apps.iter_mut().filter(|a| !a.done) {
        kernel::charge_to(Some(app.id));
        if app.shim.next_deadline().is_some_and(|d| d <= now) {
            app.shim.expire(now);
        }
        app.apply_events(g);
        if app.shim.app_ended().is_some() {
            finish(g, app, stats);
        } else if app.deadlocked() && (!app.networked || all_stuck) {
            report!("{} killed by signal 9 (every thread is blocked forever, {} threads)", app.name, app.threads.len());
            app.ended = Some(musl_shim::task::Ended::Killed(SIGKILL));
            app.destroy(g);
            stats.killed += 1;
        }
        kernel::charge_to(None);
        if !app.done {
            next = match (next, app.shim.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    timer.program(g, next);
}

/// The app's first process has ended: so has the app.
fn finish(g: &mut Global, app: &mut App, stats: &mut Stats) {
    match app.shim.app_ended() {
        Some(musl_shim::task::Ended::Killed(sig)) => {
            report!("{} killed by signal {sig}", app.name);
            stats.killed += 1;
        }
        Some(musl_shim::task::Ended::Exited(status)) => {
            report!("{} exited with status {status}", app.name);
            stats.exited += 1;
        }
        None => return,
    }
    app.ended = app.shim.app_ended();
    app.destroy(g);
}

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;
const SIGSYS: i32 = 31;

/// A fault ends thread `tid`'s process with signal `sig`:
/// `[selkie] <app> killed by signal N (<kind>), pc .., fault address ..` when it is the
/// app's first process (the app ends), else `[selkie] <app>: process P killed by ...` and
/// the app's other processes go on.
fn fault(g: &mut Global, app: &mut App, stats: &mut Stats, tid: u32, sig: i32, kind: &str, pc: u64, addr: u64) -> Next {
    let pid = app.pid_of(tid).unwrap_or(musl_shim::PID);
    if pid == musl_shim::PID {
        report!("{} killed by signal {sig} ({kind}), pc {pc:#x}, fault address {addr:#x}", app.name);
        app.ended = Some(musl_shim::task::Ended::Killed(sig));
        app.destroy(g);
        stats.killed += 1;
        return Next::Wait;
    }
    report!("{}: process {pid} killed by signal {sig} ({kind}), pc {pc:#x}, fault address {addr:#x}", app.name);
    if app.shim.switch_to(tid) {
        app.shim.kill_current(sig);
    }
    app.drop_process(g, pid);
    Next::Wait
}

/// Kills the whole app (whatever thread was at fault).
fn kill_app(g: &mut Global, app: &mut App, stats: &mut Stats, sig: i32, kind: &str) {
    report!("{} killed by signal {sig} ({kind}), pc 0x0, fault address 0x0", app.name);
    app.ended = Some(musl_shim::task::Ended::Killed(sig));
    app.destroy(g);
    stats.killed += 1;
}

/// The thread with `badge`'s SDK call of syscall `nr`, answered at once when it is an
/// identity call with nothing due after it ([`App::quick_call`]); `None`: it goes the usual way.
fn quick_call(g: &mut Global, apps: &mut [App], badge: u64, nr: u64) -> Option<i64> {
    let (id, tid) = g.owners.get(badge)?;
    // An app's id is its index unless an app before it failed to start.
    let i = if apps.get(id).is_some_and(|a| a.id == id) { id } else { apps.iter().position(|a| a.id == id)? };
    let app = &mut apps[i];
    if app.done {
        return None;
    }
    let v = app.quick_call(tid, nr)?;
    // The app's Call and our ReplyRecv.
    vm::entries(2);
    Some(v)
}

fn handle(g: &mut Global, apps: &mut [App], stats: &mut Stats, label: u64, len: usize, badge: u64) -> Next {
    // The app's trap and our next ReplyRecv (or Recv).
    vm::entries(2);
    // Each thread's fault endpoint carries its own badge.
    let Some((id, tid)) = g.owners.get(badge) else {
        log::error!("message with unknown badge {badge:#x} (label {label}) dropped");
        return Next::Wait;
    };
    let Some(app) = apps.iter_mut().find(|a| a.id == id) else {
        return Next::Wait;
    };
    if app.done {
        return Next::Wait;
    }
    kernel::charge_to(Some(id));
    let mut next = if is_sdk_call(label) && app.sdk_syscalls(tid) {
        // The SDK's fast path: a Call's few words, not the whole message.
        call(g, app, stats, tid, label & SDK_CALL_NR, call_args(len))
    } else {
        handle_app(g, app, stats, tid, label, len, &message())
    };
    if matches!(next, Next::Reply) && is_sdk_call(label) {
        // Its registers are written, but a reply to a Call would overwrite x0..x5 with
        // the message: restart the thread instead (it leaves the Call, the reply cap goes).
        vm::entries(1);
        if let Some(Err(e)) = app.tcb_of(tid).map(|t| t.tcb_resume()) {
            log::error!("{}: resuming thread {tid}: {e}", app.name);
        }
        next = Next::Wait;
    }
    if !app.done && kernel::charged(id) > app.heap_quota {
        let what = format!("root heap quota exceeded: {} of {} bytes", kernel::charged(id), app.heap_quota);
        kill_app(g, app, stats, SIGKILL, &what);
        kernel::charge_to(None);
        stats.quiet = false;
        return Next::Wait;
    }
    kernel::charge_to(None);
    next
}

/// Whether a message's label is that of an SDK syscall made as an seL4_Call.
fn is_sdk_call(label: u64) -> bool {
    label & !SDK_CALL_NR == SDK_CALL
}

fn handle_app(g: &mut Global, app: &mut App, stats: &mut Stats, tid: u32, label: u64, len: usize, m: &[u64; 14]) -> Next {
    match label {
        LABEL_USER_EXCEPTION => {
            let pc = m[0];
            if !app.is_trap(tid, pc) {
                return match app.emulate_id_register(g, tid, pc) {
                    Ok(true) => Next::Reply,
                    _ => fault(g, app, stats, tid, SIGILL, "undefined instruction", pc, pc),
                };
            }
            syscall(g, app, stats, tid, pc, Entry::Rewritten)
        }
        LABEL_VM_FAULT => {
            let (pc, addr, prefetch) = (m[0], m[1], m[2]);
            match app.fault_in(g, tid, addr) {
                Ok(true) => Next::Reply,
                Ok(false) => {
                    let kind = if prefetch != 0 { "instruction fetch fault" } else { "data fault" };
                    fault(g, app, stats, tid, SIGSEGV, kind, pc, addr)
                }
                Err(e) => fault(g, app, stats, tid, SIGKILL, &format!("out of memory mapping a page: {e}"), pc, addr),
            }
        }
        LABEL_VCPU_FAULT => {
            let hsr = m[0];
            let pc = app.tcb_of(tid).and_then(|t| t.tcb_read_registers(false, 1).ok()).map(|r| *r.pc()).unwrap_or(0);
            let (sig, kind) = match hsr >> 26 {
                0x3c => (SIGTRAP, format!("breakpoint brk #{:#x}, HSR {hsr:#x}", hsr & 0xffff)),
                0x07 => (SIGILL, format!("FP/SIMD trap, HSR {hsr:#x}")),
                ec => (SIGILL, format!("trap EC {ec:#x}, HSR {hsr:#x}")),
            };
            fault(g, app, stats, tid, sig, &kind, pc, 0)
        }
        LABEL_UNKNOWN_SYSCALL if app.sdk_syscalls(tid) => syscall(g, app, stats, tid, m[US_FAULT_IP], Entry::Fault(m)),
        LABEL_UNKNOWN_SYSCALL => {
            let (pc, x7) = (m[US_FAULT_IP], m[US_SYSCALL]);
            fault(g, app, stats, tid, SIGSYS, &format!("unrewritten svc, seL4 syscall {}", x7 as i64), pc, pc)
        }
        LABEL_CAP_FAULT => fault(g, app, stats, tid, SIGSEGV, "capability fault", m[0], m[1]),
        0 => fault(g, app, stats, tid, SIGSYS, &format!("sent an seL4 message of {len} words"), 0, 0),
        l => fault(g, app, stats, tid, SIGKILL, &format!("fault label {l}"), m[0], 0),
    }
}

/// A syscall being handled: its thread, how it entered, the pc of its `svc` (0 for a Call
/// whose registers were not read), and the kernel entries counted before it.
#[derive(Clone, Copy)]
struct At<'a> {
    tid: u32,
    tcb: sel4::cap::Tcb,
    entry: Entry<'a>,
    pc: u64,
    before: u64,
}

/// Returns `v` from the syscall `at` and resumes its thread past it: by the reply to its
/// fault or Call, or (a rewritten `svc`) with x0 and pc written first.
fn return_value(g: &mut Global, app: &mut App, stats: &mut Stats, at: At, regs: &mut sel4::UserContext, v: i64) -> Next {
    let At { tid, tcb, entry, pc, before } = at;
    let next = match entry {
        Entry::Fault(m) => {
            g.syscall_reply.copy_from_slice(&m[..SYSCALL_REPLY_LEN]);
            g.syscall_reply[0] = v as u64;
            g.syscall_reply[US_FAULT_IP] = pc + 4;
            Next::ReplySyscall
        }
        Entry::Call { .. } => Next::ReplyCall(v as u64),
        Entry::Rewritten => {
            *regs.gpr_mut(0) = v as u64;
            *regs.pc_mut() = pc + 4;
            vm::entries(1);
            // pc, sp, spsr, x0
            if let Err(e) = tcb.tcb_write_registers(false, 4, regs) {
                return fault(g, app, stats, tid, SIGKILL, &format!("writing registers failed: {e}"), pc, 0);
            }
            Next::Reply
        }
    };
    app.syscall_entries += vm::entries_so_far() - before;
    app.returned += 1;
    next
}

/// Resumes thread `tid` (trapped at `pc`) with all its registers as `set` leaves them,
/// or in the handler of a signal due then; a signal's default action ends its process.
/// `set` failing (a bad rt_sigreturn frame) is SIGSEGV, as on Linux.
fn resume_with_signals(
    g: &mut Global,
    app: &mut App,
    stats: &mut Stats,
    tid: u32,
    tcb: sel4::cap::Tcb,
    pc: u64,
    set: impl FnOnce(&mut App, &mut Global, &mut sel4::UserContext) -> Result<(), ()>,
) -> Next {
    vm::entries(1);
    let mut regs = match tcb.tcb_read_all_registers(false) {
        Ok(r) => r,
        Err(e) => return fault(g, app, stats, tid, SIGKILL, &format!("reading registers failed: {e}"), pc, 0),
    };
    if set(app, g, &mut regs).is_err() {
        let sp = *regs.sp();
        return fault(g, app, stats, tid, SIGSEGV, "rt_sigreturn with a bad frame", pc, sp);
    }
    if app.shim.signal_ready() {
        if let musl_shim::sigframe::Delivery::Killed(sig) = app.take_signal(g, tid, &mut regs) {
            app.killed_by_signal(g, tid, sig);
            if app.shim.app_ended().is_some() {
                finish(g, app, stats);
            }
            return Next::Wait;
        }
    }
    vm::entries(1);
    if let Err(e) = tcb.tcb_write_all_registers(false, &mut regs) {
        return fault(g, app, stats, tid, SIGKILL, &format!("writing registers failed: {e}"), pc, 0);
    }
    Next::Reply
}

const NR_CLONE: u64 = 220;
const NR_MMAP: u64 = 222;
const MAP_ANONYMOUS: u64 = 0x20;
const EAGAIN: i64 = 11;
const ENOMEM: i64 = 12;

/// Thread `tid`'s syscall at `pc` (for an seL4_Call, 0: read when needed), reached by
/// `entry`.
fn syscall(g: &mut Global, app: &mut App, stats: &mut Stats, tid: u32, mut pc: u64, entry: Entry) -> Next {
    let before = vm::entries_so_far() - 2;
    let Some(tcb) = app.tcb_of(tid) else { return Next::Wait };
    // pc, sp, spsr, x0..x8
    let (mut regs, nr, args) = match entry {
        Entry::Fault(m) => {
            let mut r = sel4::UserContext::default();
            *r.pc_mut() = pc;
            *r.sp_mut() = m[US_SP];
            *r.spsr_mut() = m[US_SPSR];
            for i in 0..8 {
                *r.gpr_mut(i) = m[i];
            }
            // The SDK's musl sets x8 as Linux wants it, to the number it puts in x7.
            *r.gpr_mut(8) = m[US_SYSCALL];
            (r, m[US_SYSCALL], [0, 1, 2, 3, 4, 5].map(|i| m[i]))
        }
        Entry::Rewritten => {
            vm::entries(1);
            match tcb.tcb_read_registers(false, 12) {
                Ok(r) => {
                    let args = [0, 1, 2, 3, 4, 5].map(|i| *r.gpr(i));
                    let nr = *r.gpr(8);
                    (r, nr, args)
                }
                Err(e) => return fault(g, app, stats, tid, SIGKILL, &format!("reading registers failed: {e}"), pc, 0),
            }
        }
        Entry::Call { nr, args } => (sel4::UserContext::default(), nr, args),
    };
    // Returns `v` to the thread and resumes it past the syscall.
    macro_rules! ret {
        ($v:expr) => {
            return_value(g, app, stats, At { tid, tcb, entry, pc, before }, &mut regs, $v)
        };
    }
    if nr == NR_CLONE && !app.prepare_clone(g, tid, args[0]) {
        app.syscalls += 1;
        return ret!(-EAGAIN);
    }
    if nr == NR_MMAP && args[3] & MAP_ANONYMOUS == 0 && !app.room_for_file_map(tid, args) {
        app.syscalls += 1;
        return ret!(-ENOMEM);
    }
    let mark = app.shim.quiet_mark();
    let action = app.syscall(g, tid, nr, args);
    if matches!(entry, Entry::Call { .. }) && !(matches!(action, musl_shim::Action::Return(_)) && !app.shim.signal_ready()) {
        // Not a plain return: what follows needs the thread's registers (pc is its svc).
        vm::entries(1);
        match tcb.tcb_read_registers(false, 12) {
            Ok(r) => {
                pc = *r.pc();
                regs = r;
            }
            Err(e) => return fault(g, app, stats, tid, SIGKILL, &format!("reading registers failed: {e}"), 0, 0),
        }
    }
    complete(g, app, stats, At { tid, tcb, entry, pc, before }, &mut regs, mark, action)
}

/// Thread `tid`'s SDK seL4_Call of syscall `nr`: the shim runs it on the message's words
/// alone, and a plain return is the one-word reply, without reading or building the
/// thread's registers: the fast path of the SDK's syscalls. Anything else reads the
/// registers (pc is the thread's `svc`) and goes on as every other entry does; clone and
/// mmap, which need more than the shim, take the general path from the start.
fn call(g: &mut Global, app: &mut App, stats: &mut Stats, tid: u32, nr: u64, args: [u64; 6]) -> Next {
    if nr == NR_CLONE || nr == NR_MMAP {
        return syscall(g, app, stats, tid, 0, Entry::Call { nr, args });
    }
    let before = vm::entries_so_far() - 2;
    let Some((tcb, pid)) = app.thread(tid) else { return Next::Wait };
    let mark = app.shim.quiet_mark();
    let action = app.syscall_in(g, tid, pid, nr, args);
    if let musl_shim::Action::Return(v) = action {
        if !app.shim.signal_ready() {
            stats.quiet = app.shim.app_ended().is_none() && app.shim.quiet_mark() == mark && !app.done;
            app.syscall_entries += vm::entries_so_far() - before;
            app.returned += 1;
            return Next::ReplyCall(v as u64);
        }
    }
    vm::entries(1);
    match tcb.tcb_read_registers(false, 12) {
        Ok(mut regs) => {
            let pc = *regs.pc();
            complete(g, app, stats, At { tid, tcb, entry: Entry::Call { nr, args }, pc, before }, &mut regs, mark, action)
        }
        Err(e) => fault(g, app, stats, tid, SIGKILL, &format!("reading registers failed: {e}"), 0, 0),
    }
}

/// Carries out the shim's `action` for the syscall `at`, with its thread's registers `regs`
/// (as it trapped); `mark` is the shim's quiet mark from before the syscall.
fn complete(g: &mut Global, app: &mut App, stats: &mut Stats, at: At, regs: &mut sel4::UserContext, mark: (u64, u64, usize), action: musl_shim::Action) -> Next {
    let At { tid, tcb, entry, pc, before } = at;
    // Returns `v` to the thread and resumes it past the syscall.
    macro_rules! ret {
        ($v:expr) => {
            return_value(g, app, stats, At { tid, tcb, entry, pc, before }, regs, $v)
        };
    }
    match action {
        musl_shim::Action::Return(v) if app.shim.signal_ready() => {
            let r = resume_with_signals(g, app, stats, tid, tcb, pc, |_, _, regs| {
                *regs.gpr_mut(0) = v as u64;
                *regs.pc_mut() = pc + 4;
                Ok(())
            });
            app.syscall_entries += vm::entries_so_far() - before;
            app.returned += 1;
            r
        }
        musl_shim::Action::Return(v) => {
            let quiet = app.shim.app_ended().is_none() && app.shim.quiet_mark() == mark;
            let next = ret!(v);
            stats.quiet = quiet && !app.done;
            next
        }
        musl_shim::Action::SigReturn => resume_with_signals(g, app, stats, tid, tcb, pc, |app, g, regs| app.sigreturn(g, tid, regs)),
        musl_shim::Action::Block => {
            app.block(tid, pc, regs.clone());
            Next::Wait
        }
        musl_shim::Action::ThreadExit => {
            app.retire_thread(g, tid);
            Next::Wait
        }
        musl_shim::Action::Exit(_) | musl_shim::Action::Killed(_) => {
            if app.shim.app_ended().is_some() {
                finish(g, app, stats);
            } else if let Some(pid) = app.pid_of(tid) {
                app.drop_process(g, pid);
            }
            Next::Wait
        }
        musl_shim::Action::Spawned(sp) => match app.spawn(g, tid, pc, &sp) {
            Ok(()) if sp.parent_blocks => {
                app.block(tid, pc, regs.clone());
                Next::Wait
            }
            Ok(()) => ret!(i64::from(sp.child)),
            Err(e) => {
                report!("{}: clone: the child could not be started: {e}", app.name);
                app.spawn_failed(g, tid, &sp);
                if sp.parent_blocks {
                    // The child's end woke the vforking parent (an event).
                    app.block(tid, pc, regs.clone());
                    return Next::Wait;
                }
                ret!(i64::from(sp.child))
            }
        },
        musl_shim::Action::Exec(img) => match app.exec(g, tid, &img) {
            Ok(()) => Next::Reply,
            Err(e) => {
                // Past execve's point of no return: Linux kills the process too.
                report!("{}: execve {}: {e}", app.name, String::from_utf8_lossy(&img.path));
                if app.shim.switch_to(tid) {
                    app.shim.kill_current(SIGKILL);
                }
                if app.shim.app_ended().is_some() {
                    finish(g, app, stats);
                } else if let Some(pid) = app.pid_of(tid) {
                    app.drop_process(g, pid);
                }
                Next::Wait
            }
        },
        // Actions a newer shim may ask for that this runner does not carry out yet: only
        // the process that asked pays.
        #[allow(unreachable_patterns)]
        other => fault(g, app, stats, tid, SIGKILL, &format!("unsupported shim action {other:?}"), pc, 0),
    }
}
