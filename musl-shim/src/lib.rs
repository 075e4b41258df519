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

pub mod channel;
pub mod counter;
pub mod errno;
pub mod fd;
pub mod filemap;
pub mod inotify;
pub mod jobctl;
pub mod lock;
pub mod mem;
pub mod mm;
pub mod net;
pub mod pipe;
pub mod platform;
pub mod procfs;
pub mod pty;
pub mod sigframe;
pub mod poll;
pub mod start;
pub mod stat;
pub mod sys;
pub mod task;
pub mod testing;
pub mod text;
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

/// What the caller does after a syscall of the current thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Resume the thread with this value in x0 (negative: `-errno`).
    Return(i64),
    /// The thread's process exited with this status (0..=255): destroy all its threads
    /// and its address space. For the app's first process (pid 1) the app has ended.
    Exit(i32),
    /// The process was killed by this signal (abort, a fatal kill to itself, SIGPIPE).
    Killed(i32),
    /// Park the thread; a later [`Event::Wake`](task::Event) says how it goes on.
    Block,
    /// Only this thread ended (`exit` with other threads left): destroy it.
    ThreadExit,
    /// clone/fork/vfork made a thread or a process: see [`Spawn`]. (Boxed, as `Exec`'s
    /// image: an Action is returned by every syscall, and a small one is copied cheaply.)
    Spawned(Box<Spawn>),
    /// execve: replace the process's image with this program (see [`ExecImage`]).
    Exec(Box<ExecImage>),
    /// rt_sigreturn: the runner hands the thread's registers to [`Shim::sigreturn`] and
    /// resumes it with what the frame held.
    SigReturn,
}

/// A thread or process made by clone. The child starts as a copy of the caller's
/// registers just after the syscall, with x0 = 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    pub child: task::Tid,
    /// A new process: its address space is a copy of the caller's (fork).
    pub new_process: bool,
    /// The child's sp, or 0 to keep the caller's.
    pub stack: u64,
    /// The child's TPIDR_EL0 (CLONE_SETTLS).
    pub tls: Option<u64>,
    /// Where to store the child's tid in the child's memory (CLONE_CHILD_SETTID).
    pub child_settid: Option<u64>,
    /// The caller returns the child's id now, or (vfork) is parked until the child execs
    /// or exits and then woken with it.
    pub parent_blocks: bool,
}

/// The program execve starts: the runner unmaps the old image, resets
/// [`Shim::mm`] for the new one's layout, loads it and builds its stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecImage {
    /// Absolute path of the ELF to load (an interpreter for `#!`); symlinks in it are the
    /// runner's to follow.
    pub path: alloc::vec::Vec<u8>,
    /// The path the program was asked by (AT_EXECFN).
    pub execfn: alloc::vec::Vec<u8>,
    pub argv: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    pub envp: alloc::vec::Vec<alloc::vec::Vec<u8>>,
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
    pub pid: u32,
    /// Real, effective and saved ids are one here: set together, by root or to themselves.
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (setgroups; none at the start, as in a container).
    pub groups: alloc::vec::Vec<u32>,
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
    /// The program it runs (/proc/<pid>/exe), its argv and envp as /proc/<pid>/cmdline and
    /// environ give them (each string NUL-terminated).
    pub exe: alloc::vec::Vec<u8>,
    /// Nice value (setpriority) and persona (personality).
    pub nice: i32,
    pub personality: u32,
    pub cmdline: alloc::vec::Vec<u8>,
    pub environ: alloc::vec::Vec<u8>,
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
    /// Every process and thread of the app; the others' state is parked there.
    pub tasks: task::Tasks<'a>,
    logged: BTreeSet<u64>,
    /// The rootfs cpio the image's files are borrowed from, and its pack-time text store.
    rootfs: &'a [u8],
    text: text::TextStore<'a>,
    /// The app's sockets' names (listeners, datagram inboxes), shared by its processes
    /// and, on a network, by the other apps on it.
    pub net: alloc::rc::Rc<core::cell::RefCell<net::Net>>,
    /// The app's IPv4 address on its network (127.0.0.1 alone).
    pub host: [u8; 4],
    /// Trap tables [`text::scan`] found for code that is not in the store, by content.
    scanned: core::cell::RefCell<alloc::collections::BTreeMap<(u64, usize), Vec<u64>>>,
    /// The image's channels, and which of them the app publishes and consumes (by index).
    pub bus: Option<channel::SharedBus>,
    pub publishes: Vec<usize>,
    pub consumes: Vec<usize>,
    /// The tree's named pipes that have been opened, and the threads waiting in an open
    /// of one for the other side, by (fifo, thread, for writing): the end the other side's
    /// open made for them once it came.
    pub fifos: alloc::collections::BTreeMap<vfs::Ino, pipe::Fifo>,
    pub fifo_openers: alloc::collections::BTreeMap<(vfs::Ino, task::Tid, bool), Option<pipe::FifoEnd>>,
    /// Programs started so far (the first one and every exec), for [`procfs::refresh`].
    pub execs: u64,
    /// What [`procfs::refresh`] last saw.
    pub proc_seen: Option<procfs::Seen>,
    /// The app's pseudo-terminals.
    pub ptys: pty::Ptys,
    /// The byte-range locks (fcntl) its processes hold.
    pub locks: lock::Locks<'a>,
    /// What all its processes' shared file mappings may hold ([`filemap`]: each keeps a
    /// copy in the runner's memory), in bytes; past it, `mmap` gives `ENOMEM`.
    pub map_limit: usize,
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
                pid: PID,
                uid: cfg.uid,
                gid: cfg.gid,
                groups: alloc::vec::Vec::new(),
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
                exe: Vec::new(),
                nice: 0,
                personality: 0,
                cmdline: Vec::new(),
                environ: Vec::new(),
            },
            tasks: task::Tasks::new(),
            logged: BTreeSet::new(),
            rootfs: rootfs_cpio,
            text: text::TextStore::default(),
            net: Default::default(),
            host: [127, 0, 0, 1],
            scanned: Default::default(),
            bus: None,
            publishes: Vec::new(),
            consumes: Vec::new(),
            fifos: Default::default(),
            fifo_openers: Default::default(),
            execs: 0,
            proc_seen: None,
            ptys: Default::default(),
            locks: Default::default(),
            map_limit: filemap::DEFAULT_LIMIT,
        }
    }

    /// Puts the app on a network shared with other apps: their sockets' names (`net`),
    /// the I/O generation that wakes their waiting threads (`gen`, shared so that a write
    /// in one app retries a blocked read in another), its address `host`, and the names
    /// of everyone on it (`hosts`: (name, address)) in its `/etc/hosts`, with a
    /// resolv.conf that names no server, so lookups of other names fail at once. Call
    /// before the app runs.
    pub fn join_network(&mut self, net: alloc::rc::Rc<core::cell::RefCell<net::Net>>, gen: pipe::IoGen, host: [u8; 4], hosts: &[(String, [u8; 4])]) {
        self.net = net;
        self.tasks.io_gen = gen;
        self.host = host;
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (name, a) in hosts {
            text.push_str(&alloc::format!("{}.{}.{}.{}\t{name}\n", a[0], a[1], a[2], a[3]));
        }
        self.vfs.set_etc_file(b"hosts", text.into_bytes());
        self.vfs.set_etc_file(b"resolv.conf", b"# selkie: service names are in /etc/hosts; there is no DNS server\noptions timeout:1 attempts:1\n".to_vec());
    }

    /// Gives the app the channels it publishes and consumes (names on `bus`, which holds
    /// every channel of the image): each appears as `/dev/selkie/channels/NAME`. Call
    /// after [`Shim::join_network`], so that a message wakes readers in other apps.
    /// `ENOENT` names a channel the bus does not have.
    pub fn join_bus(&mut self, bus: channel::SharedBus, publishes: &[&str], consumes: &[&str]) -> SysResult<()> {
        let find = |n: &&str| bus.borrow().find(n).ok_or(errno::ENOENT);
        self.publishes = publishes.iter().map(find).collect::<SysResult<_>>()?;
        self.consumes = consumes.iter().map(find).collect::<SysResult<_>>()?;
        let mut all: Vec<usize> = self.publishes.iter().chain(&self.consumes).copied().collect();
        all.sort_unstable();
        all.dedup();
        for ch in all {
            let perm = if self.publishes.contains(&ch) { 0o220 } else { 0 } | if self.consumes.contains(&ch) { 0o440 } else { 0 };
            let name = String::from(bus.borrow().name(ch));
            self.vfs.add_channel(name.as_bytes(), ch as u16, perm);
        }
        self.bus = Some(bus);
        Ok(())
    }

    /// The pack-time trap tables of the image's ELFs (the bundle's `<rootfs>.text`).
    pub fn set_text_store(&mut self, store: text::TextStore<'a>) {
        self.text = store;
    }

    /// Where `file` starts in the rootfs cpio, when it is one of the image's own files.
    fn image_offset(&self, file: &[u8]) -> Option<u64> {
        let base = self.rootfs.as_ptr() as usize;
        let at = (file.as_ptr() as usize).checked_sub(base)?;
        (at.checked_add(file.len())? <= self.rootfs.len()).then_some(at as u64)
    }

    /// The store's record for `file` (rewritten segments to map without a copy).
    pub fn stored_text(&self, file: &[u8]) -> Option<text::FileText<'a>> {
        self.text.get(self.image_offset(file)?, file.len() as u64)
    }

    /// File offsets of the syscall words of `file`, an ELF about to be mapped for
    /// execution: its pack-time trap table, or (for code the store does not hold, such as
    /// a file the app wrote) what [`text::scan`] finds now. Empty when it has none.
    pub fn traps_of(&self, file: &[u8]) -> Vec<u64> {
        if text::sdk_abi(file) {
            // Its syscalls set x7: they reach the runner unrewritten.
            return Vec::new();
        }
        if let Some(t) = self.stored_text(file) {
            return t.traps().collect();
        }
        let key = (text::hash(file), file.len());
        if let Some(t) = self.scanned.borrow().get(&key) {
            return t.clone();
        }
        let found = text::scan(file).unwrap_or_default();
        self.scanned.borrow_mut().insert(key, found.clone());
        found
    }

    /// Files whose syscalls were found at run time (not in the pack-time store).
    pub fn scanned_files(&self) -> usize {
        self.scanned.borrow().len()
    }

    /// Lets the app make threads and processes and block (the runner schedules them,
    /// handles [`Action::Block`], [`Action::Spawned`], [`Action::Exec`] and the events
    /// from [`Shim::take_events`]). `max_tasks` caps live threads plus processes.
    pub fn enable_tasks(&mut self, max_tasks: u32) {
        self.tasks.enabled = true;
        self.tasks.max_tasks = max_tasks;
    }

    /// The manifest's caps: threads alive at once across the app, and processes. Past
    /// either, clone fails with EAGAIN in this app alone.
    pub fn set_task_limits(&mut self, max_threads: u32, max_processes: u32) {
        self.tasks.max_threads = max_threads;
        self.tasks.max_processes = max_processes;
    }

    /// The thread whose syscalls are serviced.
    pub fn current(&self) -> task::Tid {
        self.tasks.cur
    }

    /// The ranges where process `pid` maps files shared (`MAP_SHARED`): a runner that
    /// gives a forked child the parent's frames there, not copies, lets each process see
    /// the other's stores at once (the seL4 root server does; the emulator copies, and the
    /// mappings meet the file at each syscall, see [`filemap`]).
    pub fn shared_file_ranges(&self, pid: task::Pid) -> Vec<(u64, u64)> {
        let mm = if pid == self.proc_.pid { Some(&self.mm) } else { self.tasks.parked.get(&pid).map(|p| &p.mm) };
        mm.map_or_else(Vec::new, |mm| mm.files.iter().map(|m| (m.start, m.start + m.len)).collect())
    }

    /// Meets the current process's shared file mappings with their files: runners call it
    /// as a blocked syscall's thread resumes, since its memory may be older than what
    /// another process stored meanwhile (the syscall's own sync ran when it blocked).
    pub fn sync_mappings(&mut self, mem: &mut dyn GuestMemory) {
        if !self.mm.files.is_empty() {
            filemap::sync(&mut self.mm.files, &mut self.vfs, mem);
        }
    }

    /// The runner gave process `pid`'s shared file mappings (those of
    /// [`Shim::shared_file_ranges`]) frames that another process maps too: from now on
    /// their memory is the truth between the processes (see [`filemap::sync`]).
    pub fn share_file_frames(&mut self, pid: task::Pid) {
        if pid == self.proc_.pid {
            filemap::set_aliased(&mut self.mm.files, &self.vfs);
        } else if let Some(p) = self.tasks.parked.get_mut(&pid) {
            filemap::set_aliased(&mut p.mm.files, &self.vfs);
        }
    }

    /// The process of thread `tid`.
    pub fn pid_of(&self, tid: task::Tid) -> Option<task::Pid> {
        self.tasks.pid_of(tid)
    }

    /// Makes `tid` the current thread (and its process the current process); false when
    /// there is no such thread.
    pub fn switch_to(&mut self, tid: task::Tid) -> bool {
        if tid == self.tasks.cur {
            return true;
        }
        let Some(new_pid) = self.tasks.pid_of(tid) else { return false };
        if let Some(t) = self.tasks.threads.get_mut(&self.tasks.cur) {
            t.sigmask = self.proc_.sigmask;
        }
        let old_pid = self.proc_.pid;
        if new_pid != old_pid {
            let Some(p) = self.tasks.parked.remove(&new_pid) else { return false };
            let old = task::Parked {
                fds: core::mem::replace(&mut self.fds, p.fds),
                mm: core::mem::replace(&mut self.mm, p.mm),
                cwd: core::mem::replace(&mut self.cwd, p.cwd),
                proc_: core::mem::replace(&mut self.proc_, p.proc_),
            };
            if self.tasks.procs.get(&old_pid).is_some_and(|p| p.ended.is_none()) {
                self.tasks.parked.insert(old_pid, old);
            }
        }
        self.proc_.sigmask = self.tasks.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
        self.tasks.cur = tid;
        true
    }

    /// A mark of everything a syscall could change that matters to other threads and
    /// apps: the I/O generation (every pipe, socket, eventfd and channel change bumps it),
    /// the scheduling generation (a thread parked with its deadline, or one went: the
    /// earliest deadline may differ), and the events not yet taken (a wake is one). A runner
    /// that finds the same mark after a syscall that returned at once has nothing to settle.
    /// Cheap: no thread is looked at.
    pub fn quiet_mark(&self) -> (u64, u64, usize) {
        (self.tasks.io_gen.get(), self.tasks.sched_gen, self.tasks.events.len())
    }

    /// What happened to threads other than the caller since the last call.
    pub fn take_events(&mut self) -> Vec<task::Event> {
        self.tasks.poll_io();
        core::mem::take(&mut self.tasks.events)
    }

    /// The earliest monotonic time (ns) at which a parked thread's wait times out.
    pub fn next_deadline(&self) -> Option<u64> {
        self.tasks.next_deadline()
    }

    /// Wakes the threads whose deadline is at or before `now` (monotonic ns).
    pub fn expire(&mut self, now: u64) {
        self.tasks.expire(now);
        sys::itimer::fire(self);
    }

    /// How the app's first process ended, once it has: the app's end.
    pub fn app_ended(&self) -> Option<task::Ended> {
        self.tasks.procs.get(&PID).and_then(|p| p.ended)
    }

    /// Records the program the current process now runs (its first one, or after an
    /// exec): /proc/<pid>/exe (what Rust's `current_exe` reads), cmdline, environ, and
    /// its name (comm), the file name's first 15 bytes.
    pub fn set_program(&mut self, img: &ExecImage) {
        let joined = |v: &[Vec<u8>]| v.iter().flat_map(|s| s.iter().copied().chain([0])).collect::<Vec<u8>>();
        let p = &mut self.proc_;
        p.exe = img.path.clone();
        p.cmdline = joined(&img.argv);
        p.environ = joined(&img.envp);
        let base = img.execfn.rsplit(|&c| c == b'/').next().unwrap_or(&[]);
        p.name = [0; 16];
        let n = base.len().min(15);
        p.name[..n].copy_from_slice(&base[..n]);
        self.execs += 1;
    }

    /// Parks the calling thread until I/O changes (the call is then retried), its own
    /// `deadline` passes, or a timerfd of its fds expires (retried then too).
    /// A call that I/O woke and that waits again keeps its first deadline.
    pub(crate) fn block_on_io(&mut self, deadline: Option<(u64, i64)>) {
        let cur = self.tasks.cur;
        let own = self.tasks.take_kept_deadline(cur).or(deadline);
        let deadline = task::with_wake(own, self.fds.earliest_wake());
        self.tasks.block(cur, task::Wait::Io, deadline);
    }

    /// Reads the monotonic clock for the task table (threads parking and waking now).
    fn tick<E: Platform>(&mut self, env: &mut E) {
        let now = env.now(ClockId::Monotonic).as_nanos();
        if self.tasks.clock == 0 {
            let cpu = env.now(ClockId::Cpu).as_nanos();
            self.tasks.start_clock(now, cpu);
        }
        self.tasks.clock = self.tasks.clock.max(now);
    }

    /// Thread `tid`'s syscall `nr` answered without [`Shim::syscall`]'s steps, when it may
    /// be: `nr` is an identity call ([`sys::process::identity`]: it reads state and changes
    /// none), `tid` is the current thread, and none of the work that follows a syscall is
    /// due: no signal to take, its process not stopped, no interval timer armed, no pty
    /// (whose signals go out after a call), no kept deadline to drop. The value is the one
    /// [`Shim::syscall`] would return then; `None` means: call that. Like Linux's syscall
    /// exit, which looks at its work flags once and does nothing more when none is set.
    /// What is skipped is only bookkeeping for later calls: the clock's high-water mark
    /// and the I/O poll (which the runner's settling does when the I/O generation moved).
    pub fn quick_syscall(&self, tid: task::Tid, nr: u64) -> Option<i64> {
        if tid != self.tasks.cur || self.tasks.itimers_armed || !self.ptys.is_empty() || self.tasks.keeps_deadlines() || self.tasks.clock == 0 {
            return None;
        }
        if self.signal_ready() {
            return None;
        }
        // One lookup of the process, for jobctl::is_stopped and getppid.
        let p = self.tasks.procs.get(&self.proc_.pid);
        if self.tasks.enabled && p.is_some_and(|p| p.stopped) {
            return None;
        }
        sys::process::identity_given(self, nr, || p.map_or(0, |p| p.parent)).map(|v| v as i64)
    }

    /// Services syscall `nr` with arguments x0..x5.
    pub fn syscall<E: Platform>(&mut self, env: &mut E, nr: u64, a: [u64; 6]) -> Action {
        let cur = self.tasks.cur;
        self.tick(env);
        // A thread of a stopped process runs the call once it is continued.
        if jobctl::park_if_stopped(self, None) {
            return Action::Block;
        }
        if sys::nr::looks_up_paths(nr) {
            procfs::refresh(self);
        }
        if sys::nr::stamps_files(nr) {
            let t = env.now(ClockId::Realtime);
            self.vfs.now = vfs::Ts { sec: t.sec, nsec: t.nsec };
        }
        // Shared file mappings meet their files on both sides of the call.
        filemap::sync(&mut self.mm.files, &mut self.vfs, env);
        let outcome = sys::dispatch(self, env, nr, a);
        filemap::sync(&mut self.mm.files, &mut self.vfs, env);
        self.vfs.reclaim();
        let action = match outcome {
            Some(sys::Outcome::Ret(Err(errno::EBLOCK))) if self.tasks.enabled => {
                self.block_on_io(None);
                Action::Block
            }
            // Nobody else could ever make it ready.
            Some(sys::Outcome::Ret(Err(errno::EBLOCK))) => Action::Return(errno::EAGAIN.ret()),
            Some(sys::Outcome::Ret(Err(errno::EPIPE))) if sys::signal::raises_sigpipe(nr) => {
                match sys::signal::kill_self(self, sys::signal::SIGPIPE) {
                    sys::Outcome::Killed(s) => self.end_current(task::Ended::Killed(s)),
                    _ => Action::Return(errno::EPIPE.ret()),
                }
            }
            Some(sys::Outcome::Ret(Ok(v))) => Action::Return(v as i64),
            Some(sys::Outcome::Ret(Err(e))) => Action::Return(e.ret()),
            Some(sys::Outcome::Exit(s)) => self.end_current(task::Ended::Exited(s)),
            Some(sys::Outcome::Killed(s)) => self.end_current(task::Ended::Killed(s)),
            Some(sys::Outcome::Action(a)) => a,
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
        };
        // Signals the ptys raised (^C, a resize, a hangup) go out now.
        let action = match pty::settle(self) {
            Some(sig) if !matches!(action, Action::Exit(_) | Action::Killed(_)) => self.end_current(task::Ended::Killed(sig)),
            _ => action,
        };
        // A process that stopped itself (or was stopped by a terminal) stops here.
        let action = match action {
            Action::Return(v) if jobctl::park_if_stopped(self, Some(v)) => Action::Block,
            a => a,
        };
        if sys::nr::sends_signals(nr) {
            sys::sigwait::wake_sigwaiters(self);
        }
        // Interval timers due by now fire (a thread that just parked may take the signal).
        sys::itimer::fire(self);
        if matches!(action, Action::Block) {
            if let Some(t) = self.tasks.threads.get_mut(&cur) {
                t.nr = nr;
            }
        } else {
            // The call is over: a deadline kept for its retries goes with it.
            self.tasks.take_kept_deadline(cur);
        }
        if self.tasks.enabled {
            self.tasks.poll_io();
        }
        action
    }

    /// The current process is killed by `sig` (a fault its runner caught).
    pub fn kill_current(&mut self, sig: i32) {
        let _ = self.end_current(task::Ended::Killed(sig));
    }

    /// The current process ends: with tasks, the task table records it (and wakes its
    /// parent); the runner destroys its threads and address space.
    fn end_current(&mut self, how: task::Ended) -> Action {
        if self.tasks.enabled {
            let pid = self.proc_.pid;
            sys::process::end_process(self, pid, how);
        }
        match how {
            task::Ended::Exited(s) => Action::Exit(s),
            task::Ended::Killed(s) => Action::Killed(s),
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
