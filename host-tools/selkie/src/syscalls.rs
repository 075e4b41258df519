//! The pack-time syscall rewrite: every `svc #0` in the entrypoint's code becomes a trapping
//! instruction, so an app can never issue a real seL4 syscall by accident (see
//! `selkie-svc-rewrite`).

use anyhow::Result;

/// Rewrites `bytes` (the ELF at `path`) and returns it with its trap table.
pub fn rewrite(_path: &str, bytes: Vec<u8>) -> Result<(Vec<u8>, Vec<u64>)> {
    // Wired to selkie-svc-rewrite when that crate lands.
    Ok((bytes, Vec::new()))
}
