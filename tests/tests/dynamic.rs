//! Dynamically linked programs from Debian's arm64 packages (glibc, started through
//! /lib/ld-linux-aarch64.so.1 from the image): dash running a script that pipes between
//! busybox applets, busybox's own shell, and python3.11. Each runs under the Linux reference
//! (qemu-aarch64-static chrooted into the image's rootfs) and under `selkie run --emulate`
//! on the same OCI image; stdout and exit status must be identical.

use selkie_tests::apps::binfmt_aarch64;
use selkie_tests::compare::Case;
use selkie_tests::debian::{debs, with_applets, BUSYBOX_EXPECTED, BUSYBOX_SCRIPT, DASH_EXPECTED, DASH_SCRIPT, PYTHON, PYTHON_EXPECTED};
use selkie_tests::tools::skip_without;
use std::time::Duration;

/// Most heap the manifest allows (1 GiB): python's allocator wants room.
const HUGE_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=262144"];


fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "apt-get", "dpkg-deb"])
}

fn lines(out: &str, want: &[&str]) {
    for l in want {
        assert!(out.lines().any(|x| x == *l), "the reference did not print {l:?}:\n{out}");
    }
}



#[test]
fn debian_dash_script_with_busybox_tools_matches_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "dash", "busybox"]) else { return };
    // dash's package has /bin/sh -> dash.
    let case = Case::debian("dash", "/bin/sh", &debs)
        .write("/test.sh", DASH_SCRIPT.as_bytes(), 0o755)
        .cmd(&["/test.sh", "first", "x.txt"])
        .timeout(Duration::from_secs(300));
    let Some(o) = with_applets(case).compare() else { return };
    assert_eq!(o.status, 6, "{}", o.stdout);
    lines(&o.stdout, &DASH_EXPECTED);
}


#[test]
fn debian_dynamic_busybox_shell_pipelines_match_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "busybox"]) else { return };
    let case = Case::debian("busybox", "/bin/busybox", &debs)
        .symlink("/bin/sh", "busybox")
        .cmd(&["sh", "-c", BUSYBOX_SCRIPT])
        .timeout(Duration::from_secs(300));
    let Some(o) = with_applets(case).compare() else { return };
    assert_eq!(o.status, 4, "{}", o.stdout);
    lines(&o.stdout, &BUSYBOX_EXPECTED);
}


#[test]
fn debian_python3_11_matches_linux() {
    if !tools() {
        return;
    }
    // python3.11-minimal, libpython3.11-minimal, their direct library dependencies, and
    // libpython3.11-stdlib for json (pure python).
    let packages = ["libc6", "zlib1g", "libexpat1", "libssl3", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"];
    let Some(debs) = debs(&packages) else { return };
    let case = Case::debian("python3.11", "/usr/bin/python3.11", &debs)
        .cmd(&["-c", PYTHON])
        .config(&HUGE_HEAP)
        .timeout(Duration::from_secs(600));
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 7, "{}", o.stdout);
    lines(&o.stdout, &PYTHON_EXPECTED);
}
