#!/usr/bin/env bash
# kafka.sh — a single-node Apache Kafka (KRaft, broker+controller in one JVM)
# on loopback, for integration tests and CI. Jars come from Maven Central
# once; nothing here needs Docker or a Kafka tarball.
#
# Usage: scripts/kafka.sh fetch|start|stop|restart|status|logs
#
#   fetch    download kafka_2.13 and its runtime dependencies into the cache
#            (once; later calls return immediately)
#   start    fetch if needed, format fresh storage, start the broker and wait
#            until it answers a metadata request; prints KAFKA=host:port on
#            stdout (everything else goes to stderr), so
#              eval "$(scripts/kafka.sh start)"   sets $KAFKA.
#            If the broker is already running, only prints KAFKA=…
#   stop     SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT; removes the state dir
#   restart  stop the process but keep its data, then start it again
#            (broker-restart fault tests)
#   status   prints whether it runs; exit 0 if running, 3 if not
#   logs     prints the tail of the broker log
#
# Environment (defaults in brackets):
#   KAFKA_VERSION          Kafka release on Maven Central [4.3.1]
#   KAFKA_PORT             client (PLAINTEXT) port on 127.0.0.1 [19092]
#   KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1 [KAFKA_PORT+1]
#   KAFKA_HEAP_OPTS        JVM heap flags [-Xms256m -Xmx512m]
#   KAFKA_STATE_DIR        pid file, config, data and logs
#                          [${TMPDIR:-/tmp}/cockpit-kafka-$USER-$KAFKA_PORT]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer [60]
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL [30]
#   COCKPIT_CACHE          cache root [${XDG_CACHE_HOME:-$HOME/.cache}/cockpit];
#                          jars go to $COCKPIT_CACHE/kafka/$KAFKA_VERSION/libs
set -euo pipefail

# Kafka 4.4.0 is listed on Maven Central but its kafka-tools-api artifact (a
# runtime dependency of kafka_2.13) is not published, so 4.3.1 is the newest
# release that resolves. Kafka 4.x brokers need Java 17+.
KAFKA_VERSION=${KAFKA_VERSION:-4.3.1}
KAFKA_HOST=127.0.0.1
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-${TMPDIR:-/tmp}/cockpit-kafka-${USER:-$(id -un)}-${KAFKA_PORT}}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
CACHE_ROOT=${COCKPIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cockpit}
KAFKA_HOME=$CACHE_ROOT/kafka/$KAFKA_VERSION
LIBS=$KAFKA_HOME/libs

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$SCRIPT_DIR/kafka-pom.xml
PID_FILE=$KAFKA_STATE_DIR/kafka.pid
CONFIG=$KAFKA_STATE_DIR/server.properties
LOG4J_CONFIG=$KAFKA_STATE_DIR/log4j2.properties
TOOLS_LOG4J_CONFIG=$KAFKA_STATE_DIR/log4j2-tools.properties
DATA_DIR=$KAFKA_STATE_DIR/data
LOG_DIR=$KAFKA_STATE_DIR/logs
ADDR=$KAFKA_HOST:$KAFKA_PORT

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found in PATH; $2"
}

check_java() {
	need java "install a JDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)"
	local v
	# "openjdk version "17.0.15" …" or "java version "21" …"
	v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
	if [[ -z $v || $v -lt 17 ]]; then
		die "Kafka $KAFKA_VERSION needs Java 17 or newer, found: $(java -version 2>&1 | head -n1)"
	fi
}

fetched() { [[ -f $LIBS/.complete ]]; }

cmd_fetch() {
	if fetched; then
		log "Kafka $KAFKA_VERSION already in $LIBS"
		return 0
	fi
	need mvn "install Maven (Debian: apt-get install maven) to fetch Kafka from Maven Central"
	[[ -f $POM ]] || die "missing $POM"
	mkdir -p "$KAFKA_HOME"
	# Serialize concurrent fetches (parallel make targets) on one lock file.
	local lock
	exec {lock}>"$KAFKA_HOME/.lock"
	flock "$lock"
	if fetched; then
		log "Kafka $KAFKA_VERSION already in $LIBS"
		exec {lock}>&-
		return 0
	fi
	local tmp=$KAFKA_HOME/libs.tmp
	rm -rf "$tmp"
	log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies from Maven Central into $LIBS …"
	local start=$SECONDS
	if ! mvn -q -B -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
		-DoutputDirectory="$tmp" dependency:copy-dependencies >&2; then
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION (is Maven Central reachable? is the version published?)"
	fi
	[[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "mvn finished but $tmp/kafka_2.13-$KAFKA_VERSION.jar is missing"
	rm -rf "$LIBS"
	mv "$tmp" "$LIBS"
	touch "$LIBS/.complete"
	exec {lock}>&-
	local n size
	n=$(find "$LIBS" -name '*.jar' | wc -l)
	size=$(du -sm "$LIBS" | cut -f1)
	log "fetched $n jars (${size} MB) in $((SECONDS - start)) s"
}

# running_pid prints the broker's pid if the pid file names a live Kafka
# process started from this state dir (guards against recycled pids).
running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	[[ $cmdline == *kafka.Kafka* && $cmdline == *"$CONFIG"* ]] || return 1
	echo "$pid"
}

port_open() {
	# A subshell so the descriptor closes right away.
	(exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

write_config() {
	mkdir -p "$DATA_DIR" "$LOG_DIR"
	cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh: one combined broker+controller on loopback.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
log.dirs=$DATA_DIR

num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

# Internal topics on a single node: RF 1, few partitions so the first
# consumer group / transaction does not wait for 50 partitions to be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Two cores: keep thread pools small.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1

log.retention.hours=24
log.segment.bytes=268435456
EOF
	cat >"$LOG4J_CONFIG" <<EOF
# Generated by scripts/kafka.sh: broker logs go to a file, not the terminal.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $LOG_DIR/server.log
appender.file.filePattern = $LOG_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

java_opts() {
	# shellcheck disable=SC2206 # word splitting of the heap flags is intended
	JAVA_OPTS=($KAFKA_HEAP_OPTS
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
		-Djava.awt.headless=true
		"-Dlog4j2.configurationFile=$LOG4J_CONFIG"
		"-Dkafka.logs.dir=$LOG_DIR"
		-cp "$LIBS/*")
}

format_storage() {
	local cluster_id
	# A Kafka cluster id is 16 random bytes in unpadded base64url.
	cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
	java_opts
	log "formatting KRaft storage in $DATA_DIR (cluster $cluster_id)"
	if ! java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format \
		--cluster-id="$cluster_id" --config "$CONFIG" --standalone \
		>"$LOG_DIR/format.log" 2>&1; then
		cat "$LOG_DIR/format.log" >&2
		die "kafka.tools.StorageTool format failed"
	fi
}

# fail_start kills a broker that did not come up (first, so that nothing
# below can leave it running) and shows why.
fail_start() {
	local pid
	if pid=$(running_pid); then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PID_FILE"
	log "error: $1"
	log "---- last 40 lines of $LOG_DIR/server.log ----"
	tail -n 40 "$LOG_DIR/server.log" >&2 2>/dev/null || true
	log "---- last 20 lines of $LOG_DIR/stdout.log ----"
	tail -n 20 "$LOG_DIR/stdout.log" >&2 2>/dev/null || true
	exit 1
}

check_ports() {
	if port_open "$KAFKA_PORT"; then
		die "port $KAFKA_HOST:$KAFKA_PORT is already in use by another process (set KAFKA_PORT)"
	fi
	if port_open "$KAFKA_CONTROLLER_PORT"; then
		die "port $KAFKA_HOST:$KAFKA_CONTROLLER_PORT is already in use by another process (set KAFKA_CONTROLLER_PORT)"
	fi
}

# launch starts the JVM detached from our session, so ^C in the calling
# terminal or make's exit does not kill it; only `stop` does.
launch() {
	java_opts
	check_ports
	log "starting Kafka $KAFKA_VERSION on $ADDR (controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT, state $KAFKA_STATE_DIR)"
	# The inner shell writes its own pid and then becomes java via exec, so the
	# pid file is right whether or not setsid had to fork.
	# shellcheck disable=SC2016 # $$ and $@ expand in the inner shell
	# The broker must not inherit the state lock, or it would hold it for
	# its whole life and block the next stop or restart.
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
		java "${JAVA_OPTS[@]}" kafka.Kafka "$CONFIG" \
		</dev/null >>"$LOG_DIR/stdout.log" 2>&1 {state_lock}>&- &
	wait_ready
}

wait_ready() {
	local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid
	# The pid file appears a moment after the fork.
	while [[ ! -s $PID_FILE ]] && ((SECONDS < deadline)); do sleep 0.1; done
	while ((SECONDS < deadline)); do
		pid=$(running_pid) || fail_start "the broker process exited during startup"
		if port_open "$KAFKA_PORT"; then
			break
		fi
		sleep 0.2
	done
	port_open "$KAFKA_PORT" || fail_start "the broker did not open $ADDR within ${KAFKA_START_TIMEOUT}s"
	# An open port is not a working broker: ask for metadata (topic list) the
	# way a client would; AdminClient retries until the broker has caught up
	# with the metadata log.
	local left
	while true; do
		left=$((deadline - SECONDS))
		((left > 0)) || fail_start "the broker did not answer a metadata request within ${KAFKA_START_TIMEOUT}s"
		if timeout "$left" java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
			"-Dlog4j2.configurationFile=$TOOLS_LOG4J_CONFIG" -cp "$LIBS/*" \
			org.apache.kafka.tools.TopicCommand --bootstrap-server "$ADDR" --list \
			>>"$LOG_DIR/ready.log" 2>&1; then
			break
		fi
		running_pid >/dev/null || fail_start "the broker process exited during startup"
		sleep 0.5
	done
	log "ready (pid $(running_pid))"
}

cmd_start() {
	local pid
	if pid=$(running_pid); then
		log "already running (pid $pid)"
		echo "KAFKA=$ADDR"
		return 0
	fi
	cmd_fetch
	check_java
	check_ports
	# A state dir without a live broker is left over from a crash: start fresh.
	rm -rf "$KAFKA_STATE_DIR"
	mkdir -p "$KAFKA_STATE_DIR"
	write_config
	write_tools_log4j
	local t0=$SECONDS
	format_storage
	launch
	log "started in $((SECONDS - t0)) s"
	echo "KAFKA=$ADDR"
}

# The readiness probe logs only warnings, to a file of its own.
write_tools_log4j() {
	cat >"$TOOLS_LOG4J_CONFIG" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $LOG_DIR/tools.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
EOF
}

# stop_process stops the broker and waits for it to exit; data stays.
stop_process() {
	local pid
	pid=$(running_pid) || {
		rm -f "$PID_FILE"
		return 0
	}
	log "stopping pid $pid (SIGTERM)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$PID_FILE"
}

cmd_stop() {
	stop_process
	if [[ -d $KAFKA_STATE_DIR ]]; then
		rm -rf "$KAFKA_STATE_DIR"
		log "stopped; removed $KAFKA_STATE_DIR"
	else
		log "not running"
	fi
}

cmd_restart() {
	if [[ ! -f $DATA_DIR/meta.properties && ! -f $DATA_DIR/bootstrap.checkpoint ]]; then
		log "no existing broker data in $KAFKA_STATE_DIR; doing a fresh start"
		cmd_start
		return
	fi
	check_java
	fetched || die "Kafka $KAFKA_VERSION is not fetched; run: $0 fetch"
	stop_process
	# The client port can linger for a moment after the JVM exits.
	local deadline=$((SECONDS + 10))
	while port_open "$KAFKA_PORT" && ((SECONDS < deadline)); do sleep 0.2; done
	local t0=$SECONDS
	launch
	log "restarted in $((SECONDS - t0)) s"
	echo "KAFKA=$ADDR"
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		echo "running pid=$pid KAFKA=$ADDR state=$KAFKA_STATE_DIR version=$KAFKA_VERSION"
		return 0
	fi
	echo "not running (KAFKA_PORT=$KAFKA_PORT, state=$KAFKA_STATE_DIR)"
	return 3
}

cmd_logs() {
	[[ -f $LOG_DIR/server.log ]] || die "no broker log in $LOG_DIR"
	tail -n "${LINES:-100}" "$LOG_DIR/server.log"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

# serialize takes a lock beside the state dir (which start and stop
# delete), so concurrent start/stop/restart calls run one after another.
state_lock=
serialize() {
	mkdir -p "$(dirname "$KAFKA_STATE_DIR")"
	exec {state_lock}>"$KAFKA_STATE_DIR.lock"
	flock "$state_lock"
}

main() {
	local cmd=${1:-}
	case $cmd in
	start | stop | restart) serialize ;;
	esac
	case $cmd in
	fetch) cmd_fetch ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	restart) cmd_restart ;;
	status) cmd_status ;;
	logs) cmd_logs ;;
	-h | --help | help)
		usage
		;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
