//! The bare seL4 IPC round trip, measured in the same boot as the apps it is compared
//! with: a second thread of ours, in our own CSpace and VSpace at our priority, Calls a
//! fresh endpoint with an empty message and we answer with ReplyRecv. Apps' syscalls and
//! messages are reported as ratios to this figure (`stats root: ... bare IPC round trip`).
//!
//! Both threads run with their FPU disabled, so the figure is the kernel's IPC path alone
//! (the fastpath, when the kernel has it).

use crate::{kernel, time, ut, vm::Global};
use sel4::CapTypeForObjectOfFixedSize as _;

/// Round trips timed (after `WARMUP` untimed ones).
pub const ROUND_TRIPS: u32 = 2000;
const WARMUP: u32 = 100;
/// The root task's priority (seL4_MaxPrio): the client runs at ours, as a peer would.
const ROOT_PRIO: u64 = 255;

/// Nanoseconds per Call + ReplyRecv round trip, averaged over `ROUND_TRIPS`.
pub fn measure(g: &mut Global) -> Result<u64, alloc::string::String> {
    let chunk = g.pool.chunk(&mut g.slots, ut::CHUNK_BITS).map_err(|e| alloc::format!("a chunk: {e}"))?;
    let (ep_slot, tcb_slot) = match (g.slots.alloc(), g.slots.alloc()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err("no free slots".into()),
    };
    let r = run(chunk, ep_slot, tcb_slot);
    // Revoking the chunk deletes the endpoint and the TCB (the client stops with it).
    let _ = ut::root_path(chunk).revoke();
    g.pool.give_back(chunk, ut::CHUNK_BITS);
    g.slots.free(ep_slot);
    g.slots.free(tcb_slot);
    r
}

fn run(chunk: usize, ep_slot: usize, tcb_slot: usize) -> Result<u64, alloc::string::String> {
    let err = |what: &str, e: sel4::Error| alloc::format!("{what}: {e}");
    let here = ut::root_cnode().absolute_cptr_for_self();
    let untyped = sel4::cap::Untyped::from_bits(chunk as u64);
    untyped.untyped_retype(&sel4::cap_type::Endpoint::object_blueprint(), &here, ep_slot, 1).map_err(|e| err("endpoint", e))?;
    untyped.untyped_retype(&sel4::cap_type::Tcb::object_blueprint(), &here, tcb_slot, 1).map_err(|e| err("TCB", e))?;
    let ep = sel4::cap::Endpoint::from_bits(ep_slot as u64);
    let tcb = sel4::cap::Tcb::from_bits(tcb_slot as u64);
    let me = sel4::init_thread::slot::TCB.cap();
    tcb.tcb_configure(
        sel4::init_thread::slot::NULL.cptr(),
        sel4::init_thread::slot::CNODE.cap(),
        sel4::CNodeCapData::new(0, 0),
        sel4::init_thread::slot::VSPACE.cap(),
        0,
        sel4::cap::Granule::from_bits(0),
    )
    .map_err(|e| err("TCB_Configure", e))?;
    tcb.tcb_set_sched_params(me, ROOT_PRIO, ROOT_PRIO).map_err(|e| err("TCB_SetSchedParams", e))?;
    let flags = sel4::TcbFlagsBuilder::new().fpu_disabled(true).build();
    tcb.tcb_set_flags(0, flags).map_err(|e| err("TCB_SetFlags", e))?;
    let mut regs = sel4::UserContext::default();
    *regs.pc_mut() = kernel::ipc_pinger_entry() as u64;
    *regs.c_param_mut(0) = ep_slot as u64;
    tcb.tcb_write_all_registers(true, &mut regs).map_err(|e| err("TCB_WriteRegisters", e))?;

    let empty = sel4::MessageInfo::new(0, 0, 0, 0);
    let (_, badge) = ep.recv(());
    if badge != 0 {
        return Err(alloc::format!("a message with badge {badge:#x} on the baseline's endpoint"));
    }
    for _ in 0..WARMUP {
        ep.reply_recv(empty.clone(), ());
    }
    let start = time::monotonic_ns();
    for _ in 0..ROUND_TRIPS {
        ep.reply_recv(empty.clone(), ());
    }
    let ns = time::monotonic_ns().saturating_sub(start);
    let _ = tcb.tcb_suspend();
    Ok(ns / u64::from(ROUND_TRIPS))
}
