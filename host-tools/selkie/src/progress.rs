//! Progress bars on stderr, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` units with `msg`; hidden when stderr is not a terminal.
pub fn bar(len: u64, msg: &str, bytes: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let pb = ProgressBar::new(len);
    let tmpl = if bytes {
        "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
    } else {
        "{msg:>12} [{bar:30}] {pos}/{len}"
    };
    pb.set_style(ProgressStyle::with_template(tmpl).expect("template").progress_chars("=> "));
    pb.set_message(msg.to_string());
    pb
}

/// A spinner with `msg` while something of unknown length runs; on a pipe, `msg` is
/// printed once instead.
pub fn spinner(msg: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        eprintln!("{msg}");
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}
