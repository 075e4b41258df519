//! Boot stages (issue 11): the generic timer's counter at each step from our entry to the
//! first app output, printed in the final stats line, so that every boot says where its
//! boot time went. The counter starts with the machine (under QEMU, with QEMU), so the first
//! stamp also says how long the loader and the kernel took.

use core::sync::atomic::{AtomicU64, Ordering};

/// The steps, in boot order.
#[derive(Clone, Copy)]
pub enum Stage {
    /// `main` entered (the kernel handed over).
    Entry,
    /// manifest.json parsed and validated, our aliasing window's pages unmapped.
    Manifest,
    /// UART, RTC and clock set up.
    Clock,
    /// Untyped pool, heap source, slots (`Global::new`).
    Global,
    /// The fault endpoint (and the timer's objects when they were set up at boot).
    Timer,
    /// Every app created (address space, image, stack, first thread).
    Apps,
    /// Every app's first thread resumed.
    Resumed,
    /// The first byte an app wrote to the console.
    FirstOutput,
}

const NAMES: [&str; 8] = ["entry", "manifest", "clock", "global", "timer", "apps", "resumed", "first output"];

static STAMPS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Stamps `s` with the counter now; only its first stamp counts.
pub fn mark(s: Stage) {
    let _ = STAMPS[s as usize].compare_exchange(0, crate::kernel::counter(), Ordering::Relaxed, Ordering::Relaxed);
}

/// `entry at N us; manifest +N us, ...`: the entry's counter time, then each stage's time
/// since the one before (stages never reached are left out).
pub fn summary(freq: u64) -> alloc::string::String {
    use core::fmt::Write;
    let us = |ticks: u64| ticks * 1_000_000 / freq.max(1);
    let mut out = alloc::string::String::new();
    let mut prev = STAMPS[0].load(Ordering::Relaxed);
    let _ = write!(out, "entry at {} us", us(prev));
    for (name, stamp) in NAMES.iter().zip(&STAMPS).skip(1) {
        let t = stamp.load(Ordering::Relaxed);
        if t != 0 {
            let _ = write!(out, ", {name} +{} us", us(t.saturating_sub(prev)));
            prev = t;
        }
    }
    out
}

