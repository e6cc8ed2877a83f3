# keyhost. The two commands of the README:
#   make demo   set up, build, and encrypt/inspect/decrypt a sample ballot
#   make test   start the services and run every test
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
PLUGIN_DIR := target/$(WASM_TARGET)/plugin
PLUGINS := env localstack aws-kms
FIXTURES := misbehave unknown-import
KEYHOST := target/debug/keyhost

.PHONY: help demo test build plugins wasm-target services-up services-down bench fuzz fmt lint clean

help:
	@echo "make demo           build everything and run a sample ballot through keyhost"
	@echo "make test           start LocalStack and Postgres, build, run all tests"
	@echo "make plugins        build the provider plugins and test fixtures (wasm32-wasip2)"
	@echo "make services-up    start LocalStack (KMS) and Postgres; services-down stops them"
	@echo "make bench          run the benchmarks (release build; see BENCHMARKS.md)"
	@echo "make fuzz           run each cargo-fuzz target for FUZZ_SECONDS (nightly; see docs/FUZZING.md)"

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

# The env plugin is built on its own: it is no_std, and a build shared with
# the others would unify their std features into its dependencies.
plugins: wasm-target
	$(CARGO) build --profile plugin --target $(WASM_TARGET) -p keyhost-plugin-env
	$(CARGO) build --profile plugin --target $(WASM_TARGET) \
	  $(foreach p,$(filter-out env,$(PLUGINS)),-p keyhost-plugin-$(p)) $(foreach f,$(FIXTURES),-p keyhost-fixture-$(f))
	@mkdir -p dist/plugins dist/fixtures
	@$(foreach p,$(PLUGINS),cp $(PLUGIN_DIR)/keyhost_plugin_$(subst -,_,$(p)).wasm dist/plugins/$(p).wasm;)
	@$(foreach f,$(FIXTURES),cp $(PLUGIN_DIR)/keyhost_fixture_$(subst -,_,$(f)).wasm dist/fixtures/$(f).wasm;)
	@scripts/pin-digests.sh
	@echo "plugins: $(PLUGINS) in dist/plugins (pins in dist/plugins/digests.env)"

build: plugins
	$(CARGO) build -p keyhost

demo: build services-up
	@scripts/demo.sh

services-up:
	@scripts/services.sh up

services-down:
	@scripts/services.sh down

test: plugins services-up
	$(CARGO) build -p keyhost --bin keyhost  # the CLI tests run the binary
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi

bench: plugins
	@scripts/services.sh python-venv .venv-bench benches/requirements.txt
	$(CARGO) bench -p keyhost --bench envelope
	.venv-bench/bin/python benches/legacy_envelope.py

# Not part of CI: the fuzz targets need nightly and a sanitizer build of the
# host. New inputs go to fuzz/corpus (ignored); fuzz/seeds is committed.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := envelope_parse config_parse http_grant_check

fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@rustup toolchain list | grep '^nightly' >/dev/null || { echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
	  corpus="$(CURDIR)/fuzz/corpus/$$t"; seeds="$(CURDIR)/fuzz/seeds/$$t"; dict="$(CURDIR)/fuzz/dicts/$$t.dict"; \
	  mkdir -p "$$corpus"; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  $(CARGO) +nightly fuzz run $$t "$$corpus" $$([ -d "$$seeds" ] && echo "$$seeds") -- \
	    -max_total_time=$(FUZZ_SECONDS) $$([ -f "$$dict" ] && echo "-dict=$$dict"); \
	done

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	rm -rf dist .keyhost
	$(CARGO) clean
