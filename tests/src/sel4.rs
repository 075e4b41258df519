//! Booting packed images on seL4 under QEMU: finding an installed seL4 (`SEL4_PREFIX`,
//! checked by qemu/check-sel4), building the root server once (root-server/build.sh),
//! packing with `selkie pack --platform P`, booting with qemu/P on as many cores as the
//! kernel has, and reading the console. [`Target`] names the platform, kernel and cores;
//! the free functions use the default one ([`target`]: qemu-arm-virt at `SEL4_PREFIX`).

use crate::tools::{selkie_bin, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

pub const PLATFORM: &str = "qemu-arm-virt";

/// One seL4 configuration to pack for and boot: a selkie platform, the installed kernel for
/// it (`prefix`), and the cores QEMU starts (`SELKIE_QEMU_CORES`, which qemu/<platform>
/// passes on as `-smp`); an SMP kernel needs QEMU to start all of its cores.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub platform: &'static str,
    pub prefix: PathBuf,
    pub cores: u32,
}

impl Target {
    /// The kernel installed for `platform` with `cores` cores: /opt/seL4/<platform> for one,
    /// /opt/seL4/<platform>-smp<cores> for more (kernel-config/<platform>-smp4.cmake).
    pub fn installed(platform: &'static str, cores: u32) -> Target {
        let name = if cores == 1 { platform.to_string() } else { format!("{platform}-smp{cores}") };
        Target { platform, prefix: PathBuf::from("/opt/seL4").join(name), cores }
    }

    /// The kernel at `prefix` for `platform`, with as many cores as it was built for
    /// (MAX_NUM_NODES in its gen_config.json; 1 when that cannot be read).
    pub fn at(platform: &'static str, prefix: PathBuf) -> Target {
        let config = prefix.join("libsel4/include/kernel/gen_config.json");
        let cores = std::fs::read(&config)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("MAX_NUM_NODES")?.as_str()?.parse().ok())
            .unwrap_or(1);
        Target { platform, prefix, cores }
    }

    /// Whether images for this target can be built and booted here; prints one `SKIP:`
    /// line (from qemu/check-sel4) when not.
    pub fn available(&self) -> bool {
        static WHY: Mutex<BTreeMap<(String, PathBuf), Option<String>>> = Mutex::new(BTreeMap::new());
        let why = WHY
            .lock()
            .unwrap()
            .entry((self.platform.to_string(), self.prefix.clone()))
            .or_insert_with(|| {
                let out = Command::new(workspace().join("qemu/check-sel4")).arg(self.platform).env("SEL4_PREFIX", &self.prefix).output();
                match out {
                    Ok(o) if o.status.success() => None,
                    Ok(o) => Some(String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("qemu/check-sel4 failed").to_string()),
                    Err(e) => Some(format!("cannot run qemu/check-sel4: {e}")),
                }
            })
            .clone();
        match why {
            None => true,
            Some(w) => {
                crate::tools::skip(&w);
                false
            }
        }
    }

    /// The root-server ELF for this target's kernel, built on first use (one build per
    /// kernel configuration, see root-server/build.sh).
    pub fn root_server(&self) -> PathBuf {
        static BUILT: Mutex<BTreeMap<PathBuf, PathBuf>> = Mutex::new(BTreeMap::new());
        // Held while building: tests of one kernel wait for one build.
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        built
            .entry(self.prefix.clone())
            .or_insert_with(|| {
                let out = Command::new(workspace().join("root-server/build.sh"))
                    .env("SEL4_PREFIX", &self.prefix)
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_TARGET_DIR")
                    .output()
                    .expect("running root-server/build.sh");
                assert!(out.status.success(), "root-server/build.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            })
            .clone()
    }

    /// `selkie pack IMAGES --platform P -o OUT`.
    pub fn pack(&self, images: &[String], out: &Path) {
        let mut c = Command::new(selkie_bin());
        c.arg("pack").args(images);
        self.packed(c, out, "selkie pack");
    }

    /// `selkie pack IMAGES [extra...] --platform P -o OUT`.
    pub fn pack_with(&self, images: &[String], extra: &[&str], out: &Path) {
        let mut c = Command::new(selkie_bin());
        c.arg("pack").args(images).args(extra);
        self.packed(c, out, "selkie pack");
    }

    /// `selkie compose pack -f COMPOSE [extra...]` into `out`.
    pub fn compose_pack(&self, compose: &Path, extra: &[&str], out: &Path) {
        let mut c = Command::new(selkie_bin());
        c.args(["compose", "pack", "-f"]).arg(compose).args(extra);
        self.packed(c, out, "selkie compose pack");
    }

    /// Runs a pack command `c` for this target and its root server into `out`.
    fn packed(&self, mut c: Command, out: &Path, what: &str) {
        let o = c
            .args(["--platform", self.platform, "--root-server"])
            .arg(self.root_server())
            .arg("-o")
            .arg(out)
            .env("SEL4_PREFIX", &self.prefix)
            .output()
            .expect(what);
        assert!(o.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Boots `image` with qemu/<platform> on `cores` cores (stopped after `timeout_s`, or
    /// at the final line).
    pub fn boot(&self, image: &Path, timeout_s: u32) -> Console {
        self.boot_with(image, timeout_s, &[])
    }

    /// `boot` with more environment for the QEMU script (e.g. SELKIE_QEMU_ICOUNT).
    pub fn boot_with(&self, image: &Path, timeout_s: u32, env: &[(&str, &str)]) -> Console {
        let o = Command::new(workspace().join("qemu").join(self.platform))
            .envs(env.iter().copied())
            .arg(image)
            .env("SELKIE_QEMU_TIMEOUT", timeout_s.to_string())
            .env("SELKIE_QEMU_CORES", self.cores.to_string())
            // qemu/imx8mp-evk hands QEMU this kernel's device tree.
            .env("SEL4_PREFIX", &self.prefix)
            .output()
            .expect("qemu");
        let all = String::from_utf8_lossy(&o.stdout).into_owned();
        let text = match all.find("Booting all finished, dropped to user space\n") {
            Some(i) => all[i + "Booting all finished, dropped to user space\n".len()..].to_string(),
            None => panic!("seL4 did not boot ({self:?}):\n{all}"),
        };
        Console { finished: o.status.success(), text }
    }

    /// Packs `images` into one image in a temporary directory and boots it; asserts that
    /// the root server's final line came within `timeout_s`.
    pub fn pack_and_boot(&self, images: &[String], timeout_s: u32) -> Console {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let image = tmp.path().join("image.elf");
        self.pack(images, &image);
        let c = self.boot(&image, timeout_s);
        assert!(c.finished, "no final line within {timeout_s} s ({self:?}):\n{}", c.text);
        c
    }
}

/// The default target, which the functions below use: qemu-arm-virt with the kernel at
/// `SEL4_PREFIX` (else /opt/seL4/qemu-arm-virt), on as many cores as that kernel has.
pub fn target() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| Target::at(PLATFORM, prefix()))
}

/// SEL4_PREFIX, or the default install location.
pub fn prefix() -> PathBuf {
    std::env::var_os("SEL4_PREFIX").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/seL4").join(PLATFORM))
}

/// Whether seL4 images can be built and booted here ([`target`]); prints one `SKIP:` line when not.
pub fn available() -> bool {
    target().available()
}

/// The root-server ELF for [`target`], built on first use.
pub fn root_server() -> PathBuf {
    target().root_server()
}

/// `selkie pack IMAGES --platform qemu-arm-virt -o OUT` ([`target`]).
pub fn pack(images: &[String], out: &Path) {
    target().pack(images, out)
}

/// [`Target::pack_and_boot`] on [`target`].
pub fn pack_and_boot(images: &[String], timeout_s: u32) -> Console {
    target().pack_and_boot(images, timeout_s)
}

/// `selkie compose pack -f COMPOSE [extra...]` for qemu-arm-virt into `out` ([`target`]).
pub fn compose_pack(compose: &Path, extra: &[&str], out: &Path) {
    target().compose_pack(compose, extra, out)
}

/// Boots `image` on [`target`] under QEMU (stopped after `timeout_s`, or at the final line).
pub fn boot(image: &Path, timeout_s: u32) -> Console {
    target().boot(image, timeout_s)
}

/// What the console showed after the kernel handed over to the root server.
pub struct Console {
    pub text: String,
    pub finished: bool,
}

impl Console {
    /// The root server's `[selkie]` lines.
    pub fn reports(&self) -> Vec<&str> {
        self.text.lines().filter(|l| l.starts_with("[selkie] ")).collect()
    }

    /// Everything the apps wrote (all lines but the root server's).
    pub fn app_output(&self) -> String {
        let mut s = String::new();
        for l in self.text.lines().filter(|l| !l.starts_with("[selkie] ")) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// App `name`'s status as a shell reports it (code, or 128 + signal), from its report.
    pub fn status(&self, name: &str) -> Option<i32> {
        let exited = format!("[selkie] {name} exited with status ");
        let killed = format!("[selkie] {name} killed by signal ");
        self.reports().iter().find_map(|l| {
            if let Some(r) = l.strip_prefix(&exited) {
                r.trim().parse().ok()
            } else if let Some(r) = l.strip_prefix(&killed) {
                r.split(|c: char| !c.is_ascii_digit()).next()?.parse::<i32>().ok().map(|s| 128 + s)
            } else {
                None
            }
        })
    }

    /// Whether `lines` appear in this order among the console's lines (other apps' lines
    /// may come between them).
    /// The root server's bare seL4 IPC round trip (Call + ReplyRecv between two of its own
    /// threads) measured in this boot, in ns, from its stats line.
    pub fn bare_ipc_ns(&self) -> f64 {
        self.stat_ns("bare seL4 IPC round trip (Call + ReplyRecv) ")
    }

    /// As [`Console::bare_ipc_ns`], with the client in an address space of its own (as an
    /// app's syscalls are: two address-space switches per round trip).
    pub fn bare_ipc_across_ns(&self) -> f64 {
        self.stat_ns("bare seL4 IPC round trip between address spaces (Call + ReplyRecv) ")
    }

    /// The number of ns after `key` in the console.
    fn stat_ns(&self, key: &str) -> f64 {
        self.text
            .lines()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|r| r.split(" ns").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?}in the stats:\n{}", self.text))
    }

    pub fn has_in_order(&self, lines: &str) -> bool {
        let mut have = self.text.lines();
        lines.lines().all(|want| have.any(|l| l == want))
    }
}
