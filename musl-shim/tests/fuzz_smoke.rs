//! The fuzz target's body on deterministic pseudo-random inputs, so every `cargo test`
//! runs a few thousand random syscall sequences (the real fuzzer is in musl-shim/fuzz).

#[test]
fn random_syscall_sequences_never_panic() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let n: usize = std::env::var("FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    for _ in 0..n {
        let len = 64 + (x % 900) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        musl_shim::testing::run_sequence(&data);
    }
}

#[test]
fn arbitrary_rootfs_bytes_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let good = musl_shim::testing::sample_rootfs();
    for i in 0..2000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Corrupt a valid archive at a few places, or truncate it.
        let mut data = good.clone();
        for k in 0..(x % 8) {
            let at = ((x >> (8 * k)) as usize) % data.len();
            data[at] = (x >> (3 * k)) as u8;
        }
        data.truncate(data.len() - (i % 64));
        musl_shim::testing::walk_arbitrary_rootfs(&data);
    }
}
