# seL4 kernel settings for the NXP i.MX 8M Plus EVK, AArch64.
# UNTESTED on a board. Under QEMU 10's imx8mp-evk (qemu/imx8mp-evk, SELKIE_QEMU_CORES=1) this
# kernel, selkie's loader and the root server boot and run apps (tests/tests/qemu.rs).
#
# Initial-cache script for the seL4 16.0.0 kernel build: pass it to cmake with -C, as for
# kernel-config/qemu-arm-virt.cmake (cross-compiler and install prefix on the command line).

# Target board: seL4's name for the i.MX 8M Plus EVK (src/plat/imx8m-evk).
set(KernelPlatform "imx8mp-evk" CACHE STRING "")

# Build the 64-bit ARM (AArch64) kernel.
set(KernelSel4Arch "aarch64" CACHE STRING "")

# CPU of the i.MX 8M Plus (also QEMU's imx8mp-evk machine).
set(ARM_CPU "cortex-a53" CACHE STRING "")

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

# Kernel printing on UART2 (the EVK's console, stdout-path in imx8mp-evk.dts).
set(KernelPrinting ON CACHE STRING "")

# Real time for apps, as on qemu-arm-virt: the root server reads CNTPCT_EL0/CNTFRQ_EL0 from EL0
# on every message and programs the EL1 physical timer (CNTP, PPI 30; the kernel's own tick is
# on the EL2 timer). Without these two EL0 access to the counter traps and the root server
# faults on its first message (seen in gen_config.json: EXPORT_PCNT_USER false until added).
set(KernelArmExportPCNTUser ON CACHE BOOL "")
set(KernelArmExportPTMRUser ON CACHE BOOL "")
