//! Processes, threads and wait queues of one app.
//!
//! The shim never runs a thread itself: it tells its runner (the emulator, the root
//! server) what happened through the [`Action`](crate::Action) of the calling thread and
//! through [`Event`]s for the others ("wake this thread with this value", "this process is
//! gone"). A syscall that must wait parks its thread on a [`Wait`]; the thread is woken
//! either with a value (futex, sleep, vfork) or with [`Resume::Retry`], after which the
//! runner re-executes the same syscall (pipes, wait4), as Linux restarts it.
//!
//! The current process's state lives in the [`Shim`](crate::Shim)'s own fields (`fds`,
//! `mm`, `cwd`, `proc_`) so that every handler reaches it directly; the others are
//! [`Parked`] here and swapped in by [`Shim::switch_to`](crate::Shim::switch_to).

use crate::fd::FdTable;
use crate::mm::MemoryMap;
use crate::pipe::IoGen;
use crate::vfs::Ino;
use crate::Process;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;

/// A thread id; a process's id is the tid of its first thread.
pub type Tid = u32;
pub type Pid = u32;

/// Threads plus processes an app may have alive at once, unless its manifest says.
pub const DEFAULT_MAX_TASKS: u32 = 256;

/// A process's state while another one is current.
pub struct Parked<'a> {
    pub fds: FdTable<'a>,
    pub mm: MemoryMap,
    pub cwd: Ino,
    pub proc_: Process,
}

/// How a process ended: the wait status Linux reports (`exit << 8`, or the signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Killed(i32),
}

impl Ended {
    pub fn wait_status(self) -> u32 {
        match self {
            Ended::Exited(c) => ((c as u32) & 0xff) << 8,
            Ended::Killed(s) => s as u32 & 0x7f,
        }
    }
}

/// What the task table knows of every process, alive or zombie.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub parent: Pid,
    pub pgid: Pid,
    pub sid: Pid,
    pub threads: Vec<Tid>,
    pub ended: Option<Ended>,
    /// The parent thread that vforked this process and waits for its exec or exit.
    pub vfork_parent: Option<Tid>,
    /// Signal sent to the parent at exit (`clone`'s low byte; SIGCHLD for fork).
    pub exit_signal: u32,
    /// CPU time (ns) of its threads that have ended.
    pub dead_cpu: u64,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF (see [`Itimer`]); a fork starts with none.
    pub itimers: [Itimer; 3],
    /// Stopped by a job control signal until SIGCONT ([`crate::jobctl`]).
    pub stopped: bool,
    /// A stop or continuation its parent's wait has not yet been told of.
    pub report: Option<crate::jobctl::Report>,
}

/// An interval timer: `next` is when it fires (0: disarmed), in monotonic ns for
/// ITIMER_REAL and in the process's CPU ns for the other two; `interval` re-arms it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Itimer {
    pub next: u64,
    pub interval: u64,
}

/// What a parked thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A futex word of its process (woken with 0, or ETIMEDOUT at the deadline).
    Futex { pid: Pid, addr: u64, bitset: u32 },
    /// Any I/O object changing (pipes): retried.
    Io,
    /// A child's exit (wait4/waitid): retried.
    Child,
    /// A vforked child's exec or exit: woken with the child's pid.
    Vfork { child: Pid },
    /// Only the deadline (nanosleep).
    Sleep,
    /// A signal (rt_sigsuspend): woken with EINTR when one comes.
    Signal,
    /// One of a set of signals (rt_sigtimedwait): retried when one is pending, woken
    /// with EINTR by a handled signal outside it, EAGAIN at the deadline.
    SigWait { set: u64 },
    /// Its process is stopped ([`crate::jobctl`]): at SIGCONT it returns `value` from the
    /// syscall it stopped in, or (`None`) runs that syscall again.
    Stopped { value: Option<i64> },
}

#[derive(Debug, Clone)]
pub struct ThreadInfo {
    pub pid: Pid,
    /// `CLONE_CHILD_CLEARTID`/`set_tid_address`: zeroed and futex-woken at exit.
    pub clear_tid: u64,
    pub sigmask: u64,
    /// Signals sent to this thread alone (tkill/tgkill), not yet taken.
    pub pending: u64,
    /// The mask rt_sigsuspend replaced, put back when its signal's handler is entered.
    pub suspended_mask: Option<u64>,
    pub wait: Option<Wait>,
    /// Monotonic nanoseconds at which the wait ends, with the value it then returns
    /// ([`TIMED_OUT_RETRY`]: the call runs again, told that its time is up).
    pub deadline: Option<(u64, i64)>,
    /// Its wait's deadline passed with [`TIMED_OUT_RETRY`]: the call it retries returns
    /// what it has now (poll and select clear their results, as Linux does at a timeout).
    pub timed_out: bool,
    /// The deadline of an I/O wait that I/O ended: the call runs again and, if it waits
    /// again, keeps it (a timeout counts from the first call). Cleared when a call ends.
    pub kept_deadline: Option<(u64, i64)>,
    pub cpu: CpuTime,
    /// The syscall it is parked in (whether a handler's SA_RESTART may restart it).
    pub nr: u64,
}

/// A thread's CPU time: the monotonic time since it was made less the time it spent
/// parked (runnable counts as running: the runner does not say when it runs a thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// When it was made (monotonic ns).
    pub born: u64,
    /// Time parked in waits that have ended.
    pub blocked: u64,
    /// Since when it is parked, if it is.
    pub since: Option<u64>,
}

impl CpuTime {
    /// CPU nanoseconds at monotonic time `now`.
    pub fn at(&self, now: u64) -> u64 {
        let parked = self.since.map_or(0, |s| now.saturating_sub(s));
        now.saturating_sub(self.born).saturating_sub(self.blocked).saturating_sub(parked)
    }
}

/// A deadline value: at the deadline the syscall runs again rather than returning a value
/// (see [`Tasks::take_timed_out`]).
pub const TIMED_OUT_RETRY: i64 = i64::MIN;
/// A deadline value: at the deadline the syscall simply runs again (a timerfd it waits on
/// expires then).
pub const RETRY: i64 = i64::MIN + 1;

/// The earlier of a wait's own deadline and `wake` (a timerfd's expiry, retried then).
pub fn with_wake(own: Option<(u64, i64)>, wake: Option<u64>) -> Option<(u64, i64)> {
    match (own, wake) {
        (Some(o), Some(w)) if w < o.0 => Some((w, RETRY)),
        (None, Some(w)) => Some((w, RETRY)),
        (o, _) => o,
    }
}

impl ThreadInfo {
    pub fn new(pid: Pid, clear_tid: u64, sigmask: u64) -> Self {
        ThreadInfo {
            pid,
            clear_tid,
            sigmask,
            pending: 0,
            suspended_mask: None,
            wait: None,
            deadline: None,
            timed_out: false,
            kept_deadline: None,
            cpu: CpuTime::default(),
            nr: 0,
        }
    }
}

/// How a woken thread goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Return this value from the syscall it waited in.
    Value(i64),
    /// Execute the same syscall again.
    Retry,
}

/// What the runner must do for threads other than the calling one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Wake { tid: Tid, resume: Resume },
    /// The process ended (a signal from another process, or its parent app ended):
    /// destroy its threads and address space.
    ProcessGone { pid: Pid },
    /// One thread of a live process ended (exec or exit_group elsewhere in it).
    ThreadGone { tid: Tid },
}

/// Every process and thread of one app.
pub struct Tasks<'a> {
    /// Whether the runner schedules threads and processes (clone, fork, exec, blocking).
    /// Without it the shim behaves as one single-threaded process.
    pub enabled: bool,
    pub procs: BTreeMap<Pid, ProcInfo>,
    pub threads: BTreeMap<Tid, ThreadInfo>,
    pub parked: BTreeMap<Pid, Parked<'a>>,
    /// Futex waiters per (process, address), oldest first.
    pub futexes: BTreeMap<(Pid, u64), VecDeque<Tid>>,
    pub events: Vec<Event>,
    pub io_gen: IoGen,
    io_seen: u64,
    /// Bumped whenever a thread's deadline may change (it parks, or a thread goes), so a
    /// runner can tell that the earliest deadline is unchanged without scanning threads.
    pub sched_gen: u64,
    /// At least the number of threads with a `kept_deadline` (never fewer): most syscalls
    /// end with none to take, and then need not look their thread up.
    kept: usize,
    next_id: u32,
    next_pipe: u64,
    pub max_tasks: u32,
    /// Threads alive at once across the app (the manifest's max_threads).
    pub max_threads: u32,
    /// Processes alive at once (max_processes).
    pub max_processes: u32,
    pub cur: Tid,
    /// Per process with a pidfd open: whether it has ended (what its pidfds poll).
    pub pidfds: BTreeMap<Pid, Rc<Cell<bool>>>,
    /// Whether any thread may have a signal of its own pending, or a mask to restore after
    /// rt_sigsuspend (set when one is given either, never cleared): until then only the
    /// processes' pending signals need a look (`Shim::signal_ready`).
    pub thread_signals: bool,
    /// Whether any process may have an interval timer armed.
    pub itimers_armed: bool,
    /// Monotonic ns when the current syscall started, or when the runner last expired
    /// deadlines: when threads park and wake (see [`CpuTime`]).
    pub clock: u64,
}

impl<'a> Tasks<'a> {
    pub fn new() -> Self {
        let mut t = Tasks {
            enabled: false,
            procs: BTreeMap::new(),
            threads: BTreeMap::new(),
            parked: BTreeMap::new(),
            futexes: BTreeMap::new(),
            events: Vec::new(),
            io_gen: Rc::new(Cell::new(0)),
            io_seen: 0,
            sched_gen: 0,
            kept: 0,
            next_id: 2,
            next_pipe: 0,
            max_tasks: DEFAULT_MAX_TASKS,
            max_threads: DEFAULT_MAX_TASKS,
            max_processes: DEFAULT_MAX_TASKS,
            cur: crate::PID,
            clock: 0,
            thread_signals: false,
            itimers_armed: false,
            pidfds: BTreeMap::new(),
        };
        t.procs.insert(
            crate::PID,
            ProcInfo {
                parent: 0,
                pgid: crate::PID,
                sid: crate::PID,
                threads: alloc::vec![crate::PID],
                ended: None,
                vfork_parent: None,
                exit_signal: 17,
                dead_cpu: 0,
                itimers: Default::default(),
                stopped: false,
                report: None,
            },
        );
        t.threads.insert(crate::PID, ThreadInfo::new(crate::PID, 0, 0));
        t
    }

    /// The id the next thread or process gets (ids are never reused).
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    pub fn pid_of(&self, tid: Tid) -> Option<Pid> {
        self.threads.get(&tid).map(|t| t.pid)
    }

    pub fn live_processes(&self) -> u32 {
        self.procs.values().filter(|p| p.ended.is_none()).count() as u32
    }

    /// Live threads plus live processes (what the task limit counts).
    pub fn live(&self) -> u32 {
        self.threads.len() as u32 + self.procs.values().filter(|p| p.ended.is_none()).count() as u32
    }

    /// A fresh id (never one in use by a thread or an unreaped process).
    pub fn alloc_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = if self.next_id >= 4_194_303 { 2 } else { self.next_id + 1 };
            if !self.threads.contains_key(&id) && !self.procs.contains_key(&id) {
                return id;
            }
        }
    }

    /// An inode number for a new pipe.
    pub fn alloc_pipe_ino(&mut self) -> u64 {
        self.next_pipe += 1;
        self.next_pipe
    }

    /// Parks `tid` on `wait`, with an optional (deadline, value at the deadline).
    pub fn block(&mut self, tid: Tid, wait: Wait, deadline: Option<(u64, i64)>) {
        if let Some(t) = self.threads.get_mut(&tid) {
            self.sched_gen += 1;
            t.wait = Some(wait);
            t.deadline = deadline;
            t.cpu.since.get_or_insert(self.clock);
            if let Wait::Futex { pid, addr, .. } = wait {
                self.futexes.entry((pid, addr)).or_default().push_back(tid);
            }
        }
    }

    /// Wakes `tid` if it waits; removes it from any futex queue.
    pub fn wake(&mut self, tid: Tid, resume: Resume) -> bool {
        let Some(t) = self.threads.get_mut(&tid) else { return false };
        let Some(w) = t.wait.take() else { return false };
        t.deadline = None;
        if let Some(since) = t.cpu.since.take() {
            t.cpu.blocked = t.cpu.blocked.saturating_add(self.clock.saturating_sub(since));
        }
        if let Wait::Futex { pid, addr, .. } = w {
            self.unqueue(pid, addr, tid);
        }
        self.events.push(Event::Wake { tid, resume });
        true
    }

    fn unqueue(&mut self, pid: Pid, addr: u64, tid: Tid) {
        if let Some(q) = self.futexes.get_mut(&(pid, addr)) {
            q.retain(|&t| t != tid);
            if q.is_empty() {
                self.futexes.remove(&(pid, addr));
            }
        }
    }

    /// Wakes up to `n` waiters on (pid, addr) whose bitset meets `bitset`; returns how many.
    pub fn futex_wake(&mut self, pid: Pid, addr: u64, n: u64, bitset: u32) -> u64 {
        let Some(q) = self.futexes.get(&(pid, addr)) else { return 0 };
        let chosen: Vec<Tid> = q
            .iter()
            .copied()
            .filter(|t| matches!(self.threads.get(t).and_then(|t| t.wait), Some(Wait::Futex { bitset: b, .. }) if b & bitset != 0))
            .take(n.min(u64::from(u32::MAX)) as usize)
            .collect();
        for &t in &chosen {
            self.wake(t, Resume::Value(0));
        }
        chosen.len() as u64
    }

    /// Moves up to `n` waiters from (pid, from) to (pid, to); returns how many.
    pub fn futex_requeue(&mut self, pid: Pid, from: u64, to: u64, n: u64) -> u64 {
        let mut moved = 0;
        while moved < n {
            let Some(tid) = self.futexes.get_mut(&(pid, from)).and_then(|q| q.pop_front()) else { break };
            if let Some(Wait::Futex { bitset, .. }) = self.threads.get(&tid).and_then(|t| t.wait) {
                self.threads.get_mut(&tid).unwrap().wait = Some(Wait::Futex { pid, addr: to, bitset });
                self.futexes.entry((pid, to)).or_default().push_back(tid);
                moved += 1;
            }
        }
        if self.futexes.get(&(pid, from)).is_some_and(|q| q.is_empty()) {
            self.futexes.remove(&(pid, from));
        }
        moved
    }

    /// Retries every thread waiting on I/O if some I/O object changed since last time.
    pub fn poll_io(&mut self) {
        let g = self.io_gen.get();
        if g == self.io_seen {
            return;
        }
        self.io_seen = g;
        let waiting: Vec<Tid> = self.threads.iter().filter(|(_, t)| t.wait == Some(Wait::Io)).map(|(&k, _)| k).collect();
        for t in waiting {
            if let Some(th) = self.threads.get_mut(&t) {
                th.kept_deadline = th.deadline.filter(|d| d.1 != RETRY);
                if th.kept_deadline.is_some() {
                    self.kept += 1;
                }
            }
            self.wake(t, Resume::Retry);
        }
    }

    /// The deadline `tid`'s last I/O wait had when I/O ended it (see
    /// [`ThreadInfo::kept_deadline`]); clears it.
    pub fn take_kept_deadline(&mut self, tid: Tid) -> Option<(u64, i64)> {
        if self.kept == 0 {
            return None;
        }
        let kept = self.threads.get_mut(&tid).and_then(|t| t.kept_deadline.take());
        if kept.is_some() {
            self.kept -= 1;
        }
        kept
    }

    /// Whether some thread may hold a kept deadline (see [`Tasks::take_kept_deadline`]).
    pub fn keeps_deadlines(&self) -> bool {
        self.kept != 0
    }

    /// Retries the threads of `parent` waiting for a child.
    pub fn wake_child_waiters(&mut self, parent: Pid) {
        let waiting: Vec<Tid> = self
            .threads
            .iter()
            .filter(|(_, t)| t.pid == parent && t.wait == Some(Wait::Child))
            .map(|(&k, _)| k)
            .collect();
        for t in waiting {
            self.wake(t, Resume::Retry);
        }
    }

    /// The earliest deadline of a parked thread or of an interval timer (monotonic ns).
    pub fn next_deadline(&self) -> Option<u64> {
        let waits = self.threads.values().filter_map(|t| t.deadline.map(|d| d.0)).min();
        match (waits, self.next_itimer()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the earliest interval timer may fire (monotonic ns): a CPU-time timer's
    /// process must have a thread that is not parked, which runs at best all the time.
    pub fn next_itimer(&self) -> Option<u64> {
        if !self.itimers_armed {
            return None;
        }
        let mut best: Option<u64> = None;
        for (&pid, p) in self.procs.iter().filter(|(_, p)| p.ended.is_none()) {
            let running = p.threads.iter().any(|t| self.threads.get(t).is_some_and(|t| t.wait.is_none()));
            let cpu = if running { self.process_cpu(pid) } else { None };
            for (which, it) in p.itimers.iter().enumerate().filter(|(_, it)| it.next != 0) {
                let at = match (which, cpu) {
                    (0, _) => it.next,
                    (_, Some(c)) => self.clock.saturating_add(it.next.saturating_sub(c)),
                    _ => continue,
                };
                best = Some(best.map_or(at, |b| b.min(at)));
            }
        }
        best
    }

    /// Wakes every thread whose deadline is at or before `now`.
    pub fn expire(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        let due: Vec<(Tid, i64)> = self
            .threads
            .iter()
            .filter_map(|(&k, t)| t.deadline.filter(|d| d.0 <= now).map(|d| (k, d.1)))
            .collect();
        for (t, v) in due {
            if v == TIMED_OUT_RETRY {
                if let Some(th) = self.threads.get_mut(&t) {
                    th.timed_out = true;
                }
                self.wake(t, Resume::Retry);
            } else if v == RETRY {
                self.wake(t, Resume::Retry);
            } else {
                self.wake(t, Resume::Value(v));
            }
        }
    }

    /// Whether `tid`'s last wait ended at its deadline (see [`TIMED_OUT_RETRY`]); clears it.
    pub fn take_timed_out(&mut self, tid: Tid) -> bool {
        self.threads.get_mut(&tid).is_some_and(|t| core::mem::take(&mut t.timed_out))
    }

    /// CPU nanoseconds of thread `tid` now (see [`CpuTime`]).
    pub fn thread_cpu(&self, tid: Tid) -> Option<u64> {
        self.threads.get(&tid).map(|t| t.cpu.at(self.clock))
    }

    /// CPU nanoseconds of process `pid`: its live threads' and its ended ones'.
    pub fn process_cpu(&self, pid: Pid) -> Option<u64> {
        let p = self.procs.get(&pid)?;
        let live = p.threads.iter().filter_map(|&t| self.thread_cpu(t)).fold(0u64, u64::saturating_add);
        Some(live.saturating_add(p.dead_cpu))
    }

    /// A thread made now starts with no CPU time.
    pub fn start_thread_cpu(&mut self, tid: Tid) {
        let now = self.clock;
        if let Some(t) = self.threads.get_mut(&tid) {
            t.cpu.born = now;
        }
    }

    /// Starts the clocks: `now` is the monotonic time and `cpu` the CPU time the app's
    /// first thread has had (the platform's CPU clock).
    pub fn start_clock(&mut self, now: u64, cpu: u64) {
        self.clock = now;
        if let Some(t) = self.threads.get_mut(&crate::PID) {
            t.cpu.born = now.saturating_sub(cpu);
        }
    }

    /// Whether any thread is parked (runnable ones are the runner's business).
    pub fn any_waiting(&self) -> bool {
        self.threads.values().any(|t| t.wait.is_some())
    }
}

impl Default for Tasks<'_> {
    fn default() -> Self {
        Self::new()
    }
}
