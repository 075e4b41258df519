//! Random syscall sequences against musl-shim with a fake guest memory: must never panic.
//! `cd musl-shim/fuzz && cargo +nightly fuzz run syscalls -- -max_total_time=60`
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    musl_shim::testing::run_sequence(data);
});
