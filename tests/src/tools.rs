//! Finding external tools, the workspace, and the `selkie` binary; skipping with one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().map(|s| s.success()).unwrap_or(false)
}

/// Prints one line saying why a test is skipped, when a tool is missing; returns true then.
pub fn skip_without(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return false;
    }
    skip(&format!("{} not installed (make test installs it)", missing.join(", ")));
    true
}

/// Says in one line why a test is skipped. It writes to stderr directly, past the test
/// harness's capture, so the line shows in every run (and .ci/run counts it).
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// The `selkie` binary of this build profile, built on first use if missing.
pub fn selkie_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Test executables live in target/<profile>/deps.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let bin = profile_dir.join("selkie");
        let release = profile_dir.file_name().map(|n| n == "release").unwrap_or(false);
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "selkie", "--bin", "selkie"]).current_dir(workspace());
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build selkie");
        assert!(st.success(), "building selkie failed");
        bin
    })
    .clone()
}

/// Runs a command and panics with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `selkie ARGS`, returning (success, stdout, stderr).
pub fn selkie(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(selkie_bin()).args(args).output().expect("running selkie");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What [`output_within`] saw: the command's output, and whether it was killed at the
/// deadline.
pub struct Timed {
    pub output: Output,
    pub timed_out: bool,
}

/// Runs `cmd` in a process group of its own, collecting stdout and stderr, for at most
/// `limit`: past it, the whole group is killed (children an app forked included) and
/// `timed_out` is set. The output is read until every writer is gone, also after the
/// command itself exited, but not past the deadline.
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Timed {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::time::Instant;
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let pid = child.id();
    let reader = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            let _ = tx.send(v);
        });
        rx
    };
    let out_rx = reader(Box::new(child.stdout.take().unwrap()));
    let err_rx = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let kill_group = || {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
    };
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the command") {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group();
            break child.wait().expect("waiting for the killed command");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        let left = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(100));
        match rx.recv_timeout(left) {
            Ok(v) => v,
            Err(_) => {
                // Something the command left behind still holds the pipe open.
                timed_out = true;
                kill_group();
                rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap_or_default()
            }
        }
    };
    let stdout = collect(out_rx);
    let stderr = collect(err_rx);
    Timed { output: Output { status, stdout, stderr }, timed_out }
}

/// The lines of `out` (`selkie compose up`'s stdout) that service `name` printed, without
/// their `NAME | ` prefix, each ending in a newline.
pub fn service_lines(out: &str, name: &str) -> String {
    let mut s = String::new();
    for l in out.lines() {
        if let Some((who, rest)) = l.split_once(" | ") {
            if who.trim_end() == name {
                s.push_str(rest);
                s.push('\n');
            }
        }
    }
    s
}
