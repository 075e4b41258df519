# seL4 kernel settings for qemu-arm-virt with 4 cores (SMP): the same kernel as kernel-config/qemu-arm-virt.cmake,
# built to run on all four cores. Install it next to the 1-core one as SEL4_PREFIX
# /opt/seL4/qemu-arm-virt-smp4 (the multi-core tests look there).
# Verified: boots under SELKIE_QEMU_CORES=4 qemu/qemu-arm-virt with selkie's loader;
# tests/tests/qemu.rs same_apps_on_qemu_arm_virt_4_cores passes (hello; a crash next to hello,
# walker and sleeper). The root server keeps every thread on core 0 for now. QEMU runs it with
# -icount shift=auto (qemu/run-console says why): with the default multi-threaded TCG the four
# vCPUs spin on seL4's kernel lock and TLB-shootdown IPIs, and malloc_stress did not finish in
# 150 s (8.3 s with -icount, 2.1 s on the 1-core kernel; QEMU 10, 2 host CPUs).
#
# Initial-cache script for the seL4 16.0.0 kernel build: cmake -C kernel-config/qemu-arm-virt-smp4.cmake,
# with the cross-compiler and install prefix on the command line, as for the base file.

include(${CMAKE_CURRENT_LIST_DIR}/qemu-arm-virt.cmake)

# One kernel node per core: the kernel starts the other three cores once the loader has
# brought them up, and the root server may place threads on them (TCB_SetAffinity).
set(KernelMaxNumNodes "4" CACHE STRING "")
