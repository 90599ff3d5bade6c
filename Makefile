# Paystream developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# cargo-nextest runs each test in its own process (clean global state) and
# reports slow tests; plain cargo test is the fallback on machines without it.
TEST_RUNNER := $(shell cargo nextest --version >/dev/null 2>&1 && echo "cargo nextest run --workspace --no-fail-fast" || echo "cargo test --workspace --no-fail-fast")

.PHONY: help
help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: run
run: dev-up ## Start the stack and the services, drive the demo mix and a load (LOAD=2000) through them
	@bash devstack/services.sh
	@PAYSTREAM_DEMO_LOAD=$(or $(LOAD),2000) bash devstack/demo.sh

.PHONY: chaos
chaos: dev-up ## 10,000 payments while SIGKILL hits every service and the broker (SEED=n repeats a run), then reconcile
	cargo build --bins
	PAYSTREAM_CHAOS_PAYMENTS=$(or $(PAYMENTS),10000) $(if $(SEED),PAYSTREAM_CHAOS_SEED=$(SEED),) \
	  cargo nextest run --profile chaos -p paystream-cli -E 'test(chaos)' --no-capture

.PHONY: test
test: dev-up ## Unit and integration tests against the real broker, registry and PostgreSQL
	$(TEST_RUNNER)

.PHONY: bench
bench: dev-up ## Throughput benchmarks (release build; prints figures for BENCHMARKS.md)
	cargo bench -p paystream-telemetry --bench log_lines
	cargo bench -p paystream-bus --bench consumer_throughput
	cargo bench -p paystream-cbs-debit --bench hold_throughput
	cargo bench -p paystream-rtgs-gateway --bench submission_throughput
	cargo build --release --bins
	@bash devstack/bench-baseline.sh
	PAYSTREAM_BENCH_BASELINE_PYTHON=$(CURDIR)/target/bench-baseline/bin/python \
	  cargo bench -p paystream-e2e --bench front_door
	cargo bench -p paystream-validation --bench validation_throughput
	cargo bench -p paystream-e2e --bench pipeline_throughput

.PHONY: profile
profile: dev-up ## CPU profiles (flame graphs) of the gateway and validation under their benchmarks' load, in target/profiles
	@bash devstack/profile.sh

.PHONY: dev-up
dev-up: install ## Start PostgreSQL (if down), nisshi, the schema registry; create topics and schemas
	@bash devstack/up.sh

.PHONY: dev-down
dev-down: ## Stop the broker and the schema registry (PURGE=1 also deletes their data)
	@bash devstack/down.sh $(if $(PURGE),--purge,)

.PHONY: install
install: ## Install system packages, the broker and the reference data a fresh machine lacks (quick when present)
	@bash devstack/install-deps.sh
	@bash devstack/install-broker.sh
	@bash devstack/fetch-reference-data.sh

.PHONY: lint
lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: check-manifests
check-manifests: ## Offline checks: Dockerfile, compose and rendered Kubernetes manifests against their schemas, alert rules (promtool), schemas vs released versions
	python3 devstack/check-manifests.py
	bash devstack/check-manifests.sh
	bash devstack/test-check-manifests.sh
	bash devstack/check-monitoring.sh
	bash devstack/check-schemas.sh

.PHONY: release
release: ## Build one service's image at its crate's version (SERVICE=gateway; prints the command without an engine)
	@bash devstack/release.sh $(if $(SERVICE),$(SERVICE),--help)

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all
