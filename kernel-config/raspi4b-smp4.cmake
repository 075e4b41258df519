# seL4 kernel settings for raspi4b with 4 cores (SMP): the same kernel as kernel-config/raspi4b.cmake,
# built to run on all four cores. Install it next to the 1-core one as SEL4_PREFIX
# /opt/seL4/raspi4b-smp4 (the multi-core tests look there).
# Verified under QEMU 10's raspi4b only: SELKIE_QEMU_CORES=4 qemu/raspi4b kernel8.img boots it
# with selkie's loader (spin table), and tests/tests/qemu.rs same_apps_on_raspi4b_4_cores
# passes. QEMU's GIC-400 needs its security extensions for seL4 to get any interrupt, and the
# 4 cores run under -icount (qemu/raspi4b and qemu/run-console say why). UNTESTED on a board.
#
# Initial-cache script for the seL4 16.0.0 kernel build: cmake -C kernel-config/raspi4b-smp4.cmake,
# with the cross-compiler and install prefix on the command line, as for the base file.

include(${CMAKE_CURRENT_LIST_DIR}/raspi4b.cmake)

# One kernel node per core: the kernel starts the other three cores once the loader has
# brought them up, and the root server may place threads on them (TCB_SetAffinity).
set(KernelMaxNumNodes "4" CACHE STRING "")
