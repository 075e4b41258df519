//! App address spaces: frames and translation tables retyped from the app's budget, held
//! in a per-app storage CNode, mapped lazily; and the aliasing window through which the
//! root server reads and writes app memory (a small cache of app frames mapped in our
//! own VSpace).
//!
//! A frame cap lives in one of the app's storage CNodes (1024 slots each, added as the app
//! grows). To invoke it (map, unmap, remap) it is
//! moved into our scratch slot and back; to alias it, a copy goes into a window slot.

use crate::kernel::{self, PAGE, WINDOW_PAGES};
use crate::ut::{root_cnode, root_path, Budget, Error, Pool, Result, Slots};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use musl_shim::Prot;
use sel4::cap;
use sel4::CapTypeForObjectOfFixedSize as _;

const PAGE_U64: u64 = PAGE as u64;
/// Slots per storage CNode: 1024 frame or table caps (32 KiB of untyped).
const STORAGE_BITS: usize = 10;

/// Kernel entries counted so far: app traps and our own invocations (for the measurement
/// note; see `entries`).
static KERNEL_ENTRIES: AtomicU64 = AtomicU64::new(0);

/// Counts `n` kernel entries.
pub fn entries(n: u64) {
    // A load and a store, not an atomic add: the root server has one thread.
    KERNEL_ENTRIES.store(KERNEL_ENTRIES.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Kernel entries counted so far.
pub fn entries_so_far() -> u64 {
    KERNEL_ENTRIES.load(Ordering::Relaxed)
}

/// What the root server owns besides the apps.
pub struct Global {
    pub slots: Slots,
    pub pool: Pool,
    /// An empty slot for short-lived moves.
    scratch: usize,
    alias: [Option<(usize, u64)>; WINDOW_PAGES],
    alias_slot: [usize; WINDOW_PAGES],
    victim: usize,
    /// A window page the next alias must not evict (the source of a page copy).
    pin: Option<usize>,
    pub alias_misses: u64,
    /// Fault-endpoint badges of the apps' threads: badge -> (app id, thread id).
    pub owners: Owners,
    next_badge: u64,
    next_key: usize,
    /// The 12 registers of the UnknownSyscall reply the root server sends next (main.rs's
    /// `Next::ReplySyscall`): kept here so that `Next`, returned for every message, stays small.
    pub syscall_reply: [u64; 12],
}

/// Fault-endpoint badges of the apps' threads: badge -> (app id, thread id), with the last
/// one found kept aside: a thread's syscalls come in runs, and the map's search is a good
/// part of a quick call's cost (issue 11). Badges are never reused.
#[derive(Default)]
pub struct Owners {
    map: BTreeMap<u64, (usize, u32)>,
    last: Option<(u64, (usize, u32))>,
}

impl Owners {
    pub fn insert(&mut self, badge: u64, owner: (usize, u32)) {
        self.map.insert(badge, owner);
        if self.last.is_some_and(|l| l.0 == badge) {
            self.last = Some((badge, owner));
        }
    }

    pub fn remove(&mut self, badge: &u64) {
        self.map.remove(badge);
        if self.last.is_some_and(|l| l.0 == *badge) {
            self.last = None;
        }
    }

    pub fn get(&mut self, badge: u64) -> Option<(usize, u32)> {
        if let Some((b, owner)) = self.last {
            if b == badge {
                return Some(owner);
            }
        }
        let owner = *self.map.get(&badge)?;
        self.last = Some((badge, owner));
        Some(owner)
    }
}

impl Global {
    pub fn new(mut slots: Slots, mut pool: Pool) -> Result<Global> {
        kernel::heap_source(pool.heap_source(&mut slots)?);
        let scratch = slots.alloc()?;
        let mut alias_slot = [0; WINDOW_PAGES];
        for s in &mut alias_slot {
            *s = slots.alloc()?;
        }
        Ok(Global {
            slots,
            pool,
            scratch,
            alias: [None; WINDOW_PAGES],
            alias_slot,
            victim: 0,
            pin: None,
            alias_misses: 0,
            owners: Owners::default(),
            next_badge: 1,
            next_key: 0,
            syscall_reply: [0; 12],
        })
    }

    /// A badge never handed out before (thread badges are never reused, so a stale one
    /// cannot name a new thread).
    pub fn new_badge(&mut self) -> u64 {
        self.next_badge += 1;
        self.next_badge - 1
    }

    /// A key for a new address space (what the alias window's entries are tagged with).
    pub fn new_space_key(&mut self) -> usize {
        self.next_key += 1;
        self.next_key - 1
    }

    fn scratch_path(&self) -> sel4::AbsoluteCPtr {
        root_path(self.scratch)
    }

    fn evict(&mut self, i: usize) {
        if self.alias[i].take().is_some() {
            entries(2);
            let copy = cap::Granule::from_bits(self.alias_slot[i] as u64);
            let _ = copy.frame_unmap();
            let _ = root_path(self.alias_slot[i]).delete();
        }
    }

    /// Forgets every alias of space `key` (before its memory is revoked).
    pub fn evict_space(&mut self, key: usize) {
        for i in 0..WINDOW_PAGES {
            if matches!(self.alias[i], Some((a, _)) if a == key) {
                self.evict(i);
            }
        }
    }

    fn evict_page(&mut self, key: usize, vpage: u64) {
        for i in 0..WINDOW_PAGES {
            if self.alias[i] == Some((key, vpage)) {
                self.evict(i);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Page {
    /// Slot in the storage CNode.
    idx: usize,
    prot: Prot,
    /// Mapped in the app's VSpace (false while PROT_NONE).
    mapped: bool,
    /// A read-only copy of one of our own image frames (the bundle): never written, never
    /// reused for anything else.
    shared: bool,
    /// A frame of a shared file mapping that a fork gave to both processes (the cap here
    /// is the original or a copy): never reused for anything else, so the other process
    /// never sees another mapping's bytes in it.
    alias: bool,
}

/// Counters for the measurement note.
#[derive(Debug, Default, Clone, Copy)]
pub struct VmStats {
    pub frames_now: u64,
    pub frames_peak: u64,
    pub frames_retyped: u64,
    pub tables: u64,
    pub lazy_faults: u64,
    /// Pages mapped from our image without a copy (read-only ELF segments).
    pub shared_frames: u64,
}

/// One process's address space.
pub struct Space {
    /// Unique among live spaces: tags the alias window's entries.
    pub key: usize,
    pub vspace: cap::VSpace,
    /// Storage CNodes, each of 2^STORAGE_BITS slots, and the slots of ours holding them.
    storage: Vec<cap::CNode>,
    pub storage_slots: Vec<usize>,
    next_idx: usize,
    free_idx: Vec<usize>,
    pages: BTreeMap<u64, Page>,
    /// Valid ranges `start -> (end, prot)`, mapped on first touch.
    ranges: BTreeMap<u64, (u64, Prot)>,
    tables: BTreeSet<(usize, u64)>,
    /// Unmapped frames kept for reuse (zeroed when reused).
    spare: Vec<usize>,
    pub stats: VmStats,
}

/// `Page_Map` of `frame` at `va` in `vspace`: every mapping goes through this one copy of
/// the invocation (never inlined, as `ut::retype_one`).
#[inline(never)]
pub fn map_frame(frame: cap::Granule, vspace: cap::VSpace, va: usize, rights: sel4::CapRights, attrs: sel4::VmAttributes) -> sel4::Result<()> {
    frame.frame_map(vspace, va, rights, attrs)
}

fn rights_attrs(prot: Prot) -> (sel4::CapRights, sel4::VmAttributes) {
    let rights = if prot.w() { sel4::CapRights::read_write() } else { sel4::CapRights::read_only() };
    let mut attrs = sel4::VmAttributes::DEFAULT;
    if !prot.x() {
        attrs |= sel4::VmAttributes::EXECUTE_NEVER;
    }
    (rights, attrs)
}

impl Space {
    /// `vspace` is assigned to an ASID already.
    pub fn new(key: usize, vspace: cap::VSpace) -> Space {
        Space {
            key,
            vspace,
            storage: Vec::new(),
            storage_slots: Vec::new(),
            next_idx: 0,
            free_idx: Vec::new(),
            pages: BTreeMap::new(),
            ranges: BTreeMap::new(),
            tables: BTreeSet::new(),
            spare: Vec::new(),
            stats: VmStats::default(),
        }
    }

    /// The page at `vpage`, when one is backed: every lookup goes through this one copy of
    /// the tree search (inlined, each copy that runs at boot is translated anew by QEMU's
    /// TCG; issue 11).
    #[inline(never)]
    fn page(&self, vpage: u64) -> Option<Page> {
        self.pages.get(&vpage).copied()
    }

    fn storage_path(&self, idx: usize) -> sel4::AbsoluteCPtr {
        self.storage[idx >> STORAGE_BITS].absolute_cptr_from_bits_with_depth((idx & ((1 << STORAGE_BITS) - 1)) as u64, STORAGE_BITS)
    }

    fn alloc_idx(&mut self, g: &mut Global, b: &mut Budget) -> Result<usize> {
        if let Some(i) = self.free_idx.pop() {
            return Ok(i);
        }
        if self.next_idx == self.storage.len() << STORAGE_BITS {
            let slot = g.slots.alloc()?;
            let bp = sel4::ObjectBlueprint::CNode { size_bits: STORAGE_BITS };
            if let Err(e) = b.retype(&mut g.pool, &mut g.slots, &bp, &root_cnode().absolute_cptr_for_self(), slot) {
                g.slots.free(slot);
                return Err(e);
            }
            entries(1);
            self.storage.push(cap::CNode::from_bits(slot as u64));
            self.storage_slots.push(slot);
        }
        self.next_idx += 1;
        Ok(self.next_idx - 1)
    }

    /// Runs `f` on the cap in storage slot `idx`, moved into our scratch slot meanwhile.
    fn with_cap<T>(&self, g: &Global, idx: usize, f: impl FnOnce(cap::Unspecified) -> sel4::Result<T>) -> Result<T> {
        entries(3);
        g.scratch_path().move_(&self.storage_path(idx))?;
        let r = f(cap::Unspecified::from_bits(g.scratch as u64));
        self.storage_path(idx).move_(&g.scratch_path())?;
        Ok(r?)
    }

    /// Retypes an object into our scratch slot, lets `f` use it, then stores it.
    fn new_object(&mut self, g: &mut Global, b: &mut Budget, bp: &sel4::ObjectBlueprint, f: impl FnOnce(cap::Unspecified) -> sel4::Result<()>) -> Result<usize> {
        let idx = self.alloc_idx(g, b)?;
        let dst = root_cnode().absolute_cptr_for_self();
        if let Err(e) = b.retype(&mut g.pool, &mut g.slots, bp, &dst, g.scratch) {
            self.free_idx.push(idx);
            return Err(e);
        }
        entries(3);
        let r = f(cap::Unspecified::from_bits(g.scratch as u64));
        self.storage_path(idx).move_(&g.scratch_path())?;
        r?;
        Ok(idx)
    }

    fn ensure_tables(&mut self, g: &mut Global, b: &mut Budget, vaddr: u64) -> Result<()> {
        for level in 1..sel4::vspace_levels::NUM_LEVELS {
            let bits = sel4::vspace_levels::span_bits(level);
            let base = vaddr & !((1u64 << bits) - 1);
            if self.tables.contains(&(level, base)) {
                continue;
            }
            let ty = sel4::TranslationTableObjectType::from_level(level).expect("a table type per level");
            let vspace = self.vspace;
            self.new_object(g, b, &ty.blueprint(), |c| {
                c.cast::<sel4::cap_type::UnspecifiedIntermediateTranslationTable>()
                    .generic_intermediate_translation_table_map(ty, vspace, base as usize, sel4::VmAttributes::default())
            })?;
            self.tables.insert((level, base));
            self.stats.tables += 1;
        }
        Ok(())
    }

    /// Maps a zeroed frame at `vpage` with `prot` (PROT_NONE: allocated, not mapped).
    fn map_new(&mut self, g: &mut Global, b: &mut Budget, vpage: u64, prot: Prot) -> Result<Page> {
        self.ensure_tables(g, b, vpage)?;
        let (rights, attrs) = rights_attrs(prot);
        let vspace = self.vspace;
        let map = prot.0 != 0;
        let (idx, dirty) = if let Some(idx) = self.spare.pop() {
            if map {
                self.with_cap(g, idx, |c| map_frame(c.cast(), vspace, vpage as usize, rights, attrs))?;
            }
            (idx, true)
        } else {
            let bp = sel4::cap_type::Granule::object_blueprint();
            let idx = self.new_object(g, b, &bp, |c| {
                if map {
                    map_frame(c.cast(), vspace, vpage as usize, rights, attrs)
                } else {
                    Ok(())
                }
            })?;
            self.stats.frames_retyped += 1;
            (idx, false)
        };
        if map && prot.x() {
            kernel::unify_instruction(vspace, vpage as usize, (vpage + PAGE_U64) as usize)?;
        }
        let page = Page { idx, prot, mapped: map, shared: false, alias: false };
        self.pages.insert(vpage, page);
        if dirty {
            // A reused frame still holds what the app last wrote there; the app is blocked
            // until we reply, so it never sees that.
            let i = self.alias(g, b, vpage)?;
            kernel::window_zero(i);
        }
        self.stats.frames_now += 1;
        self.stats.frames_peak = self.stats.frames_peak.max(self.stats.frames_now);
        Ok(page)
    }

    /// The valid range holding `addr`.
    fn range_of(&self, addr: u64) -> Option<(u64, u64, Prot)> {
        let (&s, &(e, p)) = self.ranges.range(..=addr).next_back()?;
        (addr < e).then_some((s, e, p))
    }

    /// Removes `[start, end)` from the valid ranges, splitting them.
    fn carve(&mut self, start: u64, end: u64) {
        let keys: Vec<u64> = self.ranges.range(..end).map(|(&k, _)| k).collect();
        for k in keys {
            let (e, p) = self.ranges[&k];
            if e <= start {
                continue;
            }
            self.ranges.remove(&k);
            if k < start {
                self.ranges.insert(k, (start, p));
            }
            if e > end {
                self.ranges.insert(end, (e, p));
            }
        }
    }

    /// A VM fault at `addr`: maps a frame when the address is valid but not yet backed.
    /// Ok(false): a real fault (unmapped address, or a page already mapped: a permission fault).
    pub fn fault_in(&mut self, g: &mut Global, b: &mut Budget, addr: u64) -> Result<bool> {
        let vpage = addr & !(PAGE_U64 - 1);
        if self.page(vpage).is_some() {
            return Ok(false);
        }
        match self.range_of(addr) {
            Some((_, _, prot)) if prot.0 != 0 => {
                self.map_new(g, b, vpage, prot)?;
                self.stats.lazy_faults += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Window page aliasing app page `vpage`, backing it first when it is valid.
    fn alias(&mut self, g: &mut Global, b: &mut Budget, vpage: u64) -> Result<usize> {
        if let Some(i) = g.alias.iter().position(|a| *a == Some((self.key, vpage))) {
            return Ok(i);
        }
        let page = match self.page(vpage) {
            Some(p) => p,
            None => match self.range_of(vpage) {
                Some((_, _, prot)) => self.map_new(g, b, vpage, prot)?,
                None => return Err(Error::Kernel(sel4::Error::FailedLookup)),
            },
        };
        g.alias_misses += 1;
        entries(2);
        let mut i = g.victim;
        if g.pin == Some(i) {
            i = (i + 1) % WINDOW_PAGES;
        }
        g.victim = (i + 1) % WINDOW_PAGES;
        g.evict(i);
        root_path(g.alias_slot[i]).copy(&self.storage_path(page.idx), sel4::CapRights::read_write())?;
        let copy = cap::Granule::from_bits(g.alias_slot[i] as u64);
        let attrs = sel4::VmAttributes::DEFAULT | sel4::VmAttributes::EXECUTE_NEVER;
        if let Err(e) = map_frame(copy, sel4::init_thread::slot::VSPACE.cap(), kernel::window_addr(i), sel4::CapRights::read_write(), attrs) {
            let _ = root_path(g.alias_slot[i]).delete();
            return Err(e.into());
        }
        g.alias[i] = Some((self.key, vpage));
        Ok(i)
    }

    /// Privileged copy out of app memory; EFAULT outside valid ranges.
    pub fn read(&mut self, g: &mut Global, b: &mut Budget, addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = addr.checked_add(done as u64).ok_or(Error::Kernel(sel4::Error::RangeError))?;
            let off = (at % PAGE_U64) as usize;
            let n = (PAGE - off).min(buf.len() - done);
            let i = self.alias(g, b, at - off as u64)?;
            kernel::window_read(i, off, &mut buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Privileged copy into app memory.
    pub fn write(&mut self, g: &mut Global, b: &mut Budget, addr: u64, bytes: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let at = addr.checked_add(done as u64).ok_or(Error::Kernel(sel4::Error::RangeError))?;
            let off = (at % PAGE_U64) as usize;
            let n = (PAGE - off).min(bytes.len() - done);
            let vpage = at - off as u64;
            if self.page(vpage).is_some_and(|p| p.shared) {
                // Read-only text shared with the bundle (EFAULT, as Linux gives for it).
                return Err(Error::Kernel(sel4::Error::IllegalOperation));
            }
            let i = self.alias(g, b, vpage)?;
            kernel::window_write(i, off, &bytes[done..done + n]);
            if self.page(vpage).is_some_and(|p| p.mapped && p.prot.x()) {
                kernel::unify_instruction(self.vspace, at as usize, (at + n as u64) as usize)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Makes `[start, end)` valid with `prot` (dropping what was there); frames come on
    /// first touch.
    pub fn map(&mut self, g: &mut Global, start: u64, end: u64, prot: Prot) -> Result<()> {
        self.unmap(g, start, end)?;
        self.add_range(start, end, prot);
        Ok(())
    }

    pub fn add_range(&mut self, start: u64, end: u64, prot: Prot) {
        self.carve(start, end);
        self.ranges.insert(start, (end, prot));
    }

    /// Drops `[start, end)`: frames are kept for reuse (zeroed when reused).
    pub fn unmap(&mut self, g: &mut Global, start: u64, end: u64) -> Result<()> {
        self.carve(start, end);
        let vpages: Vec<u64> = self.pages.range(start..end).map(|(&k, _)| k).collect();
        for vpage in vpages {
            let page = self.pages.remove(&vpage).expect("listed above");
            g.evict_page(self.key, vpage);
            if page.mapped {
                self.with_cap(g, page.idx, |c| c.cast::<sel4::cap_type::Granule>().frame_unmap())?;
            }
            if page.shared || page.alias {
                entries(1);
                let _ = self.storage_path(page.idx).delete();
                self.free_idx.push(page.idx);
                if page.alias {
                    self.stats.frames_now -= 1;
                }
                continue;
            }
            self.stats.frames_now -= 1;
            self.spare.push(page.idx);
        }
        Ok(())
    }

    /// Changes the protection of `[start, end)` and of the frames already there.
    pub fn protect(&mut self, g: &mut Global, start: u64, end: u64, prot: Prot) -> Result<()> {
        // Only the valid parts change.
        let mut pieces = Vec::new();
        for (&s, &(e, _)) in self.ranges.range(..end) {
            if e > start {
                pieces.push((s.max(start), e.min(end)));
            }
        }
        for &(s, e) in &pieces {
            self.add_range(s, e, prot);
        }
        let vpages: Vec<u64> = self.pages.range(start..end).map(|(&k, _)| k).collect();
        let (rights, attrs) = rights_attrs(prot);
        let vspace = self.vspace;
        if prot.w() && vpages.iter().any(|&v| self.page(v).is_some_and(|p| p.shared)) {
            // Making shared text writable would need a private copy first.
            return Err(Error::Kernel(sel4::Error::IllegalOperation));
        }
        for vpage in vpages {
            let Some(mut page) = self.page(vpage) else { continue };
            if page.prot == prot && page.mapped == (prot.0 != 0) {
                // As it is already (a loaded ELF's data segment, mapped RW to be written).
                continue;
            }
            if prot.0 == 0 {
                if page.mapped {
                    self.with_cap(g, page.idx, |c| c.cast::<sel4::cap_type::Granule>().frame_unmap())?;
                }
                page.mapped = false;
            } else {
                // Mapping a mapped cap again at the same address changes its rights.
                self.with_cap(g, page.idx, |c| map_frame(c.cast(), vspace, vpage as usize, rights.clone(), attrs))?;
                if prot.x() {
                    kernel::unify_instruction(vspace, vpage as usize, (vpage + PAGE_U64) as usize)?;
                }
                page.mapped = true;
            }
            page.prot = prot;
            self.pages.insert(vpage, page);
        }
        Ok(())
    }

    /// Untyped bytes a copy of this space would take at most (frames, tables, storage
    /// CNodes, the VSpace).
    pub fn copy_cost(&self) -> u64 {
        let private = self.pages.values().filter(|p| !p.shared).count() as u64;
        let caps = self.pages.len() as u64 + self.tables.len() as u64;
        (private + self.tables.len() as u64 + 1) * PAGE_U64 + (caps / (1 << STORAGE_BITS) + 1) * (32 << STORAGE_BITS)
    }

    /// Addresses of the pages backed by a frame now.
    pub fn present(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.keys().copied()
    }

    /// Drops the bookkeeping of a destroyed app (its objects were revoked already).
    pub fn forget(&mut self) {
        self.pages = BTreeMap::new();
        self.ranges = BTreeMap::new();
        self.tables = BTreeSet::new();
        self.spare = Vec::new();
        self.free_idx = Vec::new();
    }

    /// Maps a read-only copy of our own image frame in slot `root_slot` at `vpage` (an ELF
    /// segment straight from the bundle, no copy of its bytes).
    pub fn map_shared(&mut self, g: &mut Global, b: &mut Budget, vpage: u64, root_slot: usize, prot: Prot) -> Result<()> {
        self.ensure_tables(g, b, vpage)?;
        let idx = self.alloc_idx(g, b)?;
        entries(1);
        if let Err(e) = self.storage_path(idx).copy(&root_path(root_slot), sel4::CapRights::read_only()) {
            self.free_idx.push(idx);
            return Err(e.into());
        }
        let vspace = self.vspace;
        let (rights, attrs) = rights_attrs(Prot(prot.0 & !Prot::WRITE));
        self.with_cap(g, idx, |c| map_frame(c.cast(), vspace, vpage as usize, rights, attrs))?;
        if prot.x() {
            kernel::unify_instruction(vspace, vpage as usize, (vpage + PAGE_U64) as usize)?;
        }
        self.pages.insert(vpage, Page { idx, prot, mapped: true, shared: true, alias: false });
        self.stats.shared_frames += 1;
        Ok(())
    }

    /// A copy with `rights` of the cap in `parent`'s storage slot `from`, in a storage
    /// slot of ours, with the tables for `vpage` ready (a frame both spaces map).
    fn copy_cap_of(&mut self, g: &mut Global, b: &mut Budget, parent: &Space, vpage: u64, from: usize, rights: sel4::CapRights) -> Result<usize> {
        self.ensure_tables(g, b, vpage)?;
        let idx = self.alloc_idx(g, b)?;
        entries(1);
        if let Err(e) = self.storage_path(idx).copy(&parent.storage_path(from), rights) {
            self.free_idx.push(idx);
            return Err(e.into());
        }
        Ok(idx)
    }

    /// Makes this fresh space a copy of `parent` (fork): the same valid ranges, a copy of
    /// every private frame, the read-only frames shared with the bundle mapped again, and
    /// in `shared` (the parent's shared file mappings) the parent's own frames, so that
    /// each process sees the other's stores at once, as Linux's MAP_SHARED gives. Returns
    /// how many frames were copied.
    pub fn copy_of(&mut self, g: &mut Global, b: &mut Budget, parent: &mut Space, pb: &mut Budget, shared: &[(u64, u64)]) -> Result<u64> {
        self.ranges = parent.ranges.clone();
        let in_shared = |v: u64| shared.iter().any(|&(s, e)| v >= s && v < e);
        // Every page of a shared mapping gets its frame now, so both have the same one.
        for &(s, e) in shared {
            let mut v = s & !(PAGE_U64 - 1);
            while v < e {
                if parent.page(v).is_none() {
                    if let Some((_, _, prot)) = parent.range_of(v) {
                        parent.map_new(g, pb, v, prot)?;
                    }
                }
                v += PAGE_U64;
            }
        }
        let pages: Vec<(u64, Page)> = parent.pages.iter().map(|(&k, &p)| (k, p)).collect();
        let mut copied = 0;
        for (vpage, p) in pages {
            if !p.shared && in_shared(vpage) {
                let idx = self.copy_cap_of(g, b, parent, vpage, p.idx, sel4::CapRights::read_write())?;
                self.pages.insert(vpage, Page { idx, alias: true, ..p });
                parent.pages.insert(vpage, Page { alias: true, ..p });
                if p.mapped {
                    let vspace = self.vspace;
                    let (rights, attrs) = rights_attrs(p.prot);
                    self.with_cap(g, idx, |c| map_frame(c.cast(), vspace, vpage as usize, rights, attrs))?;
                }
                self.stats.frames_now += 1;
                self.stats.frames_peak = self.stats.frames_peak.max(self.stats.frames_now);
                continue;
            }
            if p.shared {
                let idx = self.copy_cap_of(g, b, parent, vpage, p.idx, sel4::CapRights::read_only())?;
                self.pages.insert(vpage, Page { idx, ..p });
                let vspace = self.vspace;
                let (rights, attrs) = rights_attrs(Prot(p.prot.0 & !Prot::WRITE));
                self.with_cap(g, idx, |c| map_frame(c.cast(), vspace, vpage as usize, rights, attrs))?;
                if p.prot.x() {
                    kernel::unify_instruction(vspace, vpage as usize, (vpage + PAGE_U64) as usize)?;
                }
                self.stats.shared_frames += 1;
                continue;
            }
            self.map_new(g, b, vpage, p.prot)?;
            let src = parent.alias(g, pb, vpage)?;
            g.pin = Some(src);
            let dst = self.alias(g, b, vpage);
            g.pin = None;
            let dst = dst?;
            kernel::window_copy(src, dst);
            if p.mapped && p.prot.x() {
                kernel::unify_instruction(self.vspace, vpage as usize, (vpage + PAGE_U64) as usize)?;
            }
            copied += 1;
        }
        Ok(copied)
    }
}
