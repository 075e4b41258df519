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
//! - apt (bookworm-backports): `golang-1.22-go` for tests/apps/goapp
//! - root, for `chroot` into the unpacked rootfs for the qemu reference, and for
//!   registering qemu-aarch64-static with binfmt_misc (apps that execve other programs)

use crate::tools::{have, workspace};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How a C app is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Static,
    /// `-static-pie`, linked by hand: Debian's musl-gcc specs only know -static.
    StaticPie,
    /// `-static` with the selkie SDK toolchain (sdk/build-toolchain: Debian's musl patched
    /// to put syscall numbers in x7 too), built once into target/selkie-sdk.
    Sdk,
}

/// The selkie SDK's compiler, built by sdk/build-toolchain on first use; `None` with one
/// line printed when it cannot be built here (its error is shown).
pub fn sdk_cc() -> Option<PathBuf> {
    static CC: OnceLock<Option<PathBuf>> = OnceLock::new();
    CC.get_or_init(|| {
        let prefix = workspace().join("target/selkie-sdk/aarch64");
        let out = Command::new(workspace().join("sdk/build-toolchain")).arg(&prefix).output().expect("sdk/build-toolchain");
        if !out.status.success() {
            crate::tools::skip(&format!(
                "the selkie SDK toolchain did not build (sdk/build-toolchain): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(prefix.join("bin/aarch64-selkie-linux-musl-gcc"))
    })
    .clone()
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
    let sdk = match link {
        Link::Sdk => Some(sdk_cc()?),
        _ => None,
    };
    let suffix = match link {
        Link::Static => "",
        Link::StaticPie => "-pie",
        Link::Sdk => "-sdk",
    };
    let out = out_dir().join(format!("{name}{suffix}"));
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !newer(&src, &out) && sdk.as_ref().is_none_or(|cc| !newer(cc, &out)) {
        return Some(out);
    }
    let tmp = out.with_extension("tmp");
    match link {
        Link::Static => check(Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2", "-o"]).arg(&tmp).arg(&src)),
        Link::Sdk => check(Command::new(sdk.unwrap()).args(["-static", "-O2", "-o"]).arg(&tmp).arg(&src)),
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
    fs::copy(binary, root.join(name)).expect("copy app");
    fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    populate_tree(root);
}

/// The standard tree of [`populate`] without an app: /foo.txt, /bar.txt and /data.
pub fn populate_tree(root: &Path) {
    let w = |p: &str, s: &str, mode: u32| {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, s).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
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

/// How the Linux reference runs an app.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Run as nobody (65534:65534) with RLIMIT_NPROC at this many tasks: a fork bomb or a
    /// thread storm then ends with EAGAIN instead of filling the machine (root is exempt
    /// from RLIMIT_NPROC, hence nobody).
    pub nproc: Option<u32>,
    /// Past this the run is killed and the test fails.
    pub timeout: Duration,
    /// Mount /proc, /sys and a container's /dev (a tmpfs with null, zero, full, random,
    /// urandom and tty bound from the host, a new devpts instance with /dev/ptmx a link into
    /// it, a tmpfs /dev/shm and the /proc/self/fd links) in the rootfs for the run, in a mount
    /// namespace of its own, as a container runtime does.
    pub kernel_fs: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { nproc: None, timeout: Duration::from_secs(300), kernel_fs: false }
    }
}

/// The Linux reference: runs `/NAME ARGS` under qemu-aarch64-static chrooted into `rootfs`
/// (a copy of qemu is put at /.qemu-aarch64-static), with `env` only. Returns (stdout,
/// status as a shell reports it), or `None` with one line printed when it cannot run.
pub fn reference(rootfs: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Option<(Vec<u8>, i32)> {
    reference_with(rootfs, name, args, env, Limits::default())
}

/// As [`reference`], within `limits`.
pub fn reference_with(rootfs: &Path, name: &str, args: &[&str], env: &[(&str, &str)], limits: Limits) -> Option<(Vec<u8>, i32)> {
    if !have("qemu-aarch64-static") || !have("chroot") {
        crate::tools::skip(&format!("qemu-aarch64-static missing (apt: qemu-user-static)"));
        return None;
    }
    let qemu = Command::new("sh").args(["-c", "command -v qemu-aarch64-static"]).output().ok()?;
    let qemu = String::from_utf8_lossy(&qemu.stdout).trim().to_string();
    // Copied by `cp`, not by this process: a file this (multi-threaded) test process held
    // open for writing leaks into every child another test forks meanwhile, and executing
    // it then fails with ETXTBSY (the reference's status 126 and empty output, seen in CI).
    let copied = Command::new("cp").arg(&qemu).arg(rootfs.join(".qemu-aarch64-static")).status().expect("cp");
    assert!(copied.success(), "copying {qemu} into {}", rootfs.display());
    let script = match limits.nproc {
        None if limits.kernel_fs => {
            if !have("unshare") {
                crate::tools::skip("unshare missing (apt: util-linux)");
                return None;
            }
            // 125: the mounts failed (no CAP_SYS_ADMIN), told apart from the app's statuses.
            // /dev as runc lays it out: devpts a new instance, /dev/ptmx a link into it.
            "ulimit -c 0; exec unshare --mount --fork sh -c 'r=$0; mkdir -p \"$r/proc\" \"$r/sys\" \"$r/dev\" \
             && mount -t proc proc \"$r/proc\" && mount -t sysfs sysfs \"$r/sys\" && mount -t tmpfs -o mode=755 tmpfs \"$r/dev\" \
             && mkdir \"$r/dev/pts\" \"$r/dev/shm\" && for d in null zero full random urandom tty; do \
             touch \"$r/dev/$d\" && mount --bind /dev/$d \"$r/dev/$d\" || exit 125; done \
             && mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts \"$r/dev/pts\" && ln -s pts/ptmx \"$r/dev/ptmx\" \
             && mount -t tmpfs -o mode=1777 shm \"$r/dev/shm\" && ln -s /proc/self/fd \"$r/dev/fd\" \
             && ln -s /proc/self/fd/0 \"$r/dev/stdin\" && ln -s /proc/self/fd/1 \"$r/dev/stdout\" && ln -s /proc/self/fd/2 \"$r/dev/stderr\" \
             || exit 125; exec chroot \"$r\" /.qemu-aarch64-static \"$@\"' \"$0\" \"$@\""
                .to_string()
        }
        None => "ulimit -c 0; exec chroot \"$0\" /.qemu-aarch64-static \"$@\"".to_string(),
        Some(n) => {
            if !have("prlimit") {
                crate::tools::skip("prlimit missing (apt: util-linux)");
                return None;
            }
            format!("ulimit -c 0; exec prlimit --nproc={n}:{n} chroot --userspec=65534:65534 \"$0\" /.qemu-aarch64-static \"$@\"")
        }
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(rootfs)
        .arg(format!("/{name}"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // RLIMIT_NPROC counts every process of user nobody: two limited references running at
    // once (tests run in parallel) would eat each other's allowance.
    static NOBODY: Mutex<()> = Mutex::new(());
    let _one_at_a_time = limits.nproc.map(|_| NOBODY.lock().unwrap_or_else(|e| e.into_inner()));
    let run = crate::tools::output_within(&mut cmd, limits.timeout);
    let out = run.output;
    if out.status.code() == Some(125) || String::from_utf8_lossy(&out.stderr).contains("chroot: cannot change root") {
        crate::tools::skip(&format!("chroot or mounting /proc failed (needs root): {}", String::from_utf8_lossy(&out.stderr).trim()));
        return None;
    }
    assert!(
        !run.timed_out,
        "the Linux reference /{name} {args:?} did not finish within {:?}; stdout so far:\n{}\nstderr:\n{}",
        limits.timeout,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Builds tests/apps/goapp (Go, `GOARCH=arm64 CGO_ENABLED=0`, a static binary) with Debian's
/// golang-1.22-go (bookworm-backports); `None` with one line printed when Go is missing.
pub fn go_app() -> Option<PathBuf> {
    let go = Path::new("/usr/lib/go-1.22/bin/go");
    if !go.exists() {
        crate::tools::skip("/usr/lib/go-1.22/bin/go missing (apt: golang-1.22-go from bookworm-backports)");
        return None;
    }
    let dir = workspace().join("tests/apps/goapp");
    let out = out_dir().join("goapp");
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let stale = fs::read_dir(&dir).expect("tests/apps/goapp").filter_map(|e| e.ok()).any(|e| newer(&e.path(), &out));
    if !stale {
        return Some(out);
    }
    let tmp = out.with_extension("tmp");
    let cache = out_dir().join("go");
    check(
        Command::new(go)
            .args(["build", "-trimpath", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(&dir)
            .env("GOOS", "linux")
            .env("GOARCH", "arm64")
            .env("CGO_ENABLED", "0")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", cache.join("cache"))
            .env("GOPATH", cache.join("path")),
    );
    fs::rename(&tmp, &out).expect("rename goapp");
    Some(out)
}

/// Makes the kernel run aarch64 ELF binaries with qemu-aarch64-static (binfmt_misc, with
/// the F flag so the interpreter is found inside a chroot), so that an app under the Linux
/// reference can execve another aarch64 program. Mounts binfmt_misc when it is not, and
/// registers an entry unless one that fits is there. Idempotent; `false` with one line
/// printed when it cannot (not root, no binfmt_misc).
pub fn binfmt_aarch64() -> bool {
    static R: OnceLock<Result<(), String>> = OnceLock::new();
    match R.get_or_init(register_binfmt) {
        Ok(()) => true,
        Err(why) => {
            crate::tools::skip(&format!("cannot run aarch64 programs exec'd under the Linux reference: {why}"));
            false
        }
    }
}

const AARCH64_MAGIC: &str = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
const AARCH64_MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// Whether an enabled binfmt_misc entry (its text as /proc shows it) runs aarch64 ELF
/// executables with a fixed (F) interpreter.
fn fits(entry: &str) -> bool {
    let line = |k: &str| entry.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
    entry.lines().next() == Some("enabled")
        && line("flags:").contains('F')
        && line("offset ") == "0"
        && line("magic ") == "7f454c460201010000000000000000000200b700"
}

fn register_binfmt() -> Result<(), String> {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("register").exists() {
        let out = Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc"]).arg(dir).output().map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t binfmt_misc failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    if fs::read_to_string(dir.join("status")).map_err(|e| format!("binfmt_misc/status: {e}"))?.trim() != "enabled" {
        return Err("binfmt_misc is disabled (/proc/sys/fs/binfmt_misc/status)".into());
    }
    let entries = || -> Vec<(String, String)> {
        fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name() != "register" && e.file_name() != "status")
                    .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), fs::read_to_string(e.path()).ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if entries().iter().any(|(_, text)| fits(text)) {
        return Ok(());
    }
    // Debian's qemu-user-static names its entry qemu-aarch64, with a wrapper (its name
    // ending in -binfmt-P) that takes the preserved argv[0] (the P flag).
    let taken = entries().iter().any(|(name, _)| name == "qemu-aarch64");
    let name = if taken { "selkie-qemu-aarch64" } else { "qemu-aarch64" };
    let wrapper = Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
    let (interp, flags) = if wrapper.exists() {
        (wrapper.to_string_lossy().into_owned(), "PF")
    } else {
        let q = Command::new("sh").args(["-c", "command -v qemu-aarch64-static"]).output().map_err(|e| e.to_string())?;
        let q = String::from_utf8_lossy(&q.stdout).trim().to_string();
        if q.is_empty() {
            return Err("qemu-aarch64-static missing (apt: qemu-user-static)".into());
        }
        (q, "F")
    };
    let line = format!(":{name}:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{interp}:{flags}");
    fs::write(dir.join("register"), line).map_err(|e| format!("registering with binfmt_misc: {e}"))?;
    if entries().iter().any(|(n, text)| n == name && fits(text)) {
        Ok(())
    } else {
        Err(format!("the {name} entry did not take"))
    }
}

/// Lines tests/apps/signals.c prints on Linux (it then dies of SIGTERM).
pub const SIGNALS_EXPECTED: [&str; 7] = [
    "raise: handler ran 1 time(s), siginfo ok: yes, fp kept: yes",
    "kill: handler ran 1 time(s), on the alternate stack: yes",
    "blocked: pending yes, handler ran 1 time(s)",
    "unblocked: handler ran 2 time(s)",
    "SIGCHLD: 3 of 3",
    "read without SA_RESTART: EINTR, handler ran 1 time(s)",
    "read with SA_RESTART: 1 byte(s) 'y', handler ran 2 time(s)",
];

/// What tests/apps/sigthreads.c prints on Linux (its status is 3).
pub const SIGTHREADS_EXPECTED: [&str; 6] = [
    "main: SIGHUP pending: yes, handled: 0",
    "worker: sigsuspend returned EINTR: yes",
    "worker: its mask was put back: yes",
    "SIGUSR1 handled 1 time(s), by the worker: yes",
    "SIGUSR2 handled 1 time(s), by the worker: yes",
    "main: SIGHUP handled 1 time(s), by main: yes",
];
