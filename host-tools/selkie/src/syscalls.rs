//! The pack-time syscall rewrite: every `svc #0` in the code of every aarch64 ELF of the
//! image becomes `udf #0x5e1c`, so an app can never issue a real seL4 syscall by accident
//! (seL4 reads its syscall number from x7, which musl leaves arbitrary). The rootfs keeps
//! the image's bytes; the rewritten code and each file's trap table go into the bundle's
//! text store (`musl_shim::text`).

use anyhow::Result;

/// The entrypoint's trap table (link-time addresses), or why it cannot be rewritten.
pub fn entry_traps(path: &str, bytes: &[u8]) -> Result<Vec<u64>> {
    let r = selkie_svc_rewrite::rewrite(bytes).map_err(|e| anyhow::anyhow!("rewriting syscalls in {path}: {e}"))?;
    Ok(r.traps)
}

/// The text store of a rootfs cpio, with what went into it; files that could not be
/// rewritten are logged as warnings (their syscalls are found when they are mapped).
pub fn text_store(cpio: &[u8]) -> (Vec<u8>, selkie_svc_rewrite::StoreStats) {
    let (store, stats) = selkie_svc_rewrite::text_store(cpio);
    for (path, why) in &stats.skipped {
        tracing::warn!("{path}: not rewritten at pack time: {why}");
    }
    (store, stats)
}
