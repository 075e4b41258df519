//! Running one app both ways: under the Linux reference (qemu-aarch64-static chrooted into
//! the image's rootfs as umoci unpacks it) and under `selkie run --emulate` on the same OCI
//! image; stdout and exit status must be identical.

use crate::apps::{populate, populate_tree, reference_with, shell_status, Limits};
use crate::oci::OciImage;
use crate::tools::{output_within, selkie_bin};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Builds an image holding `binary` as /NAME with the standard tree, Cmd `cmd` and
/// HELLO=WORLD; runs both ways with `args` (empty: the image's Cmd); compares. Returns the
/// reference's (stdout, status), or ("", -1) when the reference cannot run here.
pub fn compare(name: &str, binary: &Path, cmd: &[&str], args: &[&str]) -> (String, i32) {
    compare_with(name, binary, cmd, args, &[])
}

/// As [`compare`], with extra `umoci config` flags (labels).
pub fn compare_with(name: &str, binary: &Path, cmd: &[&str], args: &[&str], extra: &[&str]) -> (String, i32) {
    match Case::new(name, binary).cmd(cmd).args(args).config(extra).compare() {
        Some(o) => (o.stdout, o.status),
        None => (String::new(), -1),
    }
}

/// One app, its image and how it is run.
pub struct Case {
    name: String,
    /// The app copied to /NAME (the entrypoint), or none: the entrypoint is in the debs.
    binary: Option<PathBuf>,
    entrypoint: String,
    debs: Vec<PathBuf>,
    writes: Vec<(String, Vec<u8>, u32)>,
    cmd: Vec<String>,
    args: Vec<String>,
    config: Vec<String>,
    files: Vec<(String, PathBuf)>,
    links: Vec<(String, String)>,
    limits: Limits,
    /// How long `selkie run --emulate` may take.
    pub timeout: Duration,
}

/// What the Linux reference did (and so what selkie must do).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stdout: String,
    pub status: i32,
    /// How long `selkie run --emulate` took (wall clock; zero before it ran).
    pub elapsed: Duration,
}

/// An image built for a [`Case`], with the reference's outcome.
pub struct Built {
    pub image: OciImage,
    pub want: Outcome,
    _dir: tempfile::TempDir,
}

impl Case {
    /// `binary` as /NAME in the standard tree (see [`populate`]), entrypoint /NAME.
    pub fn new(name: &str, binary: &Path) -> Case {
        Case {
            name: name.into(),
            binary: Some(binary.into()),
            entrypoint: format!("/{name}"),
            debs: vec![],
            writes: vec![],
            cmd: vec![],
            args: vec![],
            config: vec![],
            files: vec![],
            links: vec![],
            limits: Limits::default(),
            timeout: Duration::from_secs(120),
        }
    }

    /// An image made of Debian packages (`debs`, from [`crate::debian::debs`], extracted in
    /// order) and the standard tree (see [`populate_tree`]), entrypoint `entrypoint`
    /// (absolute, inside the debs or added with [`Case::write`] or [`Case::symlink`]).
    pub fn debian(name: &str, entrypoint: &str, debs: &[PathBuf]) -> Case {
        Case {
            binary: None,
            entrypoint: entrypoint.into(),
            debs: debs.to_vec(),
            ..Case::new(name, Path::new(""))
        }
    }

    /// A file with `contents` in the image, at `path` (absolute), with `mode`.
    pub fn write(mut self, path: &str, contents: &[u8], mode: u32) -> Case {
        self.writes.push((path.into(), contents.to_vec(), mode));
        self
    }

    /// How long `selkie run --emulate` may take (default 120 s).
    pub fn timeout(mut self, limit: Duration) -> Case {
        self.timeout = limit;
        self
    }

    /// The image's Cmd.
    pub fn cmd(mut self, cmd: &[&str]) -> Case {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Arguments given at run time (replacing Cmd); none: the image's Cmd.
    pub fn args(mut self, args: &[&str]) -> Case {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Extra `umoci config` flags (labels).
    pub fn config(mut self, flags: &[&str]) -> Case {
        self.config.extend(flags.iter().map(|s| s.to_string()));
        self
    }

    /// Another executable in the image, at `path` (absolute).
    pub fn file(mut self, path: &str, binary: &Path) -> Case {
        self.files.push((path.into(), binary.into()));
        self
    }

    /// A symlink in the image: `path` (absolute) -> `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Case {
        self.links.push((path.into(), target.into()));
        self
    }

    /// The reference runs as nobody with RLIMIT_NPROC = `n` (for bombs).
    pub fn nproc(mut self, n: u32) -> Case {
        self.limits.nproc = Some(n);
        self
    }

    /// The reference runs with /proc, /sys and /dev/pts mounted, as in a container.
    pub fn kernel_fs(mut self) -> Case {
        self.limits.kernel_fs = true;
        self
    }

    /// Builds the image and runs the reference; `None` (one line printed) when the
    /// reference cannot run here.
    pub fn build(&self) -> Option<Built> {
        let dir = tempfile::tempdir().unwrap();
        let image = OciImage::new(&dir.path().join("layout"), &self.name);
        image.layer(|r| {
            crate::debian::extract(&self.debs, r);
            match &self.binary {
                Some(bin) => populate(r, &self.name, bin),
                None => populate_tree(r),
            }
            for (path, contents, mode) in &self.writes {
                use std::os::unix::fs::PermissionsExt;
                let to = r.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::write(&to, contents).expect("write a file into the image");
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            for (path, bin) in &self.files {
                let to = r.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(bin, &to).expect("copy a file into the image");
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            for (path, target) in &self.links {
                let at = r.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                symlink(target, at).expect("symlink in the image");
            }
        });
        let mut cfg: Vec<&str> = vec!["--config.entrypoint", &self.entrypoint, "--config.env", "HELLO=WORLD"];
        for c in &self.cmd {
            cfg.extend(["--config.cmd", c]);
        }
        cfg.extend(self.config.iter().map(|s| s.as_str()));
        image.config(&cfg);
        let rootfs = image.umoci_unpack(&dir.path().join("bundle"));
        let ref_args: Vec<&str> = if self.args.is_empty() { &self.cmd } else { &self.args }.iter().map(|s| s.as_str()).collect();
        let (out, status) = reference_with(&rootfs, self.entrypoint.trim_start_matches('/'), &ref_args, &[("HELLO", "WORLD")], self.limits)?;
        let stdout = String::from_utf8_lossy(&out).into_owned();
        // Captured by the test harness: shown when the test fails.
        println!("--- the Linux reference for {} {ref_args:?}: status {status}, stdout:\n{stdout}---", self.name);
        Some(Built { image, want: Outcome { stdout, status, elapsed: Duration::ZERO }, _dir: dir })
    }

    /// The `selkie run --emulate` command for a built image.
    pub fn selkie_command(&self, built: &Built) -> Command {
        let mut c = Command::new(selkie_bin());
        c.args(["run", "--emulate", &built.image.reference(), "--"]).args(&self.args);
        c
    }

    /// Builds, runs both ways, asserts that stdout and status agree; returns what Linux did
    /// (`None`, one line printed, when the reference cannot run here).
    pub fn compare(&self) -> Option<Outcome> {
        let built = self.build()?;
        let start = std::time::Instant::now();
        let got = output_within(&mut self.selkie_command(&built), self.timeout);
        let elapsed = start.elapsed();
        self.check(&built, &got);
        Some(Outcome { elapsed, ..built.want })
    }

    /// Asserts that a `selkie run --emulate` of `built` did what the reference did.
    pub fn check(&self, built: &Built, got: &crate::tools::Timed) {
        let name = &self.name;
        let stderr = String::from_utf8_lossy(&got.output.stderr);
        let stdout = String::from_utf8_lossy(&got.output.stdout);
        assert!(
            !got.timed_out,
            "{name}: selkie run --emulate did not finish within {:?}\nstdout so far:\n{stdout}\nLinux printed:\n{}\nselkie stderr: {stderr}",
            self.timeout, built.want.stdout
        );
        assert_eq!(stdout, built.want.stdout, "{name}: stdout differs from qemu-aarch64-static (selkie stderr: {stderr})");
        assert_eq!(shell_status(&got.output.status), built.want.status, "{name}: exit status differs (selkie stderr: {stderr})");
    }
}
