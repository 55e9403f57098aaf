# Cockpit — the two commands that matter: `make run` and `make test`.
# Both install what they need on a fresh machine (Go modules, the ClickHouse
# engine from npm, Apache Kafka from Maven Central) into ~/.cache/cockpit.

GO       ?= go
BIN      := bin/cockpit
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/cockpit-cs/cockpit/internal/app.Version=$(VERSION)
ARGS     ?=
export CGO_ENABLED := 1

.PHONY: all build deps run test test-unit test-sim soak bench bench-large lint fuzz screenshots kafka-start kafka-stop clean

all: build

## build: compile the cockpit binary into bin/
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cockpit

## deps: Go modules and the embedded ClickHouse engine (166 MB, fetched once)
deps:
	$(GO) mod download
	bash scripts/fetch-chdb.sh >/dev/null

## run: everything embedded on http://127.0.0.1:8080 (extra flags: make run ARGS="--simulate=false")
run: deps build
	./$(BIN) demo $(ARGS)

## test: the whole suite against real Kafka and the real ClickHouse engine
test:
	bash scripts/test.sh

## soak: the long fault-injection runs: kill -9 loops, store and broker restarts, a receiver down for minutes (~15 min; scripts/soak.sh)
soak:
	bash scripts/soak.sh

## test-unit: tests that need no Kafka broker (integration tests skip)
test-unit:
	$(GO) test -race -count=1 ./...

## test-sim: the built-in rules over 4 simulated hours of baseline and the incidents, at the demo's rate (long)
test-sim:
	COCKPIT_SIMRULES_RATE=20 COCKPIT_SIMRULES_HOURS=4 $(GO) test -run '^TestBuiltinRulesOnSimulatedTraffic$$' -count=1 -v -timeout 180m ./internal/simulate

## bench: the SPEC §9 measurements and the Telegraf peer -> bench/raw.txt, bench/REPORT.md (see scripts/bench.sh)
bench:
	bash scripts/bench.sh

## bench-large: KPI queries and endpoints over 30 days of >= 50M generated events, raw and via the hourly rollup, and the live view's recompute over such a history (over an hour)
bench-large:
	COCKPIT_CHDB_LIB=$$(bash scripts/fetch-chdb.sh | tail -n 1) COCKPIT_BENCH_LARGE=1 \
		$(GO) test -run '^$$' -bench 'Large$$' -benchtime 20x -timeout 3h ./pipeline/kpi ./api

## lint: formatting, vet and golangci-lint (.golangci.yml; the linter's version is pinned in tools/lint.mod, apart from the product's modules)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool -modfile=tools/lint.mod golangci-lint run ./...

## fuzz: every fuzz target for FUZZTIME each (default 1m; corpora in each package's testdata/fuzz)
FUZZTIME ?= 1m
fuzz: deps
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzScanWire$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzEscapeMarkdown$$' -fuzztime $(FUZZTIME) ./alerts/notify/tmpl
	$(GO) test -run '^$$' -fuzz '^FuzzServeRequest$$' -fuzztime $(FUZZTIME) ./internal/chstore
	$(GO) test -run '^$$' -fuzz '^FuzzTranscode$$' -fuzztime $(FUZZTIME) ./internal/chstore
	$(GO) test -run '^$$' -fuzz '^FuzzSafeNext$$' -fuzztime $(FUZZTIME) ./dashboard
	$(GO) test -run '^$$' -fuzz '^FuzzParseMatcher$$' -fuzztime $(FUZZTIME) ./alerts
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime $(FUZZTIME) ./pipeline/rules

## screenshots: /wall, /quality and /alerts of the real product at 1920x1080 into screenshots/
screenshots:
	bash scripts/browser.sh --screenshots-only

kafka-start:
	bash scripts/kafka.sh start
kafka-stop:
	bash scripts/kafka.sh stop

clean:
	rm -rf bin data
