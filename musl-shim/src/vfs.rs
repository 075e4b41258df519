//! The file tree an app sees, as a container runtime lays it out: the image's cpio rootfs
//! under a copy-on-write layer (overlayfs's upper dir), a tmpfs at /tmp, a docker-like
//! minimal /dev (plus /proc/self/fd for the /dev/fd links), whether or not the image has
//! them; /proc and /sys are [`crate::procfs`]'s.
//!
//! Nodes live in an arena indexed by [`Ino`], one arena per app, so the app's changes are
//! its own: file data from the image is borrowed from the cpio archive until the first
//! write copies it ([`Data::Owned`]), and removing an image file only drops its entry from
//! the app's tree (the whiteout), never touching the archive. The bytes written to each
//! filesystem are counted against its limit ([`Vfs::set_rootfs_limit`],
//! [`Vfs::set_write_limit`]); past it, `ENOSPC`. newc hardlinks (entries sharing an inode
//! number, where only one carries the data) become one node with several names.

use crate::errno::*;
use crate::inotify::{IN_ATTRIB, IN_CREATE, IN_DELETE, IN_ISDIR, IN_MODIFY, IN_MOVED_FROM, IN_MOVED_TO};
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;

/// Index of a node in the arena; `st_ino` is this plus one.
pub type Ino = usize;
/// The root directory.
pub const ROOT: Ino = 0;
/// Most symlinks followed while resolving one path (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;
/// Longest path accepted.
pub const PATH_MAX: usize = 4096;
/// Most bytes all tmpfs files together may hold.
pub const TMPFS_MAX_BYTES: usize = 64 << 20;
/// Most bytes the rootfs's copy-on-write layer holds unless set otherwise
/// (`org.selkie.app.rootfs_write_bytes`; `manifest::defaults::ROOTFS_WRITE_BYTES`).
pub const ROOTFS_WRITE_BYTES: usize = 64 << 20;

/// A timestamp: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ts {
    pub sec: u64,
    pub nsec: u32,
}

impl Ts {
    pub const ZERO: Ts = Ts { sec: 0, nsec: 0 };
    pub fn secs(sec: u64) -> Ts {
        Ts { sec, nsec: 0 }
    }
}

/// The filesystem a node is on: what statfs reports, whose limit its bytes count
/// against, and where rename and link stop (`EXDEV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// The image under its copy-on-write layer (docker's overlay root).
    Rootfs,
    /// /tmp.
    Tmpfs,
    /// /dev (a tmpfs in a container).
    Dev,
    /// /proc: read-only here.
    Proc,
    /// /sys: read-only.
    Sys,
    /// /dev/pts: its nodes are the ptys' ([`crate::pty`]).
    Devpts,
}

impl Fs {
    /// May be created in, written, removed from.
    pub fn writable(self) -> bool {
        !matches!(self, Fs::Proc | Fs::Sys | Fs::Devpts)
    }
    /// Which byte counter its data is charged to: 0 the rootfs layer, 1 the tmpfses.
    fn pool(self) -> usize {
        match self {
            Fs::Rootfs => 0,
            _ => 1,
        }
    }
    /// statfs's f_type (overlayfs, tmpfs, proc) and f_flags (ST_NOSUID, ST_NODEV,
    /// ST_NOEXEC, ST_RELATIME as docker mounts them).
    pub fn statfs_type_flags(self) -> (u64, u64) {
        match self {
            Fs::Rootfs => (0x794c_7630, 1024),
            Fs::Tmpfs => (0x0102_1994, 2 | 4 | 1024),
            Fs::Dev => (0x0102_1994, 2 | 1024),
            Fs::Proc => (0x9fa0, 2 | 4 | 8 | 1024),
            Fs::Sys => (0x6265_6572, 1 | 2 | 4 | 8 | 1024),
            Fs::Devpts => (0x1cd1, 2 | 8 | 1024),
        }
    }
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFSOCK: u32 = 0o140000;

/// A file's bytes: borrowed from the image, or owned by tmpfs.
#[derive(Debug, Clone)]
pub enum Data<'a> {
    Image(&'a [u8]),
    Owned(Vec<u8>),
}

impl Data<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Data::Image(b) => b,
            Data::Owned(v) => v,
        }
    }
}

/// The character devices of /dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dev {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
    Tty,
    Console,
    /// /dev/selkie/channels/NAME: channel N of the image's bus (crate::channel).
    Channel(u16),
    /// /dev/pts/ptmx: opening it makes a pty ([`crate::pty`]).
    Ptmx,
    /// /dev/pts/N: pty N's slave.
    Pts(u32),
}

impl Dev {
    /// (major, minor) as on Linux.
    pub fn rdev(self) -> (u32, u32) {
        match self {
            Dev::Null => (1, 3),
            Dev::Zero => (1, 5),
            Dev::Full => (1, 7),
            Dev::Random => (1, 8),
            Dev::Urandom => (1, 9),
            Dev::Tty => (5, 0),
            Dev::Console => (5, 1),
            Dev::Channel(n) => (crate::channel::CHANNEL_MAJOR, u32::from(n)),
            Dev::Ptmx => (5, 2),
            Dev::Pts(n) => (crate::pty::PTS_MAJOR + n / 256, n % 256),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind<'a> {
    Dir { entries: BTreeMap<Vec<u8>, Ino>, parent: Ino },
    File(Data<'a>),
    Symlink(Vec<u8>),
    Dev(Dev),
    /// /proc/<pid>/fd (symlinks to what process `pid`'s fds are open on) or, with `info`,
    /// /proc/<pid>/fdinfo (a file per fd: its offset, flags and mount).
    FdDir { pid: u32, info: bool },
    /// A /proc or /sys file whose bytes are made when it is opened ([`crate::procfs`]).
    Gen(crate::procfs::Gen),
    /// /proc/self: a symlink to the current process's /proc/<pid>.
    SelfLink,
    /// Anything else the image holds (fifos, sockets, block devices): visible, not openable.
    Other(u32),
}

#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub kind: Kind<'a>,
    /// Permission bits (07777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Access, modification and status-change times.
    pub atime: Ts,
    pub mtime: Ts,
    pub ctime: Ts,
    pub nlink: u32,
    pub fs: Fs,
}

impl Node<'_> {
    /// The S_IFMT bits.
    pub fn ftype(&self) -> u32 {
        match &self.kind {
            Kind::Dir { .. } | Kind::FdDir { .. } => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) | Kind::SelfLink => S_IFLNK,
            Kind::Gen(_) => S_IFREG,
            Kind::Dev(_) => S_IFCHR,
            Kind::Other(t) => *t,
        }
    }
    pub fn mode(&self) -> u32 {
        self.ftype() | (self.perm & 0o7777)
    }
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(d) => d.bytes().len() as u64,
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir { .. } | Kind::FdDir { .. } => 4096,
            _ => 0,
        }
    }
    pub fn is_dir(&self) -> bool {
        self.ftype() == S_IFDIR
    }
    /// On a filesystem that may be written.
    pub fn writable(&self) -> bool {
        self.fs.writable()
    }
    fn set_times(&mut self, t: Ts) {
        (self.atime, self.mtime, self.ctime) = (t, t, t);
    }
}

/// What a path names: a node, or an open fd (through /proc/self/fd/N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Node(Ino),
    Fd(i32),
    /// /proc/<pid>/fd/N of another process, or (`info`) /proc/<pid>/fdinfo/N of any: the
    /// fd may not be open.
    ProcFd { pid: u32, fd: i32, info: bool },
}

/// The whole tree.
#[derive(Debug, Clone)]
pub struct Vfs<'a> {
    nodes: Vec<Node<'a>>,
    /// One per node that open files or shared mappings use, cloned into each of them: a
    /// file no name links keeps its bytes while a clone is out (see [`Vfs::reclaim`]).
    holds: BTreeMap<Ino, Rc<()>>,
    /// Files whose last link went, waiting for their last holder to go.
    orphans: Vec<Ino>,
    /// Slots of removed /proc/<pid> trees, taken again first.
    free: Vec<Ino>,
    /// The current process (what /proc/self names).
    pub self_pid: u32,
    /// The realtime clock at the syscall being serviced: what changes stamp.
    pub now: Ts,
    /// Per file, bumped by every change of its bytes except the stores of mappings whose
    /// frames are shared between processes ([`crate::filemap`]).
    gens: BTreeMap<Ino, u64>,
    /// inotify's watches, told of every change.
    pub watches: crate::inotify::Watches,
    /// Bytes written (owned file data) on the rootfs layer and on the tmpfses.
    used: [usize; 2],
    /// Most bytes each may hold: [`ROOTFS_WRITE_BYTES`] and [`TMPFS_MAX_BYTES`] unless set.
    limits: [usize; 2],
    /// Most bytes both together may hold (the root server's share of its heap).
    total_limit: usize,
    /// The image's own bytes: the rootfs holds them besides what the app may write.
    image_bytes: usize,
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty() && *c != b".")
}

impl<'a> Vfs<'a> {
    /// Builds the tree from a cpio archive (any format `cpio_reader` reads; newc from
    /// `selkie pack`). Entries that cannot be placed (a parent that is not a directory)
    /// are skipped; missing parent directories are created.
    pub fn from_cpio(cpio: &'a [u8]) -> Self {
        let mut vfs = Vfs { gens: BTreeMap::new(), nodes: Vec::new(), holds: BTreeMap::new(), orphans: Vec::new(), free: Vec::new(), self_pid: 1, now: Ts::ZERO, watches: Default::default(), used: [0; 2], limits: [ROOTFS_WRITE_BYTES, TMPFS_MAX_BYTES], total_limit: usize::MAX, image_bytes: cpio.len() };
        vfs.nodes.push(Node {
            kind: Kind::Dir { entries: BTreeMap::new(), parent: ROOT },
            perm: 0o755,
            uid: 0,
            gid: 0,
            atime: Ts::ZERO,
            mtime: Ts::ZERO,
            ctime: Ts::ZERO,
            nlink: 2,
            fs: Fs::Rootfs,
        });
        // (devmajor, devminor, ino) -> node, for hardlinked regular files.
        let mut links: BTreeMap<(u32, u32, u32), Ino> = BTreeMap::new();
        for e in cpio_reader::iter_files(cpio) {
            let name = e.name().as_bytes();
            let Some(last) = components(name).next_back() else {
                // "." or "/": the root itself.
                vfs.nodes[ROOT].perm = e.mode().bits() & 0o7777;
                vfs.nodes[ROOT].set_times(Ts::secs(e.mtime()));
                continue;
            };
            if last == b".." || components(name).any(|c| c == b"..") {
                continue;
            }
            let Some(parent) = vfs.mkdirs_for(name) else { continue };
            let mode = e.mode().bits();
            let kind = match mode & S_IFMT {
                S_IFDIR => {
                    // A directory may already exist (created as a parent): update it.
                    if let Some(&ino) = vfs.dir_entries(parent).and_then(|m| m.get(last)) {
                        if vfs.nodes[ino].is_dir() {
                            let n = &mut vfs.nodes[ino];
                            n.perm = mode & 0o7777;
                            n.uid = e.uid();
                            n.gid = e.gid();
                            n.set_times(Ts::secs(e.mtime()));
                            continue;
                        }
                    }
                    Kind::Dir { entries: BTreeMap::new(), parent }
                }
                S_IFREG => {
                    if e.nlink() > 1 {
                        let key = (e.devmajor().unwrap_or(0), e.devminor().unwrap_or(0), e.ino());
                        if let Some(&ino) = links.get(&key) {
                            if let Kind::File(Data::Image(d)) = &mut vfs.nodes[ino].kind {
                                if d.is_empty() {
                                    *d = e.file();
                                }
                            }
                            vfs.link_node(parent, last, ino);
                            continue;
                        }
                        let ino = vfs.nodes.len();
                        links.insert(key, ino);
                    }
                    Kind::File(Data::Image(e.file()))
                }
                S_IFLNK => Kind::Symlink(e.file().to_vec()),
                other => Kind::Other(other),
            };
            let node = Node {
                kind,
                perm: mode & 0o7777,
                uid: e.uid(),
                gid: e.gid(),
                atime: Ts::secs(e.mtime()),
                mtime: Ts::secs(e.mtime()),
                ctime: Ts::secs(e.mtime()),
                nlink: 0,
                fs: Fs::Rootfs,
            };
            vfs.add(parent, last, node);
        }
        vfs.add_runtime_dirs();
        vfs
    }

    /// /dev, /proc, /sys and /tmp, laid over whatever the image has.
    fn add_runtime_dirs(&mut self) {
        let dev = self.ensure_dir(ROOT, b"dev", Fs::Dev);
        for (name, d, perm) in [
            (&b"null"[..], Dev::Null, 0o666),
            (b"zero", Dev::Zero, 0o666),
            (b"full", Dev::Full, 0o666),
            (b"random", Dev::Random, 0o666),
            (b"urandom", Dev::Urandom, 0o666),
            (b"tty", Dev::Tty, 0o666),
            (b"console", Dev::Console, 0o620),
        ] {
            self.replace(dev, name, Kind::Dev(d), perm, Fs::Dev);
        }
        for (name, target) in [
            (&b"stdin"[..], &b"/proc/self/fd/0"[..]),
            (b"stdout", b"/proc/self/fd/1"),
            (b"stderr", b"/proc/self/fd/2"),
            (b"fd", b"/proc/self/fd"),
        ] {
            self.replace(dev, name, Kind::Symlink(target.to_vec()), 0o777, Fs::Dev);
        }
        crate::pty::add_devpts(self, dev);
        crate::procfs::add_static(self);
        // /dev/shm: POSIX shared memory's tmpfs (shm_open, memfd_create), counted as /tmp is.
        let shm = self.ensure_dir(dev, b"shm", Fs::Tmpfs);
        self.nodes[shm].perm = 0o1777;
        let tmp = self.ensure_dir(ROOT, b"tmp", Fs::Tmpfs);
        self.nodes[tmp].perm = 0o1777;
    }

    /// Lays a file with `bytes` at `/etc/<name>` over what the image has (what a container
    /// runtime mounts: hosts, resolv.conf). Its bytes are not counted against the app.
    pub fn set_etc_file(&mut self, name: &[u8], bytes: Vec<u8>) {
        let etc = self.ensure_dir(ROOT, b"etc", Fs::Rootfs);
        self.replace(etc, name, Kind::File(Data::Owned(bytes)), 0o644, Fs::Rootfs);
    }

    /// Adds `/dev/selkie/channels/NAME` for channel `n` of the bus (read for consumers,
    /// write for publishers: `perm`).
    pub fn add_channel(&mut self, name: &[u8], n: u16, perm: u32) {
        let dev = self.ensure_dir(ROOT, b"dev", Fs::Dev);
        let selkie = self.ensure_dir(dev, b"selkie", Fs::Dev);
        let dir = self.ensure_dir(selkie, b"channels", Fs::Dev);
        self.replace(dir, name, Kind::Dev(Dev::Channel(n)), perm, Fs::Dev);
    }

    pub(crate) fn replace(&mut self, dir: Ino, name: &[u8], kind: Kind<'a>, perm: u32, fs: Fs) {
        let node = Node { kind, perm, uid: 0, gid: 0, atime: Ts::ZERO, mtime: Ts::ZERO, ctime: Ts::ZERO, nlink: 0, fs };
        if let Some(&old) = self.dir_entries(dir).and_then(|m| m.get(name)) {
            self.nodes[old].nlink = self.nodes[old].nlink.saturating_sub(1);
        }
        self.add(dir, name, node);
    }

    /// The directory `name` under `parent`, made a mount point of `fs` (an image directory
    /// of that name keeps its entries).
    pub(crate) fn ensure_dir(&mut self, parent: Ino, name: &[u8], fs: Fs) -> Ino {
        if let Some(&ino) = self.dir_entries(parent).and_then(|m| m.get(name)) {
            if self.nodes[ino].is_dir() && !matches!(self.nodes[ino].kind, Kind::FdDir { .. }) {
                self.nodes[ino].fs = fs;
                return ino;
            }
        }
        let node = Node {
            kind: Kind::Dir { entries: BTreeMap::new(), parent },
            perm: 0o755,
            uid: 0,
            gid: 0,
            atime: Ts::ZERO,
            mtime: Ts::ZERO,
            ctime: Ts::ZERO,
            nlink: 0,
            fs,
        };
        self.add(parent, name, node)
    }

    /// Creates the missing directories above `path` and returns its parent's ino.
    fn mkdirs_for(&mut self, path: &[u8]) -> Option<Ino> {
        let comps: Vec<&[u8]> = components(path).collect();
        let mut cur = ROOT;
        for c in &comps[..comps.len().saturating_sub(1)] {
            let next = match self.dir_entries(cur)?.get(*c) {
                Some(&ino) if self.nodes[ino].is_dir() => ino,
                Some(_) => return None,
                None => self.ensure_dir(cur, c, Fs::Rootfs),
            };
            cur = next;
        }
        Some(cur)
    }

    /// Adds a new node under `dir` as `name` (replacing any entry of that name).
    pub fn add(&mut self, dir: Ino, name: &[u8], node: Node<'a>) -> Ino {
        let ino = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.link_node(dir, name, ino);
        ino
    }

    /// Removes `dir/name` and, when nothing else links them, the nodes below it, whose
    /// slots are reused (the /proc/<pid> tree of a process that is gone).
    pub(crate) fn remove_tree(&mut self, dir: Ino, name: &[u8]) {
        let Some(ino) = self.dir_entries(dir).and_then(|m| m.get(name)).copied() else { return };
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.remove(name);
        }
        let mut todo = alloc::vec![ino];
        while let Some(i) = todo.pop() {
            let n = &mut self.nodes[i];
            n.nlink = n.nlink.saturating_sub(1);
            if n.nlink > 0 {
                continue;
            }
            if let Kind::Dir { entries, .. } = &n.kind {
                todo.extend(entries.values().copied());
            }
            n.kind = Kind::Other(0);
            self.free.push(i);
        }
    }

    /// Hides what directory `dir` holds (a filesystem mounted over it).
    pub(crate) fn empty_dir(&mut self, dir: Ino) {
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.clear();
        }
    }

    /// A symlink's target (/proc/self's is the current pid).
    pub fn link_target(&self, ino: Ino) -> Option<Vec<u8>> {
        match &self.nodes[ino].kind {
            Kind::Symlink(t) => Some(t.clone()),
            Kind::SelfLink => Some(alloc::format!("{}", self.self_pid).into_bytes()),
            _ => None,
        }
    }

    fn link_node(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.insert(name.to_vec(), ino);
        }
        self.nodes[ino].nlink += 1;
    }

    pub fn node(&self, ino: Ino) -> &Node<'a> {
        &self.nodes[ino]
    }

    pub fn node_mut(&mut self, ino: Ino) -> &mut Node<'a> {
        &mut self.nodes[ino]
    }

    pub fn dir_entries(&self, ino: Ino) -> Option<&BTreeMap<Vec<u8>, Ino>> {
        match &self.nodes.get(ino)?.kind {
            Kind::Dir { entries, .. } => Some(entries),
            _ => None,
        }
    }

    pub fn parent(&self, ino: Ino) -> Ino {
        match &self.nodes[ino].kind {
            Kind::Dir { parent, .. } => *parent,
            _ => ROOT,
        }
    }

    /// The absolute path of directory `ino` (for getcwd).
    pub fn path_of(&self, ino: Ino) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        let mut guard = 0;
        while cur != ROOT && guard < PATH_MAX {
            let p = self.parent(cur);
            let Some(name) = self.dir_entries(p).and_then(|m| m.iter().find(|(_, &i)| i == cur))
            else {
                break;
            };
            parts.push(name.0);
            cur = p;
            guard += 1;
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    /// An absolute path that names `ino` (the first found), or `None` when it has no name
    /// left. Walks the whole tree for a file: for readlink of /proc/<pid>/fd/N.
    pub fn find_path(&self, ino: Ino) -> Option<Vec<u8>> {
        if self.nodes[ino].is_dir() {
            return Some(self.path_of(ino));
        }
        let mut todo = alloc::vec![ROOT];
        let mut seen = alloc::collections::BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d) {
                continue;
            }
            for (name, &i) in self.dir_entries(d)? {
                if i == ino {
                    let mut p = self.path_of(d);
                    if p != b"/" {
                        p.push(b'/');
                    }
                    p.extend_from_slice(name);
                    return Some(p);
                }
                if self.dir_entries(i).is_some() {
                    todo.push(i);
                }
            }
        }
        None
    }

    /// Resolves `path` relative to directory `start`. Symlinks are followed, except in the
    /// last component when `follow_last` is false; `..` stops at the root.
    pub fn resolve(&self, start: Ino, path: &[u8], follow_last: bool) -> SysResult<Found> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        if path.len() > PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        let must_dir = path.ends_with(b"/");
        let follow_last = follow_last || must_dir;
        let mut cur = if path[0] == b'/' { ROOT } else { start };
        // Remaining components, last one on top of the stack.
        let mut todo: Vec<Vec<u8>> = components(path).rev().map(|c| c.to_vec()).collect();
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            if !self.nodes[cur].is_dir() {
                return Err(ENOTDIR);
            }
            if comp == b".." {
                cur = self.parent(cur);
                continue;
            }
            if comp.len() > 255 {
                return Err(ENAMETOOLONG);
            }
            if let Kind::FdDir { pid, info } = self.nodes[cur].kind {
                let fd = parse_fd(&comp).ok_or(ENOENT)?;
                if !todo.is_empty() {
                    return Err(ENOTDIR);
                }
                return Ok(if pid == self.self_pid && !info { Found::Fd(fd) } else { Found::ProcFd { pid, fd, info } });
            }
            let next = *self.dir_entries(cur).and_then(|m| m.get(&comp)).ok_or(ENOENT)?;
            if let Some(target) = self.link_target(next) {
                if !todo.is_empty() || follow_last {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ELOOP);
                    }
                    if target.is_empty() {
                        return Err(ENOENT);
                    }
                    if target[0] == b'/' {
                        cur = ROOT;
                    }
                    todo.extend(components(&target).rev().map(|c| c.to_vec()));
                    continue;
                }
            }
            cur = next;
        }
        if must_dir && !self.nodes[cur].is_dir() {
            return Err(ENOTDIR);
        }
        Ok(Found::Node(cur))
    }

    /// Resolves all but the last component of `path`: (directory, last name).
    /// The name is empty for "/" and may be "." or "..".
    pub fn resolve_parent<'p>(&self, start: Ino, path: &'p [u8]) -> SysResult<(Ino, &'p [u8])> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        let trimmed = {
            let mut end = path.len();
            while end > 1 && path[end - 1] == b'/' {
                end -= 1;
            }
            &path[..end]
        };
        let (dir_path, name) = match trimmed.iter().rposition(|&c| c == b'/') {
            Some(0) => (&b"/"[..], &trimmed[1..]),
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        match self.resolve(start, dir_path, true)? {
            Found::Node(d) if self.nodes[d].is_dir() => Ok((d, name)),
            _ => Err(ENOTDIR),
        }
    }

    /// A new node of `kind` on `dir`'s filesystem, stamped [`Vfs::now`].
    fn new_node(&self, dir: Ino, kind: Kind<'a>, perm: u32, owner: (u32, u32)) -> Node<'a> {
        let t = self.now;
        Node { kind, perm: perm & 0o7777, uid: owner.0, gid: owner.1, atime: t, mtime: t, ctime: t, nlink: 0, fs: self.nodes[dir].fs }
    }

    /// Creates an empty regular file.
    pub fn create_file(&mut self, dir: Ino, name: &[u8], perm: u32, uid: u32, gid: u32) -> SysResult<Ino> {
        self.check_new_name(dir, name)?;
        let node = self.new_node(dir, Kind::File(Data::Owned(Vec::new())), perm, (uid, gid));
        self.touch(dir, true);
        let ino = self.add(dir, name, node);
        self.notify_entry(dir, IN_CREATE, name, ino, 0);
        Ok(ino)
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, dir: Ino, name: &[u8], perm: u32, uid: u32, gid: u32) -> SysResult<Ino> {
        self.check_new_name(dir, name)?;
        let node = self.new_node(dir, Kind::Dir { entries: BTreeMap::new(), parent: dir }, perm, (uid, gid));
        self.touch(dir, true);
        let ino = self.add(dir, name, node);
        self.notify_entry(dir, IN_CREATE, name, ino, 0);
        Ok(ino)
    }

    /// Creates a fifo or a socket's name (`mknodat`, `bind`): a node of type `ftype` that
    /// stat shows (opening one gives ENXIO).
    pub fn mknod(&mut self, dir: Ino, name: &[u8], ftype: u32, perm: u32, owner: (u32, u32)) -> SysResult<Ino> {
        self.check_new_name(dir, name)?;
        let node = self.new_node(dir, Kind::Other(ftype), perm, owner);
        self.touch(dir, true);
        let ino = self.add(dir, name, node);
        self.notify_entry(dir, IN_CREATE, name, ino, 0);
        Ok(ino)
    }

    /// Creates a symlink to `target` (`symlinkat`).
    pub fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], owner: (u32, u32)) -> SysResult<Ino> {
        if target.is_empty() {
            return Err(ENOENT);
        }
        if target.len() > PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        self.check_new_name(dir, name)?;
        let node = self.new_node(dir, Kind::Symlink(target.to_vec()), 0o777, owner);
        self.touch(dir, true);
        let ino = self.add(dir, name, node);
        self.notify_entry(dir, IN_CREATE, name, ino, 0);
        Ok(ino)
    }

    /// An unnamed regular file on `dir`'s filesystem (`O_TMPFILE`): it has no links until
    /// [`Vfs::link`] gives it a name.
    pub fn tmpfile(&mut self, dir: Ino, perm: u32, owner: (u32, u32)) -> SysResult<Ino> {
        if !self.nodes[dir].is_dir() {
            return Err(ENOTDIR);
        }
        if !self.nodes[dir].writable() {
            return Err(EROFS);
        }
        let node = self.new_node(dir, Kind::File(Data::Owned(Vec::new())), perm, owner);
        self.nodes.push(node);
        let ino = self.nodes.len() - 1;
        self.orphans.push(ino);
        Ok(ino)
    }

    /// Gives `ino` one more name (`linkat`): not for directories, not across filesystems.
    pub fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> SysResult<()> {
        if self.nodes[ino].is_dir() {
            return Err(EPERM);
        }
        self.check_new_name(dir, name)?;
        if self.nodes[ino].fs != self.nodes[dir].fs {
            return Err(EXDEV);
        }
        self.link_node(dir, name, ino);
        self.touch(dir, true);
        self.touch(ino, false);
        self.notify_entry(dir, IN_CREATE, name, ino, 0);
        self.watches.notify(ino, IN_ATTRIB, &[], 0);
        Ok(())
    }

    /// Stamps a change now: the status change time, and the modification time when the
    /// contents (a file's bytes, a directory's entries) changed.
    pub fn touch(&mut self, ino: Ino, content: bool) {
        let now = self.now;
        let n = &mut self.nodes[ino];
        n.ctime = now;
        if content {
            n.mtime = now;
        }
    }

    /// Tells the watches on `dir` that its entry `name` (node `ino`) had `mask` happen.
    fn notify_entry(&mut self, dir: Ino, mask: u32, name: &[u8], ino: Ino, cookie: u32) {
        let isdir = if self.nodes[ino].is_dir() { IN_ISDIR } else { 0 };
        self.watches.notify(dir, mask | isdir, name, cookie);
    }

    /// Tells the watches that node `ino` had `mask` happen (its bytes or metadata
    /// changed): each watched directory holding it gets the event with its name, before
    /// the watches on the node itself get it, as Linux's fsnotify_parent orders them.
    pub fn notify_changed(&mut self, ino: Ino, mask: u32) {
        for dir in self.watches.watched() {
            let names: Vec<Vec<u8>> = match self.dir_entries(dir) {
                Some(m) => m.iter().filter(|e| *e.1 == ino).map(|e| e.0.clone()).collect(),
                None => continue,
            };
            for name in names {
                self.notify_entry(dir, mask, &name, ino, 0);
            }
        }
        self.watches.notify(ino, mask, &[], 0);
    }

    /// A node that lost a link: gone for its watches when no link is left, else changed.
    fn notify_unlinked(&mut self, ino: Ino) {
        if self.nodes[ino].nlink == 0 || self.nodes[ino].is_dir() {
            self.watches.gone(ino);
        } else {
            self.watches.notify(ino, IN_ATTRIB, &[], 0);
        }
    }

    fn check_new_name(&self, dir: Ino, name: &[u8]) -> SysResult<()> {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(EEXIST);
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        let entries = self.dir_entries(dir).ok_or(ENOTDIR)?;
        if entries.contains_key(name) {
            return Err(EEXIST);
        }
        if !self.nodes[dir].writable() {
            return Err(EROFS);
        }
        Ok(())
    }

    /// `name`'s node in `dir`.
    fn entry(&self, dir: Ino, name: &[u8]) -> SysResult<Option<Ino>> {
        Ok(self.dir_entries(dir).ok_or(ENOTDIR)?.get(name).copied())
    }

    /// Whether `ino` is a mount point (/tmp, /dev, /proc): its filesystem is not its parent's.
    fn is_mount_point(&self, dir: Ino, ino: Ino) -> bool {
        ino == ROOT || self.nodes[ino].fs != self.nodes[dir].fs && self.nodes[ino].is_dir()
    }

    /// Whether directory `dir` is `ancestor` or below it.
    fn is_below(&self, mut dir: Ino, ancestor: Ino) -> bool {
        for _ in 0..self.nodes.len() {
            if dir == ancestor {
                return true;
            }
            if dir == ROOT {
                return false;
            }
            dir = self.parent(dir);
        }
        false
    }

    /// Drops one link of `ino`; the data of a file with none left is no longer counted
    /// (open fds keep reading it).
    fn unlink_node(&mut self, ino: Ino) {
        let n = &mut self.nodes[ino];
        n.nlink = n.nlink.saturating_sub(1);
        if n.nlink == 0 {
            if let Kind::File(Data::Owned(v)) = &n.kind {
                let (pool, len) = (n.fs.pool(), v.len());
                self.used[pool] = self.used[pool].saturating_sub(len);
            }
            if matches!(n.kind, Kind::File(_)) {
                self.orphans.push(ino);
            }
        }
    }

    /// How many times `ino`'s bytes changed (see `gens`).
    pub fn data_gen(&self, ino: Ino) -> u64 {
        self.gens.get(&ino).copied().unwrap_or(0)
    }

    /// Sets `ino`'s change count back (a shared mapping's own store).
    pub(crate) fn set_data_gen(&mut self, ino: Ino, gen: u64) {
        self.gens.insert(ino, gen);
    }

    /// A holder of `ino` for an open file or a shared mapping: while one is alive, a file
    /// that no name links keeps its bytes.
    pub fn hold(&mut self, ino: Ino) -> Rc<()> {
        self.holds.entry(ino).or_insert_with(|| Rc::new(())).clone()
    }

    /// Frees the bytes and the node of every file that no name links and nothing holds any
    /// more (a deleted file once its last fd is closed; an `O_TMPFILE` never linked), so
    /// that an app writing and deleting files does not keep what it deleted.
    pub fn reclaim(&mut self) {
        let mut i = 0;
        while i < self.orphans.len() {
            let ino = self.orphans[i];
            let held = self.holds.get(&ino).is_some_and(|h| Rc::strong_count(h) > 1);
            if held && self.nodes[ino].nlink == 0 {
                i += 1;
                continue;
            }
            self.orphans.swap_remove(i);
            if self.nodes[ino].nlink > 0 {
                // Linked again (linkat of an O_TMPFILE).
                continue;
            }
            self.holds.remove(&ino);
            self.gens.remove(&ino);
            self.nodes[ino].kind = Kind::Other(0);
            self.free.push(ino);
        }
    }

    /// Files waiting for their last holder (for tests and stats).
    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// Removes `name` (`rmdir` when `dir_only`). An image file's entry is dropped from the
    /// app's tree (a whiteout); the image itself is not changed.
    pub fn unlink(&mut self, dir: Ino, name: &[u8], dir_only: bool) -> SysResult<()> {
        if name == b"." {
            return Err(EINVAL);
        }
        if name == b".." || name.is_empty() {
            return Err(ENOTEMPTY);
        }
        let ino = self.entry(dir, name)?.ok_or(ENOENT)?;
        if !self.nodes[dir].writable() {
            return Err(EROFS);
        }
        let is_dir = self.nodes[ino].is_dir();
        if dir_only && !is_dir {
            return Err(ENOTDIR);
        }
        if !dir_only && is_dir {
            return Err(EISDIR);
        }
        if self.is_mount_point(dir, ino) {
            return Err(EBUSY);
        }
        if self.dir_entries(ino).is_some_and(|m| !m.is_empty()) {
            return Err(ENOTEMPTY);
        }
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.remove(name);
        }
        self.unlink_node(ino);
        self.touch(dir, true);
        self.touch(ino, false);
        self.notify_entry(dir, IN_DELETE, name, ino, 0);
        self.notify_unlinked(ino);
        Ok(())
    }

    /// Renames `odir/oname` to `ndir/nname` as `renameat2` does, with its flags
    /// ([`RENAME_NOREPLACE`], [`RENAME_EXCHANGE`]): a replaced target loses that link, a
    /// directory may replace only an empty directory, never move below itself, and
    /// nothing moves across filesystems (`EXDEV`).
    pub fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8], flags: u32) -> SysResult<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
            return Err(EINVAL);
        }
        let special = |n: &[u8]| n.is_empty() || n == b"." || n == b"..";
        if special(oname) {
            return Err(EBUSY);
        }
        if special(nname) {
            return Err(if flags & RENAME_NOREPLACE != 0 { EEXIST } else { EBUSY });
        }
        if nname.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        let src = self.entry(odir, oname)?.ok_or(ENOENT)?;
        let dst = self.entry(ndir, nname)?;
        if flags & RENAME_EXCHANGE != 0 && dst.is_none() {
            return Err(ENOENT);
        }
        if flags & RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(EEXIST);
        }
        if !self.nodes[odir].writable() || !self.nodes[ndir].writable() {
            return Err(EROFS);
        }
        if self.nodes[odir].fs != self.nodes[ndir].fs {
            return Err(EXDEV);
        }
        if self.is_mount_point(odir, src) || dst.is_some_and(|d| self.is_mount_point(ndir, d)) {
            return Err(EBUSY);
        }
        if dst == Some(src) {
            return Ok(());
        }
        let src_dir = self.nodes[src].is_dir();
        // A directory may not move below itself.
        if src_dir && self.is_below(ndir, src) {
            return Err(EINVAL);
        }
        if flags & RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or(ENOENT)?;
            if self.nodes[dst].is_dir() && self.is_below(odir, dst) {
                return Err(EINVAL);
            }
            self.set_entry(odir, oname, dst);
            self.set_entry(ndir, nname, src);
            for i in [odir, ndir] {
                self.touch(i, true);
            }
            let (c1, c2) = (self.watches.next_cookie(), self.watches.next_cookie());
            self.notify_entry(odir, IN_MOVED_FROM, oname, src, c1);
            self.notify_entry(ndir, IN_MOVED_TO, nname, src, c1);
            self.notify_entry(ndir, IN_MOVED_FROM, nname, dst, c2);
            self.notify_entry(odir, IN_MOVED_TO, oname, dst, c2);
            return Ok(());
        }
        if let Some(d) = dst {
            match (src_dir, self.nodes[d].is_dir()) {
                (true, false) => return Err(ENOTDIR),
                (false, true) => return Err(EISDIR),
                (true, true) if self.dir_entries(d).is_some_and(|m| !m.is_empty()) => return Err(ENOTEMPTY),
                _ => {}
            }
        }
        if let Kind::Dir { entries, .. } = &mut self.nodes[odir].kind {
            entries.remove(oname);
        }
        self.set_entry(ndir, nname, src);
        if let Some(d) = dst {
            self.unlink_node(d);
            self.touch(d, false);
            self.notify_unlinked(d);
        }
        for i in [odir, ndir] {
            self.touch(i, true);
        }
        self.touch(src, false);
        let cookie = self.watches.next_cookie();
        self.notify_entry(odir, IN_MOVED_FROM, oname, src, cookie);
        self.notify_entry(ndir, IN_MOVED_TO, nname, src, cookie);
        Ok(())
    }

    /// Points `dir/name` at `ino` (a directory's parent follows).
    fn set_entry(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.insert(name.to_vec(), ino);
        }
        if let Kind::Dir { parent, .. } = &mut self.nodes[ino].kind {
            *parent = dir;
        }
    }

    /// Bounds all the app's written bytes together, rootfs layer and tmpfses (the seL4 root
    /// server keeps them in its own heap, so it gives each app a share); /tmp stays within
    /// [`TMPFS_MAX_BYTES`] too.
    pub fn set_write_limit(&mut self, bytes: usize) {
        self.total_limit = bytes;
    }

    /// Bounds the bytes the rootfs's copy-on-write layer holds (the
    /// `org.selkie.app.rootfs_write_bytes` label); an image file counts in full once written.
    pub fn set_rootfs_limit(&mut self, bytes: usize) {
        self.limits[0] = bytes;
    }

    /// Counts `grow` more bytes on `fs`, or `ENOSPC` past its limit or the app's.
    fn charge(&mut self, fs: Fs, grow: usize) -> SysResult<()> {
        let pool = fs.pool();
        let total = self.used[0] + self.used[1];
        if self.used[pool].saturating_add(grow) > self.limits[pool] || total.saturating_add(grow) > self.total_limit {
            return Err(ENOSPC);
        }
        self.used[pool] += grow;
        Ok(())
    }

    /// The file's bytes, copied out of the image on the first change (counted in full).
    fn owned_data(&mut self, ino: Ino) -> SysResult<&mut Vec<u8>> {
        let n = &self.nodes[ino];
        if !n.writable() {
            return Err(if n.is_dir() { EISDIR } else { EROFS });
        }
        let fs = n.fs;
        match &n.kind {
            Kind::File(Data::Image(b)) => {
                // Fallible: the bytes live in a heap that may be smaller than the quota.
                let mut copy = Vec::new();
                copy.try_reserve_exact(b.len()).map_err(|_| ENOSPC)?;
                copy.extend_from_slice(b);
                self.charge(fs, copy.len())?;
                self.nodes[ino].kind = Kind::File(Data::Owned(copy));
            }
            Kind::File(Data::Owned(_)) => {}
            Kind::Dir { .. } | Kind::FdDir { .. } => return Err(EISDIR),
            _ => return Err(EINVAL),
        }
        match &mut self.nodes[ino].kind {
            Kind::File(Data::Owned(v)) => Ok(v),
            _ => Err(EINVAL),
        }
    }

    /// Sets the file's length to `len`, counting growth on its filesystem.
    fn resize(&mut self, ino: Ino, len: usize) -> SysResult<()> {
        let fs = self.nodes[ino].fs;
        let old = self.owned_data(ino)?.len();
        if len > old {
            self.charge(fs, len - old)?;
            // A heap that cannot hold the bytes is a full filesystem, never an abort: try
            // the usual doubling, then just what is needed.
            let data = self.owned_data(ino)?;
            if data.try_reserve(len - old).is_err() && data.try_reserve_exact(len - old).is_err() {
                let pool = fs.pool();
                self.used[pool] = self.used[pool].saturating_sub(len - old);
                return Err(ENOSPC);
            }
        } else {
            let pool = fs.pool();
            self.used[pool] = self.used[pool].saturating_sub(old - len);
        }
        self.owned_data(ino)?.resize(len, 0);
        *self.gens.entry(ino).or_default() += 1;
        self.touch(ino, true);
        self.notify_changed(ino, IN_MODIFY);
        Ok(())
    }

    /// Writes into a file at `off`, growing it.
    pub fn write_at(&mut self, ino: Ino, off: u64, bytes: &[u8]) -> SysResult<usize> {
        let end = off.checked_add(bytes.len() as u64).ok_or(EFBIG)?;
        let end = usize::try_from(end).map_err(|_| EFBIG)?;
        if end > self.owned_data(ino)?.len() {
            self.resize(ino, end)?;
        }
        self.owned_data(ino)?[off as usize..end].copy_from_slice(bytes);
        *self.gens.entry(ino).or_default() += 1;
        self.touch(ino, true);
        self.notify_changed(ino, IN_MODIFY);
        Ok(bytes.len())
    }

    /// Zeroes a file's bytes in `[off, stop)` within its length (fallocate's hole punch).
    pub fn zero_range(&mut self, ino: Ino, off: u64, stop: u64) -> SysResult<()> {
        let data = self.owned_data(ino)?;
        let end = usize::try_from(stop).unwrap_or(usize::MAX).min(data.len());
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(end);
        data[start..end].fill(0);
        *self.gens.entry(ino).or_default() += 1;
        self.touch(ino, true);
        self.notify_changed(ino, IN_MODIFY);
        Ok(())
    }

    /// Sets a file's length.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> SysResult<()> {
        let len = usize::try_from(len).map_err(|_| EFBIG)?;
        self.resize(ino, len)
    }

    /// What statfs reports for `fs`: (f_type, f_flags, 4 KiB blocks in all, blocks free,
    /// inodes in use).
    pub fn statfs(&self, fs: Fs) -> (u64, u64, u64, u64, u64) {
        let (ftype, flags) = fs.statfs_type_flags();
        let pool = fs.pool();
        let limit = if fs == Fs::Proc { 0 } else { self.limits[pool].min(self.total_limit) };
        let free = limit.saturating_sub(self.used[pool]).min(self.total_limit.saturating_sub(self.used[0] + self.used[1]));
        let files = self.nodes.iter().filter(|n| n.fs == fs && n.nlink > 0).count() as u64;
        let image = if fs == Fs::Rootfs { self.image_bytes } else { 0 };
        (ftype, flags, limit.saturating_add(image) as u64 / 4096, free as u64 / 4096, files)
    }
}

/// renameat2's flags.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

fn parse_fd(s: &[u8]) -> Option<i32> {
    if s.is_empty() || s.len() > 9 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    s.iter().try_fold(0i32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i32::from(c - b'0')))
}

#[cfg(test)]
mod tmpfs_limit_tests {
    use super::*;
    use crate::errno::ENOSPC;

    #[test]
    fn the_images_bytes_count_as_used_on_the_rootfs() {
        let image = [0u8; 5 * 4096];
        let vfs = Vfs::from_cpio(&image);
        let (_, _, blocks, free, _) = vfs.statfs(Fs::Rootfs);
        assert_eq!(blocks - free, 5, "shutil.disk_usage finds them used");
        let (_, _, blocks, free, _) = vfs.statfs(Fs::Tmpfs);
        assert_eq!(blocks, free, "an empty tmpfs");
    }

    #[test]
    fn a_lower_tmpfs_limit_gives_enospc() {
        let mut vfs = Vfs::from_cpio(&[]);
        vfs.set_write_limit(8192);
        let Ok(Found::Node(tmp)) = vfs.resolve(ROOT, b"/tmp", true) else { panic!("no /tmp") };
        let f = vfs.create_file(tmp, b"f", 0o644, 0, 0).unwrap();
        assert_eq!(vfs.write_at(f, 0, &[1; 8192]), Ok(8192));
        assert_eq!(vfs.write_at(f, 8192, &[1]), Err(ENOSPC));
        assert_eq!(vfs.truncate(f, 8193), Err(ENOSPC));
        // Never above the built-in bound.
        vfs.set_write_limit(usize::MAX);
        assert_eq!(vfs.limits[1], TMPFS_MAX_BYTES);
    }
}
