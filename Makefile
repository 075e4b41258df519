# selkie: the two entry points are `make test` and `make run-qemu PLATFORM=qemu-arm-virt`.
# Both install what they need from Debian, rustup and crates.io first, idempotently.

PLATFORM ?= qemu-arm-virt
SEL4_PREFIX ?= /opt/seL4/$(PLATFORM)
export SEL4_PREFIX

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: deps test build bench fuzz-build run-qemu clean

deps:
	@tools/install-deps

build: deps
	$(CARGO) build --release --workspace

test: deps
	$(CARGO) build --release --manifest-path fuzz/Cargo.toml
	$(CARGO) test --release --workspace --no-fail-fast

bench: deps
	$(CARGO) build --release -p selkie -p selkie-bench
	$(TARGET_DIR)/release/selkie-bench

# make run-qemu: builds the root server (root-server/build.sh, against SEL4_PREFIX), the
# built-in demo (demo/hello: the seed's hello, tests/apps/hello.c, as an OCI image, built by buildah from its
# Dockerfile), packs it for $(PLATFORM) and boots it under QEMU (qemu/$(PLATFORM)).
BUILD ?= build
BUILDAH = buildah --storage-driver vfs --root $(CURDIR)/$(BUILD)/containers/root --runroot $(CURDIR)/$(BUILD)/containers/run
DEMO = $(BUILD)/demo

run-qemu: deps
	@qemu/check-sel4 $(PLATFORM)
	@mkdir -p $(DEMO)
	root-server/build.sh > $(BUILD)/root-server.path
	$(CARGO) build --release -p selkie
	aarch64-linux-musl-gcc -static -O2 -o $(DEMO)/hello tests/apps/hello.c
	cp demo/hello/foo.txt demo/hello/bar.txt demo/hello/Dockerfile $(DEMO)/
	$(BUILDAH) bud --isolation chroot -q --platform linux/arm64 -t selkie-demo-hello $(DEMO)
	rm -rf $(DEMO)/oci && $(BUILDAH) push -q selkie-demo-hello oci:$(DEMO)/oci:latest
	$(TARGET_DIR)/release/selkie pack oci:$(DEMO)/oci:latest --name hello --platform $(PLATFORM) \
		--root-server $$(cat $(BUILD)/root-server.path) -o $(BUILD)/image-$(PLATFORM).elf
	qemu/$(PLATFORM) $(BUILD)/image-$(PLATFORM).elf

clean:
	$(CARGO) clean
