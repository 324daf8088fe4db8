# auditstore: `make help` lists the targets.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
BENCHTIME ?= 200x
FUZZTIME ?= 15s

.DEFAULT_GOAL := help
.PHONY: help run test lint bench bench-storage migrate build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## start every function on :8080 (with its own PostgreSQL unless DATABASE_URL is set), migrated
	@DB=$$($(GO) run ./test/devdb) || exit 1; \
	DATABASE_URL="$$DB" $(GO) run ./jobs/migrate || exit 1; \
	echo; \
	echo "auditstore is starting on http://localhost:$${PORT:-8080} (database: $$DB)"; \
	echo "Send an event:"; \
	echo "  curl -sS -X POST localhost:$${PORT:-8080}/api/v1/audit/events -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"event_type\":\"gateway.signal.received\",\"event_outcome\":\"success\",\"correlation_id\":\"rr-1\",\"event_data\":{\"version\":\"1.0\",\"service\":\"gateway\",\"operation\":\"signal.received\",\"status\":\"success\"}}'"; \
	echo "Query its timeline:"; \
	echo "  curl -sS 'localhost:$${PORT:-8080}/api/v1/audit/events?correlation_id=rr-1'"; \
	echo "Or look at it in the timeline viewer:"; \
	echo "  http://localhost:$${PORT:-8080}/ui/?correlation_id=rr-1"; \
	echo "Its proof of inclusion in the integrity log (sealed within SEAL_INTERVAL, 10 s):"; \
	echo "  curl -sS localhost:$${PORT:-8080}/api/v1/audit/events/<event_id>/proof"; \
	echo; \
	AUTH_MODE="$${AUTH_MODE:-none}" DATABASE_URL="$$DB" exec $(GO) run ./functions/standalone

test: alerts ## run every test against a real PostgreSQL (TEST_DATABASE_URL, else one of its own), and the alert rules' unit tests
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	cd test/duckdbcheck && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...
	$(GO) test ./functions/write -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: ## write-path benchmarks: InsertEvents next to the COPY / INSERT ceiling, same run
	$(GO) test ./shared/store -run '^$$' -bench 'InsertEvents|Ceiling' -benchtime $(BENCHTIME) -timeout 30m

bench-storage: ## on-disk bytes per event after 1M events (STORAGE_EVENTS to change)
	$(GO) test ./shared/store -run '^$$' -bench Storage -benchtime 1x -timeout 60m

migrate: ## apply migrations to DATABASE_URL (or to the local database of `make run`)
	@DB=$$($(GO) run ./test/devdb) && DATABASE_URL="$$DB" $(GO) run ./jobs/migrate

build: ## build every function and job into bin/
	$(GO) build -o bin/ ./functions/... ./jobs/...

LOADGEN_FLAGS ?=
.PHONY: bench-write
bench-write: ## write-function load test: events/s and latency next to the database ceiling
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" $(GO) run ./test/loadgen $(LOADGEN_FLAGS)

SEED_EVENTS ?= 5000000
QUERYBENCH_FLAGS ?=
.PHONY: bench-query
bench-query: ## query benchmarks at 5M events: seeds a database once, then HTTP vs direct SQL
	@DB=$$($(GO) run ./test/seed -server "$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" \
		-database auditstore_bench_query -n $(SEED_EVENTS)) || exit 1; \
	$(GO) run ./test/querybench -db "$$DB" $(QUERYBENCH_FLAGS)

COLD_EVENTS ?= 6600000
COLD_MONTHS ?= 6
COLD_DIR ?= .data/coldbench
.PHONY: bench-cold
bench-cold: ## cold tier at 6.6M seeded events (5M go cold, the last month and a bit stay hot): bytes/event, timeline p50/p99 hot vs cold (file:// and S3), growth with months, export
	@rm -rf $(COLD_DIR); \
	DB=$$($(GO) run ./test/seed -server "$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" \
		-database auditstore_bench_cold -n $(COLD_EVENTS) -months $(COLD_MONTHS)) || exit 1; \
	$(GO) build -o $(COLD_DIR).bin ./test/coldbench && $(COLD_DIR).bin -db "$$DB" -dir "$(abspath $(COLD_DIR))" $(COLDBENCH_FLAGS)

.PHONY: bench-integrity
bench-integrity: ## write throughput with integrity on vs off (same run), seal lag, verify speed
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" $(GO) run ./test/loadgen \
		-scenarios batch-unhashed,batch-sealed,batch-unhashed,batch-sealed,batch-unhashed,batch-sealed -skip-ceiling $(LOADGEN_FLAGS)

.PHONY: bench-hash
bench-hash: ## write throughput with hash_version 2 (erasable members) vs 1, alternating in one run
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" $(GO) run ./test/loadgen \
		-scenarios batch-v1,batch-v2,batch-v1,batch-v2,batch-v1,batch-v2 -skip-ceiling $(LOADGEN_FLAGS)

.PHONY: bench-ddl
bench-ddl: ## writer stall while maintenance creates a month and removes a 1M-row month (vs plain DETACH/DROP)
	$(GO) run ./test/ddlstall -db "$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

.PHONY: bench-hostile
bench-hostile: ## time to refuse hostile bodies, and a normal writer's latency while hostile senders run
	$(GO) test ./test/hostile -run '^$$' -bench Refuse -benchtime 20x
	$(GO) test ./test/hostile -run '^$$' -bench WriterUnderAttack -benchtime 1x -timeout 30m

.PHONY: bench-ui
bench-ui: ## timeline viewer: time to show a 500-event timeline in headless Chromium
	$(GO) test ./functions/query/ui -run '^$$' -bench TimelineLoad -benchtime 20x

.PHONY: alerts images deploy
alerts: ## check the Prometheus alert rules and run their unit tests with promtool (knative/observability)
	@command -v promtool >/dev/null || { echo "promtool is missing: install Debian's prometheus package (apt-get install prometheus), which has it"; exit 1; }
	cd knative/observability && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml

KO ?= ko
images: ## build and push the functions' and jobs' images with ko (KO_DOCKER_REPO names the registry)
	@command -v $(KO) >/dev/null || { echo "ko is missing: go install github.com/google/ko@latest"; exit 1; }
	KO_CONFIG_PATH=knative $(KO) build ./functions/write/cmd ./functions/query/cmd ./functions/maintain/cmd ./jobs/maintain ./jobs/migrate

deploy: ## build the images and apply knative/ to the current kubectl context, migrating first (KO_DOCKER_REPO)
	@command -v $(KO) >/dev/null || { echo "ko is missing: go install github.com/google/ko@latest"; exit 1; }
	kubectl -n auditstore delete job auditstore-migrate --ignore-not-found
	kubectl kustomize knative | KO_CONFIG_PATH=knative $(KO) apply -f -
	kubectl -n auditstore wait --for=condition=complete job/auditstore-migrate --timeout=10m
