//! Streaming one layer: detect its compression (gzip, zstd or none) by magic, decompress,
//! walk the tar entries, and check both the blob digest and the diff_id at the end.

use crate::digest::{Digest, HashingReader};
use crate::source::{Image, Layer};
use anyhow::{bail, Context, Result};
use std::io::{self, BufRead, BufReader, Read};

pub enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn open(mut r: R) -> io::Result<Decoder<R>> {
        let head = r.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(r))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?)
        } else {
            Decoder::Plain(r)
        })
    }

    fn inner_mut(&mut self) -> &mut R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.get_mut(),
            Decoder::Zstd(r) => r.get_mut(),
        }
    }
}

/// What the entry callback wants next.
pub enum Flow {
    Continue,
    /// Stop reading this layer (skips the end-of-layer checks; use only on a layer already
    /// verified).
    Stop,
}

/// The raw layer stream as pass 1 reads it: verified blob, decompressed, hashed.
pub type Verified<'a> = HashingReader<Decoder<BufReader<Box<dyn Read + Send + 'a>>>>;

/// Calls `f` with each tar entry of `layer` and its index. When every entry was visited,
/// checks the decompressed stream against the diff_id and drains the blob so its size and
/// digest are checked too.
pub fn for_each_entry<F>(image: &Image, layer: &Layer, f: F) -> Result<()>
where
    F: FnMut(u32, &mut tar::Entry<'_, &mut Verified<'_>>) -> Result<Flow>,
{
    let label = image.layer_label(layer);
    let raw = image.open_layer(layer)?;
    let dec =
        Decoder::open(BufReader::with_capacity(256 << 10, raw)).with_context(|| label.clone())?;
    let mut hashed = HashingReader::new(dec);
    if !for_each_entry_of(&label, &mut hashed, f)? {
        return Ok(());
    }
    // The tar end marker may be followed by padding: hash it too, then drain the blob.
    io::copy(&mut hashed, &mut io::sink()).with_context(|| label.clone())?;
    let got = Digest::from_hasher(std::mem::take(&mut hashed.hasher));
    if got != layer.diff_id {
        bail!(
            "{label}: uncompressed content is {got}, but the config's diff_id is {}",
            layer.diff_id
        );
    }
    let mut dec = hashed.inner;
    io::copy(dec.inner_mut(), &mut io::sink()).with_context(|| label.clone())?;
    Ok(())
}

/// A layer decompressed on its own thread, ahead of the reader: the bytes arrive in
/// chunks through a bounded channel (at most `CHUNKS` × `CHUNK` bytes in flight). For a
/// second pass over layers pass 1 verified.
pub struct Prefetched {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

const CHUNK: usize = 256 << 10;
const CHUNKS: usize = 16;

impl Prefetched {
    /// Starts decompressing `layer` on a thread of `scope`.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        image: &'env Image,
        layer: &'env Layer,
    ) -> Prefetched {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS);
        scope.spawn(move || {
            let label = image.layer_label(layer);
            let dec = image.open_layer_unverified(layer).and_then(|raw| {
                Decoder::open(BufReader::with_capacity(CHUNK, raw)).with_context(|| label.clone())
            });
            let mut dec = match dec {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("{e:#}"))));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0;
                while n < CHUNK {
                    match dec.read(&mut buf[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                buf.truncate(n);
                // A closed channel means the reader stopped early: nothing more to do.
                if tx.send(Ok(buf)).is_err() || n < CHUNK {
                    return;
                }
            }
        });
        Prefetched {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for Prefetched {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.len() < CHUNK;
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("layer decompression thread ended early")),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Calls `f` with each tar entry read from `stream` (already decompressed), labelled
/// `label` in errors. Returns whether every entry was visited (no [`Flow::Stop`]).
pub fn for_each_entry_of<R: Read, F>(label: &str, stream: R, mut f: F) -> Result<bool>
where
    F: FnMut(u32, &mut tar::Entry<'_, R>) -> Result<Flow>,
{
    let mut ar = tar::Archive::new(stream);
    let entries = ar.entries().with_context(|| format!("{label}: not a tar stream"))?;
    for (i, e) in entries.enumerate() {
        let mut e = e.with_context(|| format!("{label}: reading tar entry {}", i + 1))?;
        let idx = u32::try_from(i).context("too many entries")?;
        if let Flow::Stop = f(idx, &mut e)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Like [`for_each_entry`], without any checks: for a layer that pass 1 verified (the
/// digests would cost as much as the decompression again).
pub fn for_each_entry_verified_before<F>(image: &Image, layer: &Layer, f: F) -> Result<()>
where
    F: FnMut(u32, &mut tar::Entry<'_, Decoder<BufReader<Box<dyn Read + Send + '_>>>>) -> Result<Flow>,
{
    let label = image.layer_label(layer);
    let raw = image.open_layer_unverified(layer)?;
    let dec = Decoder::open(BufReader::with_capacity(256 << 10, raw)).with_context(|| label.clone())?;
    for_each_entry_of(&label, dec, f).map(|_| ())
}
