//! Time: monotonic from the generic timer's physical counter (CNTPCT_EL0 / CNTFRQ_EL0,
//! readable at EL0 with KernelArmExportPCNTUser), realtime from QEMU virt's PL031 RTC read
//! once at boot (else a fixed epoch), and the EL1 physical timer (PPI 30) for deadlines.

use crate::kernel;
use core::sync::atomic::{AtomicU64, Ordering};

/// Realtime when no RTC is found: 2025-01-01T00:00:00Z.
const FALLBACK_EPOCH_NS: u64 = 1_735_689_600 * 1_000_000_000;
/// The PL031 of qemu-arm-virt (platforms/qemu-arm-virt/platform.toml).
pub const PL031_PADDR: usize = 0x0901_0000;
/// The EL1 physical timer's interrupt (a PPI; the kernel's own tick is on the EL2 timer).
pub const TIMER_IRQ: u64 = 30;

static FREQ: AtomicU64 = AtomicU64::new(0);
/// Realtime (ns since the Unix epoch) when the monotonic clock read 0.
static EPOCH: AtomicU64 = AtomicU64::new(FALLBACK_EPOCH_NS);

/// Reads the counter's frequency, and the RTC when it is mapped; says where realtime
/// comes from.
pub fn init() -> &'static str {
    FREQ.store(kernel::counter_frequency().max(1), Ordering::Relaxed);
    match kernel::rtc_seconds() {
        Some(s) if s > 0 => {
            let now = u64::from(s) * 1_000_000_000;
            EPOCH.store(now.saturating_sub(monotonic_ns()), Ordering::Relaxed);
            "PL031 RTC"
        }
        _ => "fixed epoch 2025-01-01",
    }
}

fn freq() -> u64 {
    match FREQ.load(Ordering::Relaxed) {
        0 => kernel::counter_frequency().max(1),
        f => f,
    }
}

/// Nanoseconds since boot (read on every syscall: no 128-bit division, see
/// `musl_shim::counter`).
pub fn monotonic_ns() -> u64 {
    musl_shim::counter::ticks_to_ns(kernel::counter(), freq())
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    EPOCH.load(Ordering::Relaxed).saturating_add(monotonic_ns())
}

/// The counter value at monotonic time `ns` (rounded up, so the timer never fires early).
pub fn ticks_at(ns: u64) -> u64 {
    musl_shim::counter::ns_to_ticks_ceil(ns, freq())
}
