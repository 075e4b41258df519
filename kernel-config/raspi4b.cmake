# seL4 kernel settings for the Raspberry Pi 4 Model B (BCM2711), AArch64.
# UNTESTED on hardware. Under QEMU 10's raspi4b (ELF -kernel with has_el3=off, one core) this
# kernel, rust-sel4's loader and selkie's root server boot and run apps (platforms/raspi4b).
#
# Initial-cache script for the seL4 16.0.0 kernel build: pass it to cmake with -C, as for
# kernel-config/qemu-arm-virt.cmake (cross-compiler and install prefix on the command line).

# Target board: seL4 names the Raspberry Pi 4 by its SoC (src/plat/bcm2711; ARM_PLAT rpi4).
set(KernelPlatform "bcm2711" CACHE STRING "")

# Build the 64-bit ARM (AArch64) kernel.
set(KernelSel4Arch "aarch64" CACHE STRING "")

# CPU of the BCM2711 (also QEMU's raspi4b machine).
set(ARM_CPU "cortex-a72" CACHE STRING "")

# RAM the kernel is told about, in MiB: 2048 is what QEMU's raspi4b has and what every
# 2/4/8 GiB board has at least (seL4 accepts 1024, 2048, 4096 or 8192).
set(RPI4_MEMORY "2048" CACHE STRING "")

# Run seL4 at EL2: selkie's loader (platforms/loader) enters the kernel at EL2, as on qemu-arm-virt,
# so apps' faults arrive as on the tested platform (VCPUFault for brk, see the runtime notes).
set(KernelArmHypervisorSupport ON CACHE STRING "")

# Root CNode of 2^16 slots (2 MiB) instead of 2^12: every 4 KiB page of the root server's
# image takes a slot at boot, and the image holds the whole bundle (every app's rootfs),
# so 4096 slots capped a bundle at a few MiB (four busybox apps did not boot).
set(KernelRootCNodeSizeBits "16" CACHE STRING "")

# Not the verified configuration: allows the debug/printing options below.
set(KernelVerificationBuild OFF CACHE STRING "")

# Debug kernel: the debug syscalls the root server's console uses (seL4_DebugPutChar).
set(KernelDebugBuild ON CACHE STRING "")

# Kernel printing on the mini UART (serial1 in rpi4.dts), where the root server's console goes.
set(KernelPrinting ON CACHE STRING "")

# Real time for apps, as on qemu-arm-virt: the root server reads CNTPCT_EL0/CNTFRQ_EL0 from EL0
# on every message and programs the EL1 physical timer (CNTP, PPI 30; the kernel's own tick is
# on the EL2 timer). Without these two EL0 access to the counter traps and the root server
# faults on its first message (seen in gen_config.json: EXPORT_PCNT_USER false until added).
set(KernelArmExportPCNTUser ON CACHE BOOL "")
set(KernelArmExportPTMRUser ON CACHE BOOL "")
