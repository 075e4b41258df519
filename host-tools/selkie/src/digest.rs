//! Content digests: parsing `sha256:<hex>` and a reader that verifies size and digest as it
//! streams, failing on the first byte past the promised size and at EOF on any mismatch.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read};

/// A sha256 content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms are refused by name.
    pub fn parse(s: &str) -> anyhow::Result<Digest> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("digest {s:?} has no algorithm prefix"))?;
        if alg != "sha256" {
            anyhow::bail!("digest {s:?}: algorithm {alg:?} is not supported (only sha256)");
        }
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            anyhow::bail!("digest {s:?} is not 64 lowercase hex digits");
        }
        Ok(Digest { hex: hex.to_string() })
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest { hex: hex::encode(Sha256::digest(data)) }
    }

    pub fn from_hasher(h: Sha256) -> Digest {
        Digest { hex: hex::encode(h.finalize()) }
    }

    /// The hex part, as used for blob file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Wraps a blob's byte stream and checks it against its descriptor. `what` names the blob in
/// errors (e.g. `layer 2 sha256:ab…`).
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    size: Option<u64>,
    read: u64,
    what: String,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: Option<u64>, what: impl Into<String>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            size,
            read: 0,
            what: what.into(),
            done: false,
        }
    }

    fn fail(&self, msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", self.what))
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        // Never read more than one byte past the promised size: enough to catch a lie.
        let want = match self.size {
            Some(s) => buf.len().min((s - self.read.min(s) + 1) as usize),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if let Some(s) = self.size {
            if self.read > s {
                return Err(self.fail(format!("blob is larger than its descriptor's size {s}")));
            }
        }
        if n == 0 {
            self.done = true;
            if let Some(s) = self.size {
                if self.read != s {
                    return Err(self.fail(format!(
                        "blob is truncated: {} bytes, descriptor says {s}",
                        self.read
                    )));
                }
            }
            let got = Digest::from_hasher(std::mem::take(&mut self.hasher));
            if got != self.expected {
                return Err(self.fail(format!(
                    "digest mismatch: content is {got}, expected {}",
                    self.expected
                )));
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes whatever passes through, for diff_id checks on decompressed layers.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), read: 0 }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads `r` to the end and verifies it, returning the bytes (for small blobs: manifests, configs).
pub fn read_verified(r: impl Read, expected: &Digest, size: Option<u64>, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = size {
        if s > limit {
            anyhow::bail!("{what}: size {s} is over the {limit}-byte limit for this kind of blob");
        }
    }
    let mut v = Vec::new();
    VerifyingReader::new(r, expected.clone(), size, what)
        .take(limit + 1)
        .read_to_end(&mut v)?;
    if v.len() as u64 > limit {
        anyhow::bail!("{what}: blob is over the {limit}-byte limit for this kind of blob");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &[u8], digest: &Digest, size: Option<u64>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyingReader::new(data, digest.clone(), size, "blob X").read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn accepts_matching_content() {
        let d = Digest::of(b"hello");
        assert_eq!(check(b"hello", &d, Some(5)).unwrap(), b"hello");
        assert_eq!(check(b"hello", &d, None).unwrap(), b"hello");
    }

    #[test]
    fn rejects_mismatch_truncation_and_lies() {
        let d = Digest::of(b"hello");
        let e = check(b"hellO", &d, Some(5)).unwrap_err().to_string();
        assert!(e.contains("blob X") && e.contains("digest mismatch"), "{e}");
        let e = check(b"hell", &d, Some(5)).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = check(b"hello!", &d, Some(5)).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn parses_digests() {
        let hex = "a".repeat(64);
        assert_eq!(Digest::parse(&format!("sha256:{hex}")).unwrap().hex(), hex);
        assert!(Digest::parse("sha512:aa").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse("sha256:../../etc").is_err());
    }
}
