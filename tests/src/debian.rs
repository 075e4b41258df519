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

/// The cached .deb of `package` (arm64, or architecture-independent), if there is one:
/// `PACKAGE_VERSION_arm64.deb` or `PACKAGE_VERSION_all.deb`.
fn cached(dir: &Path, package: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            (n.ends_with("_arm64.deb") || n.ends_with("_all.deb")) && n.split('_').next() == Some(package)
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
        let fetch = |name: &str| Command::new("apt-get").args(["download", "-q", name]).current_dir(tmp.path()).output().ok();
        let mut dl = fetch(&format!("{package}:arm64"))?;
        // Architecture-independent packages (a test suite, data) have no arm64 candidate.
        if !dl.status.success() && String::from_utf8_lossy(&dl.stderr).contains("no candidate") {
            dl = fetch(package)?;
        }
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
        let file = deb.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with("_arm64.deb") && !file.ends_with("_all.deb") {
            crate::tools::skip(&format!("{package} has no arm64 or architecture-independent package (got {file})"));
            return None;
        }
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

// What the Debian-package apps run, shared by tests/tests/dynamic.rs (emulator) and
// tests/tests/qemu_dynamic.rs (seL4).

/// Busybox applets the scripts run as external programs (symlinks to /bin/busybox).
pub const APPLETS: [&str; 11] = ["tr", "wc", "cat", "seq", "sort", "head", "tail", "ls", "uniq", "expr", "sha256sum"];

/// /test.sh for dash: functions, `case`, loops, `$(...)`, pipes through busybox applets,
/// a `#!` script of the image, exit 6.
pub const DASH_SCRIPT: &str = r#"#!/bin/sh
# dash, with busybox applets as the external programs.
square() {
    echo $(( $1 * $1 ))
}
classify() {
    case "$1" in
        [0-9]*) echo "$1: number" ;;
        *.txt) echo "$1: text file" ;;
        -*) echo "$1: option" ;;
        *) echo "$1: word" ;;
    esac
}
echo "args: $# [$*]"
total=0
for i in 1 2 3 4 5; do
    total=$((total + $(square $i)))
done
echo "sum of squares 1..5: $total"
for w in 42 notes.txt -v dash "$@"; do
    classify "$w"
done
echo "hello from dash" | tr a-z A-Z
seq 1 20 | sort -r | head -3
echo "lines: $(seq 1 100 | wc -l)"
echo "bytes: $(cat /foo.txt /bar.txt | wc -c)"
printf '%s\n' pear apple fig apple | sort | uniq | tr '\n' ' '
echo
n=0
while [ $n -lt 3 ]; do
    n=$(expr $n + 1)
    echo "while $n"
done
last=$(ls /data | sort | tail -1)
echo "last in /data: $last"
# (stderr is not compared; the image has no /dev/null for the reference's chroot)
if cat /nonexistent; then echo "cat: found"; else echo "cat failed: $?"; fi
echo "script says: $(/data/run.sh)"
seq 1 5 | while read x; do printf '%s,' "$x"; done
echo
exit 6
"#;

/// `busybox sh -c` pipelines, exit 4.
pub const BUSYBOX_SCRIPT: &str = "seq 1 200 | sort -r | head -3; \
     echo abc | tr a-z A-Z | wc -c; \
     echo \"etc entries: $(ls /etc | wc -l)\"; \
     echo \"libs: $(ls /lib/aarch64-linux-gnu | wc -l)\"; \
     ls /data | sort -r | head -2; \
     for f in /foo.txt /bar.txt; do cat $f | tr a-z A-Z; done; \
     s=0; for i in $(seq 1 10); do s=$((s + i)); done; echo sum $s; \
     sha256sum /bin/busybox /lib/ld-linux-aarch64.so.1; \
     exit 4";

/// python3.11 `-c`: listdir, computation, json, file reads, `sys.exit(7)`.
pub const PYTHON: &str = r#"
import os, sys, json
print("data:", sorted(os.listdir("/data")))
print("sum of squares 1..100:", sum(i * i for i in range(1, 101)))
cubes = {str(k): k ** 3 for k in range(6)}
print(json.dumps(cubes, sort_keys=True))
print(json.dumps({"b": [1, 2.5, None, True], "a": "x\u00e9"}, sort_keys=True))
with open("/data/link-a") as f:
    print("link-a:", f.read().strip())
print("foo:", open("/foo.txt").read().strip(), "HELLO:", os.environ.get("HELLO"))
print("words:", " ".join(sorted(set("the quick brown fox jumps over the lazy dog".split()))))
sys.exit(7)
"#;

/// `case` with the busybox applets of [`APPLETS`] linked in /bin.
pub fn with_applets(mut case: crate::compare::Case) -> crate::compare::Case {
    for applet in APPLETS {
        case = case.symlink(&format!("/bin/{applet}"), "busybox");
    }
    case
}

/// Lines DASH_SCRIPT prints on Linux (its status is 6).
pub const DASH_EXPECTED: [&str; 19] = [
    "args: 2 [first x.txt]",
    "sum of squares 1..5: 55",
    "42: number",
    "notes.txt: text file",
    "-v: option",
    "first: word",
    "x.txt: text file",
    "HELLO FROM DASH",
    "9",
    "8",
    "7",
    "lines: 100",
    "bytes: 8",
    "apple fig pear ",
    "while 3",
    "last in /data: sub",
    "cat failed: 1",
    "script says: run",
    "1,2,3,4,5,",
];

/// Lines BUSYBOX_SCRIPT prints on Linux (its status is 4).
pub const BUSYBOX_EXPECTED: [&str; 9] = ["99", "98", "97", "4", "sub", "run.sh", "FOO", "BAR", "sum 55"];

/// Lines PYTHON prints on Linux (its status is 7).
pub const PYTHON_EXPECTED: [&str; 7] = [
    "data: ['a.txt', 'abs-sub', 'dangling', 'hard.txt', 'link-a', 'loop1', 'loop2', 'run.sh', 'sub']",
    "sum of squares 1..100: 338350",
    r#"{"0": 0, "1": 1, "2": 8, "3": 27, "4": 64, "5": 125}"#,
    r#"{"a": "x\u00e9", "b": [1, 2.5, null, true]}"#,
    "link-a: alpha",
    "foo: foo HELLO: WORLD",
    "words: brown dog fox jumps lazy over quick the",
];
