//! CPython's own test suite as the measure of the Linux surface (issue 14): an image of
//! Debian's arm64 python3.11 with its test suite (`libpython3.11-testsuite`), and
//! `python3.11 -m test MODULE` run three ways: on Linux (qemu-aarch64-static chrooted into
//! the rootfs, with /proc and /sys mounted as a container has them), under
//! `selkie run --emulate`, and booted on seL4. A module counts when it passes on Linux.
//!
//! `make test` runs [`QUICK`] (emulated, and the first of them on seL4); `make conformance`
//! runs [`ALL`] and prints the table. Skipped, with one line, without the Debian packages,
//! umoci or qemu-aarch64-static (and the seL4 column without `SEL4_PREFIX`).

use selkie_tests::apps::{reference_with, shell_status, Limits};
use selkie_tests::debian::{debs, extract};
use selkie_tests::oci::OciImage;
use selkie_tests::sel4;
use selkie_tests::tools::{output_within, selkie_bin, skip_without};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// python3.11, its standard library and test suite, and the libraries they load.
const PACKAGES: [&str; 28] = [
    "libc6", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libpython3.11-testsuite",
    "python3.11", "media-types", "zlib1g", "libexpat1", "libssl3", "libffi8", "libbz2-1.0", "liblzma5",
    "libsqlite3-0", "libncursesw6", "libtinfo6", "libreadline8", "libuuid1", "libdb5.3", "libcrypt1",
    "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libcom-err2",
    "libkrb5support0", "libkeyutils1",
];

/// Modules that exercise the OS: files, processes, signals, terminals, memory, time.
const ALL: [&str; 40] = [
    // Quick ones first, the long ones (minutes on Linux) last.
    "test_posixpath", "test_genericpath", "test_stat", "test_fnmatch", "test_glob", "test_pwd", "test_grp",
    "test_errno", "test_atexit", "test_file", "test_filecmp", "test_fileinput", "test_fileio", "test_fcntl",
    "test_select", "test_epoll", "test_wait3", "test_wait4", "test_sched", "test_uuid", "test_zlib",
    "test_platform", "test_resource", "test_mmap", "test_pty", "test_tempfile", "test_shutil",
    "test_pathlib", "test_selectors", "test_faulthandler", "test_compileall", "test_thread", "test_time",
    "test_posix", "test_os", "test_tarfile", "test_signal", "test_threading", "test_multiprocessing_fork",
    "test_subprocess",
];

/// What `make test` keeps: quick modules that touch the file tree, stat and globbing.
const QUICK: [&str; 4] = ["test_posixpath", "test_stat", "test_glob", "test_fnmatch"];

/// A module's run.
#[derive(Clone, Copy)]
struct Run {
    status: i32,
    secs: f64,
}

impl Run {
    fn cell(r: Option<Run>) -> String {
        match r {
            None => "-".into(),
            Some(r) => format!("{} {:.0}s", if r.status == 0 { "pass" } else { "FAIL" }, r.secs),
        }
    }
}

/// The python image: an OCI layout with tag `py` and its unpacked rootfs (for Linux).
struct Python {
    _dir: tempfile::TempDir,
    image: OciImage,
    rootfs: PathBuf,
}

fn python() -> Option<Python> {
    if skip_without(&["umoci", "qemu-aarch64-static", "apt-get", "dpkg-deb", "unshare"]) {
        return None;
    }
    let debs = debs(&PACKAGES)?;
    let dir = tempfile::tempdir().unwrap();
    let image = OciImage::new(&dir.path().join("layout"), "py");
    image.layer(|r| {
        extract(&debs, r);
        // What a base image has: the users the suite looks up, HOME and a sticky /tmp.
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        std::fs::create_dir_all(r.join("root")).unwrap();
        std::fs::create_dir_all(r.join("tmp")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    });
    image.config(&[
        "--config.entrypoint", "/usr/bin/python3.11",
        "--config.env", "HOME=/root",
        "--config.env", "PATH=/usr/local/bin:/usr/bin:/bin",
        "--config.label", "org.selkie.app.heap_pages=262144",
        "--config.label", "org.selkie.app.name=python",
    ]);
    let rootfs = image.umoci_unpack(&dir.path().join("bundle"));
    Some(Python { _dir: dir, image, rootfs })
}

const ENV: [(&str, &str); 1] = [("HOME", "/root")];

fn linux(py: &Python, module: &str, limit: Duration) -> Option<Run> {
    let t = Instant::now();
    let limits = Limits { nproc: None, timeout: limit, kernel_fs: true };
    let (_, status) = reference_with(&py.rootfs, "usr/bin/python3.11", &["-m", "test", module], &ENV, limits)?;
    Some(Run { status, secs: t.elapsed().as_secs_f64() })
}

fn emulated(py: &Python, module: &str, limit: Duration) -> Run {
    let t = Instant::now();
    let mut c = Command::new(selkie_bin());
    c.args(["run", "--emulate", &py.image.reference(), "--", "-m", "test", module]);
    let got = output_within(&mut c, limit);
    let status = if got.timed_out { -1 } else { shell_status(&got.output.status) };
    Run { status, secs: t.elapsed().as_secs_f64() }
}

/// Boots the module's run on seL4: a tag of the image whose Cmd runs it.
fn on_sel4(py: &Python, module: &str, limit_s: u32) -> Run {
    let t = Instant::now();
    let out = Command::new("umoci")
        .args(["config", "--image", &py.image.umoci_ref(), "--tag", module, "--config.cmd", "-m", "--config.cmd", "test", "--config.cmd", module])
        .output()
        .expect("umoci config");
    assert!(out.status.success(), "umoci config: {}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    sel4::pack(&[format!("oci:{}:{module}", py.image.dir.display())], &image);
    let c = sel4::boot(&image, limit_s);
    let status = if c.finished { c.status("python").unwrap_or(-2) } else { -1 };
    Run { status, secs: t.elapsed().as_secs_f64() }
}

#[test]
fn quick_cpython_modules_pass_like_linux() {
    let Some(py) = python() else { return };
    let limit = Duration::from_secs(900);
    for module in QUICK {
        let Some(l) = linux(&py, module, limit) else { return };
        assert_eq!(l.status, 0, "{module} fails on Linux itself");
        let e = emulated(&py, module, limit);
        assert_eq!(e.status, 0, "{module} passes on Linux but not under selkie run --emulate");
    }
    if !sel4::available() {
        return;
    }
    let r = on_sel4(&py, QUICK[0], 900);
    assert_eq!(r.status, 0, "{} passes on Linux but not on seL4", QUICK[0]);
}

/// `make conformance`: every module of [`ALL`] three ways, as a table.
#[test]
#[ignore = "long: make conformance"]
fn conformance() {
    let Some(py) = python() else { return };
    // A module that takes longer than this counts as failed (the emulator runs python some
    // 5-10 times slower than qemu-user, and test_subprocess alone takes minutes on Linux).
    let limit = Duration::from_secs(600);
    let with_sel4 = sel4::available();
    let mut rows = Vec::new();
    for module in ALL {
        let (l, e) = std::thread::scope(|s| {
            let l = s.spawn(|| linux(&py, module, limit));
            let e = s.spawn(|| emulated(&py, module, limit));
            (l.join().unwrap(), e.join().unwrap())
        });
        let Some(l) = l else { return };
        let k = (with_sel4 && l.status == 0).then(|| on_sel4(&py, module, 600));
        println!("{module:<28} linux {:<10} emulated {:<10} seL4 {}", Run::cell(Some(l)), Run::cell(Some(e)), Run::cell(k));
        rows.push((module, l, e, k));
    }
    let counted: Vec<_> = rows.iter().filter(|r| r.1.status == 0).collect();
    let emu = counted.iter().filter(|r| r.2.status == 0).count();
    let sel = counted.iter().filter(|r| r.3.is_some_and(|k| k.status == 0)).count();
    println!("\n| module | Linux | selkie run --emulate | seL4 |\n|---|---|---|---|");
    for (m, l, e, k) in &rows {
        println!("| {m} | {} | {} | {} |", Run::cell(Some(*l)), Run::cell(Some(*e)), Run::cell(*k));
    }
    println!(
        "\n{} of {} modules pass on Linux; of those, {emu} pass emulated and {} on seL4",
        counted.len(),
        rows.len(),
        if with_sel4 { format!("{sel}") } else { "- (no SEL4_PREFIX)".into() }
    );
    assert!(counted.len() >= 30, "the measure needs at least 30 modules that pass on Linux");
}
