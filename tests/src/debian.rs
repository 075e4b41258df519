//! Root filesystems made of Debian arm64 packages: `apt-get download PKG:arm64` into
//! target/test-debs (once; reused by later runs), then `dpkg-deb -x` of each into an image's
//! layer. Only the machine's own apt sources are used (tools/install-deps adds the arm64
//! architecture and updates the lists). No maintainer scripts run: whatever a package's
//! postinst would make (alternatives, diversions, applet links) a test adds itself.

use crate::tools::{have, run, workspace};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static FETCH: Mutex<()> = Mutex::new(());

fn cache_dir() -> PathBuf {
    let d = workspace().join("target/test-debs");
    fs::create_dir_all(&d).expect("target/test-debs");
    d
}

/// The cached .deb of `package` (arm64), if there is one: `PACKAGE_VERSION_arm64.deb`.
fn cached(dir: &Path, package: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with("_arm64.deb") && n.split('_').next() == Some(package)
        })
        .collect();
    found.sort();
    found.pop()
}

/// The .deb files of `packages` (arm64, in the given order), downloaded with `apt-get
/// download` on first use. `None`, with one line printed, when apt-get cannot fetch one.
pub fn debs(packages: &[&str]) -> Option<Vec<PathBuf>> {
    if !have("apt-get") || !have("dpkg-deb") {
        crate::tools::skip("apt-get/dpkg-deb missing: cannot make a rootfs from Debian arm64 packages");
        return None;
    }
    let dir = cache_dir();
    let _g = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    for package in packages {
        if let Some(deb) = cached(&dir, package) {
            out.push(deb);
            continue;
        }
        // Downloaded into a directory of its own, then renamed into the cache: another test
        // process never sees half a file.
        let tmp = tempfile::tempdir_in(&dir).ok()?;
        let dl = Command::new("apt-get")
            .args(["download", "-q", &format!("{package}:arm64")])
            .current_dir(tmp.path())
            .output()
            .ok()?;
        let deb = fs::read_dir(tmp.path())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"));
        let Some(deb) = deb else {
            crate::tools::skip(&format!(
                "apt-get download {package}:arm64 failed (dpkg --add-architecture arm64; apt-get update): {}",
                String::from_utf8_lossy(&dl.stderr).trim().replace('\n', "; ")
            ));
            return None;
        };
        let to = dir.join(deb.file_name().unwrap());
        fs::rename(&deb, &to).expect("move a .deb into target/test-debs");
        out.push(to);
    }
    Some(out)
}

/// Extracts every .deb of `debs`, in order, into `root` (`dpkg-deb -x`: files only, no
/// maintainer scripts).
pub fn extract(debs: &[PathBuf], root: &Path) {
    for deb in debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
    }
}
