# The gateway's build, run and test entry points. Each target installs what it
# needs and is missing, so a fresh clone needs only Rust (rustup) and Node.js.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO_BIN := $(HOME)/.cargo/bin
export PATH := $(CARGO_BIN):$(PATH)
export WRANGLER_SEND_METRICS := false
# worker-build would download wasm-bindgen, wasm-opt and esbuild; use local ones.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/,"",$$3); print $$3}' Cargo.lock)
WORKER_BUILD_VERSION := $(shell awk '/^name = "worker"$$/{getline; gsub(/"/,"",$$3); print $$3}' Cargo.lock)
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WASM_OPT_BIN := $(CURDIR)/node_modules/binaryen/bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/node_modules/@esbuild/linux-x64/bin/esbuild
# The wasm features worker-build enables for wasm-opt (workerd supports them).
WASM_FEATURES := $(addprefix --enable-,mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)

.PHONY: help tools build dev test lint test-native test-wasm test-e2e check schema clean

help:
	@echo "make dev    build, start demo origins and the gateway under wrangler dev"
	@echo "make test   run every test level (native, wasm, end to end, fuzz smoke)"
	@echo "make fuzz   run each fuzz target for FUZZ_SECONDS (300)"
	@echo "make soak   60 s of steady load on the full chain, checks statuses and memory"
	@echo "make bench  benchmarks against a pass-through Worker and a Hono gateway"
	@echo "make build  build the Worker into build/ (honours GATEWAY_ROUTES)"

# --- tools -----------------------------------------------------------------
tools: node_modules/.installed $(CARGO_BIN)/.wasm-bindgen-$(WASM_BINDGEN_VERSION) $(CARGO_BIN)/.worker-build-$(WORKER_BUILD_VERSION)
	@rustup target list --installed | grep -q '^wasm32-unknown-unknown$$' || rustup target add wasm32-unknown-unknown

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(CARGO_BIN)/.wasm-bindgen-$(WASM_BINDGEN_VERSION):
	@if ! wasm-bindgen --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)$$"; then \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; fi
	@touch $@

$(CARGO_BIN)/.worker-build-$(WORKER_BUILD_VERSION):
	@if ! worker-build --version 2>/dev/null | grep -q "$(WORKER_BUILD_VERSION)"; then \
	  cargo install worker-build --version $(WORKER_BUILD_VERSION) --locked --force; fi
	@touch $@

# --- build -----------------------------------------------------------------
BUILD_DIR ?= build
# After worker-build (whose wasm-opt run keeps the names section): a second -Oz pass
# (2 kB gzip for 9 s) and no names or producers sections.
build: tools
	worker-build --release --out-dir $(BUILD_DIR)
	$(WASM_OPT_BIN) $(BUILD_DIR)/index_bg.wasm -o $(BUILD_DIR)/index_bg.wasm -Oz --strip-debug --strip-producers $(WASM_FEATURES)

check:
	cargo run --quiet --bin gateway -- check $${GATEWAY_ROUTES:-routes.json}

schema:
	cargo run --quiet --bin gateway -- schema > routes.schema.json

# --- run -------------------------------------------------------------------
dev: tools
	node scripts/dev.mjs

# --- test ------------------------------------------------------------------
test: tools lint test-native test-wasm test-e2e fuzz-smoke

# Formatting, clippy (native and wasm32), every routes file, the CI workflow.
lint: tools
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
	for f in routes.json env/*.routes.json; do cargo run --quiet --bin gateway -- check "$$f" > /dev/null; done
	node scripts/lint-workflows.mjs

test-native:
	cargo test --all-targets

test-wasm:
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test --lib --target wasm32-unknown-unknown

# The browser suites (CORS from a page, the docs page) drive Debian's chromium
# through playwright-core (package.json); installed when missing.
test-e2e: browser-tools
	node --test --test-concurrency=1 tests/e2e/gateway.test.mjs

.PHONY: browser-tools
browser-tools:
	@command -v chromium >/dev/null || { echo "installing chromium"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

clean:
	rm -rf build target/wasm32-unknown-unknown

# --- bench -----------------------------------------------------------------
# The gateway against the platform floor (a pass-through Worker) and a Hono
# gateway, side by side in one run; writes bench/results.md and bench/latency.png
# (options at the top of bench/run.mjs). BENCH_RUNNER=cli serves the Workers with `wrangler dev`.
.PHONY: bench bench-tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

bench: tools bench-tools
	node bench/run.mjs

bench-tools: bench/.venv/.installed
	@command -v wrk >/dev/null || { echo "installing wrk"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

bench/.venv/.installed: bench/requirements.txt
	python3 -m venv bench/.venv
	bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

# --- fuzz ------------------------------------------------------------------
# cargo-fuzz (libFuzzer) on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable
# rustc take the -Z flags that cargo-fuzz passes. FUZZ_SANITIZER=address adds ASan
# (works on stable too; a quarter of the speed, twice the build time). Seeds are
# in fuzz/seeds/<target>/ and dictionaries in fuzz/dicts/ (committed); what the
# fuzzer learns goes to the ignored fuzz/corpus/<target>/, crashes and logs to
# fuzz/artifacts/.
.PHONY: fuzz fuzz-smoke fuzz-tools
FUZZ_TARGETS := routes_file token path_match_rewrite headers api_key validate openapi_import cidr_ip edits
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_FLAGS ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_SANITIZER ?= none
CARGO_FUZZ_VERSION := 0.13.2

fuzz-tools: $(CARGO_BIN)/.cargo-fuzz-$(CARGO_FUZZ_VERSION)
	@command -v c++ >/dev/null || { apt-get update && apt-get install -y g++; }

$(CARGO_BIN)/.cargo-fuzz-$(CARGO_FUZZ_VERSION):
	@if ! cargo fuzz --version 2>/dev/null | grep -q " $(CARGO_FUZZ_VERSION)$$"; then \
	  cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --force; fi
	@touch $@

# $(call fuzz_each,SECONDS): every target for SECONDS; stops at the first crash.
define fuzz_each
	RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer $(FUZZ_SANITIZER)
	@mkdir -p fuzz/artifacts; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; log=fuzz/artifacts/$$t.log; \
	  echo "fuzz $$t for $(1) s (log: $$log)"; \
	  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $(FUZZ_SANITIZER) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	      -dict=fuzz/dicts/$$t.dict $(FUZZ_FLAGS) -max_total_time=$(1) >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz target $$t failed: input in fuzz/artifacts/$$t/"; exit 1; fi; \
	  grep -E '^Done|number_of_executed_units|new_units_added' $$log; \
	done
endef

fuzz-smoke: fuzz-tools
	$(call fuzz_each,$(FUZZ_SMOKE_SECONDS))

fuzz: fuzz-tools
	$(call fuzz_each,$(FUZZ_SECONDS))

# Steady load on the full chain (token, rate limit, cache, origin) for SOAK_SECONDS
# (60) after a SOAK_WARMUP_S (20) warm-up at SOAK_CONCURRENCY (16) clients; fails on
# any unexpected status or request error, or when what is alive in the Worker's
# isolate after a full GC (heap snapshots over the DevTools inspector, wasm memory
# included) grew more than 10 % from after the warm-up. workerd's RSS is reported.
.PHONY: soak
soak: tools
	node --experimental-websocket scripts/soak.mjs
