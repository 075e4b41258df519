//! `selkie sdk build`: the selkie SDK builder image, made from Debian packages.
//!
//! The image is a host-architecture Debian bookworm (`debootstrap --variant=minbase`, from
//! the mirror this machine's apt already uses) with Debian's aarch64 cross gcc, make and
//! what a C build needs, and the selkie toolchain: Debian's musl patched with
//! sdk/musl-x7.patch, built by sdk/build-toolchain (both carried in this binary) inside
//! the rootfs into /opt/selkie-sdk, with `aarch64-selkie-linux-musl-gcc` on PATH.
//!
//! The rootfs is made in a `buildah from scratch` container's mount, committed as
//! `localhost/selkie-sdk:latest` into the containers storage `selkie build` uses (so a
//! Dockerfile's `FROM --platform=$BUILDPLATFORM localhost/selkie-sdk AS build` resolves
//! there, with no registry), and pushed to an OCI layout. The image carries the hash of
//! its recipe as a label: when the stored image has the same hash, nothing is rebuilt.

use crate::build::default_storage;
use crate::reference::ImageRef;
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// sdk/build-toolchain and sdk/musl-x7.patch, as this binary was built with them.
const BUILD_TOOLCHAIN: &str = include_str!("../../../sdk/build-toolchain");
const MUSL_PATCH: &str = include_str!("../../../sdk/musl-x7.patch");

/// The Debian suite of the image.
pub const SUITE: &str = "bookworm";
/// Packages on top of minbase: the cross compiler, a build's usual tools, and what
/// sdk/build-toolchain needs to fetch and patch musl's source (dpkg-dev, patch).
pub const PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "binutils-aarch64-linux-gnu",
    "libc6-dev",
    "make",
    "patch",
    "dpkg-dev",
    "xz-utils",
    "ca-certificates",
];
/// Where the toolchain goes inside the image.
pub const PREFIX: &str = "/opt/selkie-sdk";
/// The compiler it puts on PATH.
pub const CC: &str = "aarch64-selkie-linux-musl-gcc";
/// The name `selkie build` finds the image by.
pub const LOCAL_NAME: &str = "localhost/selkie-sdk:latest";
/// The label holding the recipe's hash.
pub const HASH_LABEL: &str = "org.selkie.sdk.hash";

/// What `selkie sdk build` does.
#[derive(Debug, Clone, Default)]
pub struct SdkOptions {
    /// `oci:DIR[:TAG]` to write (default: [`default_tag`]).
    pub tag: Option<String>,
    /// buildah's storage root (default: `selkie build`'s).
    pub storage: Option<PathBuf>,
    /// Rebuild even when the stored image is up to date.
    pub force: bool,
}

/// What was built, or found up to date.
#[derive(Debug, Clone)]
pub struct SdkImage {
    pub tag: String,
    pub local: String,
    pub image_id: String,
    pub hash: String,
    /// Bytes of the image's layers in the OCI layout (compressed).
    pub layout_bytes: u64,
    /// The stored image's size, as buildah shows it (unpacked).
    pub stored_size: String,
    /// Whether it was built now (false: up to date).
    pub built: bool,
}

pub(crate) fn cache_dir() -> PathBuf {
    default_storage().parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// `oci:$XDG_CACHE_HOME/selkie/sdk-image:latest`.
pub fn default_tag() -> String {
    format!("oci:{}:latest", cache_dir().join("sdk-image").display())
}

/// The hash of everything the image is made from: the toolchain script, the patch, the
/// suite and the package list.
pub fn recipe_hash() -> String {
    let mut h = Sha256::new();
    for part in [BUILD_TOOLCHAIN, MUSL_PATCH, SUITE, &PACKAGES.join(","), PREFIX, IMAGE_STEPS] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// What is done in the rootfs after the toolchain is built; part of the recipe's hash.
const IMAGE_STEPS: &str = "symlink /usr/local/bin; clear apt lists and archives, /tmp, /dev, resolv.conf; env PATH CC; cmd bash";

/// The mirror this machine's apt takes `suite` from: the first `Types: deb` stanza of
/// /etc/apt/sources.list.d/*.sources whose Suites has `suite` itself, else the first
/// one-line `deb` entry for it in /etc/apt/sources.list{,.d/*.list}. Also its Signed-By
/// keyring, when that is a file.
pub fn apt_mirror(suite: &str) -> Result<(String, Option<PathBuf>)> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sources")) {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        if let Some(m) = mirror_deb822(&text, suite) {
            return Ok(m);
        }
    }
    let mut one_line = vec![PathBuf::from("/etc/apt/sources.list")];
    one_line.extend(files.iter().filter(|f| f.extension().is_some_and(|e| e == "list")).cloned());
    for f in &one_line {
        if let Ok(text) = std::fs::read_to_string(f) {
            if let Some(m) = mirror_one_line(&text, suite) {
                return Ok((m, None));
            }
        }
    }
    bail!(
        "no Debian {suite} source in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list to take a mirror from (debootstrap needs one)"
    )
}

fn mirror_deb822(text: &str, suite: &str) -> Option<(String, Option<PathBuf>)> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let suites = field("Suites").unwrap_or_default();
        if !types.split_whitespace().any(|t| t == "deb") || !suites.split_whitespace().any(|s| s == suite) {
            continue;
        }
        if field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        let uri = field("URIs")?.split_whitespace().next()?.to_string();
        let key = field("Signed-By").map(PathBuf::from).filter(|p| p.is_absolute() && p.is_file());
        return Some((uri, key));
    }
    None
}

fn mirror_one_line(text: &str, suite: &str) -> Option<String> {
    for l in text.lines() {
        let mut w = l.split_whitespace();
        if w.next() != Some("deb") {
            continue;
        }
        let mut uri = w.next()?;
        if uri.starts_with('[') {
            // Options: up to the word that ends with ']'.
            while !uri.ends_with(']') {
                uri = w.next()?;
            }
            uri = w.next()?;
        }
        if w.next() == Some(suite) {
            return Some(uri.to_string());
        }
    }
    None
}

fn storage_of(opts: &SdkOptions) -> PathBuf {
    opts.storage.clone().unwrap_or_else(default_storage)
}

fn buildah(storage: &Path) -> Command {
    let mut c = Command::new("buildah");
    c.arg("--root").arg(storage.join("root")).arg("--runroot").arg(storage.join("run")).args(["--storage-driver", "vfs"]);
    c
}

/// Runs `c`, its output into `log`; on failure the error names `what`, the log's tail and
/// the log file.
fn logged(mut c: Command, what: &str, log: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(log).with_context(|| format!("creating {}", log.display()))?;
    let status = c
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("{what}: running {:?}", c.get_program()))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("{what} failed ({status}; the whole log is {}):\n{}", log.display(), tail.join("\n"));
    }
    Ok(())
}

/// stdout of `c`, trimmed; an error names `what` and its stderr.
fn output(mut c: Command, what: &str) -> Result<String> {
    let o = c.stdin(Stdio::null()).output().with_context(|| format!("{what}: running {:?}", c.get_program()))?;
    ensure!(o.status.success(), "{what} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim());
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// The stored image's id and recipe hash, if there is one.
fn stored(storage: &Path) -> Option<(String, String)> {
    let mut c = buildah(storage);
    c.args(["inspect", "--type", "image", "--format", &format!("{{{{.FromImageID}}}} {{{{index .OCIv1.Config.Labels \"{HASH_LABEL}\"}}}}"), LOCAL_NAME]);
    let out = output(c, "buildah inspect").ok()?;
    let (id, hash) = out.split_once(' ')?;
    Some((id.to_string(), hash.to_string()))
}

/// The config of the image tagged `tag` in the OCI layout `dir`, and its layers' bytes.
fn layout_image(dir: &Path, tag: &str) -> Option<(serde_json::Value, u64)> {
    let read = |p: PathBuf| -> Option<serde_json::Value> { serde_json::from_slice(&std::fs::read(p).ok()?).ok() };
    let blob = |d: &serde_json::Value| -> Option<PathBuf> {
        let (alg, hex) = d["digest"].as_str()?.split_once(':')?;
        Some(dir.join("blobs").join(alg).join(hex))
    };
    let index = read(dir.join("index.json"))?;
    let m = index["manifests"].as_array()?.iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)?;
    let manifest = read(blob(m)?)?;
    let config = read(blob(&manifest["config"])?)?;
    let size = manifest["layers"].as_array()?.iter().filter_map(|l| l["size"].as_u64()).sum();
    Some((config, size))
}

/// The digest of the manifest tagged `tag` in the layout `dir`.
fn tagged_digest(dir: &Path, tag: &str) -> Option<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).ok()?).ok()?;
    let m = index["manifests"].as_array()?.iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)?;
    m["digest"].as_str().map(str::to_string)
}

/// Removes the untagged entries for `digest` from the layout's index.json; true when there
/// were some.
fn drop_untagged(dir: &Path, digest: &str) -> Result<bool> {
    let path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?).with_context(|| format!("parsing {}", path.display()))?;
    let Some(list) = index["manifests"].as_array_mut() else { return Ok(false) };
    let before = list.len();
    list.retain(|m| m["digest"] != digest || m["annotations"]["org.opencontainers.image.ref.name"].is_string());
    if list.len() != before {
        let tmp = dir.join("index.json.selkie-tmp");
        std::fs::write(&tmp, serde_json::to_vec(&index)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        return Ok(true);
    }
    Ok(false)
}

/// The recipe hash of the image tagged `tag` in the OCI layout `dir`, if any.
fn layout_hash(dir: &Path, tag: &str) -> Option<String> {
    layout_image(dir, tag)?.0["config"]["Labels"][HASH_LABEL].as_str().map(str::to_string)
}

/// The stored image's size as buildah shows it (unpacked).
fn stored_size(storage: &Path) -> String {
    let mut c = buildah(storage);
    c.args(["images", "--noheading", "--format", "{{.Size}}", LOCAL_NAME]);
    output(c, "buildah images").unwrap_or_else(|_| "?".to_string())
}

/// Builds the SDK image unless the stored one is up to date, and writes it to the layout.
pub fn build(opts: &SdkOptions) -> Result<SdkImage> {
    let tag = opts.tag.clone().unwrap_or_else(default_tag);
    let (dir, ref_name) = match ImageRef::parse(&tag) {
        Ok(ImageRef::OciLayout { dir, tag }) => (dir, tag.unwrap_or_else(|| "latest".to_string())),
        _ => bail!("-t {tag}: selkie sdk build writes an OCI layout, oci:DIR[:TAG]"),
    };
    ensure!(have("buildah"), "selkie sdk build needs buildah (Debian: apt-get install buildah; make deps installs it)");
    let storage = storage_of(opts);
    std::fs::create_dir_all(&storage).with_context(|| format!("creating buildah's storage {}", storage.display()))?;
    let hash = recipe_hash();
    let up_to_date = !opts.force && stored(&storage).is_some_and(|(_, h)| h == hash);
    let built = !up_to_date;
    if built {
        make_image(&storage, &hash)?;
    }
    let (image_id, _) = stored(&storage).with_context(|| format!("{LOCAL_NAME} is not in {} after the build", storage.display()))?;
    if built || layout_hash(&dir, &ref_name).as_deref() != Some(hash.as_str()) {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let replaced = tagged_digest(&dir, &ref_name);
        let dest = format!("oci:{}:{ref_name}", dir.display());
        let spinner = crate::progress::spinner(&format!("selkie sdk: writing {LOCAL_NAME} to {dest}"));
        let mut c = buildah(&storage);
        c.args(["push", "--quiet", LOCAL_NAME, &dest]);
        let r = output(c, &format!("buildah push {LOCAL_NAME} {dest}"));
        spinner.finish_and_clear();
        r?;
        // buildah leaves the image this one replaced in the index, untagged: it goes, and
        // its blobs with it.
        if let Some(old) = replaced {
            if drop_untagged(&dir, &old)? && have("umoci") {
                let mut c = Command::new("umoci");
                c.args(["gc", "--layout"]).arg(&dir);
                output(c, &format!("umoci gc --layout {}", dir.display()))?;
            }
        }
    }
    let layout_bytes = layout_image(&dir, &ref_name).map(|(_, n)| n).with_context(|| format!("no image tagged {ref_name} in {} after buildah push", dir.display()))?;
    Ok(SdkImage {
        tag: format!("oci:{}:{ref_name}", dir.display()),
        local: LOCAL_NAME.to_string(),
        image_id,
        hash,
        layout_bytes,
        stored_size: stored_size(&storage),
        built,
    })
}

/// Removes the working container when dropped.
struct Container<'a> {
    storage: &'a Path,
    name: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let mut c = buildah(self.storage);
        c.args(["rm", &self.name]).stdout(Stdio::null()).stderr(Stdio::null());
        let _ = c.status();
    }
}

fn make_image(storage: &Path, hash: &str) -> Result<()> {
    ensure!(is_root(), "selkie sdk build runs debootstrap and chroot, which need root: run it as root (e.g. with sudo)");
    ensure!(have("debootstrap"), "selkie sdk build needs debootstrap (Debian: apt-get install debootstrap; make deps installs it)");
    let (mirror, keyring) = apt_mirror(SUITE)?;
    let cache = cache_dir();
    let debs = cache.join("sdk-debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let log = cache.join("sdk-build.log");
    let _ = std::fs::remove_file(&log);

    // The old image, removed once the new one has its name.
    let old = stored(storage).map(|(id, _)| id);
    let name = format!("selkie-sdk-build-{}", std::process::id());
    let mut c = buildah(storage);
    c.args(["from", "--name", &name, "scratch"]);
    output(c, "buildah from scratch")?;
    let ctr = Container { storage, name: name.clone() };
    let mut c = buildah(storage);
    c.args(["mount", &name]);
    let root = PathBuf::from(output(c, "buildah mount")?);
    ensure!(root.is_dir(), "buildah mount gave {}, which is not a directory", root.display());

    let step = |msg: &str, c: Command, what: &str| -> Result<()> {
        let t = std::time::Instant::now();
        let spinner = crate::progress::spinner(msg);
        let r = logged(c, what, &log);
        spinner.finish_and_clear();
        if r.is_ok() {
            eprintln!("selkie sdk: {}: done in {:.0} s", what.split(" (").next().unwrap_or(what), t.elapsed().as_secs_f64());
        }
        r
    };
    let mut c = Command::new("debootstrap");
    c.args(["--variant=minbase", &format!("--include={}", PACKAGES.join(","))]).arg(format!("--cache-dir={}", debs.display()));
    if let Some(k) = &keyring {
        c.arg(format!("--keyring={}", k.display()));
    }
    c.arg(SUITE).arg(&root).arg(&mirror);
    step(
        &format!("selkie sdk: debootstrap {SUITE} (minbase, {}) from {mirror}; a few minutes", PACKAGES.join(" ")),
        c,
        &format!("debootstrap {SUITE} from {mirror} (a network or mirror problem, or a full disk, shows in the log)"),
    )?;

    // The toolchain, built inside the rootfs so that its paths are the image's.
    let src = root.join("tmp/selkie-sdk");
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    std::fs::write(src.join("build-toolchain"), BUILD_TOOLCHAIN).with_context(|| format!("writing {}", src.join("build-toolchain").display()))?;
    std::fs::write(src.join("musl-x7.patch"), MUSL_PATCH).with_context(|| format!("writing {}", src.join("musl-x7.patch").display()))?;
    let mut c = Command::new("chroot");
    c.arg(&root).args(["/bin/sh", "/tmp/selkie-sdk/build-toolchain", PREFIX]).env("TMPDIR", "/tmp").env("HOME", "/root");
    c.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    step(
        &format!("selkie sdk: building the toolchain in the rootfs (sdk/build-toolchain {PREFIX}: Debian's musl with musl-x7.patch)"),
        c,
        "sdk/build-toolchain in the SDK rootfs",
    )?;
    let gcc = root.join(PREFIX.trim_start_matches('/')).join("bin").join(CC);
    ensure!(gcc.is_file(), "sdk/build-toolchain left no {}", gcc.display());
    let link = root.join("usr/local/bin").join(CC);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("{PREFIX}/bin/{CC}"), &link).with_context(|| format!("linking {}", link.display()))?;

    // What the image need not carry: apt's lists and downloads, the build's leftovers,
    // device nodes (a container gets its own /dev) and this machine's resolver.
    for d in ["var/lib/apt/lists", "var/cache/apt/archives", "tmp", "dev", "var/log"] {
        let p = root.join(d);
        if let Ok(entries) = std::fs::read_dir(&p) {
            for e in entries.flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if path.file_name().is_some_and(|n| n == "partial" || n == "apt") {
                        continue;
                    }
                    std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
                } else if path.file_name().is_some_and(|n| n != "lock") {
                    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                }
            }
        }
    }
    std::fs::write(root.join("etc/resolv.conf"), "").context("emptying the rootfs's etc/resolv.conf")?;

    let mut c = buildah(storage);
    c.args(["config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        .args(["--env", &format!("CC={CC}"), "--env", &format!("SELKIE_SDK={PREFIX}")])
        .args(["--cmd", "/bin/bash", "--workingdir", "/"])
        .args(["--label", &format!("{HASH_LABEL}={hash}")])
        .args(["--label", &format!("org.opencontainers.image.description=selkie SDK: Debian {SUITE} with {CC} ({PREFIX}) for aarch64 apps")])
        .arg(&name);
    output(c, "buildah config")?;
    let mut c = buildah(storage);
    c.args(["commit", "--quiet", "--rm", &name, LOCAL_NAME]);
    let t = std::time::Instant::now();
    let spinner = crate::progress::spinner(&format!("selkie sdk: committing {LOCAL_NAME} into {}", storage.display()));
    let r = output(c, &format!("buildah commit {LOCAL_NAME}"));
    spinner.finish_and_clear();
    r?;
    eprintln!("selkie sdk: buildah commit: done in {:.0} s", t.elapsed().as_secs_f64());
    drop(ctr);
    if let Some(old) = old {
        let mut c = buildah(storage);
        c.args(["rmi", &old]).stdout(Stdio::null()).stderr(Stdio::null());
        let _ = c.status();
    }
    Ok(())
}

/// The line `selkie sdk build` prints.
pub fn summary(s: &SdkImage) -> String {
    format!(
        "{} {} ({}, {} MiB compressed, {} unpacked, recipe {}) and {}: FROM --platform=$BUILDPLATFORM {} in a Dockerfile, {} on PATH\n",
        if s.built { "built" } else { "up to date:" },
        s.tag,
        &s.image_id[..s.image_id.len().min(12)],
        s.layout_bytes / (1 << 20),
        s.stored_size,
        s.hash,
        s.local,
        s.local.trim_end_matches(":latest"),
        CC,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_from_the_stanza_for_the_suite() {
        let text = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm-backports\nComponents: main\n\n\
                    Types: deb deb-src\n# a comment\nURIs: http://other.invalid/debian http://third.invalid/\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(mirror_deb822(text, "bookworm").unwrap().0, "http://other.invalid/debian");
        assert!(mirror_deb822(text, "trixie").is_none());
        let off = "Types: deb\nURIs: http://a.invalid/\nSuites: bookworm\nEnabled: no\n";
        assert!(mirror_deb822(off, "bookworm").is_none());
    }

    #[test]
    fn one_line_sources_with_options() {
        let text = "# deb http://x.invalid/ bookworm main\ndeb-src http://s.invalid/ bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m.invalid/debian bookworm main\n";
        assert_eq!(mirror_one_line(text, "bookworm").as_deref(), Some("http://m.invalid/debian"));
        assert_eq!(mirror_one_line("deb http://m.invalid/ bookworm-security main\n", "bookworm"), None);
    }

    #[test]
    fn a_replaced_image_leaves_the_index_only_when_untagged() {
        let d = tempfile::tempdir().unwrap();
        let m = |digest: &str, tag: Option<&str>| match tag {
            Some(t) => serde_json::json!({"digest": digest, "annotations": {"org.opencontainers.image.ref.name": t}}),
            None => serde_json::json!({"digest": digest}),
        };
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [m("sha256:old", None), m("sha256:other", None), m("sha256:old", Some("v1")), m("sha256:new", Some("latest"))]});
        std::fs::write(d.path().join("index.json"), index.to_string()).unwrap();
        assert_eq!(tagged_digest(d.path(), "latest").as_deref(), Some("sha256:new"));
        assert!(drop_untagged(d.path(), "sha256:old").unwrap());
        let after: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(after["manifests"], serde_json::json!([m("sha256:other", None), m("sha256:old", Some("v1")), m("sha256:new", Some("latest"))]));
        assert!(!drop_untagged(d.path(), "sha256:old").unwrap());
    }

    #[test]
    fn the_recipe_hash_covers_the_toolchain_sources() {
        let h = recipe_hash();
        assert_eq!(h.len(), 16);
        assert_eq!(h, recipe_hash());
        assert!(BUILD_TOOLCHAIN.contains("musl-x7.patch") && MUSL_PATCH.contains("x7"));
    }
}
