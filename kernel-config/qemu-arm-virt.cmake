# seL4 kernel settings for selkie's platform: QEMU "virt" machine, AArch64.
#
# Initial-cache script for the seL4 16.0.0 kernel build: pass it to cmake
# with -C. The cross-compiler prefix and the install prefix are properties of
# the build machine, not of the platform, and are given on the cmake command
# line rather than here. Values were chosen to match rust-sel4 v5.0.0's
# sel4-kernel-loader and rust-root-task-demo.

# Target board: QEMU's generic "virt" machine (qemu-system-aarch64 -machine virt).
set(KernelPlatform "qemu-arm-virt" CACHE STRING "")

# Build the 64-bit ARM (AArch64) kernel, not aarch32/arm_hyp.
set(KernelSel4Arch "aarch64" CACHE STRING "")

# CPU model emulated by QEMU (-cpu cortex-a57); also selects compiler tuning and
# is used when seL4's configure step dumps the device tree from QEMU.
set(ARM_CPU "cortex-a57" CACHE STRING "")

# Run seL4 at EL2: selkie's loader (platforms/loader) and rust-sel4's sel4-kernel-loader
# (the bare reference root task's) enter the kernel at EL2, so
# the kernel must be built with hypervisor support (QEMU needs virtualization=on).
set(KernelArmHypervisorSupport ON CACHE STRING "")

# Root CNode of 2^16 slots (2 MiB) instead of 2^12: every 4 KiB page of the root server's
# image takes a slot at boot, and the image holds the whole bundle (every app's rootfs),
# so 4096 slots capped a bundle at a few MiB (four busybox apps did not boot).
set(KernelRootCNodeSizeBits "16" CACHE STRING "")

# Not the verified configuration: allows the debug/printing options below.
set(KernelVerificationBuild OFF CACHE STRING "")

# Debug kernel: symbols, assertions and the debug syscalls that sel4::debug_println! uses.
set(KernelDebugBuild ON CACHE STRING "")

# Kernel printing over the UART, so boot messages and seL4_DebugPutChar output appear on the serial console.
set(KernelPrinting ON CACHE STRING "")

# Real time for apps (the root server's clocks and timers). With hypervisor support the kernel
# keeps its own tick on the EL2 physical timer (CNTHP, PPI 26), so the EL1 physical timer (CNTP,
# PPI 30) is free for the root server: these two let EL0 read CNTPCT_EL0/CNTFRQ_EL0 and program
# CNTP_CTL_EL0/CNTP_CVAL_EL0. Off by default in seL4; the root server takes IRQ 30 itself.
set(KernelArmExportPCNTUser ON CACHE BOOL "")
set(KernelArmExportPTMRUser ON CACHE BOOL "")
