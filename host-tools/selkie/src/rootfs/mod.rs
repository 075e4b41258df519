//! Flattening an image's layers into one rootfs, written as a newc cpio.
//!
//! Pass 1 ([`scan`]) applies every layer's entries, whiteouts and opaque directories to a
//! metadata-only [`tree::Tree`], verifying each blob and diff_id; nothing is written. Pass 2
//! ([`write_cpio`]) writes directories, links and devices in sorted order, then streams each
//! surviving file's content straight from its layer into the cpio, so memory stays bounded
//! by the number of entries, not their size.

pub mod layer;
pub mod tree;

use crate::source::Image;
use anyhow::{bail, Context, Result};
use layer::{for_each_entry, for_each_entry_of, Flow, Prefetched};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use tree::{clean, Inode, Kind, Meta, NodeId, PathError, Tree, ROOT};

/// Character devices kept by default: (major, minor) of null, zero, full, random, urandom,
/// tty, console and ptmx (the app's /dev has them all whatever the image holds; these are
/// kept so that the rootfs lists what the image does).
pub const KEPT_DEVICES: [(u32, u32); 8] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)];

/// Options for flattening.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Keep every device node and fifo, not only the well-known character devices.
    pub keep_devices: bool,
    /// Files whose content pass 1 keeps in memory (paths without a leading `/`), and file
    /// basenames likewise, each up to `capture_limit` bytes.
    pub capture_paths: Vec<String>,
    pub capture_basenames: Vec<String>,
    pub capture_limit: u64,
}

/// The result of pass 1.
pub struct Scanned {
    pub tree: Tree,
    /// Captured contents, by (layer, entry).
    pub captured: HashMap<(u32, u32), Vec<u8>>,
    /// Devices and fifos dropped, by path.
    pub dropped: Vec<String>,
    pub entries: u64,
}

fn entry_error(
    image: &Image,
    layer: usize,
    path: &[u8],
    e: impl std::fmt::Display,
) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: entry {:?}: {e}",
        image.layer_label(&image.layers[layer]),
        String::from_utf8_lossy(path)
    )
}

/// One tar entry's metadata (and content, when captured), read off a layer.
struct EntryMeta {
    idx: u32,
    path: Vec<u8>,
    etype: tar::EntryType,
    meta: Meta,
    size: u64,
    link: Option<Vec<u8>>,
    dev: (u32, u32),
    captured: Option<Vec<u8>>,
}

/// Reads (and verifies) one layer's entries without applying them.
fn read_layer(image: &Image, li: usize, opts: &Options) -> Result<Vec<EntryMeta>> {
    let mut out = Vec::new();
    for_each_entry(image, &image.layers[li], |idx, e| {
        let path = e.path_bytes().into_owned();
        let h = e.header();
        let etype = h.entry_type();
        let meta = Meta {
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h
                .uid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            gid: h
                .gid()
                .ok()
                .and_then(|g| u32::try_from(g).ok())
                .unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
        };
        let dev = (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        let size = e.size();
        let mut captured = None;
        if matches!(etype, tar::EntryType::Regular | tar::EntryType::Continuous)
            && size <= opts.capture_limit
        {
            if let Ok(comps) = clean(&path) {
                let joined = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
                let name = comps
                    .last()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                if opts.capture_paths.contains(&joined) || opts.capture_basenames.contains(&name) {
                    let mut v = Vec::with_capacity(size as usize);
                    e.read_to_end(&mut v)
                        .map_err(|err| entry_error(image, li, &path, err))?;
                    captured = Some(v);
                }
            }
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        out.push(EntryMeta {
            idx,
            path,
            etype,
            meta,
            size,
            link,
            dev,
            captured,
        });
        Ok(Flow::Continue)
    })?;
    Ok(out)
}

/// Pass 1: applies every layer to a metadata tree, verifying every blob. Layers are read
/// (decompressed and hashed) on several threads at once, and applied in order.
pub fn scan(image: &Image, opts: &Options, mut progress: impl FnMut(usize)) -> Result<Scanned> {
    let mut st = Scanned {
        tree: Tree::new(),
        captured: HashMap::new(),
        dropped: Vec::new(),
        entries: 0,
    };
    let width = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let n = image.layers.len();
    let mut first = 0;
    while first < n {
        let wave: Vec<usize> = (first..n.min(first + width)).collect();
        let read: Vec<Result<Vec<EntryMeta>>> = std::thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&li| s.spawn(move || read_layer(image, li, opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("layer reader panicked")))
                })
                .collect()
        });
        for (li, entries) in wave.iter().copied().zip(read) {
            for e in entries? {
                apply(image, opts, &mut st, li, e)?;
            }
            progress(li + 1);
        }
        first += width;
    }
    Ok(st)
}

/// Applies one entry of layer `li` to the tree.
fn apply(image: &Image, opts: &Options, st: &mut Scanned, li: usize, e: EntryMeta) -> Result<()> {
    let tree = &mut st.tree;
    st.entries += 1;
    let lnum = li as u32 + 1; // layer numbers start at 1 so that 0 means "before any layer"
    let raw_path = e.path;
    let comps = clean(&raw_path).map_err(|err| entry_error(image, li, &raw_path, err))?;
    let (meta, etype) = (e.meta, e.etype);
    let Some((base, dirs)) = comps.split_last() else {
        // The root itself ("./"): only its metadata can change.
        if etype.is_dir() {
            tree.nodes[ROOT].meta = meta;
        }
        return Ok(());
    };
    let ctx = |err: PathError| entry_error(image, li, &raw_path, err);
    let parent = tree.resolve_dir(dirs, Some(lnum)).map_err(ctx)?;
    if let Some(hidden) = base.strip_prefix(b".wh.") {
        if hidden == b".wh..opq" {
            tree.prune_lower(parent, lnum);
        } else if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(entry_error(image, li, &raw_path, "whiteout names nothing"));
        } else if let Some(&c) = tree.children(parent).and_then(|c| c.get(hidden)) {
            if tree.nodes[c].last_layer < lnum {
                tree.remove(parent, hidden);
            }
        }
        return Ok(());
    }
    let existing = tree
        .children(parent)
        .and_then(|c| c.get(base.as_slice()).copied());
    use tar::EntryType as T;
    match etype {
        T::Directory => match existing {
            Some(id) if matches!(tree.nodes[id].kind, Kind::Dir(_)) => {
                tree.nodes[id].meta = meta;
                tree.nodes[id].last_layer = lnum;
            }
            _ => {
                tree.insert(parent, base.clone(), Kind::Dir(BTreeMap::new()), meta, lnum);
            }
        },
        T::Regular | T::Continuous => {
            if let Some(v) = e.captured {
                st.captured.insert((li as u32, e.idx), v);
            }
            tree.inodes.push(Inode {
                meta,
                size: e.size,
                src: (li as u32, e.idx),
            });
            let ino = tree.inodes.len() - 1;
            tree.insert(parent, base.clone(), Kind::File(ino), meta, lnum);
        }
        T::Symlink => {
            let target = e
                .link
                .ok_or_else(|| entry_error(image, li, &raw_path, "symlink without a target"))?;
            tree.insert(parent, base.clone(), Kind::Symlink(target), meta, lnum);
        }
        T::Link => {
            let target = e
                .link
                .ok_or_else(|| entry_error(image, li, &raw_path, "hardlink without a target"))?;
            let tcomps = clean(&target).map_err(|err| {
                entry_error(
                    image,
                    li,
                    &raw_path,
                    format!(
                        "hardlink target {:?}: {err}",
                        String::from_utf8_lossy(&target)
                    ),
                )
            })?;
            let (tbase, tdirs) = tcomps
                .split_last()
                .ok_or_else(|| entry_error(image, li, &raw_path, "hardlink to the root"))?;
            let tparent = tree.resolve_dir(tdirs, None).map_err(|err| {
                entry_error(image, li, &raw_path, format!("hardlink target: {err}"))
            })?;
            let tid = tree
                .children(tparent)
                .and_then(|c| c.get(tbase.as_slice()).copied())
                .ok_or_else(|| {
                    entry_error(
                        image,
                        li,
                        &raw_path,
                        format!(
                            "hardlink target {:?} does not exist",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
            let kind = match &tree.nodes[tid].kind {
                Kind::Dir(_) => {
                    return Err(entry_error(image, li, &raw_path, "hardlink to a directory"))
                }
                k => k.clone(),
            };
            let tmeta = tree.nodes[tid].meta;
            if tid != existing.unwrap_or(usize::MAX) {
                tree.insert(parent, base.clone(), kind, tmeta, lnum);
            }
        }
        T::Char | T::Block | T::Fifo => {
            let keep = opts.keep_devices || (etype == T::Char && KEPT_DEVICES.contains(&e.dev));
            let path = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
            if !keep {
                tracing::warn!(
                    "dropping device node or fifo /{path} (use --keep-devices to keep it)"
                );
                st.dropped.push(path);
                return Ok(());
            }
            let kind = match etype {
                T::Char => Kind::CharDev(e.dev.0, e.dev.1),
                T::Block => Kind::BlockDev(e.dev.0, e.dev.1),
                _ => Kind::Fifo,
            };
            tree.insert(parent, base.clone(), kind, meta, lnum);
        }
        other => {
            tracing::warn!(
                "{}: skipping entry {:?} of unsupported type {other:?}",
                image.layer_label(&image.layers[li]),
                String::from_utf8_lossy(&raw_path)
            );
        }
    }
    Ok(())
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

fn header(name: &str, ino: u32, mode: u32, meta: &Meta, nlink: u32) -> cpio::newc::Builder {
    cpio::newc::Builder::new(name)
        .ino(ino)
        .mode(mode | (meta.mode & 0o7777))
        .uid(meta.uid)
        .gid(meta.gid)
        .nlink(nlink)
        .mtime(u32::try_from(meta.mtime).unwrap_or(u32::MAX))
}

fn cpio_name(tree: &Tree, id: NodeId) -> String {
    if id == ROOT {
        ".".to_string()
    } else {
        tree.path(id)
    }
}

/// Pass 2: writes the flattened tree as a newc cpio; `image` must have passed [`scan`]. `replace` gives new contents for some
/// inodes (the rewritten entrypoint binary). Output order is deterministic: every
/// non-regular node in sorted depth-first order, then regular files in layer order.
pub fn write_cpio<W: Write>(
    image: &Image,
    tree: &Tree,
    replace: &HashMap<usize, Vec<u8>>,
    mut w: W,
    mut progress: impl FnMut(u64),
) -> Result<W> {
    let order = tree.walk_sorted();
    let mut names_of: BTreeMap<(u32, u32), (usize, Vec<NodeId>)> = BTreeMap::new();
    let mut ino = 0u32;
    for &id in &order {
        let node = &tree.nodes[id];
        let name = cpio_name(tree, id);
        let (mode, data, rdev, nlink): (u32, &[u8], (u32, u32), u32) = match &node.kind {
            Kind::File(i) => {
                let inode = &tree.inodes[*i];
                names_of
                    .entry(inode.src)
                    .or_insert_with(|| (*i, Vec::new()))
                    .1
                    .push(id);
                continue;
            }
            Kind::Dir(c) => {
                let subdirs = c
                    .values()
                    .filter(|&&k| matches!(tree.nodes[k].kind, Kind::Dir(_)))
                    .count();
                (S_IFDIR, &[], (0, 0), 2 + subdirs as u32)
            }
            Kind::Symlink(t) => (S_IFLNK, t.as_slice(), (0, 0), 1),
            Kind::CharDev(a, b) => (S_IFCHR, &[], (*a, *b), 1),
            Kind::BlockDev(a, b) => (S_IFBLK, &[], (*a, *b), 1),
            Kind::Fifo => (S_IFIFO, &[], (0, 0), 1),
        };
        ino += 1;
        let mut cw = header(&name, ino, mode, &node.meta, nlink)
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(w, data.len() as u32);
        cw.write_all(data)?;
        w = cw.finish()?;
    }
    // Regular files, grouped by the layer that holds their content.
    let mut by_layer: BTreeMap<u32, BTreeMap<u32, (usize, Vec<NodeId>)>> = BTreeMap::new();
    for ((l, e), v) in names_of {
        by_layer.entry(l).or_default().insert(e, v);
    }
    let mut out = Some(w);
    // Each layer is decompressed on its own thread, the next one while this one is written.
    let layers: Vec<(u32, BTreeMap<u32, (usize, Vec<NodeId>)>)> = by_layer.into_iter().collect();
    std::thread::scope(|scope| -> Result<()> {
        let mut next = layers
            .first()
            .map(|(l, _)| Prefetched::start(scope, image, &image.layers[*l as usize]));
        for (i, (l, wanted)) in layers.iter().enumerate() {
            let stream = next.take().expect("a prefetch per layer");
            next = layers
                .get(i + 1)
                .map(|(l, _)| Prefetched::start(scope, image, &image.layers[*l as usize]));
            let layer = &image.layers[*l as usize];
            let last = *wanted.keys().next_back().expect("non-empty");
            for_each_entry_of(&image.layer_label(layer), stream, |idx, e| {
                if let Some((inode_id, names)) = wanted.get(&idx) {
                    let inode = &tree.inodes[*inode_id];
                    ino += 1;
                    let nlink = names.len() as u32;
                    let mut w = out.take().expect("writer");
                    // newc convention: every name but the last carries no data.
                    for &n in &names[..names.len() - 1] {
                        w = header(&cpio_name(tree, n), ino, S_IFREG, &inode.meta, nlink)
                            .write(w, 0)
                            .finish()?;
                    }
                    let name = cpio_name(tree, names[names.len() - 1]);
                    let path_ctx = || format!("{}: file /{name}", image.layer_label(layer));
                    let mut cw;
                    if let Some(bytes) = replace.get(inode_id) {
                        cw = header(&name, ino, S_IFREG, &inode.meta, nlink)
                            .write(w, bytes.len() as u32);
                        cw.write_all(bytes)?;
                    } else {
                        let size = u32::try_from(inode.size).map_err(|_| {
                            anyhow::anyhow!("{}: over 4 GiB, which newc cannot hold", path_ctx())
                        })?;
                        cw = header(&name, ino, S_IFREG, &inode.meta, nlink).write(w, size);
                        let n = std::io::copy(&mut e.take(inode.size), &mut cw)
                            .with_context(path_ctx)?;
                        if n != inode.size {
                            bail!(
                                "{}: {n} bytes, the tar header said {}",
                                path_ctx(),
                                inode.size
                            );
                        }
                    }
                    out = Some(cw.finish()?);
                    progress(inode.size);
                }
                Ok(if idx >= last {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })?;
        }
        Ok(())
    })?;
    let w = out.take().expect("writer");
    Ok(cpio::newc::trailer(w)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// A layer from (path, type, content-or-link-target).
    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> (Vec<u8>, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_mtime(1);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, path, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
            }
        }
        let v = b.into_inner().unwrap();
        let d = Digest::of(&v);
        (v, d)
    }

    fn flatten(layers: Vec<(Vec<u8>, Digest)>) -> Vec<(String, String)> {
        let img = Image::in_memory(serde_json::json!({}), layers).unwrap();
        let s = scan(&img, &Options::default(), |_| {}).unwrap();
        let cpio = write_cpio(&img, &s.tree, &HashMap::new(), Vec::new(), |_| {}).unwrap();
        let mut out = Vec::new();
        let mut rest = &cpio[..];
        loop {
            let mut r = cpio::NewcReader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let name = r.entry().name().to_string();
            let mut data = String::new();
            r.read_to_string(&mut data).unwrap();
            out.push((name, data));
            rest = r.finish().unwrap();
        }
        out
    }

    use tar::EntryType as T;

    #[test]
    fn whiteouts_hide_only_lower_layers() {
        let l1 = layer(&[("a", T::Regular, "lower"), ("d/x", T::Regular, "x")]);
        // Same layer: "b" is added and whited out; it stays (OCI: whiteouts hide lower layers).
        let l2 = layer(&[
            ("b", T::Regular, "same"),
            (".wh.b", T::Regular, ""),
            (".wh.a", T::Regular, ""),
        ]);
        let files = flatten(vec![l1, l2]);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"b"), "{names:?}");
        assert!(!names.contains(&"a"), "{names:?}");
        assert!(names.contains(&"d/x"), "{names:?}");
    }

    #[test]
    fn opaque_keeps_entries_of_its_own_layer_in_either_order() {
        let l1 = layer(&[
            ("d/old", T::Regular, "old"),
            ("d/sub/deep", T::Regular, "deep"),
        ]);
        let l2 = layer(&[
            ("d/new", T::Regular, "new"),
            ("d/.wh..wh..opq", T::Regular, ""),
            ("d/sub/fresh", T::Regular, "f"),
        ]);
        let names: Vec<String> = flatten(vec![l1, l2]).into_iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"d/new".to_string()) && names.contains(&"d/sub/fresh".to_string()),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "d/old" || n == "d/sub/deep"),
            "{names:?}"
        );
    }

    #[test]
    fn replacing_a_directory_with_a_file_drops_its_tree() {
        let l1 = layer(&[("p/q/r", T::Regular, "r")]);
        let l2 = layer(&[("p", T::Regular, "now a file")]);
        let files = flatten(vec![l1, l2]);
        assert!(files.iter().any(|(n, d)| n == "p" && d == "now a file"));
        assert!(!files.iter().any(|(n, _)| n.starts_with("p/")));
    }

    #[test]
    fn hardlinks_share_content_until_one_name_is_rewritten() {
        let l1 = layer(&[("a", T::Regular, "shared"), ("b", T::Link, "a")]);
        let l2 = layer(&[("a", T::Regular, "new a")]);
        let files = flatten(vec![l1, l2]);
        let get = |n: &str| files.iter().find(|(m, _)| m == n).map(|(_, d)| d.clone());
        assert_eq!(get("a").as_deref(), Some("new a"));
        assert_eq!(get("b").as_deref(), Some("shared"));
    }

    #[test]
    fn output_order_is_directories_then_files_in_layer_order() {
        let l1 = layer(&[
            ("z/file", T::Regular, "1"),
            ("a/file", T::Regular, "2"),
            ("m", T::Symlink, "z"),
        ]);
        let names: Vec<String> = flatten(vec![l1]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [".", "a", "m", "z", "z/file", "a/file"]);
    }

    /// A layer of device nodes: (path, type, (major, minor)).
    fn device_layer(entries: &[(&str, tar::EntryType, (u32, u32))]) -> (Vec<u8>, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        for &(path, kind, (major, minor)) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(0o666);
            h.set_size(0);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            b.append_data(&mut h, path, &[][..]).unwrap();
        }
        let v = b.into_inner().unwrap();
        let d = Digest::of(&v);
        (v, d)
    }

    #[test]
    fn well_known_character_devices_are_kept_and_others_dropped() {
        let devices = [
            ("dev/ptmx", T::Char, (5, 2)),
            ("dev/null", T::Char, (1, 3)),
            ("dev/sda", T::Block, (8, 0)),
            ("dev/ttyS0", T::Char, (4, 64)),
        ];
        let img = Image::in_memory(serde_json::json!({}), vec![device_layer(&devices)]).unwrap();
        let s = scan(&img, &Options::default(), |_| {}).unwrap();
        assert_eq!(s.dropped, ["dev/sda", "dev/ttyS0"]);
        let names: Vec<String> = flatten(vec![device_layer(&devices)]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [".", "dev", "dev/null", "dev/ptmx"]);
    }

    #[test]
    fn a_wrong_diff_id_is_refused() {
        let (data, _) = layer(&[("a", T::Regular, "x")]);
        let img =
            Image::in_memory(serde_json::json!({}), vec![(data, Digest::of(b"other"))]).unwrap();
        let e = scan(&img, &Options::default(), |_| {}).err().unwrap();
        assert!(format!("{e:#}").contains("diff_id"), "{e:#}");
    }
}
