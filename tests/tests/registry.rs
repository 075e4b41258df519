//! Registries: images pushed by skopeo and pulled by selkie (and back), bootable-image
//! artifacts, the cache, and the errors (unknown names, wrong credentials, a blob corrupted
//! in transit, a missing platform), each with no partial output. Every test runs its own
//! `docker-registry` on 127.0.0.1 and its own selkie cache.

use selkie_tests::apps::{c_app, populate, Link};
use selkie_tests::oci::OciImage;
use selkie_tests::registry::{
    add_index, dir_files, skopeo_copy, skopeo_digest, skopeo_raw, Proxy, SelkieEnv, TestRegistry,
};
use selkie_tests::tools::{run, skip_without};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::process::Command;

fn need() -> bool {
    skip_without(&["docker-registry", "skopeo", "umoci", "htpasswd", "aarch64-linux-musl-gcc"])
}

/// An arm64 image of the hello app in two layers, tagged `app` in `tmp/layout`.
fn app_image(tmp: &Path) -> Option<OciImage> {
    let bin = c_app("hello", Link::Static)?;
    let img = OciImage::new(&tmp.join("layout"), "app");
    img.layer(|r| populate(r, "hello", &bin));
    img.layer(|r| std::fs::write(r.join("second-layer.txt"), "from layer 2\n").unwrap());
    img.config(&["--config.entrypoint", "/hello", "--config.cmd", "world"]);
    Some(img)
}

/// The hello image, a registry, and skopeo's copy of the image there as apps/hello:v1.
fn pushed_by_skopeo(tmp: &Path) -> Option<(OciImage, TestRegistry, SelkieEnv)> {
    let img = app_image(tmp)?;
    let reg = TestRegistry::start();
    skopeo_copy(&format!("oci:{}", img.umoci_ref()), &reg.reference("apps/hello:v1"), None, false);
    Some((img, reg, SelkieEnv::new()))
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Packs `image` as app "hello" into `out` and returns the bundle's files.
fn pack(env: &SelkieEnv, image: &str, out: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    env.ok(&["pack", image, "--name", "hello", "-o", out.to_str().unwrap()]);
    dir_files(out)
}

#[test]
fn skopeo_push_then_selkie_pull_and_pack_give_the_same_bundle() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, reg, env)) = pushed_by_skopeo(tmp.path()) else { return };
    let original = pack(&env, &img.reference(), &tmp.path().join("from-oci"));

    // Straight from the registry.
    assert_eq!(pack(&env, &reg.reference("apps/hello:v1"), &tmp.path().join("from-registry")), original);

    // Pulled into a layout that umoci and skopeo accept, with the manifest digest kept.
    let pulled = tmp.path().join("pulled");
    env.ok(&["pull", &reg.reference("apps/hello:v1"), "-o", &format!("oci:{}:v1", pulled.display())]);
    run(Command::new("umoci").args(["stat", "--image", &format!("{}:v1", pulled.display())]));
    let out = run(Command::new("skopeo").args(["inspect", &format!("oci:{}:v1", pulled.display())]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest().0.as_str());
    assert_eq!(pack(&env, &format!("oci:{}:v1", pulled.display()), &tmp.path().join("from-pulled")), original);

    // Into an existing layout: a second tag beside the first; into a directory that is not a
    // layout: refused, the directory untouched.
    env.ok(&["pull", &reg.reference("apps/hello:v1"), "-o", &format!("oci:{}:again", pulled.display())]);
    for tag in ["v1", "again"] {
        run(Command::new("umoci").args(["stat", "--image", &format!("{}:{tag}", pulled.display())]));
    }
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), "mine").unwrap();
    let (ok, _, err) = env.selkie(&["pull", &reg.reference("apps/hello:v1"), "-o", &format!("oci:{}:v1", busy.display())]);
    assert!(!ok && err.contains("not an OCI image layout"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // inspect works on docker:// too and names the manifest digest.
    let text = env.ok(&["inspect", &reg.reference("apps/hello:v1")]);
    assert!(text.contains(&img.manifest().0), "{text}");
}

#[test]
fn selkie_push_keeps_the_digest_that_skopeo_sees() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    let reg = TestRegistry::start();
    let env = SelkieEnv::new();
    let printed = env.ok(&["push", &img.reference(), &reg.reference("pushed/oci:1")]);
    assert_eq!(printed.trim(), img.manifest().0);
    assert_eq!(skopeo_digest(&reg.reference("pushed/oci:1")), img.manifest().0);
    assert_eq!(
        skopeo_raw(&reg.reference("pushed/oci:1")),
        std::fs::read(img.blob_path(&img.manifest().0)).unwrap(),
        "the manifest bytes changed on the way"
    );

    // A docker archive gets a manifest built for it; the image packs the same.
    let archive = tmp.path().join("hello.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &format!("oci:{}", img.umoci_ref()),
        &format!("docker-archive:{}:hello:latest", archive.display()),
    ]));
    let printed = env.ok(&["push", &format!("docker-archive:{}", archive.display()), &reg.reference("pushed/archive:1")]);
    assert_eq!(skopeo_digest(&reg.reference("pushed/archive:1")), printed.trim());
    let original = pack(&env, &img.reference(), &tmp.path().join("a"));
    assert_eq!(pack(&env, &reg.reference("pushed/archive:1"), &tmp.path().join("b")), original);
}

#[test]
fn bootable_image_artifact_round_trip_is_byte_identical() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    let reg = TestRegistry::start();
    let env = SelkieEnv::new();
    // A stand-in for a packed image: ELF magic and 300 KiB of varied bytes, and the
    // manifest.json of a real bundle.
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    let mut x: u32 = 0x1234_5678;
    elf.extend((0..300 << 10).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    let elf_path = tmp.path().join("image.elf");
    std::fs::write(&elf_path, &elf).unwrap();
    pack(&env, &img.reference(), &tmp.path().join("bundle"));
    let manifest_json = tmp.path().join("bundle/manifest.json");
    let app = format!("hello={}", img.manifest().0);
    let target = reg.reference("boot/hello:qemu");
    let printed = env.ok(&[
        "push", elf_path.to_str().unwrap(), &target, "--platform", "qemu-arm-virt", "--sel4-version", "16.0.0",
        "--app", &app, "--manifest", manifest_json.to_str().unwrap(),
    ]);
    // skopeo inspects only images; its raw fetch still shows what the registry holds.
    let raw = skopeo_raw(&target);
    assert_eq!(sha256(&raw), printed.trim());
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(raw["artifactType"], "application/vnd.selkie.sel4.image.v1");
    assert_eq!(raw["annotations"]["org.selkie.sel4.platform"], "qemu-arm-virt");
    assert_eq!(raw["annotations"]["org.selkie.sel4.version"], "16.0.0");
    assert_eq!(raw["annotations"]["org.selkie.sel4.apps"], format!("hello@{}", img.manifest().0));
    assert_eq!(raw["config"]["digest"], sha256(&std::fs::read(&manifest_json).unwrap()).as_str());

    // Pulled with a fresh cache, so the bytes really come from the registry.
    let fresh = SelkieEnv::new();
    let out = tmp.path().join("out/pulled.elf");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    fresh.ok(&["pull", &target, "-o", out.to_str().unwrap()]);
    assert!(std::fs::read(&out).unwrap() == elf, "pulled image differs from the pushed one");

    // Without --manifest, the manifest of the bundle embedded in the image is the config.
    let mut with_bundle = elf.clone();
    let manifest_bytes = std::fs::read(&manifest_json).unwrap();
    for (name, data) in [("manifest.json", &manifest_bytes), ("rootfs.cpio", &std::fs::read(tmp.path().join("bundle/rootfs.cpio")).unwrap())] {
        let mut w = cpio::newc::Builder::new(name).mode(0o100644).write(&mut with_bundle, data.len() as u32);
        std::io::Write::write_all(&mut w, data).unwrap();
        w.finish().unwrap();
    }
    let bundled = tmp.path().join("bundled.elf");
    std::fs::write(&bundled, &with_bundle).unwrap();
    env.ok(&["push", bundled.to_str().unwrap(), &reg.reference("boot/hello:bundled"), "--platform", "qemu-arm-virt"]);
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(&reg.reference("boot/hello:bundled"))).unwrap();
    assert_eq!(raw["config"]["digest"], sha256(&manifest_bytes).as_str());
    assert_eq!(raw["config"]["mediaType"], "application/vnd.selkie.manifest.v1+json");

    // An ordinary image is not a bootable image: refused, nothing written.
    skopeo_copy(&format!("oci:{}", img.umoci_ref()), &reg.reference("apps/hello:v1"), None, false);
    let not = tmp.path().join("out/not.elf");
    let (ok, _, err) = fresh.selkie(&["pull", &reg.reference("apps/hello:v1"), "-o", not.to_str().unwrap()]);
    assert!(!ok && err.contains("not a bootable seL4 image") && err.contains("apps/hello:v1"), "{err}");
    assert!(!not.exists());
}

#[test]
fn a_second_pull_comes_from_the_cache() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, mut reg, env)) = pushed_by_skopeo(tmp.path()) else { return };
    let proxy = Proxy::start(&reg.addr, None);
    let blobs = 1 + img.layer_digests().len();

    env.ok(&["pull", &proxy.reference("apps/hello:v1"), "-o", &format!("oci:{}/one:v1", tmp.path().display())]);
    assert_eq!(proxy.blob_gets(), blobs, "first pull: {:?}", proxy.requests());
    for d in img.layer_digests() {
        assert!(env.cached(&d), "layer {d} not cached");
    }
    env.ok(&["pull", &proxy.reference("apps/hello:v1"), "-o", &format!("oci:{}/two:v1", tmp.path().display())]);
    let original = pack(&env, &img.reference(), &tmp.path().join("a"));
    assert_eq!(pack(&env, &proxy.reference("apps/hello:v1"), &tmp.path().join("b")), original);
    assert_eq!(proxy.blob_gets(), blobs, "later pulls fetched blobs again: {:?}", proxy.requests());

    // By digest, nothing needs the registry any more.
    reg.stop();
    let by_digest = proxy.reference(&format!("apps/hello@{}", img.manifest().0));
    assert_eq!(pack(&env, &by_digest, &tmp.path().join("c")), original);
    // A tag must be resolved: with the registry gone that fails, naming the reference.
    let (ok, _, err) = env.selkie(&["pack", &proxy.reference("apps/hello:v1"), "-o", tmp.path().join("d").to_str().unwrap()]);
    assert!(!ok && err.contains("apps/hello:v1"), "{err}");
    assert!(!tmp.path().join("d").exists());

    // Prune empties the cache: now the digest reference fails too.
    let pruned = env.selkie(&["cache", "prune"]);
    assert!(pruned.0 && pruned.2.contains(&format!("removed {}", blobs + 1)), "{}", pruned.2);
    assert!(!env.cached(&img.manifest().0));
    let (ok, _, err) = env.selkie(&["pack", &by_digest, "-o", tmp.path().join("e").to_str().unwrap()]);
    assert!(!ok && err.contains(&img.manifest().0[..20]), "{err}");
}

#[test]
fn unknown_repositories_and_tags_are_clear_errors_with_no_output() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((_img, reg, env)) = pushed_by_skopeo(tmp.path()) else { return };
    for r in ["apps/nope:v1", "apps/hello:nope"] {
        let out = tmp.path().join("out");
        let (ok, _, err) = env.selkie(&["pull", &reg.reference(r), "-o", &format!("oci:{}:x", out.display())]);
        assert!(!ok && err.contains(r) && err.contains("no such"), "{r}: {err}");
        assert!(!out.exists(), "{r}: output left behind");
        let (ok, _, err) = env.selkie(&["pack", &reg.reference(r), "-o", out.to_str().unwrap()]);
        assert!(!ok && err.contains(r), "{r}: {err}");
        assert!(!out.exists(), "{r}: pack output left behind");
    }
}

#[test]
fn credentials_come_from_the_docker_config_and_wrong_ones_are_refused() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    let reg = TestRegistry::start_with_auth("alice", "s3cret");
    skopeo_copy(&format!("oci:{}", img.umoci_ref()), &reg.reference("apps/hello:v1"), Some("alice:s3cret"), false);
    let out = tmp.path().join("out");
    let out_ref = format!("oci:{}:v1", out.display());

    let anonymous = SelkieEnv::new();
    let (ok, _, err) = anonymous.selkie(&["pull", &reg.reference("apps/hello:v1"), "-o", &out_ref]);
    assert!(!ok && err.contains("needs credentials") && err.contains(&reg.addr), "{err}");
    assert!(!out.exists());

    let wrong = SelkieEnv::new();
    wrong.docker_login(&reg.addr, "alice", "wrong");
    let (ok, _, err) = wrong.selkie(&["pull", &reg.reference("apps/hello:v1"), "-o", &out_ref]);
    assert!(!ok && err.contains("rejected the credentials") && err.contains("alice"), "{err}");
    assert!(!out.exists());
    let (ok, _, err) = wrong.selkie(&["push", &img.reference(), &reg.reference("apps/other:v1")]);
    assert!(!ok && err.contains("rejected the credentials"), "{err}");

    // podman's auth file comes first: its right password wins over docker's wrong one.
    let right = SelkieEnv::new();
    right.docker_login(&reg.addr, "alice", "wrong");
    right.podman_login(&reg.addr, "alice", "s3cret");
    right.ok(&["pull", &reg.reference("apps/hello:v1"), "-o", &out_ref]);
    assert!(out.join("index.json").is_file());
    let printed = right.ok(&["push", &img.reference(), &reg.reference("apps/other:v1")]);
    assert_eq!(printed.trim(), img.manifest().0);
}

#[test]
fn a_blob_corrupted_in_transit_is_refused_and_never_cached() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, reg, env)) = pushed_by_skopeo(tmp.path()) else { return };
    let layer = img.layer_digests()[0].clone();
    let proxy = Proxy::start(&reg.addr, Some(&layer));
    let out = tmp.path().join("out");
    for args in [
        vec!["pull".to_string(), proxy.reference("apps/hello:v1"), "-o".into(), format!("oci:{}:v1", out.display())],
        vec!["pack".to_string(), proxy.reference("apps/hello:v1"), "-o".into(), out.display().to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = env.selkie(&args);
        assert!(!ok && err.contains(&layer), "{args:?}: {err}");
        assert!(err.to_lowercase().contains("digest"), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: output left behind");
        assert!(!env.cached(&layer), "the corrupted layer was cached");
    }
    assert!(proxy.blob_gets() >= 2, "the proxy saw no blob requests: {:?}", proxy.requests());
    // No temp files left in the cache either.
    let leftovers: Vec<_> = std::fs::read_dir(env.cache().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_index_is_resolved_by_platform_and_a_missing_one_is_named() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    let other = OciImage::new(&img.dir, "amd");
    other.config(&["--architecture", "amd64"]);
    let index = add_index(&img.dir, "multi", &[("amd", "linux", "amd64"), ("app", "linux", "arm64")]);
    let reg = TestRegistry::start();
    let env = SelkieEnv::new();
    skopeo_copy(&format!("oci:{}:multi", img.dir.display()), &reg.reference("apps/multi:1"), None, true);
    assert_eq!(skopeo_raw(&reg.reference("apps/multi:1")), std::fs::read(img.blob_path(&index)).unwrap());

    // linux/arm64 by default: the arm64 image, with its own manifest digest.
    let out = tmp.path().join("arm");
    env.ok(&["pull", &reg.reference("apps/multi:1"), "-o", &format!("oci:{}:x", out.display())]);
    let idx: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"][0]["digest"], img.manifest().0.as_str());

    let missing = tmp.path().join("riscv");
    let (ok, _, err) = env.selkie(&[
        "pull", &reg.reference("apps/multi:1"), "--platform", "linux/riscv64", "-o", &format!("oci:{}:x", missing.display()),
    ]);
    assert!(!ok && err.contains("linux/riscv64") && err.contains("linux/amd64") && err.contains("linux/arm64"), "{err}");
    assert!(!missing.exists());
    let (ok, _, err) = env.selkie(&["pack", &reg.reference("apps/multi:1"), "--platform", "linux/riscv64", "-o", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("linux/riscv64") && err.contains("apps/multi:1"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn https_is_the_default_except_for_loopback_names_and_plain_http() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    // 127.0.0.2 is loopback to the kernel but not one of the names selkie trusts with HTTP.
    let reg = TestRegistry::start_on("127.0.0.2");
    let env = SelkieEnv::new();
    skopeo_copy(&format!("oci:{}", img.umoci_ref()), &reg.reference("apps/hello:v1"), None, false);
    let out = tmp.path().join("out");
    let out_ref = format!("oci:{}:v1", out.display());
    let (ok, _, err) = env.selkie(&["pull", &reg.reference("apps/hello:v1"), "-o", &out_ref]);
    assert!(!ok && err.contains("https://127.0.0.2"), "HTTPS was not tried first: {err}");
    assert!(!out.exists());
    env.ok(&["pull", "--plain-http", &reg.reference("apps/hello:v1"), "-o", &out_ref]);
    assert!(out.join("index.json").is_file());
}

#[test]
fn pack_push_then_pull_boots_the_same_image_on_sel4() {
    // The whole packaging path on a real board image: pack for seL4 and push in one step,
    // pull it back with a fresh cache, boot what was pulled.
    if need() || !selkie_tests::sel4::available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = app_image(tmp.path()) else { return };
    let reg = TestRegistry::start();
    let env = SelkieEnv::new();
    let target = reg.reference("boot/hello:pushed");
    let packed = tmp.path().join("image.elf");
    let rs = selkie_tests::sel4::root_server();
    let prefix = selkie_tests::sel4::prefix();
    let (ok, _, err) = env.selkie_env(&[
        "pack", &img.reference(), "--name", "hello", "--platform", selkie_tests::sel4::PLATFORM,
        "--root-server", rs.to_str().unwrap(), "-o", packed.to_str().unwrap(), "--push", &target,
    ], &[("SEL4_PREFIX", prefix.as_os_str())]);
    assert!(ok, "pack --push failed: {err}");
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(&target)).unwrap();
    assert_eq!(raw["artifactType"], "application/vnd.selkie.sel4.image.v1");
    assert_eq!(raw["annotations"]["org.selkie.sel4.platform"], selkie_tests::sel4::PLATFORM);
    assert_eq!(raw["config"]["mediaType"], "application/vnd.selkie.manifest.v1+json");

    let fresh = SelkieEnv::new();
    let pulled = tmp.path().join("pulled.elf");
    fresh.ok(&["pull", &target, "-o", pulled.to_str().unwrap()]);
    assert!(std::fs::read(&pulled).unwrap() == std::fs::read(&packed).unwrap(), "pulled image differs from the packed one");
    let c = selkie_tests::sel4::boot(&pulled, 120);
    assert!(c.app_output().contains("argv[0] = /hello") && c.app_output().contains("/foo.txt: foo"), "{}", c.text);
    assert_eq!(c.status("hello"), Some(0), "{:?}", c.reports());
}
