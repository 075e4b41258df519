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
