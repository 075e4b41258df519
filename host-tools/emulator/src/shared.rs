//! Memory that two processes map at once: what a forked child shares with its parent for
//! `MAP_SHARED` file mappings, as the seL4 root server gives it the parent's frames
//! (`Shim::shared_file_ranges`). Every process is its own unicorn CPU, so the pages are a
//! host buffer mapped into each CPU with `mem_map_ptr`; a store by one is then seen by
//! the other at once, without a syscall (a semaphore's spin, a lock word).
//!
//! The emulator's only unsafe code is here. A buffer must outlive every CPU that maps it:
//! each process holds an `Rc` of the buffers it maps, declared after its CPU, so that the
//! CPU (and with it the mapping) goes first.
//!
//! When part of such a region is protected or unmapped, unicorn splits it into regions
//! that still point into the buffer, so a process keeps every buffer it was given for as
//! long as it lives (an exec or its end), not only while the whole range is mapped.

use anyhow::{anyhow, bail, Result};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::rc::Rc;
use unicorn_engine::{Prot, Unicorn};

const PAGE: u64 = 4096;

/// Zeroed host pages, page aligned, for mapping into several CPUs.
pub struct SharedPages {
    ptr: *mut u8,
    layout: Layout,
    /// Where they are mapped (the same address in every process: a fork's).
    pub start: u64,
}

impl SharedPages {
    fn new(start: u64, len: u64) -> Result<Rc<SharedPages>> {
        let layout = Layout::from_size_align(len as usize, PAGE as usize).map_err(|e| anyhow!("shared pages of {len} bytes: {e}"))?;
        if layout.size() == 0 {
            bail!("shared pages of 0 bytes");
        }
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            bail!("no host memory for {len} shared bytes");
        }
        Ok(Rc::new(SharedPages { ptr, layout, start }))
    }

    pub fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is `layout.size()` bytes we allocated, and `&mut self` is the only
        // reference Rust code has to them (a CPU writes them only while it runs, never
        // during this call).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    /// Whether `uc`'s memory at `start` is still this buffer (the app may have unmapped
    /// it and mapped something else there since): a byte written through `uc` shows here.
    fn mapped_in<D>(&self, uc: &mut Unicorn<'_, D>) -> bool {
        let mut b = [0u8];
        if uc.mem_read(self.start, &mut b).is_err() || uc.mem_write(self.start, &[!b[0]]).is_err() {
            return false;
        }
        // SAFETY: `ptr` is at least a page we allocated; no CPU runs during this call.
        let seen = unsafe { self.ptr.read_volatile() };
        let _ = uc.mem_write(self.start, &b);
        seen == !b[0]
    }

    /// Maps the pages at `start` in `uc`, in place of whatever it mapped there.
    fn map_into<D>(&self, uc: &mut Unicorn<'_, D>, perms: Prot) -> Result<()> {
        uc.mem_unmap(self.start, self.len()).map_err(|e| anyhow!("unmapping {:#x}: {e:?}", self.start))?;
        // SAFETY: the buffer is `len()` bytes, page aligned, and outlives the mapping: the
        // caller keeps an `Rc` of it with the CPU (see the module doc).
        unsafe { uc.mem_map_ptr(self.start, self.len(), perms, self.ptr.cast()) }.map_err(|e| anyhow!("sharing {:#x}: {e:?}", self.start))?;
        let _ = uc.ctl_remove_cache(self.start, self.start + self.len());
        Ok(())
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_zeroed` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Gives `child` (a fresh copy of `parent`'s memory) the same pages as `parent` in each
/// of `ranges`: buffers `parent` already shares there are mapped into `child` too, the
/// others are made from `parent`'s bytes and mapped into both. `held` is what `parent`
/// holds; returns what `child` must hold. Nothing is changed, and an error says why, when
/// a range is not one whole region of one protection in `parent` (so the caller goes on
/// copying).
pub fn share<D>(parent: &mut Unicorn<'_, D>, held: &mut Vec<Rc<SharedPages>>, child: &mut Unicorn<'_, D>, ranges: &[(u64, u64)]) -> Result<Vec<Rc<SharedPages>>> {
    let regions = parent.mem_regions().map_err(|e| anyhow!("mem_regions: {e:?}"))?;
    let mut plan = Vec::new();
    for &(start, end) in ranges {
        let end = end.div_ceil(PAGE) * PAGE;
        if start % PAGE != 0 || end <= start {
            bail!("shared range {start:#x}..{end:#x} is not page aligned");
        }
        let Some(r) = regions.iter().find(|r| r.begin <= start && end - 1 <= r.end) else {
            bail!("shared range {start:#x}..{end:#x} is not one region");
        };
        let have = held.iter().find(|p| p.start == start && p.len() == end - start && p.mapped_in(parent)).cloned();
        plan.push((start, end, Prot(r.perms), have));
    }
    let mut out = Vec::new();
    for (start, end, perms, have) in plan {
        let pages = match have {
            Some(p) => p,
            None => {
                let mut p = SharedPages::new(start, end - start)?;
                let bytes = Rc::get_mut(&mut p).expect("a new buffer has one owner").bytes_mut();
                parent.mem_read(start, bytes).map_err(|e| anyhow!("reading {start:#x}: {e:?}"))?;
                p.map_into(parent, perms)?;
                held.push(p.clone());
                p
            }
        };
        pages.map_into(child, perms)?;
        out.push(pages);
    }
    Ok(out)
}
