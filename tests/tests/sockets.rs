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

/// The seed's compose pair (tests/apps/netpeer.c) on Linux: the server and the client as
/// two processes on the host's loopback; their stdouts.
fn pair_on_linux(bin: &std::path::Path) -> Option<(String, String)> {
    let port = (40000 + std::process::id() % 20000).to_string();
    let server = std::process::Command::new("qemu-aarch64-static")
        .arg(bin)
        .args(["server", &port])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let client = std::process::Command::new("qemu-aarch64-static").arg(bin).args(["client", &port, "localhost"]).output().ok()?;
    let out = server.wait_with_output().ok()?;
    assert!(client.status.success() && out.status.success(), "the pair failed on Linux: {client:?} {out:?}");
    Some((String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&client.stdout).into_owned()))
}

#[test]
fn two_apps_talk_by_service_name_on_sel4_like_on_linux() {
    // One image, two apps on its network: the client resolves "server" through the
    // /etc/hosts selkie gives every app, retries until the server listens, and makes two
    // sessions one after the other.
    if !tools() || !sel4::available() {
        return;
    }
    let Some(bin) = c_app("netpeer", Link::Static) else { return };
    let Some((server_out, client_out)) = pair_on_linux(&bin) else { return };
    assert!(server_out.contains("session 2 got hello 2") && client_out.contains("ack 2: hello 2"), "{server_out}{client_out}");
    let tmp = tempfile::tempdir().unwrap();
    let mut refs = Vec::new();
    for (name, cmd) in [("server", ["server", "5050", ""]), ("client", ["client", "5050", "server"])] {
        let image = selkie_tests::oci::OciImage::new(&tmp.path().join(name), name);
        image.layer(|r| {
            std::fs::copy(&bin, r.join("netpeer")).unwrap();
            std::fs::create_dir_all(r.join("etc")).unwrap();
        });
        let mut cfg = vec!["--config.entrypoint", "/netpeer", "--config.label"];
        let label = format!("org.selkie.app.name={name}");
        cfg.push(&label);
        for c in cmd.iter().filter(|c| !c.is_empty()) {
            cfg.extend(["--config.cmd", c]);
        }
        image.config(&cfg);
        refs.push(image.reference());
    }
    let image = tmp.path().join("image.elf");
    sel4::pack(&refs, &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    assert!(c.has_in_order(&server_out), "the server's lines differ from Linux:\n{}", c.text);
    assert!(c.has_in_order(&client_out), "the client's lines differ from Linux:\n{}", c.text);
    assert_eq!(c.status("server"), Some(0), "{:?}", c.reports());
    assert_eq!(c.status("client"), Some(0), "{:?}", c.reports());
}
