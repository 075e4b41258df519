//! Arbitrary bytes as a rootfs cpio: building and walking the VFS must never panic.
//! `cd musl-shim/fuzz && cargo +nightly fuzz run rootfs -- -max_total_time=60`
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    musl_shim::testing::walk_arbitrary_rootfs(data);
});
