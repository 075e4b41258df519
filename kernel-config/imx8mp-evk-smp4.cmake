# seL4 kernel settings for imx8mp-evk with 4 cores (SMP): the same kernel as kernel-config/imx8mp-evk.cmake,
# built to run on all four cores. Install it next to the 1-core one as SEL4_PREFIX
# /opt/seL4/imx8mp-evk-smp4 (the multi-core tests look there).
# Builds; not booted yet (no loader for this board).
#
# Initial-cache script for the seL4 16.0.0 kernel build: cmake -C kernel-config/imx8mp-evk-smp4.cmake,
# with the cross-compiler and install prefix on the command line, as for the base file.

include(${CMAKE_CURRENT_LIST_DIR}/imx8mp-evk.cmake)

# One kernel node per core: the kernel starts the other three cores once the loader has
# brought them up, and the root server may place threads on them (TCB_SetAffinity).
set(KernelMaxNumNodes "4" CACHE STRING "")
