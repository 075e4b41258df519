//! Checks that an entrypoint can run on selkie (an aarch64 ELF executable: static,
//! static-PIE, or dynamically linked with its interpreter in the image) and describes its
//! loadable segments for the resource plan.

use anyhow::{bail, Result};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object};
use serde::Serialize;

/// One PT_LOAD segment.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    /// "r-x" style permissions.
    pub perms: String,
    /// 4 KiB frames the segment covers.
    pub frames: u64,
}

/// What the loader needs to know about a binary.
#[derive(Clone, Debug, Serialize)]
pub struct ElfInfo {
    pub pie: bool,
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub tls: bool,
    /// PT_INTERP: the dynamic linker a dynamically linked program starts through.
    pub interp: Option<String>,
}

fn machine_name(m: u16) -> String {
    let n = match elf::Machine(m) {
        elf::EM_X86_64 => "x86-64",
        elf::EM_386 => "i386",
        elf::EM_ARM => "32-bit ARM",
        elf::EM_RISCV => "RISC-V",
        elf::EM_PPC64 => "PowerPC64",
        elf::EM_S390 => "s390",
        elf::EM_MIPS => "MIPS",
        _ => "unknown",
    };
    format!("{n} (e_machine {m})")
}

/// Checks `data` is an aarch64 executable. `path` names it in errors.
pub fn check(path: &str, data: &[u8]) -> Result<ElfInfo> {
    if data.len() < 20 || &data[..4] != b"\x7fELF" {
        bail!("entrypoint {path} is not an ELF file");
    }
    if data[4] != elf::ELFCLASS64.0 {
        let m = u16::from_le_bytes([data[18], data[19]]);
        bail!("entrypoint {path} is a 32-bit ELF for {}; selkie runs aarch64 binaries", machine_name(m));
    }
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| anyhow::anyhow!("entrypoint {path} is not a valid ELF: {e}"))?;
    let hdr = file.elf_header();
    let end = file.endian();
    let machine = hdr.e_machine(end);
    if machine != elf::EM_AARCH64 {
        bail!("entrypoint {path} is built for {}; selkie runs aarch64 binaries", machine_name(machine.0));
    }
    let etype = hdr.e_type(end);
    if etype != elf::ET_EXEC && etype != elf::ET_DYN {
        bail!("entrypoint {path} is not an executable (ELF type {etype})");
    }
    let mut segments = Vec::new();
    let mut tls = false;
    let mut interp_path = None;
    for ph in file.elf_program_headers() {
        match ph.p_type(end) {
            elf::PT_INTERP => {
                let interp = ph
                    .data(end, data)
                    .ok()
                    .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_string())
                    .unwrap_or_default();
                if interp.is_empty() {
                    bail!("entrypoint {path} has an empty PT_INTERP");
                }
                interp_path = Some(interp);
            }
            elf::PT_TLS => tls = true,
            elf::PT_LOAD => {
                let (vaddr, memsz) = (ph.p_vaddr(end), ph.p_memsz(end));
                let flags = ph.p_flags(end);
                let start = vaddr & !0xfff;
                let stop = (vaddr + memsz + 0xfff) & !0xfff;
                segments.push(Segment {
                    vaddr,
                    memsz,
                    filesz: ph.p_filesz(end),
                    perms: format!(
                        "{}{}{}",
                        if flags.contains(elf::PF_R) { 'r' } else { '-' },
                        if flags.contains(elf::PF_W) { 'w' } else { '-' },
                        if flags.contains(elf::PF_X) { 'x' } else { '-' }
                    ),
                    frames: (stop - start) / 4096,
                });
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        bail!("entrypoint {path} has no loadable segments");
    }
    Ok(ElfInfo { pie: etype == elf::ET_DYN, entry: file.entry(), segments, tls, interp: interp_path })
}

/// seL4 object sizes on aarch64 (bytes), for the untyped estimate.
pub mod sel4_sizes {
    pub const TCB: u64 = 1 << 11;
    pub const PAGE_TABLE: u64 = 1 << 12;
    pub const VSPACE: u64 = 1 << 12;
    pub const ENDPOINT: u64 = 1 << 4;
    pub const CNODE_SLOT: u64 = 1 << 5;
    pub const CNODE_SLOTS: u64 = 1 << 12;
}

/// The resources one app needs.
#[derive(Clone, Debug, Serialize)]
pub struct ResourcePlan {
    pub segment_frames: u64,
    pub stack_frames: u64,
    pub heap_frames_max: u64,
    pub ipc_buffer_frames: u64,
    pub page_tables: u64,
    pub kernel_object_bytes: u64,
    pub extra_untyped_bytes: u64,
    pub untyped_bytes: u64,
}

/// Plans frames and untyped memory for a binary with `heap_pages` of heap and `stack_pages`
/// of stack. Page tables are counted per 2 MiB region the segments, stack and heap touch.
pub fn plan(info: &ElfInfo, spec: &selkie_manifest::Spec<String>) -> ResourcePlan {
    let segment_frames: u64 = info.segments.iter().map(|s| s.frames).sum();
    let stack = u64::from(spec.stack_pages);
    let heap = u64::from(spec.heap_pages);
    let regions = |bytes: u64| bytes.div_ceil(2 << 20).max(1);
    let seg_bytes: u64 = info.segments.iter().map(|s| s.frames * 4096).sum();
    // Level-3 tables per 2 MiB, plus one level-2 and one level-1 table per region kind.
    let page_tables = regions(seg_bytes) + regions(stack * 4096) + regions(heap * 4096) + 6;
    let kernel_object_bytes = sel4_sizes::TCB
        + sel4_sizes::VSPACE
        + sel4_sizes::ENDPOINT
        + sel4_sizes::CNODE_SLOT * sel4_sizes::CNODE_SLOTS
        + page_tables * sel4_sizes::PAGE_TABLE;
    let frames = segment_frames + stack + heap + 1;
    let extra = spec.extra_untyped_bytes();
    ResourcePlan {
        segment_frames,
        stack_frames: stack,
        heap_frames_max: heap,
        ipc_buffer_frames: 1,
        page_tables,
        kernel_object_bytes,
        extra_untyped_bytes: extra,
        untyped_bytes: frames * 4096 + kernel_object_bytes + extra,
    }
}
