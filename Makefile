# Build, check and demo entry points. `make test` is the whole suite (what CI runs);
# `make demo` is a local end-to-end run that needs no AWS account.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
MUSL_BIN := $(TARGET_DIR)/$(MUSL_TARGET)/release/aws-iam-authenticator
DIST_DIR ?= $(CURDIR)/dist
VENV ?= $(if $(AWS_IAM_AUTHENTICATOR_TEST_VENV),$(AWS_IAM_AUTHENTICATOR_TEST_VENV),$(CURDIR)/.venv)

# What the extension and the image ship: one static musl binary per platform (OCI names),
# built with PROFILE: `dist` (fat LTO, stripped) for releases; `make test` packages the
# `release` builds instead (`make extension PROFILE=release`), as fat LTO is too slow to
# build twice in CI.
PROFILE ?= dist
PLATFORMS ?= amd64 arm64
triple.amd64 := x86_64-unknown-linux-musl
triple.arm64 := aarch64-unknown-linux-musl
# $(call bin,PLATFORM,PROFILE)
bin = $(TARGET_DIR)/$(triple.$(1))/$(2)/aws-iam-authenticator
BINS = $(foreach p,$(PLATFORMS),$(call bin,$(p),$(PROFILE)))

# The commit the binaries report (`version`); none outside a git checkout (or set COMMIT).
COMMIT ?= $(shell git -C "$(CURDIR)" rev-parse HEAD 2>/dev/null)

# ring (and, in the full build, aws-lc-sys) compiles C for the musl target: use musl's compiler wrapper for x86-64; for
# aarch64, cargo-zigbuild gives cc and the linker zig's musl cross toolchain (PyPI's
# ziglang, in $(VENV): scripts/setup-venv.sh).
export CC_x86_64_unknown_linux_musl ?= musl-gcc
# What the extension and the image ship is the server-side build: the default features
# without `client` (`token` and the client's credential chain; README "Server-side build").
# `make binaries FEATURES=` builds them with every subcommand instead.
FEATURES ?= --no-default-features
# build-bin PLATFORM PROFILE [FEATURE FLAGS]: one static binary, stamped with the commit.
define build-bin
$(if $(COMMIT),AWS_IAM_AUTHENTICATOR_COMMIT=$(COMMIT)) \
$(if $(filter arm64,$(1)),PATH="$(VENV)/bin:$$PATH" $(CARGO) zigbuild,$(CARGO) build) \
	--profile $(2) --locked $(3) --target $(triple.$(1))
endef

.PHONY: help deps fmt lint doc test unit musl binaries static-check demo bench bench-instructions venv deny dist extension image

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

deps: ## Install missing system packages and the musl targets (scripts/install-deps.sh)
	scripts/install-deps.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy (all targets, warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

doc: ## The crate's docs, private items included (warnings are errors)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --locked --document-private-items

unit: ## cargo test: unit, integration, doc tests; builds the examples
	$(CARGO) test --locked

# Both architectures' release binaries and the archives made of them come before
# `cargo test`: tests/extension.rs and the Talos harness check what `make extension` and
# `make image` wrote (REQUIRE_EXTENSION_BUILD: a missing piece fails instead of skipping).
# TEST_PLATFORMS: the platforms `make test` builds and requires (`make test
# TEST_PLATFORMS=amd64` leaves out the aarch64 cross build and its qemu-user checks).
TEST_PLATFORMS ?= amd64 arm64
test: export REQUIRE_EXTENSION_BUILD := 1
test: export AWS_IAM_AUTHENTICATOR_DIST_DIR := $(DIST_DIR)
test: export AWS_IAM_AUTHENTICATOR_PLATFORMS = $(PLATFORMS)
test: PROFILE = release
test: PLATFORMS = $(TEST_PLATFORMS)
test: deps venv lint doc binaries static-check extension image unit ## The whole suite: lint, both static builds, the archives, cargo test

musl: ## The static release binary with every subcommand (x86_64-unknown-linux-musl)
	$(call build-bin,amd64,release)
	@echo "built $(MUSL_BIN)"

binaries: venv ## The static server-side binaries of PLATFORMS (amd64 arm64) with PROFILE (dist)
	@$(foreach p,$(PLATFORMS),echo "== $(p): $(call bin,$(p),$(PROFILE))"; \
	    time $(call build-bin,$(p),$(PROFILE),$(FEATURES));)

static-check: ## Fail unless each binary of PLATFORMS/PROFILE is static and of its platform
	@source scripts/lib.sh; \
	for pair in $(foreach p,$(PLATFORMS),$(p)=$(call bin,$(p),$(PROFILE))); do \
	    want="$${pair%%=*}" bin="$${pair#*=}"; \
	    test -x "$$bin" || { echo "static-check: $$bin missing: run 'make binaries PROFILE=$(PROFILE)'" >&2; exit 1; }; \
	    desc="$$(file -L "$$bin")"; echo "$$desc"; \
	    grep -Eq 'static-pie linked|statically linked' <<<"$$desc" \
	        || { echo "static-check: $$bin is not statically linked" >&2; exit 1; }; \
	    got="$$(elf_platform "$$bin")" && [ "$$got" = "$$want" ] \
	        || { echo "static-check: $$bin is not an $$want binary" >&2; exit 1; }; \
	done; \
	echo "static-check: OK (no dynamic loader, no libc needed at run time; each of its platform)"

demo: deps ## Local end-to-end demo against the STS emulator (no AWS account needed)
	scripts/demo.sh

bench: ## The figures of BENCHMARKS.md: ours vs the bare echo webhook, HTTP/1.1 and HTTP/2, glibc and musl (BENCH_QUICK=1: a short sanity run)
	scripts/bench.sh

bench-instructions: ## Instructions per cached review, ours vs the echo, counted by callgrind (repeatable on a busy machine)
	scripts/bench-instructions.sh

venv: ## The Python tools of the tests and the cross build (.venv)
	scripts/setup-venv.sh

deny: ## Dependency licences, bans and sources (cargo-deny)
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	$(CARGO) deny check licenses bans sources

dist: PROFILE = dist
dist: deps binaries static-check ## The shipped static binaries: server-side build, `dist` profile (fat LTO, stripped), musl, amd64 and arm64
	@ls -l $(BINS)

extension: deps binaries ## The Talos system extension (amd64 + arm64): $(DIST_DIR)/extension/ and one OCI archive
	time scripts/build-extension.sh $(BINS) "$(DIST_DIR)"

image: deps binaries ## The server's OCI image (amd64 + arm64; static binary + CA roots, uid 65532) as an archive in $(DIST_DIR)
	time scripts/build-image.sh $(BINS) "$(DIST_DIR)"
