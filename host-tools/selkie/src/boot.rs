//! `selkie pack IMAGE... --platform <seL4 platform> -o image.elf`: a bootable seL4 image.
//!
//! 1. The apps' bundle (manifest.json, each rootfs cpio and text store, by the names the
//!    manifest uses) is written as one newc cpio. Each text store's data is page-aligned,
//!    so that the rewritten executable segments it holds (page-aligned within it) can be
//!    mapped into apps without a copy.
//! 2. It is embedded into the root-server ELF as a new read-only PT_LOAD segment placed
//!    right after the image, and the root server's `SELKIE_BUNDLE` symbol is patched with
//!    its address and length. The new segment's program header replaces PT_GNU_STACK.
//! 3. [`crate::loader`] puts selkie's own kernel loader, the kernel and DTB from
//!    `SEL4_PREFIX` and the root server into the image QEMU or a board boots.

use crate::pack::{self, PackOptions};
use crate::reference::ImageRef;
use anyhow::{bail, ensure, Context, Result};
use object::elf::{self, FileHeader64, ProgramHeader64};
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::{LittleEndian as LE, Object, ObjectSymbol, U32, U64};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// seL4 platforms selkie has kernel configs for (see `platforms/`), with the name seL4's
/// build gives each (`PLAT` in gen_config.json).
pub const PLATFORMS: &[(&str, &str)] = &[("qemu-arm-virt", "qemu-arm-virt"), ("raspi4b", "bcm2711"), ("imx8mp-evk", "imx8mp-evk")];

/// seL4's name for selkie platform `platform`.
pub fn sel4_plat(platform: &str) -> Option<&'static str> {
    PLATFORMS.iter().find(|p| p.0 == platform).map(|p| p.1)
}

/// The symbol the root server reads the bundle's location from (see root-server/src/kernel.rs).
pub const BUNDLE_SYMBOL: &str = "SELKIE_BUNDLE";
const BUNDLE_MAGIC: &[u8; 8] = b"SELKIEBD";
const PAGE: u64 = 4096;

pub struct BootOptions {
    /// seL4 platform name (`qemu-arm-virt`, ...).
    pub platform: String,
    /// The built root-server ELF.
    pub root_server: PathBuf,
    /// Installed seL4 (kernel, libsel4, support/kernel.dtb and platform_gen.yaml).
    pub sel4_prefix: PathBuf,
}

/// The name of root-server/build.sh's build dir for the kernel in `sel4_prefix`: seL4's
/// PLAT and the first 8 hex digits of the SHA-256 of its gen_config.json (one dir per
/// kernel configuration: an SMP and a 1-core kernel of one platform are built apart).
pub fn root_server_key(sel4_prefix: &Path) -> Result<String> {
    use sha2::Digest as _;
    let path = sel4_prefix.join("libsel4/include/kernel/gen_config.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let plat = cfg.get("PLAT").and_then(|v| v.as_str()).with_context(|| format!("{} names no PLAT", path.display()))?;
    Ok(format!("{plat}-{}", &hex::encode(sha2::Sha256::digest(&bytes))[..8]))
}

/// Where `root-server/build.sh` leaves the root server for the kernel in `sel4_prefix`,
/// relative to the `selkie` binary's target dir
/// (target/<profile>/selkie -> target/root-server/<PLAT>-<hash>/..., see [`root_server_key`]).
pub fn default_root_server(sel4_prefix: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SELKIE_ROOT_SERVER") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?;
    let p = target.join("root-server").join(root_server_key(sel4_prefix).ok()?).join("aarch64-sel4-nofp/release/selkie-root-server.elf");
    p.exists().then_some(p)
}

/// The root server for `platform`: `SELKIE_ROOT_SERVER`, the one built next to this
/// `selkie` (see [`default_root_server`]), or, when there is none, one built now with the
/// checkout's `root-server/build.sh` against `sel4_prefix` (a few minutes the first time;
/// a spinner on a terminal). Says exactly what is missing when it cannot be built.
pub fn root_server_for(platform: &str, sel4_prefix: &Path) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../root-server/build.sh");
    if let Some(p) = default_root_server(sel4_prefix) {
        // One built next to us but older than the checkout's sources is rebuilt (cargo
        // does only what changed), unless it was named or cannot be rebuilt here.
        let newer = if std::env::var_os("SELKIE_ROOT_SERVER").is_none() { newer_source(&p) } else { None };
        match newer {
            None => return Ok(p),
            Some(src) if script.exists() && check_prefix(sel4_prefix, platform).is_ok() => {
                tracing::info!("the root server {} is older than {}: rebuilding it", p.display(), src.display());
            }
            Some(src) => {
                tracing::warn!("the root server {} is older than {} and cannot be rebuilt here: using it as it is", p.display(), src.display());
                return Ok(p);
            }
        }
    }
    sel4_plat(platform).with_context(|| format!("no seL4 platform {platform:?} (known: qemu-arm-virt, raspi4b, imx8mp-evk)"))?;
    check_prefix(sel4_prefix, platform)?;
    ensure!(
        script.exists(),
        "no root server for {platform}, and no selkie checkout to build one from ({} is gone): pass --root-server PATH",
        script.display()
    );
    for (tool, why) in [("cargo", "rustup (https://rustup.rs) or make deps"), ("python3", "apt-get install python3")] {
        ensure!(
            Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
            "building the root server needs {tool}: install it with {why}"
        );
    }
    let exe = std::env::current_exe().context("finding the selkie binary")?;
    let target = exe.parent().and_then(Path::parent).context("the selkie binary's target directory")?.join("root-server").join(root_server_key(sel4_prefix)?);
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    let log = target.join("build.log");
    let spinner = crate::progress::spinner(&format!("building the root server for {platform} (root-server/build.sh; the first time takes minutes)"));
    let out = Command::new("sh")
        .arg(&script)
        .env("SEL4_PREFIX", sel4_prefix)
        .env("CARGO_TARGET_DIR", &target)
        .stderr(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    spinner.finish_and_clear();
    if !out.status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("building the root server for {platform} failed ({}; the whole log is {}):\n{}", out.status, log.display(), tail.join("\n"));
    }
    let built = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ensure!(built.exists(), "root-server/build.sh said it built {}, but there is no such file", built.display());
    if newer_source(&built).is_some() {
        // Cargo found nothing to do (a source's time changed, not its content): the
        // root server is as new as its sources.
        std::fs::File::options()
            .append(true)
            .open(&built)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .with_context(|| format!("marking {} as up to date", built.display()))?;
    }
    Ok(built)
}

/// A source file of the root server in this checkout (its crate, musl-shim, the manifest
/// crate, the workspace lock) changed after `built` was made: the newest such file.
fn newer_source(built: &Path) -> Option<PathBuf> {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().ok()?;
    let sources: Vec<PathBuf> = ["root-server/src", "root-server/Cargo.toml", "root-server/build.sh", "root-server/Cargo.lock", "musl-shim/src", "musl-shim/Cargo.toml", "manifest/src", "manifest/Cargo.toml"]
        .iter()
        .map(|p| top.join(p))
        .collect();
    newer_than(built, &sources)
}

/// The newest file under `sources` (files or directories) changed after `built` was made.
pub(crate) fn newer_than(built: &Path, sources: &[PathBuf]) -> Option<PathBuf> {
    let made = std::fs::metadata(built).and_then(|m| m.modified()).ok()?;
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = sources.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else if let Ok(t) = meta.modified() {
            if t > made && newest.as_ref().is_none_or(|n| t > n.0) {
                newest = Some((t, p));
            }
        }
    }
    newest.map(|n| n.1)
}

/// Checks that `prefix` is an installed seL4 for `platform`; says what is missing otherwise.
pub fn check_prefix(prefix: &Path, platform: &str) -> Result<()> {
    let need = ["bin/kernel.elf", "support/kernel.dtb", "support/platform_gen.yaml", "libsel4/include/kernel/gen_config.json"];
    for n in need {
        let p = prefix.join(n);
        ensure!(
            p.exists(),
            "SEL4_PREFIX={} has no {n}: install seL4 16.0.0 there (see README.md, Prerequisites for booting seL4)",
            prefix.display()
        );
    }
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(prefix.join("libsel4/include/kernel/gen_config.json"))?)
        .context("parsing gen_config.json")?;
    let plat = cfg.get("PLAT").and_then(|v| v.as_str()).unwrap_or("");
    let want = sel4_plat(platform).unwrap_or(platform);
    ensure!(plat == want, "SEL4_PREFIX={} is a kernel for {plat:?}, not {platform:?} ({want:?})", prefix.display());
    Ok(())
}

/// Name of the filler members that align the next member's data to a page.
const PAD_NAME: &str = "!pad";

/// Writes the bundle cpio for prepared apps.
pub fn bundle(prepared: &[pack::Prepared], ends_with: Option<&str>) -> Result<Vec<u8>> {
    // (name, data, page-align the data)
    let mut members: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut apps = Vec::new();
    for p in prepared {
        let (rootfs, text) = pack::member_names(p, prepared.len());
        apps.push(p.app(&rootfs, Some(&text))?);
        let (cpio, store) = p.rootfs_and_text()?;
        members.push((text, store, true));
        members.push((rootfs, cpio, false));
    }
    let manifest = crate::runtime::manifest(apps, ends_with)?;
    members.insert(0, ("manifest.json".into(), serde_json::to_vec_pretty(&manifest)?, false));
    let mut out = Vec::new();
    let mut ino = 0u32;
    let mut entry = |out: &mut Vec<u8>, name: &str, data: &[u8]| -> Result<()> {
        ino += 1;
        let len = u32::try_from(data.len()).with_context(|| format!("{name} is larger than 4 GiB"))?;
        let mut w = cpio::newc::Builder::new(name).ino(ino).mode(0o100644).nlink(1).write(out, len);
        w.write_all(data)?;
        w.finish()?;
        Ok(())
    };
    for (name, data, align) in &members {
        if *align {
            let fill = pad_len(out.len() as u64, name) as usize;
            entry(&mut out, PAD_NAME, &vec![0; fill])?;
        }
        entry(&mut out, name, data)?;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

/// newc header plus NUL-terminated name, padded to 4 bytes.
fn newc_header(name: &str) -> u64 {
    (110 + name.len() as u64 + 1 + 3) & !3
}

/// Data length of a [`PAD_NAME`] member written at offset `at` so that the data of the
/// member `name` written after it starts on a page.
fn pad_len(at: u64, name: &str) -> u64 {
    let after_pad = at + newc_header(PAD_NAME);
    page_up(after_pad + newc_header(name)) - newc_header(name) - after_pad
}

fn page_up(x: u64) -> u64 {
    (x + PAGE - 1) & !(PAGE - 1)
}

/// Embeds `bundle` into the root-server ELF `root` (see the module doc).
pub fn embed(root: &[u8], bundle: &[u8]) -> Result<Vec<u8>> {
    let e = LE;
    let hdr = FileHeader64::<LE>::parse(root).context("the root server is not a 64-bit little-endian ELF")?;
    ensure!(hdr.e_machine(e) == elf::EM_AARCH64, "the root server is not an aarch64 ELF");
    let phdrs = hdr.program_headers(e, root).context("reading program headers")?;
    let file = object::File::parse(root).context("parsing the root server")?;
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(BUNDLE_SYMBOL))
        .with_context(|| format!("the root server has no {BUNDLE_SYMBOL} symbol (was it stripped?)"))?;
    let sym_addr = sym.address();
    let sym_off = phdrs
        .iter()
        .filter(|p| p.p_type(e) == elf::PT_LOAD)
        .find(|p| sym_addr >= p.p_vaddr(e) && sym_addr + 24 <= p.p_vaddr(e) + p.p_filesz(e))
        .map(|p| (p.p_offset(e) + sym_addr - p.p_vaddr(e)) as usize)
        .context("the bundle symbol is not in a loaded, file-backed segment")?;
    ensure!(
        &root[sym_off..sym_off + 8] == BUNDLE_MAGIC,
        "{BUNDLE_SYMBOL} does not hold the expected magic: already packed, or a different root server"
    );
    ensure!(root[sym_off + 8..sym_off + 24].iter().all(|&b| b == 0), "this root server already holds a bundle");
    let end = phdrs
        .iter()
        .filter(|p| p.p_type(e) == elf::PT_LOAD)
        .map(|p| p.p_vaddr(e) + p.p_memsz(e))
        .max()
        .context("the root server has no PT_LOAD")?;
    let vaddr = page_up(end);

    // The root server's runtime reads its program headers from memory right after the ELF
    // header, so the table cannot move or grow: the bundle's PT_LOAD takes the place of
    // PT_GNU_STACK, which means nothing on seL4.
    let slot = phdrs
        .iter()
        .position(|p| p.p_type(e) == elf::PT_GNU_STACK)
        .context("the root server has no PT_GNU_STACK entry to turn into the bundle's segment")?;
    let mut out = root.to_vec();
    out.resize(page_up(out.len() as u64) as usize, 0);
    let offset = out.len() as u64;
    out.extend_from_slice(bundle);
    let len = bundle.len() as u64;
    let ph = ProgramHeader64::<LE> {
        p_type: U32::new(e, elf::PT_LOAD),
        p_flags: U32::new(e, elf::PF_R),
        p_offset: U64::new(e, offset),
        p_vaddr: U64::new(e, vaddr),
        p_paddr: U64::new(e, vaddr),
        p_filesz: U64::new(e, len),
        p_memsz: U64::new(e, len),
        p_align: U64::new(e, PAGE),
    };
    let at = hdr.e_phoff(e) as usize + slot * usize::from(hdr.e_phentsize(e));
    out[at..at + 56].copy_from_slice(object::pod::bytes_of(&ph));
    out[sym_off + 8..sym_off + 16].copy_from_slice(&vaddr.to_le_bytes());
    out[sym_off + 16..sym_off + 24].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// `selkie pack IMAGE... --platform <seL4 platform> -o image.elf`.
pub fn pack_image(refs: &[ImageRef], opts: &PackOptions, boot: &BootOptions, out: &Path) -> Result<Vec<String>> {
    check_boot(boot)?;
    let prepared = pack::prepare_all(refs, opts)?;
    pack_prepared(&prepared, boot, out, None)
}

/// `selkie compose pack`: every service of `project`, in start order, in one image; with
/// `ends_with`, the image ends when that service does (compose's `--exit-code-from`).
pub fn pack_compose(project: &crate::compose::Project, boot: &BootOptions, out: &Path, ends_with: Option<&str>) -> Result<Vec<String>> {
    check_boot(boot)?;
    let prepared = pack::prepare_compose(project)?;
    pack_prepared(&prepared, boot, out, ends_with)
}

fn check_boot(boot: &BootOptions) -> Result<()> {
    ensure!(
        sel4_plat(&boot.platform).is_some(),
        "unknown seL4 platform {:?} (known: {})",
        boot.platform,
        PLATFORMS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
    );
    check_prefix(&boot.sel4_prefix, &boot.platform)
}

fn pack_prepared(prepared: &[pack::Prepared], boot: &BootOptions, out: &Path, ends_with: Option<&str>) -> Result<Vec<String>> {
    let root = std::fs::read(&boot.root_server).with_context(|| {
        format!("reading the root server {} (build it with root-server/build.sh, or pass --root-server)", boot.root_server.display())
    })?;
    let b = bundle(prepared, ends_with)?;
    let elf = embed(&root, &b).with_context(|| format!("embedding the bundle into {}", boot.root_server.display()))?;
    let parts = crate::loader::ImageParts { platform: &boot.platform, sel4_prefix: &boot.sel4_prefix, root_server: &elf };
    crate::loader::write_image(&parts, out)?;
    Ok(prepared.iter().map(|p| p.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal aarch64 ELF with one PT_LOAD holding the bundle symbol.
    fn tiny_root() -> Vec<u8> {
        use object::write::{Object as W, StandardSection, Symbol, SymbolSection};
        let mut o = W::new(object::BinaryFormat::Elf, object::Architecture::Aarch64, object::Endianness::Little);
        let sec = o.section_id(StandardSection::ReadOnlyData);
        let mut data = BUNDLE_MAGIC.to_vec();
        data.extend_from_slice(&[0; 16]);
        let off = o.append_section_data(sec, &data, 8);
        o.add_symbol(Symbol {
            name: BUNDLE_SYMBOL.as_bytes().to_vec(),
            value: off,
            size: 24,
            kind: object::SymbolKind::Data,
            scope: object::SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(sec),
            flags: object::SymbolFlags::None,
        });
        o.write().unwrap()
    }

    #[test]
    fn exe_members_start_on_a_page() {
        for name in ["a.exe", "ab.exe", "abc.exe", "abcd.exe"] {
            for before in [0usize, 4, 116, 4092, 5000] {
                let mut out = vec![0u8; before];
                let fill = pad_len(before as u64, name);
                let mut w = cpio::newc::Builder::new(PAD_NAME).mode(0o100644).write(&mut out, fill as u32);
                w.write_all(&vec![0; fill as usize]).unwrap();
                w.finish().unwrap();
                let mut w = cpio::newc::Builder::new(name).mode(0o100644).write(&mut out, 4);
                w.write_all(b"\x7fELF").unwrap();
                w.finish().unwrap();
                let at = out.windows(4).rposition(|x| x == b"\x7fELF").unwrap();
                assert_eq!(at as u64 % PAGE, 0, "{name} after {before} bytes");
            }
        }
    }

    #[test]
    fn refuses_objects_without_segments() {
        // A relocatable object has no PT_LOAD: embedding must fail with a reason.
        let err = embed(&tiny_root(), b"bundle").unwrap_err();
        assert!(format!("{err:#}").contains("segment"), "{err:#}");
    }
}
