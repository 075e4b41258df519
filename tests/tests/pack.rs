//! `selkie pack --format bundle` and `selkie inspect` on images made by umoci, skopeo and
//! buildah: the flattened rootfs must equal what `umoci unpack` produces.

use selkie_tests::oci::{assert_same_tree, cpio_tree, dir_tree, OciImage, RawTar};
use selkie_tests::tools::{run, selkie, skip_without};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// A static aarch64 binary: Debian's busybox-static is x86; build a tiny one with musl.
fn hello_binary(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("hello.c");
    fs::write(&src, "#include <stdio.h>\nint main(int c,char**v){for(int i=0;i<c;i++)puts(v[i]);return 0;}\n").unwrap();
    let out = dir.join("hello");
    run(Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2", "-o"]).arg(&out).arg(&src));
    out
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// Three umoci layers and a hand-made opaque layer, with everything flattening must handle.
fn rich_image(tmp: &Path) -> OciImage {
    let bin = hello_binary(tmp);
    let img = OciImage::new(&tmp.join("layout"), "rich");
    img.layer(|r| {
        for d in ["etc", "usr/bin", "opt/old/sub", "opt/keep", "var/tmp", "data"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::copy(&bin, r.join("usr/bin/hello")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/etc/missing", r.join("etc/dangling")).unwrap();
        fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n").unwrap();
        fs::write(r.join("etc/group"), "root:x:0:\napp:x:1000:\nstaff:x:50:\n").unwrap();
        fs::write(r.join("data/a"), "hardlinked content\n").unwrap();
        fs::hard_link(r.join("data/a"), r.join("data/b")).unwrap();
        fs::write(r.join("usr/bin/suid"), "#!x\n").unwrap();
        fs::set_permissions(r.join("usr/bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(r.join("var/tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(r.join("data/owned"), "mine\n").unwrap();
        chown(&r.join("data/owned"), 1000, 50);
        fs::write(r.join("opt/old/sub/x"), "x\n").unwrap();
        fs::write(r.join("opt/old/y"), "y\n").unwrap();
        fs::write(r.join("opt/keep/k"), "k\n").unwrap();
        fs::write(r.join("etc/gone"), "soon deleted\n").unwrap();
    });
    img.layer(|r| {
        fs::remove_file(r.join("etc/gone")).unwrap();
        fs::remove_dir_all(r.join("opt/old/sub")).unwrap();
        fs::write(r.join("opt/keep/k"), "k changed\n").unwrap();
        // A write through the /bin symlink lands in usr/bin.
        fs::write(r.join("bin/through-link"), "via symlink\n").unwrap();
        fs::set_permissions(r.join("data"), fs::Permissions::from_mode(0o750)).unwrap();
    });
    img.append_raw_layer(&opaque_layer(), "gzip");
    img.config(&[
        "--config.entrypoint", "hello",
        "--config.cmd", "a b",
        "--config.env", "GREETING=hi \"there\"",
        "--config.workingdir", "/data",
        "--config.user", "app:staff",
        "--config.label", "com.koskit.app.spec.heap_pages=2560",
        "--config.label", "org.selkie.app.priority=150",
        "--config.label", "org.selkie.app.max_priority=160",
        "--config.label", "com.koskit.app.spec.publishes=hello_protocol,internet_protocol",
        "--config.label", "org.selkie.app.name=rich-app",
    ]);
    img
}

/// A hand-made layer: an opaque directory (umoci repack never writes one), devices, and a
/// hardlink to a file of a lower layer.
fn opaque_layer() -> Vec<u8> {
    let mut t = RawTar::new();
    t.entry("opt/old/.wh..wh..opq", b'0', 0o644, b"", "")
        .entry("opt/old/", b'5', 0o755, b"", "")
        .entry("opt/old/new", b'0', 0o600, b"new\n", "")
        .entry("dev/", b'5', 0o755, b"", "")
        .entry_dev("dev/null", b'3', 0o666, b"", "", (1, 3))
        .entry_dev("dev/sda", b'4', 0o660, b"", "", (8, 0))
        .entry("data/c", b'1', 0o644, b"", "data/a");
    t.finish()
}

fn need_tools() -> bool {
    skip_without(&["umoci", "aarch64-linux-musl-gcc"])
}

#[test]
fn flattened_rootfs_equals_umoci_unpack() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = rich_image(tmp.path());
    let out = tmp.path().join("bundle");
    let (ok, _, err) = selkie(&["pack", &img.reference(), "--format", "bundle", "-o", out.to_str().unwrap()]);
    assert!(ok, "pack failed: {err}");
    let ours = cpio_tree(&fs::read(out.join("rootfs.cpio")).unwrap());
    let mut reference = dir_tree(&img.umoci_unpack(&tmp.path().join("unpacked")));
    // selkie drops the block device by default, and says so.
    assert!(err.contains("/dev/sda"), "no warning for the dropped device: {err}");
    reference.0.remove("dev/sda");
    // Every file has the image's bytes, the entrypoint too: its rewritten code is in the
    // text store beside the rootfs, not in it.
    assert_same_tree(&ours, &reference);
    let store = fs::read(out.join("rootfs.text")).unwrap();
    let store = musl_shim::text::TextStore::parse(&store).unwrap();
    let cpio = fs::read(out.join("rootfs.cpio")).unwrap();
    let (_, off, data) = musl_shim::text::cpio_files(&cpio).find(|f| f.0 == "usr/bin/hello").unwrap();
    let text = store.get(off, data.len() as u64).expect("the entrypoint is in the text store");
    assert!(text.trap_count() >= 2, "exit and write at least");
    for t in text.traps() {
        let at = t as usize;
        assert_eq!(&data[at..at + 4], &0xd400_0001u32.to_le_bytes(), "the rootfs keeps the svc at {t:#x}");
        let seg = text.bytes(t & !4095, 4096.min(data.len() as u64 - (t & !4095))).expect("a stored segment");
        assert_eq!(&seg[at % 4096..at % 4096 + 4], &0x5e1cu32.to_le_bytes(), "the store has the udf at {t:#x}");
    }
    // Things the layers did, checked directly too.
    assert!(!ours.0.contains_key("etc/gone"));
    assert!(!ours.0.contains_key("opt/old/y") && !ours.0.contains_key("opt/old/sub"));
    assert!(ours.0.contains_key("opt/old/new"));
    assert_eq!(ours.0["usr/bin/suid"].perm, 0o4755);
    assert_eq!(ours.0["var/tmp"].perm, 0o1777);
    assert!(ours.0.contains_key("usr/bin/through-link"));
    assert_eq!(ours.1, vec![vec!["data/a".to_string(), "data/b".into(), "data/c".into()]]);
}

#[test]
fn manifest_carries_the_runtime_config() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = rich_image(tmp.path());
    let out = tmp.path().join("bundle");
    let (ok, _, err) = selkie(&["pack", &img.reference(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let app = &m["apps"][0];
    assert_eq!(app["name"], "rich-app");
    assert_eq!(app["binary"], "/usr/bin/hello");
    assert_eq!(app["argv"], serde_json::json!(["hello", "a b"]));
    assert!(app["envp"].as_array().unwrap().contains(&"GREETING=hi \"there\"".into()));
    assert_eq!(app["cwd"], "/data");
    assert_eq!((app["uid"].as_u64(), app["gid"].as_u64()), (Some(1000), Some(50)));
    assert_eq!(app["spec"]["heap_pages"], 2560);
    assert_eq!((app["spec"]["priority"].as_u64(), app["spec"]["max_priority"].as_u64()), (Some(150), Some(160)));
    assert_eq!(app["spec"]["publishes"], serde_json::json!(["hello_protocol", "internet_protocol"]));
}

#[test]
fn packing_is_deterministic_and_docker_archive_matches_oci() {
    if need_tools() || skip_without(&["skopeo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = rich_image(tmp.path());
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert!(selkie(&["pack", &img.reference(), "-o", a.to_str().unwrap()]).0);
    assert!(selkie(&["pack", &img.reference(), "-o", b.to_str().unwrap()]).0);
    let ca = fs::read(a.join("rootfs.cpio")).unwrap();
    assert_eq!(ca, fs::read(b.join("rootfs.cpio")).unwrap(), "two packs differ");
    let tar = tmp.path().join("img.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", &format!("oci:{}", img.umoci_ref())])
        .arg(format!("docker-archive:{}:rich:latest", tar.display())));
    let c = tmp.path().join("c");
    let (ok, _, err) = selkie(&["pack", &format!("docker-archive:{}", tar.display()), "-o", c.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(cpio_tree(&ca), cpio_tree(&fs::read(c.join("rootfs.cpio")).unwrap()));
}

#[test]
fn zstd_and_uncompressed_layers_flatten_like_gzip() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut cpios = Vec::new();
    for c in ["gzip", "zstd", "none"] {
        let img = OciImage::new(&tmp.path().join(c), "x");
        let bin = hello_binary(tmp.path());
        img.layer(|r| {
            fs::copy(&bin, r.join("hello")).unwrap();
            fs::create_dir(r.join("data")).unwrap();
            fs::write(r.join("data/a"), "a\n").unwrap();
        });
        img.append_raw_layer(&opaque_layer(), c);
        img.config(&["--config.entrypoint", "/hello"]);
        let out = tmp.path().join(format!("out-{c}"));
        let (ok, _, err) = selkie(&["pack", &img.reference(), "-o", out.to_str().unwrap()]);
        assert!(ok, "{c}: {err}");
        let cpio = fs::read(out.join("rootfs.cpio")).unwrap();
        assert!(cpio_tree(&cpio).0.contains_key("opt/old/new"), "{c}");
        // The three images are built seconds apart: compare all but mtimes.
        let mut t = cpio_tree(&cpio);
        t.0.values_mut().for_each(|i| i.mtime = None);
        cpios.push(t);
    }
    assert_eq!(cpios[0], cpios[1]);
    assert_eq!(cpios[0], cpios[2]);
}

#[test]
fn inspect_prints_table_and_json() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = rich_image(tmp.path());
    let (ok, table, err) = selkie(&["inspect", &img.reference()]);
    assert!(ok, "{err}");
    assert!(table.contains("rich-app") && table.contains("/usr/bin/hello") && table.contains("untyped needed"), "{table}");
    let (ok, json, _) = selkie(&["inspect", &img.reference(), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["app"]["name"], "rich-app");
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    let segs = v["binary"]["segments"].as_array().unwrap();
    assert!(segs.iter().any(|s| s["perms"] == "r-x"));
    let frames: u64 = segs.iter().map(|s| s["frames"].as_u64().unwrap()).sum();
    assert_eq!(v["plan"]["segment_frames"].as_u64(), Some(frames));
    assert!(v["plan"]["untyped_bytes"].as_u64().unwrap() > 2560 * 4096);
}

#[test]
fn platform_is_selected_from_an_index() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = hello_binary(tmp.path());
    let layout = tmp.path().join("multi");
    let arm = OciImage::new(&layout, "arm");
    arm.layer(|r| { fs::copy(&bin, r.join("hello")).unwrap(); });
    arm.config(&["--config.entrypoint", "/hello"]);
    let amd = OciImage::new(&layout, "amd");
    amd.layer(|r| fs::write(r.join("hello"), "not aarch64").unwrap());
    amd.config(&["--config.entrypoint", "/hello", "--architecture", "amd64"]);
    // A platform index over both, tagged "multi".
    let (arm_d, arm_m) = arm.manifest();
    let (amd_d, amd_m) = amd.manifest();
    let size = |m: &serde_json::Value| serde_json::to_vec(m).unwrap().len();
    let _ = (size(&arm_m), size(&amd_m));
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd_d,
             "size": fs::metadata(amd.blob_path(&amd_d)).unwrap().len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_d,
             "size": fs::metadata(arm.blob_path(&arm_d)).unwrap().len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    });
    let bytes = serde_json::to_vec(&idx).unwrap();
    use sha2::Digest;
    let d = hex::encode(sha2::Sha256::digest(&bytes));
    fs::write(layout.join("blobs/sha256").join(&d), &bytes).unwrap();
    let mut top: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{d}"), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }));
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let r = format!("oci:{}:multi", layout.display());
    let (ok, json, err) = selkie(&["inspect", &r, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["platform"], "linux/arm64");
    assert_eq!(v["manifest_digest"], arm_d);
    let (ok, _, err) = selkie(&["inspect", &r, "--platform", "linux/riscv64"]);
    assert!(!ok);
    assert!(err.contains("linux/riscv64") && err.contains("linux/amd64") && err.contains("linux/arm64/v8"), "{err}");
    // The amd64 image itself is refused by its binary's machine.
    let (ok, _, err) = selkie(&["inspect", &r, "--platform", "linux/amd64"]);
    assert!(!ok && err.contains("not an ELF"), "{err}");
}

#[test]
fn non_static_and_foreign_binaries_are_refused_by_name() {
    if need_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d.c");
    fs::write(&src, "int main(){return 0;}\n").unwrap();
    let dynamic = tmp.path().join("dyn");
    run(Command::new("aarch64-linux-musl-gcc").arg("-o").arg(&dynamic).arg(&src));
    let img = OciImage::new(&tmp.path().join("l"), "dyn");
    img.layer(|r| {
        fs::copy(&dynamic, r.join("dyn")).unwrap();
        fs::copy("/bin/true", r.join("x86")).unwrap();
    });
    img.config(&["--config.entrypoint", "/dyn"]);
    let (ok, _, err) = selkie(&["inspect", &img.reference()]);
    assert!(!ok);
    assert!(err.contains("dynamically linked") && err.contains("ld-musl-aarch64"), "{err}");
    img.config(&["--config.entrypoint", "/x86"]);
    let (ok, _, err) = selkie(&["inspect", &img.reference()]);
    assert!(!ok);
    assert!(err.contains("x86-64") && err.contains("/x86"), "{err}");
}

#[test]
fn buildah_images_pack_like_umoci_unpacks_them() {
    if need_tools() || skip_without(&["buildah"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let bin = hello_binary(&ctx);
    let _ = bin;
    fs::write(ctx.join("foo.txt"), "foo\n").unwrap();
    fs::write(ctx.join("bar.txt"), "bar\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY hello /\nCOPY foo.txt bar.txt /\nENV HELLO=\"WORLD\"\nENTRYPOINT [\"/hello\"]\nCMD [\"hello_world\", \"test\"]\n",
    )
    .unwrap();
    let layout = tmp.path().join("layout");
    let storage = tmp.path().join("storage");
    let runroot = tmp.path().join("run");
    let b = |args: &[&str]| {
        let mut c = Command::new("buildah");
        c.arg("--root").arg(&storage).arg("--runroot").arg(&runroot).arg("--storage-driver").arg("vfs").args(args);
        c
    };
    run(&mut b(&["bud", "--quiet", "--isolation", "chroot", "--platform", "linux/arm64", "-t", "localhost/seedhello", ctx.to_str().unwrap()]));
    run(&mut b(&["push", "--quiet", "localhost/seedhello", &format!("oci:{}:hello", layout.display())]));
    let img = selkie_tests::oci::OciImage { dir: layout.clone(), tag: "hello".into() };
    let out = tmp.path().join("bundle");
    let (ok, _, err) = selkie(&["pack", &img.reference(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let mut ours = cpio_tree(&fs::read(out.join("rootfs.cpio")).unwrap());
    let reference = dir_tree(&img.umoci_unpack(&tmp.path().join("unpacked")));
    ours.0.get_mut("hello").unwrap().content = reference.0["hello"].content.clone();
    assert_same_tree(&ours, &reference);
    let m: serde_json::Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["apps"][0]["argv"], serde_json::json!(["/hello", "hello_world", "test"]));
    assert!(m["apps"][0]["envp"].as_array().unwrap().contains(&"HELLO=WORLD".into()));
}
