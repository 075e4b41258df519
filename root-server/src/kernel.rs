//! The only module with `unsafe`: the embedded bundle, the aliasing window, the heap
//! (charged per app), the MMIO pages (PL011, PL031), the generic timer's system
//! registers, and raw kernel calls the `sel4` crate does not wrap. Everything here checks bounds before it
//! touches memory, so the rest of the root server stays safe code.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Where `selkie pack` placed the bundle: it patches these bytes in the root-server ELF
/// (found by the symbol name `SELKIE_BUNDLE`) and adds a PT_LOAD segment holding the bundle.
#[repr(C)]
pub struct BundleRef {
    pub magic: [u8; 8],
    pub addr: u64,
    pub len: u64,
}

/// The magic `selkie pack` looks for before patching.
pub const BUNDLE_MAGIC: [u8; 8] = *b"SELKIEBD";

#[no_mangle]
#[used]
pub static SELKIE_BUNDLE: BundleRef = BundleRef { magic: BUNDLE_MAGIC, addr: 0, len: 0 };

extern "C" {
    static __executable_start: u8;
}

/// First virtual address of our image (the kernel maps it from bootinfo's user image frames).
pub fn image_start() -> usize {
    ptr::addr_of!(__executable_start) as usize
}

/// The bundle, when `selkie pack` embedded one inside `[image_start, image_end)`.
pub fn bundle(image_end: usize) -> Result<&'static [u8], &'static str> {
    // SAFETY: a plain read of an initialized static; volatile because the packer changes
    // its bytes after linking, so the compiler must not fold the initializer in.
    let r = unsafe { ptr::read_volatile(ptr::addr_of!(SELKIE_BUNDLE)) };
    if r.magic != BUNDLE_MAGIC {
        return Err("the bundle reference has a bad magic");
    }
    if r.addr == 0 || r.len == 0 {
        return Err("no bundle embedded: this root server was not packed by `selkie pack --platform`");
    }
    let start = r.addr as usize;
    let end = start.checked_add(r.len as usize).ok_or("bundle range overflows")?;
    if start < image_start() || end > image_end {
        return Err("the bundle lies outside the root server's image");
    }
    // SAFETY: [start, end) lies within our own image, which the kernel mapped read-only or
    // read-write for us before we started, and nothing ever writes to it.
    Ok(unsafe { core::slice::from_raw_parts(start as *const u8, r.len as usize) })
}

/// A page of our .bss whose frame is unmapped at start; the UART's registers go there.
#[repr(C, align(4096))]
struct MmioPage([u8; PAGE]);

static mut UART_PAGE: MmioPage = MmioPage([0; PAGE]);
static UART_ON: AtomicBool = AtomicBool::new(false);

/// Address where the UART's registers get mapped.
pub fn uart_addr() -> usize {
    ptr::addr_of!(UART_PAGE) as usize
}

/// Says that a PL011's registers are mapped at [`uart_addr`] (device memory).
pub fn uart_mapped() {
    UART_ON.store(true, Ordering::Release);
}

/// Writes one byte to the PL011 (polling its FIFO-full flag), or returns false when no
/// UART is mapped.
pub fn uart_put(b: u8) -> bool {
    if !UART_ON.load(Ordering::Acquire) {
        return false;
    }
    const DR: usize = 0x00;
    const FR: usize = 0x18;
    const FR_TXFF: u32 = 1 << 5;
    let base = uart_addr();
    // SAFETY: `uart_mapped` was called after the PL011's register frame was mapped at
    // `base` as device memory; DR and FR are 32-bit registers inside that page.
    unsafe {
        while ptr::read_volatile((base + FR) as *const u32) & FR_TXFF != 0 {}
        ptr::write_volatile((base + DR) as *mut u32, u32::from(b));
    }
    true
}

/// A page of our .bss whose frame is unmapped at start; the PL031 RTC's registers go there.
static mut RTC_PAGE: MmioPage = MmioPage([0; PAGE]);
static RTC_ON: AtomicBool = AtomicBool::new(false);

/// Address where the RTC's registers get mapped.
pub fn rtc_addr() -> usize {
    ptr::addr_of!(RTC_PAGE) as usize
}

/// Says that a PL031's registers are mapped at [`rtc_addr`] (device memory).
pub fn rtc_mapped() {
    RTC_ON.store(true, Ordering::Release);
}

/// The PL031's data register: seconds since the Unix epoch (QEMU sets it from the host's
/// clock), or `None` when no RTC is mapped.
pub fn rtc_seconds() -> Option<u32> {
    if !RTC_ON.load(Ordering::Acquire) {
        return None;
    }
    const RTCDR: usize = 0x00;
    // SAFETY: `rtc_mapped` was called after the PL031's register frame was mapped at
    // `rtc_addr()` as device memory; RTCDR is a 32-bit register at its start.
    Some(unsafe { ptr::read_volatile((rtc_addr() + RTCDR) as *const u32) })
}

/// The generic timer's physical count (CNTPCT_EL0; the kernel lets EL0 read it:
/// KernelArmExportPCNTUser).
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: a read of a system register EL0 may access; no memory is touched. The isb
    // keeps the read from being hoisted above earlier instructions.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The counter's frequency in Hz (CNTFRQ_EL0).
pub fn counter_frequency() -> u64 {
    let v: u64;
    // SAFETY: as in `counter`.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Arms the EL1 physical timer (its interrupt, PPI 30, reaches us through the kernel) to
/// fire when the counter reaches `cval` (KernelArmExportPTMRUser lets EL0 program it).
pub fn timer_arm(cval: u64) {
    // SAFETY: writes of timer registers EL0 may access; CTL = ENABLE, interrupt unmasked.
    unsafe {
        core::arch::asm!(
            "msr cntp_cval_el0, {c}",
            "msr cntp_ctl_el0, {on}",
            "isb",
            c = in(reg) cval,
            on = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Stops the EL1 physical timer (its interrupt line drops).
pub fn timer_stop() {
    // SAFETY: as in `timer_arm`; CTL = 0 disables the timer.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack, preserves_flags)) };
}

/// Pages in the aliasing window (our view of app frames for syscall copies).
pub const WINDOW_PAGES: usize = 32;
pub const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Window([u8; WINDOW_PAGES * PAGE]);

static mut WINDOW: Window = Window([0; WINDOW_PAGES * PAGE]);

/// A page of our image holding the signal trampoline (`mov x8, #139` and the trapping
/// `udf`, musl-shim's `sigframe::sigtramp_code`): every process maps its frame read-only
/// and executable at `sigframe::SIGTRAMP`, as the bundle's text is mapped.
#[repr(C, align(4096))]
pub struct CodePage(pub [u8; PAGE]);

pub static SIGTRAMP_PAGE: CodePage = CodePage(sigtramp_page());

const fn sigtramp_page() -> [u8; PAGE] {
    let mut p = [0u8; PAGE];
    let code = [0xd280_1168u32.to_le_bytes(), musl_shim::sigframe::TRAP_WORD.to_le_bytes()];
    let mut i = 0;
    while i < 8 {
        p[i] = code[i / 4][i % 4];
        i += 1;
    }
    p
}

/// Address of the trampoline page in our image.
pub fn sigtramp_addr() -> usize {
    ptr::addr_of!(SIGTRAMP_PAGE) as usize
}

/// Channel rings (musl_shim::channel): pages of our image, so that their frames can be
/// mapped read-only into consuming apps as the bundle's are.
#[repr(C, align(4096))]
struct Rings([u8; RINGS_BYTES]);

const RINGS_BYTES: usize = musl_shim::channel::MAX_CHANNELS * musl_shim::channel::RING_BYTES;

static mut RINGS: Rings = Rings([0; RINGS_BYTES]);

fn ring_check(ring: usize, off: usize, len: usize) -> usize {
    let size = musl_shim::channel::RING_BYTES;
    assert!(ring < musl_shim::channel::MAX_CHANNELS && off <= size && len <= size - off, "ring access out of bounds");
    ring_addr(ring) + off
}

/// Address of ring `ring`'s first byte (page-aligned).
pub fn ring_addr(ring: usize) -> usize {
    ptr::addr_of!(RINGS) as usize + ring * musl_shim::channel::RING_BYTES
}

/// Copies out of ring `ring`.
pub fn ring_read(ring: usize, off: usize, buf: &mut [u8]) {
    let at = ring_check(ring, off, buf.len());
    // SAFETY: bounds checked above; RINGS is ours, always mapped, only touched through
    // these two functions (no Rust reference to it exists); apps map it read-only.
    unsafe { ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies into ring `ring`.
pub fn ring_write(ring: usize, off: usize, bytes: &[u8]) {
    let at = ring_check(ring, off, bytes.len());
    // SAFETY: as in `ring_read`.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) }
}

/// Address of window page `i`'s first byte.
pub fn window_addr(i: usize) -> usize {
    assert!(i < WINDOW_PAGES);
    ptr::addr_of!(WINDOW) as usize + i * PAGE
}

fn window_check(i: usize, off: usize, len: usize) -> usize {
    assert!(i < WINDOW_PAGES && off <= PAGE && len <= PAGE - off, "window access out of bounds");
    window_addr(i) + off
}

/// Copies from window page `i` (which the caller has mapped to an app frame).
pub fn window_read(i: usize, off: usize, buf: &mut [u8]) {
    let at = window_check(i, off, buf.len());
    // SAFETY: bounds checked above; the page is mapped (an invariant of `vm::Alias`), and
    // no Rust reference to WINDOW exists.
    unsafe { ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies into window page `i`.
pub fn window_write(i: usize, off: usize, bytes: &[u8]) {
    let at = window_check(i, off, bytes.len());
    // SAFETY: as in `window_read`.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) }
}

/// Copies window page `src` to window page `dst` (both mapped, distinct).
pub fn window_copy(src: usize, dst: usize) {
    assert!(src != dst, "window copy onto itself");
    let (from, to) = (window_check(src, 0, PAGE), window_check(dst, 0, PAGE));
    // SAFETY: bounds checked above; both pages are mapped (an invariant of `vm::Alias`),
    // distinct, and no Rust reference to WINDOW exists.
    unsafe { ptr::copy_nonoverlapping(from as *const u8, to as *mut u8, PAGE) }
}

/// Zeroes window page `i`.
pub fn window_zero(i: usize) {
    let at = window_check(i, 0, PAGE);
    // SAFETY: as in `window_read`.
    unsafe { ptr::write_bytes(at as *mut u8, 0, PAGE) }
}

/// `seL4_ARM_VSpace_Unify_Instruction` over `[start, end)` (within one page).
pub fn unify_instruction(vspace: sel4::cap::VSpace, start: usize, end: usize) -> sel4::Result<()> {
    crate::vm::entries(1);
    let err = sel4::with_ipc_buffer_mut(|ib| {
        ib.inner_mut()
            .seL4_ARM_VSpace_Unify_Instruction(vspace.bits(), start as sel4::Word, end as sel4::Word)
    });
    sel4::Error::from_sys(err).map_or(Ok(()), Err)
}

/// The root server's heap: what the apps' quotas are cut from (see main.rs). Its first
/// `HEAP_STATIC` bytes are a region of our image; the rest is mapped on demand (see
/// [`HeapSource`]), so that the loader need not zero, and the kernel need not make frames
/// for, megabytes that a small app never touches (issue 11, boot time).
pub const HEAP_SIZE: usize = 64 << 20;
/// What the heap falls back to when no untouched untyped holds [`HEAP_SIZE`] (a board
/// with little RAM): the root server's heap before it grew, enough for small apps.
pub const HEAP_SIZE_SMALL: usize = 8 << 20;
/// The heap the source given to [`heap_source`] can back (at most [`HEAP_SIZE`]): what
/// the apps' quotas are cut from.
static HEAP_LIMIT: AtomicUsize = AtomicUsize::new(HEAP_STATIC);

/// The heap's size: what its static part and its growth source can hold.
pub fn heap_size() -> usize {
    HEAP_LIMIT.load(Ordering::Relaxed)
}
/// The part of the heap in our image (.bss): a small app's state fits (hello takes 17 KiB).
const HEAP_STATIC: usize = 256 << 10;
/// Bytes mapped at a time when the heap grows.
const GROW_STEP: usize = 64 << 10;
/// Where the grown heap lies in our VSpace: far above our image, its IPC buffer and
/// bootinfo, and within the smallest user address space of a 3-level VSpace (39 bits).
const GROW_BASE: usize = 0x40_0000_0000;
/// Apps' accounts: the manifest allows this many apps.
pub const ACCOUNTS: usize = selkie_manifest::MAX_APPS;
/// "No app": allocations charged to the root server itself.
const ROOT: usize = usize::MAX;

#[repr(C, align(4096))]
struct HeapMem([u8; HEAP_STATIC]);

static mut HEAP_MEM: HeapMem = HeapMem([0; HEAP_STATIC]);

/// Untyped memory and slots of ours reserved for growing the heap: frames are retyped
/// from `untypeds` in order (a boot untyped is zeroed whole by the kernel on its first
/// retype, so the small ones come first), into `slots`, and mapped from [`GROW_BASE`] on,
/// with the translation tables the range lacks.
pub struct HeapSource {
    /// (slot, size_bits) of each untyped, used in order.
    pub untypeds: [(usize, usize); 16],
    pub count: usize,
    /// Slots of our CNode for the frames and tables: `slots.start` is the next free one.
    pub slots: core::ops::Range<usize>,
}

/// The heap's growth: set once by [`heap_source`], used under the grown heap's lock.
struct Grower {
    source: Option<HeapSource>,
    /// The untyped frames are retyped from now (index into `untypeds`), and the bytes of
    /// it retyped so far (the kernel hands an untyped out in order; a retype that does not
    /// fit must not be tried: a debug kernel prints its error on the console).
    current: usize,
    used: usize,
    /// Bytes mapped from GROW_BASE.
    mapped: usize,
}

static mut GROWER: Grower = Grower { source: None, current: 0, used: 0, mapped: 0 };

/// Hands the heap the untypeds and slots it grows with (before any app starts).
pub fn heap_source(source: HeapSource) {
    // Frames need their tables too: one 4 KiB table per 2 MiB, and a few above.
    let bytes: usize = source.untypeds[..source.count].iter().map(|&(_, bits)| 1usize << bits).sum();
    let frames = bytes.saturating_sub(bytes / 512 + 4 * PAGE);
    HEAP_LIMIT.store((HEAP_STATIC + frames).min(HEAP_SIZE), Ordering::Relaxed);
    let _guard = ALLOCATOR.grown.lock();
    // SAFETY: GROWER is only touched with the grown heap's lock held (taken above).
    unsafe { (*ptr::addr_of_mut!(GROWER)).source = Some(source) };
}

impl Grower {
    /// Retypes one object of `bp` into the next reserved slot, from the first untyped with
    /// room for it.
    fn retype(&mut self, bp: &sel4::ObjectBlueprint) -> Option<usize> {
        let src = self.source.as_mut()?;
        if src.slots.is_empty() {
            return None;
        }
        let slot = src.slots.start;
        let here = sel4::init_thread::slot::CNODE.cap().absolute_cptr_for_self();
        let size = 1usize << bp.physical_size_bits();
        while self.current < src.count {
            let (ut, bits) = src.untypeds[self.current];
            let at = self.used.next_multiple_of(size);
            if at + size <= 1 << bits {
                crate::ut::retype_one(sel4::cap::Untyped::from_bits(ut as u64), bp, &here, slot).ok()?;
                self.used = at + size;
                src.slots.start += 1;
                return Some(slot);
            }
            self.current += 1;
            self.used = 0;
        }
        None
    }

    /// Maps a fresh frame at `va` in our VSpace, adding the translation tables it needs:
    /// while the frame's lookup fails, a table goes in at the deepest level there is
    /// (where the kernel maps it), so no table is ever mapped twice.
    fn map_page(&mut self, va: usize) -> bool {
        use sel4::CapTypeForObjectOfFixedSize as _;
        let Some(slot) = self.retype(&sel4::cap_type::Granule::object_blueprint()) else { return false };
        let frame = sel4::cap::Granule::from_bits(slot as u64);
        let vspace = sel4::init_thread::slot::VSPACE.cap();
        for level in 1..=sel4::vspace_levels::NUM_LEVELS {
            match crate::vm::map_frame(frame, vspace, va, sel4::CapRights::read_write(), sel4::VmAttributes::DEFAULT | sel4::VmAttributes::EXECUTE_NEVER) {
                Ok(()) => return true,
                Err(sel4::Error::FailedLookup) if level < sel4::vspace_levels::NUM_LEVELS => {}
                Err(_) => return false,
            }
            let Some(ty) = sel4::TranslationTableObjectType::from_level(level) else { return false };
            let Some(t) = self.retype(&ty.blueprint()) else { return false };
            let table = sel4::cap::UnspecifiedIntermediateTranslationTable::from_bits(t as u64);
            if table.generic_intermediate_translation_table_map(ty, vspace, va, sel4::VmAttributes::default()).is_err() {
                return false;
            }
        }
        false
    }

    /// Maps `len` more bytes (whole pages) at the grown heap's end.
    fn grow(&mut self, len: usize) -> bool {
        if HEAP_STATIC + self.mapped + len > heap_size() {
            return false;
        }
        let mut done = 0;
        while done < len {
            if !self.map_page(GROW_BASE + self.mapped + done) {
                break;
            }
            done += PAGE;
        }
        self.mapped += done;
        done == len
    }
}

/// A first-fit heap that charges every allocation to the app being served, so an app
/// that grows its share (tmpfs inodes, fds, page maps) can be stopped before it starves
/// the others (see `main.rs`).
struct Accounted {
    /// The part in our image.
    heap: linked_list_allocator::LockedHeap,
    /// The part mapped on demand from GROW_BASE (its lock also guards GROWER).
    grown: linked_list_allocator::LockedHeap,
    ready: AtomicBool,
    current: AtomicUsize,
    charged: [AtomicUsize; ACCOUNTS],
    /// The most each account held at once.
    peak: [AtomicUsize; ACCOUNTS],
    used: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: Accounted = Accounted {
    heap: linked_list_allocator::LockedHeap::empty(),
    grown: linked_list_allocator::LockedHeap::empty(),
    ready: AtomicBool::new(false),
    current: AtomicUsize::new(ROOT),
    charged: [const { AtomicUsize::new(0) }; ACCOUNTS],
    peak: [const { AtomicUsize::new(0) }; ACCOUNTS],
    used: AtomicUsize::new(0),
};

impl Accounted {
    fn account(&self) -> Option<&AtomicUsize> {
        self.charged.get(self.current.load(Ordering::Relaxed))
    }

    fn peak(&self) -> Option<&AtomicUsize> {
        self.peak.get(self.current.load(Ordering::Relaxed))
    }

    /// A block from the static part, else from the grown part, growing it when it is full.
    fn take(&self, layout: Layout) -> Option<ptr::NonNull<u8>> {
        {
            let mut heap = self.heap.lock();
            if !self.ready.swap(true, Ordering::Relaxed) {
                // SAFETY: HEAP_MEM is used by nothing else, and this runs once.
                unsafe { heap.init(ptr::addr_of_mut!(HEAP_MEM) as *mut u8, HEAP_STATIC) };
            }
            if let Ok(p) = heap.allocate_first_fit(layout) {
                return Some(p);
            }
        }
        let mut grown = self.grown.lock();
        if let Ok(p) = grown.allocate_first_fit(layout) {
            return Some(p);
        }
        // Room for the block at any alignment, and for the allocator's own holes.
        let need = layout.size().checked_add(layout.align())?.checked_add(64)?;
        let step = need.div_ceil(GROW_STEP) * GROW_STEP;
        // SAFETY: GROWER is only touched with the grown heap's lock held (taken above).
        let grower = unsafe { &mut *ptr::addr_of_mut!(GROWER) };
        let before = grower.mapped;
        // What did get mapped is usable even when not all of it could be.
        grower.grow(step);
        let added = grower.mapped - before;
        if added == 0 {
            return None;
        }
        if before == 0 {
            // SAFETY: [GROW_BASE, GROW_BASE + added) was just mapped read-write for us
            // alone, and nothing else uses it.
            unsafe { grown.init(GROW_BASE as *mut u8, added) };
        } else {
            // SAFETY: the pages right after the grown heap's end were just mapped, as above.
            unsafe { grown.extend(added) };
        }
        grown.allocate_first_fit(layout).ok()
    }
}

// SAFETY: each part of the heap hands out disjoint blocks of its own memory (HEAP_MEM, or
// what GROWER mapped) under its lock; the counters are bookkeeping only.
// Never inlined: with LTO every allocation and every drop of a Vec or String had its own
// copy of these (the lock, the accounting, the free list's calls), and under QEMU's TCG
// each copy run at boot is translated anew (issue 11, boot time).
unsafe impl GlobalAlloc for Accounted {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            Some(p) => {
                self.used.fetch_add(layout.size(), Ordering::Relaxed);
                if let Some(a) = self.account() {
                    let now = a.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
                    if let Some(p) = self.peak() {
                        p.fetch_max(now, Ordering::Relaxed);
                    }
                }
                p.as_ptr()
            }
            None => ptr::null_mut(),
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(nn) = ptr::NonNull::new(p) {
            let at = p as usize;
            let image = ptr::addr_of!(HEAP_MEM) as usize;
            // SAFETY: `p` came from `alloc` with this layout (GlobalAlloc's contract), from
            // the part its address lies in.
            unsafe {
                if (image..image + HEAP_STATIC).contains(&at) {
                    self.heap.lock().deallocate(nn, layout)
                } else {
                    self.grown.lock().deallocate(nn, layout)
                }
            };
            self.used.fetch_sub(layout.size(), Ordering::Relaxed);
            if let Some(a) = self.account() {
                let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(layout.size())));
            }
        }
    }
}

/// Charges allocations to app `id` from now on (`None`: to the root server).
pub fn charge_to(id: Option<usize>) {
    ALLOCATOR.current.store(id.filter(|&i| i < ACCOUNTS).unwrap_or(ROOT), Ordering::Relaxed);
}

/// Heap bytes app `id` holds now (approximately: frees count against whoever is current).
pub fn charged(id: usize) -> usize {
    ALLOCATOR.charged.get(id).map_or(0, |a| a.load(Ordering::Relaxed))
}

/// The most heap bytes app `id` held at once.
pub fn charged_peak(id: usize) -> usize {
    ALLOCATOR.peak.get(id).map_or(0, |a| a.load(Ordering::Relaxed))
}

/// Heap bytes in use by everyone.
pub fn heap_used() -> usize {
    ALLOCATOR.used.load(Ordering::Relaxed)
}

// The bare IPC baseline's client: a thread of ours that needs no stack, no TLS and no IPC
// buffer. It Calls the endpoint in x0 with an empty message (x1 = 0), for ever; seL4 takes
// its syscall number from x7 (seL4_SysCall = -1).
core::arch::global_asm!(
    ".text",
    ".global selkie_ipc_pinger",
    // Its 24 bytes in one 32-byte block, so in one page: the client in a VSpace of its own
    // has only the page of its entry mapped (at 4-byte alignment the loop once straddled a
    // page and the client faulted on raspi4b).
    ".p2align 5",
    "selkie_ipc_pinger:",
    "    mov x9, x0",
    "1:  mov x0, x9",
    "    mov x1, xzr",
    "    mov x7, #-1",
    "    svc #0",
    "    b 1b",
);

extern "C" {
    fn selkie_ipc_pinger();
}

/// The entry point of the baseline's client thread (see `selkie_ipc_pinger`).
pub fn ipc_pinger_entry() -> usize {
    selkie_ipc_pinger as *const () as usize
}
