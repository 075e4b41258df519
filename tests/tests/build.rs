//! `selkie build`: the seed's hello Dockerfile (with a build argument, a label and two
//! stages) built by buildah into an OCI layout and checked; the image then runs under
//! the emulator and, packed, on seL4 with the same output. Broken builds say which
//! Dockerfile failed and why.

use selkie_tests::apps::{c_app, Link};
use selkie_tests::sel4;
use selkie_tests::tools::{selkie_bin, skip_without};
use std::path::Path;
use std::process::{Command, Output};

const DOCKERFILE: &str = "FROM scratch AS base\nARG GREETING=unset\nCOPY hello /hello\nENV HELLO=$GREETING\nLABEL org.selkie.app.priority=120\nENTRYPOINT [\"/hello\"]\nCMD [\"hello_world\", \"test\"]\n\nFROM base AS full\nCOPY foo.txt bar.txt /\n";

/// A build context with the seed's hello, foo.txt, bar.txt and the Dockerfile.
fn context(dir: &Path) -> Option<std::path::PathBuf> {
    if skip_without(&["buildah", "umoci"]) {
        return None;
    }
    let bin = c_app("hello", Link::Static)?;
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(bin, ctx.join("hello")).unwrap();
    std::fs::write(ctx.join("foo.txt"), "foo\n").unwrap();
    std::fs::write(ctx.join("bar.txt"), "bar\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    Some(ctx)
}

/// `selkie ARGS`, with buildah's cache in `dir`.
fn selkie(dir: &Path, args: &[&str]) -> Output {
    Command::new(selkie_bin()).env("XDG_CACHE_HOME", dir.join("cache")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_dockerfile_builds_checks_and_runs_emulated_and_on_sel4() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ctx) = context(tmp.path()) else { return };
    let tag = format!("oci:{}:v1", tmp.path().join("oci").display());
    let o = selkie(
        tmp.path(),
        &["build", "--build-arg", "GREETING=WORLD", "--target", "base", "--label", "org.selkie.app.max_priority=150", "-t", &tag, ctx.to_str().unwrap()],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.starts_with(&format!("built {tag} (sha256:")), "{summary}");
    assert!(summary.contains("entrypoint /hello (static aarch64") && summary.contains("priority 120"), "{summary}");

    let o = selkie(tmp.path(), &["inspect", "--json", &tag]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["app"]["envp"].as_array().unwrap().contains(&"HELLO=WORLD".into()), "{r}");
    assert_eq!(r["app"]["spec"]["max_priority"], 150, "the --label reached the image");

    // The target stage has no foo.txt; the app prints the build argument.
    let o = selkie(tmp.path(), &["run", "--emulate", &tag]);
    let emulated = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(emulated, "argv[0] = /hello\nargv[1] = hello_world\nargv[2] = test\nHELLO = WORLD\n/foo.txt: cannot open\n/bar.txt: cannot open\n");

    // The whole Dockerfile, built again into another tag: the cached stage and the files.
    let full = format!("oci:{}:full", tmp.path().join("oci").display());
    let o = selkie(tmp.path(), &["build", "-f", ctx.join("Dockerfile").to_str().unwrap(), "-t", &full, ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = selkie(tmp.path(), &["run", "--emulate", &full]);
    let got = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(got.contains("HELLO = unset\n/foo.txt: foo\n/bar.txt: bar\n"), "{got}");

    if !sel4::available() {
        return;
    }
    let c = sel4::pack_and_boot(&[tag.clone()], 300);
    assert!(c.has_in_order(&emulated), "seL4's lines differ from the emulator's:\n{}", c.text);
}

#[test]
fn broken_builds_name_the_dockerfile_and_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ctx) = context(tmp.path()) else { return };
    let tag = format!("oci:{}:bad", tmp.path().join("oci").display());
    // A file the context lacks: buildah fails, and selkie says for which Dockerfile.
    let bad = ctx.join("Missing.Dockerfile");
    std::fs::write(&bad, "FROM scratch\nCOPY nosuchfile /x\n").unwrap();
    let o = selkie(tmp.path(), &["build", "-f", bad.to_str().unwrap(), "-t", &tag, ctx.to_str().unwrap()]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains(&format!("buildah bud failed for {}", bad.display())), "{out}");
    // It builds, but its entrypoint is a text file: the check that pack makes says so.
    let script = ctx.join("Script.Dockerfile");
    std::fs::write(&script, "FROM scratch\nCOPY foo.txt /run.sh\nENTRYPOINT [\"/run.sh\"]\n").unwrap();
    let o = selkie(tmp.path(), &["build", "-f", script.to_str().unwrap(), "-t", &tag, ctx.to_str().unwrap()]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains(&format!("built from {}", script.display())) && out.contains("/run.sh"), "{out}");
    // Not an OCI layout target.
    let o = selkie(tmp.path(), &["build", "-t", "docker://127.0.0.1:5000/x:y", ctx.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("oci:DIR[:TAG]"), "{}", text(&o));
    // No Dockerfile.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = selkie(tmp.path(), &["build", "-t", &tag, empty.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("no Dockerfile at"), "{}", text(&o));
}

/// `selkie pack --platform qemu-arm-virt` where no root server has been built (a selkie
/// binary in a target directory of its own, only SEL4_PREFIX set): pack builds the root
/// server with root-server/build.sh itself, and the image boots.
#[test]
fn pack_builds_the_root_server_when_there_is_none() {
    if !sel4::available() || skip_without(&["umoci"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(bin) = c_app("hello", Link::Static) else { return };
    let image = selkie_tests::oci::OciImage::new(&tmp.path().join("hello"), "hello");
    image.layer(|r| {
        std::fs::copy(&bin, r.join("hello")).unwrap();
    });
    image.config(&["--config.entrypoint", "/hello", "--config.env", "HELLO=fresh"]);
    let release = tmp.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let selkie = release.join("selkie");
    std::fs::copy(selkie_bin(), &selkie).unwrap();
    let out = tmp.path().join("image.elf");
    let o = Command::new(&selkie)
        .env_remove("SELKIE_ROOT_SERVER")
        .env("SEL4_PREFIX", sel4::prefix())
        .args(["pack", &image.reference(), "--platform", sel4::PLATFORM, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("building the root server for qemu-arm-virt"), "{err}");
    // One build dir per kernel configuration: target/root-server/qemu-arm-virt-<config hash>.
    let dirs: Vec<_> = std::fs::read_dir(tmp.path().join("target/root-server"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("qemu-arm-virt-"))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}\n{err}");
    let built = dirs[0].join("aarch64-sel4-nofp/release/selkie-root-server.elf");
    assert!(built.exists(), "{err}");
    let c = sel4::boot(&out, 300);
    assert!(c.finished && c.text.contains("HELLO = fresh"), "{}", c.text);
    // A root server older than the checkout's sources is rebuilt (here: made to look old).
    let pack = || {
        Command::new(&selkie)
            .env_remove("SELKIE_ROOT_SERVER")
            .env("SEL4_PREFIX", sel4::prefix())
            .env("SELKIE_LOG", "info")
            .args(["pack", &image.reference(), "--platform", sel4::PLATFORM, "-o"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = pack();
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("rebuilding"), "a fresh root server was rebuilt: {o:?}");
    assert!(Command::new("touch").args(["-d", "2001-01-01"]).arg(&built).status().unwrap().success());
    let o = pack();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("is older than") && err.contains("rebuilding it"), "{err}");
    let year_2001 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(31 * 365 * 86400);
    assert!(std::fs::metadata(&built).unwrap().modified().unwrap() > year_2001, "the root server was not rebuilt: {err}");
    // Without SEL4_PREFIX pack says what to set.
    let o = Command::new(&selkie).env_remove("SEL4_PREFIX").args(["pack", &image.reference(), "--platform", sel4::PLATFORM, "-o"]).arg(&out).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("SEL4_PREFIX is not set"), "{}", String::from_utf8_lossy(&o.stderr));
}
