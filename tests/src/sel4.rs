//! Booting packed images on seL4 under QEMU: finding an installed seL4 (`SEL4_PREFIX`,
//! checked by qemu/check-sel4), building the root server once (root-server/build.sh),
//! packing with `selkie pack --platform qemu-arm-virt`, booting with qemu/qemu-arm-virt,
//! and reading the console.

use crate::tools::{selkie_bin, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const PLATFORM: &str = "qemu-arm-virt";

/// SEL4_PREFIX, or the default install location.
pub fn prefix() -> PathBuf {
    std::env::var_os("SEL4_PREFIX").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/seL4").join(PLATFORM))
}

/// Whether seL4 images can be built and booted here; prints one `SKIP:` line when not.
pub fn available() -> bool {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    let why = WHY.get_or_init(|| {
        let out = Command::new(workspace().join("qemu/check-sel4")).arg(PLATFORM).env("SEL4_PREFIX", prefix()).output();
        match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("qemu/check-sel4 failed").to_string()),
            Err(e) => Some(format!("cannot run qemu/check-sel4: {e}")),
        }
    });
    match why {
        None => true,
        Some(w) => {
            crate::tools::skip(&format!("{w}"));
            false
        }
    }
}

/// The root-server ELF, built on first use.
pub fn root_server() -> PathBuf {
    static RS: OnceLock<PathBuf> = OnceLock::new();
    RS.get_or_init(|| {
        let out = Command::new(workspace().join("root-server/build.sh"))
            .env("SEL4_PREFIX", prefix())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("running root-server/build.sh");
        assert!(out.status.success(), "root-server/build.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// `selkie pack IMAGES --platform qemu-arm-virt -o OUT`.
pub fn pack(images: &[String], out: &Path) {
    let mut c = Command::new(selkie_bin());
    c.arg("pack").args(images);
    packed(c, out, "selkie pack");
}

/// Packs `images` into one image in a temporary directory and boots it; asserts that the
/// root server's final line came within `timeout_s`.
pub fn pack_and_boot(images: &[String], timeout_s: u32) -> Console {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let image = tmp.path().join("image.elf");
    pack(images, &image);
    let c = boot(&image, timeout_s);
    assert!(c.finished, "no final line within {timeout_s} s:\n{}", c.text);
    c
}

/// `selkie compose pack -f COMPOSE [extra...]` for qemu-arm-virt into `out`.
pub fn compose_pack(compose: &Path, extra: &[&str], out: &Path) {
    let mut c = Command::new(selkie_bin());
    c.args(["compose", "pack", "-f"]).arg(compose).args(extra);
    packed(c, out, "selkie compose pack");
}

/// Runs a pack command `c` for this platform and the built root server into `out`.
fn packed(mut c: Command, out: &Path, what: &str) {
    let o = c
        .args(["--platform", PLATFORM, "--root-server"])
        .arg(root_server())
        .arg("-o")
        .arg(out)
        .env("SEL4_PREFIX", prefix())
        .output()
        .expect(what);
    assert!(o.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

/// What the console showed after the kernel handed over to the root server.
pub struct Console {
    pub text: String,
    pub finished: bool,
}

/// Boots `image` under QEMU (stopped after `timeout_s`, or at the final line).
pub fn boot(image: &Path, timeout_s: u32) -> Console {
    let o = Command::new(workspace().join("qemu").join(PLATFORM))
        .arg(image)
        .env("SELKIE_QEMU_TIMEOUT", timeout_s.to_string())
        .output()
        .expect("qemu");
    let all = String::from_utf8_lossy(&o.stdout).into_owned();
    let text = match all.find("Booting all finished, dropped to user space\n") {
        Some(i) => all[i + "Booting all finished, dropped to user space\n".len()..].to_string(),
        None => panic!("seL4 did not boot:\n{all}"),
    };
    Console { finished: o.status.success(), text }
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
