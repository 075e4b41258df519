//! Every test app runs under qemu-aarch64-static (the Linux reference, chrooted into the
//! image's rootfs as umoci unpacks it) and under `selkie run --emulate` on the same OCI
//! image: stdout and exit status must be identical.

use selkie_tests::apps::{busybox_arm64, c_app, populate, rust_app, Link};
use selkie_tests::compare::{compare, compare_with, Case};
use selkie_tests::oci::OciImage;
use selkie_tests::tools::{selkie_bin, skip_without};
use std::process::Command;

const BIG_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=32768"];

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc"])
}

#[test]
fn hello_static_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("hello", Link::Static) else { return };
    let (out, status) = compare("hello", &bin, &["hello_world", "test"], &[]);
    if status >= 0 {
        assert!(out.contains("argv[1] = hello_world") && out.contains("HELLO = WORLD") && out.contains("/bar.txt: bar"), "{out}");
        assert_eq!(status, 0);
    }
}

#[test]
fn hello_static_pie_with_args_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("hello", Link::StaticPie) else { return };
    let (out, _) = compare("hello", &bin, &["hello_world", "test"], &["replaced", "args"]);
    assert!(out.is_empty() || out.contains("argv[1] = replaced"), "{out}");
}

#[test]
fn walker_matches_linux() {
    if !tools() {
        return;
    }
    for link in [Link::Static, Link::StaticPie] {
        let Some(bin) = c_app("walker", link) else { return };
        let (out, _) = compare("walker", &bin, &["/data"], &[]);
        assert!(out.is_empty() || (out.contains("hard.txt size=6 nlink=2") && out.contains("errno 40")), "{out}");
    }
}

#[test]
fn malloc_stress_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("malloc_stress", Link::Static) else { return };
    // Linux has no heap bound; give it 128 MiB, more than the default 16 MiB.
    let (out, _) = compare_with("malloc_stress", &bin, &[], &[], &BIG_HEAP);
    assert!(out.is_empty() || out.contains("file mmap: foo"), "{out}");
}

/// Runs a C app whose every line is a check ending in 1 when it holds, under Linux and
/// emulated; the outputs must be equal and no check may fail on Linux. `None` without
/// the tools.
fn checks_match_linux(name: &str, link: Link) -> Option<(String, i32)> {
    if !tools() {
        return None;
    }
    let bin = c_app(name, link)?;
    let (out, status) = compare(name, &bin, &[], &[]);
    assert!(out.is_empty() || !out.contains(": 0\n"), "a check failed on the reference:\n{out}");
    Some((out, status))
}

#[test]
fn timecheck_matches_linux() {
    checks_match_linux("timecheck", Link::StaticPie);
}

#[test]
fn timers_match_linux() {
    let Some((out, status)) = checks_match_linux("timers", Link::Static) else { return };
    assert!(out.is_empty() || out.contains("sigwait takes the timer's SIGALRM: 1"), "{out}");
    assert_eq!(status, 0);
}

#[test]
fn null_dereference_is_a_fault_like_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("nullderef", Link::Static) else { return };
    let (_, status) = compare("nullderef", &bin, &[], &[]);
    assert!(status == -1 || status == 139, "status {status}");
    if status == 139 {
        // The report names the app, the pc, the address and the kind, as the root server will.
        let tmp = tempfile::tempdir().unwrap();
        let img = OciImage::new(&tmp.path().join("layout"), "nullderef");
        img.layer(|r| populate(r, "nullderef", &bin));
        img.config(&["--config.entrypoint", "/nullderef"]);
        let out = Command::new(selkie_bin()).args(["run", "--emulate", &img.reference()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(": fault: write to unmapped memory at pc 0x") && err.contains("address 0x0"), "{err}");
    }
}

#[test]
fn rust_app_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = rust_app() else { return };
    let (out, status) = compare_with("rust-hello", &bin, &["from", "cmd"], &[], &BIG_HEAP);
    if status >= 0 {
        assert_eq!(status, 7);
        assert!(out.contains("hashmap sum 499500"), "{out}");
    }
}

#[test]
fn stripped_glibc_busybox_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = busybox_arm64() else { return };
    let runs: [&[&str]; 4] = [
        &["cat", "/foo.txt", "/data/link-a", "/data/sub/up-foo"],
        &["ls", "-1R", "/data"],
        &["md5sum", "/data/a.txt", "/data/hard.txt"],
        &["stat", "-c", "%n %s %a %h %F", "/data/a.txt", "/data/hard.txt", "/data/sub", "/data/link-a"],
    ];
    for cmd in runs {
        let (out, status) = compare("busybox", &bin, cmd, &[]);
        assert!(status <= 0, "busybox {cmd:?}: status {status}\n{out}");
    }
}

#[test]
fn a_program_reads_its_own_binary_as_the_image_has_it() {
    if !tools() {
        return;
    }
    for link in [Link::Static, Link::StaticPie] {
        let Some(bin) = c_app("selfread", link) else { return };
        let (out, status) = compare("selfread", &bin, &["/selfread", "/proc/self/exe"], &[]);
        if status >= 0 {
            assert_eq!(status, 0, "{out}");
            // Its svcs are in the file as linked (selkie's traps are not in the rootfs).
            assert!(!out.contains(" 0 svc words"), "{out}");
            assert_eq!(out.matches("same: yes").count(), 2, "{out}");
        }
    }
}

#[test]
fn rootfs_changes_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("rootfs_rw", Link::Static) else { return };
    let (out, status) = compare("rootfs_rw", &bin, &[], &[]);
    if status >= 0 {
        for line in [
            "cat /foo.txt: \"foo|more|\"",
            "cat /data/a.txt: \"ALPHA|\"",
            "ls /var/lib/app2: state.old",
            "rename /data -> /data/sub/x (below itself)   Invalid argument",
            "O_TMPFILE: nlink 0 size 10",
            "cat /data/named: \"anonymous|\"",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        assert_eq!(status, 0);
    }
}

#[test]
fn a_full_rootfs_quota_gives_enospc_and_the_app_goes_on() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("rootfs_rw", Link::Static) else { return };
    let img_dir = tempfile::tempdir().unwrap();
    let img = OciImage::new(&img_dir.path().join("layout"), "fill");
    img.layer(|r| populate(r, "rootfs_rw", &bin));
    img.config(&["--config.entrypoint", "/rootfs_rw", "--config.cmd", "fill", "--config.cmd", "4096",
        "--config.label", "org.selkie.app.rootfs_write_bytes=1048576"]);
    let out = Command::new(selkie_bin()).args(["run", "--emulate", &img.reference()]).output().expect("selkie run --emulate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("stopped after 1024 KiB: No space left on device"), "{text}");
    assert!(text.contains("/var/fill holds 1024 KiB"), "{text}");
    assert!(text.contains("cat /var/after: \"after|\""), "{text}");
}

#[test]
fn proc_and_sys_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("procinfo", Link::Static) else { return };
    let Some(o) = Case::new("procinfo", &bin).kernel_fs().compare() else { return };
    assert!(!o.stdout.contains(" NO\n"), "Linux itself disagrees:\n{}", o.stdout);
    assert_eq!(o.stdout.matches(" yes\n").count(), 26, "{}", o.stdout);
    assert_eq!(o.status, 0);
}

#[test]
fn pty_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("pty", Link::Static) else { return };
    let Some(o) = Case::new("pty", &bin).kernel_fs().compare() else { return };
    for line in ["ptsname /dev/pts/0", "read 4: abc\\n", "grandchild: killed by signal 2", "caught SIGWINCH: yes, winsize 40x100", "hung-up slave read: 0"] {
        assert!(o.stdout.contains(line), "{line:?} in\n{}", o.stdout);
    }
    assert_eq!(o.status, 0);
}

#[test]
fn job_control_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("jobctl", Link::Static) else { return };
    let Some(o) = Case::new("jobctl", &bin).kernel_fs().compare() else { return };
    for line in ["B stopped by signal 21", "tcsetattr EIO, read EIO, write ok", "C (TOSTOP write) stopped by signal 22", "SIGTTIN caught: EINTR, handler ran: yes", "B stopped by signal 20", "VMIN 5 VTIME 2: 2", "L: exited 0"] {
        assert!(o.stdout.contains(line), "{line:?} in\n{}", o.stdout);
    }
    assert_eq!(o.status, 0);
}

#[test]
fn a_forked_child_sees_shared_stores_without_a_syscall_like_linux() {
    // The emulator maps the same host pages into the parent's and the child's CPUs for a
    // shared file mapping: the child, spinning on a word, sees the parent's store (with
    // copies it spins to its limit and prints that it never saw it).
    if !tools() {
        return;
    }
    let Some(bin) = c_app("filemap_locks", Link::Static) else { return };
    let (out, status) = compare("spin", &bin, &["spin"], &[]);
    if status >= 0 {
        assert!(out.contains("the child saw the parent's store without a syscall"), "{out}");
        assert!(out.contains("the parent sees the child's store: yes"), "{out}");
        assert_eq!(status, 0);
    }
}

#[test]
fn shared_file_mappings_and_fcntl_locks_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("filemap_locks", Link::Static) else { return };
    let (out, status) = compare("filemap_locks", &bin, &[], &[]);
    if status >= 0 {
        for line in [
            "parent sees the child's store: from the child",
            "parent sees the child's write: written to the file",
            "read() sees the parent's store: from the parent",
            "after munmap the file has: Jello",
            "sem_wait in the parent: woken by the child's post",
            "semaphore value after: 0",
            "child F_SETLK 5..10: refused",
            "child asks for 5..6: type write start 0 len 10 holder expected",
            "parent asks for 25..26: type read start 20 len 10 holder expected",
            "child waited and got 0..1: 0",
            "OFD lock on another: EAGAIN",
            "after its close: 0",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        assert_eq!(status, 0);
    }
}
