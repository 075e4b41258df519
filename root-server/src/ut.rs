//! Capability slots in our own CNode, and untyped memory.
//!
//! - [`Slots`]: bootinfo's empty slots, handed out in order, then from a free list.
//! - [`Pool`]: bootinfo's untypeds, RAM told from device memory, carved into 256 KiB child
//!   untypeds ("chunks"). A chunk belongs to one app; revoking it destroys every object the
//!   app was given, and the chunk goes back to the pool for reuse.
//! - [`Budget`]: one app's chunks and the bytes it may still retype.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::ops::Range;
use sel4::cap;

/// Size of one chunk: 256 KiB. Small, so that a small app's chunks come out of small boot
/// untypeds: the kernel zeroes a boot untyped whole on its first retype (a 4 MiB one cost
/// about 10 ms of boot under QEMU).
pub const CHUNK_BITS: usize = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Our CNode is full.
    NoSlots,
    /// No RAM left to carve a chunk from.
    NoMemory,
    /// The app's budget is spent.
    Budget { want: u64, left: u64 },
    Kernel(sel4::Error),
}

impl From<sel4::Error> for Error {
    fn from(e: sel4::Error) -> Self {
        Error::Kernel(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSlots => write!(f, "the root server's CNode is full"),
            Error::NoMemory => write!(f, "out of RAM untypeds"),
            Error::Budget { want, left } => write!(f, "untyped budget spent ({want} bytes wanted, {left} left)"),
            Error::Kernel(e) => write!(f, "{e}"),
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// Our CNode as a retype destination / CNode-operation root.
pub fn root_cnode() -> cap::CNode {
    sel4::init_thread::slot::CNODE.cap()
}

/// `Untyped_Retype` of one object of `bp` from `ut` into slot `offset` of `dst`. Every
/// retype goes through this one copy of the invocation: never inlined, because under QEMU's
/// TCG every inlined copy that runs at boot is translated anew (issue 11, boot time).
#[inline(never)]
pub fn retype_one(ut: cap::Untyped, bp: &sel4::ObjectBlueprint, dst: &sel4::AbsoluteCPtr, offset: usize) -> sel4::Result<()> {
    ut.untyped_retype(bp, dst, offset, 1)
}

/// Absolute path of slot `slot` of our CNode.
pub fn root_path(slot: usize) -> sel4::AbsoluteCPtr {
    root_cnode().absolute_cptr(sel4::init_thread::Slot::<sel4::cap_type::Null>::from_index(slot).cptr())
}

pub struct Slots {
    /// Never-used slots `next..end`, then slots given back.
    next: usize,
    end: usize,
    free: Vec<usize>,
}

impl Slots {
    pub fn new(empty: Range<usize>) -> Self {
        Slots { next: empty.start, end: empty.end, free: Vec::new() }
    }
    pub fn alloc(&mut self) -> Result<usize> {
        if let Some(s) = self.free.pop() {
            return Ok(s);
        }
        if self.next < self.end {
            self.next += 1;
            return Ok(self.next - 1);
        }
        Err(Error::NoSlots)
    }
    pub fn free(&mut self, slot: usize) {
        self.free.push(slot)
    }
    /// `n` never-used slots in a row.
    pub fn take_range(&mut self, n: usize) -> Result<Range<usize>> {
        if self.end - self.next < n {
            return Err(Error::NoSlots);
        }
        self.next += n;
        Ok(self.next - n..self.next)
    }
    pub fn available(&self) -> usize {
        self.end - self.next + self.free.len()
    }
}

struct Parent {
    cap: cap::Untyped,
    size_bits: usize,
    /// Bytes retyped from it so far (the kernel's watermark: it allocates in order).
    used: usize,
}

/// Untyped memory from bootinfo.
pub struct Pool {
    parents: Vec<Parent>,
    /// Returned untypeds: (slot, size_bits).
    free_chunks: Vec<(usize, usize)>,
    pub ram_bytes: u64,
    pub device_bytes: u64,
    pub device_untypeds: usize,
    /// RAM untypeds smaller than a chunk (the heap grows into them first, see
    /// [`Pool::heap_source`]).
    pub small_untypeds: usize,
    small: Vec<(cap::Untyped, usize)>,
    pub chunks_carved: usize,
}

impl Pool {
    pub fn new(bootinfo: &sel4::BootInfo) -> Pool {
        let mut pool = Pool {
            parents: Vec::new(),
            free_chunks: Vec::new(),
            ram_bytes: 0,
            device_bytes: 0,
            device_untypeds: 0,
            small_untypeds: 0,
            small: Vec::new(),
            chunks_carved: 0,
        };
        for (i, desc) in bootinfo.untyped_list().iter().enumerate() {
            let bytes = 1u64 << desc.size_bits();
            if desc.is_device() {
                pool.device_untypeds += 1;
                pool.device_bytes += bytes;
                continue;
            }
            pool.ram_bytes += bytes;
            if desc.size_bits() < CHUNK_BITS {
                pool.small_untypeds += 1;
                if desc.size_bits() >= 12 {
                    pool.small.push((bootinfo.untyped().index(i).cap(), desc.size_bits()));
                }
                continue;
            }
            pool.parents.push(Parent { cap: bootinfo.untyped().index(i).cap(), size_bits: desc.size_bits(), used: 0 });
        }
        // Smallest first. The kernel hands boot untypeds over marked as used, and the first
        // retype from one zeroes all of it (a 256 MiB untyped costs hundreds of ms under
        // QEMU), so touching only what is needed keeps boot fast.
        pool.parents.sort_by_key(|p| p.size_bits);
        pool.small.sort_by_key(|&(_, b)| b);
        pool
    }

    /// What the root server's heap grows with past its static part (`kernel::HeapSource`):
    /// the RAM untypeds too small for chunks, then the smallest untouched parent that holds
    /// the whole heap (taken out of the pool; one of the small heap's size when none does),
    /// and slots for a frame per page and the
    /// tables. Nothing is retyped (or zeroed) until the heap does grow.
    pub fn heap_source(&mut self, slots: &mut Slots) -> Result<crate::kernel::HeapSource> {
        let pages = crate::kernel::HEAP_SIZE / crate::kernel::PAGE;
        let range = slots.take_range(pages + 16)?;
        let mut src = crate::kernel::HeapSource { untypeds: [(0, 0); 16], count: 0, slots: range };
        let fits = |at_least: usize| self.parents.iter().position(|p| p.used == 0 && 1usize << p.size_bits >= at_least);
        let big = fits(crate::kernel::HEAP_SIZE).or_else(|| fits(crate::kernel::HEAP_SIZE_SMALL));
        let room = src.untypeds.len() - usize::from(big.is_some());
        for &(c, b) in self.small.iter().take(room) {
            src.untypeds[src.count] = (c.bits() as usize, b);
            src.count += 1;
        }
        if let Some(i) = big {
            let p = self.parents.remove(i);
            self.ram_bytes -= 1u64 << p.size_bits;
            src.untypeds[src.count] = (p.cap.bits() as usize, p.size_bits);
            src.count += 1;
        }
        Ok(src)
    }

    /// A fresh or returned chunk of `2^bits` bytes, as the slot of its untyped cap.
    pub fn chunk(&mut self, slots: &mut Slots, bits: usize) -> Result<usize> {
        if let Some(i) = self.free_chunks.iter().position(|&(_, b)| b == bits) {
            return Ok(self.free_chunks.swap_remove(i).0);
        }
        let slot = slots.alloc()?;
        let size = 1usize << bits;
        for p in &mut self.parents {
            let off = align_up(p.used, size);
            if p.size_bits >= bits && off + size <= 1 << p.size_bits {
                let bp = sel4::ObjectBlueprint::Untyped { size_bits: bits };
                if let Err(e) = retype_one(p.cap, &bp, &root_cnode().absolute_cptr_for_self(), slot) {
                    slots.free(slot);
                    return Err(e.into());
                }
                p.used = off + size;
                self.chunks_carved += 1;
                return Ok(slot);
            }
        }
        slots.free(slot);
        Err(Error::NoMemory)
    }

    /// Takes back a chunk of `2^bits` bytes whose children have all been revoked.
    pub fn give_back(&mut self, slot: usize, bits: usize) {
        self.free_chunks.push((slot, bits))
    }

    /// RAM bytes not yet handed out.
    pub fn free_bytes(&self) -> u64 {
        self.free_chunks.iter().map(|&(_, b)| 1u64 << b).sum::<u64>()
            + self.parents.iter().map(|p| ((1usize << p.size_bits) - p.used) as u64).sum::<u64>()
    }
}

/// What an app may retype in all: shared by the budgets of its processes.
#[derive(Debug)]
pub struct Account {
    limit: Cell<u64>,
    used: Cell<u64>,
}

/// Untyped memory of one app or one of its processes: the chunks it owns, charged to the
/// app's [`Account`]. Releasing a budget destroys everything retyped from it.
pub struct Budget {
    /// (slot, size_bits, bytes used) of each chunk; the last one is filled first.
    chunks: Vec<(usize, usize, usize)>,
    account: Rc<Account>,
    /// Bytes retyped from this budget's chunks (charged to the account).
    mine: u64,
    /// Size of the chunks small objects are retyped from.
    chunk_bits: usize,
}

fn align_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

impl Budget {
    /// A budget with an account of its own.
    pub fn new(limit: u64) -> Budget {
        Budget { chunks: Vec::new(), account: Rc::new(Account { limit: Cell::new(limit), used: Cell::new(0) }), mine: 0, chunk_bits: CHUNK_BITS }
    }

    /// Another budget with its own chunks of `2^chunk_bits` bytes, charged to the same
    /// account (a process of the same app).
    pub fn sharing(&self, chunk_bits: usize) -> Budget {
        Budget { chunks: Vec::new(), account: self.account.clone(), mine: 0, chunk_bits: chunk_bits.clamp(12, CHUNK_BITS) }
    }

    /// The account's limit (every budget sharing it).
    pub fn limit(&self) -> u64 {
        self.account.limit.get()
    }

    /// Bytes retyped by every budget sharing the account.
    pub fn used(&self) -> u64 {
        self.account.used.get()
    }

    /// Bytes the account may still retype.
    pub fn left(&self) -> u64 {
        self.limit().saturating_sub(self.used())
    }

    /// Retypes one object into `dst` at `offset`, charged to the account. Objects larger
    /// than a chunk get an untyped of their own.
    pub fn retype(&mut self, pool: &mut Pool, slots: &mut Slots, bp: &sel4::ObjectBlueprint, dst: &sel4::AbsoluteCPtr, offset: usize) -> Result<()> {
        let bits = bp.physical_size_bits();
        let size = 1usize << bits;
        if self.used() + size as u64 > self.limit() {
            return Err(Error::Budget { want: size as u64, left: self.left() });
        }
        let cb = self.chunk_bits;
        let c = if bits > cb {
            let c = pool.chunk(slots, bits)?;
            // Keep the current small chunk last.
            let at = self.chunks.len().saturating_sub(1);
            self.chunks.insert(at, (c, bits, size));
            c
        } else {
            let fits = matches!(self.chunks.last(), Some(&(_, b, used)) if b == cb && align_up(used, size) + size <= 1 << cb);
            if !fits {
                let c = pool.chunk(slots, cb)?;
                self.chunks.push((c, cb, 0));
            }
            let (c, _, used) = self.chunks.last_mut().expect("a chunk was just ensured");
            *used = align_up(*used, size) + size;
            *c
        };
        if let Err(e) = retype_one(cap::Untyped::from_bits(c as u64), bp, dst, offset) {
            return Err(e.into());
        }
        self.mine += size as u64;
        self.account.used.set(self.used() + size as u64);
        Ok(())
    }

    /// Destroys everything retyped from this budget and returns its chunks to the pool.
    pub fn release(&mut self, pool: &mut Pool) -> Result<()> {
        let mut first_err = None;
        for (c, bits, _) in self.chunks.drain(..) {
            match root_path(c).revoke() {
                Ok(()) => pool.give_back(c, bits),
                Err(e) => {
                    first_err.get_or_insert(Error::Kernel(e));
                }
            }
        }
        self.account.used.set(self.used().saturating_sub(self.mine));
        self.mine = 0;
        first_err.map_or(Ok(()), Err)
    }
}

/// Frames of device memory (UART, RTC), carved from bootinfo's device untypeds. The kernel
/// hands an untyped out from its start, so frames must be asked for in increasing address
/// order within one untyped; what lies before a frame is skipped with untyped children.
#[derive(Default)]
pub struct Devices {
    /// Bytes of each device untyped (by bootinfo index) retyped so far.
    used: BTreeMap<usize, usize>,
}

impl Devices {
    /// A frame cap for the device page at `paddr`, in a fresh slot of ours.
    pub fn frame(&mut self, bootinfo: &sel4::BootInfo, slots: &mut Slots, paddr: usize) -> core::result::Result<cap::Granule, String> {
        let (ix, desc) = bootinfo
            .untyped_list()
            .iter()
            .enumerate()
            .find(|(_, d)| d.is_device() && (d.paddr()..d.paddr() + (1 << d.size_bits())).contains(&paddr))
            .ok_or_else(|| format!("no device untyped covers {paddr:#x}"))?;
        let ut = bootinfo.untyped().index(ix).cap();
        let here = root_cnode().absolute_cptr_for_self();
        let offset = paddr - desc.paddr();
        let mut cur = self.used.get(&ix).copied().unwrap_or(0);
        if offset < cur {
            return Err(format!("device memory at {paddr:#x} was carved already"));
        }
        // Skip to the page with children of power-of-two sizes, each aligned to its size.
        while cur < offset {
            let align = if cur == 0 { usize::BITS - 1 } else { cur.trailing_zeros() };
            let fits = usize::BITS - 1 - (offset - cur).leading_zeros();
            let bits = align.min(fits) as usize;
            let s = slots.alloc().map_err(|e| format!("{e}"))?;
            retype_one(ut, &sel4::ObjectBlueprint::Untyped { size_bits: bits }, &here, s)
                .map_err(|e| format!("skipping device memory: {e}"))?;
            cur += 1 << bits;
        }
        let s = slots.alloc().map_err(|e| format!("{e}"))?;
        use sel4::CapTypeForObjectOfFixedSize as _;
        retype_one(ut, &sel4::cap_type::Granule::object_blueprint(), &here, s)
            .map_err(|e| format!("the frame at {paddr:#x}: {e}"))?;
        self.used.insert(ix, offset + 4096);
        let frame = cap::Granule::from_bits(s as u64);
        let got = frame.frame_get_address().map_err(|e| format!("the frame's address: {e}"))?;
        if got != paddr {
            return Err(format!("the device frame is at {got:#x}, not {paddr:#x}"));
        }
        Ok(frame)
    }
}
