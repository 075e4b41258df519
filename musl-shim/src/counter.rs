//! A fixed-frequency counter's ticks as nanoseconds and back, for a platform whose clock is
//! such a counter (the root server's: the Arm generic timer, CNTPCT_EL0 at CNTFRQ_EL0 Hz).
//!
//! Both are exact (what the 128-bit formula gives) but split the value into whole seconds
//! and the rest, so that they need only 64-bit divisions: on aarch64 a 128-bit division is a
//! library call (`__udivti3`) of several dozen instructions, and the clock is read on every
//! syscall (issue 11). A frequency over 18.4 GHz, where the rest's product could overflow,
//! takes the 128-bit formula.

const NS: u64 = 1_000_000_000;

/// `ticks * 10^9 / freq`, rounded down; saturates at `u64::MAX`. A `freq` of 0 counts as 1.
pub fn ticks_to_ns(ticks: u64, freq: u64) -> u64 {
    let freq = freq.max(1);
    let (secs, rest) = (ticks / freq, ticks % freq);
    match rest.checked_mul(NS) {
        Some(r) => secs.saturating_mul(NS).saturating_add(r / freq),
        None => (u128::from(ticks) * u128::from(NS) / u128::from(freq)).min(u128::from(u64::MAX)) as u64,
    }
}

/// The first counter value at or after `ns` nanoseconds: `ns * freq / 10^9` rounded up (a
/// timer armed with it never fires early); saturates at `u64::MAX`.
pub fn ns_to_ticks_ceil(ns: u64, freq: u64) -> u64 {
    let freq = freq.max(1);
    let (secs, rest) = (ns / NS, ns % NS);
    match rest.checked_mul(freq) {
        Some(r) => secs.saturating_mul(freq).saturating_add(r.div_ceil(NS)),
        None => (u128::from(ns) * u128::from(freq)).div_ceil(u128::from(NS)).min(u128::from(u64::MAX)) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide_ns(ticks: u64, freq: u64) -> u64 {
        (u128::from(ticks) * u128::from(NS) / u128::from(freq.max(1))).min(u128::from(u64::MAX)) as u64
    }

    fn wide_ticks(ns: u64, freq: u64) -> u64 {
        (u128::from(ns) * u128::from(freq.max(1))).div_ceil(u128::from(NS)).min(u128::from(u64::MAX)) as u64
    }

    #[test]
    fn both_ways_agree_with_the_128_bit_formula() {
        // QEMU virt's 62.5 MHz, the Pi 4's 54 MHz, the i.MX 8M's 8 MHz, 24 and 19.2 MHz
        // boards, 1 GHz, odd and extreme ones.
        let freqs = [0, 1, 3, 8_000_000, 19_200_000, 24_000_000, 54_000_000, 62_500_000, 999_999_937, NS, 18_000_000_000, 20_000_000_000, u64::MAX];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = alloc::vec![0, 1, 999, NS - 1, NS, NS + 1, u64::MAX / NS, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every magnitude: shift the random word down by 0..63 bits.
            values.push(x >> (x % 64));
        }
        for &f in &freqs {
            for &v in values.iter().chain([f.wrapping_sub(1), f, f.wrapping_add(1), f.wrapping_mul(3600)].iter()) {
                assert_eq!(ticks_to_ns(v, f), wide_ns(v, f), "ticks_to_ns({v}, {f})");
                assert_eq!(ns_to_ticks_ceil(v, f), wide_ticks(v, f), "ns_to_ticks_ceil({v}, {f})");
            }
        }
    }

    #[test]
    fn a_deadline_converted_back_is_never_early() {
        for f in [62_500_000u64, 54_000_000, 19_200_000] {
            for ns in [1u64, 15, 16, 17, 1_000_001, 123_456_789_012] {
                let t = ns_to_ticks_ceil(ns, f);
                assert!(ticks_to_ns(t, f) >= ns, "{ns} ns at {f} Hz: tick {t} reads {} ns", ticks_to_ns(t, f));
                assert!(t == 0 || ticks_to_ns(t - 1, f) < ns, "{ns} ns at {f} Hz: tick {} is already late enough", t - 1);
            }
        }
    }
}
