//! A syscall fuzzer inside an app (tests/apps/sysfuzz.c: four threads making random
//! syscalls with random arguments) must never bring its runner down: under
//! `selkie run --emulate` every seed ends with an exit status or a signal, never a panic or
//! a hang; on seL4 it runs beside a healthy app, which prints what it prints on Linux and
//! exits normally, and the root server reaches its final line.
//!
//! The fuzzer never runs under the Linux reference: under qemu-user its random syscalls
//! would reach the host's kernel.

use selkie_tests::apps::{c_app, populate, reference, Link};
use selkie_tests::oci::OciImage;
use selkie_tests::sel4;
use selkie_tests::tools::{output_within, selkie_bin, skip_without};
use std::process::Command;
use std::time::Duration;

fn tools() -> bool {
    !skip_without(&["umoci", "aarch64-linux-musl-gcc"])
}

fn fuzz_image(dir: &std::path::Path, seed: &str) -> Option<OciImage> {
    let bin = c_app("sysfuzz", Link::Static)?;
    let img = OciImage::new(&dir.join("layout"), "sysfuzz");
    img.layer(|r| populate(r, "sysfuzz", &bin));
    img.config(&["--config.entrypoint", "/sysfuzz", "--config.cmd", seed]);
    Some(img)
}

#[test]
fn a_syscall_fuzzer_never_brings_the_emulator_down() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = fuzz_image(tmp.path(), "1") else { return };
    let mut ended = Vec::new();
    for seed in 1..=12 {
        let seed = seed.to_string();
        let mut cmd = Command::new(selkie_bin());
        cmd.args(["run", "--emulate", &img.reference(), "--", &seed]);
        let start = std::time::Instant::now();
        let run = output_within(&mut cmd, Duration::from_secs(120));
        eprintln!("seed {seed}: {:?} after {:.1} s", run.output.status.code(), start.elapsed().as_secs_f64());
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        assert!(!run.timed_out, "seed {seed}: the emulator did not finish within 120 s\n{stderr}");
        assert!(!stderr.contains("panicked"), "seed {seed}: the emulator panicked:\n{stderr}");
        let code = run.output.status.code();
        // 0: the fuzzer's own exit_group; 128+N: killed by a fault or a signal it sent itself.
        assert!(matches!(code, Some(0) | Some(129..=192)), "seed {seed}: status {code:?}\n{stderr}");
        assert!(String::from_utf8_lossy(&run.output.stdout).starts_with(&format!("sysfuzz: seed {seed}\n")), "seed {seed}");
        ended.push(code.unwrap());
    }
    eprintln!("sysfuzz statuses by seed: {ended:?}");
}

#[test]
fn a_syscall_fuzzer_beside_a_healthy_app_on_sel4() {
    if !tools() || !sel4::available() || skip_without(&["qemu-aarch64-static"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(fuzz) = fuzz_image(&tmp.path().join("fuzz"), "3") else { return };
    let Some(hello) = c_app("hello", Link::Static) else { return };
    let himg = OciImage::new(&tmp.path().join("hello").join("layout"), "hello");
    himg.layer(|r| populate(r, "hello", &hello));
    himg.config(&["--config.entrypoint", "/hello", "--config.cmd", "hello_world", "--config.env", "HELLO=WORLD"]);
    let rootfs = himg.umoci_unpack(&tmp.path().join("hello").join("bundle"));
    let Some((want, want_status)) = reference(&rootfs, "hello", &["hello_world"], &[("HELLO", "WORLD")]) else { return };
    let image = tmp.path().join("image.elf");
    sel4::pack(&[fuzz.reference(), himg.reference()], &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    assert!(c.has_in_order(&String::from_utf8_lossy(&want)), "hello's output is not on the console in order:\n{}", c.text);
    assert_eq!(c.status("hello"), Some(want_status), "{:?}", c.reports());
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 2 apps done")), "{:?}", c.reports());
}
