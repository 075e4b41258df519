# selkie: the two entry points are `make test` and `make run-qemu PLATFORM=qemu-arm-virt`.
# Both install what they need from Debian, rustup and crates.io first, idempotently.

PLATFORM ?= qemu-arm-virt
SEL4_PREFIX ?= /opt/seL4/$(PLATFORM)
export SEL4_PREFIX

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: deps test build bench conformance fuzz-build run-qemu sdk clean

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

# make conformance: CPython's own test suite (tests/tests/cpython.rs, 40 modules that
# exercise the OS) on Linux, under selkie's emulator and on seL4 (when SEL4_PREFIX holds one),
# printed as a table with the fraction that passes. Hours, not minutes.
conformance: deps
	$(CARGO) test --release -p selkie-tests --test cpython conformance -- --ignored --nocapture

# make sdk: the selkie SDK builder image (localhost/selkie-sdk:latest, for a Dockerfile's
# build stage; README.md, The selkie SDK). Nothing is rebuilt when it is up to date.
sdk: deps
	$(CARGO) build --release -p selkie
	$(TARGET_DIR)/release/selkie sdk build

# make run-qemu: builds the built-in demo (demo/hello: the seed's hello, tests/apps/hello.c,
# as an OCI image, built from its Dockerfile by `selkie build`), and, when SEL4_PREFIX holds
# an installed seL4 for $(PLATFORM), builds the root server against it, packs the demo and
# boots it under QEMU (qemu/$(PLATFORM)). Without one it says what is missing and runs the
# demo under selkie's emulator instead.
BUILD ?= build
DEMO = $(BUILD)/demo
SELKIE = $(TARGET_DIR)/release/selkie
# What each board's boot chain loads: a raw kernel8.img (Pi), an arm64 Image (U-Boot), an ELF.
IMAGE = $(BUILD)/$(if $(filter raspi4b,$(PLATFORM)),kernel8.img,$(if $(filter imx8mp-evk,$(PLATFORM)),Image,image-$(PLATFORM).elf))

run-qemu: deps
	@mkdir -p $(DEMO)
	$(CARGO) build --release -p selkie
	aarch64-linux-musl-gcc -static -O2 -o $(DEMO)/hello tests/apps/hello.c
	cp demo/hello/foo.txt demo/hello/bar.txt demo/hello/Dockerfile $(DEMO)/
	rm -rf $(DEMO)/oci && $(SELKIE) build -t oci:$(DEMO)/oci:latest $(DEMO)
	@if qemu/check-sel4 $(PLATFORM); then \
		set -e; \
		root-server/build.sh > $(BUILD)/root-server.path; \
		$(SELKIE) pack oci:$(DEMO)/oci:latest --name hello --platform $(PLATFORM) \
			--root-server $$(cat $(BUILD)/root-server.path) -o $(IMAGE); \
		qemu/$(PLATFORM) $(IMAGE); \
	else \
		echo "make run-qemu: no seL4 for $(PLATFORM) at SEL4_PREFIX=$(SEL4_PREFIX) (what is missing is above;"; \
		echo "  README.md, Prerequisites for booting seL4, says how to install one). The demo runs under selkie's emulator instead:"; \
		$(SELKIE) run --emulate oci:$(DEMO)/oci:latest; \
	fi

clean:
	$(CARGO) clean
