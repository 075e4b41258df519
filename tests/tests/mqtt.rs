//! The seed's next step, MQTT publish/subscribe: Debian's arm64 mosquitto broker and its
//! mosquitto_pub and mosquitto_sub clients (dynamic glibc binaries, unmodified, from
//! Debian's packages) as three services of one compose file. The publisher sends one
//! message on `selkie/demo`, retained, retrying (a dash loop with busybox's sleep) until
//! the broker listens, as a container would. The subscriber waits for one message, and
//! starts only once the publisher has exited with status 0 (`depends_on` with `condition:
//! service_completed_successfully`), so both end on their own. The subscriber must print
//! what it prints on Linux, where the same image runs the three as processes of one
//! script (qemu-aarch64-static in a chroot, `broker` in the image's /etc/hosts, which
//! selkie replaces with its own for apps on a network).

use selkie_tests::apps::binfmt_aarch64;
use selkie_tests::compare::{Built, Case};
use selkie_tests::debian::debs;
use selkie_tests::sel4;
use selkie_tests::tools::{selkie_bin, service_lines, skip_without};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// mosquitto, its clients and every library they load, dash and busybox.
const PACKAGES: [&str; 25] = [
    "libc6",
    "dash",
    "busybox",
    "mosquitto",
    "mosquitto-clients",
    "libmosquitto1",
    "libcjson1",
    "libssl3",
    "libwrap0",
    "libnsl2",
    "libtirpc3",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libcom-err2",
    "libkrb5support0",
    "libkeyutils1",
    "libdlt2",
    "libsystemd0",
    "libcap2",
    "libgcrypt20",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "libgpg-error0",
];

const MESSAGE: &str = "hello from mosquitto_pub";

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "apt-get", "dpkg-deb"])
}

/// The image (entrypoint /bin/sh, Cmd /ref.sh: the Linux reference's script) and what
/// the reference printed.
fn image() -> Option<Built> {
    // The reference's broker listens on the host's port 1883: one reference at a time.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let debs = debs(&PACKAGES)?;
    // At most 150 tries, 0.2 s apart.
    let retry = |cmd: &str| format!("#!/bin/sh\nn=0\nuntil {cmd}; do\n  n=$((n + 1))\n  [ $n -lt 150 ] || exit 1\n  sleep 0.2\ndone\n");
    let sub = retry("mosquitto_sub -h broker -t selkie/demo -C 1");
    let publish = retry(&format!("mosquitto_pub -h broker -t selkie/demo -r -m '{MESSAGE}'"));
    let reference = "#!/bin/sh\n/usr/sbin/mosquitto -c /mq.conf &\nb=$!\n/pub.sh && /sub.sh\nkill $b\nwait $b\necho reference done\n";
    let built = Case::debian("mqtt", "/bin/sh", &debs)
        .write("/mq.conf", b"listener 1883\nallow_anonymous true\nlog_dest stderr\n", 0o644)
        .write("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nmosquitto:x:100:101::/var/lib/mosquitto:/usr/sbin/nologin\n", 0o644)
        .write("/etc/group", b"root:x:0:\nmosquitto:x:101:\n", 0o644)
        .write("/etc/hosts", b"127.0.0.1\tlocalhost broker\n", 0o644)
        // dash opens /dev/null for a background job's stdin; the reference's chroot has no
        // devices (selkie has its own /dev/null).
        .write("/dev/null", b"", 0o666)
        .write("/sub.sh", sub.as_bytes(), 0o755)
        .write("/pub.sh", publish.as_bytes(), 0o755)
        .write("/ref.sh", reference.as_bytes(), 0o755)
        .symlink("/bin/sleep", "busybox")
        .cmd(&["/ref.sh"])
        .timeout(Duration::from_secs(300))
        .build()?;
    assert_eq!(built.want.stdout, format!("{MESSAGE}\nreference done\n"), "the reference");
    Some(built)
}

/// The compose file: broker, publisher, then the subscriber once the publisher has
/// completed, on one network.
fn compose(dir: &Path, image: &str) -> PathBuf {
    let file = dir.join("compose.yaml");
    let text = format!(
        "name: mqtt\nservices:\n  broker:\n    image: {image}\n    entrypoint: [\"/usr/sbin/mosquitto\", \"-c\", \"/mq.conf\"]\n    networks: [iot]\n  sub:\n    image: {image}\n    command: [\"/sub.sh\"]\n    depends_on:\n      broker:\n        condition: service_started\n      pub:\n        condition: service_completed_successfully\n    networks: [iot]\n  pub:\n    image: {image}\n    command: [\"/pub.sh\"]\n    depends_on: [broker]\n    networks: [iot]\nnetworks:\n  iot:\n    x-msg-server: \"mosquitto\"\n"
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn mosquitto_pub_and_sub_through_the_broker_under_compose_up_emulate() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(built) = image() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = compose(tmp.path(), &built.image.reference());
    let o = Command::new(selkie_bin())
        .args(["compose", "up", "--emulate", "--exit-code-from", "sub", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "compose up:\n{out}\n{err}");
    assert_eq!(service_lines(&out, "sub"), format!("{MESSAGE}\n"), "the subscriber:\n{out}\n{err}");
    let at = |want: &dyn Fn(&str) -> bool| out.lines().position(want).unwrap_or_else(|| panic!("{out}\n{err}"));
    // The subscriber ran only after the publisher had exited.
    assert!(at(&|l| l == "pub exited with code 0") < at(&|l| l.starts_with("sub ")), "{out}\n{err}");
    at(&|l| l == "sub exited with code 0");
}

#[test]
fn mosquitto_pub_and_sub_through_the_broker_on_sel4() {
    if !tools() || !binfmt_aarch64() || !sel4::available() {
        return;
    }
    let Some(built) = image() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = compose(tmp.path(), &built.image.reference());
    let out = tmp.path().join("image.elf");
    sel4::compose_pack(&file, &["--exit-code-from", "sub"], &out);
    let c = sel4::boot(&out, 600);
    // The root server's reports (stats per app), shown with --nocapture.
    println!("{}", c.reports().join("\n"));
    assert!(c.finished, "no final line within 600 s:\n{}", c.text);
    assert!(c.text.lines().any(|l| l == MESSAGE), "the subscriber did not print the message:\n{}", c.text);
    assert_eq!(c.status("sub"), Some(0), "{:?}", c.reports());
    assert_eq!(c.status("pub"), Some(0), "{:?}", c.reports());
    assert!(c.reports().contains(&"[selkie] sub starts: pub exited with status 0"), "{:?}", c.reports());
    // The broker runs until the image ends with the subscriber.
    assert!(c.reports().contains(&"[selkie] broker stopped: the image ends with sub"), "{:?}", c.reports());
}
