//! `selkie pack ... --platform raspi4b --sdcard -o sd.img`: a complete Raspberry Pi 4 SD-card
//! image that `dd` writes to a card.
//!
//! The card holds an MBR with one FAT32 partition (type 0x0c, from 1 MiB) with what the Pi 4's
//! boot chain reads: the GPU firmware `start4.elf` and `fixup4.dat` (Debian's `raspi-firmware`
//! package), the board's device tree `bcm2711-rpi-4-b.dtb` (Debian's kernel package, which is
//! where Debian's own raspi-firmware kernel hook takes it from: `raspi-firmware` ships none),
//! `config.txt` and the `kernel8.img` that selkie packed. The firmware loads `kernel8.img` at
//! 0x80000 and starts it at EL2 with the secondary cores on the spin table, which is how
//! `qemu/raspi4b` starts it too.
//!
//! The firmware files come from `--firmware DIR`, or are fetched once from the Debian mirror this
//! machine's apt already uses (a private apt state under selkie's cache, no root needed) and kept
//! in `$XDG_CACHE_HOME/selkie/raspi-firmware/`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The files the Pi 4 firmware needs from the firmware set, besides config.txt and the kernel.
pub const FIRMWARE_FILES: &[&str] = &["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb"];

/// The partition starts at 1 MiB, as Raspberry Pi OS and every partitioning tool place it.
const PART_START: u64 = 1 << 20;
const SECTOR: u64 = 512;
/// The smallest FAT32 partition (FAT32 needs at least 65525 clusters).
const MIN_PART: u64 = 64 << 20;
/// MBR partition type: FAT32 with LBA addressing.
const FAT32_LBA: u8 = 0x0c;

/// The firmware set that goes on the card, and where it came from.
pub struct Firmware {
    /// (file name on the card, bytes), in FIRMWARE_FILES order, then any licence files.
    pub files: Vec<(String, Vec<u8>)>,
    /// Where the files came from, for the summary line.
    pub origin: String,
}

/// `config.txt` for a selkie kernel8.img.
pub fn config_txt() -> String {
    "# Written by selkie pack --sdcard: boots selkie's loader (kernel8.img), which starts seL4.\n\
     # The firmware loads kernel8.img at 0x80000 and enters it at EL2; the other cores wait on the\n\
     # spin table until the loader releases them.\n\
     arm_64bit=1\n\
     kernel=kernel8.img\n\
     # The console: the mini UART on GPIO 14/15 at 115200 8N1 (this also fixes the core clock it runs from).\n\
     enable_uart=1\n\
     # seL4 drives the GIC-400 interrupt controller.\n\
     enable_gic=1\n"
        .to_string()
}

/// The firmware from a directory (`--firmware DIR`): every file of FIRMWARE_FILES must be there.
pub fn firmware_from_dir(dir: &Path) -> Result<Firmware> {
    let mut files = Vec::new();
    for name in FIRMWARE_FILES {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).with_context(|| format!("reading the Pi 4 firmware file {} (--firmware needs {})", p.display(), FIRMWARE_FILES.join(", ")))?;
        ensure!(!bytes.is_empty(), "the Pi 4 firmware file {} is empty", p.display());
        files.push((name.to_string(), bytes));
    }
    check_dtb(&files[2].1).with_context(|| format!("{}", dir.join(FIRMWARE_FILES[2]).display()))?;
    Ok(Firmware { files, origin: dir.display().to_string() })
}

fn check_dtb(bytes: &[u8]) -> Result<()> {
    let fdt = fdt::Fdt::new(bytes).map_err(|e| anyhow::anyhow!("not a device tree blob: {e:?}"))?;
    let compatible: Vec<&str> = fdt.root().compatible().all().collect();
    ensure!(
        compatible.iter().any(|c| *c == "raspberrypi,4-model-b" || c.starts_with("brcm,bcm2711")),
        "not a Raspberry Pi 4 device tree (its root is compatible with {compatible:?})"
    );
    Ok(())
}

/// selkie's cache directory for the Debian firmware.
fn cache_dir() -> PathBuf {
    crate::sdk::cache_dir().join("raspi-firmware")
}

/// The firmware from Debian's packages, fetched once into selkie's cache.
pub fn debian_firmware() -> Result<Firmware> {
    let dir = cache_dir();
    let current = dir.join("current");
    if FIRMWARE_FILES.iter().all(|f| current.join(f).is_file()) {
        let mut fw = firmware_from_dir(&current)?;
        add_licences(&current, &mut fw)?;
        fw.origin = std::fs::read_to_string(current.join("SOURCE")).unwrap_or_else(|_| current.display().to_string()).trim().to_string();
        return Ok(fw);
    }
    fetch_debian(&dir).with_context(|| format!("fetching the Pi 4 firmware from Debian into {} (or pass --firmware DIR with {})", dir.display(), FIRMWARE_FILES.join(", ")))?;
    debian_firmware()
}

fn add_licences(dir: &Path, fw: &mut Firmware) -> Result<()> {
    let p = dir.join("LICENCE.broadcom");
    if p.is_file() {
        fw.files.push(("LICENCE.broadcom".into(), std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?));
    }
    Ok(())
}

/// apt-get with a private state under `dir`: lists, archives and sources of its own, the
/// machine's keyrings, and no lock on the system's apt.
fn apt(dir: &Path, tool: &str) -> Command {
    let mut c = Command::new(tool);
    for (k, v) in [
        ("Dir::Etc::SourceList", dir.join("sources.list")),
        ("Dir::Etc::SourceParts", PathBuf::from("/dev/null")),
        ("Dir::State", dir.join("state")),
        ("Dir::State::Lists", dir.join("state/lists")),
        ("Dir::State::status", PathBuf::from("/dev/null")),
        ("Dir::Cache", dir.join("cache")),
        ("Dir::Cache::archives", dir.join("cache/archives")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    c.args(["-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64", "-o", "Debug::NoLocking=1", "-q"]);
    c
}

fn run(mut c: Command, what: &str) -> Result<String> {
    let out = c.output().with_context(|| format!("running {what}"))?;
    ensure!(out.status.success(), "{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads `raspi-firmware` and the kernel package `linux-image-arm64` points at, and keeps
/// start4.elf, fixup4.dat, the Pi 4 device tree and the firmware's licence in `dir/current`.
fn fetch_debian(dir: &Path) -> Result<()> {
    let (mirror, keyring) = crate::sdk::apt_mirror("bookworm")?;
    for d in ["state/lists/partial", "cache/archives/partial", "debs"] {
        std::fs::create_dir_all(dir.join(d)).with_context(|| format!("creating {}", dir.join(d).display()))?;
    }
    let signed = keyring.map(|k| format!(" signed-by={}", k.display())).unwrap_or_default();
    let list = format!("deb [arch=arm64{signed}] {mirror} bookworm main non-free-firmware\n");
    std::fs::write(dir.join("sources.list"), &list).with_context(|| format!("writing {}", dir.join("sources.list").display()))?;
    eprintln!("selkie: fetching the Pi 4 firmware (Debian raspi-firmware and linux-image-arm64's device trees) from {mirror}");
    let mut update = apt(dir, "apt-get");
    update.arg("update");
    run(update, &format!("apt-get update (bookworm main non-free-firmware from {mirror})"))?;
    // linux-image-arm64 is a metapackage: its Depends names the versioned kernel package.
    let mut show = apt(dir, "apt-cache");
    show.args(["show", "--no-all-versions", "linux-image-arm64"]);
    let meta = run(show, "apt-cache show linux-image-arm64")?;
    let kernel = meta
        .lines()
        .find_map(|l| l.strip_prefix("Depends:"))
        .and_then(|d| d.split(',').map(|p| p.trim().split(' ').next().unwrap_or("")).find(|p| p.starts_with("linux-image-")))
        .context("linux-image-arm64 names no linux-image-* package in its Depends")?
        .to_string();
    let debs = dir.join("debs");
    let mut dl = apt(dir, "apt-get");
    dl.current_dir(&debs).args(["download", "raspi-firmware", &kernel]);
    run(dl, &format!("apt-get download raspi-firmware {kernel}"))?;

    let staging = dir.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut source = Vec::new();
    for entry in std::fs::read_dir(&debs).with_context(|| format!("reading {}", debs.display()))? {
        let deb = entry?.path();
        let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let wanted: &[(&str, &str)] = if name.starts_with("raspi-firmware_") {
            &[
                ("usr/lib/raspi-firmware/start4.elf", "start4.elf"),
                ("usr/lib/raspi-firmware/fixup4.dat", "fixup4.dat"),
                ("usr/share/doc/raspi-firmware/copyright", "LICENCE.broadcom"),
            ]
        } else if name.starts_with(&format!("{kernel}_")) {
            &[("/broadcom/bcm2711-rpi-4-b.dtb", "bcm2711-rpi-4-b.dtb")]
        } else {
            continue;
        };
        extract(&deb, wanted, &staging)?;
        source.push(name);
    }
    for f in FIRMWARE_FILES {
        ensure!(staging.join(f).is_file(), "{f} was not in the downloaded packages ({})", source.join(", "));
    }
    source.sort();
    std::fs::write(staging.join("SOURCE"), format!("Debian {}\n", source.join(", ")))?;
    let current = dir.join("current");
    let _ = std::fs::remove_dir_all(&current);
    std::fs::rename(&staging, &current).with_context(|| format!("moving {} to {}", staging.display(), current.display()))?;
    let _ = std::fs::remove_dir_all(&debs);
    Ok(())
}

/// Copies the members of `deb` whose path ends with a wanted suffix into `to` under the
/// given name (dpkg-deb gives the data tarball; the tar crate reads it).
fn extract(deb: &Path, wanted: &[(&str, &str)], to: &Path) -> Result<()> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running dpkg-deb --fsys-tarfile {}", deb.display()))?;
    let stdout = child.stdout.take().context("dpkg-deb's output")?;
    let mut archive = tar::Archive::new(stdout);
    for entry in archive.entries().with_context(|| format!("reading {}", deb.display()))? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if let Some((_, name)) = wanted.iter().find(|(suffix, _)| path.ends_with(suffix)) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            std::fs::write(to.join(name), bytes).with_context(|| format!("writing {}", to.join(name).display()))?;
        }
    }
    let status = child.wait()?;
    ensure!(status.success(), "dpkg-deb --fsys-tarfile {} failed ({status})", deb.display());
    Ok(())
}

/// What [`write`] put on the card.
#[derive(Debug)]
pub struct Card {
    pub bytes: u64,
    pub partition_bytes: u64,
    pub files: Vec<(String, u64)>,
}

/// Writes the SD-card image `out`: MBR, one FAT32 boot partition with the firmware, config.txt
/// and `kernel8` as kernel8.img.
pub fn write(out: &Path, kernel8: &[u8], fw: &Firmware) -> Result<Card> {
    let config = config_txt();
    let mut files: Vec<(String, &[u8])> = fw.files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
    files.push(("config.txt".into(), config.as_bytes()));
    files.push(("kernel8.img".into(), kernel8));
    for (name, _) in &files {
        ensure!(name.len() <= 64 && !name.contains('/'), "bad file name {name:?} for the boot partition");
    }
    let payload: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    // Room for the FATs, directory clusters and slack; whole MiBs.
    let part = (payload + payload / 8 + (8 << 20)).max(MIN_PART).div_ceil(1 << 20) << 20;
    ensure!((PART_START + part) / SECTOR <= u64::from(u32::MAX), "the boot partition would be {part} bytes, beyond what an MBR addresses");
    let total = PART_START + part;

    let tmp = out.with_extension("img.partial");
    let result = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.set_len(total)?;
        let signature = {
            use sha2::{Digest, Sha256};
            let h = Sha256::digest(kernel8);
            [h[0], h[1], h[2], h[3]]
        };
        let mut mbr = mbrman::MBR::new_from(&mut f, SECTOR as u32, signature).context("making the MBR")?;
        mbr[1] = mbrman::MBRPartitionEntry {
            boot: mbrman::BOOT_ACTIVE,
            first_chs: mbrman::CHS::empty(),
            sys: FAT32_LBA,
            last_chs: mbrman::CHS::empty(),
            starting_lba: (PART_START / SECTOR) as u32,
            sectors: (part / SECTOR) as u32,
        };
        mbr.write_into(&mut f).context("writing the MBR")?;
        let mut slice = fscommon::StreamSlice::new(&mut f, PART_START, PART_START + part)?;
        let label = *b"SELKIE-BOOT";
        fatfs::format_volume(&mut slice, fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat32).volume_label(label).volume_id(u32::from_le_bytes(signature)))
            .context("formatting the FAT32 boot partition")?;
        slice.seek(SeekFrom::Start(0))?;
        {
            let fs = fatfs::FileSystem::new(&mut slice, fatfs::FsOptions::new()).context("opening the new FAT32 partition")?;
            for (name, bytes) in &files {
                let mut file = fs.root_dir().create_file(name).with_context(|| format!("creating {name} on the boot partition"))?;
                file.truncate()?;
                file.write_all(bytes).with_context(|| format!("writing {name} ({} bytes) to the boot partition", bytes.len()))?;
                file.flush()?;
            }
            fs.unmount().context("closing the FAT32 partition")?;
        }
        drop(slice);
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing the SD-card image {}", out.display())));
    }
    std::fs::rename(&tmp, out).with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    Ok(Card { bytes: total, partition_bytes: part, files: files.iter().map(|(n, b)| (n.clone(), b.len() as u64)).collect() })
}

/// Reads a file back from an SD-card image's first partition (for `selkie inspect`-like checks and tests).
pub fn read_file(image: &Path, name: &str) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let mbr = mbrman::MBR::read_from(&mut f, SECTOR as u32).with_context(|| format!("{}: no MBR", image.display()))?;
    let p = &mbr[1];
    ensure!(p.sys == FAT32_LBA, "{}: the first partition has type {:#04x}, not FAT32 (0x0c)", image.display(), p.sys);
    let start = u64::from(p.starting_lba) * SECTOR;
    let slice = fscommon::StreamSlice::new(f, start, start + u64::from(p.sectors) * SECTOR)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).with_context(|| format!("{}: the first partition is not a FAT file system", image.display()))?;
    let mut file = match fs.root_dir().open_file(name) {
        Ok(file) => file,
        Err(e) => bail!("{}: no {name} on the boot partition ({e})", image.display()),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_firmware() -> Firmware {
        // write() takes the files as they are; firmware_from_dir checks the device tree.
        let dtb = b"not checked here".to_vec();
        Firmware {
            files: vec![("start4.elf".into(), vec![0x7f; 300_000]), ("fixup4.dat".into(), vec![1, 2, 3]), ("bcm2711-rpi-4-b.dtb".into(), dtb)],
            origin: "test".into(),
        }
    }

    #[test]
    fn the_card_holds_every_file_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sd.img");
        let kernel: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let card = write(&out, &kernel, &fake_firmware()).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), card.bytes);
        assert_eq!(card.bytes, PART_START + card.partition_bytes);
        assert!(card.partition_bytes >= MIN_PART);
        assert_eq!(read_file(&out, "kernel8.img").unwrap(), kernel);
        assert_eq!(read_file(&out, "fixup4.dat").unwrap(), vec![1, 2, 3]);
        assert_eq!(read_file(&out, "start4.elf").unwrap().len(), 300_000);
        let config = String::from_utf8(read_file(&out, "config.txt").unwrap()).unwrap();
        assert!(config.lines().any(|l| l == "arm_64bit=1"), "{config}");
        assert!(config.lines().any(|l| l == "kernel=kernel8.img"), "{config}");
        assert!(config.lines().any(|l| l == "enable_uart=1"), "{config}");
        assert!(read_file(&out, "cmdline.txt").is_err());
        assert!(!out.with_extension("img.partial").exists());
        // The MBR's boot signature and the partition entry, read as bytes.
        let raw = std::fs::read(&out).unwrap();
        assert_eq!(&raw[510..512], &[0x55, 0xaa]);
        assert_eq!(raw[446 + 4], FAT32_LBA);
        assert_eq!(u32::from_le_bytes(raw[446 + 8..446 + 12].try_into().unwrap()), 2048);
    }

    #[test]
    fn a_big_kernel_grows_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sd.img");
        let kernel = vec![0xa5u8; 80 << 20];
        let card = write(&out, &kernel, &fake_firmware()).unwrap();
        assert!(card.partition_bytes > 80 << 20);
        assert_eq!(read_file(&out, "kernel8.img").unwrap(), kernel);
    }

    #[test]
    fn missing_firmware_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("start4.elf"), b"x").unwrap();
        let err = format!("{:#}", firmware_from_dir(dir.path()).err().unwrap());
        assert!(err.contains("fixup4.dat"), "{err}");
        std::fs::write(dir.path().join("fixup4.dat"), b"x").unwrap();
        std::fs::write(dir.path().join("bcm2711-rpi-4-b.dtb"), b"junk").unwrap();
        let err = format!("{:#}", firmware_from_dir(dir.path()).err().unwrap());
        assert!(err.contains("bcm2711-rpi-4-b.dtb") && err.contains("device tree"), "{err}");
    }
}
