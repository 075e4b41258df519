//! The selkie SDK builder image: `selkie sdk build` makes it from Debian packages (and is
//! a no-op the second time), `selkie build` builds sdk/examples/hello (the seed's hello
//! Dockerfile, its build stage on the SDK) with it, and the app it makes is a static
//! aarch64 binary with the "selkie" note that prints what the same source built with
//! Debian's aarch64-linux-musl-gcc prints: under qemu-aarch64-static, under the emulator,
//! and booted on seL4.
//!
//! The SDK image is kept between runs in target/sdk-cache (the first build takes minutes:
//! debootstrap and the toolchain; later ones find it up to date).

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};
use selkie_tests::apps::reference;
use selkie_tests::sel4;
use selkie_tests::tools::{have, run, selkie_bin, skip, skip_without, workspace};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// One SDK build at a time: both tests share the image.
static SDK: Mutex<()> = Mutex::new(());

/// The cache the SDK image lives in between test runs.
fn cache() -> PathBuf {
    workspace().join("target/sdk-cache")
}

fn selkie(args: &[&str]) -> Output {
    Command::new(selkie_bin()).env("XDG_CACHE_HOME", cache()).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Builds the SDK image (or finds it up to date); false, with one line, when this machine
/// cannot.
fn sdk_image() -> bool {
    if skip_without(&["buildah", "debootstrap", "umoci", "chroot"]) {
        return false;
    }
    if !is_root() {
        skip("selkie sdk build needs root (debootstrap, chroot)");
        return false;
    }
    let _g = SDK.lock().unwrap_or_else(|e| e.into_inner());
    let o = selkie(&["sdk", "build"]);
    let out = text(&o);
    assert!(o.status.success(), "selkie sdk build failed:\n{out}");
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.contains("localhost/selkie-sdk:latest") && line.contains("aarch64-selkie-linux-musl-gcc"), "{line}");
    true
}

/// The example's context, and the Dockerfile in it.
fn example() -> PathBuf {
    workspace().join("sdk/examples/hello")
}

/// The notes of an ELF file: (name, type, descriptor) from every PT_NOTE segment.
fn notes(data: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let hdr = elf::FileHeader64::<Endianness>::parse(data).expect("an ELF64 file");
    let e = hdr.endian().unwrap();
    let mut v = Vec::new();
    for ph in hdr.program_headers(e, data).unwrap() {
        if let Some(mut it) = ph.notes(e, data).unwrap() {
            while let Some(n) = it.next().unwrap() {
                v.push((String::from_utf8_lossy(n.name()).to_string(), n.n_type(e).0, n.desc().to_vec()));
            }
        }
    }
    v
}

/// (machine, has PT_INTERP, has PT_DYNAMIC) of an ELF file.
fn shape(data: &[u8]) -> (u16, bool, bool) {
    let hdr = elf::FileHeader64::<Endianness>::parse(data).expect("an ELF64 file");
    let e = hdr.endian().unwrap();
    let phs = hdr.program_headers(e, data).unwrap();
    (hdr.e_machine(e).0, phs.iter().any(|p| p.p_type(e) == elf::PT_INTERP), phs.iter().any(|p| p.p_type(e) == elf::PT_DYNAMIC))
}

#[test]
fn sdk_image_builds_once_and_builds_the_seeds_hello() {
    if !sdk_image() {
        return;
    }
    // Up to date now: a second run builds nothing, and the layout holds the image.
    let t = std::time::Instant::now();
    let o = selkie(&["sdk", "build"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("up to date: oci:"), "{}", text(&o));
    assert!(t.elapsed().as_secs() < 60, "an up-to-date selkie sdk build took {:?}", t.elapsed());
    let layout = cache().join("selkie/sdk-image/index.json");
    let index = std::fs::read_to_string(&layout).unwrap_or_else(|e| panic!("{}: {e}", layout.display()));
    assert!(index.contains("\"org.opencontainers.image.ref.name\":\"latest\""), "{index}");

    // The seed's hello Dockerfile, its build stage on the SDK.
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("oci:{}:v1", tmp.path().join("oci").display());
    let dockerfile = example().join("Dockerfile");
    let o = selkie(&["build", "-f", dockerfile.to_str().unwrap(), "-t", &tag, example().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("entrypoint /hello (static aarch64") && summary.contains("priority 180"), "{summary}");
    assert!(summary.contains("selkie SDK syscalls, none rewritten"), "pack did not see the SDK's note: {summary}");

    let o = selkie(&["inspect", "--json", &tag]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["app"]["argv"], serde_json::json!(["/hello", "hello_world", "test"]), "{r}");
    assert_eq!(r["binary"]["path"], "/hello", "{r}");
    assert_eq!(r["binary"]["sdk_syscalls"], true, "{r}");
    assert_eq!(r["app"]["name"], "hello", "the seed's label com.koskit.app.name: {r}");

    // The binary itself: static aarch64, with the SDK's note.
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").args(["unpack", "--image", &format!("{}:v1", tmp.path().join("oci").display())]).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let hello = std::fs::read(rootfs.join("hello")).unwrap();
    assert_eq!(shape(&hello), (elf::EM_AARCH64.0, false, false), "/hello is not a static aarch64 executable");
    let n = notes(&hello);
    assert!(n.iter().any(|(name, ty, _)| name == "selkie" && *ty == 1), "no \"selkie\" note (type 1) in /hello: {n:?}");
    assert_eq!(std::fs::read_to_string(rootfs.join("foo.txt")).unwrap(), "foo\n");

    // The same source with Debian's musl: same output under qemu-aarch64-static, and no note.
    if !have("aarch64-linux-musl-gcc") {
        skip("aarch64-linux-musl-gcc missing (apt: musl-dev:arm64)");
        return;
    }
    let debian_root = tmp.path().join("debian-rootfs");
    run(Command::new("cp").arg("-a").arg(&rootfs).arg(&debian_root));
    run(Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2", "-o"]).arg(debian_root.join("hello")).arg(example().join("hello.c")));
    let debian = std::fs::read(debian_root.join("hello")).unwrap();
    assert!(!notes(&debian).iter().any(|(name, ..)| name == "selkie"), "Debian's musl gave a selkie note");
    let args = ["hello_world", "test"];
    let env = [("HELLO", "WORLD")];
    let Some((want, status)) = reference(&debian_root, "hello", &args, &env) else { return };
    assert_eq!(status, 0);
    assert!(String::from_utf8_lossy(&want).contains("HELLO = WORLD\n/foo.txt: foo\n/bar.txt: bar\n"), "{}", String::from_utf8_lossy(&want));
    let (got, status) = reference(&rootfs, "hello", &args, &env).unwrap();
    assert_eq!(status, 0);
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "the SDK's /hello and Debian's differ under qemu-aarch64-static");
}

#[test]
fn sdk_built_hello_runs_emulated_and_on_sel4() {
    if !sdk_image() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("oci:{}:latest", tmp.path().join("oci").display());
    let dockerfile = example().join("Dockerfile");
    let o = selkie(&["build", "-f", dockerfile.to_str().unwrap(), "-t", &tag, example().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let o = selkie(&["run", "--emulate", &tag]);
    assert!(o.status.success(), "{}", text(&o));
    let emulated = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(emulated, "argv[0] = /hello\nargv[1] = hello_world\nargv[2] = test\nHELLO = WORLD\n/foo.txt: foo\n/bar.txt: bar\n");

    if !sel4::available() {
        return;
    }
    let c = sel4::pack_and_boot(&[tag.clone()], 300);
    assert_eq!(c.status("hello"), Some(0), "{}", c.text);
    assert!(c.has_in_order(&emulated), "seL4's lines differ from the emulator's:\n{}", c.text);
}

#[test]
fn sdk_build_says_what_is_wrong() {
    // Not an OCI layout target: refused before anything is built.
    let o = selkie(&["sdk", "build", "-t", "docker://127.0.0.1:5000/sdk:latest"]);
    assert!(!o.status.success() && text(&o).contains("oci:DIR[:TAG]"), "{}", text(&o));
    // Without debootstrap on PATH (and no stored image in a fresh cache) it says so.
    if skip_without(&["buildah"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["buildah", "sh"] {
        let path = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        std::os::unix::fs::symlink(String::from_utf8_lossy(&path.stdout).trim(), bin.join(tool)).unwrap();
    }
    let o = Command::new(selkie_bin())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env("PATH", format!("{}:/nonexistent", bin.display()))
        .args(["sdk", "build"])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    if is_root() {
        assert!(out.contains("needs debootstrap"), "{out}");
    } else {
        assert!(out.contains("need root"), "{out}");
    }
}

/// The example and the seed's hello used by the other tests are the same program.
#[test]
fn the_example_is_the_seeds_hello() {
    let ex = std::fs::read_to_string(example().join("hello.c")).unwrap();
    let seed = std::fs::read_to_string(workspace().join("tests/apps/hello.c")).unwrap();
    assert_eq!(ex, seed, "sdk/examples/hello/hello.c and tests/apps/hello.c differ");
    let d = std::fs::read_to_string(example().join("Dockerfile")).unwrap();
    assert!(d.contains("FROM --platform=$BUILDPLATFORM localhost/selkie-sdk AS build") && d.contains("FROM scratch"), "{d}");
}
