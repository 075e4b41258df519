//! The loader header: what the host tool (host-tools/selkie/src/loader.rs) writes at byte 64
//! of the image, after the arm64 Image header. Every field is a little-endian u64; the
//! offsets used by src/entry.S (ttbr0, kernel_entry, args, ack) must stay where they are.

/// How many RAM ranges and chunks fit in the header.
pub const MAX_RAM: usize = 4;
pub const MAX_CHUNKS: usize = 12;
pub const MAX_CORES: usize = 8;

/// Console kinds.
pub const UART_PL011: u64 = 1;
pub const UART_MINI: u64 = 2;
pub const UART_IMX: u64 = 3;

/// How secondary cores are started.
pub const SMP_PSCI_HVC: u64 = 1;
pub const SMP_PSCI_SMC: u64 = 2;
pub const SMP_SPIN_TABLE: u64 = 3;

/// Chunk kinds (for messages).
pub const CHUNK_NAMES: [&str; 5] = ["?", "kernel", "root server", "device tree", "boot page tables"];

/// `src_off` of a chunk the boot chain already put in place (an ELF segment).
pub const IN_PLACE: u64 = u64::MAX;

#[repr(C)]
pub struct Chunk {
    pub kind: u64,
    /// Physical destination.
    pub dst: u64,
    /// Offset of the bytes in the loader image, or [`IN_PLACE`].
    pub src_off: u64,
    pub filesz: u64,
    /// Bytes from `dst` the chunk occupies; those after `filesz` are zeroed.
    pub memsz: u64,
}

#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u64,
    pub uart_kind: u64,
    pub uart_base: u64,
    pub smp_method: u64,
    pub cores: u64,
    pub ttbr0: u64,
    pub kernel_entry: u64,
    /// init_kernel's arguments: ui_p_reg_start, ui_p_reg_end, pv_offset, v_entry,
    /// dtb_addr_p, dtb_size.
    pub args: [u64; 6],
    pub ram_count: u64,
    pub ram: [[u64; 2]; MAX_RAM],
    pub chunk_count: u64,
    pub chunks: [Chunk; MAX_CHUNKS],
    /// Set by each core as it enters seL4.
    pub ack: [u64; MAX_CORES],
    /// Where the loader must run, when the boot chain's load address is where the payload
    /// goes (the Pi's 0x80000): entry.S moves the whole image there first. 0: where loaded.
    pub run_at: u64,
    /// Bytes of the image (loader and payload) that move with it.
    pub image_len: u64,
}

const _: () = assert!(core::mem::size_of::<Header>() == 752);
const _: () = assert!(core::mem::offset_of!(Header, ttbr0) == 48);
const _: () = assert!(core::mem::offset_of!(Header, kernel_entry) == 56);
const _: () = assert!(core::mem::offset_of!(Header, args) == 64);
const _: () = assert!(core::mem::offset_of!(Header, ack) == 672);
const _: () = assert!(core::mem::offset_of!(Header, run_at) == 736);
