//! Finding the `svc #0` words of ELFs the app runs that were not rewritten at pack time:
//! programs exec'd from the rootfs, the interpreter (ld.so) of a dynamic program, and the
//! shared libraries ld.so maps executable. The pack-time rewriter's rule
//! (host-tools/svc-rewrite), without symbols: only PT_LOADs with PF_X at 4-byte aligned
//! addresses, narrowed to the SHF_EXECINSTR sections when the ELF has section headers (so
//! .rodata and .eh_frame in the same R-X segment are left alone).

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use musl_shim::start::LoadPlan;
use musl_shim::RewrittenText;

/// `svc #0`, and the `udf` it is rewritten to (host-tools/svc-rewrite).
pub const SVC0: u32 = 0xd400_0001;
pub const UDF_WORD: u32 = 0x5e1c;

const SHF_EXECINSTR: u64 = 0x4;
const SHF_ALLOC: u64 = 0x2;
const SHT_NOBITS: u32 = 8;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// File ranges of the allocated SHF_EXECINSTR sections; `None` without usable section
/// headers.
fn code_sections(elf: &[u8]) -> Option<Vec<(u64, u64)>> {
    let shoff = usize::try_from(u64_at(elf, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    if shoff == 0 || shnum == 0 || shentsize < 64 {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..shnum {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        if at > elf.len() {
            return None;
        }
        let (ty, flags, off, size) = (u32_at(elf, at + 4)?, u64_at(elf, at + 8)?, u64_at(elf, at + 24)?, u64_at(elf, at + 32)?);
        if ty != SHT_NOBITS && flags & (SHF_EXECINSTR | SHF_ALLOC) == SHF_EXECINSTR | SHF_ALLOC && size > 0 {
            out.push((off, off.saturating_add(size)));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Calls `f` with (file offset, link-time address) of each `svc #0` word of `elf`'s code.
fn each_svc(plan: &LoadPlan, elf: &[u8], mut f: impl FnMut(u64, u64)) {
    let sections = code_sections(elf);
    let whole = [(0u64, u64::MAX)];
    for s in plan.segments.iter().filter(|s| s.prot.x()) {
        let seg = (s.offset, s.offset.saturating_add(s.filesz));
        let secs: &[(u64, u64)] = sections.as_deref().unwrap_or(&whole);
        for (a, b) in secs.iter().map(|&(a, b)| (a.max(seg.0), b.min(seg.1))).filter(|(a, b)| a < b) {
            // Offsets whose address is 4-byte aligned.
            let va = |off: u64| s.vaddr.wrapping_add(off - s.offset);
            let mut off = a + (4 - va(a) % 4) % 4;
            while off.saturating_add(4) <= b {
                let Some(w) = usize::try_from(off).ok().and_then(|o| u32_at(elf, o)) else { break };
                if w == SVC0 {
                    f(off, va(off));
                }
                off += 4;
            }
        }
    }
}

/// The `svc #0` words of `elf`'s code, by `pick` (its file offset or its link-time
/// address), ascending; `None` when the list cannot be allocated (a file made of them).
pub fn find_svcs(plan: &LoadPlan, elf: &[u8], pick: fn(u64, u64) -> u64) -> Option<Vec<u64>> {
    let mut n = 0usize;
    each_svc(plan, elf, |_, _| n += 1);
    let mut found = Vec::new();
    found.try_reserve_exact(n).ok()?;
    each_svc(plan, elf, |off, va| found.push(pick(off, va)));
    found.sort_unstable();
    found.dedup();
    Some(found)
}

/// A cheap 64-bit hash of a file's bytes (not cryptographic: it only keys this app's own
/// cache).
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

/// Per app: the file offsets of the `svc`s of every file it mapped executable, by content
/// (the shim hands over a copy of the file, so its bytes are the key). Only the offsets
/// are kept; the rewritten copy is made for each mmap and dropped after it.
#[derive(Default)]
pub struct TextCache {
    offsets: BTreeMap<(u64, usize), Option<Rc<Vec<u64>>>>,
    /// Files scanned, and mmaps served a rewritten copy (for the stats line).
    pub scanned: u64,
    pub served: u64,
}

impl TextCache {
    /// `file` with its `svc`s rewritten; `None` when it is not an aarch64 ELF, has none,
    /// or the copy cannot be had (the heap is short: the original bytes are mapped, and a
    /// syscall in them ends the process with SIGILL).
    pub fn rewritten(&mut self, file: &[u8]) -> Option<Rc<RewrittenText>> {
        let key = (hash(file), file.len());
        let offsets = match self.offsets.get(&key) {
            Some(o) => o.clone(),
            None => {
                self.scanned += 1;
                let o = LoadPlan::parse(file).ok().and_then(|plan| find_svcs(&plan, file, |off, _| off)).filter(|v| !v.is_empty()).map(Rc::new);
                self.offsets.insert(key, o.clone());
                o
            }
        }?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(file.len()).ok()?;
        bytes.extend_from_slice(file);
        for &off in offsets.iter() {
            let at = usize::try_from(off).ok()?;
            bytes.get_mut(at..at + 4)?.copy_from_slice(&UDF_WORD.to_le_bytes());
        }
        let mut offs = Vec::new();
        offs.try_reserve_exact(offsets.len()).ok()?;
        offs.extend_from_slice(&offsets);
        self.served += 1;
        Some(Rc::new(RewrittenText { bytes, offsets: offs }))
    }
}
