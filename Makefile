# Linkage developer entry points. Local Postgres + NATS come from
# deploy/local/services.sh (reused if already running, else started under .local/).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

SERVICES := bash deploy/local/services.sh
# Exports the effective DATABASE_URL / NATS_URL into the recipe's shell.
WITH_ENV := eval "$$($(SERVICES) env)" &&
# Extra arguments for `make run`, e.g. make run ARGS='--help'
ARGS ?=
# `make token ROLE=handler DEPT=market-supervision`
ROLE ?= dispatcher
DEPT ?=

.PHONY: help services run token test test-faults fuzz bench lint fmt stop status clean-local chromium dashboard-vendor

help: ## List targets
	@echo "Linkage make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

services: ## Ensure local Postgres + NATS JetStream are up (reuse or start under .local/)
	@$(SERVICES) ensure

status: ## Show whether Postgres and NATS answer and whether they are project-local
	@$(SERVICES) status

# `make run` loads the demo district when the event store has no appeals (docs/demo-data.md).
# Off with `make run DEMO=0`, or LINKAGE_DEMO_DATA=off in the environment or in .env.
LINKAGE_DEMO_DATA ?= $(shell sed -n 's/^[[:space:]]*LINKAGE_DEMO_DATA=\([a-z]*\).*/\1/p' .env 2>/dev/null)
DEMO ?= $(if $(filter off,$(LINKAGE_DEMO_DATA)),0,1)

run: services ## Run the linkage service (release) against the local services; demo data when empty (DEMO=0: none)
	$(WITH_ENV) cargo run --release -p linkage -- run --demo-data $(if $(filter 0 off no false,$(DEMO)),off,auto) $(ARGS)

token: ## Mint a local bearer token: make token ROLE=handler DEPT=market-supervision
	@$(WITH_ENV) cargo run -q --release -p linkage -- token issue --role $(ROLE) $(if $(DEPT),--dept $(DEPT))

# Doctests first so the runner's summary is the last thing printed; both always run.
test: services chromium ## Run all tests (nextest + doctests if nextest is installed, else cargo test)
	@$(WITH_ENV) rc=0; \
	if cargo nextest --version >/dev/null 2>&1; then \
		echo "+ cargo test --workspace --doc"; \
		cargo test --workspace --doc || rc=$$?; \
		echo "+ cargo nextest run --workspace --all-targets --no-fail-fast"; \
		cargo nextest run --workspace --all-targets --no-fail-fast || rc=$$?; \
	else \
		echo "+ cargo test --workspace --all-targets"; \
		cargo test --workspace --all-targets || rc=$$?; \
	fi; \
	exit $$rc

# The long fault suite (docs/operations.md); `make test` runs its short form.
test-faults: services ## Long fault suite: kill roles, restart NATS, drop DB connections under load; prints the report
	@$(WITH_ENV) LINKAGE_FAULTS=long cargo nextest run -p linkage --test faults --no-capture

# cargo-fuzz needs a nightly toolchain; without one the target says so and stops (the same
# property runs under proptest in `make test`: tests/e2e/tests/bad_input.rs).
FUZZ_SECONDS ?= 20
fuzz: ## Fuzz the bus envelope decoder for FUZZ_SECONDS (cargo-fuzz, nightly)
	@if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
		echo "fuzz: skipped, no nightly toolchain (rustup toolchain install nightly)"; exit 0; fi; \
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked; \
	cd fuzz && cargo +nightly fuzz run envelope -- -max_total_time=$(FUZZ_SECONDS)

bench: services ## Measure Linkage against pgbench / raw JetStream in one run (BENCHMARKS.md); writes bench/results/<date>.md
	bash bench/run.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the workspace
	cargo fmt --all

stop: ## Stop the project-local Postgres / NATS started by `make services`
	@$(SERVICES) stop

clean-local: stop ## Stop and delete .local/ (local cluster data, NATS store, logs)
	rm -rf .local

# The dashboard's browser test (tests/e2e/tests/dashboard.rs) drives Debian's Chromium headless.
chromium: ## Ensure Debian's chromium + chromium-driver (for the dashboard's browser test)
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "+ apt-get install -y chromium chromium-driver"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium: not installed; the dashboard's browser test needs the Debian packages chromium and chromium-driver (sudo apt-get install -y chromium chromium-driver)"; \
	fi

# ECharts for the dashboard, vendored into services/dashboard/assets/vendor/echarts (no CDN at run
# time), with a gzipped copy for browsers that accept it; the version is pinned here and in VERSION.
ECHARTS_VERSION ?= 6.1.0
dashboard-vendor: ## Refresh the dashboard's vendored ECharts from npm (ECHARTS_VERSION)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent echarts@$(ECHARTS_VERSION) >/dev/null && tar xzf echarts-$(ECHARTS_VERSION).tgz); \
	dest=services/dashboard/assets/vendor/echarts; mkdir -p $$dest; \
	cp "$$tmp/package/dist/echarts.esm.min.mjs" $$dest/echarts.esm.min.js; \
	gzip -9 -n -c $$dest/echarts.esm.min.js > $$dest/echarts.esm.min.js.gz; \
	cp "$$tmp/package/LICENSE" "$$tmp/package/NOTICE" $$dest/; \
	cp "$$tmp/package/licenses/LICENSE-d3" $$dest/; \
	echo $(ECHARTS_VERSION) > $$dest/VERSION; \
	echo "vendored echarts $(ECHARTS_VERSION) into $$dest"
