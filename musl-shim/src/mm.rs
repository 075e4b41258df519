//! The app's memory map: which ranges exist, with what protections, and how much heap
//! (brk plus mmap) they use. The platform's [`AddressSpace`] does the mapping; this keeps
//! the book, so the root server can also ask [`MemoryMap::lookup`] whether a faulting
//! address lies in a valid (possibly lazily mapped) region.

use crate::errno::*;
use crate::platform::{AddressSpace, Memory, Prot};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

pub const PAGE: u64 = 4096;

pub fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}
pub fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

/// What a region is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// A loaded ELF segment.
    Image,
    Stack,
    /// The brk heap.
    Brk,
    /// Anonymous mmap.
    Anon,
    /// A private copy of file data.
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub kind: RegionKind,
}

impl Region {
    /// Heap, anonymous and file mappings count against the heap budget, unless they are
    /// PROT_NONE: a reservation commits nothing until it is made accessible (Linux's
    /// overcommit accounting does the same; Go reserves gigabytes this way).
    fn counts_as_heap(&self) -> bool {
        matches!(self.kind, RegionKind::Brk | RegionKind::Anon | RegionKind::File) && self.prot != Prot::NONE
    }
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Where the heap lives, decided by the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemLayout {
    /// First byte of the brk heap (page-aligned, above the image).
    pub brk_start: u64,
    /// Most bytes brk and mmap may use together.
    pub heap_limit: u64,
    /// mmap allocates top-down in `[mmap_bottom, mmap_top)`.
    pub mmap_bottom: u64,
    pub mmap_top: u64,
}

#[derive(Debug, Clone)]
pub struct MemoryMap {
    regions: BTreeMap<u64, Region>,
    /// Addresses of rewritten syscall instructions in mapped code: a trap is a syscall
    /// only at one of these (the image's trap table, and those of executable file maps).
    traps: alloc::collections::BTreeSet<u64>,
    /// Code built with the selkie SDK is mapped ([`crate::text::sdk_abi`]): an `svc #0`
    /// with the Linux number in x7 is a syscall too (on seL4, an UnknownSyscall fault).
    pub sdk_syscalls: bool,
    pub layout: MemLayout,
    brk: u64,
    heap_used: u64,
    /// The shared mappings of files ([`crate::filemap`]).
    pub files: Vec<crate::filemap::FileMap>,
}

impl MemoryMap {
    pub fn new(layout: MemLayout) -> Self {
        MemoryMap { regions: BTreeMap::new(), traps: alloc::collections::BTreeSet::new(), sdk_syscalls: false, layout, brk: layout.brk_start, heap_used: 0, files: Vec::new() }
    }

    pub fn heap_used(&self) -> u64 {
        self.heap_used
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The region holding `addr`, if any.
    pub fn lookup(&self, addr: u64) -> Option<Region> {
        let (_, r) = self.regions.range(..=addr).next_back()?;
        (addr < r.end).then_some(*r)
    }

    /// Records a range mapped by someone else (the loader's image and stack).
    pub fn record(&mut self, start: u64, end: u64, prot: Prot, kind: RegionKind) {
        let removed = self.carve(start, end);
        self.account_removed(&removed);
        self.insert(Region { start, end, prot, kind });
    }

    fn insert(&mut self, r: Region) {
        if r.counts_as_heap() {
            self.heap_used += r.len();
        }
        self.regions.insert(r.start, r);
    }

    fn account_removed(&mut self, removed: &[Region]) {
        for r in removed {
            if r.counts_as_heap() {
                self.heap_used = self.heap_used.saturating_sub(r.len());
            }
        }
    }

    /// Records trap addresses (rewritten syscalls) in mapped code.
    pub fn add_traps(&mut self, traps: impl IntoIterator<Item = u64>) {
        self.traps.extend(traps);
    }

    /// Whether a trap at `addr` is a syscall.
    pub fn is_trap(&self, addr: u64) -> bool {
        self.traps.contains(&addr)
    }

    /// Removes `[start, end)` from the book, splitting regions; returns the removed pieces
    /// (heap accounting is left to the caller). Traps in the range go with it.
    fn carve(&mut self, start: u64, end: u64) -> Vec<Region> {
        let gone: Vec<u64> = self.traps.range(start..end).copied().collect();
        for t in gone {
            self.traps.remove(&t);
        }
        let mut removed = Vec::new();
        let keys: Vec<u64> = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, r)| r.end > start)
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            let Some(r) = self.regions.remove(&k) else { continue };
            if r.end <= start {
                self.regions.insert(k, r);
                continue;
            }
            if r.start < start {
                self.regions.insert(r.start, Region { end: start, ..r });
            }
            if r.end > end {
                self.regions.insert(end, Region { start: end, ..r });
            }
            removed.push(Region { start: r.start.max(start), end: r.end.min(end), ..r });
        }
        removed.sort_by_key(|r| r.start);
        removed
    }

    fn is_free(&self, start: u64, end: u64) -> bool {
        self.regions.range(..end).next_back().is_none_or(|(_, r)| r.end <= start)
    }

    fn fully_mapped(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.lookup(at) {
                Some(r) => at = r.end,
                None => return false,
            }
        }
        true
    }

    /// A free, page-aligned gap of `len` bytes, highest first.
    fn find_free(&self, len: u64) -> Option<u64> {
        let mut top = self.layout.mmap_top;
        for r in self.regions.range(..self.layout.mmap_top).rev() {
            let r = r.1;
            if r.end <= top && top - r.end >= len && top - len >= self.layout.mmap_bottom {
                return Some(top - len);
            }
            top = top.min(r.start);
            if top < self.layout.mmap_bottom {
                return None;
            }
        }
        (top >= self.layout.mmap_bottom.saturating_add(len)).then(|| top - len)
    }

    fn check_heap(&self, more: u64) -> SysResult<()> {
        if self.heap_used.saturating_add(more) > self.layout.heap_limit {
            Err(ENOMEM)
        } else {
            Ok(())
        }
    }

    /// `brk(2)`: returns the new break, or the old one when it cannot move.
    pub fn brk(&mut self, aspace: &mut dyn AddressSpace, want: u64) -> u64 {
        let start = self.layout.brk_start;
        if want < start || want > start.saturating_add(self.layout.heap_limit) {
            return self.brk;
        }
        let (Some(old_end), Some(new_end)) = (page_up(self.brk), page_up(want)) else {
            return self.brk;
        };
        if new_end > old_end {
            if !self.is_free(old_end, new_end) || self.check_heap(new_end - old_end).is_err() {
                return self.brk;
            }
            if aspace.map(old_end, new_end - old_end, Prot::RW).is_err() {
                return self.brk;
            }
            self.insert(Region { start: old_end, end: new_end, prot: Prot::RW, kind: RegionKind::Brk });
        } else if new_end < old_end {
            let removed = self.carve(new_end, old_end);
            self.account_removed(&removed);
            for r in &removed {
                let _ = aspace.unmap(r.start, r.len());
            }
        }
        self.brk = want;
        want
    }

    /// Maps a fresh anonymous range; `fixed` replaces whatever was there.
    /// `hint` is used when free. Returns the address.
    pub fn map_anon(
        &mut self,
        aspace: &mut dyn AddressSpace,
        hint: u64,
        len: u64,
        prot: Prot,
        fixed: bool,
        kind: RegionKind,
    ) -> SysResult<u64> {
        let len = page_up(len).ok_or(ENOMEM)?;
        let addr = self.place(aspace, hint, len, prot, fixed)?;
        aspace.map(addr, len, prot)?;
        self.insert(Region { start: addr, end: addr + len, prot, kind });
        Ok(addr)
    }

    /// Where a new range of `len` bytes goes (checked against the heap limit); `fixed`
    /// unmaps whatever was there.
    fn place(&mut self, aspace: &mut dyn AddressSpace, hint: u64, len: u64, prot: Prot, fixed: bool) -> SysResult<u64> {
        let len = page_up(len).ok_or(ENOMEM)?;
        if len == 0 {
            return Err(EINVAL);
        }
        let addr = if fixed {
            if !hint.is_multiple_of(PAGE) {
                return Err(EINVAL);
            }
            let end = hint.checked_add(len).ok_or(ENOMEM)?;
            let overlapping: u64 = self.overlap_heap(hint, end);
            let adds = if prot == Prot::NONE { 0 } else { len };
            if self.heap_used - overlapping + adds > self.layout.heap_limit {
                return Err(ENOMEM);
            }
            self.unmap(aspace, hint, len)?;
            hint
        } else {
            if prot != Prot::NONE {
                self.check_heap(len)?;
            }
            let h = page_down(hint);
            if h != 0 && h >= self.layout.mmap_bottom && h.checked_add(len).is_some_and(|e| e <= self.layout.mmap_top && self.is_free(h, e)) {
                h
            } else {
                self.find_free(len).ok_or(ENOMEM)?
            }
        };
        Ok(addr)
    }

    fn overlap_heap(&self, start: u64, end: u64) -> u64 {
        let mut total = 0;
        for (_, r) in self.regions.range(..end).rev().take_while(|(_, r)| r.end > start) {
            if r.counts_as_heap() {
                total += r.end.min(end) - r.start.max(start);
            }
        }
        total
    }

    pub fn unmap(&mut self, aspace: &mut dyn AddressSpace, start: u64, len: u64) -> SysResult<()> {
        if !start.is_multiple_of(PAGE) || len == 0 {
            return Err(EINVAL);
        }
        let end = start.checked_add(page_up(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
        let removed = self.carve(start, end);
        self.account_removed(&removed);
        crate::filemap::trim(&mut self.files, start, end);
        for r in &removed {
            aspace.unmap(r.start, r.len())?;
        }
        Ok(())
    }

    pub fn protect(&mut self, aspace: &mut dyn AddressSpace, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        if !start.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        let end = start.checked_add(page_up(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
        if start == end {
            return Ok(());
        }
        if !self.fully_mapped(start, end) {
            return Err(ENOMEM);
        }
        // Making a reservation accessible commits it; the reverse gives it back.
        let before = self.overlap_heap(start, end);
        let after: u64 = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, r)| r.end > start)
            .filter(|(_, r)| Region { prot, ..**r }.counts_as_heap())
            .map(|(_, r)| r.end.min(end) - r.start.max(start))
            .sum();
        if after > before {
            self.check_heap(after - before)?;
        }
        aspace.protect(start, end - start, prot)?;
        let removed = self.carve(start, end);
        self.account_removed(&removed);
        for r in removed {
            self.insert(Region { prot, ..r });
        }
        Ok(())
    }

    /// `mremap(2)`: grows in place when the pages after are free, or moves (copying the
    /// bytes) when allowed. Shrinking unmaps the tail.
    pub fn remap(&mut self, mem: &mut dyn Memory, old: u64, old_len: u64, new_len: u64, may_move: bool) -> SysResult<u64> {
        if !old.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        let old_len = page_up(old_len).ok_or(EINVAL)?;
        let new_len = page_up(new_len).ok_or(EINVAL)?;
        if new_len == 0 || old_len == 0 {
            return Err(EINVAL);
        }
        let old_end = old.checked_add(old_len).ok_or(EFAULT)?;
        let region = self.lookup(old).ok_or(EFAULT)?;
        if old_end > region.end {
            return Err(EFAULT);
        }
        if new_len <= old_len {
            if new_len < old_len {
                self.unmap(mem.aspace(), old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        let grow = new_len - old_len;
        let new_end = old.checked_add(new_len).ok_or(ENOMEM)?;
        if old_end == region.end && self.is_free(old_end, new_end) && new_end <= self.layout.mmap_top.max(old_end) {
            self.check_heap(grow)?;
            mem.map(old_end, grow, region.prot)?;
            self.insert(Region { start: old_end, end: new_end, prot: region.prot, kind: region.kind });
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        self.check_heap(grow)?;
        let kind = if region.kind == RegionKind::Brk { RegionKind::Anon } else { region.kind };
        let new = self.map_anon(mem.aspace(), 0, new_len, Prot::RW, false, kind)?;
        let mut buf = alloc::vec![0u8; 64 * 1024];
        let mut done = 0;
        while done < old_len {
            let n = (old_len - done).min(buf.len() as u64) as usize;
            mem.read(old + done, &mut buf[..n])?;
            mem.write(new + done, &buf[..n])?;
            done += n as u64;
        }
        if region.prot != Prot::RW {
            self.protect(mem.aspace(), new, new_len, region.prot)?;
        }
        self.unmap(mem.aspace(), old, old_len)?;
        Ok(new)
    }

    /// `madvise(MADV_DONTNEED)`: anonymous pages in the range read as zero again.
    pub fn discard(&mut self, aspace: &mut dyn AddressSpace, start: u64, len: u64) -> SysResult<()> {
        let end = start.checked_add(page_up(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
        let pieces: Vec<Region> = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, r)| r.end > start)
            .map(|(_, r)| Region { start: r.start.max(start), end: r.end.min(end), ..*r })
            .collect();
        for r in pieces {
            if matches!(r.kind, RegionKind::Anon | RegionKind::Brk | RegionKind::Stack) {
                aspace.unmap(r.start, r.len())?;
                aspace.map(r.start, r.len(), r.prot)?;
            }
        }
        Ok(())
    }
}
