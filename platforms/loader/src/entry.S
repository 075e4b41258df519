/* selkie loader: entry, exception level changes, relocation, and the jump into seL4.
 *
 * The image starts with the 64-byte arm64 Linux Image header (U-Boot's booti and QEMU's
 * -kernel read it), then the loader header the host tool fills (src/header.rs has its
 * layout; offsets below must match). The loader runs with the MMU off until enter_kernel. */

.equ HDR_TTBR0,        48
.equ HDR_KERNEL_ENTRY, 56
.equ HDR_ARGS,         64      /* ui_p_start, ui_p_end, pv_offset, ui_v_entry, dtb_p, dtb_size */
.equ HDR_ACK,          672
.equ HDR_RUN_AT,       736
.equ HDR_IMAGE_LEN,    744
.equ R_AARCH64_RELATIVE, 1027

/* reg = the address of sym, PC-relative (the loader runs wherever it was put). */
.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.section .text.head, "ax"
.global _head
_head:
    b       _start                  /* code0 */
    .word   0                       /* code1 */
    .quad   0                       /* text_offset (host) */
    .quad   0                       /* image_size (host) */
    .quad   0x2                     /* flags: little endian, 4 KiB pages, 2 MiB aligned base */
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .word   0
.global selkie_loader_header
selkie_loader_header:
    .ascii  "SELKIELD"
    .quad   1                       /* header version */
    .space  752 - 16

.text
.global _start
_start:
    mov     x19, x0                 /* the boot chain's DTB pointer, if any */
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, park                /* only the boot core comes this way */
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    cmp     x20, #3
    b.ne    1f
    bl      el3_to_el2
1:  adr     x21, _head              /* where the boot chain put us */
    adr     x0, selkie_loader_header
    ldr     x1, [x0, #HDR_RUN_AT]
    cbz     x1, 7f
    cmp     x1, x21
    b.ls    7f                      /* the host only moves the image up */
    ldr     x2, [x0, #HDR_IMAGE_LEN]
    /* Copy [x21, x21 + len) to [x1, x1 + len) from the end (they may overlap), then
     * continue at the same place in the copy. */
6:  cbz     x2, 8f
    sub     x2, x2, #8
    ldr     x3, [x21, x2]
    str     x3, [x1, x2]
    b       6b
8:  ic      iallu
    dsb     sy
    isb
    adr     x2, 7f
    sub     x2, x2, x21
    add     x2, x2, x1
    br      x2
7:  adr     x21, _head
    adr_l   x0, __bss_start
    adr_l   x1, __bss_end
2:  cmp     x0, x1
    b.hs    3f
    str     xzr, [x0], #8
    b       2b
3:  adrp    x0, __stack_top
    add     x0, x0, :lo12:__stack_top
    mov     sp, x0
    /* Linked at 0: each R_AARCH64_RELATIVE word becomes base + addend. */
    adr_l   x0, __rela_start
    adr_l   x1, __rela_end
4:  cmp     x0, x1
    b.hs    5f
    ldp     x2, x3, [x0], #16       /* r_offset, r_info */
    ldr     x4, [x0], #8            /* r_addend */
    cmp     x3, #R_AARCH64_RELATIVE
    b.ne    4b
    add     x4, x4, x21
    str     x4, [x21, x2]
    b       4b
5:  mov     x0, x21
    mov     x1, x19
    mov     x2, x20
    bl      loader_main
park:
    wfe
    b       park

/* From EL3 to EL2 (AArch64, interrupts masked), returning to the caller at EL2. */
el3_to_el2:
    mov     x0, #0x5b1              /* SCR_EL3: RW, HCE, SMD, RES1, NS */
    msr     scr_el3, x0
    msr     cptr_el3, xzr           /* no FP/SIMD traps */
    ldr     x0, =0x30c50830         /* SCTLR_EL2: RES1 bits, MMU and caches off */
    msr     sctlr_el2, x0
    msr     cntvoff_el2, xzr
    mov     x0, #0x3c9              /* SPSR_EL3: D, A, I, F masked; EL2h */
    msr     spsr_el3, x0
    msr     elr_el3, x30
    isb
    eret

/* Secondary cores (PSCI CPU_ON or the spin table) start here, MMU off. */
.global secondary_entry
secondary_entry:
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    cmp     x20, #3
    b.ne    1f
    bl      el3_to_el2
1:  mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    adr     x0, selkie_loader_header
    b       enter_kernel

/* enter_kernel(header, core): switch on the boot page tables, caches and MMU at EL2 and
 * jump to seL4 with init_kernel's arguments; the kernel reads its core index from
 * TPIDR_EL1. Secondaries acknowledge once nothing more is read from the loader. */
.global enter_kernel
enter_kernel:
    msr     daifset, #0xf
    msr     tpidr_el1, x1
    ic      iallu
    dsb     sy
    isb
    /* MAIR: 0 Device-nGnRnE, 1 Device-nGnRE, 2 Device-GRE, 3 Normal-NC, 4 Normal WB, 5 Normal WT */
    ldr     x2, =0x0000aaff440c0400
    msr     mair_el2, x2
    /* TCR_EL2: T0SZ=16, inner/outer WBWA, inner shareable, 4 KiB granule, PS from PARange, RES1 */
    mrs     x3, id_aa64mmfr0_el1
    and     x3, x3, #0x7
    ldr     x2, =0x80803510
    orr     x2, x2, x3, lsl #16
    msr     tcr_el2, x2
    ldr     x2, [x0, #HDR_TTBR0]
    msr     ttbr0_el2, x2
    isb
    tlbi    alle2
    dsb     sy
    isb
    ldr     x9, [x0, #HDR_KERNEL_ENTRY]
    add     x10, x0, #HDR_ACK
    add     x10, x10, x1, lsl #3
    add     x11, x0, #HDR_ARGS
    ldp     x0, x1, [x11]
    ldp     x2, x3, [x11, #16]
    ldp     x4, x5, [x11, #32]
    mrs     x12, sctlr_el2
    bic     x12, x12, #(1 << 19)    /* WXN */
    bic     x12, x12, #(1 << 1)     /* A */
    mov     x13, #0x1005            /* M, C, I */
    orr     x12, x12, x13
    msr     sctlr_el2, x12
    isb
    mov     x13, #1
    str     x13, [x10]
    dsb     sy
    br      x9
