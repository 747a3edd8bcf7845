# Build, check and demo entry points. `make test` is the whole suite (what CI runs);
# `make demo` is a local end-to-end run that needs no AWS account.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
MUSL_BIN := $(TARGET_DIR)/$(MUSL_TARGET)/release/aws-iam-authenticator
DIST_BIN := $(TARGET_DIR)/$(MUSL_TARGET)/dist/aws-iam-authenticator
DIST_DIR ?= $(CURDIR)/dist

# aws-lc-sys compiles C for the musl target: use musl's compiler wrapper.
export CC_x86_64_unknown_linux_musl ?= musl-gcc

.PHONY: help deps fmt lint test unit musl static-check demo bench venv deny dist extension image

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

deps: ## Install missing system packages and the musl target (scripts/install-deps.sh)
	scripts/install-deps.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy (all targets, warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

unit: ## cargo test: unit, integration, doc tests; builds the examples
	$(CARGO) test --locked

# The musl build comes before `cargo test`: the extension test packages it.
test: export REQUIRE_EXTENSION_BUILD := 1
test: deps venv lint musl static-check unit ## The whole suite: lint, static musl build and its check, cargo test

musl: ## The static release binary (x86_64-unknown-linux-musl)
	$(CARGO) build --release --locked --target $(MUSL_TARGET)
	@echo "built $(MUSL_BIN)"

static-check: ## Fail unless the musl binary is statically linked
	@test -x "$(MUSL_BIN)" || { echo "static-check: $(MUSL_BIN) missing: run 'make musl'" >&2; exit 1; }
	@desc="$$(file -L "$(MUSL_BIN)")"; echo "$$desc"; \
	if grep -Eq 'static-pie linked|statically linked' <<<"$$desc"; then \
	    echo "static-check: OK (no dynamic loader, no libc needed at run time)"; \
	else \
	    echo "static-check: $(MUSL_BIN) is not statically linked" >&2; exit 1; \
	fi

demo: deps ## Local end-to-end demo against the STS emulator (no AWS account needed)
	scripts/demo.sh

bench: ## The figures of BENCHMARKS.md: token, webhook throughput/latency/memory (needs hey, hyperfine)
	scripts/bench.sh

venv: ## The Python tools the interop tests use (.venv)
	scripts/setup-venv.sh

deny: ## Dependency licences, bans and sources (cargo-deny)
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	$(CARGO) deny check licenses bans sources

dist: ## The shipped static binary: `dist` profile (fat LTO, stripped), musl
	$(CARGO) build --profile dist --locked --target $(MUSL_TARGET)
	@$(MAKE) --no-print-directory static-check MUSL_BIN="$(DIST_BIN)"
	@ls -l "$(DIST_BIN)"

extension: deps dist ## The Talos system extension: $(DIST_DIR)/extension/ (manifest.yaml + rootfs/) and its OCI archive
	scripts/build-extension.sh "$(DIST_BIN)" "$(DIST_DIR)"

image: deps dist ## The server's OCI image (static binary + CA roots, uid 65532) as an archive in $(DIST_DIR)
	scripts/build-image.sh "$(DIST_BIN)" "$(DIST_DIR)"
