#!/usr/bin/env bash
# The command behind `make soak`: the long fault-injection runs of SPEC §10
# against the cockpit binary as processes (about 15 minutes on a two-core
# machine). Same setup as scripts/test.sh: Go modules, the ClickHouse
# engine, a real Apache Kafka broker on loopback, stopped whatever happens.
#
#   TestFaultServeKill9     cockpit serve killed with SIGKILL 20 times
#   TestFaultStoreKill9     cockpit store killed 6 times, restarted on its data dir
#   TestFaultBrokerRestart  the broker restarted twice under ingest
#   TestFaultWebhookDown    the receiver down 3 minutes, cockpit killed meanwhile
#   TestFaultLeaderKill     three instances, the alert leader killed twice
#
# Extra arguments go to go test, e.g. scripts/soak.sh -run TestFaultLeaderKill.
# COCKPIT_E2E_LOGS=dir keeps every process log there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "Go modules"
go mod download

step "ClickHouse engine (npm @chdb/lib-linux-x64-gnu, cached after the first run)"
COCKPIT_CHDB_LIB=$(bash scripts/fetch-chdb.sh | tail -n 1)
export COCKPIT_CHDB_LIB

step "Apache Kafka (Maven Central, cached after the first run)"
bash scripts/kafka.sh fetch
trap 'bash scripts/kafka.sh stop || true' EXIT
eval "$(bash scripts/kafka.sh start)"
export COCKPIT_TEST_KAFKA=$KAFKA COCKPIT_REQUIRE_KAFKA=1
echo "broker at $KAFKA"

step "fault injection, long variants (go test -tags soak)"
start=$(date +%s)
go test -tags soak -count=1 -p 1 -timeout 45m -v -run '^TestFault' "$@" ./internal/e2e
echo "soak took $(($(date +%s) - start)) s"
