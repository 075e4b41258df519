//! The bootable image around selkie's own kernel loader (platforms/loader).
//!
//! [`write_image`] lays out the seL4 kernel (at its ELF paddr), the device tree (right after it), the root server with its
//! bundle (flattened, page-aligned, after the device tree) and
//! the kernel's boot page tables, fills the loader's header (src/header.rs in the loader
//! crate: console, how to start the secondary cores, RAM, the chunks, init_kernel's
//! arguments) and writes the format the platform's boot chain takes:
//! - qemu-arm-virt: an ELF whose PT_LOAD segments put every chunk at its final physical
//!   address, so QEMU places them and the loader copies nothing;
//! - raspi4b: a raw `kernel8.img` (the firmware loads it at 0x80000 and starts it at EL2);
//! - imx8mp-evk: an arm64 Linux `Image` that U-Boot's `booti` starts at EL2.
//!
//! In the raw formats the chunks follow the loader in the file and the loader copies them.

use anyhow::{bail, ensure, Context, Result};
use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::{LittleEndian as LE, Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

const PAGE: u64 = 4096;
/// Where the loader header starts in the image (after the 64-byte arm64 Image header).
const HEADER_AT: usize = 64;
const HEADER_MAGIC: &[u8; 8] = b"SELKIELD";
const MAX_RAM: usize = 4;
const MAX_CHUNKS: usize = 12;
const MAX_CORES: u64 = 8;
const IN_PLACE: u64 = u64::MAX;

/// Chunk kinds, as the loader names them.
const KERNEL: u64 = 1;
const ROOT_SERVER: u64 = 2;
const DTB: u64 = 3;
const TABLES: u64 = 4;

/// The console the loader writes to.
#[derive(Clone, Copy)]
enum Uart {
    Pl011 = 1,
    Mini = 2,
    Imx = 3,
}

/// How the loader starts the secondary cores.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Smp {
    PsciHvc = 1,
    PsciSmc = 2,
    SpinTable = 3,
}

/// What the board's boot chain loads.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Format {
    /// An ELF with the loader at this physical address.
    Elf(u64),
    /// A raw binary the boot chain loads at this address (the Pi firmware: 0x80000).
    Raw(u64),
    /// An arm64 Linux `Image` (booti): loaded at the 2 MiB-aligned base of RAM + text_offset.
    Image,
}

struct Board {
    uart: Uart,
    uart_base: u64,
    smp: Smp,
    format: Format,
}

/// Facts about each platform's boot chain (see platforms/*/platform.toml).
fn board(platform: &str) -> Result<Board> {
    Ok(match platform {
        "qemu-arm-virt" => Board { uart: Uart::Pl011, uart_base: 0x900_0000, smp: Smp::PsciSmc, format: Format::Elf(0x4000_0000) },
        "raspi4b" => Board { uart: Uart::Mini, uart_base: 0xfe21_5040, smp: Smp::SpinTable, format: Format::Raw(0x8_0000) },
        "imx8mp-evk" => Board { uart: Uart::Imx, uart_base: 0x3089_0000, smp: Smp::PsciSmc, format: Format::Image },
        _ => bail!("selkie's loader does not know the platform {platform:?}"),
    })
}

/// The format `selkie pack --platform platform` writes.
pub fn format(platform: &str) -> Result<Format> {
    Ok(board(platform)?.format)
}

/// The loader crate in this checkout.
fn loader_crate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../platforms/loader")
}

/// The built loader (an ELF linked at 0): `SELKIE_LOADER`, or the one built next to this
/// `selkie` (target/loader/...), built now with cargo when it is missing or older than the
/// loader's sources.
pub fn loader_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SELKIE_LOADER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("finding the selkie binary")?;
    let target = exe.parent().and_then(Path::parent).context("the selkie binary's target directory")?.join("loader");
    let built = target.join("aarch64-unknown-none/release/selkie-loader");
    let src = loader_crate();
    let sources = ["src", "Cargo.toml", "build.rs", "link.ld", ".cargo/config.toml"].map(|p| src.join(p));
    if built.exists() && (!src.exists() || crate::boot::newer_than(&built, &sources).is_none()) {
        return Ok(built);
    }
    ensure!(src.join("Cargo.toml").exists(), "no selkie loader built at {}, and no checkout to build it from: set SELKIE_LOADER", built.display());
    let out = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .context("running cargo to build the selkie loader (install Rust with rustup, or make deps)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let hint = if err.contains("aarch64-unknown-none") || err.contains("can't find crate for `core`") {
            "\n(the aarch64-unknown-none target is missing: rustup target add aarch64-unknown-none, or tools/install-deps)"
        } else {
            ""
        };
        bail!("building the selkie loader in {} failed ({}):\n{err}{hint}", src.display(), out.status);
    }
    ensure!(built.exists(), "cargo built the loader, but there is no {}", built.display());
    Ok(built)
}

/// The loader as it is in memory from its first byte: the file-backed bytes, and the
/// size it takes with its bss and stack.
struct Loader {
    bytes: Vec<u8>,
    memsz: u64,
}

fn read_loader(path: &Path) -> Result<Loader> {
    let data = std::fs::read(path).with_context(|| format!("reading the loader {}", path.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing the loader {}", path.display()))?;
    let sym = |name: &str| {
        file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address()).with_context(|| format!("the loader {} has no symbol {name}", path.display()))
    };
    let (file_end, memsz) = (sym("__file_end")?, sym("__loader_end")?);
    let mut bytes = vec![0u8; file_end as usize];
    for s in segments(&data).with_context(|| format!("reading the loader {}", path.display()))? {
        let end = (s.vaddr as usize + s.data.len()).min(bytes.len());
        if (s.vaddr as usize) < end {
            bytes[s.vaddr as usize..end].copy_from_slice(&s.data[..end - s.vaddr as usize]);
        }
    }
    ensure!(
        bytes.len() >= HEADER_AT + 16 && &bytes[HEADER_AT..HEADER_AT + 8] == HEADER_MAGIC && bytes[HEADER_AT + 8] == 1,
        "{} is not a selkie loader (version 1 header missing)",
        path.display()
    );
    Ok(Loader { bytes, memsz: page_up(memsz) })
}

/// One PT_LOAD segment.
struct Segment {
    vaddr: u64,
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

fn segments(data: &[u8]) -> Result<Vec<Segment>> {
    let e = LE;
    let hdr = elf::FileHeader64::<LE>::parse(data).context("not a 64-bit little-endian ELF")?;
    ensure!(hdr.e_machine(e) == elf::EM_AARCH64, "not an aarch64 ELF");
    let mut out = Vec::new();
    for p in hdr.program_headers(e, data).context("reading program headers")? {
        if p.p_type(e) != elf::PT_LOAD || p.p_memsz(e) == 0 {
            continue;
        }
        let bytes = p.data(e, data).map_err(|()| anyhow::anyhow!("a PT_LOAD segment lies outside the file"))?;
        out.push(Segment { vaddr: p.p_vaddr(e), paddr: p.p_paddr(e), data: bytes.to_vec(), memsz: p.p_memsz(e) });
    }
    ensure!(!out.is_empty(), "no PT_LOAD segments");
    Ok(out)
}

fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// A chunk of the image: where it goes and what it holds.
struct Chunk {
    kind: u64,
    dst: u64,
    data: Vec<u8>,
    memsz: u64,
}

/// What the device tree says: RAM and the PSCI conduit.
struct DtbFacts {
    ram: Vec<(u64, u64)>,
    psci: Option<Smp>,
}

fn dtb_facts(dtb: &[u8], path: &Path) -> Result<DtbFacts> {
    let fdt = fdt::Fdt::new(dtb).map_err(|e| anyhow::anyhow!("{} is not a device tree: {e:?}", path.display()))?;
    let ram = fdt
        .memory()
        .regions()
        .filter_map(|r| Some((r.starting_address as u64, r.starting_address as u64 + r.size? as u64)))
        .collect();
    let psci = fdt.find_node("/psci").and_then(|n| n.property("method")).and_then(|p| p.as_str()).and_then(|m| match m {
        "hvc" => Some(Smp::PsciHvc),
        "smc" => Some(Smp::PsciSmc),
        _ => None,
    });
    Ok(DtbFacts { ram, psci })
}

/// seL4's RAM for the installed kernel (support/platform_gen.yaml's `memory`).
fn sel4_memory(prefix: &Path) -> Result<Vec<(u64, u64)>> {
    let path = prefix.join("support/platform_gen.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let y: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let regions = y.get("memory").and_then(|m| m.as_sequence()).with_context(|| format!("{} has no memory list", path.display()))?;
    regions
        .iter()
        .map(|r| {
            let f = |k: &str| r.get(k).and_then(|v| v.as_u64()).with_context(|| format!("{}: a memory entry has no {k}", path.display()));
            Ok((f("start")?, f("end")?))
        })
        .collect()
}

/// The kernel's core count (MAX_NUM_NODES in gen_config.json).
fn kernel_cores(prefix: &Path) -> Result<u64> {
    let path = prefix.join("libsel4/include/kernel/gen_config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
        .with_context(|| format!("parsing {}", path.display()))?;
    let n = match cfg.get("MAX_NUM_NODES") {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(v) => v.as_u64(),
        None => Some(1),
    };
    n.with_context(|| format!("{}: MAX_NUM_NODES is not a number", path.display()))
}

/// Boot page tables for EL2 (TTBR0_EL2, 4 KiB granule, 48-bit VA): identity-mapped device
/// memory below the kernel window, and the kernel window (normal memory) mapping the
/// kernel's virtual range, to the end of its 1 GiB, onto its physical addresses.
struct Tables {
    base: u64,
    t: Vec<[u64; 512]>,
}

const AF: u64 = 1 << 10;
const DEVICE: u64 = AF; // MAIR index 0: Device-nGnRnE
const NORMAL: u64 = AF | (3 << 8) | (4 << 2); // inner shareable, MAIR index 4: normal write-back

impl Tables {
    fn new(base: u64) -> Tables {
        Tables { base, t: vec![[0; 512]] }
    }

    fn map(&mut self, mut va: u64, mut pa: u64, end: u64, attrs: u64) {
        while va < end {
            let mut table = 0;
            for level in 0..4u32 {
                let shift = 39 - 9 * level;
                let idx = ((va >> shift) & 511) as usize;
                let size = 1u64 << shift;
                if level > 0 && va % size == 0 && pa % size == 0 && end - va >= size {
                    self.t[table][idx] = pa | attrs | if level == 3 { 0b11 } else { 0b01 };
                    va += size;
                    pa += size;
                    break;
                }
                let d = self.t[table][idx];
                table = if d & 0b11 == 0b11 {
                    ((d & 0xffff_ffff_f000) - self.base) as usize / PAGE as usize
                } else {
                    self.t.push([0; 512]);
                    let n = self.t.len() - 1;
                    self.t[table][idx] = (self.base + n as u64 * PAGE) | 0b11;
                    n
                };
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.t.iter().flatten().flat_map(|d| d.to_le_bytes()).collect()
    }
}

/// Everything placed: the chunks and init_kernel's arguments.
struct Layout {
    chunks: Vec<Chunk>,
    ttbr0: u64,
    kernel_entry: u64,
    args: [u64; 6],
}

/// Places kernel, root server, DTB (in seL4's RAM) and the page tables (at `tables_at`, or
/// after the DTB).
fn layout(kernel: &[u8], root: &[u8], dtb: &[u8], tables_at: Option<u64>) -> Result<Layout> {
    let ksegs = segments(kernel).context("reading the seL4 kernel")?;
    let kfile = object::File::parse(kernel).context("parsing the seL4 kernel")?;
    let vstart = ksegs.iter().map(|s| s.vaddr).min().unwrap();
    let vend = ksegs.iter().map(|s| s.vaddr + s.memsz).max().unwrap();
    let pv = ksegs[0].vaddr.wrapping_sub(ksegs[0].paddr);
    ensure!(ksegs.iter().all(|s| s.vaddr.wrapping_sub(s.paddr) == pv), "the seL4 kernel's segments are not all at one virtual-physical offset");
    let kend = ksegs.iter().map(|s| s.paddr + s.memsz).max().unwrap();
    let mut chunks: Vec<Chunk> =
        ksegs.into_iter().map(|s| Chunk { kind: KERNEL, dst: s.paddr, memsz: s.memsz, data: s.data }).collect();

    // The root server, flattened from its lowest page to its highest.
    let usegs = segments(root).context("reading the root server")?;
    let ufile = object::File::parse(root).context("parsing the root server")?;
    let uv = usegs.iter().map(|s| s.vaddr).min().unwrap() & !(PAGE - 1);
    let uv_end = page_up(usegs.iter().map(|s| s.vaddr + s.memsz).max().unwrap());
    let mut flat = vec![0u8; (usegs.iter().map(|s| s.vaddr + s.data.len() as u64).max().unwrap() - uv) as usize];
    for s in &usegs {
        let at = (s.vaddr - uv) as usize;
        flat[at..at + s.data.len()].copy_from_slice(&s.data);
    }
    // seL4 reserves kernel, DTB and user image in this order: each must lie above the last.
    let dtb_p = page_up(kend);
    chunks.push(Chunk { kind: DTB, dst: dtb_p, memsz: dtb.len() as u64, data: dtb.to_vec() });
    let ui_p = page_up(dtb_p + dtb.len() as u64);
    let ui_end = ui_p + (uv_end - uv);
    chunks.push(Chunk { kind: ROOT_SERVER, dst: ui_p, memsz: uv_end - uv, data: flat });

    let ttbr0 = tables_at.unwrap_or(ui_end);
    let mut t = Tables::new(ttbr0);
    let window_end = (vend & 0xffff_ffff_ffff).next_multiple_of(1 << 30);
    let vstart = vstart & 0xffff_ffff_ffff;
    ensure!(vstart % PAGE == 0, "the seL4 kernel does not start on a page ({vstart:#x})");
    t.map(0, 0, vstart, DEVICE);
    t.map(vstart, vstart.wrapping_sub(pv & 0xffff_ffff_ffff), window_end, NORMAL);
    let tables = t.bytes();
    chunks.push(Chunk { kind: TABLES, dst: ttbr0, memsz: tables.len() as u64, data: tables });

    let pv_offset = ui_p.wrapping_sub(uv);
    Ok(Layout { chunks, ttbr0, kernel_entry: kfile.entry(), args: [ui_p, ui_end, pv_offset, ufile.entry(), dtb_p, dtb.len() as u64] })
}

fn name(kind: u64) -> &'static str {
    ["?", "kernel", "root server", "device tree", "boot page tables"][kind as usize]
}

/// Writes the loader header into `bytes` (the loader's first bytes).
fn fill_header(bytes: &mut [u8], b: &Board, smp: Smp, cores: u64, ram: &[(u64, u64)], l: &Layout, src_off: &[u64]) -> Result<()> {
    ensure!(ram.len() <= MAX_RAM, "the device tree lists {} RAM ranges; the loader takes {MAX_RAM}", ram.len());
    ensure!(l.chunks.len() <= MAX_CHUNKS, "{} chunks; the loader takes {MAX_CHUNKS}", l.chunks.len());
    let mut w = |off: usize, v: u64| bytes[HEADER_AT + off..HEADER_AT + off + 8].copy_from_slice(&v.to_le_bytes());
    w(16, b.uart as u64);
    w(24, b.uart_base);
    w(32, smp as u64);
    w(40, cores);
    w(48, l.ttbr0);
    w(56, l.kernel_entry);
    for (i, a) in l.args.iter().enumerate() {
        w(64 + 8 * i, *a);
    }
    w(112, ram.len() as u64);
    for (i, r) in ram.iter().enumerate() {
        w(120 + 16 * i, r.0);
        w(128 + 16 * i, r.1);
    }
    w(184, l.chunks.len() as u64);
    for (i, (c, off)) in l.chunks.iter().zip(src_off).enumerate() {
        let at = 192 + 40 * i;
        w(at, c.kind);
        w(at + 8, c.dst);
        w(at + 16, *off);
        w(at + 24, c.data.len() as u64);
        w(at + 32, c.memsz);
    }
    Ok(())
}

/// Inputs of [`write_image`].
pub struct ImageParts<'a> {
    pub platform: &'a str,
    pub sel4_prefix: &'a Path,
    /// The root server with its bundle embedded.
    pub root_server: &'a [u8],
}

/// Writes the bootable image for `parts.platform` to `out` (see the module doc).
pub fn write_image(parts: &ImageParts, out: &Path) -> Result<()> {
    let b = board(parts.platform)?;
    let prefix = parts.sel4_prefix;
    let read = |p: &str| {
        let path = prefix.join(p);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let kernel = read("bin/kernel.elf")?;
    let dtb = read("support/kernel.dtb")?;
    let facts = dtb_facts(&dtb, &prefix.join("support/kernel.dtb"))?;
    let sel4_ram = sel4_memory(prefix)?;
    let ram = if facts.ram.is_empty() { sel4_ram.clone() } else { facts.ram.clone() };
    let cores = kernel_cores(prefix)?;
    ensure!(cores <= MAX_CORES, "the kernel in {} is built for {cores} cores; the loader starts at most {MAX_CORES}", prefix.display());
    let smp = if b.smp == Smp::SpinTable { b.smp } else { facts.psci.unwrap_or(b.smp) };
    let loader_path = loader_binary()?;
    let loader = read_loader(&loader_path)?;

    let tables_at = match b.format {
        Format::Elf(at) => Some(at + loader.memsz),
        _ => None,
    };
    let l = layout(&kernel, parts.root_server, &dtb, tables_at).with_context(|| format!("laying out the image for {}", parts.platform))?;
    for c in &l.chunks {
        let (s, e) = (c.dst, c.dst + c.memsz);
        let pool = if c.kind == TABLES && tables_at.is_some() { &ram } else { &sel4_ram };
        ensure!(
            pool.iter().any(|r| s >= r.0 && e <= r.1),
            "the {} ({s:#x}..{e:#x}) does not fit in the RAM of {} ({})",
            name(c.kind),
            parts.platform,
            pool.iter().map(|r| format!("{:#x}..{:#x}", r.0, r.1)).collect::<Vec<_>>().join(", ")
        );
    }

    let image = match b.format {
        Format::Elf(at) => {
            let mut bytes = loader.bytes.clone();
            let offs = vec![IN_PLACE; l.chunks.len()];
            fill_header(&mut bytes, &b, smp, cores, &ram, &l, &offs)?;
            clear_of(&l.chunks, at, at + loader.memsz, "the loader")?;
            let mut segs = vec![(at, bytes.as_slice(), loader.memsz)];
            segs.extend(l.chunks.iter().map(|c| (c.dst, c.data.as_slice(), c.memsz)));
            elf_image(at, &segs)
        }
        Format::Raw(_) | Format::Image => {
            let mut bytes = loader.bytes.clone();
            bytes.resize(loader.memsz as usize, 0);
            let mut offs = Vec::new();
            for c in &l.chunks {
                bytes.resize(page_up(bytes.len() as u64) as usize, 0);
                offs.push(bytes.len() as u64);
                bytes.extend_from_slice(&c.data);
            }
            bytes.resize(page_up(bytes.len() as u64) as usize, 0);
            fill_header(&mut bytes, &b, smp, cores, &ram, &l, &offs)?;
            let len = bytes.len() as u64;
            bytes[HEADER_AT + 744..HEADER_AT + 752].copy_from_slice(&len.to_le_bytes());
            let dst_end = l.chunks.iter().map(|c| c.dst + c.memsz).max().unwrap();
            let load_at = match b.format {
                Format::Raw(at) => {
                    // Loaded where the payload goes (the Pi's kernel starts at 0x1000): the
                    // loader first moves itself above everything it copies.
                    let end = at + bytes.len() as u64;
                    if l.chunks.iter().any(|c| c.dst < end && at < c.dst + c.memsz) {
                        let run_at = dst_end.max(end).next_multiple_of(2 << 20);
                        ensure!(
                            ram.iter().any(|r| run_at >= r.0 && run_at + bytes.len() as u64 <= r.1),
                            "the image ({} bytes) does not fit in RAM above the payload at {run_at:#x}",
                            bytes.len()
                        );
                        bytes[HEADER_AT + 736..HEADER_AT + 744].copy_from_slice(&run_at.to_le_bytes());
                        run_at
                    } else {
                        at
                    }
                }
                _ => {
                    // booti places the Image at the 2 MiB-aligned base of RAM + text_offset:
                    // right above everything the loader copies.
                    let base = ram.iter().map(|r| r.0).min().unwrap_or(0).next_multiple_of(2 << 20);
                    let text_offset = dst_end.saturating_sub(base).next_multiple_of(2 << 20);
                    bytes[8..16].copy_from_slice(&text_offset.to_le_bytes());
                    bytes[16..24].copy_from_slice(&len.to_le_bytes());
                    base + text_offset
                }
            };
            clear_of(&l.chunks, load_at, load_at + bytes.len() as u64, "the image the boot chain loads")?;
            bytes
        }
    };
    std::fs::write(out, image).with_context(|| format!("writing {}", out.display()))
}

/// Every chunk lies outside `[start, end)`, which holds `what`.
fn clear_of(chunks: &[Chunk], start: u64, end: u64, what: &str) -> Result<()> {
    for c in chunks {
        ensure!(
            c.dst + c.memsz <= start || c.dst >= end,
            "the {} ({:#x}..{:#x}) overlaps {what} at {start:#x}..{end:#x}",
            name(c.kind),
            c.dst,
            c.dst + c.memsz
        );
    }
    Ok(())
}

/// An ELF whose PT_LOAD segments `(paddr, bytes, memsz)` QEMU's `-kernel` places as they are.
fn elf_image(entry: u64, segs: &[(u64, &[u8], u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let mut out = Vec::new();
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // ELF64, LE, current
    out.extend_from_slice(&elf::ET_EXEC.0.to_le_bytes());
    out.extend_from_slice(&elf::EM_AARCH64.0.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    for v in [entry, phoff, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // e_entry, e_phoff, e_shoff
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, segs.len() as u16, 64, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    }
    let mut off = page_up(phoff + 56 * segs.len() as u64);
    let mut body = Vec::new();
    for (paddr, data, memsz) in segs {
        out.extend_from_slice(&elf::PT_LOAD.0.to_le_bytes());
        out.extend_from_slice(&(elf::PF_R | elf::PF_W | elf::PF_X).0.to_le_bytes());
        for v in [off, *paddr, *paddr, data.len() as u64, *memsz, PAGE] {
            out.extend_from_slice(&v.to_le_bytes()); // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        }
        body.extend_from_slice(data);
        let next = page_up(off + data.len() as u64);
        body.resize(body.len() + (next - off - data.len() as u64) as usize, 0);
        off = next;
    }
    out.resize(page_up(out.len() as u64) as usize, 0);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `t` like the MMU would (4 levels from its base).
    fn translate(t: &Tables, va: u64) -> Option<(u64, u64)> {
        let mut table = 0usize;
        for level in 0..4u32 {
            let shift = 39 - 9 * level;
            let d = t.t[table][((va >> shift) & 511) as usize];
            match d & 0b11 {
                0b11 if level < 3 => table = ((d & 0xffff_ffff_f000) - t.base) as usize / PAGE as usize,
                0b01 | 0b11 => {
                    let mask = (1u64 << shift) - 1;
                    return Some(((d & 0xffff_ffff_f000 & !mask) | (va & mask), d & 0xfff));
                }
                _ => return None,
            }
        }
        None
    }

    #[test]
    fn tables_map_identity_and_the_kernel_window() {
        let (vstart, pstart) = (0x80_6000_0000u64, 0x6000_0000u64);
        let mut t = Tables::new(0x4001_0000);
        t.map(0, 0, vstart, DEVICE);
        t.map(vstart, pstart, 0x80_8000_0000, NORMAL);
        assert_eq!(translate(&t, 0x900_0000), Some((0x900_0000, DEVICE | 1)));
        assert_eq!(translate(&t, 0x4000_1234), Some((0x4000_1234, DEVICE | 1)));
        assert_eq!(translate(&t, vstart + 0x1234), Some((pstart + 0x1234, NORMAL | 1)));
        assert_eq!(translate(&t, 0x80_7fff_fff8), Some((0x7fff_fff8, NORMAL | 1)));
        assert_eq!(translate(&t, 0x80_8000_0000), None);
    }

    #[test]
    fn elf_image_places_each_segment() {
        let img = elf_image(0x4000_0000, &[(0x4000_0000, b"loader", 0x2000), (0x6000_0000, b"kernel", 0x1000)]);
        let segs = segments(&img).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[1].paddr, segs[1].data.as_slice(), segs[1].memsz), (0x6000_0000, &b"kernel"[..], 0x1000));
        assert_eq!(object::File::parse(&*img).unwrap().entry(), 0x4000_0000);
    }

    /// `elf_image` with each segment's vaddr moved by `v_minus_p`.
    fn elf_at(entry: u64, v_minus_p: u64, segs: &[(u64, &[u8], u64)]) -> Vec<u8> {
        let mut img = elf_image(entry, segs);
        for i in 0..segs.len() {
            let at = 64 + 56 * i + 16;
            let p = u64::from_le_bytes(img[at..at + 8].try_into().unwrap());
            img[at..at + 8].copy_from_slice(&p.wrapping_add(v_minus_p).to_le_bytes());
        }
        img
    }

    #[test]
    fn layout_puts_dtb_then_root_server_after_the_kernel() {
        let kernel = elf_at(0x80_6000_0000, 0x80_0000_0000, &[(0x6000_0000, b"kernel", 0x23_f000)]);
        let root = elf_image(0x40_1000, &[(0x40_0000, b"text", 0x1000), (0x40_1000, b"data", 0x3000)]);
        let l = layout(&kernel, &root, &[0xd0; 0x1ed8], None).unwrap();
        let kinds: Vec<(u64, u64)> = l.chunks.iter().map(|c| (c.kind, c.dst)).collect();
        assert_eq!(kinds, [(KERNEL, 0x6000_0000), (DTB, 0x6023_f000), (ROOT_SERVER, 0x6024_1000), (TABLES, 0x6024_5000)]);
        // ui_p_reg_start/end, pv_offset (paddr - vaddr), v_entry, dtb_addr_p, dtb_size
        assert_eq!(l.args, [0x6024_1000, 0x6024_5000, 0x6024_1000 - 0x40_0000, 0x40_1000, 0x6023_f000, 0x1ed8]);
        assert_eq!((l.kernel_entry, l.ttbr0), (0x80_6000_0000, 0x6024_5000));
        let root_chunk = &l.chunks[2];
        assert_eq!((&root_chunk.data[..4], &root_chunk.data[0x1000..0x1004]), (&b"text"[..], &b"data"[..]));
        let t = Tables { base: l.ttbr0, t: l.chunks[3].data.chunks(4096).map(|p| std::array::from_fn(|i| u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap()))).collect() };
        assert_eq!(tests::translate(&t, 0x80_6000_1234).map(|x| x.0), Some(0x6000_1234));
    }
}
