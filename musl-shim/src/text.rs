//! Where an app's syscalls are: the trap tables of the ELFs it runs.
//!
//! seL4 reads its syscall number from x7, which musl and glibc leave arbitrary, so no app
//! may execute its own `svc #0` on seL4 (README.md, Reaching the root server safely). At
//! pack time every `svc #0` in the executable code of every ELF of the image is rewritten
//! into `udf #0x5e1c` ([`UDF_WORD`]), each file with its own trap table. The rootfs keeps
//! the image's bytes; the bundle's **text store** (a member `<rootfs>.text`, written by
//! [`build`] and read by [`TextStore`]) holds, per ELF, the file offsets of the rewritten
//! words and the rewritten executable segments, page-aligned, so that a runner can map
//! them without a copy. A `udf` is a syscall only at an address the trap table of the
//! mapping it lies in names ([`crate::mm::MemoryMap::is_trap`]).
//!
//! Code that was not in the image (a file the app wrote and then maps executable) has no
//! pack-time table; [`scan`] finds its `svc`s when it is mapped, by the same rule as the
//! packer minus symbols.
//!
//! Store layout (little-endian):
//! ```text
//! 0   "SELKIETX"  u32 version (1)  u32 count
//! 16  count records of 48 bytes, ascending by cpio offset:
//!       u64 cpio_off   u64 file_len   u64 traps_at   u64 n_traps   u64 segs_at   u64 n_segs
//!     traps_at: n_traps u64 file offsets, ascending
//!     segs_at:  n_segs entries of 24 bytes: u64 file_off (page-aligned), u64 len, u64 data_at
//!     data_at:  page-aligned (from the member's start): the file's bytes from file_off, rewritten
//! ```
//! `cpio_off` is where the file's data starts in the app's rootfs cpio; with the file's
//! length it names the file whatever path it is reached by.

use alloc::vec::Vec;

/// The `svc #0` instruction word.
pub const SVC0: u32 = 0xd400_0001;
/// `udf #0x5e1c` ("5e1c" for selkie): what every `svc #0` of an app becomes.
pub const UDF_WORD: u32 = 0x5e1c;
pub const MAGIC: &[u8; 8] = b"SELKIETX";
pub const VERSION: u32 = 1;
const PAGE: u64 = 4096;
const HEADER: usize = 16;
const RECORD: usize = 48;
const SEG: usize = 24;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
// Not inlined: the text store is read at boot, where under QEMU's TCG every inlined copy
// of this (byte loads on a strict-alignment target) is translated anew (issue 11).
#[inline(never)]
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

/// Why a store cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    Magic,
    Version(u32),
    /// A record, table or segment lies outside the member or is out of order.
    Bounds(&'static str),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Magic => write!(f, "not a selkie text store (no SELKIETX magic)"),
            StoreError::Version(v) => write!(f, "text store version {v}, expected {VERSION}"),
            StoreError::Bounds(what) => write!(f, "text store: {what}"),
        }
    }
}

/// A pack-time text store, checked when parsed so that lookups cannot fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextStore<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One rewritten executable segment of a file: its bytes from `file_off` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSegment<'a> {
    pub file_off: u64,
    pub bytes: &'a [u8],
}

/// What the store holds for one file.
#[derive(Debug, Clone, Copy)]
pub struct FileText<'a> {
    traps: &'a [u8],
    segs: &'a [u8],
    store: &'a [u8],
}

impl<'a> FileText<'a> {
    /// File offsets of the rewritten words, ascending.
    pub fn traps(&self) -> impl Iterator<Item = u64> + 'a {
        self.traps.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
    }
    pub fn trap_count(&self) -> usize {
        self.traps.len() / 8
    }
    /// The rewritten executable segments.
    pub fn segments(&self) -> impl Iterator<Item = StoredSegment<'a>> + 'a {
        let store = self.store;
        self.segs.chunks_exact(SEG).filter_map(move |c| {
            let (off, len, at) = (u64_at(c, 0)?, u64_at(c, 8)?, u64_at(c, 16)?);
            let at = usize::try_from(at).ok()?;
            Some(StoredSegment { file_off: off, bytes: store.get(at..at.checked_add(usize::try_from(len).ok()?)?)? })
        })
    }
    /// The stored (rewritten) bytes from file offset `off` to the end of the segment that
    /// holds it.
    pub fn code_at(&self, off: u64) -> Option<&'a [u8]> {
        let s = self.segments().find(|s| s.file_off <= off && off < s.file_off + s.bytes.len() as u64)?;
        s.bytes.get(usize::try_from(off - s.file_off).ok()?..)
    }

    /// The stored (rewritten) bytes for file range `off..off + len`, when one segment
    /// holds all of it.
    pub fn bytes(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let end = off.checked_add(len)?;
        self.segments().find(|s| s.file_off <= off && end <= s.file_off + s.bytes.len() as u64).and_then(|s| {
            let a = usize::try_from(off - s.file_off).ok()?;
            s.bytes.get(a..a + usize::try_from(len).ok()?)
        })
    }
}

impl<'a> TextStore<'a> {
    /// Reads and checks a store.
    pub fn parse(bytes: &'a [u8]) -> Result<TextStore<'a>, StoreError> {
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(StoreError::Magic);
        }
        let version = u32_at(bytes, 8).ok_or(StoreError::Magic)?;
        if version != VERSION {
            return Err(StoreError::Version(version));
        }
        let count = u32_at(bytes, 12).ok_or(StoreError::Magic)? as usize;
        let table_end = count.checked_mul(RECORD).and_then(|n| n.checked_add(HEADER));
        if table_end.is_none_or(|e| e > bytes.len()) {
            return Err(StoreError::Bounds("the record table is cut short"));
        }
        let store = TextStore { bytes, count };
        let mut prev: Option<u64> = None;
        for i in 0..count {
            let (cpio_off, _len, traps_at, n_traps, segs_at, n_segs) = store.record(i).ok_or(StoreError::Bounds("a record"))?;
            if prev.is_some_and(|p| p >= cpio_off) {
                return Err(StoreError::Bounds("records are not in ascending cpio order"));
            }
            prev = Some(cpio_off);
            let range = |at: u64, n: u64, size: u64| -> Option<()> {
                let end = at.checked_add(n.checked_mul(size)?)?;
                (end <= bytes.len() as u64).then_some(())
            };
            range(traps_at, n_traps, 8).ok_or(StoreError::Bounds("a trap table"))?;
            range(segs_at, n_segs, SEG as u64).ok_or(StoreError::Bounds("a segment table"))?;
            let traps = &bytes[traps_at as usize..(traps_at + n_traps * 8) as usize];
            let sorted = traps.chunks_exact(8).zip(traps.chunks_exact(8).skip(1)).all(|(a, b)| u64_at(a, 0) < u64_at(b, 0));
            if !sorted {
                return Err(StoreError::Bounds("a trap table is not ascending"));
            }
            for k in 0..n_segs as usize {
                let at = segs_at as usize + k * SEG;
                let (off, len, data) = (u64_at(bytes, at), u64_at(bytes, at + 8), u64_at(bytes, at + 16));
                let ok = matches!((off, len, data), (Some(off), Some(len), Some(data))
                    if off % PAGE == 0 && data % PAGE == 0 && data.checked_add(len).is_some_and(|e| e <= bytes.len() as u64));
                if !ok {
                    return Err(StoreError::Bounds("a segment"));
                }
            }
        }
        Ok(store)
    }

    fn record(&self, i: usize) -> Option<(u64, u64, u64, u64, u64, u64)> {
        let at = HEADER + i * RECORD;
        let f = |k: usize| u64_at(self.bytes, at + 8 * k);
        Some((f(0)?, f(1)?, f(2)?, f(3)?, f(4)?, f(5)?))
    }

    /// Files in the store.
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// What the store holds for the file whose data is at `cpio_off` in the rootfs cpio
    /// and is `len` bytes long.
    pub fn get(&self, cpio_off: u64, len: u64) -> Option<FileText<'a>> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (off, flen, traps_at, n_traps, segs_at, n_segs) = self.record(mid)?;
            if off == cpio_off {
                if flen != len {
                    return None;
                }
                let b = self.bytes;
                return Some(FileText {
                    traps: b.get(traps_at as usize..(traps_at + n_traps * 8) as usize)?,
                    segs: b.get(segs_at as usize..(segs_at + n_segs * SEG as u64) as usize)?,
                    store: b,
                });
            }
            if off < cpio_off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        None
    }
}

/// One file for [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cpio_off: u64,
    pub file_len: u64,
    /// File offsets of the rewritten words.
    pub traps: Vec<u64>,
    /// (page-aligned file offset, rewritten bytes from there).
    pub segments: Vec<(u64, Vec<u8>)>,
}

/// Writes a store (see the module doc). Entries may come in any order.
pub fn build(entries: &[Entry]) -> Vec<u8> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| e.cpio_off);
    let page_up = |x: usize| (x + PAGE as usize - 1) & !(PAGE as usize - 1);
    let mut tables = HEADER + RECORD * order.len();
    let mut places = Vec::with_capacity(order.len());
    for e in &order {
        let traps_at = tables;
        tables += 8 * e.traps.len();
        let segs_at = tables;
        tables += SEG * e.segments.len();
        places.push((traps_at, segs_at));
    }
    let mut data_at = page_up(tables);
    let mut out = Vec::with_capacity(data_at);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(order.len() as u32).to_le_bytes());
    for (e, &(traps_at, segs_at)) in order.iter().zip(&places) {
        for v in [e.cpio_off, e.file_len, traps_at as u64, e.traps.len() as u64, segs_at as u64, e.segments.len() as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut data_places = Vec::new();
    for e in &order {
        let mut sorted = e.traps.clone();
        sorted.sort_unstable();
        sorted.dedup();
        debug_assert_eq!(sorted.len(), e.traps.len(), "duplicate trap offsets");
        for t in &sorted {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for (off, bytes) in &e.segments {
            for v in [*off, bytes.len() as u64, data_at as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            data_places.push((data_at, bytes));
            data_at = page_up(data_at + bytes.len());
        }
    }
    for (at, bytes) in data_places {
        out.resize(at, 0);
        out.extend_from_slice(bytes);
    }
    // Whole pages: a segment's last page, mapped as is, shows zeros after it.
    out.resize(page_up(out.len()), 0);
    out
}

/// The regular files of a rootfs cpio, as the runners' tree holds them: name, where the
/// data starts in the cpio (what [`TextStore`] is keyed by) and the data.
pub fn cpio_files(cpio: &[u8]) -> impl Iterator<Item = (&str, u64, &[u8])> {
    let base = cpio.as_ptr() as usize;
    cpio_reader::iter_files(cpio)
        .filter(|e| e.mode().bits() & 0o170000 == 0o100000 && !e.file().is_empty())
        .map(move |e| (e.name(), (e.file().as_ptr() as usize - base) as u64, e.file()))
}

/// File ranges (start, end) of the allocated executable sections; `None` without usable
/// section headers.
fn code_sections(elf: &[u8]) -> Option<Vec<(u64, u64)>> {
    const SHF_ALLOC: u64 = 0x2;
    const SHF_EXECINSTR: u64 = 0x4;
    const SHT_NOBITS: u32 = 8;
    let shoff = usize::try_from(u64_at(elf, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    if shoff == 0 || shnum == 0 || shentsize < 64 {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..shnum {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let (ty, flags, off, size) = (u32_at(elf, at + 4)?, u64_at(elf, at + 8)?, u64_at(elf, at + 24)?, u64_at(elf, at + 32)?);
        if ty != SHT_NOBITS && flags & (SHF_EXECINSTR | SHF_ALLOC) == SHF_EXECINSTR | SHF_ALLOC && size > 0 {
            out.push((off, off.saturating_add(size)));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The file offsets of the `svc #0` words in `elf`'s code, ascending: PT_LOADs with PF_X,
/// at 4-byte aligned addresses, narrowed to the executable sections when the ELF has
/// section headers. `None` when `elf` is not an ELF the loader reads, or the list cannot
/// be allocated.
pub fn scan(elf: &[u8]) -> Option<Vec<u64>> {
    let plan = crate::start::LoadPlan::parse(elf).ok()?;
    let sections = code_sections(elf);
    let whole = [(0u64, u64::MAX)];
    let each = |f: &mut dyn FnMut(u64)| {
        for s in plan.segments.iter().filter(|s| s.prot.x()) {
            let seg = (s.offset, s.offset.saturating_add(s.filesz));
            let secs: &[(u64, u64)] = sections.as_deref().unwrap_or(&whole);
            for (a, b) in secs.iter().map(|&(a, b)| (a.max(seg.0), b.min(seg.1))).filter(|(a, b)| a < b) {
                let va = |off: u64| s.vaddr.wrapping_add(off - s.offset);
                let mut off = a + (4 - va(a) % 4) % 4;
                while off.saturating_add(4) <= b {
                    let Some(w) = usize::try_from(off).ok().and_then(|o| u32_at(elf, o)) else { break };
                    if w == SVC0 {
                        f(off);
                    }
                    off += 4;
                }
            }
        }
    };
    let mut n = 0usize;
    each(&mut |_| n += 1);
    let mut found = Vec::new();
    found.try_reserve_exact(n).ok()?;
    each(&mut |off| found.push(off));
    found.sort_unstable();
    found.dedup();
    Some(found)
}

/// The ELF note the selkie SDK's musl carries (sdk/musl-x7.patch): name `"selkie"`, this
/// type, a 4-byte version. It says the file's syscalls reach the root server without a
/// rewrite, so its code is neither rewritten nor scanned. Version 1: every `svc #0` has
/// the number in x7 as well as x8, and arrives as an UnknownSyscall fault whose Syscall
/// word is the Linux number. Version 2 also makes syscalls of up to four arguments as an
/// seL4_Call ([`SDK_CALL_LABEL`]), which seL4's IPC fastpath carries.
pub const SDK_NOTE_TYPE: u32 = 1;
pub const SDK_NOTE_NAME: &[u8] = b"selkie\0";
/// The label of an SDK syscall made as an seL4_Call (version 2 of the note; up to four
/// arguments): `SDK_CALL_LABEL | nr`, the arguments as the message's words (x2..x5),
/// on CPtr 1, the thread's own endpoint.
pub const SDK_CALL_LABEL: u64 = 0x5e10_0000;
/// The bits of such a label that hold the syscall number.
pub const SDK_CALL_NR: u64 = 0xf_ffff;
/// The label of the one-word reply that returns such a syscall's result (in x2; the
/// SDK's musl tells it by x1, the reply's message info).
pub const SDK_REPLY_LABEL: u64 = 0x5e1;

/// Whether `elf` is built with the selkie SDK: a PT_NOTE segment holding the
/// [`SDK_NOTE_TYPE`] note with version 1 or later. Anything malformed is `false`.
pub fn sdk_abi(elf: &[u8]) -> bool {
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(elf, 32), u16_at(elf, 54), u16_at(elf, 56)) else { return false };
    const PT_NOTE: u32 = 4;
    for i in 0..usize::from(phnum) {
        let Some(at) = usize::try_from(phoff).ok().and_then(|o| o.checked_add(i * usize::from(phentsize))) else { return false };
        if u32_at(elf, at) != Some(PT_NOTE) {
            continue;
        }
        let (Some(off), Some(size)) = (u64_at(elf, at + 8), u64_at(elf, at + 32)) else { continue };
        let (Ok(off), Ok(size)) = (usize::try_from(off), usize::try_from(size)) else { continue };
        let Some(notes) = off.checked_add(size).and_then(|end| elf.get(off..end)) else { continue };
        let mut n = 0;
        while n + 12 <= notes.len() {
            let (Some(namesz), Some(descsz), Some(ty)) = (u32_at(notes, n), u32_at(notes, n + 4), u32_at(notes, n + 8)) else { break };
            let name_at = n + 12;
            let desc_at = name_at + (namesz as usize).next_multiple_of(4);
            let next = desc_at + (descsz as usize).next_multiple_of(4);
            if notes.get(name_at..name_at + namesz as usize) == Some(SDK_NOTE_NAME) && ty == SDK_NOTE_TYPE && descsz >= 4 {
                return u32_at(notes, desc_at).is_some_and(|v| v >= 1);
            }
            if next <= n {
                break;
            }
            n = next;
        }
    }
    false
}

/// A cheap 64-bit hash of a file's bytes (not cryptographic: it keys one app's own cache
/// of [`scan`] results).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Vec<Entry> {
        vec![
            Entry { cpio_off: 900, file_len: 10_000, traps: vec![4100, 4200], segments: vec![(4096, vec![7u8; 5000])] },
            Entry { cpio_off: 120, file_len: 300, traps: vec![], segments: vec![] },
        ]
    }

    #[test]
    fn round_trip() {
        let bytes = build(&sample());
        let s = TextStore::parse(&bytes).unwrap();
        assert_eq!(s.len(), 2);
        let t = s.get(900, 10_000).unwrap();
        assert_eq!(t.traps().collect::<Vec<_>>(), vec![4100, 4200]);
        let segs: Vec<_> = t.segments().collect();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].file_off, 4096);
        assert_eq!(segs[0].bytes, &[7u8; 5000][..]);
        // Page-aligned in the member.
        let at = segs[0].bytes.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(at % 4096, 0);
        assert_eq!(t.bytes(4100, 8), Some(&[7u8; 8][..]));
        assert_eq!(t.bytes(4000, 200), None, "starts before the segment");
        assert_eq!(s.get(120, 300).unwrap().trap_count(), 0);
        assert!(s.get(900, 9_999).is_none(), "length must match");
        assert!(s.get(121, 300).is_none());
    }

    #[test]
    fn damaged_stores_are_refused() {
        let bytes = build(&sample());
        assert_eq!(TextStore::parse(b"SELKIETY").unwrap_err(), StoreError::Magic);
        let mut v = bytes.clone();
        v[8] = 9;
        assert_eq!(TextStore::parse(&v).unwrap_err(), StoreError::Version(9));
        assert!(matches!(TextStore::parse(&bytes[..40]), Err(StoreError::Bounds(_))));
        // A segment pointing past the end.
        let mut v = bytes.clone();
        v.truncate(4096 + 4000);
        assert!(matches!(TextStore::parse(&v), Err(StoreError::Bounds(_))));
        // Records out of order.
        let mut v = bytes.clone();
        v[16..24].copy_from_slice(&5000u64.to_le_bytes());
        assert!(matches!(TextStore::parse(&v), Err(StoreError::Bounds(_))));
    }
}
