//! The bare seL4 IPC round trip, measured in the same boot as the apps it is compared
//! with: a second thread of ours, in our own CSpace and VSpace at our priority, Calls a
//! fresh endpoint with an empty message and we answer with ReplyRecv. Apps' syscalls and
//! messages are reported as ratios to this figure (`stats root: ... bare IPC round trip`).
//!
//! Both threads run with their FPU disabled, so the figure is the kernel's IPC path alone
//! (the fastpath, when the kernel has it).
//!
//! A second figure puts the client in an address space of its own (a fresh VSpace with
//! only the page of its code, shared read-only from our image), as an app's is: each
//! round trip then switches address spaces twice, as every syscall of an app does.

use crate::{kernel, time, ut, vm::Global, vm::Space};
use sel4::CapTypeForObjectOfFixedSize as _;

/// Round trips timed (after `WARMUP` untimed ones).
pub const ROUND_TRIPS: u32 = 2000;
const WARMUP: u32 = 100;
/// The root task's priority (seL4_MaxPrio): the client runs at ours, as a peer would.
const ROOT_PRIO: u64 = 255;

/// Nanoseconds per Call + ReplyRecv round trip, averaged over `ROUND_TRIPS`, with the
/// client in our VSpace.
pub fn measure(g: &mut Global) -> Result<u64, alloc::string::String> {
    with_objects(g, |chunk, ep_slot, tcb_slot| run(chunk, ep_slot, tcb_slot, sel4::init_thread::slot::VSPACE.cap()))
}

/// As [`measure`], with the client in a VSpace of its own; `code_frame` is the slot of
/// our image's frame holding its code.
pub fn measure_across(g: &mut Global, code_frame: usize) -> Result<u64, alloc::string::String> {
    let err = |what: &str, e: ut::Error| alloc::format!("{what}: {e}");
    let mut budget = ut::Budget::new(1 << 22);
    let vspace_slot = g.slots.alloc().map_err(|e| err("a slot", e))?;
    let made = budget
        .retype(&mut g.pool, &mut g.slots, &sel4::cap_type::VSpace::object_blueprint(), &ut::root_cnode().absolute_cptr_for_self(), vspace_slot)
        .and_then(|()| {
            let vspace = sel4::cap::VSpace::from_bits(vspace_slot as u64);
            sel4::init_thread::slot::ASID_POOL.cap().asid_pool_assign(vspace).map_err(ut::Error::from)?;
            Ok(vspace)
        });
    let r = match made {
        Ok(vspace) => {
            let mut space = Space::new(g.new_space_key(), vspace);
            let page = (kernel::ipc_pinger_entry() & !(kernel::PAGE - 1)) as u64;
            let prot = musl_shim::Prot(musl_shim::Prot::READ | musl_shim::Prot::EXEC);
            let r = match space.map_shared(g, &mut budget, page, code_frame, prot) {
                Ok(()) => with_objects(g, |chunk, ep_slot, tcb_slot| run(chunk, ep_slot, tcb_slot, vspace)),
                Err(e) => Err(err("mapping the client's code", e)),
            };
            g.evict_space(space.key);
            space.forget();
            let _ = budget.release(&mut g.pool);
            for s in core::mem::take(&mut space.storage_slots) {
                let _ = ut::root_path(s).delete();
                g.slots.free(s);
            }
            r
        }
        Err(e) => Err(err("a VSpace", e)),
    };
    let _ = budget.release(&mut g.pool);
    let _ = ut::root_path(vspace_slot).delete();
    g.slots.free(vspace_slot);
    r
}

/// An endpoint and a TCB from a fresh chunk, for `f`; everything is given back after.
fn with_objects(g: &mut Global, f: impl FnOnce(usize, usize, usize) -> Result<u64, alloc::string::String>) -> Result<u64, alloc::string::String> {
    let chunk = g.pool.chunk(&mut g.slots, ut::CHUNK_BITS).map_err(|e| alloc::format!("a chunk: {e}"))?;
    let (ep_slot, tcb_slot) = match (g.slots.alloc(), g.slots.alloc()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err("no free slots".into()),
    };
    let r = f(chunk, ep_slot, tcb_slot);
    // Revoking the chunk deletes the endpoint and the TCB (the client stops with it).
    let _ = ut::root_path(chunk).revoke();
    g.pool.give_back(chunk, ut::CHUNK_BITS);
    g.slots.free(ep_slot);
    g.slots.free(tcb_slot);
    r
}

fn run(chunk: usize, ep_slot: usize, tcb_slot: usize, vspace: sel4::cap::VSpace) -> Result<u64, alloc::string::String> {
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
        vspace,
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
