//! The console: seL4's debug putchar (a PL011 driver would replace it), and a `log`
//! logger that prints `[selkie] ` lines.

use core::fmt::Write;

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        sel4::debug_put_char(b);
    }
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
