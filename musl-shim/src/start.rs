//! Starting an app: the ELF loading plan (PT_LOAD with permissions, PT_TLS, PT_GNU_STACK,
//! static-PIE load base and R_AARCH64_RELATIVE relocations), the memory layout, and the
//! initial stack (argv, envp, auxv) as the aarch64 Linux ABI lays it out.
//!
//! Shared by the host emulator and the seL4 root server.

use crate::errno::Errno;
use crate::mem::GuestMemory;
use crate::mm::{page_down, page_up, MemLayout, MemoryMap, RegionKind, PAGE};
use crate::platform::{AddressSpace, Prot};
use alloc::vec::Vec;
use core::fmt;
use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader, Rela as _};
use object::{LittleEndian as LE, ReadRef};

/// Top of the stack: user addresses are limited to 44 bits on seL4's hypervisor build.
pub const STACK_TOP: u64 = 0x10_0000_0000;
/// Where a static-PIE's lowest segment is placed.
pub const PIE_BASE: u64 = 0x40_0000;
/// Unmapped gap between the mmap area and the stack.
pub const STACK_GAP: u64 = 16 * PAGE;
/// AT_HWCAP for a Cortex-A57/A72: FP ASIMD EVTSTRM AES PMULL SHA1 SHA2 CRC32 CPUID.
pub const HWCAP_A57: u64 = 0x8ff;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
/// selkie's own auxv entry (no Linux type has this number): its value says which syscall
/// paths this runner takes besides Linux's `svc`; 2: the selkie SDK's seL4_Call
/// (`text::SDK_CALL_LABEL`). The SDK's musl makes its short syscalls that way only when it
/// finds this entry, so the same binary runs on Linux too.
pub const AT_SELKIE: u64 = 0x5e1;
pub const SELKIE_ABI: u64 = 2;

/// Why an ELF cannot be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Malformed(&'static str),
    NotAarch64,
    /// It asks for a dynamic loader (PT_INTERP): only static binaries run.
    Dynamic,
    NoLoadSegments,
    /// A dynamic relocation other than R_AARCH64_RELATIVE.
    Relocation(u32),
    /// The image or stack does not fit the address space.
    Layout(&'static str),
    /// Guest memory refused a write or map.
    Memory(Errno),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Malformed(w) => write!(f, "malformed ELF: {w}"),
            LoadError::NotAarch64 => write!(f, "not a 64-bit little-endian aarch64 ELF"),
            LoadError::Dynamic => write!(f, "dynamically linked (has PT_INTERP); selkie runs static binaries only"),
            LoadError::NoLoadSegments => write!(f, "no PT_LOAD segments"),
            LoadError::Relocation(t) => write!(f, "unsupported dynamic relocation type {t}"),
            LoadError::Layout(w) => write!(f, "does not fit: {w}"),
            LoadError::Memory(e) => write!(f, "guest memory error (errno {})", e.0),
        }
    }
}

impl From<Errno> for LoadError {
    fn from(e: Errno) -> Self {
        LoadError::Memory(e)
    }
}

fn bad(_: object::Error) -> LoadError {
    LoadError::Malformed("header or table out of bounds")
}

/// One PT_LOAD, at link-time addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub prot: Prot,
}

/// PT_TLS: the initial TLS image (musl reads it through AT_PHDR itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls {
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// How to load one ELF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    /// ET_DYN (static-PIE): placed at [`PIE_BASE`], relocated.
    pub pie: bool,
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub tls: Option<Tls>,
    /// PT_GNU_STACK asks for an executable stack.
    pub exec_stack: bool,
    /// Link-time address of the program headers (PT_PHDR, or first PT_LOAD + e_phoff).
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// R_AARCH64_RELATIVE relocations: (link-time offset, addend). Only a static-PIE's:
    /// a dynamically linked program is relocated by its interpreter.
    pub relative: Vec<(u64, i64)>,
    /// PT_INTERP: the dynamic linker to start the program through.
    pub interp: Option<Vec<u8>>,
}

impl LoadPlan {
    pub fn parse(data: &[u8]) -> Result<LoadPlan, LoadError> {
        let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|_| LoadError::NotAarch64)?;
        let e = LE;
        if hdr.e_machine(e) != elf::EM_AARCH64 {
            return Err(LoadError::NotAarch64);
        }
        let pie = match hdr.e_type(e) {
            elf::ET_EXEC => false,
            elf::ET_DYN => true,
            _ => return Err(LoadError::Malformed("not an executable")),
        };
        let phdrs = hdr.program_headers(e, data).map_err(bad)?;
        let phoff = hdr.e_phoff(e);
        let mut plan = LoadPlan {
            pie,
            entry: hdr.e_entry(e),
            segments: Vec::new(),
            tls: None,
            exec_stack: false,
            phdr: 0,
            phent: u64::from(hdr.e_phentsize(e)),
            phnum: phdrs.len() as u64,
            relative: Vec::new(),
            interp: None,
        };
        let mut pt_phdr = None;
        let mut dynamic = None;
        for ph in phdrs {
            let flags = ph.p_flags(e);
            match ph.p_type(e) {
                elf::PT_LOAD => {
                    let (memsz, filesz) = (ph.p_memsz(e), ph.p_filesz(e));
                    if filesz > memsz {
                        return Err(LoadError::Malformed("PT_LOAD filesz > memsz"));
                    }
                    if ph.p_offset(e).checked_add(filesz).is_none_or(|end| end > data.len() as u64) {
                        return Err(LoadError::Malformed("PT_LOAD beyond the file"));
                    }
                    if ph.p_vaddr(e).checked_add(memsz).is_none_or(|end| end > STACK_TOP / 2) {
                        return Err(LoadError::Layout("PT_LOAD beyond the address space"));
                    }
                    let mut prot = 0;
                    if flags.contains(elf::PF_R) {
                        prot |= Prot::READ;
                    }
                    if flags.contains(elf::PF_W) {
                        prot |= Prot::WRITE;
                    }
                    if flags.contains(elf::PF_X) {
                        prot |= Prot::EXEC;
                    }
                    plan.segments.push(Segment {
                        vaddr: ph.p_vaddr(e),
                        memsz,
                        offset: ph.p_offset(e),
                        filesz,
                        prot: Prot(prot),
                    });
                }
                elf::PT_TLS => {
                    plan.tls = Some(Tls {
                        vaddr: ph.p_vaddr(e),
                        filesz: ph.p_filesz(e),
                        memsz: ph.p_memsz(e),
                        align: ph.p_align(e),
                    })
                }
                elf::PT_GNU_STACK => plan.exec_stack = flags.contains(elf::PF_X),
                elf::PT_INTERP => {
                    let raw = ph.data(e, data).map_err(|_| LoadError::Malformed("PT_INTERP beyond the file"))?;
                    let path = raw.split(|&c| c == 0).next().unwrap_or(&[]);
                    if path.is_empty() {
                        return Err(LoadError::Malformed("empty PT_INTERP"));
                    }
                    plan.interp = Some(path.to_vec());
                }
                elf::PT_PHDR => pt_phdr = Some(ph.p_vaddr(e)),
                elf::PT_DYNAMIC => dynamic = ph.dynamic(e, data).map_err(bad)?,
                _ => {}
            }
        }
        if plan.segments.is_empty() {
            return Err(LoadError::NoLoadSegments);
        }
        plan.segments.sort_by_key(|s| s.vaddr);
        // Static musl has no PT_PHDR: the headers sit in the PT_LOAD that covers e_phoff.
        plan.phdr = match pt_phdr {
            Some(v) => v,
            None => plan
                .segments
                .iter()
                .find(|s| phoff >= s.offset && phoff < s.offset + s.filesz)
                .map(|s| s.vaddr + (phoff - s.offset))
                .unwrap_or(plan.segments[0].vaddr + phoff),
        };
        // A program with an interpreter, or a shared object (the interpreter itself), is
        // relocated by its own code; only a static-PIE is relocated here.
        let self_relocating = plan.interp.is_some() || (pie && dynamic.is_some_and(|d| d.iter().any(|x| x.d_tag(e) == elf::DT_NEEDED || x.d_tag(e) == elf::DT_SONAME)));
        if let Some(dynamic) = dynamic.filter(|_| !self_relocating) {
            let (mut rela, mut relasz, mut relaent) = (None, 0u64, 24u64);
            for d in dynamic {
                match d.d_tag(e) {
                    elf::DT_RELA => rela = Some(d.d_val(e)),
                    elf::DT_RELASZ => relasz = d.d_val(e),
                    elf::DT_RELAENT => relaent = d.d_val(e),
                    elf::DT_REL => return Err(LoadError::Relocation(0)),
                    _ => {}
                }
            }
            if let Some(rela) = rela {
                if relaent != 24 {
                    return Err(LoadError::Malformed("DT_RELAENT"));
                }
                let off = plan.file_offset(rela).ok_or(LoadError::Malformed("DT_RELA not in the file"))?;
                let count = (relasz / 24) as usize;
                let relas: &[elf::Rela64<LE>] = data.read_slice_at(off, count).map_err(|_| LoadError::Malformed("DT_RELASZ"))?;
                for r in relas {
                    match r.r_type(e, false) {
                        elf::R_AARCH64_RELATIVE => plan.relative.push((r.r_offset(e), r.r_addend(e))),
                        elf::R_AARCH64_NONE => {}
                        t => return Err(LoadError::Relocation(t.0)),
                    }
                }
            }
        }
        Ok(plan)
    }

    /// File offset of link-time address `vaddr`, when a PT_LOAD holds it in the file.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
            .map(|s| s.offset + (vaddr - s.vaddr))
    }

    /// Lowest and highest link-time addresses, page-aligned.
    pub fn span(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = self.segments.iter().map(|s| s.vaddr + s.memsz).max().unwrap_or(0);
        (page_down(lo), page_up(hi).unwrap_or(u64::MAX))
    }

    /// What to add to link-time addresses: 0 for ET_EXEC.
    pub fn bias(&self) -> u64 {
        if self.pie {
            PIE_BASE.wrapping_sub(self.span().0)
        } else {
            0
        }
    }
}

/// The address-space layout for an app: image, brk heap, mmap area, stack.
pub fn layout(plan: &LoadPlan, heap_bytes: u64, stack_bytes: u64) -> Result<MemLayout, LoadError> {
    let (_, hi) = plan.span();
    let brk_start = hi.wrapping_add(plan.bias());
    let stack_bottom = STACK_TOP.checked_sub(page_up(stack_bytes).ok_or(LoadError::Layout("stack"))?).ok_or(LoadError::Layout("stack"))?;
    let mmap_top = stack_bottom.checked_sub(STACK_GAP).ok_or(LoadError::Layout("stack"))?;
    let heap = page_up(heap_bytes).ok_or(LoadError::Layout("heap"))?;
    // brk may grow to the whole heap; mmap takes the space above it.
    let mmap_bottom = brk_start.checked_add(heap).ok_or(LoadError::Layout("heap"))?;
    if mmap_bottom >= mmap_top {
        return Err(LoadError::Layout("heap and stack overlap"));
    }
    Ok(MemLayout { brk_start, heap_limit: heap, mmap_bottom, mmap_top })
}

/// Addresses, at `bias`, of the words at file offsets `traps` that `plan`'s executable
/// segments load.
pub fn trap_addrs(plan: &LoadPlan, traps: &[u64], bias: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for s in plan.segments.iter().filter(|s| s.prot.x()) {
        let lo = traps.partition_point(|&t| t < s.offset);
        for &t in traps[lo..].iter().take_while(|&&t| t.saturating_add(4) <= s.offset + s.filesz) {
            out.push(s.vaddr.wrapping_add(t - s.offset).wrapping_add(bias));
        }
    }
    out
}

/// Maps and fills the segments at `bias`, writes the trapping `udf` over the syscall
/// words at file offsets `traps` (ascending) and records them in `mm`, applies
/// relocations, sets final protections, and records the regions in `mm`.
pub fn load<M: GuestMemory + AddressSpace>(
    mem: &mut M,
    mm: &mut MemoryMap,
    plan: &LoadPlan,
    data: &[u8],
    bias: u64,
    traps: &[u64],
) -> Result<(), LoadError> {
    // Page ranges, merged where segments share pages.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in &plan.segments {
        let start = page_down(s.vaddr.wrapping_add(bias));
        let end = page_up(s.vaddr.wrapping_add(bias).wrapping_add(s.memsz)).ok_or(LoadError::Layout("segment"))?;
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    for &(start, end) in &ranges {
        mem.map(start, end - start, Prot::RW)?;
    }
    for s in &plan.segments {
        let bytes = &data[s.offset as usize..(s.offset + s.filesz) as usize];
        mem.write(s.vaddr.wrapping_add(bias), bytes)?;
    }
    let at = trap_addrs(plan, traps, bias);
    for &a in &at {
        mem.write(a, &crate::text::UDF_WORD.to_le_bytes())?;
    }
    for &(off, addend) in &plan.relative {
        mem.write_u64(off.wrapping_add(bias), bias.wrapping_add(addend as u64))?;
    }
    // Final protections; a page shared by two segments gets both.
    let mut prev: Option<(u64, Prot)> = None;
    for s in &plan.segments {
        let start = page_down(s.vaddr.wrapping_add(bias));
        let end = page_up(s.vaddr.wrapping_add(bias).wrapping_add(s.memsz)).unwrap_or(start);
        let mut from = start;
        if let Some((prev_end, prev_prot)) = prev {
            if start < prev_end {
                let shared = Prot(prev_prot.0 | s.prot.0);
                mem.protect(start, prev_end - start, shared)?;
                mm.record(start, prev_end, shared, RegionKind::Image);
                from = prev_end;
            }
        }
        if from < end {
            mem.protect(from, end - from, s.prot)?;
            mm.record(from, end, s.prot, RegionKind::Image);
        }
        prev = Some((end, s.prot));
    }
    // After the regions: recording a region drops the traps it covered.
    mm.add_traps(at);
    mm.sdk_syscalls |= crate::text::sdk_abi(data);
    Ok(())
}

/// What goes on the initial stack besides argv and envp.
#[derive(Debug, Clone)]
pub struct StackInfo<'s> {
    pub argv: &'s [&'s [u8]],
    pub envp: &'s [&'s [u8]],
    /// AT_EXECFN: the path the binary was started by.
    pub execfn: &'s [u8],
    /// The 16 bytes AT_RANDOM points at.
    pub random: [u8; 16],
    /// Auxv entries other than AT_RANDOM, AT_EXECFN and AT_NULL (see [`auxv`]).
    pub auxv: &'s [(u64, u64)],
}

/// The auxv of an app loaded at `bias` (AT_BASE 0: no interpreter; see [`with_interp`]).
pub fn auxv(plan: &LoadPlan, bias: u64, uid: u32, gid: u32, hwcap: u64) -> Vec<(u64, u64)> {
    alloc::vec![
        (AT_PHDR, plan.phdr.wrapping_add(bias)),
        (AT_PHENT, plan.phent),
        (AT_PHNUM, plan.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, plan.entry.wrapping_add(bias)),
        (AT_UID, u64::from(uid)),
        (AT_EUID, u64::from(uid)),
        (AT_GID, u64::from(gid)),
        (AT_EGID, u64::from(gid)),
        (AT_HWCAP, hwcap),
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_SELKIE, SELKIE_ABI),
    ]
}

/// Sets AT_BASE to where the interpreter was loaded.
pub fn with_interp(mut auxv: Vec<(u64, u64)>, interp_base: u64) -> Vec<(u64, u64)> {
    for (k, v) in auxv.iter_mut() {
        if *k == AT_BASE {
            *v = interp_base;
        }
    }
    auxv
}

/// Where to load an interpreter planned by `plan`: its bias, placing it just below the
/// top of the mmap area (as Linux puts ld.so near its mmap base).
pub fn interp_bias(plan: &LoadPlan, layout: &MemLayout) -> Result<u64, LoadError> {
    let (lo, hi) = plan.span();
    let size = hi.checked_sub(lo).ok_or(LoadError::Layout("interpreter"))?;
    let base = page_down(layout.mmap_top.checked_sub(size + 0x10_0000).ok_or(LoadError::Layout("interpreter"))?);
    if base < layout.mmap_bottom {
        return Err(LoadError::Layout("no room for the interpreter"));
    }
    Ok(base.wrapping_sub(lo))
}

/// Writes the initial stack below `top` and returns the stack pointer:
/// `sp -> argc, argv[..], NULL, envp[..], NULL, auxv pairs, AT_NULL`, then the strings
/// and AT_RANDOM's bytes above; sp is 16-byte aligned.
pub fn build_stack<M: GuestMemory>(mem: &mut M, top: u64, info: &StackInfo<'_>) -> Result<u64, LoadError> {
    // Strings area, from its base up: argv strings, envp strings, execfn, random bytes;
    // below it argc, the vectors and auxv. Built in one buffer with plain loops: the root
    // server runs this at boot, where under QEMU's TCG every line costs its translation
    // (issue 11).
    let strings_len = info.argv.iter().chain(info.envp).fold(0, |n, s| n + s.len() + 1) + info.execfn.len() + 1 + info.random.len();
    let strings_base = top.checked_sub(strings_len as u64 + 8).ok_or(LoadError::Layout("stack"))? & !15;
    let words = 1 + info.argv.len() + 1 + info.envp.len() + 1 + 2 * (info.auxv.len() + 3);
    let sp = strings_base.checked_sub(8 * words as u64).ok_or(LoadError::Layout("stack"))? & !15;
    // The vectors, zero padding, then the strings.
    let vectors = (strings_base - sp) as usize;
    let mut bytes = alloc::vec![0u8; vectors + strings_len];
    let mut word = 0;
    let mut put = |bytes: &mut [u8], v: u64| {
        bytes[word * 8..word * 8 + 8].copy_from_slice(&v.to_le_bytes());
        word += 1;
    };
    // Copies `s` to the strings area's next free byte (NUL after it); returns its address.
    let mut at = vectors;
    let mut string = |bytes: &mut [u8], s: &[u8], nul: usize| {
        bytes[at..at + s.len()].copy_from_slice(s);
        let addr = strings_base + (at - vectors) as u64;
        at += s.len() + nul;
        addr
    };
    put(&mut bytes, info.argv.len() as u64);
    for list in [info.argv, info.envp] {
        for s in list {
            let addr = string(&mut bytes, s, 1);
            put(&mut bytes, addr);
        }
        put(&mut bytes, 0);
    }
    let execfn = string(&mut bytes, info.execfn, 1);
    let random = string(&mut bytes, &info.random, 0);
    for &(k, val) in info.auxv.iter().chain(&[(AT_RANDOM, random), (AT_EXECFN, execfn), (AT_NULL, 0)]) {
        put(&mut bytes, k);
        put(&mut bytes, val);
    }
    mem.write(sp, &bytes)?;
    Ok(sp)
}

/// Maps the stack (`stack_bytes` below [`STACK_TOP`]) and records it.
pub fn map_stack<M: AddressSpace>(mem: &mut M, mm: &mut MemoryMap, stack_bytes: u64, exec: bool) -> Result<u64, LoadError> {
    let size = page_up(stack_bytes).ok_or(LoadError::Layout("stack"))?;
    let bottom = STACK_TOP - size;
    let prot = if exec { Prot(7) } else { Prot::RW };
    mem.map(bottom, size, prot)?;
    mm.record(bottom, STACK_TOP, prot, RegionKind::Stack);
    Ok(STACK_TOP)
}
