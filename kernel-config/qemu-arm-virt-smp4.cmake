# seL4 kernel settings for qemu-arm-virt with 4 cores (SMP): the same kernel as kernel-config/qemu-arm-virt.cmake,
# built to run on all four cores. Install it next to the 1-core one as SEL4_PREFIX
# /opt/seL4/qemu-arm-virt-smp4 (the multi-core tests look there).
# Verified: boots under SELKIE_QEMU_CORES=4 qemu/qemu-arm-virt with rust-sel4's loader, and
# tests/tests/qemu.rs passes on it but for malloc_stress (the root server keeps every thread
# on core 0 for now). Under QEMU this kernel is far slower than the 1-core one: malloc_stress
# takes 2.6 s on 1 core and does not finish in 400 s on 4 (the same TCG, a loaded host).
#
# Initial-cache script for the seL4 16.0.0 kernel build: cmake -C kernel-config/qemu-arm-virt-smp4.cmake,
# with the cross-compiler and install prefix on the command line, as for the base file.

include(${CMAKE_CURRENT_LIST_DIR}/qemu-arm-virt.cmake)

# One kernel node per core: the kernel starts the other three cores once the loader has
# brought them up, and the root server may place threads on them (TCB_SetAffinity).
set(KernelMaxNumNodes "4" CACHE STRING "")
