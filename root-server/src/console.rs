//! The console: a PL011 driver where the platform has one (qemu-arm-virt: the UART the
//! kernel prints on, mapped from device untyped), seL4's debug putchar otherwise; and a
//! `log` logger that prints `[selkie] ` lines.

use crate::kernel;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;

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
pub fn init_uart(bootinfo: &sel4::BootInfo, slots: &mut crate::ut::Slots, devices: &mut crate::ut::Devices) -> Result<(), String> {
    if !sel4::sel4_cfg_bool!(PLAT_QEMU_ARM_VIRT) {
        return Ok(());
    }
    let frame = devices.frame(bootinfo, slots, PL011_PADDR)?;
    let uncached = sel4::VmAttributes::NONE | sel4::VmAttributes::EXECUTE_NEVER;
    crate::vm::map_frame(frame, sel4::init_thread::slot::VSPACE.cap(), kernel::uart_addr(), sel4::CapRights::read_write(), uncached).map_err(|e| format!("mapping the UART: {e}"))?;
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
