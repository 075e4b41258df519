//! The file tree an app sees: the read-only cpio rootfs, a small writable tmpfs at /tmp,
//! and a docker-like minimal /dev (plus /proc/self/fd for the /dev/fd links), whether or
//! not the image has them.
//!
//! Nodes live in an arena indexed by [`Ino`]; file data from the image is borrowed from
//! the cpio archive, tmpfs data is owned. newc hardlinks (entries sharing an inode number,
//! where only one carries the data) become one node with several names.

use crate::errno::*;
use alloc::collections::BTreeMap;
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

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

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
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind<'a> {
    Dir { entries: BTreeMap<Vec<u8>, Ino>, parent: Ino },
    File(Data<'a>),
    Symlink(Vec<u8>),
    Dev(Dev),
    /// /proc/self/fd: its entries are the app's open fds.
    FdDir,
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
    pub mtime: u64,
    pub nlink: u32,
    /// Lives in tmpfs (may be written, created in, removed from).
    pub writable: bool,
}

impl Node<'_> {
    /// The S_IFMT bits.
    pub fn ftype(&self) -> u32 {
        match &self.kind {
            Kind::Dir { .. } | Kind::FdDir => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
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
            Kind::Dir { .. } | Kind::FdDir => 4096,
            _ => 0,
        }
    }
    pub fn is_dir(&self) -> bool {
        self.ftype() == S_IFDIR
    }
}

/// What a path names: a node, or an open fd (through /proc/self/fd/N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Node(Ino),
    Fd(i32),
}

/// The whole tree.
#[derive(Debug, Clone)]
pub struct Vfs<'a> {
    nodes: Vec<Node<'a>>,
    tmpfs_bytes: usize,
    /// Most bytes tmpfs files may hold ([`TMPFS_MAX_BYTES`] unless set lower).
    tmpfs_limit: usize,
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty() && *c != b".")
}

impl<'a> Vfs<'a> {
    /// Builds the tree from a cpio archive (any format `cpio_reader` reads; newc from
    /// `selkie pack`). Entries that cannot be placed (a parent that is not a directory)
    /// are skipped; missing parent directories are created.
    pub fn from_cpio(cpio: &'a [u8]) -> Self {
        let mut vfs = Vfs { nodes: Vec::new(), tmpfs_bytes: 0, tmpfs_limit: TMPFS_MAX_BYTES };
        vfs.nodes.push(Node {
            kind: Kind::Dir { entries: BTreeMap::new(), parent: ROOT },
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            nlink: 2,
            writable: false,
        });
        // (devmajor, devminor, ino) -> node, for hardlinked regular files.
        let mut links: BTreeMap<(u32, u32, u32), Ino> = BTreeMap::new();
        for e in cpio_reader::iter_files(cpio) {
            let name = e.name().as_bytes();
            let Some(last) = components(name).next_back() else {
                // "." or "/": the root itself.
                vfs.nodes[ROOT].perm = e.mode().bits() & 0o7777;
                vfs.nodes[ROOT].mtime = e.mtime();
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
                            n.mtime = e.mtime();
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
                            vfs.link(parent, last, ino);
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
                mtime: e.mtime(),
                nlink: 0,
                writable: false,
            };
            vfs.add(parent, last, node);
        }
        vfs.add_runtime_dirs();
        vfs
    }

    /// /dev, /proc/self/fd and /tmp, laid over whatever the image has.
    fn add_runtime_dirs(&mut self) {
        let dev = self.ensure_dir(ROOT, b"dev", false);
        for (name, d, perm) in [
            (&b"null"[..], Dev::Null, 0o666),
            (b"zero", Dev::Zero, 0o666),
            (b"full", Dev::Full, 0o666),
            (b"random", Dev::Random, 0o666),
            (b"urandom", Dev::Urandom, 0o666),
            (b"tty", Dev::Tty, 0o666),
            (b"console", Dev::Console, 0o620),
        ] {
            self.replace(dev, name, Kind::Dev(d), perm);
        }
        for (name, target) in [
            (&b"stdin"[..], &b"/proc/self/fd/0"[..]),
            (b"stdout", b"/proc/self/fd/1"),
            (b"stderr", b"/proc/self/fd/2"),
            (b"fd", b"/proc/self/fd"),
        ] {
            self.replace(dev, name, Kind::Symlink(target.to_vec()), 0o777);
        }
        let proc_ = self.ensure_dir(ROOT, b"proc", false);
        let self_ = self.ensure_dir(proc_, b"self", false);
        self.replace(self_, b"fd", Kind::FdDir, 0o500);
        let tmp = self.ensure_dir(ROOT, b"tmp", true);
        self.nodes[tmp].perm = 0o1777;
    }

    /// Lays a read-only file with `bytes` at `/etc/<name>` over what the image has (what
    /// a container runtime mounts: hosts, resolv.conf).
    pub fn set_etc_file(&mut self, name: &[u8], bytes: Vec<u8>) {
        let etc = self.ensure_dir(ROOT, b"etc", false);
        self.replace(etc, name, Kind::File(Data::Owned(bytes)), 0o644);
    }

    /// Adds `/dev/selkie/channels/NAME` for channel `n` of the bus (read for consumers,
    /// write for publishers: `perm`).
    pub fn add_channel(&mut self, name: &[u8], n: u16, perm: u32) {
        let dev = self.ensure_dir(ROOT, b"dev", false);
        let selkie = self.ensure_dir(dev, b"selkie", false);
        let dir = self.ensure_dir(selkie, b"channels", false);
        self.replace(dir, name, Kind::Dev(Dev::Channel(n)), perm);
    }

    /// Points /proc/self/exe at `target`.
    pub fn set_exe(&mut self, target: &[u8]) {
        if let Ok(Found::Node(dir)) = self.resolve(ROOT, b"/proc/self", false) {
            self.replace(dir, b"exe", Kind::Symlink(target.to_vec()), 0o777);
        }
    }

    fn replace(&mut self, dir: Ino, name: &[u8], kind: Kind<'a>, perm: u32) {
        let node = Node { kind, perm, uid: 0, gid: 0, mtime: 0, nlink: 0, writable: false };
        if let Some(&old) = self.dir_entries(dir).and_then(|m| m.get(name)) {
            self.nodes[old].nlink = self.nodes[old].nlink.saturating_sub(1);
        }
        self.add(dir, name, node);
    }

    fn ensure_dir(&mut self, parent: Ino, name: &[u8], writable: bool) -> Ino {
        if let Some(&ino) = self.dir_entries(parent).and_then(|m| m.get(name)) {
            if self.nodes[ino].is_dir() && !matches!(self.nodes[ino].kind, Kind::FdDir) {
                if writable {
                    self.nodes[ino].writable = true;
                }
                return ino;
            }
        }
        let node = Node {
            kind: Kind::Dir { entries: BTreeMap::new(), parent },
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            nlink: 0,
            writable,
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
                None => self.ensure_dir(cur, c, false),
            };
            cur = next;
        }
        Some(cur)
    }

    /// Adds a new node under `dir` as `name` (replacing any entry of that name).
    pub fn add(&mut self, dir: Ino, name: &[u8], node: Node<'a>) -> Ino {
        let ino = self.nodes.len();
        self.nodes.push(node);
        self.link(dir, name, ino);
        ino
    }

    fn link(&mut self, dir: Ino, name: &[u8], ino: Ino) {
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
            if let Kind::FdDir = self.nodes[cur].kind {
                let fd = parse_fd(&comp).ok_or(ENOENT)?;
                return if todo.is_empty() { Ok(Found::Fd(fd)) } else { Err(ENOTDIR) };
            }
            let next = *self.dir_entries(cur).and_then(|m| m.get(&comp)).ok_or(ENOENT)?;
            if let Kind::Symlink(target) = &self.nodes[next].kind {
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
                    todo.extend(components(target).rev().map(|c| c.to_vec()));
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

    /// Creates an empty regular file in a tmpfs directory.
    pub fn create_file(&mut self, dir: Ino, name: &[u8], perm: u32, uid: u32, gid: u32, now: u64) -> SysResult<Ino> {
        self.check_new_name(dir, name)?;
        let node = Node { kind: Kind::File(Data::Owned(Vec::new())), perm, uid, gid, mtime: now, nlink: 0, writable: true };
        Ok(self.add(dir, name, node))
    }

    /// Creates a directory in a tmpfs directory.
    pub fn mkdir(&mut self, dir: Ino, name: &[u8], perm: u32, uid: u32, gid: u32, now: u64) -> SysResult<Ino> {
        self.check_new_name(dir, name)?;
        let node = Node {
            kind: Kind::Dir { entries: BTreeMap::new(), parent: dir },
            perm,
            uid,
            gid,
            mtime: now,
            nlink: 0,
            writable: true,
        };
        Ok(self.add(dir, name, node))
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
        if !self.nodes[dir].writable {
            return Err(EROFS);
        }
        Ok(())
    }

    /// Removes `name` from a tmpfs directory (`rmdir` when `dir_only`).
    pub fn unlink(&mut self, dir: Ino, name: &[u8], dir_only: bool) -> SysResult<()> {
        if name == b"." {
            return Err(EINVAL);
        }
        if name == b".." || name.is_empty() {
            return Err(ENOTEMPTY);
        }
        let ino = *self.dir_entries(dir).ok_or(ENOTDIR)?.get(name).ok_or(ENOENT)?;
        if !self.nodes[dir].writable {
            return Err(EROFS);
        }
        let is_dir = self.nodes[ino].is_dir();
        if dir_only && !is_dir {
            return Err(ENOTDIR);
        }
        if !dir_only && is_dir {
            return Err(EISDIR);
        }
        if self.dir_entries(ino).is_some_and(|m| !m.is_empty()) {
            return Err(ENOTEMPTY);
        }
        if let Kind::Dir { entries, .. } = &mut self.nodes[dir].kind {
            entries.remove(name);
        }
        let n = &mut self.nodes[ino];
        n.nlink = n.nlink.saturating_sub(1);
        if n.nlink == 0 {
            // Open fds keep reading their data; tmpfs accounting is released at once.
            if let Kind::File(Data::Owned(v)) = &n.kind {
                self.tmpfs_bytes = self.tmpfs_bytes.saturating_sub(v.len());
            }
        }
        Ok(())
    }

    /// Bounds tmpfs to `bytes` (at most [`TMPFS_MAX_BYTES`]): the seL4 root server keeps
    /// every app's tmpfs in its own heap, so it gives each app a share.
    pub fn set_tmpfs_limit(&mut self, bytes: usize) {
        self.tmpfs_limit = bytes.min(TMPFS_MAX_BYTES);
    }

    /// Writes into a tmpfs file at `off`, growing it; bounded by the tmpfs limit.
    pub fn write_at(&mut self, ino: Ino, off: u64, bytes: &[u8]) -> SysResult<usize> {
        let end = off.checked_add(bytes.len() as u64).ok_or(EFBIG)?;
        let writable = self.nodes[ino].writable;
        let Kind::File(data) = &mut self.nodes[ino].kind else { return Err(EINVAL) };
        if !writable {
            return Err(EROFS);
        }
        if let Data::Image(b) = data {
            *data = Data::Owned(b.to_vec());
        }
        let Data::Owned(v) = data else { return Err(EROFS) };
        let end = usize::try_from(end).map_err(|_| EFBIG)?;
        if end > v.len() {
            let grow = end - v.len();
            if self.tmpfs_bytes + grow > self.tmpfs_limit {
                return Err(ENOSPC);
            }
            self.tmpfs_bytes += grow;
            v.resize(end, 0);
        }
        v[off as usize..end].copy_from_slice(bytes);
        Ok(bytes.len())
    }

    /// Sets a tmpfs file's length.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> SysResult<()> {
        let len = usize::try_from(len).map_err(|_| EFBIG)?;
        let writable = self.nodes[ino].writable;
        let Kind::File(Data::Owned(v)) = &mut self.nodes[ino].kind else {
            return Err(if self.nodes[ino].is_dir() { EISDIR } else if writable { EINVAL } else { EROFS });
        };
        let old = v.len();
        if len > old {
            if self.tmpfs_bytes + (len - old) > self.tmpfs_limit {
                return Err(ENOSPC);
            }
            self.tmpfs_bytes += len - old;
        } else {
            self.tmpfs_bytes = self.tmpfs_bytes.saturating_sub(old - len);
        }
        v.resize(len, 0);
        Ok(())
    }
}

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
    fn a_lower_tmpfs_limit_gives_enospc() {
        let mut vfs = Vfs::from_cpio(&[]);
        vfs.set_tmpfs_limit(8192);
        let Ok(Found::Node(tmp)) = vfs.resolve(ROOT, b"/tmp", true) else { panic!("no /tmp") };
        let f = vfs.create_file(tmp, b"f", 0o644, 0, 0, 0).unwrap();
        assert_eq!(vfs.write_at(f, 0, &[1; 8192]), Ok(8192));
        assert_eq!(vfs.write_at(f, 8192, &[1]), Err(ENOSPC));
        assert_eq!(vfs.truncate(f, 8193), Err(ENOSPC));
        // Never above the built-in bound.
        vfs.set_tmpfs_limit(usize::MAX);
        assert_eq!(vfs.tmpfs_limit, TMPFS_MAX_BYTES);
    }
}
