#!/bin/sh
# Builds the root server (target aarch64-sel4-nofp, see below) against an installed seL4
# (SEL4_PREFIX) and prints the path of the resulting ELF on stdout.
#
# The target JSON is derived at build time from rust-sel4's own aarch64-sel4.json, found
# in cargo's checkout of the rust-sel4 git dependency (the `sel4` package's workspace,
# support/targets/).
# Usage: root-server/build.sh [--release]   (release is the default; --debug for a dev build)
# The ELF lands in target/root-server/<PLAT>-<config hash>/ (below) unless CARGO_TARGET_DIR is set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
: "${SEL4_PREFIX:?SEL4_PREFIX must name an installed seL4 (e.g. /opt/seL4/qemu-arm-virt)}"
[ -f "$SEL4_PREFIX/libsel4/include/kernel/gen_config.json" ] || {
    echo "root-server/build.sh: $SEL4_PREFIX/libsel4/include/kernel/gen_config.json is missing: SEL4_PREFIX is not an installed seL4" >&2
    exit 1
}
# Run from inside another cargo (tests), the caller's toolchain and flags must not leak in.
unset RUSTUP_TOOLCHAIN RUSTC RUSTDOC RUSTC_WRAPPER RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_MANIFEST_DIR
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
profile=release
[ "${1:-}" = "--debug" ] && profile=dev
sel4_manifest=$(cargo "+$toolchain" metadata --format-version 1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next(p["manifest_path"] for p in d["packages"] if p["name"] == "sel4"))')
targets=$(dirname "$(dirname "$(dirname "$sel4_manifest")")")/support/targets
[ -f "$targets/aarch64-sel4.json" ] || { echo "root-server/build.sh: no aarch64-sel4.json in $targets" >&2; exit 1; }
# One build dir per kernel configuration, not per platform: the root server is compiled
# against the kernel's config (an SMP and a 1-core kernel of one platform differ), so the
# dir is PLAT plus the first 8 hex digits of gen_config.json's SHA-256, e.g.
# target/root-server/qemu-arm-virt-1a2b3c4d (host-tools/selkie/src/boot.rs computes the same).
config=$SEL4_PREFIX/libsel4/include/kernel/gen_config.json
plat=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["PLAT"])' "$config")
key=$plat-$(sha256sum "$config" | cut -c1-8)
target_dir=${CARGO_TARGET_DIR:-$here/../target/root-server/$key}
# Our target, aarch64-sel4-nofp, is rust-sel4's aarch64-sel4 without FP/SIMD (soft-float
# ABI): the root server then runs with its FPU disabled, and the kernel need not save and
# restore FP state on every switch between an app and us. Generated, never committed.
mkdir -p "$target_dir/targets"
python3 - "$targets/aarch64-sel4.json" "$target_dir/targets/aarch64-sel4-nofp.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["features"] = "+v8a,+strict-align,-neon"
spec["abi"] = "softfloat"
spec["rustc-abi"] = "softfloat"
json.dump(spec, open(sys.argv[2], "w"), indent=2)
PY
RUST_TARGET_PATH=$target_dir/targets CARGO_TARGET_DIR=$target_dir \
    cargo "+$toolchain" build --profile "$profile" --target aarch64-sel4-nofp -q 1>&2
dir=$profile; [ "$profile" = dev ] && dir=debug
echo "$target_dir/aarch64-sel4-nofp/$dir/selkie-root-server.elf"
