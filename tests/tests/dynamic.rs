//! Dynamically linked programs from Debian's arm64 packages (glibc, started through
//! /lib/ld-linux-aarch64.so.1 from the image): dash running a script that pipes between
//! busybox applets, busybox's own shell, and python3.11. Each runs under the Linux reference
//! (qemu-aarch64-static chrooted into the image's rootfs) and under `selkie run --emulate`
//! on the same OCI image; stdout and exit status must be identical.

use selkie_tests::apps::binfmt_aarch64;
use selkie_tests::compare::Case;
use selkie_tests::debian::debs;
use selkie_tests::tools::skip_without;
use std::time::Duration;

/// Most heap the manifest allows (1 GiB): python's allocator wants room.
const HUGE_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=262144"];

/// Busybox applets the scripts run as external programs (symlinks to /bin/busybox).
const APPLETS: [&str; 10] = ["tr", "wc", "cat", "seq", "sort", "head", "tail", "ls", "uniq", "expr"];

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "apt-get", "dpkg-deb"])
}

fn lines(out: &str, want: &[&str]) {
    for l in want {
        assert!(out.lines().any(|x| x == *l), "the reference did not print {l:?}:\n{out}");
    }
}

fn with_applets(mut case: Case) -> Case {
    for applet in APPLETS {
        case = case.symlink(&format!("/bin/{applet}"), "busybox");
    }
    case
}

const DASH_SCRIPT: &str = r#"#!/bin/sh
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

#[test]
fn debian_dash_script_with_busybox_tools_matches_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "dash", "busybox"]) else { return };
    // dash's package has /bin/sh -> dash.
    let case = Case::debian("dash", "/bin/sh", &debs)
        .write("/test.sh", DASH_SCRIPT.as_bytes(), 0o755)
        .cmd(&["/test.sh", "first", "x.txt"])
        .timeout(Duration::from_secs(300));
    let Some(o) = with_applets(case).compare() else { return };
    assert_eq!(o.status, 6, "{}", o.stdout);
    lines(
        &o.stdout,
        &[
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
        ],
    );
}

const BUSYBOX_SCRIPT: &str = "seq 1 200 | sort -r | head -3; \
     echo abc | tr a-z A-Z | wc -c; \
     echo \"etc entries: $(ls /etc | wc -l)\"; \
     echo \"libs: $(ls /lib/aarch64-linux-gnu | wc -l)\"; \
     ls /data | sort -r | head -2; \
     for f in /foo.txt /bar.txt; do cat $f | tr a-z A-Z; done; \
     s=0; for i in $(seq 1 10); do s=$((s + i)); done; echo sum $s; \
     exit 4";

#[test]
fn debian_dynamic_busybox_shell_pipelines_match_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(debs) = debs(&["libc6", "busybox"]) else { return };
    let case = Case::debian("busybox", "/bin/busybox", &debs)
        .symlink("/bin/sh", "busybox")
        .cmd(&["sh", "-c", BUSYBOX_SCRIPT])
        .timeout(Duration::from_secs(300));
    let Some(o) = with_applets(case).compare() else { return };
    assert_eq!(o.status, 4, "{}", o.stdout);
    lines(&o.stdout, &["99", "98", "97", "4", "sub", "run.sh", "FOO", "BAR", "sum 55"]);
}

const PYTHON: &str = r#"
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

#[test]
fn debian_python3_11_matches_linux() {
    if !tools() {
        return;
    }
    // python3.11-minimal, libpython3.11-minimal, their direct library dependencies, and
    // libpython3.11-stdlib for json (pure python).
    let packages = ["libc6", "zlib1g", "libexpat1", "libssl3", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"];
    let Some(debs) = debs(&packages) else { return };
    let case = Case::debian("python3.11", "/usr/bin/python3.11", &debs)
        .cmd(&["-c", PYTHON])
        .config(&HUGE_HEAP)
        .timeout(Duration::from_secs(600));
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 7, "{}", o.stdout);
    lines(
        &o.stdout,
        &[
            "data: ['a.txt', 'abs-sub', 'dangling', 'hard.txt', 'link-a', 'loop1', 'loop2', 'run.sh', 'sub']",
            "sum of squares 1..100: 338350",
            r#"{"0": 0, "1": 1, "2": 8, "3": 27, "4": 64, "5": 125}"#,
            r#"{"a": "x\u00e9", "b": [1, 2.5, null, true]}"#,
            "link-a: alpha",
            "foo: foo HELLO: WORLD",
            "words: brown dog fox jumps lazy over quick the",
        ],
    );
}
