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
