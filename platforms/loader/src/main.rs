//! selkie's seL4 kernel loader (aarch64, one binary for every platform).
//!
//! The boot chain (QEMU `-kernel`, the Pi firmware, U-Boot `booti`) starts it at EL3 or EL2
//! with the MMU off; src/entry.S drops from EL3 to EL2, clears the bss, sets the stack and
//! relocates the image, then calls [`loader_main`], which reads the header the host tool
//! wrote (src/header.rs): it checks that every chunk (kernel, root server, device tree,
//! boot page tables) lies in RAM and clear of the loader, copies the chunks that are not
//! in place yet, starts the secondary cores (PSCI or spin table) and enters seL4 at EL2.
#![no_std]
#![no_main]

mod header;
mod uart;

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, read_volatile, write_volatile};
use header::*;
use uart::Uart;

global_asm!(include_str!("entry.S"));

extern "C" {
    static selkie_loader_header: Header;
    static __loader_end: u8;
    fn secondary_entry();
    fn enter_kernel(header: *const Header, core: u64) -> !;
}

fn fail(u: &Uart, what: &str) -> ! {
    u.str("selkie loader: ERROR: ");
    u.str(what);
    u.str("\n");
    loop {
        unsafe { asm!("wfe") };
    }
}

fn range(u: &Uart, start: u64, end: u64) {
    u.hex(start);
    u.str("..");
    u.hex(end);
}

#[no_mangle]
extern "C" fn loader_main(base: u64, _boot_dtb: u64, el: u64) -> ! {
    let h = unsafe { &*addr_of!(selkie_loader_header) };
    let u = Uart::new(h.uart_kind, h.uart_base);
    // The loader with its stack, and the payload behind it in the raw formats.
    let end = (addr_of!(__loader_end) as u64).max(base + h.image_len);
    u.str("selkie loader: at ");
    range(&u, base, end);
    u.str(", entered at EL");
    u.dec(el);
    u.str("\n");
    if el != 2 && el != 3 {
        fail(&u, "entered below EL2: seL4 (a hypervisor build) must be started at EL2 or EL3");
    }
    if h.version != 1 || h.chunk_count as usize > MAX_CHUNKS || h.ram_count as usize > MAX_RAM {
        fail(&u, "the loader header was not filled in (use `selkie pack`)");
    }
    check(&u, h, base, end);
    for c in &h.chunks[..h.chunk_count as usize] {
        if c.src_off != IN_PLACE {
            let src = base + c.src_off;
            unsafe { copy(src, c.dst, c.filesz) };
            unsafe { zero(c.dst + c.filesz, c.memsz - c.filesz) };
        }
        invalidate_dcache(c.dst, c.memsz);
    }
    start_secondaries(&u, h);
    u.str("selkie loader: entering seL4 at ");
    u.hex(h.kernel_entry);
    u.str(" on ");
    u.dec(h.cores.max(1));
    u.str(if h.cores > 1 { " cores\n" } else { " core\n" });
    unsafe { enter_kernel(h, 0) }
}

/// Every chunk in RAM, clear of the loader (with its stack) and of the other chunks.
fn check(u: &Uart, h: &Header, base: u64, end: u64) {
    let chunks = &h.chunks[..h.chunk_count as usize];
    for (i, c) in chunks.iter().enumerate() {
        let name = CHUNK_NAMES.get(c.kind as usize).copied().unwrap_or("?");
        let (s, e) = (c.dst, c.dst + c.memsz);
        let in_ram = h.ram[..h.ram_count as usize].iter().any(|r| s >= r[0] && e <= r[1]);
        if c.filesz > c.memsz || !in_ram {
            u.str("selkie loader: the ");
            u.str(name);
            u.str(" at ");
            range(u, s, e);
            u.str(" is outside RAM (");
            for r in &h.ram[..h.ram_count as usize] {
                range(u, r[0], r[1]);
                u.str(" ");
            }
            u.str(")\n");
            fail(u, "the image does not fit this board");
        }
        if c.src_off != IN_PLACE && s < end && base < e {
            u.str("selkie loader: the ");
            u.str(name);
            u.str(" at ");
            range(u, s, e);
            u.str(" overlaps the loader at ");
            range(u, base, end);
            u.str("\n");
            fail(u, "the image was loaded where its payload must go");
        }
        for d in &chunks[i + 1..] {
            if s < d.dst + d.memsz && d.dst < e {
                fail(u, "two chunks overlap (a bug in selkie pack)");
            }
        }
    }
}

/// Copies with aligned 8-byte words where it can (the MMU is off: no unaligned access).
unsafe fn copy(src: u64, dst: u64, len: u64) {
    if (src | dst | len) & 7 == 0 {
        for i in (0..len).step_by(8) {
            write_volatile((dst + i) as *mut u64, read_volatile((src + i) as *const u64));
        }
    } else {
        for i in 0..len {
            write_volatile((dst + i) as *mut u8, read_volatile((src + i) as *const u8));
        }
    }
}

unsafe fn zero(dst: u64, len: u64) {
    let mut a = dst;
    let e = dst + len;
    while a < e && a & 7 != 0 {
        write_volatile(a as *mut u8, 0);
        a += 1;
    }
    while a + 8 <= e {
        write_volatile(a as *mut u64, 0);
        a += 8;
    }
    while a < e {
        write_volatile(a as *mut u8, 0);
        a += 1;
    }
}

/// Drops cached lines of what was written with the MMU off, before seL4 turns caches on.
fn invalidate_dcache(start: u64, len: u64) {
    let ctr: u64;
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < start + len {
        unsafe { asm!("dc ivac, {}", in(reg) a) };
        a += line;
    }
    unsafe { asm!("dsb sy") };
}

fn start_secondaries(u: &Uart, h: &Header) {
    let cores = h.cores.min(MAX_CORES as u64);
    let entry = secondary_entry as *const () as usize as u64;
    for core in 1..cores {
        match h.smp_method {
            SMP_PSCI_HVC | SMP_PSCI_SMC => {
                let mut ret: u64 = 0xc400_0003; // CPU_ON (SMC64)
                unsafe {
                    if h.smp_method == SMP_PSCI_HVC {
                        asm!("hvc #0", inout("x0") ret, in("x1") core, in("x2") entry, in("x3") core, options(nostack));
                    } else {
                        asm!("smc #0", inout("x0") ret, in("x1") core, in("x2") entry, in("x3") core, options(nostack));
                    }
                }
                if ret != 0 {
                    u.str("selkie loader: PSCI CPU_ON for core ");
                    u.dec(core);
                    u.str(" returned ");
                    u.hex(ret);
                    u.str("\n");
                    fail(u, "a secondary core did not start");
                }
            }
            SMP_SPIN_TABLE => unsafe {
                write_volatile((0xd8 + 8 * core) as *mut u64, entry);
                invalidate_dcache(0xd8 + 8 * core, 8);
                asm!("dsb sy", "sev");
            },
            _ => fail(u, "an SMP kernel, but no way to start secondary cores is known for this platform"),
        }
        // Wait until it has read all it needs from the loader, which seL4 may reuse.
        let ack = addr_of!(h.ack[core as usize]);
        let mut spins: u64 = 0;
        while unsafe { read_volatile(ack) } == 0 {
            spins += 1;
            if spins == 200_000_000 {
                u.str("selkie loader: core ");
                u.dec(core);
                u.str(" has not come up yet; still waiting\n");
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        unsafe { asm!("wfe") };
    }
}
