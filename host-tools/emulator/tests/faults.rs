//! Faults are reported as the root server will (app, pc, address, kind), and a `udf`
//! counts as a syscall only at a trap-table address.

use selkie_emulator::{run, Ending, FaultKind, Options};
use selkie_manifest::{App, Spec};
use std::io::Write;
use std::process::Command;

/// Compiles C with aarch64-linux-musl-gcc -static; `None` (one line printed) without it.
fn build(src: &str) -> Option<Vec<u8>> {
    if Command::new("aarch64-linux-musl-gcc").arg("--version").output().is_err() {
        println!("skip: aarch64-linux-musl-gcc missing (apt: musl-dev:arm64 gcc-aarch64-linux-gnu)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("a.c");
    std::fs::write(&c, src).unwrap();
    let out = dir.path().join("a");
    let st = Command::new("aarch64-linux-musl-gcc").args(["-static", "-O1", "-o"]).arg(&out).arg(&c).status().unwrap();
    assert!(st.success());
    Some(std::fs::read(out).unwrap())
}

fn cpio_with(binary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = cpio::newc::Builder::new("app").mode(0o100755).ino(1).nlink(1).write(&mut out, binary.len() as u32);
    w.write_all(binary).unwrap();
    w.finish().unwrap();
    cpio::newc::trailer(out).unwrap()
}

/// The rootfs with `binary` as the image has it, and its pack-time text store.
fn packed(binary: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let cpio = cpio_with(binary);
    let (store, stats) = selkie_svc_rewrite::text_store(&cpio);
    assert_eq!(stats.files, 1, "{stats:?}");
    (cpio, store)
}

fn app() -> App<String> {
    let mut a = App {
        name: "t".into(),
        binary: "/app".into(),
        rootfs: "rootfs.cpio".into(),
        text: None,
        networks: Default::default(),
        after: Default::default(),
        argv: Default::default(),
        envp: Default::default(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        spec: Spec {
            heap_pages: 1024,
            stack_pages: 32,
            ut_4k_pages: 0,
            ut_large_pages: 0,
            priority: 100,
            max_priority: 100,
            max_threads: 64,
            max_processes: 16,
            rootfs_write_bytes: selkie_manifest::defaults::ROOTFS_WRITE_BYTES,
            publishes: Default::default(),
            consumes: Default::default(),
        },
    };
    a.argv.push("/app".into()).unwrap();
    a
}

const EXIT5: &str = "#include <unistd.h>\nint main(void){ write(2, \"\", 0); return 5; }\n";

#[test]
fn rewritten_binary_runs_and_exits() {
    let Some(bin) = build(EXIT5) else { return };
    let (cpio, store) = packed(&bin);
    let rep = run(&app(), &cpio, &store, &Options::default()).unwrap();
    assert_eq!(rep.ending, Ending::Exited(5));
    assert_eq!(rep.status(), 5);
    assert!(rep.syscalls >= 2, "{rep:?}");
}

#[test]
fn image_binary_without_a_store_is_scanned_when_loaded() {
    // No text store: the loader finds the svcs itself (what happens to a file the app wrote).
    let Some(bin) = build(EXIT5) else { return };
    let rep = run(&app(), &cpio_with(&bin), &[], &Options::default()).unwrap();
    assert_eq!(rep.ending, Ending::Exited(5));
}

/// Writes `svc #0; ret` into a fresh RWX page and calls it: code no trap table names.
const JIT_SVC: &str = r#"#include <sys/mman.h>
#include <string.h>
int main(void){
  unsigned int code[] = { 0xd4000001u, 0xd65f03c0u };
  void *p = mmap(0, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 3;
  memcpy(p, code, sizeof code);
  __builtin___clear_cache((char *)p, (char *)p + sizeof code);
  ((void (*)(void))p)();
  return 7;
}
"#;

#[test]
fn svc_in_generated_code_is_refused() {
    let Some(bin) = build(JIT_SVC) else { return };
    let (cpio, store) = packed(&bin);
    let rep = run(&app(), &cpio, &store, &Options::default()).unwrap();
    let Ending::Faulted(f) = &rep.ending else { panic!("{rep:?}") };
    assert_eq!(f.kind, FaultKind::UnrewrittenSvc);
    assert_eq!(f.app, "t");
    assert!(f.pc >= 0x1000 && !(0x40_0000..0x50_0000).contains(&f.pc), "pc {:#x} is in the mapped page", f.pc);
    assert_eq!(rep.status(), 128 + 4);
}

#[test]
fn udf_outside_the_trap_table_is_a_fault() {
    let Some(bin) = build(EXIT5) else { return };
    let r = selkie_svc_rewrite::rewrite(&bin).unwrap();
    let rep = run(&app(), &cpio_with(&r.bytes), &[], &Options::default()).unwrap();
    let Ending::Faulted(f) = &rep.ending else { panic!("{rep:?}") };
    assert_eq!(f.kind, FaultKind::Undefined);
    assert!(r.traps.contains(&f.pc));
    assert_eq!(rep.syscalls, 0);
}

#[test]
fn null_write_reports_address_zero() {
    let Some(bin) = build("int main(void){ *(volatile int *)0 = 1; return 0; }\n") else { return };
    let (cpio, store) = packed(&bin);
    let rep = run(&app(), &cpio, &store, &Options::default()).unwrap();
    let Ending::Faulted(f) = &rep.ending else { panic!("{rep:?}") };
    assert_eq!(f.kind, FaultKind::WriteUnmapped);
    assert_eq!(f.addr, 0);
    assert!(f.pc >= 0x40_0000 && f.pc < 0x50_0000, "pc {:#x} in the image", f.pc);
    assert_eq!(rep.status(), 139);
    let line = f.to_string();
    assert!(line.starts_with("[selkie] t: fault: write to unmapped memory at pc 0x"), "{line}");
}

#[test]
fn brk_instruction_is_a_breakpoint() {
    let Some(bin) = build("int main(void){ __asm__ volatile(\"brk #0x3e8\"); return 0; }\n") else { return };
    let (cpio, store) = packed(&bin);
    let rep = run(&app(), &cpio, &store, &Options::default()).unwrap();
    let Ending::Faulted(f) = &rep.ending else { panic!("{rep:?}") };
    assert_eq!(f.kind, FaultKind::Breakpoint(0x3e8));
    assert_eq!(rep.status(), 128 + 5);
}

#[test]
fn missing_binary_is_an_error() {
    let e = run(&app(), &cpio::newc::trailer(Vec::new()).unwrap(), &[], &Options::default()).unwrap_err();
    assert!(format!("{e:#}").contains("/app not found"), "{e:#}");
}
