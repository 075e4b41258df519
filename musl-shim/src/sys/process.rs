//! Process syscalls: clone, execve, exit, wait4/waitid, futex, process groups, robust
//! lists, uname, limits, prctl, sysinfo, getrandom. The process and thread bookkeeping is
//! [`crate::task`]'s; these handlers decode arguments and decide.

use super::Outcome;
use crate::errno::*;
use crate::platform::{ClockId, Platform};
use crate::task::{Ended, Event, Parked, Pid, ProcInfo, Resume, ThreadInfo, Wait};
use crate::{Action, ExecImage, Shim, Spawn};
use alloc::vec::Vec;


/// futex. With tasks, WAIT parks the thread on the word's queue (woken with 0, or
/// ETIMEDOUT at its deadline) and the wakes, requeues and WAKE_OP act on those queues.
/// Without tasks there is one thread: WAIT returns EAGAIN when the value changed and
/// otherwise sleeps out its timeout (or returns EINTR, a permitted spurious wakeup,
/// rather than deadlocking); the wakes wake nobody.
pub fn futex<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    match futex_op(s, env, a) {
        Ok(FutexDone::Value(v)) => Outcome::Ret(Ok(v)),
        Ok(FutexDone::Block) => Outcome::Action(Action::Block),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

enum FutexDone {
    Value(u64),
    Block,
}

const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// The futex queues' "process" for words in shared file mappings (no real pid is this).
const SHARED_FUTEX: crate::task::Pid = crate::task::Pid::MAX;

/// The queue a futex word is waited on: (pid, address) for private memory; for a word in
/// a shared file mapping (a `sem_open` semaphore, multiprocessing's locks), the file and
/// offset, so that processes mapping the same file at any address meet there.
fn futex_key(s: &Shim<'_>, addr: u64) -> (crate::task::Pid, u64) {
    match s.mm.files.iter().find(|m| addr >= m.start && addr - m.start < m.len) {
        Some(m) => (SHARED_FUTEX, ((m.ino as u64) << 40) | (m.off + (addr - m.start)) & ((1 << 40) - 1)),
        None => (s.proc_.pid, addr),
    }
}

fn futex_op<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<FutexDone> {
    let op = a[1] & 0x7f;
    let (uaddr, val) = (a[0], a[2] as u32);
    if uaddr & 3 != 0 {
        return Err(EINVAL);
    }
    let (pid, key) = futex_key(s, uaddr);
    let tasks = s.tasks.enabled;
    match op {
        // WAIT, WAIT_BITSET
        0 | 9 => {
            let bitset = if op == 9 { a[5] as u32 } else { FUTEX_BITSET_MATCH_ANY };
            if bitset == 0 {
                return Err(EINVAL);
            }
            let cur = env.read_u32(uaddr)?;
            if cur != val {
                return Err(EAGAIN);
            }
            let timeout = if a[3] != 0 {
                let t = super::time::read_ts(env, a[3])?;
                Some(if op == 9 {
                    // WAIT_BITSET takes an absolute time on the chosen clock.
                    let clock = if a[1] & 256 != 0 { ClockId::Realtime } else { ClockId::Monotonic };
                    t.as_nanos().saturating_sub(env.now(clock).as_nanos())
                } else {
                    t.as_nanos()
                })
            } else {
                None
            };
            if tasks {
                let deadline = timeout.map(|ns| (env.now(ClockId::Monotonic).as_nanos().saturating_add(ns), ETIMEDOUT.ret()));
                let cur = s.tasks.cur;
                s.tasks.block(cur, Wait::Futex { pid, addr: key, bitset }, deadline);
                return Ok(FutexDone::Block);
            }
            match timeout {
                Some(ns) => {
                    env.sleep(ns);
                    Err(ETIMEDOUT)
                }
                None => Err(EINTR),
            }
        }
        // WAKE, WAKE_BITSET
        1 | 10 => {
            let bitset = if op == 10 { a[5] as u32 } else { FUTEX_BITSET_MATCH_ANY };
            if bitset == 0 {
                return Err(EINVAL);
            }
            Ok(FutexDone::Value(s.tasks.futex_wake(pid, key, u64::from(val), bitset)))
        }
        // REQUEUE, CMP_REQUEUE: wake val, move up to val2 (in the timeout slot) to uaddr2.
        3 | 4 => {
            if op == 4 && env.read_u32(uaddr)? != a[5] as u32 {
                return Err(EAGAIN);
            }
            let woken = s.tasks.futex_wake(pid, key, u64::from(val), FUTEX_BITSET_MATCH_ANY);
            // Requeued within one kind of memory only (private to private, shared to shared).
            let (to_pid, to) = futex_key(s, a[4]);
            let moved = if to_pid == pid { s.tasks.futex_requeue(pid, key, to, u64::from(a[3] as u32)) } else { 0 };
            Ok(FutexDone::Value(if op == 4 { woken + moved } else { woken }))
        }
        // WAKE_OP: *uaddr2 = op(*uaddr2, oparg); wake val on uaddr; if cmp(old, cmparg),
        // wake val2 on uaddr2.
        5 => {
            let enc = a[5] as u32;
            let (shift, opn, cmp) = (enc >> 31 != 0, (enc >> 28) & 7, (enc >> 24) & 15);
            let mut oparg = (enc >> 12) & 0xfff;
            let cmparg = enc & 0xfff;
            if shift {
                oparg = 1u32.checked_shl(oparg).unwrap_or(0);
            }
            let old = env.read_u32(a[4])?;
            let new = match opn {
                0 => oparg,
                1 => old.wrapping_add(oparg),
                2 => old | oparg,
                3 => old & !oparg,
                4 => old ^ oparg,
                _ => return Err(ENOSYS),
            };
            let hit = match cmp {
                0 => old == cmparg,
                1 => old != cmparg,
                2 => (old as i32) < cmparg as i32,
                3 => (old as i32) <= cmparg as i32,
                4 => (old as i32) > cmparg as i32,
                5 => (old as i32) >= cmparg as i32,
                _ => return Err(ENOSYS),
            };
            env.write_u32(a[4], new)?;
            let mut n = s.tasks.futex_wake(pid, key, u64::from(val), FUTEX_BITSET_MATCH_ANY);
            if hit {
                let (pid2, key2) = futex_key(s, a[4]);
                n += s.tasks.futex_wake(pid2, key2, u64::from(a[3] as u32), FUTEX_BITSET_MATCH_ANY);
            }
            Ok(FutexDone::Value(n))
        }
        _ => Err(ENOSYS),
    }
}

/// The identity calls: getpid, gettid, getppid, get[e]uid, get[e]gid of the current
/// thread (`None` for any other number). They read state and change none, which is what
/// lets [`Shim::quick_syscall`] answer them without the steps around other calls.
pub fn identity(s: &Shim<'_>, nr: u64) -> Option<u64> {
    identity_given(s, nr, || s.tasks.procs.get(&s.proc_.pid).map_or(0, |p| p.parent))
}

/// [`identity`], with the current process's parent from `parent` (a caller that has
/// looked the process up already).
#[inline]
pub fn identity_given(s: &Shim<'_>, nr: u64, parent: impl FnOnce() -> Pid) -> Option<u64> {
    use super::nr::*;
    Some(match nr {
        GETPID => u64::from(s.proc_.pid),
        GETTID => u64::from(s.tasks.cur),
        GETPPID => u64::from(parent()),
        GETUID | GETEUID => u64::from(s.proc_.uid),
        GETGID | GETEGID => u64::from(s.proc_.gid),
        _ => return None,
    })
}

pub fn set_robust_list(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    if a[1] != 24 {
        return Err(EINVAL);
    }
    s.proc_.robust_list = (a[0], a[1]);
    Ok(0)
}

pub fn get_robust_list<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 && a[0] as u32 != s.tasks.cur {
        return Err(ESRCH);
    }
    env.write_u64(a[1], s.proc_.robust_list.0)?;
    env.write_u64(a[2], 24)?;
    Ok(0)
}

/// sched_setaffinity(pid, len, mask): the app has one core; a mask without cpu 0 is EINVAL.
pub fn sched_setaffinity<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 && !s.tasks.threads.contains_key(&(a[0] as u32)) {
        return Err(ESRCH);
    }
    if a[1] == 0 {
        return Err(EINVAL);
    }
    let mut first = [0u8; 1];
    env.read(a[2], &mut first)?;
    if first[0] & 1 == 0 {
        return Err(EINVAL);
    }
    Ok(0)
}

/// getpriority(which, who): 20 - nice, as the kernel returns it (PRIO_PROCESS, PRIO_PGRP,
/// PRIO_USER for this app's own process, group and user).
pub fn getpriority(s: &Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    prio_target(s, a)?;
    Ok((20 - s.proc_.nice) as u64)
}

/// setpriority(which, who, nice): clamped to -20..19; lowering it needs root (EACCES).
pub fn setpriority(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    prio_target(s, a)?;
    let nice = (a[2] as i32).clamp(-20, 19);
    if nice < s.proc_.nice && s.proc_.uid != 0 {
        return Err(EACCES);
    }
    s.proc_.nice = nice;
    Ok(0)
}

fn prio_target(s: &Shim<'_>, a: [u64; 6]) -> SysResult<()> {
    let who = a[1] as u32;
    let pgid = s.tasks.procs.get(&s.proc_.pid).map(|p| p.pgid).unwrap_or(s.proc_.pid);
    let ours = match a[0] {
        0 => who == 0 || who == s.proc_.pid,
        1 => who == 0 || who == pgid,
        2 => who == 0 || who == s.proc_.uid,
        _ => return Err(EINVAL),
    };
    if ours {
        Ok(())
    } else {
        Err(ESRCH)
    }
}

/// personality(persona): 0xffffffff asks; PER_LINUX (0) and its flag variants are kept.
pub fn personality(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let old = s.proc_.personality;
    let new = a[0] as u32;
    if new != 0xffff_ffff {
        if new & 0xff != 0 {
            return Err(EINVAL);
        }
        s.proc_.personality = new;
    }
    Ok(u64::from(old))
}

pub fn sched_getaffinity<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[1] < 8 || !a[1].is_multiple_of(8) {
        return Err(EINVAL);
    }
    env.write_u64(a[2], 1)?;
    Ok(8)
}

pub fn uname<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mut b = [0u8; 65 * 6];
    let host = s.proc_.hostname.as_bytes();
    let fields: [&[u8]; 6] = [b"Linux", host, b"6.1.0-selkie", b"#1 SMP selkie", b"aarch64", b"(none)"];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(64);
        b[65 * i..65 * i + n].copy_from_slice(&f[..n]);
    }
    env.write(a[0], &b)?;
    Ok(0)
}

const RLIM_INFINITY: u64 = u64::MAX;

/// prlimit64(pid, resource, new, old); getrlimit/setrlimit come here too.
pub fn prlimit<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 && a[0] as u32 != s.proc_.pid {
        return Err(ESRCH);
    }
    let (cur, max) = match a[1] {
        3 => (s.proc_.stack_size, s.proc_.stack_size),         // STACK
        7 => (crate::fd::MAX_FDS as u64, crate::fd::MAX_FDS as u64), // NOFILE
        2 | 9 => (s.mm.layout.heap_limit, s.mm.layout.heap_limit), // DATA, AS
        4 => (0, RLIM_INFINITY),                                 // CORE
        0 | 1 | 5 | 6 | 8 | 10 | 11 | 12 | 13 | 14 | 15 => (RLIM_INFINITY, RLIM_INFINITY),
        _ => return Err(EINVAL),
    };
    if a[3] != 0 {
        env.write_u64(a[3], cur)?;
        env.write_u64(a[3].wrapping_add(8), max)?;
    }
    if a[2] != 0 {
        let new_cur = env.read_u64(a[2])?;
        let new_max = env.read_u64(a[2].wrapping_add(8))?;
        if new_cur > new_max {
            return Err(EINVAL);
        }
        if new_max > max {
            return Err(EPERM);
        }
    }
    Ok(0)
}

/// `getrusage`: the user time is the process's (RUSAGE_SELF) or thread's
/// (RUSAGE_THREAD) CPU time; children's is not kept.
pub fn getrusage<E: Platform>(s: &Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let who = a[0] as i32;
    let cpu = match who {
        0 => s.tasks.process_cpu(s.proc_.pid),
        1 => s.tasks.thread_cpu(s.tasks.cur),
        -1 => None,
        _ => return Err(EINVAL),
    };
    let mut b = [0u8; 144];
    if let Some(ns) = cpu {
        let t = crate::platform::Timespec::from_nanos(ns);
        b[0..8].copy_from_slice(&t.sec.to_le_bytes());
        b[8..16].copy_from_slice(&u64::from(t.nsec / 1000).to_le_bytes());
    }
    env.write(a[1], &b)?;
    Ok(0)
}

pub fn prctl<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    match a[0] {
        15 => {
            // PR_SET_NAME
            let name = env.read_cstr(a[1], 4096)?;
            let n = name.len().min(15);
            s.proc_.name = [0; 16];
            s.proc_.name[..n].copy_from_slice(&name[..n]);
            Ok(0)
        }
        16 => {
            // PR_GET_NAME
            let name = s.proc_.name;
            env.write(a[1], &name)?;
            Ok(0)
        }
        1 | 36 | 38 => Ok(0), // PDEATHSIG, CHILD_SUBREAPER, NO_NEW_PRIVS
        2 => {
            env.write_u32(a[1], 0)?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

pub fn sysinfo<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let mut b = [0u8; 112];
    let up = env.now(ClockId::Monotonic).sec;
    b[0..8].copy_from_slice(&up.to_le_bytes());
    let total = s.mm.layout.heap_limit;
    b[32..40].copy_from_slice(&total.to_le_bytes());
    b[40..48].copy_from_slice(&total.saturating_sub(s.mm.heap_used()).to_le_bytes());
    b[80..82].copy_from_slice(&1u16.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    env.write(a[0], &b)?;
    Ok(0)
}

pub fn getrandom<E: Platform>(env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[2] & !7 != 0 {
        return Err(EINVAL);
    }
    let len = a[1].min(32 << 20);
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        env.fill(&mut buf[..n]);
        if let Err(e) = env.write(a[0].wrapping_add(done), &buf[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as u64;
    }
    Ok(done)
}

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: a container's
/// default seccomp profile refuses them too.
const CLONE_NAMESPACES: u64 = 0x0002_0000 | 0x7e00_0000;

/// clone(flags, stack, parent_tid, tls, child_tid): a thread (CLONE_VM|CLONE_THREAD) in
/// this process, or a new process whose memory is a copy of this one (fork; vfork and
/// `CLONE_VM` without `CLONE_THREAD` too: the copy is what the child sees until it
/// execs or exits, and the vforking parent waits for that).
pub fn clone<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    match clone_inner(s, env, a) {
        Ok(spawn) => Outcome::Action(Action::Spawned(alloc::boxed::Box::new(spawn))),
        Err(e) => Outcome::Ret(Err(e)),
    }
}

fn clone_inner<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<Spawn> {
    let (flags, stack, ptid, tls, ctid) = (a[0], a[1], a[2], a[3], a[4]);
    if !s.tasks.enabled {
        return Err(ENOSYS);
    }
    if flags & CLONE_NAMESPACES != 0 {
        return Err(EPERM);
    }
    let thread = flags & CLONE_THREAD != 0;
    if thread && flags & (CLONE_VM | CLONE_SIGHAND) != (CLONE_VM | CLONE_SIGHAND) {
        return Err(EINVAL);
    }
    if !thread && flags & (CLONE_FILES | CLONE_FS) != 0 && flags & CLONE_VM == 0 {
        // A process sharing the fd table or cwd with its parent: not supported.
        return Err(EINVAL);
    }
    let t = &s.tasks;
    if t.live() >= t.max_tasks || t.threads.len() as u32 >= t.max_threads || (!thread && t.live_processes() >= t.max_processes) {
        log::info!("clone: limit reached ({} threads, {} processes)", t.threads.len(), t.live_processes());
        return Err(EAGAIN);
    }
    let pid = s.proc_.pid;
    let cur = s.tasks.cur;
    let id = s.tasks.alloc_id();
    let clear_tid = if flags & CLONE_CHILD_CLEARTID != 0 { ctid } else { 0 };
    let sigmask = s.proc_.sigmask;
    if thread {
        s.tasks.threads.insert(id, ThreadInfo::new(pid, clear_tid, sigmask));
        s.tasks.start_thread_cpu(id);
        if let Some(p) = s.tasks.procs.get_mut(&pid) {
            p.threads.push(id);
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            env.write_u32(ctid, id)?;
        }
    } else {
        let me = s.tasks.procs.get(&pid).cloned().ok_or(ESRCH)?;
        let parent = if flags & CLONE_PARENT != 0 { me.parent } else { pid };
        let mut proc_ = s.proc_.clone();
        proc_.pid = id;
        proc_.pending = 0;
        s.tasks.parked.insert(id, Parked { fds: s.fds.clone(), mm: s.mm.clone(), cwd: s.cwd, proc_ });
        s.tasks.procs.insert(
            id,
            ProcInfo {
                parent,
                pgid: me.pgid,
                sid: me.sid,
                threads: alloc::vec![id],
                ended: None,
                vfork_parent: (flags & CLONE_VFORK != 0).then_some(cur),
                exit_signal: (flags & 0xff) as u32,
                dead_cpu: 0,
                itimers: Default::default(),
                stopped: false,
                report: None,
            },
        );
        s.tasks.threads.insert(id, ThreadInfo::new(id, clear_tid, sigmask));
        s.tasks.start_thread_cpu(id);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        env.write_u32(ptid, id)?;
    }
    let parent_blocks = !thread && flags & CLONE_VFORK != 0;
    if parent_blocks {
        s.tasks.block(cur, Wait::Vfork { child: id }, None);
    }
    Ok(Spawn {
        child: id,
        new_process: !thread,
        stack,
        tls: (flags & CLONE_SETTLS != 0).then_some(tls),
        child_settid: (!thread && flags & CLONE_CHILD_SETTID != 0).then_some(ctid),
        parent_blocks,
    })
}

/// `exit`: only this thread ends, unless it is the process's last.
pub fn exit_thread<E: Platform>(s: &mut Shim<'_>, env: &mut E, status: i32) -> Outcome {
    let pid = s.proc_.pid;
    let cur = s.tasks.cur;
    let others = s.tasks.procs.get(&pid).map(|p| p.threads.iter().filter(|&&t| t != cur).count()).unwrap_or(0);
    if !s.tasks.enabled || others == 0 {
        return Outcome::Exit(status);
    }
    // CLONE_CHILD_CLEARTID: zero the word and wake one waiter (pthread_join).
    if let Some(t) = s.tasks.threads.get(&cur) {
        if t.clear_tid != 0 {
            let at = t.clear_tid;
            if env.write_u32(at, 0).is_ok() {
                s.tasks.futex_wake(pid, at, 1, u32::MAX);
            }
        }
    }
    remove_thread(s, cur);
    Outcome::Action(Action::ThreadExit)
}

fn remove_thread(s: &mut Shim<'_>, tid: u32) {
    if let Some(t) = s.tasks.threads.remove(&tid) {
        s.tasks.sched_gen += 1;
        if let Some(Wait::Futex { pid, addr, .. }) = t.wait {
            s.tasks.futexes.get_mut(&(pid, addr)).map(|q| q.retain(|&x| x != tid));
        }
        let cpu = t.cpu.at(s.tasks.clock);
        if let Some(p) = s.tasks.procs.get_mut(&t.pid) {
            p.threads.retain(|&x| x != tid);
            p.dead_cpu = p.dead_cpu.saturating_add(cpu);
        }
    }
}

/// Records that process `pid` ended: its threads and open files go, its children are
/// given to pid 1, its parent is told (and reaps it at once when it ignores SIGCHLD),
/// a vforking parent is woken. When pid 1 ends, every other process is killed, as a
/// container's processes are when its first one exits. The runner learns of the
/// current process's end from the [`Action`], of the others' from [`Event::ProcessGone`].
pub fn end_process(s: &mut Shim<'_>, pid: Pid, how: Ended) {
    let Some(info) = s.tasks.procs.get_mut(&pid) else { return };
    if info.ended.is_some() {
        return;
    }
    info.ended = Some(how);
    let threads = core::mem::take(&mut info.threads);
    if let Some(f) = s.tasks.pidfds.get(&pid) {
        f.set(true);
        crate::pipe::bump(&s.tasks.io_gen);
    }
    let (parent, vfork_parent) = (info.parent, info.vfork_parent.take());
    for t in threads {
        remove_thread(s, t);
    }
    if pid == s.proc_.pid {
        // Closing every fd (pipes see their ends go).
        s.fds = crate::fd::FdTable::default();
    } else {
        s.tasks.parked.remove(&pid);
        s.tasks.events.push(Event::ProcessGone { pid });
    }
    // Its locks go, and with its fds those of open files nobody else has.
    s.locks.release_process(pid);
    crate::pipe::bump(&s.tasks.io_gen);
    let orphans: Vec<Pid> = s.tasks.procs.iter().filter(|(_, p)| p.parent == pid).map(|(&k, _)| k).collect();
    for o in orphans {
        if let Some(p) = s.tasks.procs.get_mut(&o) {
            p.parent = crate::PID;
        }
    }
    if let Some(t) = vfork_parent {
        s.tasks.wake(t, Resume::Value(i64::from(pid)));
    }
    if pid == crate::PID {
        let others: Vec<Pid> = s.tasks.procs.iter().filter(|(&k, p)| k != pid && p.ended.is_none()).map(|(&k, _)| k).collect();
        for o in others {
            end_process(s, o, Ended::Killed(9));
        }
        return;
    }
    // A parent waiting in wait4 finds the zombie (woken first), as on Linux, rather than
    // seeing its SIGCHLD interrupt the wait.
    s.tasks.wake_child_waiters(parent);
    s.tasks.wake_child_waiters(crate::PID);
    if parent_ignores_sigchld(s, parent) {
        s.tasks.procs.remove(&pid);
    } else if s.tasks.procs.get(&parent).is_some_and(|p| p.ended.is_none()) {
        let sig = s.tasks.procs.get(&pid).map(|p| u64::from(p.exit_signal)).unwrap_or(17);
        if (1..=64).contains(&sig) {
            super::signal::notify(s, parent, sig);
        }
    }
}

fn parent_ignores_sigchld(s: &Shim<'_>, parent: Pid) -> bool {
    const SA_NOCLDWAIT: u64 = 2;
    let act = if parent == s.proc_.pid {
        Some(s.proc_.sigactions[16])
    } else {
        s.tasks.parked.get(&parent).map(|p| p.proc_.sigactions[16])
    };
    act.is_some_and(|a| a[0] == 1 || a[1] & SA_NOCLDWAIT != 0)
}

const WNOHANG: u64 = 1;
const WEXITED: u64 = 4;
/// wait4's WUNTRACED, waitid's WSTOPPED.
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;

/// Which children a wait selects: wait4's pid argument.
fn selects(s: &Shim<'_>, child: &ProcInfo, id: Pid, sel: i64) -> bool {
    match sel {
        -1 => true,
        0 => child.pgid == s.tasks.procs.get(&s.proc_.pid).map(|p| p.pgid).unwrap_or(0),
        p if p > 0 => id as i64 == p,
        g => i64::from(child.pgid) == -g,
    }
}

/// What a wait learns of a child: its end, or (a live one) a stop or continuation.
#[derive(Clone, Copy)]
enum News {
    Ended(Ended),
    Live(crate::jobctl::Report),
}

/// Finds a child matching `sel` with news the wait's `options` ask for (WEXITED,
/// WUNTRACED/WSTOPPED, WCONTINUED): Ok(Some), Ok(None) when some match but none has such
/// news, ECHILD when none match.
fn find_child(s: &Shim<'_>, sel: i64, options: u64) -> SysResult<Option<(Pid, News)>> {
    use crate::jobctl::Report;
    let me = s.proc_.pid;
    let mut any = false;
    for (&id, p) in s.tasks.procs.iter().filter(|(_, p)| p.parent == me) {
        if !selects(s, p, id, sel) {
            continue;
        }
        any = true;
        match (p.ended, p.report) {
            (Some(e), _) if options & WEXITED != 0 => return Ok(Some((id, News::Ended(e)))),
            (None, Some(r @ Report::Stopped(_))) if options & WUNTRACED != 0 => return Ok(Some((id, News::Live(r)))),
            (None, Some(r @ Report::Continued)) if options & WCONTINUED != 0 => return Ok(Some((id, News::Live(r)))),
            _ => {}
        }
    }
    if any {
        Ok(None)
    } else {
        Err(ECHILD)
    }
}

/// The wait took child `id`'s news: a zombie is reaped, a stop or continuation is told
/// once.
fn consume(s: &mut Shim<'_>, id: Pid, news: News) {
    match news {
        News::Ended(_) => {
            s.tasks.procs.remove(&id);
        }
        News::Live(_) => {
            if let Some(p) = s.tasks.procs.get_mut(&id) {
                p.report = None;
            }
        }
    }
}

/// wait4(pid, wstatus, options, rusage).
pub fn wait4<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    let r = (|| {
        if a[2] & !(WNOHANG | WUNTRACED | WCONTINUED | 0x2000_0000 | 0x4000_0000 | 0x8000_0000) != 0 {
            return Err(EINVAL);
        }
        if !s.tasks.enabled {
            return Err(ECHILD);
        }
        match find_child(s, a[0] as i32 as i64, a[2] | WEXITED)? {
            Some((id, news)) => {
                if a[1] != 0 {
                    let status = match news {
                        News::Ended(how) => how.wait_status(),
                        News::Live(r) => r.wait_status(),
                    };
                    env.write_u32(a[1], status)?;
                }
                if a[3] != 0 {
                    env.write(a[3], &[0u8; 144])?;
                }
                consume(s, id, news);
                Ok(Some(u64::from(id)))
            }
            None if a[2] & WNOHANG != 0 => Ok(Some(0)),
            None => Ok(None),
        }
    })();
    blocked_on_child(s, r)
}

fn blocked_on_child(s: &mut Shim<'_>, r: SysResult<Option<u64>>) -> Outcome {
    match r {
        Ok(Some(v)) => Outcome::Ret(Ok(v)),
        Ok(None) => {
            let cur = s.tasks.cur;
            s.tasks.block(cur, Wait::Child, None);
            Outcome::Action(Action::Block)
        }
        Err(e) => Outcome::Ret(Err(e)),
    }
}

/// waitid(idtype, id, infop, options, rusage).
pub fn waitid<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let sel = match a[0] {
            0 => -1,                          // P_ALL
            1 => a[1] as i32 as i64,          // P_PID
            2 => -(a[1] as i32 as i64).max(1), // P_PGID
            _ => return Err(EINVAL),
        };
        if a[3] & (WEXITED | WUNTRACED | WCONTINUED) == 0 || a[3] & !(WNOHANG | WEXITED | WUNTRACED | WCONTINUED | WNOWAIT) != 0 {
            return Err(EINVAL);
        }
        if !s.tasks.enabled {
            return Err(ECHILD);
        }
        match find_child(s, sel, a[3])? {
            Some((id, news)) => {
                if a[2] != 0 {
                    let mut si = [0u8; 128];
                    si[0..4].copy_from_slice(&17u32.to_le_bytes()); // SIGCHLD
                    let (code, status) = match news {
                        News::Ended(Ended::Exited(c)) => (1u32, c as u32 & 0xff), // CLD_EXITED
                        News::Ended(Ended::Killed(sig)) => (2u32, sig as u32),   // CLD_KILLED
                        News::Live(r) => r.siginfo(),
                    };
                    si[8..12].copy_from_slice(&code.to_le_bytes());
                    si[16..20].copy_from_slice(&id.to_le_bytes());
                    si[20..24].copy_from_slice(&s.proc_.uid.to_le_bytes());
                    si[24..28].copy_from_slice(&status.to_le_bytes());
                    env.write(a[2], &si)?;
                }
                if a[3] & WNOWAIT == 0 {
                    consume(s, id, news);
                }
                Ok(Some(0))
            }
            None if a[3] & WNOHANG != 0 => {
                if a[2] != 0 {
                    env.write(a[2], &[0u8; 128])?;
                }
                Ok(Some(0))
            }
            None => Ok(None),
        }
    })();
    blocked_on_child(s, r)
}

/// Most bytes of argv plus envp that execve takes (Linux: a quarter of the stack limit).
pub const EXEC_ARGS_MAX: usize = 128 * 1024;

fn read_strings<E: Platform>(env: &mut E, at: u64, total: &mut usize) -> SysResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if at == 0 {
        return Ok(out);
    }
    for i in 0..=(EXEC_ARGS_MAX as u64 / 8) {
        let p = env.read_u64(at.checked_add(i * 8).ok_or(EFAULT)?)?;
        if p == 0 {
            return Ok(out);
        }
        let s = env.read_cstr(p, EXEC_ARGS_MAX)?;
        *total += s.len() + 1 + 8;
        if *total > EXEC_ARGS_MAX {
            return Err(E2BIG);
        }
        out.push(s);
    }
    Err(E2BIG)
}

/// execve(path, argv, envp): checks the program (a static ELF, or a `#!` script whose
/// interpreter is one), then, past the point of no return, ends the process's other
/// threads, closes close-on-exec fds, resets caught signals and hands the runner the
/// image to load.
pub fn execve<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    match exec_prepare(s, env, a) {
        Ok(img) => {
            exec_commit(s, &img);
            Outcome::Action(Action::Exec(alloc::boxed::Box::new(img)))
        }
        Err(e) => Outcome::Ret(Err(e)),
    }
}

fn exec_prepare<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<ExecImage> {
    if !s.tasks.enabled {
        return Err(ENOSYS);
    }
    let execfn = super::fs::path_arg(env, a[0])?;
    let mut total = 0;
    let mut argv = read_strings(env, a[1], &mut total)?;
    let envp = read_strings(env, a[2], &mut total)?;
    let mut path = execfn.clone();
    // `#!` interpreters, up to 4 deep as Linux allows.
    for _ in 0..5 {
        let ino = exec_target(s, &path)?;
        let data = crate::fd::data_of(&s.vfs, ino).unwrap_or(&[]);
        if data.starts_with(b"\x7fELF") {
            crate::start::LoadPlan::parse(data).map_err(|e| {
                log::warn!("execve {}: {e}", alloc::string::String::from_utf8_lossy(&path));
                ENOEXEC
            })?;
            // The path as given, made absolute (the runner follows its symlinks again).
            let abs = if path.first() == Some(&b'/') {
                path.clone()
            } else {
                let mut a = s.vfs.path_of(s.cwd);
                if a.last() != Some(&b'/') {
                    a.push(b'/');
                }
                a.extend_from_slice(&path);
                a
            };
            return Ok(ExecImage { path: abs, execfn, argv, envp });
        }
        let Some(line) = data.strip_prefix(b"#!") else { return Err(ENOEXEC) };
        let line = &line[..line.iter().position(|&c| c == b'\n').unwrap_or(line.len()).min(255)];
        let line = trim(line);
        let split = line.iter().position(|c| *c == b' ' || *c == b'\t').unwrap_or(line.len());
        let (interp, arg) = (trim(&line[..split]), trim(&line[split..]));
        if interp.is_empty() {
            return Err(ENOEXEC);
        }
        let mut new = alloc::vec![interp.to_vec()];
        if !arg.is_empty() {
            new.push(arg.to_vec());
        }
        new.push(path.clone());
        new.extend(argv.into_iter().skip(1));
        argv = new;
        path = interp.to_vec();
    }
    Err(ELOOP)
}

fn trim(b: &[u8]) -> &[u8] {
    let st = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let en = b.iter().rposition(|c| !c.is_ascii_whitespace()).map(|i| i + 1).unwrap_or(st);
    &b[st..en.max(st)]
}

/// The regular file `path` names, executable by someone.
fn exec_target(s: &Shim<'_>, path: &[u8]) -> SysResult<crate::vfs::Ino> {
    use crate::vfs::{Found, Kind};
    let start = if path.first() == Some(&b'/') { crate::vfs::ROOT } else { s.cwd };
    match s.vfs.resolve(start, path, true)? {
        Found::Node(ino) => {
            let n = s.vfs.node(ino);
            match &n.kind {
                Kind::File(_) if n.mode() & 0o111 != 0 => Ok(ino),
                _ => Err(EACCES),
            }
        }
        _ => Err(EACCES),
    }
}

fn exec_commit(s: &mut Shim<'_>, img: &ExecImage) {
    let pid = s.proc_.pid;
    let cur = s.tasks.cur;
    let others: Vec<u32> = s.tasks.procs.get(&pid).map(|p| p.threads.iter().copied().filter(|&t| t != cur).collect()).unwrap_or_default();
    for t in others {
        remove_thread(s, t);
        s.tasks.events.push(Event::ThreadGone { tid: t });
    }
    let closing: Vec<usize> = s.fds.open_fds().filter(|&fd| s.fds.get(fd as i64).is_ok_and(|e| e.cloexec)).collect();
    for fd in closing {
        let _ = super::lock::close_fd(s, fd as i64);
    }
    for act in s.proc_.sigactions.iter_mut() {
        if act[0] > 1 {
            *act = [0; 4];
        }
    }
    s.proc_.altstack = [0, 2, 0];
    if let Some(t) = s.tasks.threads.get_mut(&cur) {
        t.clear_tid = 0;
    }
    let base = img.path.rsplit(|&c| c == b'/').next().unwrap_or(&img.path);
    s.proc_.name = [0; 16];
    let n = base.len().min(15);
    s.proc_.name[..n].copy_from_slice(&base[..n]);
    if let Some(t) = s.tasks.procs.get_mut(&pid).and_then(|p| p.vfork_parent.take()) {
        s.tasks.wake(t, Resume::Value(i64::from(pid)));
    }
}

/// setpgid(pid, pgid).
pub fn setpgid(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let me = s.proc_.pid;
    let pid = if a[0] == 0 { me } else { a[0] as u32 };
    let pgid = if a[1] == 0 { pid } else { a[1] as u32 };
    if (a[1] as i32) < 0 {
        return Err(EINVAL);
    }
    let p = s.tasks.procs.get(&pid).ok_or(ESRCH)?;
    if pid != me && p.parent != me {
        return Err(ESRCH);
    }
    if p.sid == pid {
        return Err(EPERM);
    }
    let sid = p.sid;
    if pgid != pid && !s.tasks.procs.values().any(|q| q.pgid == pgid && q.sid == sid && q.ended.is_none()) {
        return Err(EPERM);
    }
    s.tasks.procs.get_mut(&pid).unwrap().pgid = pgid;
    Ok(0)
}

/// getpgid(pid) (`sid`: getsid).
pub fn getpgid(s: &Shim<'_>, a: [u64; 6], sid: bool) -> SysResult<u64> {
    let pid = if a[0] == 0 { s.proc_.pid } else { a[0] as u32 };
    let p = s.tasks.procs.get(&pid).filter(|p| p.ended.is_none()).ok_or(ESRCH)?;
    Ok(u64::from(if sid { p.sid } else { p.pgid }))
}

pub fn setsid(s: &mut Shim<'_>) -> SysResult<u64> {
    let pid = s.proc_.pid;
    if s.tasks.procs.values().any(|p| p.pgid == pid) {
        return Err(EPERM);
    }
    let p = s.tasks.procs.get_mut(&pid).ok_or(ESRCH)?;
    p.sid = pid;
    p.pgid = pid;
    Ok(u64::from(pid))
}

/// setuid/setreuid/setresuid (or the gid ones, `group`): `ids` are (real, effective,
/// saved), -1 leaving one as it is. This personality keeps one id for all three, so root
/// may set it to anything (each given id must then agree), and anyone else only to itself.
pub fn set_id(s: &mut Shim<'_>, group: bool, ids: [u64; 3]) -> SysResult<u64> {
    let given: Vec<u32> = ids.iter().map(|&v| v as u32).filter(|&v| v != u32::MAX).collect();
    let Some(&new) = given.first() else { return Ok(0) };
    if given.iter().any(|&v| v != new) {
        return Err(EINVAL);
    }
    let cur = if group { s.proc_.gid } else { s.proc_.uid };
    if s.proc_.uid != 0 && new != cur {
        return Err(EPERM);
    }
    if group {
        s.proc_.gid = new;
    } else {
        s.proc_.uid = new;
    }
    Ok(0)
}

/// getresuid/getresgid: the one id, three times.
pub fn get_res_id<E: Platform>(env: &mut E, id: u32, a: [u64; 6]) -> SysResult<u64> {
    for at in &a[..3] {
        env.write_u32(*at, id)?;
    }
    Ok(0)
}

pub fn getgroups<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (size, list) = (a[0] as i32, a[1]);
    let n = s.proc_.groups.len();
    if size < 0 {
        return Err(EINVAL);
    }
    if size == 0 {
        return Ok(n as u64);
    }
    if (size as usize) < n {
        return Err(EINVAL);
    }
    for (i, g) in s.proc_.groups.iter().enumerate() {
        env.write_u32(list.wrapping_add(i as u64 * 4), *g)?;
    }
    Ok(n as u64)
}

/// setgroups(size, list): root only, at most 65536 (Linux's NGROUPS_MAX).
pub fn setgroups<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let size = a[0] as i32;
    if !(0..=65536).contains(&size) {
        return Err(EINVAL);
    }
    if s.proc_.uid != 0 {
        return Err(EPERM);
    }
    let mut groups = Vec::with_capacity(size as usize);
    for i in 0..size as u64 {
        groups.push(env.read_u32(a[1].wrapping_add(i * 4))?);
    }
    s.proc_.groups = groups;
    Ok(0)
}
