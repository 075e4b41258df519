//! Polled output on the platform's console: QEMU virt's PL011, the Raspberry Pi's mini UART,
//! or the i.MX UART (whose transmitter must be enabled first).

use crate::header::{UART_IMX, UART_MINI, UART_PL011};
use core::ptr::{read_volatile, write_volatile};

pub struct Uart {
    kind: u64,
    base: u64,
}

fn rd(a: u64) -> u32 {
    unsafe { read_volatile(a as *const u32) }
}

fn wr(a: u64, v: u32) {
    unsafe { write_volatile(a as *mut u32, v) }
}

impl Uart {
    pub fn new(kind: u64, base: u64) -> Uart {
        if kind == UART_IMX {
            // UCR1.UARTEN; UCR2.TXEN, keeping SRST (bit 0) out of reset.
            wr(base + 0x80, rd(base + 0x80) | 1);
            wr(base + 0x84, rd(base + 0x84) | (1 << 2) | 1);
        }
        Uart { kind, base }
    }

    fn byte(&self, b: u8) {
        let b = u32::from(b);
        match self.kind {
            // FR.TXFF
            UART_PL011 => {
                while rd(self.base + 0x18) & (1 << 5) != 0 {}
                wr(self.base, b);
            }
            // AUX_MU_LSR_REG.TX_EMPTY (base is AUX_MU_IO_REG)
            UART_MINI => {
                while rd(self.base + 0x14) & (1 << 5) == 0 {}
                wr(self.base, b);
            }
            // UTS.TXFULL, UTXD
            UART_IMX => {
                while rd(self.base + 0xb4) & (1 << 4) != 0 {}
                wr(self.base + 0x40, b);
            }
            _ => {}
        }
    }

    pub fn str(&self, s: &str) {
        for b in s.bytes() {
            if b == b'\n' {
                self.byte(b'\r');
            }
            self.byte(b);
        }
    }

    pub fn hex(&self, v: u64) {
        self.str("0x");
        let mut started = false;
        for i in (0..16).rev() {
            let d = ((v >> (i * 4)) & 0xf) as u8;
            if d != 0 || started || i == 0 {
                started = true;
                self.byte(if d < 10 { b'0' + d } else { b'a' + d - 10 });
            }
        }
    }

    pub fn dec(&self, v: u64) {
        let mut buf = [0u8; 20];
        let mut n = 0;
        let mut v = v;
        loop {
            buf[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            self.byte(buf[i]);
        }
    }
}
