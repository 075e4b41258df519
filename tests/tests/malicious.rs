//! A corpus of malicious images: each is refused with an error that names the layer, entry
//! or digest, or contained inside the root as docker and umoci contain it; nothing is ever
//! written outside the output, and a failed pack leaves no output behind.

use selkie_tests::oci::{cpio_tree, OciImage, RawTar};
use selkie_tests::tools::{run, selkie, skip_without};
use std::fs;
use std::path::Path;
use std::process::Command;

fn base_image(tmp: &Path) -> OciImage {
    let src = tmp.join("t.c");
    fs::write(&src, "int main(){return 0;}\n").unwrap();
    let bin = tmp.join("t");
    run(Command::new("aarch64-linux-musl-gcc").args(["-static", "-o"]).arg(&bin).arg(&src));
    let img = OciImage::new(&tmp.join("layout"), "evil");
    img.layer(|r| {
        fs::copy(&bin, r.join("app")).unwrap();
        fs::create_dir(r.join("etc")).unwrap();
        fs::write(r.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    });
    img.config(&["--config.entrypoint", "/app"]);
    img
}

/// Packs and expects failure: the error must contain every `needle`, and the output
/// directory must not exist afterwards.
fn refused(img: &OciImage, tmp: &Path, needles: &[&str]) {
    let out = tmp.join("out");
    let (ok, _, err) = selkie(&["pack", &img.reference(), "-o", out.to_str().unwrap()]);
    assert!(!ok, "pack should have failed");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    assert!(!out.exists(), "a failed pack left {} behind", out.display());
}

fn need() -> bool {
    skip_without(&["umoci", "aarch64-linux-musl-gcc"])
}

#[test]
fn path_traversal_is_refused_naming_layer_and_entry() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    let mut t = RawTar::new();
    t.entry("../../../../tmp/selkie-escaped", b'0', 0o644, b"pwned\n", "");
    img.append_raw_layer(&t.finish(), "gzip");
    refused(&img, tmp.path(), &["layer 2/2", "../../../../tmp/selkie-escaped", "climbs above the root"]);
    assert!(!Path::new("/tmp/selkie-escaped").exists());
}

#[test]
fn writes_through_an_escaping_symlink_stay_inside_the_root() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let img = base_image(tmp.path());
    // A symlink to a host path (absolute and relative), then files written through both.
    let mut t = RawTar::new();
    let abs = outside.to_str().unwrap().to_string();
    t.entry("abs", b'2', 0o777, b"", &abs)
        .entry("rel", b'2', 0o777, b"", "../../../../../../../..")
        .entry("abs/pwned", b'0', 0o644, b"one\n", "")
        .entry("rel/etc/hosts", b'0', 0o644, b"two\n", "");
    img.append_raw_layer(&t.finish(), "gzip");
    let out = tmp.path().join("out");
    let (ok, _, err) = selkie(&["pack", &img.reference(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "something was written outside");
    let tree = cpio_tree(&fs::read(out.join("rootfs.cpio")).unwrap()).0;
    // "abs" points at <outside>, which resolves inside the image's root.
    let inside = format!("{}/pwned", abs.trim_start_matches('/'));
    assert!(tree.contains_key(&inside), "write through abs symlink not contained: {:?}", tree.keys());
    // "rel" climbs to the image root and no further: rel/etc/hosts is the image's /etc/hosts.
    assert_eq!(tree["etc/hosts"].content, {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"two\n"))
    });
    // The host's /etc/hosts was never touched (it would have been written outside).
    assert_ne!(fs::read("/etc/hosts").unwrap_or_default(), b"two\n");
}

#[test]
fn hardlink_escapes_are_refused() {
    if need() {
        return;
    }
    for (target, needle) in [("../../../etc/passwd", "climbs above the root"), ("/etc/shadow", "does not exist")] {
        let tmp = tempfile::tempdir().unwrap();
        let img = base_image(tmp.path());
        let mut t = RawTar::new();
        t.entry("stolen", b'1', 0o644, b"", target);
        img.append_raw_layer(&t.finish(), "gzip");
        refused(&img, tmp.path(), &["layer 2/2", "stolen", needle]);
    }
}

#[test]
fn a_digest_mismatch_is_refused_naming_the_blob() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    let layer = img.layer_digests()[0].clone();
    let p = img.blob_path(&layer);
    let mut b = fs::read(&p).unwrap();
    let n = b.len();
    b[n - 10] ^= 0xff; // inside the gzip trailer: the tar still decodes, only the digest tells
    fs::write(&p, &b).unwrap();
    refused(&img, tmp.path(), &[&layer]);
}

#[test]
fn a_truncated_blob_is_refused() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    let layer = img.layer_digests()[0].clone();
    let p = img.blob_path(&layer);
    let b = fs::read(&p).unwrap();
    fs::write(&p, &b[..b.len() / 2]).unwrap();
    refused(&img, tmp.path(), &[&layer]);
}

#[test]
fn a_size_that_lies_is_refused() {
    if need() {
        return;
    }
    for delta in [-1i64, 1] {
        let tmp = tempfile::tempdir().unwrap();
        let img = base_image(tmp.path());
        let layer = img.layer_digests()[0].clone();
        img.edit_manifest(|m| {
            let s = m["layers"][0]["size"].as_i64().unwrap();
            m["layers"][0]["size"] = (s + delta).into();
        });
        refused(&img, tmp.path(), &[&layer]);
    }
}

#[test]
fn a_tampered_config_or_manifest_is_refused() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    let (_, m) = img.manifest();
    let cfg = m["config"]["digest"].as_str().unwrap().to_string();
    let p = img.blob_path(&cfg);
    let mut b = fs::read(&p).unwrap();
    let i = b.iter().position(|&c| c == b'/').unwrap();
    b[i] = b'_'; // "/app" -> "_app", same size
    fs::write(&p, &b).unwrap();
    refused(&img, tmp.path(), &["config", &cfg, "digest mismatch"]);

    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    let (md, _) = img.manifest();
    let p = img.blob_path(&md);
    let mut b = fs::read(&p).unwrap();
    let i = b.iter().position(|&c| c == b'2').unwrap(); // schemaVersion 2 -> 3
    b[i] = b'3';
    fs::write(&p, &b).unwrap();
    refused(&img, tmp.path(), &["manifest", &md]);
}

#[test]
fn a_diff_id_mismatch_is_refused() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    // A layer whose blob digest is right but whose config diff_id is not.
    let mut t = RawTar::new();
    t.entry("x", b'0', 0o644, b"x\n", "");
    img.append_raw_layer(&t.finish(), "none");
    let (_, m) = img.manifest();
    let cfg_d = m["config"]["digest"].as_str().unwrap().to_string();
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(img.blob_path(&cfg_d)).unwrap()).unwrap();
    cfg["rootfs"]["diff_ids"][1] = format!("sha256:{}", "0".repeat(64)).into();
    let bytes = serde_json::to_vec(&cfg).unwrap();
    use sha2::Digest;
    let nd = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    fs::write(img.blob_path(&nd), &bytes).unwrap();
    img.edit_manifest(|m| {
        m["config"]["digest"] = nd.clone().into();
        m["config"]["size"] = bytes.len().into();
    });
    refused(&img, tmp.path(), &["layer 2/2", "diff_id"]);
}

#[test]
fn hostile_tag_and_digest_names_cannot_reach_outside_blobs() {
    if need() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = base_image(tmp.path());
    img.edit_manifest(|m| {
        m["layers"][0]["digest"] = "sha256:../../../../etc/passwd".into();
    });
    refused(&img, tmp.path(), &["../../../../etc/passwd"]);
}
