//! Guest memory: the only way the shim touches an app's address space.
//!
//! In the style of rust-vmm's vm-memory, every access goes through a small trait with
//! bounded reads and writes that fail with `EFAULT` on a bad address. The emulator
//! implements it over unicorn; the seL4 root server over frames mapped in its VSpace.
//! [`VecMemory`] is a plain in-process implementation for tests and fuzzing.

use crate::errno::{SysResult, EFAULT, ENAMETOOLONG};
use alloc::vec::Vec;

/// Bounded access to the app's memory. Accesses are privileged copies: page protections
/// are the address space's business, only unmapped addresses fail (with `EFAULT`).
pub trait GuestMemory {
    /// Fills `buf` from guest address `addr`, or fails with `EFAULT` leaving `buf` unspecified.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()>;
    /// Writes `bytes` at guest address `addr`, or fails with `EFAULT`.
    fn write(&mut self, addr: u64, bytes: &[u8]) -> SysResult<()>;

    fn read_u32(&mut self, addr: u64) -> SysResult<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&mut self, addr: u64) -> SysResult<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn write_u32(&mut self, addr: u64, v: u32) -> SysResult<()> {
        self.write(addr, &v.to_le_bytes())
    }
    fn write_u64(&mut self, addr: u64, v: u64) -> SysResult<()> {
        self.write(addr, &v.to_le_bytes())
    }
    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL):
    /// `ENAMETOOLONG` when no NUL comes within `max`, `EFAULT` when memory ends first.
    fn read_cstr(&mut self, addr: u64, max: usize) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 64];
        let mut at = addr;
        while out.len() <= max {
            // Never cross a 64-byte boundary in one read, so a string ending just before
            // an unmapped page is still read.
            let n = 64 - (at % 64) as usize;
            self.read(at, &mut chunk[..n])?;
            if let Some(p) = chunk[..n].iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..p]);
                return if out.len() > max { Err(ENAMETOOLONG) } else { Ok(out) };
            }
            out.extend_from_slice(&chunk[..n]);
            at = at.checked_add(n as u64).ok_or(EFAULT)?;
        }
        Err(ENAMETOOLONG)
    }
}

/// Guest memory made of separate byte regions, for tests and fuzzing.
#[derive(Debug, Default, Clone)]
pub struct VecMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl VecMemory {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a zeroed region; overlapping regions are the caller's mistake (first wins).
    pub fn add(&mut self, start: u64, len: usize) {
        self.regions.push((start, alloc::vec![0; len]));
    }
    /// Removes every byte in `[start, start+len)` from the regions (splitting them).
    pub fn remove(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        let mut out = Vec::new();
        for (s, data) in self.regions.drain(..) {
            let e = s + data.len() as u64;
            if e <= start || s >= end {
                out.push((s, data));
                continue;
            }
            if s < start {
                out.push((s, data[..(start - s) as usize].to_vec()));
            }
            if e > end {
                out.push((end, data[(end - s) as usize..].to_vec()));
            }
        }
        self.regions = out;
    }
    fn find(&mut self, addr: u64, len: usize) -> SysResult<&mut [u8]> {
        let end = addr.checked_add(len as u64).ok_or(EFAULT)?;
        for (s, data) in &mut self.regions {
            let e = *s + data.len() as u64;
            if addr >= *s && end <= e {
                let off = (addr - *s) as usize;
                return Ok(&mut data[off..off + len]);
            }
        }
        Err(EFAULT)
    }
}

impl GuestMemory for VecMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        let src = self.find(addr, buf.len())?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> SysResult<()> {
        self.find(addr, bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}
