//! Building the aarch64 test apps in tests/apps, once, into target/test-apps (rebuilt when
//! a source is newer), and laying out the rootfs they expect.
//!
//! Needs, on Debian (bookworm):
//! - `dpkg --add-architecture arm64 && apt-get update`
//! - apt: `musl-dev:arm64` (gives `aarch64-linux-musl-gcc`), `gcc-aarch64-linux-gnu`,
//!   `binutils-aarch64-linux-gnu`, `qemu-user-static` (the Linux reference), `umoci`,
//!   `cmake`, `pkg-config` (unicorn's build)
//! - rustup: `rustup target add aarch64-unknown-linux-musl` (linked with
//!   `aarch64-linux-gnu-gcc`)
//! - fetched on first use: `apt-get download busybox-static:arm64` (Debian's stripped static
//!   glibc busybox for arm64; the amd64 `busybox-static` package is x86 and of no use here)
//! - root, for `chroot` into the unpacked rootfs for the qemu reference

use crate::tools::{have, workspace};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// How a C app is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Static,
    /// `-static-pie`, linked by hand: Debian's musl-gcc specs only know -static.
    StaticPie,
}

static BUILD: Mutex<()> = Mutex::new(());

fn out_dir() -> PathBuf {
    let d = workspace().join("target/test-apps");
    fs::create_dir_all(&d).expect("target/test-apps");
    d
}

fn newer(src: &Path, out: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(src), m(out)) {
        (Some(s), Some(o)) => s > o,
        _ => true,
    }
}

fn check(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn gcc_file(name: &str) -> String {
    let out = Command::new("aarch64-linux-gnu-gcc").arg(format!("-print-file-name={name}")).output().expect("gcc");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds tests/apps/NAME.c; `None` (with one line printed) when the cross compiler is
/// missing.
pub fn c_app(name: &str, link: Link) -> Option<PathBuf> {
    if !have("aarch64-linux-musl-gcc") || !have("aarch64-linux-gnu-gcc") {
        crate::tools::skip(&format!("aarch64-linux-musl-gcc missing (apt: musl-dev:arm64 gcc-aarch64-linux-gnu)"));
        return None;
    }
    let src = workspace().join("tests/apps").join(format!("{name}.c"));
    let suffix = if link == Link::Static { "" } else { "-pie" };
    let out = out_dir().join(format!("{name}{suffix}"));
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !newer(&src, &out) {
        return Some(out);
    }
    let tmp = out.with_extension("tmp");
    match link {
        Link::Static => check(Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2", "-o"]).arg(&tmp).arg(&src)),
        Link::StaticPie => {
            let lib = "/usr/lib/aarch64-linux-musl";
            let obj = out.with_extension("o");
            check(
                Command::new("aarch64-linux-gnu-gcc")
                    .args(["-nostdinc", "-isystem", "/usr/include/aarch64-linux-musl", "-fPIE", "-O2", "-c", "-o"])
                    .arg(&obj)
                    .arg(&src),
            );
            check(
                Command::new("aarch64-linux-gnu-gcc")
                    .args(["-static-pie", "-nostdlib", "-nostartfiles", "-o"])
                    .arg(&tmp)
                    .args([format!("{lib}/rcrt1.o"), format!("{lib}/crti.o"), gcc_file("crtbeginS.o")])
                    .arg(&obj)
                    .args([format!("-L{lib}"), "-lc".into(), gcc_file("libgcc.a"), gcc_file("crtendS.o"), format!("{lib}/crtn.o")]),
            );
        }
    }
    fs::rename(&tmp, &out).expect("rename app");
    Some(out)
}

/// Builds tests/apps/rust-hello for aarch64-unknown-linux-musl.
pub fn rust_app() -> Option<PathBuf> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib/aarch64-unknown-linux-musl").exists() || !have("aarch64-linux-gnu-gcc") {
        crate::tools::skip(&format!("rust target aarch64-unknown-linux-musl or aarch64-linux-gnu-gcc missing (rustup target add aarch64-unknown-linux-musl)"));
        return None;
    }
    let dir = workspace().join("tests/apps/rust-hello");
    let target_dir = out_dir().join("rust");
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    check(
        Command::new(env!("CARGO"))
            .args(["build", "-q", "--release", "--target", "aarch64-unknown-linux-musl", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "aarch64-linux-gnu-gcc")
            .env_remove("RUSTFLAGS"),
    );
    Some(target_dir.join("aarch64-unknown-linux-musl/release/rust-hello"))
}

/// Lays out the test rootfs under `root`: the app at `/NAME`, /foo.txt, /bar.txt, and a
/// /data tree with symlinks (relative, absolute, dangling, looping, escaping) and a hardlink.
pub fn populate(root: &Path, name: &str, binary: &Path) {
    let w = |p: &str, s: &str, mode: u32| {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, s).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::copy(binary, root.join(name)).expect("copy app");
    fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    w("foo.txt", "foo\n", 0o644);
    w("bar.txt", "bar\n", 0o644);
    w("data/a.txt", "alpha\n", 0o644);
    w("data/run.sh", "#!/bin/sh\necho run\n", 0o755);
    w("data/sub/deep/d.txt", "delta\n", 0o600);
    w("data/sub/e.txt", "", 0o444);
    fs::hard_link(root.join("data/a.txt"), root.join("data/hard.txt")).unwrap();
    symlink("a.txt", root.join("data/link-a")).unwrap();
    symlink("/data/sub", root.join("data/abs-sub")).unwrap();
    symlink("nowhere", root.join("data/dangling")).unwrap();
    symlink("loop2", root.join("data/loop1")).unwrap();
    symlink("loop1", root.join("data/loop2")).unwrap();
    symlink("../../../../foo.txt", root.join("data/sub/up-foo")).unwrap();
    fs::set_permissions(root.join("data/sub"), fs::Permissions::from_mode(0o750)).unwrap();
}

/// The Linux reference: runs `/NAME ARGS` under qemu-aarch64-static chrooted into `rootfs`
/// (a copy of qemu is put at /.qemu-aarch64-static), with `env` only. Returns (stdout,
/// status as a shell reports it), or `None` with one line printed when it cannot run.
pub fn reference(rootfs: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Option<(Vec<u8>, i32)> {
    if !have("qemu-aarch64-static") || !have("chroot") {
        crate::tools::skip(&format!("qemu-aarch64-static missing (apt: qemu-user-static)"));
        return None;
    }
    let qemu = Command::new("sh").args(["-c", "command -v qemu-aarch64-static"]).output().ok()?;
    let qemu = String::from_utf8_lossy(&qemu.stdout).trim().to_string();
    fs::copy(&qemu, rootfs.join(".qemu-aarch64-static")).expect("copy qemu");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -c 0; exec chroot \"$0\" /.qemu-aarch64-static \"$@\"")
        .arg(rootfs)
        .arg(format!("/{name}"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the reference");
    if out.status.code() == Some(125) || String::from_utf8_lossy(&out.stderr).contains("chroot: cannot change root") {
        crate::tools::skip(&format!("chroot failed (needs root): {}", String::from_utf8_lossy(&out.stderr).trim()));
        return None;
    }
    let _ = fs::remove_file(rootfs.join(".qemu-aarch64-static"));
    Some((out.stdout, shell_status(&out.status)))
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
pub fn shell_status(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Debian's busybox-static for arm64: a stripped, static glibc binary. Fetched once with
/// `apt-get download busybox-static:arm64` (needs the arm64 architecture added) into
/// target/test-apps; `None` with one line printed when that is not possible.
pub fn busybox_arm64() -> Option<PathBuf> {
    let out = out_dir().join("busybox");
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return Some(out);
    }
    if !have("apt-get") || !have("dpkg-deb") {
        crate::tools::skip(&format!("apt-get/dpkg-deb missing: cannot fetch busybox-static:arm64"));
        return None;
    }
    let tmp = tempfile::tempdir().ok()?;
    let dl = Command::new("apt-get").args(["download", "-q", "busybox-static:arm64"]).current_dir(tmp.path()).output().ok()?;
    let deb = fs::read_dir(tmp.path()).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb"));
    let Some(deb) = deb else {
        crate::tools::skip(&format!("apt-get download busybox-static:arm64 failed (dpkg --add-architecture arm64; apt-get update): {}",
            String::from_utf8_lossy(&dl.stderr).trim()
        ));
        return None;
    };
    check(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(tmp.path().join("x")));
    fs::copy(tmp.path().join("x/bin/busybox"), &out).ok()?;
    Some(out)
}
