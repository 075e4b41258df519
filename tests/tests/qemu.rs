//! Test apps (C static and static-PIE, Rust std) packed into bootable seL4 images and
//! booted under QEMU (qemu-arm-virt): each app's console output and exit status must equal
//! the Linux reference's
//! (qemu-aarch64-static) and the emulated runner's (`selkie run --emulate`). Several apps
//! share one image; a crashing app must not stop a healthy one. The same apps also boot on
//! every platform whose seL4 is installed (/opt/seL4/<platform>, and <platform>-smp4 on
//! four cores), each packed in the format its boot chain takes.
//! Skipped, with one line, when SEL4_PREFIX or rust-sel4 is unavailable.

use selkie_tests::apps::{busybox_arm64, c_app, populate, reference, rust_app, shell_status, Link, SIGNALS_EXPECTED, SIGTHREADS_EXPECTED};
use selkie_tests::compare::Case;
use selkie_tests::oci::OciImage;
use selkie_tests::sel4::{self, Console};
use selkie_tests::tools::{selkie_bin, skip_without};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BOOT_TIMEOUT: u32 = 180;
const BIG_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=32768"];

/// An app image with its expected behaviour.
struct Expect {
    name: String,
    image: String,
    stdout: String,
    status: i32,
}

fn ready() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc"]) && sel4::available()
}

/// Builds an OCI image holding tests/apps/NAME.c as /NAME (standard tree, HELLO=WORLD, Cmd
/// `cmd`), runs it under the Linux reference and the emulator, checks they agree, and
/// returns what seL4 must print. `None` (one line printed) when the reference cannot run.
fn app(dir: &Path, name: &str, cmd: &[&str], extra: &[&str]) -> Option<Expect> {
    app_named(dir, name, name, cmd, extra)
}

/// As [`app`], for tests/apps/SOURCE.c installed as /SOURCE in an image (and app) named `name`.
fn app_named(dir: &Path, name: &str, source: &str, cmd: &[&str], extra: &[&str]) -> Option<Expect> {
    image_of(dir, name, source, &c_app(source, Link::Static)?, cmd, extra)
}

/// As [`app`], for the binary `bin` installed as /SOURCE in an image named `name`.
fn image_of(dir: &Path, name: &str, source: &str, bin: &Path, cmd: &[&str], extra: &[&str]) -> Option<Expect> {
    image_checked(dir, name, source, bin, cmd, extra, true)
}

/// As [`image_of`]; `emulator`: also require the emulator to agree with Linux.
fn image_checked(dir: &Path, name: &str, source: &str, bin: &Path, cmd: &[&str], extra: &[&str], emulator: bool) -> Option<Expect> {
    image_with(dir, name, source, bin, cmd, extra, &[], emulator)
}

/// As [`image_checked`], with more executables in the image (absolute path, binary).
#[allow(clippy::too_many_arguments)]
fn image_with(dir: &Path, name: &str, source: &str, bin: &Path, cmd: &[&str], extra: &[&str], files: &[(&str, &Path)], emulator: bool) -> Option<Expect> {
    let img = OciImage::new(&dir.join(format!("{name}-layout")), name);
    img.layer(|r| {
        populate(r, source, bin);
        for (path, file) in files {
            let to = r.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(file, &to).expect("copy a program into the image");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    });
    let entry = format!("/{source}");
    let mut cfg = vec!["--config.entrypoint", &entry, "--config.env", "HELLO=WORLD"];
    for c in cmd {
        cfg.extend(["--config.cmd", c]);
    }
    cfg.extend(extra);
    img.config(&cfg);
    let rootfs = img.umoci_unpack(&dir.join(format!("{name}-bundle")));
    let (want, status) = reference(&rootfs, source, cmd, &[("HELLO", "WORLD")])?;
    let want = String::from_utf8(want).expect("test apps print text");
    if emulator {
        let emu = Command::new(selkie_bin()).args(["run", "--emulate", &img.reference()]).output().expect("selkie run --emulate");
        assert_eq!(String::from_utf8_lossy(&emu.stdout), want, "{name}: the emulator differs from Linux");
        assert_eq!(shell_status(&emu.status), status, "{name}: the emulator's status differs from Linux");
    }
    Some(Expect { name: name.to_string(), image: img.reference(), stdout: want, status })
}

fn boot(dir: &Path, apps: &[&Expect]) -> Console {
    let image = dir.join("image.elf");
    sel4::pack(&apps.iter().map(|a| a.image.clone()).collect::<Vec<_>>(), &image);
    let c = sel4::boot(&image, BOOT_TIMEOUT);
    assert!(c.finished, "no final line within {BOOT_TIMEOUT} s:\n{}", c.text);
    c
}

/// One app alone: its output must equal the reference's exactly.
fn alone(name: &str, cmd: &[&str], extra: &[&str]) -> Option<(Expect, Console)> {
    alone_with(name, |dir| app(dir, name, cmd, extra))
}

/// As [`alone`], for the app `make` builds in the given directory.
fn alone_with(name: &str, make: impl FnOnce(&Path) -> Option<Expect>) -> Option<(Expect, Console)> {
    if !ready() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = make(tmp.path())?;
    let c = boot(tmp.path(), &[&e]);
    assert_eq!(c.app_output(), e.stdout, "{name}: seL4 console differs from Linux; reports: {:?}", c.reports());
    assert_eq!(c.status(name), Some(e.status), "{name}: status differs from Linux; reports: {:?}", c.reports());
    assert!(c.reports().last().is_some_and(|l| l.starts_with("[selkie] all 1 apps done")), "{:?}", c.reports());
    Some((e, c))
}

#[test]
fn hello_boots_like_linux() {
    let Some((e, c)) = alone("hello", &["hello_world", "test"], &[]) else { return };
    assert_eq!(e.status, 0);
    for line in ["argv[1] = hello_world", "argv[2] = test", "HELLO = WORLD", "/foo.txt: foo", "/bar.txt: bar"] {
        assert!(c.text.lines().any(|l| l == line), "missing {line:?} in:\n{}", c.text);
    }
    assert!(c.reports().contains(&"[selkie] hello exited with status 0"), "{:?}", c.reports());
}

#[test]
fn walker_boots_like_linux() {
    let Some((_, c)) = alone("walker", &["/data"], &[]) else { return };
    assert!(c.text.contains("hard.txt size=6 nlink=2"), "{}", c.text);
}

#[test]
fn rootfs_changes_boot_like_linux() {
    let Some((_, c)) = alone("rootfs_rw", &[], &[]) else { return };
    assert!(c.text.contains("cat /data/named: \"anonymous|\""), "{}", c.text);
}

#[test]
fn a_full_rootfs_quota_stops_only_that_apps_writes() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let label = ["--config.label", "org.selkie.app.rootfs_write_bytes=1048576"];
    let Some(bin) = c_app("rootfs_rw", Link::Static) else { return };
    // Linux has no such quota: there it writes all 4 MiB.
    let (Some(fill), Some(h)) = (
        image_checked(tmp.path(), "fill", "rootfs_rw", &bin, &["fill", "4096"], &label, false),
        app(tmp.path(), "hello", &["hello_world", "test"], &[]),
    ) else {
        return;
    };
    assert!(fill.stdout.contains("wrote 4096 KiB"), "{}", fill.stdout);
    let c = boot(tmp.path(), &[&fill, &h]);
    for line in ["stopped after 1024 KiB: No space left on device", "/var/fill holds 1024 KiB", "cat /var/after: \"after|\""] {
        assert!(c.text.contains(line), "{line:?} in\n{}", c.text);
    }
    assert_eq!(c.status("fill"), Some(0), "{:?}", c.reports());
    assert_eq!(c.status("hello"), Some(0), "{:?}", c.reports());
    assert!(c.has_in_order(&h.stdout), "{}", c.text);
}

#[test]
fn writing_past_the_root_heap_gives_enospc_not_a_dead_root_server() {
    // No label: the rootfs allows 64 MiB, but the root server keeps written bytes in its
    // own heap (64 MiB for every app), so the app's share runs out first. A file that grows
    // by doubling once asked the heap for a block it could not have, and the root server
    // aborted; now the write that does not fit gets ENOSPC and the app goes on.
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(bin) = c_app("rootfs_rw", Link::Static) else { return };
    let Some(fill) = image_checked(tmp.path(), "fill", "rootfs_rw", &bin, &["fill", "65536"], &[], false) else { return };
    let c = boot(tmp.path(), &[&fill]);
    let stopped = c.text.lines().find(|l| l.starts_with("stopped after ")).unwrap_or_else(|| panic!("{}", c.text));
    assert!(stopped.ends_with(" KiB: No space left on device"), "{stopped}");
    let kib: u64 = stopped["stopped after ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((4096..65536).contains(&kib), "{stopped}");
    assert!(c.text.contains(&format!("/var/fill holds {kib} KiB")), "{}", c.text);
    assert!(c.text.contains("cat /var/after: \"after|\""), "{}", c.text);
    assert_eq!(c.status("fill"), Some(0), "{:?}", c.reports());
    assert!(c.reports().last().is_some_and(|l| l.starts_with("[selkie] all 1 apps done")), "{:?}", c.reports());
}

#[test]
fn shared_file_mappings_semaphores_and_locks_boot_like_linux() {
    let Some((_, c)) = alone("filemap_locks", &[], &[]) else { return };
    assert!(c.text.contains("sem_wait in the parent: woken by the child's post"), "{}", c.text);
}

#[test]
fn a_forked_child_sees_shared_stores_without_a_syscall() {
    // The root server gives a forked child the parent's frames of its shared file
    // mappings: a store shows in the other process at once, as on Linux (the child spins
    // on the word; with copies it would spin to its limit and say so).
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(bin) = c_app("filemap_locks", Link::Static) else { return };
    let Some(spin) = image_checked(tmp.path(), "spin", "filemap_locks", &bin, &["spin"], &[], false) else { return };
    assert!(spin.stdout.contains("the child saw the parent's store without a syscall"), "Linux: {}", spin.stdout);
    let c = boot(tmp.path(), &[&spin]);
    assert_eq!(c.app_output(), spin.stdout, "{:?}", c.reports());
    assert_eq!(c.status("spin"), Some(0), "{:?}", c.reports());
}

#[test]
fn proc_and_sys_describe_the_app_like_linux() {
    if !ready() {
        return;
    }
    let Some(bin) = c_app("procinfo", Link::Static) else { return };
    let Some(built) = Case::new("procinfo", &bin).kernel_fs().build() else { return };
    assert!(!built.want.stdout.contains(" NO\n"), "Linux itself disagrees:\n{}", built.want.stdout);
    boots_as_linux_ran("procinfo", &built);
}

/// Boots a built case alone on seL4: its console must say what Linux printed, and it must
/// exit 0.
fn boots_as_linux_ran(name: &str, built: &selkie_tests::compare::Built) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    sel4::pack(&[built.image.reference()], &image);
    let c = sel4::boot(&image, BOOT_TIMEOUT);
    assert!(c.finished, "no final line within {BOOT_TIMEOUT} s:\n{}", c.text);
    assert_eq!(c.app_output(), built.want.stdout, "seL4 console differs from Linux; reports: {:?}", c.reports());
    assert_eq!(c.status(name), Some(0), "{:?}", c.reports());
}

#[test]
fn pty_boots_like_linux() {
    if !ready() {
        return;
    }
    let Some(bin) = c_app("pty", Link::Static) else { return };
    let Some(built) = Case::new("pty", &bin).kernel_fs().build() else { return };
    assert!(built.want.stdout.contains("grandchild: killed by signal 2"), "Linux itself differs:\n{}", built.want.stdout);
    boots_as_linux_ran("pty", &built);
}

#[test]
fn jobctl_boots_like_linux() {
    if !ready() {
        return;
    }
    let Some(bin) = c_app("jobctl", Link::Static) else { return };
    let Some(built) = Case::new("jobctl", &bin).kernel_fs().build() else { return };
    assert!(built.want.stdout.contains("C (TOSTOP write) stopped by signal 22"), "Linux itself differs:\n{}", built.want.stdout);
    boots_as_linux_ran("jobctl", &built);
}

#[test]
fn malloc_stress_boots_like_linux() {
    let Some((_, c)) = alone("malloc_stress", &[], &BIG_HEAP) else { return };
    assert!(c.text.contains("file mmap: foo"), "{}", c.text);
}

#[test]
fn static_pie_timecheck_boots_like_linux() {
    let Some((_, c)) = alone_with("timecheck", |dir| image_of(dir, "timecheck", "timecheck", &c_app("timecheck", Link::StaticPie)?, &[], &[])) else {
        return;
    };
    assert!(c.text.contains("monotonic never goes back: 1"), "{}", c.text);
}

#[test]
fn rust_std_app_boots_like_linux() {
    const BIG_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=32768"];
    let Some((e, c)) = alone_with("rust-hello", |dir| image_of(dir, "rust-hello", "rust-hello", &rust_app()?, &["from", "cmd"], &BIG_HEAP)) else {
        return;
    };
    assert_eq!(e.status, 7);
    assert!(c.text.contains("hashmap sum 499500"), "{}", c.text);
}

#[test]
fn two_apps_share_one_image() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (Some(h), Some(w)) = (app(tmp.path(), "hello", &["hello_world", "test"], &[]), app(tmp.path(), "walker", &["/data"], &[])) else {
        return;
    };
    let c = boot(tmp.path(), &[&h, &w]);
    for e in [&h, &w] {
        assert!(c.has_in_order(&e.stdout), "{}'s output is not on the console in order:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(e.status), "{}: {:?}", e.name, c.reports());
    }
    // Exactly the two apps' lines, nothing lost or doubled.
    assert_eq!(c.app_output().lines().count(), h.stdout.lines().count() + w.stdout.lines().count(), "{}", c.text);
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 2 apps done: 2 exited")), "{:?}", c.reports());
}

#[test]
fn a_crash_does_not_stop_a_healthy_app() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (Some(bad), Some(good)) = (app(tmp.path(), "nullderef", &[], &[]), app(tmp.path(), "hello", &["hello_world", "test"], &[])) else {
        return;
    };
    assert_eq!(bad.status, 139, "the reference should die of SIGSEGV");
    let c = boot(tmp.path(), &[&bad, &good]);
    assert_eq!(c.status("nullderef"), Some(139), "{:?}", c.reports());
    let report = c.reports().into_iter().find(|l| l.starts_with("[selkie] nullderef killed by signal 11")).expect("a crash report");
    assert!(report.contains("fault address 0x0"), "{report}");
    assert!(c.has_in_order(&bad.stdout), "{}", c.text);
    assert!(c.has_in_order(&good.stdout), "{}", c.text);
    assert_eq!(c.status("hello"), Some(0), "{:?}", c.reports());
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 2 apps done: 1 exited, 1 killed")), "{:?}", c.reports());
}

#[test]
fn every_fault_kind_is_reported_and_contained() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // mode, signal, what the report says
    let modes = [
        ("trap", 5, "breakpoint brk #0x3e8"),
        ("abort", 6, ""),
        ("udf", 4, "undefined instruction"),
        ("overflow", 11, "data fault"),
        ("exec", 11, "instruction fetch fault"),
    ];
    let mut apps = Vec::new();
    for (mode, _, _) in &modes {
        let Some(e) = app_named(tmp.path(), mode, "crasher", &[mode], &[]) else { return };
        apps.push(e);
    }
    let Some(h) = app(tmp.path(), "hello", &["hello_world", "test"], &[]) else { return };
    apps.push(h);
    let c = boot(tmp.path(), &apps.iter().collect::<Vec<_>>());
    for (e, (mode, sig, kind)) in apps.iter().zip(&modes) {
        assert_eq!(e.status, 128 + sig, "{mode}: the reference's status");
        assert_eq!(c.status(mode), Some(e.status), "{mode}: {:?}", c.reports());
        let prefix = format!("[selkie] {mode} killed by signal {sig}");
        let report = c.reports().into_iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no report for {mode}: {:?}", c.reports()));
        assert!(report.contains(kind), "{report}");
        assert!(c.has_in_order(&e.stdout), "{mode}:\n{}", c.text);
    }
    assert_eq!(c.status("hello"), Some(0), "{:?}", c.reports());
    assert!(c.has_in_order(&apps[5].stdout), "{}", c.text);
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 6 apps done: 1 exited, 5 killed")), "{:?}", c.reports());
}

#[test]
fn an_app_flooding_the_root_heap_is_stopped_alone() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Linux and the emulator create all the symlinks; on seL4 the root server keeps every
    // app's tmpfs in its own heap (64 MiB, about 30 MiB a quota for two apps), so it must
    // stop this app at its quota instead (after about 7000 of their 4000-byte targets).
    let (Some(flood), Some(h)) = (app(tmp.path(), "tmpfs_flood", &["20000", "symlinks"], &[]), app(tmp.path(), "hello", &["hello_world", "test"], &[])) else {
        return;
    };
    assert!(flood.stdout.ends_with("created all\n"), "{}", flood.stdout);
    let c = boot(tmp.path(), &[&flood, &h]);
    let report = c.reports().into_iter().find(|l| l.starts_with("[selkie] tmpfs_flood killed by signal 9 (root heap quota exceeded")).unwrap_or_else(|| panic!("{:?}", c.reports()));
    assert!(report.contains(" of "), "{report}");
    assert!(c.text.contains("created 1000\n"), "it ran for a while:\n{}", c.text);
    assert!(!c.text.contains("created all"), "{}", c.text);
    assert_eq!(c.status("hello"), Some(0), "{:?}", c.reports());
    assert!(c.has_in_order(&h.stdout), "{}", c.text);
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 2 apps done: 1 exited, 1 killed")), "{:?}", c.reports());
}

#[test]
fn four_busybox_applets_run_side_by_side() {
    if !ready() {
        return;
    }
    let Some(bin) = busybox_arm64() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let runs: [(&str, &[&str]); 4] = [
        ("bb-cat", &["cat", "/foo.txt", "/data/link-a", "/data/sub/up-foo"]),
        ("bb-ls", &["ls", "-1R", "/data"]),
        ("bb-md5", &["md5sum", "/data/a.txt", "/data/hard.txt"]),
        ("bb-stat", &["stat", "-c", "%n %s %a %h %F", "/data/a.txt", "/data/hard.txt", "/data/sub", "/data/link-a"]),
    ];
    let mut apps = Vec::new();
    for (name, cmd) in runs {
        let Some(e) = image_of(tmp.path(), name, "busybox", &bin, cmd, &[]) else { return };
        apps.push(e);
    }
    let c = boot(tmp.path(), &apps.iter().collect::<Vec<_>>());
    for e in &apps {
        assert!(c.has_in_order(&e.stdout), "{}'s output is not on the console in order:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(e.status), "{}: {:?}", e.name, c.reports());
    }
    let want: usize = apps.iter().map(|e| e.stdout.lines().count()).sum();
    assert_eq!(c.app_output().lines().count(), want, "{}", c.text);
}

#[test]
fn floating_point_survives_switches_between_apps() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (Some(a), Some(b)) = (app_named(tmp.path(), "fp-a", "fpcheck", &["3"], &[]), app_named(tmp.path(), "fp-b", "fpcheck", &["5"], &[])) else {
        return;
    };
    assert_ne!(a.stdout, b.stdout, "the two runs must compute different things");
    let c = boot(tmp.path(), &[&a, &b]);
    for e in [&a, &b] {
        assert!(c.has_in_order(&e.stdout), "{}:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(0), "{:?}", c.reports());
    }
}

#[test]
fn arguments_with_json_escapes_reach_the_app() {
    // Quotes, backslashes, control and non-ASCII characters travel JSON-escaped in the
    // manifest and must come out as Linux passes them.
    let Some((_, c)) = alone("hello", &["say \"hi\"", "back\\slash", "tab\there", "grüße €"], &[]) else { return };
    assert!(c.text.contains("argv[1] = say \"hi\"\n"), "{}", c.text);
    assert!(c.text.contains("argv[4] = grüße €\n"), "{}", c.text);
}

#[test]
fn eight_apps_fill_one_image() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut apps = Vec::new();
    for i in 0..8 {
        let name = format!("hello{i}");
        let arg = format!("instance-{i}");
        let Some(e) = app_named(tmp.path(), &name, "hello", &[&arg], &[]) else { return };
        apps.push(e);
    }
    let c = boot(tmp.path(), &apps.iter().collect::<Vec<_>>());
    for e in &apps {
        assert!(c.has_in_order(&e.stdout), "{}:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(0), "{:?}", c.reports());
    }
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 8 apps done: 8 exited")), "{:?}", c.reports());
}

#[test]
fn a_syscall_writing_into_shared_text_gets_efault() {
    // Read-only segments are mapped straight from the bundle; the root server must refuse
    // to write into them on the app's behalf, as Linux does, and keep running. The emulator
    // refuses the same pages, so all three agree.
    let Some((e, c)) = alone_with("text", |dir| image_checked(dir, "text", "crasher", &c_app("crasher", Link::Static)?, &["text"], &[], true)) else {
        return;
    };
    assert!(e.stdout.contains("read into text: -1 errno 14"), "{}", e.stdout);
    assert!(c.reports().iter().any(|l| l.contains("shared with the bundle") && !l.contains("(0 shared")), "{:?}", c.reports());
}

/// The root server's `stats <app>:` line.
fn stats_line<'c>(c: &'c Console, name: &str) -> &'c str {
    let prefix = format!("[selkie] stats {name}: ");
    c.reports().into_iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no stats line for {name}: {:?}", c.reports()))
}

/// The number in a stats line just before `what` (e.g. "threads 13 made": `what` = " made").
fn stat(line: &str, what: &str) -> u64 {
    let at = line.find(what).unwrap_or_else(|| panic!("no {what:?} in {line}"));
    line[..at].rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number before {what:?} in {line}"))
}

#[test]
fn threads_boot_like_linux() {
    // pthreads on seL4: a TCB per thread in the process's VSpace; mutexes, condition
    // variables, a barrier, __thread, join values and a detached thread.
    let Some((e, c)) = alone("threads", &[], &[]) else { return };
    assert_eq!(e.status, 3);
    let stats = stats_line(&c, "threads");
    assert!(stat(stats, " made,") >= 13, "{stats}");
    assert!(stat(stats, " blocked,") > 0 && stat(stats, " woken;") > 0, "{stats}");
}

#[test]
fn sleepers_and_static_pie_threads_share_one_image() {
    // sleeper's nanosleeps, timed waits and a sleeping thread are woken by the timer while
    // the other app's threads run; static-PIE threads check TLS after relocation, and
    // pingpong hands a token between two threads blocked in futex_wait.
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(sleeper) = app(tmp.path(), "sleeper", &[], &[]) else { return };
    let Some(pie) = c_app("threads", Link::StaticPie) else { return };
    let Some(threads) = image_of(tmp.path(), "threads-pie", "threads", &pie, &[], &[]) else { return };
    let Some(ping) = app(tmp.path(), "pingpong", &[], &[]) else { return };
    assert!(!sleeper.stdout.contains("FAILED"), "{}", sleeper.stdout);
    let c = boot(tmp.path(), &[&sleeper, &threads, &ping]);
    for e in [&sleeper, &threads, &ping] {
        assert!(c.has_in_order(&e.stdout), "{}'s output is not on the console in order:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(e.status), "{}: {:?}", e.name, c.reports());
    }
    assert_eq!(c.app_output().lines().count(), sleeper.stdout.lines().count() + threads.stdout.lines().count() + ping.stdout.lines().count(), "{}", c.text);
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 3 apps done: 3 exited")), "{:?}", c.reports());
    let stats = stats_line(&c, "pingpong");
    assert!(stat(stats, " blocked,") >= 1000, "the token should pass between blocked threads: {stats}");
}

/// Whether the Linux reference can run an aarch64 program its app execs (binfmt_misc
/// with a fixed interpreter; tests/tests/processes.rs registers one).
fn linux_runs_exec() -> bool {
    std::fs::read_dir("/proc/sys/fs/binfmt_misc").is_ok_and(|d| {
        d.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).any(|t| {
            t.starts_with("enabled")
                && t.lines().any(|l| l.starts_with("flags:") && l.contains('F'))
                && t.lines().any(|l| l == "magic 7f454c460201010000000000000000000200b700")
        })
    })
}

#[test]
fn fork_exec_wait_and_pipes_boot_like_linux() {
    // fork (the address space copied frame by frame), wait4/waitpid, kill, abort, a pipe
    // bigger than its buffer, execve of another program of the image (its svc rewritten
    // when loaded), vfork.
    let Some((e, c)) = alone_with("procs", |dir| {
        let procs = c_app("procs", Link::Static)?;
        let echoer = c_app("echoer", Link::Static)?;
        let files = [("/echoer", echoer.as_path())];
        if linux_runs_exec() {
            image_with(dir, "procs", "procs", &procs, &[], &[], &files, true)
        } else {
            // Without binfmt_misc the reference cannot exec /echoer: the emulator (which
            // tests/tests/processes.rs holds to Linux) is the reference then.
            println!("SKIP: no binfmt_misc entry for aarch64: seL4 is compared with the emulator only");
            let img = OciImage::new(&dir.join("procs-layout"), "procs");
            img.layer(|r| {
                populate(r, "procs", &procs);
                std::fs::copy(&echoer, r.join("echoer")).unwrap();
                std::fs::set_permissions(r.join("echoer"), std::fs::Permissions::from_mode(0o755)).unwrap();
            });
            img.config(&["--config.entrypoint", "/procs", "--config.env", "HELLO=WORLD"]);
            let emu = Command::new(selkie_bin()).args(["run", "--emulate", &img.reference()]).output().expect("selkie run --emulate");
            let stdout = String::from_utf8(emu.stdout).expect("test apps print text");
            Some(Expect { name: "procs".into(), image: img.reference(), stdout, status: shell_status(&emu.status) })
        }
    }) else {
        return;
    };
    assert_eq!(e.status, 5, "{}", e.stdout);
    for line in ["child 3: killed by signal 9 (SIGKILL)", "exec'd child: exited with 9", "vfork child: exited with 11"] {
        assert!(c.text.lines().any(|l| l == line), "missing {line:?}:\n{}", c.text);
    }
    let stats = stats_line(&c, "procs");
    assert!(stat(stats, " forks") >= 7 && stat(stats, " execs") >= 1, "{stats}");
}

#[test]
fn signal_handlers_boot_like_linux() {
    // Handlers with siginfo (their frames built from the thread's registers, FP/SIMD
    // zeroed: seL4 cannot read another thread's), an alternate stack, masks and sigpending,
    // SA_RESETHAND, SIGCHLD from forked children, a blocked read interrupted (EINTR) and
    // restarted (SA_RESTART) by a child's kill, then SIGTERM's default action.
    let Some((e, c)) = alone("signals", &[], &[]) else { return };
    assert_eq!(e.status, 128 + 15, "{}", e.stdout);
    for line in SIGNALS_EXPECTED {
        assert!(c.text.lines().any(|l| l == line), "missing {line:?}:\n{}", c.text);
    }
    assert!(c.reports().contains(&"[selkie] signals killed by signal 15"), "{:?}", c.reports());
}

#[test]
fn signals_reach_the_right_thread_on_sel4() {
    // tgkill to one thread, a process signal taken by the thread in sigsuspend, the mask
    // sigsuspend restores, sigpending of a thread-directed signal.
    let Some((e, c)) = alone("sigthreads", &[], &[]) else { return };
    assert_eq!(e.status, 3, "{}", e.stdout);
    assert_eq!(c.text.lines().filter(|l| !l.starts_with("[selkie]")).collect::<Vec<_>>(), SIGTHREADS_EXPECTED, "{}", c.text);
}

#[test]
fn a_program_reads_its_own_binary_on_sel4_as_the_image_has_it() {
    // The rootfs keeps the image's bytes: the svc words are there, the udfs are only in
    // the text store's code that is mapped for execution.
    let Some((e, c)) = alone("selfread", &["/selfread", "/proc/self/exe"], &[]) else { return };
    assert_eq!(e.status, 0, "{}", e.stdout);
    assert!(!c.text.contains(" 0 svc words") && c.text.matches("same: yes").count() == 2, "{}", c.text);
}

#[test]
fn mapping_a_big_file_does_not_copy_it_through_the_root_heap() {
    // A private mapping of a file is written into the app's frames straight from the
    // tree, a chunk at a time: a 12 MiB file maps, and the root server's heap never holds
    // it (it once held a whole copy, and a file bigger than the heap stopped the root
    // server, or got ENOMEM).
    if !ready() {
        return;
    }
    let Some(bin) = c_app("bigmap", Link::Static) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = OciImage::new(&tmp.path().join("bigmap-layout"), "bigmap");
    img.layer(|r| {
        populate(r, "bigmap", &bin);
        std::fs::write(r.join("big.bin"), vec![7u8; 12 << 20]).unwrap();
    });
    img.config(&["--config.entrypoint", "/bigmap", "--config.cmd", "/big.bin", "--config.cmd", "/foo.txt"]);
    let c = boot(tmp.path(), &[&Expect { name: "bigmap".into(), image: img.reference(), stdout: String::new(), status: 0 }]);
    assert!(c.has_in_order("/big.bin: mmap of 12582912 bytes: ok, first byte 7\n/foo.txt: mmap of 4 bytes: ok, first byte 102"), "{}", c.text);
    assert_eq!(c.status("bigmap"), Some(0), "{:?}", c.reports());
    let stats = c.reports().into_iter().find(|l| l.starts_with("[selkie] stats bigmap:")).unwrap_or_else(|| panic!("{:?}", c.reports()));
    let peak: usize = stats.split("(peak ").nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{stats}"));
    assert!(peak < 2 << 20, "the root heap held {peak} bytes for the app: {stats}");
}

/// One app alone, then a crashing app next to two healthy ones and sleeper (whose sleeps end
/// only by the timer's interrupt), on `platform` with the kernel installed for `cores` cores;
/// one SKIP line when that kernel is not installed. Each kernel configuration builds its own
/// root server: a 4-core test took 82-84 s with that build and 4-5 s without (2-CPU host, idle).
/// The QEMU scripts boot 4-core kernels under -icount (without it malloc_stress did not end
/// in 150 s) and give the boards' GICs their security extensions (without them raspi4b and
/// imx8mp-evk got no interrupt: the 4-core boots hung, issue 10); they say why.
fn same_apps_on(platform: &'static str, cores: u32) {
    let t = sel4::Target::installed(platform, cores);
    if !t.prefix.exists() {
        selkie_tests::tools::skip(&format!("{platform} on {cores} cores: no seL4 installed at {}", t.prefix.display()));
        return;
    }
    if skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc"]) || !t.available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (Some(h), Some(w), Some(bad), Some(s)) = (
        app(tmp.path(), "hello", &["hello_world", "test"], &[]),
        app(tmp.path(), "walker", &["/data"], &[]),
        app(tmp.path(), "nullderef", &[], &[]),
        app(tmp.path(), "sleeper", &[], &[]),
    ) else {
        return;
    };
    assert!(!s.stdout.contains("FAILED"), "{}", s.stdout);
    let c = t.pack_and_boot(&[h.image.clone()], BOOT_TIMEOUT);
    assert_eq!(c.app_output(), h.stdout, "{platform}/{cores}: seL4 console differs from Linux; reports: {:?}", c.reports());
    assert_eq!(c.status("hello"), Some(h.status), "{platform}/{cores}: {:?}", c.reports());

    let c = t.pack_and_boot(&[bad.image.clone(), h.image.clone(), w.image.clone(), s.image.clone()], BOOT_TIMEOUT);
    assert_eq!(c.status("nullderef"), Some(139), "{platform}/{cores}: {:?}", c.reports());
    for e in [&h, &w, &s] {
        assert!(c.has_in_order(&e.stdout), "{platform}/{cores}: {}'s output is not on the console in order:\n{}", e.name, c.text);
        assert_eq!(c.status(&e.name), Some(e.status), "{platform}/{cores}: {}: {:?}", e.name, c.reports());
    }
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 4 apps done: 3 exited, 1 killed")), "{platform}/{cores}: {:?}", c.reports());
}

#[test]
fn same_apps_on_qemu_arm_virt_4_cores() {
    same_apps_on("qemu-arm-virt", 4);
}

#[test]
fn same_apps_on_raspi4b() {
    same_apps_on("raspi4b", 1);
}

#[test]
fn same_apps_on_raspi4b_4_cores() {
    same_apps_on("raspi4b", 4);
}

#[test]
fn same_apps_on_imx8mp_evk() {
    same_apps_on("imx8mp-evk", 1);
}

#[test]
fn same_apps_on_imx8mp_evk_4_cores() {
    same_apps_on("imx8mp-evk", 4);
}

/// `selkie pack --platform raspi4b --sdcard`: the card is read back with other tools than the
/// ones that wrote it (fsck.fat checks the FAT32 partition, mtools copies files out of it), and
/// the kernel8.img taken off the card boots in QEMU's raspi4b the way the Pi firmware starts it.
/// The firmware stage itself (start4.elf reading config.txt) cannot run in QEMU: untested here.
#[test]
fn an_sd_card_for_the_pi_boots_its_kernel8_img() {
    let t = sel4::Target::installed("raspi4b", 1);
    if !t.prefix.exists() {
        selkie_tests::tools::skip(&format!("raspi4b SD card: no seL4 installed at {}", t.prefix.display()));
        return;
    }
    if skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc", "mcopy", "fsck.fat", "apt-get", "dpkg-deb"]) || !t.available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(h) = app(tmp.path(), "hello", &["hello_world", "test"], &[]) else { return };
    let card = tmp.path().join("sd.img");
    // Firmware from Debian's packages, fetched into selkie's cache on first use.
    t.pack_with(&[h.image.clone()], &["--sdcard"], &card);

    let raw = std::fs::read(&card).unwrap();
    assert_eq!(&raw[510..512], &[0x55, 0xaa], "no MBR signature");
    assert_eq!(raw[446 + 4], 0x0c, "the first partition is not FAT32 (LBA)");
    let start = u32::from_le_bytes(raw[454..458].try_into().unwrap()) as usize * 512;
    let len = u32::from_le_bytes(raw[458..462].try_into().unwrap()) as usize * 512;
    assert_eq!(start + len, raw.len(), "the partition does not end where the image does");
    let part = tmp.path().join("boot.part");
    std::fs::write(&part, &raw[start..start + len]).unwrap();
    let fsck = Command::new("fsck.fat").arg("-n").arg(&part).output().unwrap();
    assert!(fsck.status.success(), "fsck.fat -n found problems:\n{}{}", String::from_utf8_lossy(&fsck.stdout), String::from_utf8_lossy(&fsck.stderr));

    let list = Command::new("mdir").env("MTOOLS_SKIP_CHECK", "1").args(["-b", "-i"]).arg(&part).arg("::").output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_lowercase();
    for f in ["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "config.txt", "kernel8.img"] {
        assert!(list.contains(&format!("::/{f}")), "{f} is not on the boot partition: {list}");
    }
    let get = |name: &str| -> Vec<u8> {
        let to = tmp.path().join(format!("out-{name}"));
        let o = Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-n", "-i"]).arg(&part).arg(format!("::{name}")).arg(&to).output().unwrap();
        assert!(o.status.success(), "mcopy ::{name}: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&to).unwrap()
    };
    let config = String::from_utf8(get("config.txt")).unwrap();
    for line in ["arm_64bit=1", "kernel=kernel8.img", "enable_uart=1"] {
        assert!(config.lines().any(|l| l == line), "config.txt lacks {line}:\n{config}");
    }
    assert!(get("start4.elf").len() > 1 << 20, "start4.elf is not the GPU firmware");
    let dtb = get("bcm2711-rpi-4-b.dtb");
    assert_eq!(&dtb[..4], &[0xd0, 0x0d, 0xfe, 0xed], "the device tree is not a DTB");

    let kernel8 = tmp.path().join("kernel8.img");
    std::fs::write(&kernel8, get("kernel8.img")).unwrap();
    let c = t.boot(&kernel8, BOOT_TIMEOUT);
    assert!(c.finished, "no final line:\n{}", c.text);
    assert_eq!(c.app_output(), h.stdout, "the card's kernel8.img: seL4 console differs from Linux; reports: {:?}", c.reports());
    assert_eq!(c.status("hello"), Some(h.status), "{:?}", c.reports());
}

/// The loader checks every piece against the board's RAM before it copies or enters
/// anything: an image whose header (written by `selkie pack`, at byte 64 of the loader)
/// says the RAM is one page stops with a line naming the kernel and its range, and
/// nothing after it runs (seL4 never prints).
#[test]
fn the_loader_names_a_piece_that_does_not_fit_in_ram() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(h) = app(tmp.path(), "hello", &["hello_world", "test"], &[]) else { return };
    let image = tmp.path().join("image.elf");
    sel4::pack(&[h.image.clone()], &image);
    let mut bytes = std::fs::read(&image).unwrap();
    let at = bytes
        .windows(16)
        .position(|w| &w[..8] == b"SELKIELD" && w[8..] == 1u64.to_le_bytes())
        .expect("the loader header (magic, version 1)");
    // ram_count at byte 112 of the header, then ram[0] = [start, end).
    let word = |b: &[u8], o: usize| u64::from_le_bytes(b[at + o..at + o + 8].try_into().unwrap());
    assert_eq!(word(&bytes, 112), 1, "one RAM range on qemu-arm-virt");
    let start = word(&bytes, 120);
    bytes[at + 128..at + 136].copy_from_slice(&(start + 4096).to_le_bytes());
    let small = tmp.path().join("small-ram.elf");
    std::fs::write(&small, &bytes).unwrap();
    // The loader then waits for ever: QEMU's script stops it at its timeout.
    let o = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../qemu/qemu-arm-virt"))
        .arg(&small)
        .env("SELKIE_QEMU_TIMEOUT", "15")
        .env("SELKIE_QEMU_CORES", "1")
        .env("SEL4_PREFIX", sel4::prefix())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("selkie loader: the kernel at ") && l.contains(" is outside RAM (")), "{text}");
    assert!(text.contains("selkie loader: ERROR: the image does not fit this board"), "{text}");
    assert!(!text.contains("Booting all finished") && !text.contains("hello_world"), "{text}");
}
