//! The flattened filesystem as metadata only: nodes, hardlink-shared inodes, and path
//! resolution that never leaves the root (symlinks are followed as if chrooted, `..` stops
//! at `/`). File contents stay in the layers; each inode remembers which entry holds them.

use std::collections::BTreeMap;
use thiserror::Error;

pub type NodeId = usize;
pub type InodeId = usize;

/// Ownership, permissions (including setuid/setgid/sticky) and mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

impl Meta {
    pub const IMPLICIT_DIR: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir(BTreeMap<Vec<u8>, NodeId>),
    File(InodeId),
    Symlink(Vec<u8>),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: Vec<u8>,
    pub parent: NodeId,
    pub kind: Kind,
    /// For files the inode's meta is authoritative.
    pub meta: Meta,
    /// The last layer that created or passed through this node (for opaque whiteouts).
    pub last_layer: u32,
}

/// A regular file's content: where it is and how big.
#[derive(Clone, Debug)]
pub struct Inode {
    pub meta: Meta,
    pub size: u64,
    /// (layer index, entry index within that layer's tar).
    pub src: (u32, u32),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path climbs above the root with '..'")]
    Escape,
    #[error("{0:?} is not a directory")]
    NotDir(String),
    #[error("symlinks nest too deep (more than 40) resolving {0:?}")]
    Loop(String),
    #[error("{0:?} does not exist")]
    Missing(String),
    #[error("empty path")]
    Empty,
}

/// Splits an entry name into components: a leading `/` and `.` are dropped; `..` that
/// climbs above the root is an error.
pub fn clean(name: &[u8]) -> Result<Vec<Vec<u8>>, PathError> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(PathError::Escape);
                }
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

pub const ROOT: NodeId = 0;
const MAX_LINKS: usize = 40;

pub struct Tree {
    pub nodes: Vec<Node>,
    pub inodes: Vec<Inode>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            nodes: vec![Node {
                name: Vec::new(),
                parent: ROOT,
                kind: Kind::Dir(BTreeMap::new()),
                meta: Meta::IMPLICIT_DIR,
                last_layer: 0,
            }],
            inodes: Vec::new(),
        }
    }

    pub fn children(&self, id: NodeId) -> Option<&BTreeMap<Vec<u8>, NodeId>> {
        match &self.nodes[id].kind {
            Kind::Dir(c) => Some(c),
            _ => None,
        }
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.children(dir).and_then(|c| c.get(name).copied())
    }

    /// The path of `id` from the root, without a leading `/` ("" for the root).
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            parts.push(String::from_utf8_lossy(&self.nodes[cur].name).into_owned());
            cur = self.nodes[cur].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Resolves a directory path, following every symlink inside the root. With `create`
    /// (applying layer `layer`), missing directories are made, and each directory passed
    /// through is marked as touched by that layer.
    pub fn resolve_dir(
        &mut self,
        comps: &[Vec<u8>],
        create: Option<u32>,
    ) -> Result<NodeId, PathError> {
        let mut budget = MAX_LINKS;
        self.walk(ROOT, comps, create, &mut budget, true)
    }

    fn walk(
        &mut self,
        start: NodeId,
        comps: &[Vec<u8>],
        create: Option<u32>,
        budget: &mut usize,
        follow_last: bool,
    ) -> Result<NodeId, PathError> {
        let mut cur = start;
        for (i, c) in comps.iter().enumerate() {
            let is_last = i + 1 == comps.len();
            if c.as_slice() == b".." {
                cur = self.nodes[cur].parent;
                continue;
            }
            if c.is_empty() || c.as_slice() == b"." {
                continue;
            }
            let next = match self.child(cur, c) {
                Some(n) => n,
                None => match create {
                    Some(layer) => self.insert(
                        cur,
                        c.clone(),
                        Kind::Dir(BTreeMap::new()),
                        Meta::IMPLICIT_DIR,
                        layer,
                    ),
                    None => return Err(PathError::Missing(self.join(cur, c))),
                },
            };
            let next = match &self.nodes[next].kind {
                Kind::Symlink(target) if follow_last || !is_last => {
                    if *budget == 0 {
                        return Err(PathError::Loop(self.path(next)));
                    }
                    *budget -= 1;
                    let target = target.clone();
                    let base = if target.first() == Some(&b'/') {
                        ROOT
                    } else {
                        cur
                    };
                    let tcomps: Vec<Vec<u8>> =
                        target.split(|&b| b == b'/').map(|s| s.to_vec()).collect();
                    self.walk(base, &tcomps, create, budget, true)?
                }
                _ => next,
            };
            if !is_last || follow_last {
                if !matches!(self.nodes[next].kind, Kind::Dir(_)) {
                    return Err(PathError::NotDir(self.path(next)));
                }
            }
            if let Some(layer) = create {
                self.nodes[next].last_layer = layer;
            }
            cur = next;
        }
        Ok(cur)
    }

    fn join(&self, dir: NodeId, name: &[u8]) -> String {
        let p = self.path(dir);
        let n = String::from_utf8_lossy(name);
        if p.is_empty() {
            n.into_owned()
        } else {
            format!("{p}/{n}")
        }
    }

    /// Adds (or replaces) `name` in directory `dir`.
    pub fn insert(
        &mut self,
        dir: NodeId,
        name: Vec<u8>,
        kind: Kind,
        meta: Meta,
        layer: u32,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            name: name.clone(),
            parent: dir,
            kind,
            meta,
            last_layer: layer,
        });
        if let Kind::Dir(c) = &mut self.nodes[dir].kind {
            c.insert(name, id);
        }
        id
    }

    /// Removes `name` from `dir` (the subtree becomes unreachable).
    pub fn remove(&mut self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &mut self.nodes[dir].kind {
            Kind::Dir(c) => c.remove(name),
            _ => None,
        }
    }

    /// Drops everything under `dir` that no entry of `layer` touched (an opaque whiteout).
    pub fn prune_lower(&mut self, dir: NodeId, layer: u32) {
        let kids: Vec<(Vec<u8>, NodeId)> = match &self.nodes[dir].kind {
            Kind::Dir(c) => c.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            _ => return,
        };
        for (name, id) in kids {
            if self.nodes[id].last_layer < layer {
                self.remove(dir, &name);
            } else if matches!(self.nodes[id].kind, Kind::Dir(_)) {
                self.prune_lower(id, layer);
            }
        }
    }

    /// Looks a path up without creating anything. `follow` says whether a final symlink is
    /// followed. Returns the node.
    pub fn lookup(&mut self, path: &[u8], follow: bool) -> Result<NodeId, PathError> {
        let comps: Vec<Vec<u8>> = path.split(|&b| b == b'/').map(|s| s.to_vec()).collect();
        let mut budget = MAX_LINKS;
        self.walk_final(ROOT, &comps, &mut budget, follow)
    }

    /// Looks up `path` relative to directory `base`.
    pub fn lookup_from(
        &mut self,
        base: NodeId,
        path: &[u8],
        follow: bool,
    ) -> Result<NodeId, PathError> {
        let comps: Vec<Vec<u8>> = path.split(|&b| b == b'/').map(|s| s.to_vec()).collect();
        let start = if path.first() == Some(&b'/') {
            ROOT
        } else {
            base
        };
        let mut budget = MAX_LINKS;
        self.walk_final(start, &comps, &mut budget, follow)
    }

    fn walk_final(
        &mut self,
        start: NodeId,
        comps: &[Vec<u8>],
        budget: &mut usize,
        follow: bool,
    ) -> Result<NodeId, PathError> {
        // Drop trailing empty components so "a/b/" resolves like "a/b".
        let mut end = comps.len();
        while end > 0 && (comps[end - 1].is_empty() || comps[end - 1] == b".") {
            end -= 1;
        }
        if end == 0 {
            return Ok(start);
        }
        let dir = self.walk(start, &comps[..end - 1], None, budget, true)?;
        let last = &comps[end - 1];
        if last.as_slice() == b".." {
            return Ok(self.nodes[dir].parent);
        }
        let id = self
            .child(dir, last)
            .ok_or_else(|| PathError::Missing(self.join(dir, last)))?;
        match &self.nodes[id].kind {
            Kind::Symlink(t) if follow => {
                if *budget == 0 {
                    return Err(PathError::Loop(self.path(id)));
                }
                *budget -= 1;
                let t = t.clone();
                let base = if t.first() == Some(&b'/') { ROOT } else { dir };
                let tcomps: Vec<Vec<u8>> = t.split(|&b| b == b'/').map(|s| s.to_vec()).collect();
                self.walk_final(base, &tcomps, budget, true)
            }
            _ => Ok(id),
        }
    }

    /// Every reachable node, depth first, children in byte order, the root first.
    pub fn walk_sorted(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![ROOT];
        while let Some(id) = stack.pop() {
            out.push(id);
            if let Kind::Dir(c) = &self.nodes[id].kind {
                for (_, &k) in c.iter().rev() {
                    stack.push(k);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(
            clean(b"/a/./b//c").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(clean(b"a/../b").unwrap(), vec![b"b".to_vec()]);
        assert_eq!(clean(b"../etc/passwd"), Err(PathError::Escape));
        assert_eq!(clean(b"a/../../b"), Err(PathError::Escape));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let mut t = Tree::new();
        let m = Meta::IMPLICIT_DIR;
        t.insert(
            ROOT,
            b"evil".to_vec(),
            Kind::Symlink(b"../../../../tmp".to_vec()),
            m,
            1,
        );
        let d = t.resolve_dir(&[b"evil".to_vec()], Some(1)).unwrap();
        // "../../../../tmp" clamps at the root: /tmp inside the image.
        assert_eq!(t.path(d), "tmp");
        t.insert(ROOT, b"abs".to_vec(), Kind::Symlink(b"/etc".to_vec()), m, 1);
        let d = t
            .resolve_dir(&[b"abs".to_vec(), b"x".to_vec()], Some(1))
            .unwrap();
        assert_eq!(t.path(d), "etc/x");
    }

    #[test]
    fn symlink_loops_are_errors() {
        let mut t = Tree::new();
        let m = Meta::IMPLICIT_DIR;
        t.insert(ROOT, b"a".to_vec(), Kind::Symlink(b"b".to_vec()), m, 1);
        t.insert(ROOT, b"b".to_vec(), Kind::Symlink(b"a".to_vec()), m, 1);
        assert!(matches!(
            t.resolve_dir(&[b"a".to_vec()], Some(1)),
            Err(PathError::Loop(_))
        ));
        assert!(matches!(t.lookup(b"/a", true), Err(PathError::Loop(_))));
    }

    #[test]
    fn files_are_not_directories() {
        let mut t = Tree::new();
        t.inodes.push(Inode {
            meta: Meta::IMPLICIT_DIR,
            size: 0,
            src: (0, 0),
        });
        t.insert(ROOT, b"f".to_vec(), Kind::File(0), Meta::IMPLICIT_DIR, 1);
        assert!(matches!(
            t.resolve_dir(&[b"f".to_vec()], Some(1)),
            Err(PathError::NotDir(_))
        ));
    }
}
