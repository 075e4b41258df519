//! The selkie SDK's syscall path: apps built with sdk/build-toolchain (Debian's musl
//! patched to put each syscall's number in x7 as well as x8) must behave exactly like the
//! same sources built with Debian's musl: on Linux (qemu-aarch64-static), under `selkie run
//! --emulate`, and booted on seL4, where each of their syscalls takes 2 kernel entries
//! (the UnknownSyscall fault and the root server's ReplyRecv) instead of the rewrite
//! path's 4. And the benchmark: getppid by both paths in one boot, as ratios to the root
//! server's bare seL4 IPC round trip.

use selkie_tests::apps::{binfmt_aarch64, c_app, Link};
use selkie_tests::compare::Case;
use selkie_tests::sel4;
use selkie_tests::tools::skip_without;

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc", "aarch64-linux-gnu-readelf"])
}

/// The apps compared, each with the files its image needs besides itself.
const APPS: &[&str] = &["hello", "threads", "signals", "sockets", "procs"];

/// NAME's case with `link`: procs execs /echoer, built the other way round (an SDK program
/// execs a Debian-musl one, and the reverse).
fn case(name: &str, link: Link) -> Option<Case> {
    let bin = c_app(name, link)?;
    let mut c = Case::new(name, &bin);
    if name == "procs" {
        let other = if link == Link::Sdk { Link::Static } else { Link::Sdk };
        c = c.file("/echoer", &c_app("echoer", other)?);
    }
    Some(c)
}

/// The "selkie" note as binutils shows it (type 1, version 2: seL4_Call for short syscalls).
fn has_sdk_note(bin: &std::path::Path) -> bool {
    let o = std::process::Command::new("aarch64-linux-gnu-readelf").arg("-n").arg(bin).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines().any(|l| l.trim_start().starts_with("selkie ")) && s.contains("description data: 02 00 00 00")
}

#[test]
fn sdk_built_apps_carry_the_selkie_note_and_debian_builds_do_not() {
    if !tools() {
        return;
    }
    let (Some(sdk), Some(plain)) = (c_app("hello", Link::Sdk), c_app("hello", Link::Static)) else { return };
    assert!(has_sdk_note(&sdk), "{} has no selkie note", sdk.display());
    assert!(!has_sdk_note(&plain), "{} (Debian's musl) has a selkie note", plain.display());
    // Whether every svc really has its number in x7 is shown by running: the emulator
    // and the root server read the number of an SDK build's syscall from x7 alone.
}

#[test]
fn sdk_built_apps_match_debian_musl_on_linux_and_emulated() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    for name in APPS {
        let (Some(sdk), Some(plain)) = (case(name, Link::Sdk), case(name, Link::Static)) else { return };
        let Some(want) = plain.build().map(|b| b.want) else { return };
        // The SDK build under selkie's emulator prints what it prints on Linux, which is
        // what the Debian-musl build prints on Linux.
        let Some(got) = sdk.compare() else { return };
        assert_eq!(got.stdout, want.stdout, "{name}: the SDK build's output differs from Debian musl's on Linux");
        assert_eq!(got.status, want.status, "{name}: the SDK build's status differs from Debian musl's on Linux");
    }
}

/// The `bench: APP getppid N ns` figure on the console.
fn bench_ns(c: &sel4::Console, app: &str) -> f64 {
    c.text
        .lines()
        .find_map(|l| l.split(&format!("bench: {app} getppid ")).nth(1))
        .and_then(|r| r.split(" ns").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bench line for {app}:\n{}", c.text))
}

/// `stats APP: N syscalls, M kernel entries for the R that returned at once` → (M, R).
fn entries(text: &str, app: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("[selkie] stats {app}: ")))
        .unwrap_or_else(|| panic!("no stats line for {app}:\n{text}"));
    let m: u64 = line.split(" syscalls, ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    let r: u64 = line.split("kernel entries for the ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    (m, r)
}

#[test]
fn sdk_built_apps_boot_on_sel4_like_debian_musl() {
    if !tools() || !binfmt_aarch64() || !sel4::available() {
        return;
    }
    // One image each: signals and procs time their children with usleep, and sockets
    // binds fixed loopback ports.
    for name in APPS {
        let (Some(sdk), Some(plain)) = (case(name, Link::Sdk), case(name, Link::Static)) else { return };
        let Some(want) = plain.build().map(|b| b.want) else { return };
        let Some(built) = sdk.build() else { return };
        assert_eq!(built.want.stdout, want.stdout, "{name}: the SDK build differs from Debian musl's on Linux");
        let c = sel4::pack_and_boot(&[built.image.reference()], 300);
        assert_eq!(c.app_output(), want.stdout, "{name}: the console differs from Debian musl on Linux; {:?}", c.reports());
        assert_eq!(c.status(name), Some(want.status), "{name}: {:?}", c.reports());
        // Its syscalls came as UnknownSyscall faults: no trap was rewritten, none found
        // at run time, and none was taken for an seL4 call.
        let (m, r) = entries(&c.text, name);
        println!("{name} (SDK) on seL4: {m} kernel entries for {r} syscalls that returned at once");
        assert!(!c.text.contains("unrewritten svc"), "{name}: {:?}", c.reports());
    }
}

#[test]
fn getppid_by_the_rewrite_path_and_the_sdk_path_against_a_bare_ipc_round_trip() {
    if skip_without(&["umoci"]) || !sel4::available() {
        return;
    }
    let (Some(plain), Some(sdk)) = (c_app("sysbench", Link::Static), c_app("sysbench", Link::Sdk)) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let image = selkie_tests::oci::OciImage::new(&tmp.path().join("sysbench"), "sysbench");
    image.layer(|r| {
        std::fs::copy(&plain, r.join("sysbench")).unwrap();
        std::fs::copy(&sdk, r.join("sysbench-sdk")).unwrap();
    });
    image.config(&["--config.entrypoint", "/sysbench"]);
    let r = image.reference();
    const ROUNDS: u32 = 9;
    const CALLS: u32 = 4000;
    // The two take turns, round by round, through two channels: they never interleave
    // and both see the same host load.
    let compose = tmp.path().join("compose.yaml");
    std::fs::write(
        &compose,
        format!(
            "name: sysbench\nservices:\n  sdk:\n    image: {r}\n    entrypoint: [/sysbench-sdk]\n    command: [--first, --signal, go, --wait, back, \"{ROUNDS}\", \"{CALLS}\", sdk]\n    labels:\n      org.selkie.app.publishes: go\n      org.selkie.app.consumes: back\n  rewrite:\n    image: {r}\n    command: [--wait, go, --signal, back, \"{ROUNDS}\", \"{CALLS}\", rewrite]\n    labels:\n      org.selkie.app.publishes: back\n      org.selkie.app.consumes: go\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("image.elf");
    sel4::compose_pack(&compose, &[], &out);
    let c = sel4::boot(&out, 600);
    assert!(c.finished, "no final line within 600 s:\n{}", c.text);
    for app in ["sdk", "rewrite"] {
        assert!(
            c.text.lines().any(|l| l == format!("{app}: {ROUNDS} rounds of {CALLS} getppid calls, all answered alike")),
            "{app}:\n{}",
            c.text
        );
        assert_eq!(c.status(app), Some(0), "{:?}", c.reports());
    }
    for l in c.text.lines().filter(|l| l.starts_with("[selkie] stats root:") || l.starts_with("bench:")) {
        println!("seL4: {l}");
    }
    let bare_ns = c.bare_ipc_ns();
    let across_ns = c.bare_ipc_across_ns();
    let (sdk_ns, rewrite_ns) = (bench_ns(&c, "sdk"), bench_ns(&c, "rewrite"));
    let per = |app: &str| {
        let (m, r) = entries(&c.text, app);
        m as f64 / r as f64
    };
    let (sdk_entries, rewrite_entries) = (per("sdk"), per("rewrite"));
    println!(
        "seL4: bench: getppid by the SDK path {sdk_ns:.0} ns ({:.2}x the bare seL4 IPC round trip, {:.2}x the one between address spaces; \
         {sdk_entries:.2} kernel entries per syscall), by the rewrite path {rewrite_ns:.0} ns ({:.2}x, {:.2}x; {rewrite_entries:.2} entries); \
         bare round trips {bare_ns:.0} ns and {across_ns:.0} ns; rewrite/SDK {:.2}x",
        sdk_ns / bare_ns,
        sdk_ns / across_ns,
        rewrite_ns / bare_ns,
        rewrite_ns / across_ns,
        rewrite_ns / sdk_ns
    );
    // What can be counted is checked: the SDK path's syscalls take two kernel entries,
    // the rewrite path's four (console writes add a few).
    assert!((2.0..2.05).contains(&sdk_entries), "SDK path: {sdk_entries} kernel entries per syscall");
    assert!((4.0..4.1).contains(&rewrite_entries), "rewrite path: {rewrite_entries} kernel entries per syscall");

    // The same image again with QEMU's clock counting guest instructions (-icount shift=0):
    // the figures are then instructions per call, the same in every run whatever the host's
    // load (under TCG, wall time also counts QEMU's own costs, such as refilling its TLB
    // after every switch of address space).
    let c = sel4::target().boot_with(&out, 900, &[("SELKIE_QEMU_ICOUNT", "0")]);
    assert!(c.finished, "no final line within 900 s (icount):\n{}", c.text);
    let bare = c.bare_ipc_ns();
    let (sdk, rewrite) = (bench_ns(&c, "sdk"), bench_ns(&c, "rewrite"));
    println!(
        "seL4: bench (guest instructions, -icount): getppid by the SDK path {sdk:.0} ({:.2}x the bare seL4 IPC round trip), \
         by the rewrite path {rewrite:.0} ({:.2}x); bare round trip {bare:.0}",
        sdk / bare,
        rewrite / bare
    );
    assert!(sdk < rewrite, "the SDK path ({sdk} instructions) is not cheaper than the rewrite path ({rewrite})");
}
