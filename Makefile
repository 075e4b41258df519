# selkie: the two entry points are `make test` and `make run-qemu PLATFORM=qemu-arm-virt`.
# Both install what they need from Debian, rustup and crates.io first, idempotently.

PLATFORM ?= qemu-arm-virt
SEL4_PREFIX ?= /opt/seL4/$(PLATFORM)
export SEL4_PREFIX

CARGO ?= cargo

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
	target/release/selkie-bench

run-qemu: deps
	@echo "make run-qemu: not yet available (the root server is issue 4)"; exit 2

clean:
	$(CARGO) clean
