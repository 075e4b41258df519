//! The console: a PL011 driver where the platform has one (qemu-arm-virt: the UART the
//! kernel prints on, mapped from device untyped), seL4's debug putchar otherwise; and a
//! `log` logger that prints `[selkie] ` lines.

use crate::kernel;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use sel4::CapTypeForObjectOfFixedSize as _;

/// Writes raw bytes to the console ("\n" goes out as "\r\n", as the kernel does).
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' && kernel::uart_put(b'\r') {
            kernel::uart_put(b'\n');
        } else if !kernel::uart_put(b) {
            sel4::debug_put_char(b);
        }
    }
}

/// The PL011 of qemu-arm-virt (platforms/qemu-arm-virt/platform.toml).
const PL011_PADDR: usize = 0x0900_0000;

/// Maps the platform's PL011 for [`write_bytes`]; without one (other platforms) or on
/// any error the console stays on seL4's debug putchar.
pub fn init_uart(bootinfo: &sel4::BootInfo, slots: &mut crate::ut::Slots) -> Result<(), String> {
    if !sel4::sel4_cfg_bool!(PLAT_QEMU_ARM_VIRT) {
        return Ok(());
    }
    let (ix, desc) = bootinfo
        .untyped_list()
        .iter()
        .enumerate()
        .find(|(_, d)| d.is_device() && (d.paddr()..d.paddr() + (1 << d.size_bits())).contains(&PL011_PADDR))
        .ok_or("no device untyped covers the PL011")?;
    let ut = bootinfo.untyped().index(ix).cap();
    let here = crate::ut::root_cnode().absolute_cptr_for_self();
    let err = |what: &str, e: sel4::Error| format!("{what}: {e}");
    // Device untypeds are handed out from their start: skip to the UART's page with
    // children of the offset's power-of-two parts, largest first.
    let offset = PL011_PADDR - desc.paddr();
    for bit in (12..desc.size_bits()).rev() {
        if offset & (1 << bit) != 0 {
            let s = slots.alloc().map_err(|e| format!("{e}"))?;
            ut.untyped_retype(&sel4::ObjectBlueprint::Untyped { size_bits: bit }, &here, s, 1).map_err(|e| err("skipping device memory", e))?;
        }
    }
    let s = slots.alloc().map_err(|e| format!("{e}"))?;
    ut.untyped_retype(&sel4::cap_type::Granule::object_blueprint(), &here, s, 1).map_err(|e| err("the UART frame", e))?;
    let frame = sel4::cap::Granule::from_bits(s as u64);
    let paddr = frame.frame_get_address().map_err(|e| err("the UART frame's address", e))?;
    if paddr != PL011_PADDR {
        return Err(format!("the UART frame is at {paddr:#x}, not {PL011_PADDR:#x}"));
    }
    frame
        .frame_map(
            sel4::init_thread::slot::VSPACE.cap(),
            kernel::uart_addr(),
            sel4::CapRights::read_write(),
            sel4::VmAttributes::NONE | sel4::VmAttributes::EXECUTE_NEVER,
        )
        .map_err(|e| err("mapping the UART", e))?;
    kernel::uart_mapped();
    Ok(())
}

struct Out;

impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints one `[selkie] ...` line.
pub fn report(args: core::fmt::Arguments<'_>) {
    let _ = Out.write_fmt(format_args!("[selkie] {args}\n"));
}

#[macro_export]
macro_rules! report {
    ($($t:tt)*) => { $crate::console::report(format_args!($($t)*)) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            report(format_args!("{}: {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the logger: errors only by default, so that app output stays clean.
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
