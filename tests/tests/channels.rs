//! Channels (the manifest's `publishes` and `consumes`, musl_shim::channel) between the
//! services of one compose file: tests/apps/chan.c as a consumer, a publisher and an app
//! that names no channel, under `selkie compose up --emulate` and packed into one seL4
//! image; `selkie compose inspect` shows the wiring. Channels have no Linux counterpart, so
//! the expected lines are the channel's contract (see musl-shim/src/channel.rs).

use selkie_tests::apps::{c_app, Link};
use selkie_tests::sel4;
use selkie_tests::tools::{selkie_bin, service_lines, skip_without};

/// The compose file: `sub` consumes hello_protocol and publishes acks, `pub` the other
/// way round, `none` names no channel. The labels are the seed's koskit ones for `pub`.
fn compose(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if skip_without(&["umoci"]) {
        return None;
    }
    let bin = c_app("chan", Link::Static)?;
    let image = selkie_tests::oci::OciImage::new(&dir.join("chan"), "chan");
    image.layer(|r| {
        std::fs::copy(&bin, r.join("chan")).unwrap();
    });
    image.config(&["--config.entrypoint", "/chan"]);
    let r = image.reference();
    let compose = dir.join("compose.yaml");
    std::fs::write(
        &compose,
        format!(
            "name: channels\nservices:\n  sub:\n    image: {r}\n    command: [sub]\n    labels:\n      org.selkie.app.consumes: hello_protocol\n      org.selkie.app.publishes: acks\n  pub:\n    image: {r}\n    command: [pub]\n    depends_on: [sub]\n    labels:\n      com.koskit.app.spec.publishes: hello_protocol\n      com.koskit.app.spec.consumes: acks\n  none:\n    image: {r}\n    command: [none]\n"
        ),
    )
    .unwrap();
    Some(compose)
}

/// What every runner must print, app by app.
fn expected() -> (String, String, String) {
    let mut sub = String::from("sub: open hello_protocol for writing: Permission denied\nsub: ring SELKCHAN, 0 messages at first\n");
    for i in 0..20 {
        sub.push_str(&format!("sub: got hello_protocol #{i}\n"));
    }
    sub.push_str("sub: 20 messages, then the publisher was gone\n");
    let publ = "pub: the consumer said ready\npub: a message of 1001 bytes: Message too large\npub: sent 20 messages\n".to_string();
    let none = "none: open hello_protocol: No such file or directory\n".to_string();
    (sub, publ, none)
}

#[test]
fn compose_inspect_shows_who_publishes_and_consumes_each_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(compose) = compose(tmp.path()) else { return };
    let o = std::process::Command::new(selkie_bin()).args(["compose", "-f"]).arg(&compose).args(["inspect", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ch = r["channels"].as_array().unwrap();
    assert_eq!(ch.len(), 2, "{r}");
    let named = |n: &str| ch.iter().find(|c| c["name"] == n).unwrap_or_else(|| panic!("no {n} in {r}"));
    assert_eq!(named("hello_protocol")["publishers"], serde_json::json!(["pub"]));
    assert_eq!(named("hello_protocol")["consumers"], serde_json::json!(["sub"]));
    assert_eq!(named("acks")["publishers"], serde_json::json!(["sub"]));
    assert_eq!(named("acks")["consumers"], serde_json::json!(["pub"]));
    assert_ne!(named("acks")["minor"], named("hello_protocol")["minor"]);
    let none = r["services"].as_array().unwrap().iter().find(|v| v["name"] == "none").unwrap();
    assert_eq!((&none["publishes"], &none["consumes"]), (&serde_json::json!([]), &serde_json::json!([])), "{r}");
    let o = std::process::Command::new(selkie_bin()).args(["compose", "-f"]).arg(&compose).arg("inspect").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.lines().any(|l| l.starts_with("hello_protocol") && l.contains(" pub ") && l.contains(" sub ") && l.contains("/dev/selkie/channels/hello_protocol (240:")), "{text}");
}

#[test]
fn messages_reach_the_consumer_emulated() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(compose) = compose(tmp.path()) else { return };
    let o = std::process::Command::new(selkie_bin()).args(["compose", "up", "--emulate", "-f"]).arg(&compose).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let (sub, publ, none) = expected();
    let got = service_lines(&out, "sub");
    assert!(got.starts_with(&sub), "sub:\n{got}\nwanted first:\n{sub}");
    // The emulator's mmap of a channel is a copy of the ring as it was (before any message).
    assert!(got.ends_with("sub: the mapping counts 0 messages\n"), "{got}");
    assert_eq!(service_lines(&out, "pub"), publ);
    assert_eq!(service_lines(&out, "none"), none);
    for s in ["sub", "pub", "none"] {
        assert!(out.lines().any(|l| l == format!("{s} exited with code 0")), "{s}:\n{out}");
    }
}

#[test]
fn messages_reach_the_consumer_on_sel4_through_a_shared_ring() {
    if !sel4::available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(compose) = compose(tmp.path()) else { return };
    let image = tmp.path().join("image.elf");
    sel4::compose_pack(&compose, &[], &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    let (sub, publ, none) = expected();
    // On seL4 the consumer's mapping is the ring itself: it shows what the publisher sent.
    let sub = format!("{sub}sub: the mapping counts 20 messages\nsub: the mapping's last message is what read returned\n");
    for (name, lines) in [("sub", &sub), ("pub", &publ), ("none", &none)] {
        assert!(c.has_in_order(lines), "{name}'s lines differ:\n{}", c.text);
        assert_eq!(c.status(name), Some(0), "{:?}", c.reports());
    }
}
