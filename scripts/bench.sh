#!/usr/bin/env bash
# `make bench`: the SPEC §9 measurements in one run, against real Kafka and
# the embedded ClickHouse engine, with Telegraf as the ingest peer. Writes
# the raw `go test -bench` output to bench/raw.txt and the report made from
# it to bench/REPORT.md (go run ./internal/benchreport).
#
# Installs what it needs on a fresh machine, cached under
# ~/.cache/cockpit (COCKPIT_CACHE): the engine (scripts/fetch-chdb.sh),
# Kafka (scripts/kafka.sh) and Telegraf, built once from the Go module
# proxy with only the plugins the peer benchmark uses.
#
# Environment:
#   KAFKA_PORT          broker port (scripts/kafka.sh; default 19092)
#   TELEGRAF_VERSION    Telegraf release to build [1.37.3]
#   COCKPIT_TELEGRAF    use this Telegraf binary instead of building one
#   BENCH_PIPELINE=1    also run the KPI and rule-tick benchmarks (30 days of
#                       simulated history, read raw: about 12 minutes more)
#   BENCH_LARGE=1       also measure /api/v1/kpis over 30 days of at least
#                       50M events generated in the engine, with the hourly
#                       rollup built (the SPEC §9 30-day row; tens of
#                       minutes more, see `make bench-large` for the raw
#                       path beside it)
#
# A benchmark that fails is reported as such and the others still run;
# the script exits non-zero after writing the report if any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bench.sh: %s\n' "$*" >&2; }

TELEGRAF_VERSION=${TELEGRAF_VERSION:-1.37.3}
TELEGRAF_TAGS=custom,inputs.kafka_consumer,outputs.sql,parsers.json_v2
CACHE_ROOT=${COCKPIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cockpit}

COCKPIT_CHDB_LIB=$(bash scripts/fetch-chdb.sh | tail -n 1) || exit 1
export COCKPIT_CHDB_LIB
bash scripts/kafka.sh fetch || exit 1

# Telegraf: built once into the cache. A build that fails is not fatal:
# the report then says why the peer was not measured.
telegraf_note=""
if [[ -z ${COCKPIT_TELEGRAF:-} ]]; then
	COCKPIT_TELEGRAF=$CACHE_ROOT/telegraf/$TELEGRAF_VERSION/telegraf
	if [[ ! -x $COCKPIT_TELEGRAF ]]; then
		log "building Telegraf $TELEGRAF_VERSION from the Go module proxy (once; several minutes)"
		mkdir -p "$(dirname "$COCKPIT_TELEGRAF")"
		blog=$(mktemp)
		# Outside the repository, so our go.mod plays no part.
		if ! (cd "$(dirname "$COCKPIT_TELEGRAF")" &&
			GOBIN=$PWD GOFLAGS=-mod=mod go install -tags "$TELEGRAF_TAGS" \
				-ldflags "-X github.com/influxdata/telegraf/internal.Version=$TELEGRAF_VERSION" \
				"github.com/influxdata/telegraf/cmd/telegraf@v$TELEGRAF_VERSION") >"$blog" 2>&1; then
			telegraf_note="build failed: $(tail -n 3 "$blog" | tr '\n' ' ')"
			log "Telegraf build failed; the peer benchmark will be skipped: $telegraf_note"
			rm -f "$COCKPIT_TELEGRAF"
		fi
		rm -f "$blog"
	fi
fi
if [[ -x $COCKPIT_TELEGRAF ]]; then
	export COCKPIT_TELEGRAF
else
	unset COCKPIT_TELEGRAF
fi

trap 'bash scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(bash scripts/kafka.sh start)" || exit 1
export COCKPIT_TEST_KAFKA=$KAFKA COCKPIT_REQUIRE_KAFKA=1

mkdir -p bench
raw=bench/raw.txt
failed=0

# busy prints the share of the machine's CPU time in use over 3 s (%).
busy() {
	local a b
	read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ </proc/stat
	sleep 3
	read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ </proc/stat
	a=$(((b1 + b2 + b3 + b6 + b7 + b8) - (a1 + a2 + a3 + a6 + a7 + a8)))
	b=$((a + (b4 + b5) - (a4 + a5)))
	echo $((b > 0 ? 100 * a / b : 0))
}

# quiet writes out the pages the steps before left to the disk, then
# waits, up to 2 minutes, until less than 15 % of the machine's CPU is in
# use, so that a step does not pay for the one before it (a broker
# flushing, an engine merging, processes exiting, 300 MB of a 50k-events/s
# run still being written), and says how it found the machine.
quiet() {
	local pct waited=0 dirty t0
	dirty=$(awk '/^Dirty:/ {printf "%d", $2/1024}' /proc/meminfo)
	t0=$(date +%s%N)
	sync
	echo "# disk before step $step: ${dirty} MB of dirty pages, written out in $((($(date +%s%N) - t0) / 1000000)) ms"
	pct=$(busy)
	while ((pct >= 15 && waited < 120)); do
		waited=$((waited + 3))
		pct=$(busy)
	done
	echo "# machine before step $step: ${pct}% of the CPU in use over 3 s, after waiting ${waited} s"
}

# run prints the command as "$ …", quoted for a shell (the report lists
# them), with the load just before it, then runs it; a failure is
# remembered, not fatal.
step=0
run() {
	step=$((step + 1))
	quiet
	echo "# load before step $step: $(cut -d' ' -f1-3 /proc/loadavg)"
	printf '$'
	printf ' %q' "$@"
	printf '\n'
	"$@" || failed=1
}

{
	echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	# The commit measured ("-dirty": with changes not committed), so a
	# report says what it is of without its commit message.
	echo "# commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "# cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(nproc) cores"
	echo "# memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "# kernel: $(uname -sr)"
	echo "# go: $(go version)"
	echo "# kafka: Apache Kafka $(sed -n 's/^KAFKA_VERSION=\${KAFKA_VERSION:-\(.*\)}$/\1/p' scripts/kafka.sh) (KRaft, one broker on $KAFKA), $(java -version 2>&1 | head -n1)"
	echo "# engine: ClickHouse engine from @chdb/lib-linux-x64-gnu $(sed -n 's/^version=//p' scripts/fetch-chdb.sh), behind cockpit's HTTP endpoint (internal/chstore), in the benchmark process"
	if [[ -n ${COCKPIT_TELEGRAF:-} ]]; then
		echo "# telegraf: $("$COCKPIT_TELEGRAF" --version 2>&1 | head -n1), built with -tags $TELEGRAF_TAGS"
	else
		echo "# telegraf: not available: ${telegraf_note:-COCKPIT_TELEGRAF unset}"
	fi
	echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; $(nproc) cores; the machine is shared)"

	run go test -run '^$' -bench 'BenchmarkIngest/real-kafka$' -benchtime 2x -timeout 20m ./ingest
	run go test -run '^$' -bench 'BenchmarkIngest/(telegraf|embedded-kafka)$' -benchtime 1x -timeout 20m ./ingest
	run go test -run '^$' -bench 'BenchmarkFreshness$' -benchtime 1x -timeout 10m ./internal/app
	run go test -run '^$' -bench 'BenchmarkFiringToNotification$' -benchtime 100x -timeout 10m ./alerts
	# A delivery pass's read of the outbox when it holds a month of
	# delivered notifications.
	run go test -run '^$' -bench 'BenchmarkDue$' -benchtime 20x -timeout 10m ./alerts
	# An event produced → its notification at a webhook: `cockpit serve`
	# and `cockpit store` as processes of their own, 50 complaints.
	run go test -run '^$' -bench 'BenchmarkEventToNotification$' -benchtime 50x -timeout 20m ./internal/e2e
	run go test -run '^$' -bench 'BenchmarkStream$' -benchtime 1x -timeout 10m ./api
	# CPU, memory and start-up of `cockpit demo` as `make run` starts it,
	# then idle: its catch-up (4 min) and 2 min idle (about 18 minutes;
	# SPEC §9 averages the demo over 10).
	run go test -run '^$' -bench 'BenchmarkDemo$' -benchtime 1x -timeout 40m ./internal/e2e
	run go test -run '^$' -bench 'BenchmarkKPIEndpoints' -benchtime 10x -timeout 20m ./api
	run go test -run '^$' -bench . -benchmem -timeout 10m ./schemas ./internal/chdb ./internal/chstore ./internal/embedkafka
	# The regional spike rule: recall and false alarms on simulated worlds
	# and the real sets (pure, no store), and a 7-day backtest at a
	# 1-minute step over the store.
	run go test -run '^$' -bench 'BenchmarkSpikeOperatingPoint$|BenchmarkSpikeRuleBacktestWeek$' -benchtime 1x -timeout 30m -p 1 ./pipeline/spike ./pipeline/rules
	if [[ ${BENCH_PIPELINE:-} == 1 ]]; then
		run go test -run '^$' -bench 'BenchmarkKPIs|BenchmarkRuleTick' -benchtime 20x -timeout 30m -p 1 ./pipeline/kpi ./pipeline/rules
	fi
	if [[ ${BENCH_LARGE:-} == 1 ]]; then
		run env COCKPIT_BENCH_LARGE=1 go test -run '^$' -bench 'BenchmarkKPIEndpointsLarge$' -benchtime 100x -timeout 2h ./api
	fi
	echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$raw.tmp"
mv "$raw.tmp" "$raw"
# The failure flag was set in the pipeline's subshell: read it back from
# the output.
if grep -qE '^(FAIL|--- FAIL)|^panic:' "$raw"; then
	failed=1
fi
go run ./internal/benchreport -in "$raw" -out bench/REPORT.md || exit 1
log "wrote $raw and bench/REPORT.md"
exit "$failed"
