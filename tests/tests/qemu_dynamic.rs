//! Dynamically linked Debian arm64 programs (glibc, started through
//! /lib/ld-linux-aarch64.so.1 from the image) booted on seL4 under QEMU: the same images and
//! scripts as tests/tests/dynamic.rs, whose Linux reference (qemu-aarch64-static chrooted
//! into the rootfs) gives the expected stdout and status. The console carries stderr too,
//! so a test names the stderr lines it expects besides the reference's stdout.
//! Skipped, with one line, without SEL4_PREFIX, rust-sel4 or the Debian packages.

use selkie_tests::apps::binfmt_aarch64;
use selkie_tests::compare::{Case, Outcome};
use selkie_tests::debian::{debs, with_applets, BUSYBOX_EXPECTED, BUSYBOX_SCRIPT, DASH_EXPECTED, DASH_SCRIPT, PYTHON, PYTHON_EXPECTED};
use selkie_tests::sel4::{self, Console};
use selkie_tests::tools::skip_without;

/// Most heap the manifest allows (1 GiB): python's allocator wants room.
const HUGE_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=262144"];


fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "apt-get", "dpkg-deb"]) && sel4::available()
}


/// Builds the case's image, runs the Linux reference, packs the image alone for seL4 and
/// boots it; the console must show the reference's stdout exactly, apart from lines that
/// start with one of `stderr` (what the app wrote to stderr), and the app's status.
fn boot_like_linux(case: Case, name: &str, timeout_s: u32, stderr: &[&str]) -> Option<(Outcome, Console)> {
    let built = case.build()?;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    sel4::pack(&[built.image.reference()], &image);
    let started = std::time::Instant::now();
    let c = sel4::boot(&image, timeout_s);
    println!("--- booted in {:?}; reports:\n{}", started.elapsed(), c.reports().join("\n"));
    assert!(c.finished, "{name}: no final line within {timeout_s} s:\n{}", c.text);
    let out = c.app_output();
    let (errs, kept): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| stderr.iter().any(|p| l.starts_with(p)));
    let kept: String = kept.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(kept, built.want.stdout, "{name}: seL4 console differs from Linux; reports: {:?}", c.reports());
    assert!(errs.len() <= stderr.len(), "{name}: more stderr lines than expected: {errs:?}");
    assert_eq!(c.status(name), Some(built.want.status), "{name}: status differs from Linux; reports: {:?}", c.reports());
    assert!(c.reports().last().is_some_and(|l| l.starts_with("[selkie] all 1 apps done")), "{:?}", c.reports());
    Some((built.want, c))
}

fn lines(out: &str, want: &[&str]) {
    for l in want {
        assert!(out.lines().any(|x| x == *l), "missing {l:?} in:\n{out}");
    }
}


#[test]
fn debian_dash_script_boots_on_sel4_like_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "dash", "busybox"]) else { return };
    let case = Case::debian("dash", "/bin/sh", &debs).write("/test.sh", DASH_SCRIPT.as_bytes(), 0o755).cmd(&["/test.sh", "first", "x.txt"]);
    let Some((o, c)) = boot_like_linux(with_applets(case), "dash", 600, &["cat: can't open '/nonexistent'"]) else { return };
    assert_eq!(o.status, 6, "{}", o.stdout);
    lines(&c.app_output(), &DASH_EXPECTED);
}


#[test]
fn debian_dynamic_busybox_pipelines_boot_on_sel4_like_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "busybox"]) else { return };
    let case = Case::debian("busybox", "/bin/busybox", &debs).symlink("/bin/sh", "busybox").cmd(&["sh", "-c", BUSYBOX_SCRIPT]);
    let Some((o, c)) = boot_like_linux(with_applets(case), "busybox", 600, &[]) else { return };
    assert_eq!(o.status, 4, "{}", o.stdout);
    lines(&c.app_output(), &BUSYBOX_EXPECTED);
}


#[test]
fn debian_python3_11_boots_on_sel4_like_linux() {
    if !tools() {
        return;
    }
    let packages = ["libc6", "zlib1g", "libexpat1", "libssl3", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"];
    let Some(debs) = debs(&packages) else { return };
    let case = Case::debian("python3.11", "/usr/bin/python3.11", &debs).cmd(&["-c", PYTHON]).config(&HUGE_HEAP);
    let Some((o, c)) = boot_like_linux(case, "python3.11", 900, &[]) else { return };
    assert_eq!(o.status, 7, "{}", o.stdout);
    lines(&c.app_output(), &PYTHON_EXPECTED);
}

/// glibc installs handlers without SA_RESTORER: they return to the kernel's trampoline,
/// here the root server's page at musl-shim's `sigframe::SIGTRAMP`.
const PYTHON_SIGNALS: &str = r#"
import os, signal, sys
hits = []
signal.signal(signal.SIGUSR1, lambda sig, frame: hits.append(sig))
os.kill(os.getpid(), signal.SIGUSR1)
os.kill(os.getpid(), signal.SIGUSR1)
print("SIGUSR1 handled:", hits == [signal.SIGUSR1] * 2, len(hits))
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGUSR2)
print("SIGUSR2 ignored")
old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
os.kill(os.getpid(), signal.SIGUSR1)
print("blocked, pending:", signal.SIGUSR1 in signal.sigpending(), len(hits))
signal.pthread_sigmask(signal.SIG_SETMASK, old)
print("unblocked:", len(hits))
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGTERM)
print("not reached")
"#;

#[test]
fn debian_python3_11_signal_handlers_boot_on_sel4_like_linux() {
    if !tools() {
        return;
    }
    let packages = ["libc6", "zlib1g", "libexpat1", "libssl3", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"];
    let Some(debs) = debs(&packages) else { return };
    let case = Case::debian("python3.11", "/usr/bin/python3.11", &debs).cmd(&["-c", PYTHON_SIGNALS]).config(&HUGE_HEAP);
    let Some((o, c)) = boot_like_linux(case, "python3.11", 900, &[]) else { return };
    assert_eq!(o.status, 128 + 15, "{}", o.stdout);
    lines(&c.app_output(), &["SIGUSR1 handled: True 2", "SIGUSR2 ignored", "blocked, pending: True 2", "unblocked: 3"]);
}

#[test]
fn dynamic_busybox_and_python_share_one_image() {
    // Two glibc apps side by side on the image's network: both map libc's code from the
    // text store (the root heap's per-app quota halves).
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let packages = ["libc6", "zlib1g", "libexpat1", "libssl3", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"];
    let (Some(bb_debs), Some(py_debs)) = (debs(&["libc6", "busybox"]), debs(&packages)) else { return };
    // Two apps share a network: selkie lays /etc/hosts and /etc/resolv.conf over each
    // image, as a container runtime does, so the reference's image has them too (the
    // script counts /etc's entries).
    let bb = with_applets(
        Case::debian("busybox", "/bin/busybox", &bb_debs)
            .symlink("/bin/sh", "busybox")
            .write("/etc/hosts", b"127.0.0.1\tlocalhost\n", 0o644)
            .write("/etc/resolv.conf", b"options timeout:1 attempts:1\n", 0o644)
            .cmd(&["sh", "-c", BUSYBOX_SCRIPT]),
    );
    let py = Case::debian("python3.11", "/usr/bin/python3.11", &py_debs).cmd(&["-c", PYTHON]).config(&HUGE_HEAP);
    let (Some(bb), Some(py)) = (bb.build(), py.build()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    sel4::pack(&[bb.image.reference(), py.image.reference()], &image);
    let c = sel4::boot(&image, 900);
    println!("reports:\n{}", c.reports().join("\n"));
    assert!(c.finished, "no final line:\n{}", c.text);
    for (name, built) in [("busybox", &bb), ("python3.11", &py)] {
        assert!(c.has_in_order(&built.want.stdout), "{name}: its lines are not all on the console in order:\n{}", c.text);
        assert_eq!(c.status(name), Some(built.want.status), "{name}: {:?}", c.reports());
    }
    assert!(c.reports().last().is_some_and(|l| l.starts_with("[selkie] all 2 apps done: 2 exited")), "{:?}", c.reports());
}
