//! The pack-time syscall rewrite: every `svc #0` in the entrypoint's code becomes
//! `udf #0x5e1c`, so an app can never issue a real seL4 syscall by accident (seL4 reads its
//! syscall number from x7, which musl leaves arbitrary). The trap table records where.

use anyhow::Result;

/// Rewrites `bytes` (the ELF at `path`) and returns it with its sorted trap table.
pub fn rewrite(path: &str, bytes: Vec<u8>) -> Result<(Vec<u8>, Vec<u64>)> {
    let r = selkie_svc_rewrite::rewrite(&bytes)
        .map_err(|e| anyhow::anyhow!("rewriting syscalls in {path}: {e}"))?;
    Ok((r.bytes, r.traps))
}
