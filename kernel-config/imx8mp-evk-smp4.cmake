# seL4 kernel settings for imx8mp-evk with 4 cores (SMP): the same kernel as kernel-config/imx8mp-evk.cmake,
# built to run on all four cores. Install it next to the 1-core one as SEL4_PREFIX
# /opt/seL4/imx8mp-evk-smp4 (the multi-core tests look there).
# Verified under QEMU 10's imx8mp-evk only: qemu/imx8mp-evk Image (4 cores by default) boots it
# with selkie's loader (PSCI), and tests/tests/qemu.rs same_apps_on_imx8mp_evk_4_cores passes.
# QEMU's GICv3 needs its security extensions for seL4 to get any interrupt (the root server
# printed nothing before: core 0 waited for its first TLB-shootdown IPI to be answered), and
# the 4 cores run under -icount (qemu/imx8mp-evk and qemu/run-console say why). UNTESTED on a board.
#
# Initial-cache script for the seL4 16.0.0 kernel build: cmake -C kernel-config/imx8mp-evk-smp4.cmake,
# with the cross-compiler and install prefix on the command line, as for the base file.

include(${CMAKE_CURRENT_LIST_DIR}/imx8mp-evk.cmake)

# One kernel node per core: the kernel starts the other three cores once the loader has
# brought them up, and the root server may place threads on them (TCB_SetAffinity).
set(KernelMaxNumNodes "4" CACHE STRING "")
