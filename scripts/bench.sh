#!/usr/bin/env bash
# `make bench`: Go benchmarks of the hot paths against real Kafka and the
# embedded ClickHouse engine. Writes the raw output to bench/raw.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COCKPIT_CHDB_LIB=$(bash scripts/fetch-chdb.sh | tail -n 1)
export COCKPIT_CHDB_LIB
bash scripts/kafka.sh fetch
trap 'bash scripts/kafka.sh stop || true' EXIT
eval "$(bash scripts/kafka.sh start)"
export COCKPIT_TEST_KAFKA=$KAFKA COCKPIT_REQUIRE_KAFKA=1
mkdir -p bench
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version)"
  go test -run '^$' -bench 'BenchmarkIngest' -benchtime 3x -timeout 30m ./ingest
  go test -run '^$' -bench . -benchmem ./schemas ./internal/chstore ./internal/embedkafka
} 2>&1 | tee bench/raw.txt
