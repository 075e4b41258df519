//! Scans real musl binaries (when the cross compiler is here) and checks against objdump.

use selkie_svc_rewrite::{decode_traps, rewrite, SVC0, UDF_WORD};
use std::path::PathBuf;
use std::process::Command;

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// Builds a C program with aarch64-linux-musl-gcc into a temp dir.
fn build(src: &str, extra: &[&str]) -> Option<(tempfile::TempDir, PathBuf)> {
    if !tool("aarch64-linux-musl-gcc") || !tool("aarch64-linux-gnu-objdump") {
        println!("skip: aarch64-linux-musl-gcc or aarch64-linux-gnu-objdump missing (apt: musl-dev:arm64 binutils-aarch64-linux-gnu)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("p.c");
    std::fs::write(&c, src).unwrap();
    let out = dir.path().join("p");
    let st = Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2"]).args(extra).arg(&c).arg("-o").arg(&out).status().unwrap();
    assert!(st.success());
    Some((dir, out))
}

/// objdump's svc addresses in executable sections.
fn objdump_svcs(path: &PathBuf) -> Vec<u64> {
    let o = Command::new("aarch64-linux-gnu-objdump").arg("-d").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("\tsvc\t#0x0"))
        .filter_map(|l| u64::from_str_radix(l.split(':').next()?.trim(), 16).ok())
        .collect();
    v.sort_unstable();
    v
}

const HELLO: &str = "#include <stdio.h>\n#include <stdlib.h>\nint main(int c,char**v){printf(\"hello %s\\n\", getenv(\"HELLO\"));return 0;}\n";

#[test]
fn musl_hello_matches_objdump() {
    let Some((_d, bin)) = build(HELLO, &[]) else { return };
    let data = std::fs::read(&bin).unwrap();
    let want = objdump_svcs(&bin);
    assert!(want.len() > 5, "objdump found only {} svc", want.len());
    let r = rewrite(&data).unwrap();
    assert_eq!(r.traps, want);
    assert!(r.used_sections);
    // Each trap now holds the udf; nothing else changed.
    let diffs: Vec<usize> = (0..data.len()).filter(|&i| data[i] != r.bytes[i]).collect();
    assert!(diffs.len() <= 4 * want.len());
    assert_eq!(decode_traps(&r.trap_table()).unwrap(), r.traps);
    // Rewriting again finds a rewritten binary.
    assert!(rewrite(&r.bytes).is_err());
    let _ = (SVC0, UDF_WORD);
}

#[test]
fn stripped_binary_finds_the_same_svcs() {
    let Some((_d, bin)) = build(HELLO, &[]) else { return };
    let want = rewrite(&std::fs::read(&bin).unwrap()).unwrap().traps;
    let stripped = bin.with_extension("stripped");
    let st = Command::new("aarch64-linux-gnu-strip").arg("-o").arg(&stripped).arg(&bin).status().unwrap();
    assert!(st.success());
    let r = rewrite(&std::fs::read(&stripped).unwrap()).unwrap();
    assert_eq!(r.traps, want);
}

#[test]
fn data_object_in_code_is_skipped() {
    // A 4-byte object equal to svc #0 placed in .text: objdump shows it, the symbol says
    // it is data, and the rewrite leaves it alone.
    let src = "__attribute__((section(\".text\"), aligned(4), used)) const unsigned fake_svc = 0xd4000001u;\n\
               int main(void){return (int)(long)&fake_svc & 0;}\n";
    let Some((_d, bin)) = build(src, &[]) else { return };
    let data = std::fs::read(&bin).unwrap();
    let objdump = objdump_svcs(&bin);
    let r = rewrite(&data).unwrap();
    assert_eq!(r.objects_skipped, 1);
    // objdump also reads the `$d` mapping symbol and shows a .word, not an svc.
    assert_eq!(r.traps, objdump);
    assert!(r.traps.len() >= 5);
}

#[test]
fn rejects_non_aarch64() {
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(rewrite(&me).is_err());
    assert!(rewrite(b"not an elf").is_err());
}

/// A newc cpio of (name, mode, data) entries.
fn cpio_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for (i, (name, mode, data)) in entries.iter().enumerate() {
        let mut w = cpio::newc::Builder::new(name).mode(*mode).ino(i as u32 + 1).nlink(1).write(&mut out, data.len() as u32);
        w.write_all(data).unwrap();
        w.finish().unwrap();
    }
    cpio::newc::trailer(out).unwrap()
}

#[test]
fn text_store_holds_every_elf_with_its_own_traps_and_streaming_gives_the_same() {
    let Some((_d, bin)) = build(HELLO, &[]) else { return };
    let Some((_d2, pie)) = build(HELLO, &["-static-pie", "-fPIE"]) else { return };
    let (a, b) = (std::fs::read(&bin).unwrap(), std::fs::read(&pie).unwrap());
    let cpio = cpio_of(&[("etc", 0o40755, b""), ("etc/motd", 0o100644, b"\x7fELF but not one"), ("bin/a", 0o100755, &a), ("lib/b", 0o100644, &b), ("short", 0o100644, b"ab")]);
    let (store, stats) = selkie_svc_rewrite::text_store(&cpio);
    let (streamed, stats2) = selkie_svc_rewrite::text_store_from(&cpio[..]).unwrap();
    assert_eq!(store, streamed, "the streaming reader finds the same files at the same offsets");
    assert_eq!(stats, stats2);
    assert_eq!(stats.files, 2, "{stats:?}");
    assert!(stats.skipped.is_empty(), "a file that only starts like an ELF is not one: {stats:?}");
    let s = musl_shim::text::TextStore::parse(&store).unwrap();
    assert_eq!(s.len(), 2);
    for (name, off, data) in musl_shim::text::cpio_files(&cpio).filter(|f| f.0.starts_with("bin/") || f.0.starts_with("lib/")) {
        let t = s.get(off, data.len() as u64).unwrap_or_else(|| panic!("{name} is in the store"));
        let want = rewrite(data).unwrap();
        assert_eq!(t.traps().collect::<Vec<_>>(), want.offsets, "{name}");
        for off in t.traps() {
            let code = t.code_at(off).unwrap();
            assert_eq!(&code[..4], &UDF_WORD.to_le_bytes(), "{name}: udf at {off:#x}");
            assert_eq!(&data[off as usize..off as usize + 4], &SVC0.to_le_bytes(), "{name}: the file keeps its svc");
        }
    }
}
