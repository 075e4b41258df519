//! The content-addressed blob cache for registry pulls. It lives in `$SELKIE_CACHE`, else
//! `$XDG_CACHE_HOME/selkie`, else `~/.cache/selkie`, and keeps blobs as `blobs/sha256/<hex>`
//! (the layout of an OCI image layout's blobs, so [`OciLayout`] reads it). A blob is written
//! to a temporary name and renamed into place only after its size and digest were checked,
//! so every file the cache holds under a digest's name has that digest.

use crate::digest::Digest;
use crate::source::OciLayout;
use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The user's cache (see the module doc), created if missing.
    pub fn open() -> Result<Cache> {
        let root = if let Some(d) = std::env::var_os("SELKIE_CACHE").filter(|d| !d.is_empty()) {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(d).join("selkie")
        } else if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(h).join(".cache").join("selkie")
        } else {
            bail!("no cache directory: set SELKIE_CACHE, XDG_CACHE_HOME or HOME");
        };
        Cache::at(&root)
    }

    /// A cache rooted at `root`, created if missing.
    pub fn at(root: &Path) -> Result<Cache> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating the cache {}", blobs.display()))?;
        Ok(Cache { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `d` is (or would be) stored.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    /// Whether blob `d` is cached (with size `size`, when given).
    pub fn has(&self, d: &Digest, size: Option<u64>) -> bool {
        match std::fs::metadata(self.blob_path(d)) {
            Ok(m) => m.is_file() && size.is_none_or(|s| s == m.len()),
            Err(_) => false,
        }
    }

    /// The cache as a blob source (blobs opened by digest).
    pub fn source(&self) -> OciLayout {
        OciLayout::new(&self.root)
    }

    /// Starts writing blob `d`; `what` names it in errors.
    pub fn writer(&self, d: &Digest, size: Option<u64>, what: &str) -> Result<BlobWriter> {
        let dir = self.root.join("blobs").join("sha256");
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        Ok(BlobWriter {
            tmp,
            hasher: Sha256::new(),
            written: 0,
            expected: d.clone(),
            size,
            what: what.to_string(),
            dest: self.blob_path(d),
        })
    }

    /// Stores `bytes` as blob `d`, after checking they are.
    pub fn insert(&self, d: &Digest, bytes: &[u8], what: &str) -> Result<PathBuf> {
        let mut w = self.writer(d, Some(bytes.len() as u64), what)?;
        w.write(bytes)?;
        w.finish()
    }

    /// Removes every cached blob; returns how many and their total size.
    pub fn prune(&self) -> Result<(u64, u64)> {
        let blobs = self.root.join("blobs");
        let (mut n, mut bytes) = (0, 0);
        let dir = blobs.join("sha256");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if let Ok(m) = e.metadata() {
                    n += 1;
                    bytes += m.len();
                }
            }
        }
        if blobs.exists() {
            std::fs::remove_dir_all(&blobs).with_context(|| format!("removing {}", blobs.display()))?;
        }
        Ok((n, bytes))
    }
}

/// A blob being written into the cache; it appears under its digest only if [`finish`]
/// finds the promised size and digest.
///
/// [`finish`]: BlobWriter::finish
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
    expected: Digest,
    size: Option<u64>,
    what: String,
    dest: PathBuf,
}

impl BlobWriter {
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.written += chunk.len() as u64;
        if let Some(s) = self.size.filter(|&s| self.written > s) {
            bail!("{}: blob is larger than its descriptor's size {s}", self.what);
        }
        self.hasher.update(chunk);
        self.tmp.write_all(chunk).with_context(|| format!("writing {}", self.tmp.path().display()))
    }

    /// Checks size and digest, then renames the blob into place and returns its path.
    pub fn finish(self) -> Result<PathBuf> {
        if let Some(s) = self.size.filter(|&s| self.written != s) {
            bail!("{}: blob is truncated: {} bytes, descriptor says {s}", self.what, self.written);
        }
        let got = Digest::from_hasher(self.hasher);
        if got != self.expected {
            bail!("{}: digest mismatch: content is {got}, expected {}", self.what, self.expected);
        }
        self.tmp
            .persist(&self.dest)
            .with_context(|| format!("storing {} in the cache", self.dest.display()))?;
        Ok(self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_only_verified_blobs_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::at(dir.path()).unwrap();
        let d = Digest::of(b"blob");
        let e = c.insert(&d, b"blub", "blob X").unwrap_err().to_string();
        assert!(e.contains("blob X") && e.contains("digest mismatch"), "{e}");
        assert!(!c.has(&d, None));
        let mut w = c.writer(&d, Some(3), "blob Y").unwrap();
        assert!(w.write(b"blob").unwrap_err().to_string().contains("larger than"));
        drop(w);
        assert!(!c.has(&d, None));
        c.insert(&d, b"blob", "blob Z").unwrap();
        assert!(c.has(&d, Some(4)) && !c.has(&d, Some(5)));
        // Only the blob itself is left: failed writes leave no temp files.
        assert_eq!(std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 1);
        assert_eq!(c.prune().unwrap(), (1, 4));
        assert!(!c.has(&d, None));
    }
}
