//! Cores. On an SMP kernel (KernelMaxNumNodes > 1, kernel-config/<platform>-smp4.cmake) every
//! thread, ours and the apps', runs on core 0 for now; the stats line says how many cores the
//! kernel brought up and where threads were started.
//!
//! Spreading was tried and is off ([`SPREAD`]): with each thread on a core of its own
//! (round-robin), and also with each app's threads on one core of the app's (app i on core
//! (i + 1) mod 4), tests/apps/threads.c under QEMU with 4 cores stopped for good after its
//! mutex counter phase, in its producer and consumers on condition variables (every other
//! app of the image finished; the same image on core 0 of the same kernel, and on the 1-core
//! kernel, runs to the end). Not understood yet; its commit message says what was seen.
//!
//! The root server's own thread never moves from core 0, where the kernel started it: the
//! EL1 physical timer it programs from EL0 (`kernel::timer_arm`) is core 0's, and so is the
//! PPI 30 that `IRQControl_Get` gives it (seL4 numbers a PPI by core, and Get takes core 0's).
//! New TCBs start on their creator's core, 0. The counter (CNTPCT_EL0) and CNTFRQ_EL0 are the
//! same on every core.

use core::sync::atomic::{AtomicU64, Ordering};

/// Whether apps go to cores other than 0 (app i's threads on core (i + 1) mod cores).
const SPREAD: bool = false;

/// The cores the kernel runs on (bootinfo's numNodes).
static CORES: AtomicU64 = AtomicU64::new(1);
/// Threads started on each core (the first 8 cores), for the stats line.
static PLACED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Reads how many cores the kernel brought up.
pub fn init(bootinfo: &sel4::BootInfo) {
    CORES.store(bootinfo.inner().numNodes.max(1), Ordering::Relaxed);
}

/// The cores the kernel runs on.
pub fn count() -> u64 {
    CORES.load(Ordering::Relaxed)
}

/// Puts `tcb`, a thread of app `app` about to start, on its core; returns the core.
pub fn place(tcb: sel4::cap::Tcb, app: usize) -> sel4::Result<u64> {
    let core = if SPREAD { (app as u64 + 1) % count() } else { 0 };
    if core != 0 {
        set_affinity(tcb, core)?;
    }
    if let Some(c) = PLACED.get(core as usize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    Ok(core)
}

/// "4 cores, threads started on each 3/0/0/0" (or "1 core").
pub fn summary() -> alloc::string::String {
    let n = count();
    if n == 1 {
        return "1 core".into();
    }
    let per: alloc::vec::Vec<alloc::string::String> = PLACED.iter().take(n as usize).map(|c| alloc::format!("{}", c.load(Ordering::Relaxed))).collect();
    alloc::format!("{n} cores, threads started on each {}", per.join("/"))
}

#[sel4::sel4_cfg(not(MAX_NUM_NODES = "1"))]
fn set_affinity(tcb: sel4::cap::Tcb, core: u64) -> sel4::Result<()> {
    crate::vm::entries(1);
    tcb.tcb_set_affinity(core)
}

#[sel4::sel4_cfg(MAX_NUM_NODES = "1")]
fn set_affinity(_tcb: sel4::cap::Tcb, _core: u64) -> sel4::Result<()> {
    Ok(())
}
