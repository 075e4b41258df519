//! /proc and /sys as a container sees them, with figures that are true for the app: its
//! one core, its memory budget (the heap limit), its processes and threads.
//!
//! The trees are nodes of the [`Vfs`]: directories and symlinks as usual, and files of
//! kind [`Kind::Gen`] whose bytes [`render`] makes when they are opened (a [`Snapshot`]),
//! as Linux makes them on read. `/proc/<pid>` exists for every process of the app, zombies
//! included; [`refresh`] brings those trees (with `task/<tid>`, `exe`, `cwd`) up to date
//! before a path is looked up, and does nothing when no process, thread, exec or working
//! directory changed since it last ran. `/proc/self` is a symlink whose target is the
//! current process. `/proc/<pid>/fd` and `fdinfo` list that process's fds (a link to the
//! open file; its offset, flags, mount and inode, [`fdinfo`]).

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::platform::{ClockId, Platform};
use crate::stat::Stat;
use crate::vfs::{Fs, Ino, Kind, Node, Ts, Vfs, ROOT};
use crate::Shim;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

/// What a generated file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Cpuinfo,
    Meminfo,
    Stat,
    Uptime,
    Loadavg,
    Version,
    Filesystems,
    Ostype,
    Osrelease,
    PidMax,
    PipeMaxSize,
    Hostname,
    Overcommit,
    /// /sys/devices/system/cpu/{online,possible,present}.
    CpuList,
    CgroupControllers,
    MemoryMax,
    MemoryCurrent,
    CpuMax,
    PidsMax,
    PidsCurrent,
    CgroupProcs,
    // Per process (or thread, under task/<tid>).
    PidStat,
    PidStatus,
    PidStatm,
    Cmdline,
    Environ,
    Comm,
    Maps,
    Limits,
    Mounts,
}

/// A generated file: what, and for which process and thread (0: not per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gen {
    pub what: What,
    pub pid: u32,
    pub tid: u32,
}

/// The kernel release uname and /proc report.
pub const OSRELEASE: &str = "6.1.0-selkie";
/// Largest pid (Linux's 64-bit default).
const PID_MAX: u32 = 4_194_304;
/// Cores the app runs on (sched_getaffinity says one).
const CORES: u32 = 1;

fn gen(what: What) -> Kind<'static> {
    Kind::Gen(Gen { what, pid: 0, tid: 0 })
}

fn node<'a>(kind: Kind<'a>, perm: u32, fs: Fs) -> Node<'a> {
    Node { kind, perm, uid: 0, gid: 0, atime: Ts::ZERO, mtime: Ts::ZERO, ctime: Ts::ZERO, nlink: 0, fs }
}

/// Lays out the parts of /proc and /sys that do not depend on processes.
pub(crate) fn add_static(vfs: &mut Vfs<'_>) {
    // Mounted over what the image has there, which is hidden.
    let proc_ = vfs.ensure_dir(ROOT, b"proc", Fs::Proc);
    vfs.empty_dir(proc_);
    vfs.node_mut(proc_).perm = 0o555;
    vfs.replace(proc_, b"self", Kind::SelfLink, 0o777, Fs::Proc);
    vfs.replace(proc_, b"mounts", Kind::Symlink(b"self/mounts".to_vec()), 0o777, Fs::Proc);
    for (name, what) in [
        (&b"cpuinfo"[..], What::Cpuinfo),
        (b"meminfo", What::Meminfo),
        (b"stat", What::Stat),
        (b"uptime", What::Uptime),
        (b"loadavg", What::Loadavg),
        (b"version", What::Version),
        (b"filesystems", What::Filesystems),
    ] {
        vfs.replace(proc_, name, gen(what), 0o444, Fs::Proc);
    }
    let sys = vfs.ensure_dir(proc_, b"sys", Fs::Proc);
    let kernel = vfs.ensure_dir(sys, b"kernel", Fs::Proc);
    for (name, what) in [(&b"ostype"[..], What::Ostype), (b"osrelease", What::Osrelease), (b"pid_max", What::PidMax), (b"hostname", What::Hostname)] {
        vfs.replace(kernel, name, gen(what), 0o444, Fs::Proc);
    }
    let vm = vfs.ensure_dir(sys, b"vm", Fs::Proc);
    vfs.replace(vm, b"overcommit_memory", gen(What::Overcommit), 0o444, Fs::Proc);
    let fs = vfs.ensure_dir(sys, b"fs", Fs::Proc);
    vfs.replace(fs, b"pipe-max-size", gen(What::PipeMaxSize), 0o444, Fs::Proc);

    let sysfs = vfs.ensure_dir(ROOT, b"sys", Fs::Sys);
    vfs.empty_dir(sysfs);
    vfs.node_mut(sysfs).perm = 0o555;
    let mut dir = sysfs;
    for name in [&b"devices"[..], b"system", b"cpu"] {
        dir = vfs.ensure_dir(dir, name, Fs::Sys);
    }
    for name in [&b"online"[..], b"possible", b"present"] {
        vfs.replace(dir, name, gen(What::CpuList), 0o444, Fs::Sys);
    }
    for n in 0..CORES {
        vfs.ensure_dir(dir, format!("cpu{n}").as_bytes(), Fs::Sys);
    }
    let fs = vfs.ensure_dir(sysfs, b"fs", Fs::Sys);
    let cg = vfs.ensure_dir(fs, b"cgroup", Fs::Sys);
    for (name, what) in [
        (&b"cgroup.controllers"[..], What::CgroupControllers),
        (b"cgroup.procs", What::CgroupProcs),
        (b"memory.max", What::MemoryMax),
        (b"memory.current", What::MemoryCurrent),
        (b"cpu.max", What::CpuMax),
        (b"pids.max", What::PidsMax),
        (b"pids.current", What::PidsCurrent),
    ] {
        vfs.replace(cg, name, gen(what), 0o444, Fs::Sys);
    }
}

/// What [`refresh`] last saw: (next task id, processes, threads, current pid, its cwd,
/// execs so far).
pub type Seen = (u32, usize, usize, u32, Ino, u64);

/// Brings /proc/<pid> up to date with the app's processes, threads, programs and working
/// directories; cheap when nothing changed.
pub fn refresh(s: &mut Shim<'_>) {
    let seen: Seen = (s.tasks.next_id(), s.tasks.procs.len(), s.tasks.threads.len(), s.proc_.pid, s.cwd, s.execs);
    if s.proc_seen == Some(seen) {
        return;
    }
    s.proc_seen = Some(seen);
    s.vfs.self_pid = s.proc_.pid;
    let Ok(crate::vfs::Found::Node(proc_)) = s.vfs.resolve(ROOT, b"/proc", true) else { return };
    let have: Vec<(Vec<u8>, u32)> = s
        .vfs
        .dir_entries(proc_)
        .map(|m| m.keys().filter_map(|k| Some((k.clone(), parse_u32(k)?))).collect())
        .unwrap_or_default();
    for (name, pid) in &have {
        if !s.tasks.procs.contains_key(pid) {
            s.vfs.remove_tree(proc_, name);
        }
    }
    let pids: Vec<u32> = s.tasks.procs.keys().copied().collect();
    for pid in pids {
        let name = format!("{pid}");
        let dir = match s.vfs.dir_entries(proc_).and_then(|m| m.get(name.as_bytes())).copied() {
            Some(d) => d,
            None => {
                let d = s.vfs.add(proc_, name.as_bytes(), node(Kind::Dir { entries: BTreeMap::new(), parent: proc_ }, 0o555, Fs::Proc));
                add_files(&mut s.vfs, d, pid, pid, true);
                d
            }
        };
        // exe and cwd follow the process; a zombie has neither.
        let (exe, cwd) = match view(s, pid) {
            Some(v) => (v.proc_.exe.clone(), s.vfs.path_of(v.cwd)),
            None => (Vec::new(), Vec::new()),
        };
        s.vfs.replace(dir, b"exe", Kind::Symlink(exe), 0o777, Fs::Proc);
        s.vfs.replace(dir, b"cwd", Kind::Symlink(cwd), 0o777, Fs::Proc);
        // task/<tid>, one per thread.
        let Some(task) = s.vfs.dir_entries(dir).and_then(|m| m.get(&b"task"[..])).copied() else { continue };
        let threads: Vec<u32> = s.tasks.procs.get(&pid).map(|p| p.threads.clone()).unwrap_or_default();
        let old: Vec<(Vec<u8>, u32)> =
            s.vfs.dir_entries(task).map(|m| m.keys().filter_map(|k| Some((k.clone(), parse_u32(k)?))).collect()).unwrap_or_default();
        for (n, tid) in &old {
            if !threads.contains(tid) {
                s.vfs.remove_tree(task, n);
            }
        }
        for tid in threads {
            let n = format!("{tid}");
            if s.vfs.dir_entries(task).is_some_and(|m| !m.contains_key(n.as_bytes())) {
                let d = s.vfs.add(task, n.as_bytes(), node(Kind::Dir { entries: BTreeMap::new(), parent: task }, 0o555, Fs::Proc));
                add_files(&mut s.vfs, d, pid, tid, false);
            }
        }
    }
}

/// The files of /proc/<pid> (`whole`) or of /proc/<pid>/task/<tid>.
fn add_files(vfs: &mut Vfs<'_>, dir: Ino, pid: u32, tid: u32, whole: bool) {
    let g = |what| Kind::Gen(Gen { what, pid, tid });
    for (name, what, perm) in [
        (&b"stat"[..], What::PidStat, 0o444),
        (b"status", What::PidStatus, 0o444),
        (b"statm", What::PidStatm, 0o444),
        (b"cmdline", What::Cmdline, 0o444),
        (b"environ", What::Environ, 0o400),
        (b"comm", What::Comm, 0o644),
        (b"maps", What::Maps, 0o444),
        (b"limits", What::Limits, 0o444),
        (b"mounts", What::Mounts, 0o444),
    ] {
        vfs.add(dir, name, node(g(what), perm, Fs::Proc));
    }
    vfs.add(dir, b"fd", node(Kind::FdDir { pid, info: false }, 0o500, Fs::Proc));
    vfs.add(dir, b"fdinfo", node(Kind::FdDir { pid, info: true }, 0o555, Fs::Proc));
    if whole {
        vfs.add(dir, b"task", node(Kind::Dir { entries: BTreeMap::new(), parent: dir }, 0o555, Fs::Proc));
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || s[0] == b'0' {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

/// A process's state, wherever it is kept.
struct View<'v> {
    proc_: &'v crate::Process,
    mm: &'v crate::mm::MemoryMap,
    cwd: Ino,
    fds: usize,
}

fn view<'v>(s: &'v Shim<'_>, pid: u32) -> Option<View<'v>> {
    if pid == s.proc_.pid {
        return Some(View { proc_: &s.proc_, mm: &s.mm, cwd: s.cwd, fds: s.fds.open_fds().count() });
    }
    let p = s.tasks.parked.get(&pid)?;
    Some(View { proc_: &p.proc_, mm: &p.mm, cwd: p.cwd, fds: p.fds.open_fds().count() })
}

/// An open generated file: its bytes as they were when it was opened.
pub struct Snapshot {
    data: Vec<u8>,
    pos: u64,
    ino: Ino,
    /// What stat gives when it is not node `ino`'s (a file with no node of its own).
    own: Option<Stat>,
}

impl Snapshot {
    pub fn open<E: Platform>(s: &Shim<'_>, env: &mut E, g: Gen, ino: Ino) -> Snapshot {
        Snapshot { data: render(s, env, g), pos: 0, ino, own: None }
    }
    /// A file of these bytes with no node of its own: stat gives `st`, and `ino` is the
    /// directory it is in.
    pub fn of_bytes(data: Vec<u8>, ino: Ino, st: Stat) -> Snapshot {
        Snapshot { data, pos: 0, ino, own: Some(st) }
    }
}

/// aarch64's O_LARGEFILE, which every open(2) of a 64-bit process carries.
const O_LARGEFILE: u32 = 0o400000;

/// The text of /proc/<pid>/fdinfo/N: the offset, the status flags in octal (with
/// O_CLOEXEC for a close-on-exec fd, and O_LARGEFILE for a file opened by path), the id
/// of its mount (`fs`; anonymous files such as pipes are on none of the tree's) and the
/// inode number.
pub fn fdinfo(pos: u64, flags: u32, cloexec: bool, fs: Option<Fs>, ino: u64) -> Vec<u8> {
    let mut f = flags;
    if cloexec {
        f |= crate::fd::O_CLOEXEC;
    }
    if fs.is_some() && f & crate::fd::O_PATH == 0 {
        f |= O_LARGEFILE;
    }
    // Mount ids as a container's: its root first, then the mounts on it.
    let mnt_id = fs.map_or(15, |fs| 30 + fs as u32);
    format!("pos:\t{pos}\nflags:\t0{f:o}\nmnt_id:\t{mnt_id}\nino:\t{ino}\n").into_bytes()
}

impl<'a> FileObject<'a> for Snapshot {
    fn read(&mut self, cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let n = self.pread(cx, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn pread(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8], off: u64) -> SysResult<usize> {
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
    fn lseek(&mut self, _cx: &mut Cx<'_, 'a>, off: i64, whence: u32) -> SysResult<u64> {
        let base = match whence {
            0 => 0,
            1 => self.pos,
            2 => self.data.len() as u64,
            _ => return Err(EINVAL),
        };
        let new = i128::from(base) + i128::from(off);
        if new < 0 {
            return Err(EINVAL);
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(self.own.unwrap_or_else(|| Stat::of_node(cx.vfs, self.ino)))
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
}

/// The stat of /proc/<pid>/fdinfo/N.
pub fn fdinfo_stat(fd: i32) -> Stat {
    Stat::synthetic(crate::vfs::S_IFREG | 0o444, fd as u64 + 1, crate::stat::ROOTFS_DEV + Fs::Proc as u64)
}

/// The bytes of a generated file now.
pub fn render<E: Platform>(s: &Shim<'_>, env: &mut E, g: Gen) -> Vec<u8> {
    let mut o = String::new();
    let up = env.now(ClockId::Monotonic);
    let up_ns = up.as_nanos();
    let limit = s.mm.layout.heap_limit;
    let used = s.mm.heap_used();
    let threads = s.tasks.threads.len();
    match g.what {
        What::Cpuinfo => {
            for n in 0..CORES {
                let _ = write!(
                    o,
                    "processor\t: {n}\nBogoMIPS\t: 125.00\nFeatures\t: {}\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 0\n\n",
                    features(crate::start::HWCAP_A57)
                );
            }
        }
        What::Meminfo => {
            let kb = |b: u64| b / 1024;
            let free = limit.saturating_sub(used);
            for (k, v) in [
                ("MemTotal", kb(limit)),
                ("MemFree", kb(free)),
                ("MemAvailable", kb(free)),
                ("Buffers", 0),
                ("Cached", 0),
                ("SwapCached", 0),
                ("SwapTotal", 0),
                ("SwapFree", 0),
                ("Shmem", 0),
                ("CommitLimit", kb(limit)),
                ("Committed_AS", kb(used)),
            ] {
                let _ = writeln!(o, "{:<16}{:>8} kB", format!("{k}:"), v);
            }
            o.push_str("HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n");
        }
        What::Stat => {
            let idle = up_ns / 10_000_000;
            let _ = writeln!(o, "cpu  0 0 0 {idle} 0 0 0 0 0 0");
            for n in 0..CORES {
                let _ = writeln!(o, "cpu{n} 0 0 0 {idle} 0 0 0 0 0 0");
            }
            let boot = env.now(ClockId::Realtime).sec.saturating_sub(up.sec);
            let running = s.tasks.threads.values().filter(|t| t.wait.is_none()).count();
            let _ = write!(
                o,
                "intr 0\nctxt 0\nbtime {boot}\nprocesses {}\nprocs_running {running}\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n",
                s.tasks.next_id().saturating_sub(1)
            );
        }
        What::Uptime => {
            let cs = up_ns / 10_000_000;
            let _ = writeln!(o, "{}.{:02} 0.00", cs / 100, cs % 100);
        }
        What::Loadavg => {
            let running = s.tasks.threads.values().filter(|t| t.wait.is_none()).count();
            let _ = writeln!(o, "0.00 0.00 0.00 {running}/{threads} {}", s.tasks.next_id().saturating_sub(1));
        }
        What::Version => {
            let _ = writeln!(o, "Linux version {OSRELEASE} (selkie) (musl-shim on seL4) #1 SMP selkie");
        }
        What::Filesystems => o.push_str("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tcgroup2\nnodev\toverlay\n"),
        What::Ostype => o.push_str("Linux\n"),
        What::Osrelease => {
            let _ = writeln!(o, "{OSRELEASE}");
        }
        What::PidMax => {
            let _ = writeln!(o, "{PID_MAX}");
        }
        What::Hostname => {
            let _ = writeln!(o, "{}", s.proc_.hostname);
        }
        What::Overcommit => o.push_str("0\n"),
        What::PipeMaxSize => {
            let _ = writeln!(o, "{}", crate::pipe::PIPE_MAX_SIZE);
        }
        What::CpuList => {
            let _ = if CORES == 1 { writeln!(o, "0") } else { writeln!(o, "0-{}", CORES - 1) };
        }
        What::CgroupControllers => o.push_str("cpu memory pids\n"),
        What::CgroupProcs => {
            for pid in s.tasks.procs.iter().filter(|(_, p)| p.ended.is_none()).map(|(p, _)| p) {
                let _ = writeln!(o, "{pid}");
            }
        }
        What::MemoryMax => {
            let _ = writeln!(o, "{limit}");
        }
        What::MemoryCurrent => {
            let _ = writeln!(o, "{used}");
        }
        What::CpuMax => o.push_str("max 100000\n"),
        What::PidsMax => {
            let _ = writeln!(o, "{}", s.tasks.max_threads);
        }
        What::PidsCurrent => {
            let _ = writeln!(o, "{threads}");
        }
        What::Mounts => o.push_str(MOUNTS),
        What::PidStat | What::PidStatus | What::PidStatm | What::Cmdline | What::Environ | What::Comm | What::Maps | What::Limits => {
            return render_process(s, g);
        }
    }
    o.into_bytes()
}

/// What /proc/mounts says: the filesystems of [`Fs`], mounted as docker mounts them.
const MOUNTS: &str = "overlay / overlay rw,relatime 0 0\n\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
tmpfs /dev tmpfs rw,nosuid,size=65536k,mode=755 0 0\n\
devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=666 0 0\n\
sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n\
cgroup /sys/fs/cgroup cgroup2 ro,nosuid,nodev,noexec,relatime 0 0\n\
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0\n";

/// The features /proc/cpuinfo lists for the HWCAP bits the auxv gives.
fn features(hwcap: u64) -> String {
    const NAMES: [&str; 12] = ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid"];
    let v: Vec<&str> = NAMES.iter().enumerate().filter(|(i, _)| hwcap & (1 << i) != 0).map(|(_, n)| *n).collect();
    v.join(" ")
}

/// The per-process files; empty for a process that has no state left (a zombie), as
/// Linux gives for most of them.
fn render_process(s: &Shim<'_>, g: Gen) -> Vec<u8> {
    let info = s.tasks.procs.get(&g.pid);
    let Some(v) = view(s, g.pid) else {
        return match (g.what, info) {
            (What::PidStat, Some(i)) => {
                format!("{} (zombie) Z {} {} {} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", g.pid, i.parent, i.pgid, i.sid).into_bytes()
            }
            _ => Vec::new(),
        };
    };
    let p = v.proc_;
    let comm = {
        let end = p.name.iter().position(|&c| c == 0).unwrap_or(p.name.len());
        String::from_utf8_lossy(&p.name[..end]).into_owned()
    };
    let (ppid, pgid, sid, nthreads) = info.map(|i| (i.parent, i.pgid, i.sid, i.threads.len())).unwrap_or((0, g.pid, g.pid, 1));
    let running = s.tasks.threads.get(&g.tid).is_some_and(|t| t.wait.is_none());
    let state = match () {
        _ if info.is_some_and(|i| i.stopped) => ('T', "T (stopped)"),
        _ if running => ('R', "R (running)"),
        _ => ('S', "S (sleeping)"),
    };
    let mut vsize = 0;
    let mut rss = 0;
    let (mut stack, mut data, mut exe_bytes) = (0, 0, 0);
    for r in v.mm.regions() {
        let len = r.end - r.start;
        vsize += len;
        if r.prot != crate::platform::Prot::NONE {
            rss += len;
        }
        match r.kind {
            crate::mm::RegionKind::Stack => stack += len,
            crate::mm::RegionKind::Image if r.prot.x() => exe_bytes += len,
            crate::mm::RegionKind::Brk | crate::mm::RegionKind::Anon => data += len,
            _ => {}
        }
    }
    let mut o = String::new();
    match g.what {
        What::PidStat => {
            let _ = writeln!(
                o,
                "{} ({comm}) {} {ppid} {pgid} {sid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 {nthreads} 0 0 {vsize} {} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
                g.tid, state.0, rss / 4096
            );
        }
        What::PidStatm => {
            let _ = writeln!(o, "{} {} 0 {} 0 {} 0", vsize / 4096, rss / 4096, exe_bytes / 4096, (data + stack) / 4096);
        }
        What::PidStatus => {
            let mask = |f: &dyn Fn(u64) -> bool| (0..64).filter(|&i| f(p.sigactions[i][0])).fold(0u64, |m, i| m | 1 << i);
            let ign = mask(&|h| h == 1);
            let cgt = mask(&|h| h > 1);
            let groups: Vec<String> = p.groups.iter().map(|g| format!("{g}")).collect();
            let caps = if p.uid == 0 { "000001ffffffffff" } else { "0000000000000000" };
            let kb = |b: u64| b / 1024;
            let _ = write!(
                o,
                "Name:\t{comm}\nUmask:\t{:04o}\nState:\t{}\nTgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{ppid}\nTracerPid:\t0\n\
                 Uid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{gi}\t{gi}\t{gi}\t{gi}\nFDSize:\t{}\nGroups:\t{}\n\
                 NStgid:\t{}\nNSpid:\t{}\nNSpgid:\t{pgid}\nNSsid:\t{sid}\n\
                 VmPeak:\t{:8} kB\nVmSize:\t{:8} kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\nVmHWM:\t{:8} kB\nVmRSS:\t{:8} kB\n\
                 VmData:\t{:8} kB\nVmStk:\t{:8} kB\nVmExe:\t{:8} kB\nVmLib:\t       0 kB\nVmPTE:\t       0 kB\nVmSwap:\t       0 kB\n\
                 Threads:\t{nthreads}\nSigQ:\t0/{}\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n\
                 CapInh:\t0000000000000000\nCapPrm:\t{caps}\nCapEff:\t{caps}\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n\
                 NoNewPrivs:\t0\nSeccomp:\t0\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nvoluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n",
                p.umask,
                state.1,
                g.pid,
                g.tid,
                v.fds.next_power_of_two().max(64),
                groups.join(" "),
                g.pid,
                g.tid,
                kb(vsize),
                kb(vsize),
                kb(rss),
                kb(rss),
                kb(data),
                kb(stack),
                kb(exe_bytes),
                u16::MAX,
                s.tasks.threads.get(&g.tid).map(|t| t.pending).unwrap_or(0),
                p.pending,
                p.sigmask,
                u = p.uid,
                gi = p.gid,
            );
        }
        What::Cmdline => return p.cmdline.clone(),
        What::Environ => return p.environ.clone(),
        What::Comm => {
            let _ = writeln!(o, "{comm}");
        }
        What::Maps => {
            for r in v.mm.regions() {
                let name = match r.kind {
                    crate::mm::RegionKind::Stack => String::from("[stack]"),
                    crate::mm::RegionKind::Brk => String::from("[heap]"),
                    crate::mm::RegionKind::Image => String::from_utf8_lossy(&p.exe).into_owned(),
                    _ => String::new(),
                };
                let flag = |b: bool, c: char| if b { c } else { '-' };
                let _ = writeln!(
                    o,
                    "{:08x}-{:08x} {}{}{}p 00000000 00:00 0{}{}",
                    r.start,
                    r.end,
                    flag(r.prot.r(), 'r'),
                    flag(r.prot.w(), 'w'),
                    flag(r.prot.x(), 'x'),
                    if name.is_empty() { "" } else { "                          " },
                    name
                );
            }
        }
        What::Limits => {
            let lim = |v: u64| if v == u64::MAX { String::from("unlimited") } else { format!("{v}") };
            let _ = writeln!(o, "{:<26}{:<21}{:<21}{:<10}", "Limit", "Soft Limit", "Hard Limit", "Units");
            let heap = v.mm.layout.heap_limit;
            let nofile = crate::fd::MAX_FDS as u64;
            for (name, soft, hard, unit) in [
                ("Max cpu time", u64::MAX, u64::MAX, "seconds"),
                ("Max file size", u64::MAX, u64::MAX, "bytes"),
                ("Max data size", heap, heap, "bytes"),
                ("Max stack size", p.stack_size, p.stack_size, "bytes"),
                ("Max core file size", 0, u64::MAX, "bytes"),
                ("Max resident set", u64::MAX, u64::MAX, "bytes"),
                ("Max processes", u64::from(s.tasks.max_threads), u64::from(s.tasks.max_threads), "processes"),
                ("Max open files", nofile, nofile, "files"),
                ("Max locked memory", u64::MAX, u64::MAX, "bytes"),
                ("Max address space", heap, heap, "bytes"),
                ("Max file locks", u64::MAX, u64::MAX, "locks"),
                ("Max pending signals", u64::MAX, u64::MAX, "signals"),
                ("Max msgqueue size", u64::MAX, u64::MAX, "bytes"),
                ("Max nice priority", 0, 0, ""),
                ("Max realtime priority", 0, 0, ""),
                ("Max realtime timeout", u64::MAX, u64::MAX, "us"),
            ] {
                let _ = writeln!(o, "{:<26}{:<21}{:<21}{:<10}", name, lim(soft), lim(hard), unit);
            }
        }
        _ => {}
    }
    o.into_bytes()
}
