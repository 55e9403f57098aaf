#!/usr/bin/env bash
# The test command behind `make test`: installs what the suite needs, starts
# a real Apache Kafka broker on loopback, lints (make lint), runs every Go
# test with the race detector (integration tests included: none may skip),
# runs the fuzz targets briefly, and stops the broker whatever happened.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "Go modules"
go mod download

step "ClickHouse engine (npm @chdb/lib-linux-x64-gnu, cached after the first run)"
COCKPIT_CHDB_LIB=$(bash scripts/fetch-chdb.sh | tail -n 1)
export COCKPIT_CHDB_LIB

step "Debian packages: Prometheus Alertmanager (a real notifier peer), Chromium and CJK fonts (browser tests)"
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  echo "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Installed, not enabled: the test starts its own Alertmanager on loopback.
  $SUDO systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
export COCKPIT_REQUIRE_ALERTMANAGER=1

step "playwright-core (npm) for the browser tests"
(cd dashboard/e2e && npm install --no-audit --no-fund --silent)

step "Apache Kafka (Maven Central, cached after the first run)"
bash scripts/kafka.sh fetch
trap 'bash scripts/kafka.sh stop || true' EXIT
eval "$(bash scripts/kafka.sh start)"
export COCKPIT_TEST_KAFKA=$KAFKA COCKPIT_REQUIRE_KAFKA=1
echo "broker at $KAFKA"

step "lint: gofmt, go vet, golangci-lint (make lint)"
make --no-print-directory lint

step "go test -race"
# -p 2: two packages at a time on a two-core machine; each test binary that
# touches ClickHouse loads its own engine.
go test -race -count=1 -p 2 -timeout 45m ./...

step "fuzz (short): event decoder, API query parsing, store endpoint requests and block transcoding"
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 15s ./schemas
go test -run '^$' -fuzz '^FuzzParseQuery$' -fuzztime 10s ./api
go test -run '^$' -fuzz '^FuzzServeRequest$' -fuzztime 10s ./internal/chstore
go test -run '^$' -fuzz '^FuzzTranscode$' -fuzztime 10s ./internal/chstore

step "browser tests (headless Chromium against cockpit store + serve on the broker: wall, quality, alerts)"
node dashboard/e2e/browser.test.mjs
