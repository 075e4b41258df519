//! Pack-time rewrite of `svc #0` into a faulting `udf`, for aarch64 ELFs (programs, static
//! or dynamic, and shared libraries).
//!
//! seL4 reads its syscall number from x7, which musl leaves holding garbage, so an app's
//! unmodified `svc #0` is unsafe on seL4 (see README.md, Reaching the root server safely). Every `svc #0` word
//! (0xd4000001) in the executable code is replaced by [`UDF_WORD`] (`udf #0x5e1c`), which
//! always reaches the root server as a UserException. The link-time addresses rewritten
//! form the **trap table** (sorted little-endian u64s); the root server and the emulator
//! treat a `udf` as a syscall only at those addresses, so a fault anywhere else is a real
//! fault.
//!
//! What is scanned:
//! - only PT_LOAD segments with PF_X, at 4-byte aligned addresses;
//! - when section headers exist (they survive `strip`), only SHF_EXECINSTR sections, so
//!   .rodata and .eh_frame sharing the R-X segment are left alone;
//! - minus the byte ranges of STT_OBJECT symbols and the `$d` (data) stretches marked by
//!   aarch64 mapping symbols, when a symbol table exists;
//! - never the ELF header or program headers.
//!
//! **Residual risk:** a data word inside code (a literal pool or jump table that no
//! symbol marks as an object) equal to 0xd4000001 is rewritten too, and the data changes.
//! Compilers for aarch64 rarely put data in .text (musl and Rust do not), and a binary
//! without section headers widens the scan to the whole R-X segment, where .rodata may hold
//! such a word; `rewrite` reports how many candidates came from outside any executable
//! section so the packer can warn.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::LittleEndian as LE;
use std::ops::Range;

/// The `svc #0` instruction word.
pub const SVC0: u32 = 0xd400_0001;
/// The immediate of the `udf` that replaces it ("5e1c", for selkie).
pub const UDF_IMM: u16 = 0x5e1c;
/// `udf #UDF_IMM`: encoding 0x0000_iiii.
pub const UDF_WORD: u32 = UDF_IMM as u32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a 64-bit little-endian aarch64 ELF: {0}")]
    NotAarch64(String),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("binary already contains udf #{UDF_IMM:#x} at {0:#x}: rewritten twice, or the immediate clashes")]
    AlreadyRewritten(u64),
}

/// The result of a rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The ELF with every recorded `svc #0` replaced.
    pub bytes: Vec<u8>,
    /// Link-time addresses rewritten, ascending.
    pub traps: Vec<u64>,
    /// File offsets of the same words, ascending.
    pub offsets: Vec<u64>,
    /// File ranges of the executable PT_LOADs (what a runner maps for execution).
    pub exec_segments: Vec<Range<u64>>,
    /// Whether section headers narrowed the scan to SHF_EXECINSTR sections.
    pub used_sections: bool,
    /// How many `svc` words were left alone because symbols say they are data.
    pub objects_skipped: usize,
    /// Built with the selkie SDK (`musl_shim::text::sdk_abi`): its `svc`s set x7 and are
    /// left as they are; nothing was rewritten.
    pub sdk: bool,
}

impl Rewritten {
    /// The trap table as stored in the bundle: little-endian u64s.
    pub fn trap_table(&self) -> Vec<u8> {
        encode_traps(&self.traps)
    }
}

pub fn encode_traps(traps: &[u64]) -> Vec<u8> {
    traps.iter().flat_map(|t| t.to_le_bytes()).collect()
}

/// Parses a trap table; `None` when its length is not a multiple of 8 or it is unsorted.
pub fn decode_traps(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    let v: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    v.windows(2).all(|w| w[0] < w[1]).then_some(v)
}

/// A file range to scan, with the link-time address of its first byte.
struct Span {
    file: Range<u64>,
    vaddr: u64,
}

fn malformed(e: object::Error) -> Error {
    Error::Malformed(e.to_string())
}

/// Finds every `svc #0` in the executable code of `elf` (no rewrite): link-time addresses.
pub fn find_svcs(data: &[u8]) -> Result<Vec<u64>, Error> {
    Ok(rewrite(data)?.traps)
}

/// Rewrites `svc #0` into `udf #UDF_IMM` in a static aarch64 ELF.
pub fn rewrite(data: &[u8]) -> Result<Rewritten, Error> {
    let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|e| Error::NotAarch64(e.to_string()))?;
    let e = LE;
    if hdr.e_machine(e) != elf::EM_AARCH64 {
        return Err(Error::NotAarch64(format!("e_machine {}", hdr.e_machine(e).0)));
    }
    let phdrs = hdr.program_headers(e, data).map_err(malformed)?;
    let headers_end = hdr.e_phoff(e) + u64::from(hdr.e_phentsize(e)) * phdrs.len() as u64;
    // Executable segments' file ranges.
    let mut segs: Vec<Span> = Vec::new();
    for ph in phdrs {
        if ph.p_type(e) == elf::PT_LOAD && ph.p_flags(e).contains(elf::PF_X) {
            let start = ph.p_offset(e);
            let end = start.checked_add(ph.p_filesz(e)).filter(|&x| x <= data.len() as u64);
            let end = end.ok_or_else(|| Error::Malformed("PT_LOAD beyond the file".into()))?;
            segs.push(Span { file: start..end, vaddr: ph.p_vaddr(e) });
        }
    }
    // Narrow to executable sections when there are section headers.
    let sections = hdr.sections(e, data).map_err(malformed)?;
    let exec_sections: Vec<Range<u64>> = sections
        .iter()
        .filter(|s| s.sh_type(e) == elf::SHT_PROGBITS && s.sh_flags(e).contains(elf::SHF_EXECINSTR))
        .map(|s| s.sh_offset(e)..s.sh_offset(e) + s.sh_size(e))
        .collect();
    let used_sections = !exec_sections.is_empty();
    let mut spans: Vec<Span> = Vec::new();
    for seg in &segs {
        let pieces: Vec<Range<u64>> = if used_sections {
            exec_sections
                .iter()
                .map(|s| s.start.max(seg.file.start)..s.end.min(seg.file.end))
                .filter(|r| r.start < r.end)
                .collect()
        } else {
            vec![seg.file.start.max(headers_end)..seg.file.end]
        };
        for p in pieces {
            spans.push(Span { vaddr: seg.vaddr + (p.start - seg.file.start), file: p });
        }
    }
    // Data objects inside code, by symbol (vaddr ranges).
    let mut objects: Vec<Range<u64>> = Vec::new();
    let symbols = sections.symbols(e, data, elf::SHT_SYMTAB).map_err(malformed)?;
    for sym in symbols.iter() {
        if sym.st_type() == elf::STT_OBJECT && sym.st_size(e) > 0 {
            let v = sym.st_value(e);
            objects.push(v..v.saturating_add(sym.st_size(e)));
        }
    }
    objects.sort_by_key(|r| r.start);
    // aarch64 mapping symbols: `$d` starts data inside code, `$x` starts code again.
    let mut mapping: Vec<(u64, bool)> = Vec::new();
    for sym in symbols.iter() {
        let name = sym.name(e, symbols.strings()).unwrap_or(b"");
        let is_data = name == b"$d" || name.starts_with(b"$d.");
        let is_code = name == b"$x" || name.starts_with(b"$x.");
        if is_data || is_code {
            mapping.push((sym.st_value(e), is_data));
        }
    }
    mapping.sort_unstable();
    let in_data = |v: u64| match mapping.partition_point(|m| m.0 <= v) {
        0 => false,
        i => mapping[i - 1].1,
    };
    if musl_shim::text::sdk_abi(data) {
        let exec_segments = segs.into_iter().map(|s| s.file).collect();
        return Ok(Rewritten { bytes: data.to_vec(), traps: Vec::new(), offsets: Vec::new(), exec_segments, used_sections, objects_skipped: 0, sdk: true });
    }
    let mut out = data.to_vec();
    let mut traps = Vec::new();
    let mut offsets = Vec::new();
    let mut objects_skipped = 0;
    for span in &spans {
        // Align to 4 in the address space.
        let skew = (4 - span.vaddr % 4) % 4;
        let mut off = span.file.start + skew;
        while off + 4 <= span.file.end {
            let word = u32::from_le_bytes(data[off as usize..off as usize + 4].try_into().unwrap());
            let vaddr = span.vaddr + (off - span.file.start);
            if word == UDF_WORD && used_sections {
                return Err(Error::AlreadyRewritten(vaddr));
            }
            if word == SVC0 {
                if in_data(vaddr) || objects.iter().any(|o| o.start <= vaddr && vaddr < o.end) {
                    objects_skipped += 1;
                } else {
                    out[off as usize..off as usize + 4].copy_from_slice(&UDF_WORD.to_le_bytes());
                    traps.push(vaddr);
                    offsets.push(off);
                }
            }
            off += 4;
        }
    }
    traps.sort_unstable();
    traps.dedup();
    offsets.sort_unstable();
    offsets.dedup();
    let exec_segments = segs.into_iter().map(|s| s.file).collect();
    Ok(Rewritten { bytes: out, traps, offsets, exec_segments, used_sections, objects_skipped, sdk: false })
}

/// What [`text_store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// aarch64 ELFs in the store.
    pub files: usize,
    /// `svc #0` words rewritten, over all files.
    pub traps: usize,
    /// Bytes of rewritten executable segments stored.
    pub segment_bytes: u64,
    /// ELFs left out, with why (their `svc`s are then found when they are mapped).
    pub skipped: Vec<(String, String)>,
    /// selkie-SDK ELFs, left out because their `svc`s need no rewrite.
    pub sdk_files: usize,
}

/// The text store of a rootfs cpio (`musl_shim::text`): every aarch64 ELF in it rewritten,
/// each with its own trap table (file offsets) and its executable segments, page-aligned.
/// The cpio itself is not changed. Reads the files as the runners' tree does.
pub fn text_store(cpio: &[u8]) -> (Vec<u8>, StoreStats) {
    let mut entries = Vec::new();
    let mut stats = StoreStats::default();
    for (name, cpio_off, data) in musl_shim::text::cpio_files(cpio) {
        store_file(name, cpio_off, data, &mut entries, &mut stats);
    }
    (musl_shim::text::build(&entries), stats)
}

/// As [`text_store`], reading the cpio as a stream: only one ELF at a time is held in
/// memory (what `selkie pack` uses for a rootfs it has just written to a file).
pub fn text_store_from<R: std::io::Read>(r: R) -> std::io::Result<(Vec<u8>, StoreStats)> {
    use std::cell::Cell;
    use std::io::Read;
    use std::rc::Rc;
    /// Counts the bytes read through it: the cpio offset of the next byte.
    struct Counting<R> {
        inner: R,
        at: Rc<Cell<u64>>,
    }
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.at.set(self.at.get() + n as u64);
            Ok(n)
        }
    }
    let at = Rc::new(Cell::new(0));
    let mut r = Counting { inner: r, at: at.clone() };
    let mut entries = Vec::new();
    let mut stats = StoreStats::default();
    loop {
        let mut e = cpio::NewcReader::new(r)?;
        if e.entry().is_trailer() {
            break;
        }
        let (mode, size) = (e.entry().mode(), u64::from(e.entry().file_size()));
        if mode & 0o170000 == 0o100000 && size >= 4 {
            let cpio_off = at.get();
            let mut magic = [0u8; 4];
            e.read_exact(&mut magic)?;
            if &magic == b"\x7fELF" {
                let mut data = magic.to_vec();
                data.try_reserve_exact(size as usize - 4).map_err(std::io::Error::other)?;
                (&mut e).take(size - 4).read_to_end(&mut data)?;
                let name = e.entry().name().to_string();
                store_file(&name, cpio_off, &data, &mut entries, &mut stats);
            }
        }
        r = e.finish()?;
    }
    Ok((musl_shim::text::build(&entries), stats))
}

/// Adds `data` (the file `name`, at `cpio_off` in the cpio) to the store's entries when it
/// is an aarch64 ELF.
fn store_file(name: &str, cpio_off: u64, data: &[u8], entries: &mut Vec<musl_shim::text::Entry>, stats: &mut StoreStats) {
    if !data.starts_with(b"\x7fELF") {
        return;
    }
    let r = match rewrite(data) {
        Ok(r) => r,
        Err(Error::NotAarch64(_)) => return,
        Err(e) => {
            stats.skipped.push((format!("/{}", name.trim_start_matches("./").trim_start_matches('/')), e.to_string()));
            return;
        }
    };
    if r.sdk {
        stats.sdk_files += 1;
        return;
    }
    // Executable segments' pages, merged where they share one.
    let mut pages: Vec<Range<u64>> = Vec::new();
    for seg in &r.exec_segments {
        let (lo, hi) = (seg.start & !(PAGE - 1), ((seg.end + PAGE - 1) & !(PAGE - 1)).min(data.len() as u64));
        match pages.last_mut() {
            Some(last) if lo <= last.end => last.end = last.end.max(hi),
            _ => pages.push(lo..hi),
        }
    }
    let segments: Vec<(u64, Vec<u8>)> =
        pages.into_iter().filter(|p| p.start < p.end).map(|p| (p.start, r.bytes[p.start as usize..p.end as usize].to_vec())).collect();
    stats.files += 1;
    stats.traps += r.offsets.len();
    stats.segment_bytes += segments.iter().map(|s| s.1.len() as u64).sum::<u64>();
    entries.push(musl_shim::text::Entry { cpio_off, file_len: data.len() as u64, traps: r.offsets, segments });
}

const PAGE: u64 = 4096;
