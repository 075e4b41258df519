//! The pack-time syscall rewrite: every `svc #0` in the code of every aarch64 ELF of the
//! image becomes `udf #0x5e1c`, so an app can never issue a real seL4 syscall by accident
//! (seL4 reads its syscall number from x7, which musl leaves arbitrary). The rootfs keeps
//! the image's bytes; the rewritten code and each file's trap table go into the bundle's
//! text store (`musl_shim::text`).

use anyhow::Result;

/// The entrypoint's trap table (link-time addresses; empty for a selkie-SDK binary, which
/// needs none) and whether it is SDK-built, or why it cannot be rewritten.
pub fn entry_traps(path: &str, bytes: &[u8]) -> Result<(Vec<u64>, bool)> {
    let r = selkie_svc_rewrite::rewrite(bytes).map_err(|e| anyhow::anyhow!("rewriting syscalls in {path}: {e}"))?;
    Ok((r.traps, r.sdk))
}

/// The text store of app `app`'s rootfs cpio; what went into it is logged, and files that
/// could not be rewritten are warnings (their syscalls are found when they are mapped).
pub fn text_store(app: &str, cpio: &[u8]) -> Vec<u8> {
    let (store, stats) = selkie_svc_rewrite::text_store(cpio);
    log_stats(app, &stats);
    store
}

/// As [`text_store`], from a cpio read as a stream (one ELF in memory at a time).
pub fn text_store_from(app: &str, cpio: impl std::io::Read) -> Result<Vec<u8>> {
    let (store, stats) = selkie_svc_rewrite::text_store_from(cpio).map_err(|e| anyhow::anyhow!("{app}: reading back its rootfs: {e}"))?;
    log_stats(app, &stats);
    Ok(store)
}

fn log_stats(app: &str, stats: &selkie_svc_rewrite::StoreStats) {
    for (path, why) in &stats.skipped {
        tracing::warn!("{app}: {path}: not rewritten at pack time: {why}");
    }
    tracing::info!(
        "{app}: {} ELFs, {} svc sites rewritten, {} KiB of rewritten code; {} selkie-SDK ELFs left as they are",
        stats.files,
        stats.traps,
        stats.segment_bytes / 1024,
        stats.sdk_files
    );
}
