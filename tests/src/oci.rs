//! Building OCI images for tests with umoci (layers from real trees via `umoci repack`),
//! hand-made raw layers for what real tools refuse to make (traversal, opaque markers), and
//! reading both a packed cpio and an unpacked rootfs into comparable trees.

use crate::tools::run;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An OCI layout directory holding one tagged image, built with umoci.
pub struct OciImage {
    pub dir: PathBuf,
    pub tag: String,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

impl OciImage {
    /// A new empty arm64 image at `dir:tag`.
    pub fn new(dir: &Path, tag: &str) -> OciImage {
        if !dir.join("oci-layout").exists() {
            run(Command::new("umoci").args(["init", "--layout"]).arg(dir));
        }
        let img = OciImage { dir: dir.to_path_buf(), tag: tag.to_string() };
        run(Command::new("umoci").args(["new", "--image", &img.umoci_ref()]));
        img.config(&["--architecture", "arm64", "--os", "linux"]);
        img
    }

    pub fn umoci_ref(&self) -> String {
        format!("{}:{}", self.dir.display(), self.tag)
    }

    /// The reference selkie takes.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    /// Adds a layer: `f` edits the unpacked rootfs, and `umoci repack` records the change
    /// (new files, changed files, and whiteouts for deletions).
    pub fn layer(&self, f: impl FnOnce(&Path)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("bundle");
        run(Command::new("umoci").args(["unpack", "--image", &self.umoci_ref()]).arg(&bundle));
        f(&bundle.join("rootfs"));
        run(Command::new("umoci").args(["repack", "--image", &self.umoci_ref()]).arg(&bundle));
    }

    /// `umoci config` with the given flags.
    pub fn config(&self, args: &[&str]) {
        run(Command::new("umoci").args(["config", "--image", &self.umoci_ref()]).args(args));
    }

    /// Unpacks with umoci, the reference implementation, and returns the rootfs path.
    pub fn umoci_unpack(&self, into: &Path) -> PathBuf {
        run(Command::new("umoci").args(["unpack", "--image", &self.umoci_ref()]).arg(into));
        into.join("rootfs")
    }

    fn index(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap()
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    fn write_blob(&self, data: &[u8]) -> String {
        let d = format!("sha256:{}", sha256_hex(data));
        std::fs::write(self.blob_path(&d), data).unwrap();
        d
    }

    /// The image manifest JSON and its digest.
    pub fn manifest(&self) -> (String, serde_json::Value) {
        let idx = self.index();
        let m = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str())
            .expect("tag in index");
        let d = m["digest"].as_str().unwrap().to_string();
        let v = serde_json::from_slice(&std::fs::read(self.blob_path(&d)).unwrap()).unwrap();
        (d, v)
    }

    /// Digests of the layer blobs, bottom first.
    pub fn layer_digests(&self) -> Vec<String> {
        let (_, m) = self.manifest();
        m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
    }

    /// Rewrites the manifest through `f` and points the tag at the result (no other checks).
    pub fn edit_manifest(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let (_, mut m) = self.manifest();
        f(&mut m);
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = self.write_blob(&bytes);
        let mut idx = self.index();
        for e in idx["manifests"].as_array_mut().unwrap() {
            if e["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str() {
                e["digest"] = d.clone().into();
                e["size"] = bytes.len().into();
            }
        }
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    }

    /// Appends a hand-made layer (`tar` bytes) compressed as `compression` ("gzip", "zstd"
    /// or "none"), with a correct diff_id and digests.
    pub fn append_raw_layer(&self, tar: &[u8], compression: &str) {
        let (blob, media) = match compression {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(tar).unwrap();
                (e.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            "zstd" => (zstd::encode_all(tar, 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd"),
            _ => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        };
        let layer_digest = self.write_blob(&blob);
        let (_, m) = self.manifest();
        let cfg_digest = m["config"]["digest"].as_str().unwrap().to_string();
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(self.blob_path(&cfg_digest)).unwrap()).unwrap();
        cfg["rootfs"]["diff_ids"].as_array_mut().unwrap().push(format!("sha256:{}", sha256_hex(tar)).into());
        let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
        let new_cfg = self.write_blob(&cfg_bytes);
        self.edit_manifest(|m| {
            m["config"]["digest"] = new_cfg.into();
            m["config"]["size"] = cfg_bytes.len().into();
            m["layers"].as_array_mut().unwrap().push(serde_json::json!({
                "mediaType": media, "digest": layer_digest, "size": blob.len()
            }));
        });
    }
}

/// Builds tar archives byte by byte, so tests can write names real tools refuse.
#[derive(Default)]
pub struct RawTar {
    buf: Vec<u8>,
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }

    /// Adds an entry: `kind` is the ustar typeflag (b'0' file, b'1' hardlink, b'2' symlink,
    /// b'3' char device, b'5' directory).
    pub fn entry(&mut self, name: &str, kind: u8, mode: u32, data: &[u8], link: &str) -> &mut Self {
        self.entry_dev(name, kind, mode, data, link, (0, 0))
    }

    pub fn entry_dev(&mut self, name: &str, kind: u8, mode: u32, data: &[u8], link: &str, dev: (u32, u32)) -> &mut Self {
        let mut h = [0u8; 512];
        assert!(name.len() < 100 && link.len() < 100);
        h[..name.len()].copy_from_slice(name.as_bytes());
        let oct = |h: &mut [u8; 512], off: usize, len: usize, v: u64| {
            let s = format!("{:0width$o}\0", v, width = len - 1);
            h[off..off + len].copy_from_slice(s.as_bytes());
        };
        oct(&mut h, 100, 8, mode as u64);
        oct(&mut h, 108, 8, 0);
        oct(&mut h, 116, 8, 0);
        oct(&mut h, 124, 12, data.len() as u64);
        oct(&mut h, 136, 12, 1_700_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        oct(&mut h, 329, 8, dev.0 as u64);
        oct(&mut h, 337, 8, dev.1 as u64);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.buf.clone();
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

/// What the comparison looks at for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: char,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of a file's content, a symlink's target, or a device's numbers.
    pub content: String,
    /// Regular files' mtime.
    pub mtime: Option<u64>,
}

/// A tree: path (no leading `/`, root is ".") to info, plus the hardlink groups.
pub type Tree = (BTreeMap<String, Info>, Vec<Vec<String>>);

fn kind_of(mode: u32) -> char {
    match mode & 0o170000 {
        0o040000 => 'd',
        0o100000 => 'f',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        _ => '?',
    }
}

fn groups(mut by_ino: BTreeMap<u64, Vec<String>>) -> Vec<Vec<String>> {
    let mut g: Vec<Vec<String>> = by_ino.values_mut().filter(|v| v.len() > 1).map(|v| { v.sort(); v.clone() }).collect();
    g.sort();
    g
}

/// Reads a newc cpio as written by selkie.
pub fn cpio_tree(data: &[u8]) -> Tree {
    let mut map = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut pending_links: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut rest = data;
    loop {
        let mut r = cpio::NewcReader::new(rest).expect("cpio entry");
        if r.entry().is_trailer() {
            break;
        }
        let e = r.entry().clone();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut content).unwrap();
        rest = r.finish().unwrap();
        let name = e.name().to_string();
        let kind = kind_of(e.mode());
        let content_s = match kind {
            'f' => sha256_hex(&content),
            'l' => String::from_utf8_lossy(&content).into_owned(),
            'c' | 'b' => format!("{}:{}", e.rdev_major(), e.rdev_minor()),
            _ => String::new(),
        };
        if kind == 'f' {
            by_ino.entry(e.ino() as u64).or_default().push(name.clone());
            if e.nlink() > 1 && content.is_empty() {
                pending_links.entry(e.ino() as u64).or_default().push(name.clone());
            }
        }
        map.insert(
            name,
            Info {
                kind,
                perm: e.mode() & 0o7777,
                uid: e.uid(),
                gid: e.gid(),
                content: content_s,
                mtime: (kind == 'f').then_some(e.mtime() as u64),
            },
        );
    }
    // newc puts a hardlinked file's data on its last name: give every name that content.
    for (ino, names) in &by_ino {
        if names.len() > 1 {
            let with_data = names.iter().find(|n| !pending_links.get(ino).map(|p| p.contains(n)).unwrap_or(false));
            if let Some(src) = with_data.and_then(|n| map.get(n)).cloned() {
                for n in names {
                    map.insert(n.clone(), src.clone());
                }
            }
        }
    }
    (map, groups(by_ino))
}

/// Reads an unpacked rootfs directory the same way.
pub fn dir_tree(root: &Path) -> Tree {
    let mut map = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), ".".to_string())];
    while let Some((p, name)) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let kind = kind_of(md.mode());
        let content = match kind {
            'f' => sha256_hex(&std::fs::read(&p).unwrap()),
            'l' => std::fs::read_link(&p).unwrap().to_string_lossy().into_owned(),
            'c' | 'b' => {
                let r = md.rdev();
                format!("{}:{}", (r >> 8) & 0xfff, (r & 0xff) | ((r >> 12) & 0xfff00))
            }
            _ => String::new(),
        };
        if kind == 'f' && md.nlink() > 1 {
            by_ino.entry(md.ino()).or_default().push(name.clone());
        }
        if kind == 'd' {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let n = e.file_name().to_string_lossy().into_owned();
                let child = if name == "." { n } else { format!("{name}/{n}") };
                stack.push((e.path(), child));
            }
        }
        map.insert(
            name,
            Info {
                kind,
                perm: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                content,
                mtime: (kind == 'f').then_some(md.mtime() as u64),
            },
        );
    }
    (map, groups(by_ino))
}

/// Asserts two trees are equal, listing every difference.
pub fn assert_same_tree(ours: &Tree, reference: &Tree) {
    let mut diffs = Vec::new();
    for (k, v) in &reference.0 {
        match ours.0.get(k) {
            None => diffs.push(format!("missing in selkie's cpio: {k} {v:?}")),
            Some(o) if o != v => diffs.push(format!("{k}: selkie {o:?} vs reference {v:?}")),
            _ => {}
        }
    }
    for k in ours.0.keys() {
        if !reference.0.contains_key(k) {
            diffs.push(format!("extra in selkie's cpio: {k}"));
        }
    }
    if ours.1 != reference.1 {
        diffs.push(format!("hardlink groups: selkie {:?} vs reference {:?}", ours.1, reference.1));
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}
