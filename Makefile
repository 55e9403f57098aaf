# Cockpit — the two commands that matter: `make run` and `make test`.
# Both install what they need on a fresh machine (Go modules, the ClickHouse
# engine from npm, Apache Kafka from Maven Central) into ~/.cache/cockpit.

GO       ?= go
BIN      := bin/cockpit
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/cockpit-cs/cockpit/internal/app.Version=$(VERSION)
ARGS     ?=
export CGO_ENABLED := 1

.PHONY: all build deps run test test-unit bench bench-large lint fuzz screenshots kafka-start kafka-stop clean

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

## test-unit: tests that need no Kafka broker (integration tests skip)
test-unit:
	$(GO) test -race -count=1 ./...

## bench: Go benchmarks of the hot paths (needs real Kafka; see scripts/bench.sh)
bench:
	bash scripts/bench.sh

## bench-large: KPI queries and endpoints over 30 days of >= 50M generated events, raw and via the hourly rollup (about an hour)
bench-large:
	COCKPIT_CHDB_LIB=$$(bash scripts/fetch-chdb.sh | tail -n 1) COCKPIT_BENCH_LARGE=1 \
		$(GO) test -run '^$$' -bench 'Large$$' -benchtime 20x -timeout 3h ./pipeline ./api

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## fuzz: run the fuzz targets for longer (FUZZTIME=2m)
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./schemas

## screenshots: /wall, /quality and /alerts at 1920x1080 into screenshots/ (needs chromium, see scripts/test.sh)
screenshots:
	cd dashboard/e2e && npm install --no-audit --no-fund --silent
	node dashboard/e2e/wall.test.mjs --screenshots-only

kafka-start:
	bash scripts/kafka.sh start
kafka-stop:
	bash scripts/kafka.sh stop

clean:
	rm -rf bin data
