//! `selkie build`: a Dockerfile to an OCI layout with buildah, checked as `pack` would.
//!
//! buildah runs with `--isolation chroot` (no container runtime needed) and vfs storage
//! under the user's cache (`$XDG_CACHE_HOME/selkie/containers`, else
//! `~/.cache/selkie/containers`), for `linux/arm64`. Build arguments, the target stage
//! and labels pass through. The image is pushed to the `oci:DIR:TAG` layout, and then
//! read back the way `selkie pack` reads it: its entrypoint must be an aarch64 ELF selkie
//! can run, and its labels must be valid.

use crate::inspect::Report;
use crate::pack::PackOptions;
use crate::reference::ImageRef;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to build, as `buildah bud` takes it.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    pub file: Option<PathBuf>,
    /// `oci:DIR:TAG` to write.
    pub tag: String,
    /// `--build-arg K=V`.
    pub build_args: Vec<String>,
    /// `--target STAGE`.
    pub target: Option<String>,
    /// `--label K=V`.
    pub labels: Vec<String>,
    /// buildah's storage root (default: under the user's cache).
    pub storage: Option<PathBuf>,
}

/// Where buildah keeps its layers between builds.
pub fn default_storage() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("selkie-cache"));
    cache.join("selkie").join("containers")
}

/// The `oci:DIR:TAG` target, split.
fn oci_target(tag: &str) -> Result<(PathBuf, String)> {
    match ImageRef::parse(tag) {
        Ok(ImageRef::OciLayout { dir, tag: Some(t) }) => Ok((dir, t)),
        Ok(ImageRef::OciLayout { dir, tag: None }) => Ok((dir, "latest".to_string())),
        _ => bail!("-t {tag}: selkie build writes an OCI layout, oci:DIR[:TAG]"),
    }
}

/// Builds `context` and checks the result; returns what `selkie inspect` would report.
pub fn build(context: &Path, opts: &BuildOptions) -> Result<Report> {
    let (dir, tag) = oci_target(&opts.tag)?;
    if !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let file = opts.file.clone().unwrap_or_else(|| context.join("Dockerfile"));
    if !file.is_file() {
        bail!("no Dockerfile at {} (give one with -f)", file.display());
    }
    let storage = opts.storage.clone().unwrap_or_else(default_storage);
    std::fs::create_dir_all(&storage).with_context(|| format!("creating buildah's storage {}", storage.display()))?;
    let buildah = |args: &[&str]| -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root").arg(storage.join("root")).arg("--runroot").arg(storage.join("run")).args(["--storage-driver", "vfs"]).args(args);
        c
    };
    // A name of our own in buildah's store. No `--layers`: buildah's layer cache reused an
    // `ENV X=$ARG` step across different --build-arg values (measured with buildah 1.28).
    let local = format!("localhost/selkie-build/{}:{}", sanitize(&dir.to_string_lossy()), sanitize(&tag));
    let mut bud = buildah(&["bud", "--isolation", "chroot", "--platform", "linux/arm64", "-t", &local]);
    bud.arg("-f").arg(&file);
    // `FROM --platform=$BUILDPLATFORM IMAGE` (a build stage that runs on this machine, such
    // as the SDK's) should name this machine's platform. buildah 1.28 with --platform set
    // did not: the stage looked for IMAGE for linux/arm64 and tried to pull it (measured
    // with localhost/selkie-sdk). So the BUILD* arguments are given, unless the user does.
    for (k, v) in build_platform_args() {
        if !opts.build_args.iter().any(|a| a.split_once('=').map_or(a.as_str(), |(n, _)| n) == k) {
            bud.args(["--build-arg", &format!("{k}={v}")]);
        }
    }
    for a in &opts.build_args {
        bud.args(["--build-arg", a]);
    }
    if let Some(t) = &opts.target {
        bud.args(["--target", t]);
    }
    for l in &opts.labels {
        bud.args(["--label", l]);
    }
    bud.arg(context);
    run(bud, "buildah bud", &file)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = format!("oci:{}:{tag}", dir.display());
    run(buildah(&["push", "--quiet", &local, &dest]), "buildah push", &file)?;
    let r = ImageRef::parse(&dest)?;
    let p = crate::pack::prepare(&r, &PackOptions::default()).with_context(|| format!("{dest}, built from {}", file.display()))?;
    crate::inspect::report(&p)
}

/// BUILDPLATFORM, BUILDOS and BUILDARCH for this machine, as OCI names them.
fn build_platform_args() -> [(&'static str, String); 3] {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    };
    [("BUILDPLATFORM", format!("linux/{arch}")), ("BUILDOS", "linux".to_string()), ("BUILDARCH", arch.to_string())]
}

fn run(mut c: Command, what: &str, file: &Path) -> Result<()> {
    // buildah's progress goes to our stderr: stdout is the summary alone.
    let status = match c.stdout(std::io::stderr()).status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{what}: buildah is not installed (Debian: apt-get install buildah)")
        }
        Err(e) => return Err(e).context(what.to_string()),
    };
    if !status.success() {
        bail!("{what} failed for {} ({status})", file.display());
    }
    Ok(())
}

/// `s` as a component of a local image name: lowercase alphanumerics, runs of anything
/// else made one `-`.
fn sanitize(s: &str) -> String {
    let mut t = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            t.push(c.to_ascii_lowercase());
        } else if !t.is_empty() && !t.ends_with('-') {
            t.push('-');
        }
    }
    let t = t.trim_end_matches('-');
    if t.is_empty() {
        "image".to_string()
    } else {
        t.to_string()
    }
}

/// One line per thing checked, for the user.
pub fn summary(tag: &str, r: &Report) -> String {
    let b = &r.binary;
    let a = &r.app;
    format!(
        "built {tag} ({}): app {}, entrypoint {} ({} aarch64, {} KiB, {}), argv {:?}, labels valid (priority {}, heap {} pages)\n",
        r.config_digest,
        a.name,
        b.path,
        match &b.interp {
            Some(i) => format!("dynamic through {i},"),
            None if b.pie => "static-pie".to_string(),
            None => "static".to_string(),
        },
        b.size / 1024,
        if b.sdk_syscalls { "selkie SDK syscalls, none rewritten".to_string() } else { format!("{} svc sites rewritten", b.rewritten_syscalls) },
        a.argv.as_slice(),
        a.spec.priority,
        a.spec.heap_pages,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_oci_layouts() {
        assert_eq!(oci_target("oci:/tmp/x:v1").unwrap(), (PathBuf::from("/tmp/x"), "v1".to_string()));
        assert_eq!(oci_target("oci:/tmp/x").unwrap().1, "latest");
        let e = oci_target("docker://127.0.0.1:5000/x:y").unwrap_err().to_string();
        assert!(e.contains("oci:DIR[:TAG]"), "{e}");
    }

    #[test]
    fn local_names_are_valid_image_names() {
        assert_eq!(sanitize("/tmp/My Build/oci"), "tmp-my-build-oci");
        assert_eq!(sanitize("///"), "image");
        assert_eq!(sanitize("/tmp/.tmpAb_c/oci"), "tmp-tmpab-c-oci");
    }
}
