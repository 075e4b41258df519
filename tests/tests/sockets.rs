//! Sockets between the processes of an app (tests/apps/sockets.c): a socketpair, AF_UNIX
//! stream and datagram sockets, TCP and UDP over loopback, poll, non-blocking calls and a
//! refused connect. Its output and status under `selkie run --emulate` and booted on seL4
//! must be Linux's (qemu-aarch64-static on the host's own loopback).

use selkie_tests::apps::{c_app, Link};
use selkie_tests::compare::Case;
use selkie_tests::sel4;
use selkie_tests::tools::skip_without;

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc"])
}

/// Every check the app makes passed on the reference.
fn all_ok(out: &str) {
    assert!(out.lines().filter(|l| l.ends_with(": ok")).count() >= 20, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn sockets_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("sockets", Link::Static) else { return };
    let Some(o) = Case::new("sockets", &bin).compare() else { return };
    assert_eq!(o.status, 0, "{}", o.stdout);
    all_ok(&o.stdout);
}

#[test]
fn sockets_boot_on_sel4_like_linux() {
    if !tools() || !sel4::available() {
        return;
    }
    let Some(bin) = c_app("sockets", Link::Static) else { return };
    let Some(built) = Case::new("sockets", &bin).build() else { return };
    all_ok(&built.want.stdout);
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.elf");
    sel4::pack(&[built.image.reference()], &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    assert!(c.has_in_order(&built.want.stdout), "the console differs from Linux:\n{}", c.text);
    assert_eq!(c.status("sockets"), Some(built.want.status), "{:?}", c.reports());
}
