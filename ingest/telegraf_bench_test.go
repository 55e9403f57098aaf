package ingest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
)

// EnvTelegraf names the Telegraf binary the peer benchmark runs
// (scripts/bench.sh builds it: inputs.kafka_consumer, parsers.json_v2,
// outputs.sql).
const EnvTelegraf = "COCKPIT_TELEGRAF"

// telegrafTable receives Telegraf's rows: the columns of events that
// Telegraf can fill from the same JSON, the same types, engine and order.
const telegrafTable = `CREATE TABLE telegraf_events (
    timestamp       DateTime64(3, 'UTC'),
    type            LowCardinality(String),
    event_id        String,
    conversation_id String,
    channel         LowCardinality(String),
    region          LowCardinality(String),
    queue           LowCardinality(String),
    business_line   LowCardinality(String),
    actor_role      LowCardinality(String),
    actor_id        String,
    entry           LowCardinality(String),
    customer_id     String,
    sentiment       Nullable(Float64),
    abusive         Nullable(Bool),
    text            String,
    reason          LowCardinality(String),
    resolution      LowCardinality(String),
    category        LowCardinality(String),
    severity        LowCardinality(String),
    score           Int64,
    schema_version  Int64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toStartOfHour(timestamp), type, conversation_id, event_id)`

// telegrafConfig is the peer's configuration. It is tuned for throughput
// as far as Telegraf allows: large metric batches flushed often, enough
// undelivered messages in flight to fill a batch, no jitter, one
// transaction per batch (batch_transactions) so that clickhouse-go sends
// each batch as one INSERT.
var telegrafConfig = template.Must(template.New("telegraf").Parse(`
[agent]
  interval = "1s"
  flush_interval = "200ms"
  flush_jitter = "0s"
  metric_batch_size = 50000
  metric_buffer_limit = 2000000
  omit_hostname = true
  quiet = true

[[inputs.kafka_consumer]]
  brokers = ["{{.Brokers}}"]
  topics = ["{{.Topic}}"]
  consumer_group = "telegraf-{{.Topic}}"
  offset = "oldest"
  # Kafka 4 brokers dropped the old protocol versions that sarama uses by
  # default (its fetches then end in EOF).
  kafka_version = "4.0.0"
  max_undelivered_messages = 100000
  data_format = "json_v2"

  [[inputs.kafka_consumer.json_v2]]
    measurement_name = "telegraf_events"
    timestamp_path = "occurred_at"
    timestamp_format = "rfc3339nano"
    [[inputs.kafka_consumer.json_v2.tag]]
      path = "type"
{{- range .Strings}}
    [[inputs.kafka_consumer.json_v2.field]]
      path = "{{.Path}}"
      rename = "{{.Column}}"
      type = "string"
      optional = true
{{- end}}
    [[inputs.kafka_consumer.json_v2.field]]
      path = "sentiment"
      type = "float"
      optional = true
    [[inputs.kafka_consumer.json_v2.field]]
      path = "abusive"
      type = "bool"
      optional = true
    [[inputs.kafka_consumer.json_v2.field]]
      path = "score"
      type = "int"
      optional = true
    [[inputs.kafka_consumer.json_v2.field]]
      path = "schema_version"
      type = "int"

[[outputs.sql]]
  driver = "clickhouse"
  data_source_name = "{{.DSN}}"
  timestamp_column = "timestamp"
  batch_transactions = true
`))

type telegrafColumn struct{ Path, Column string }

var telegrafStrings = []telegrafColumn{
	{"event_id", "event_id"}, {"conversation_id", "conversation_id"}, {"channel", "channel"},
	{"region", "region"}, {"queue", "queue"}, {"business_line", "business_line"},
	{"actor.role", "actor_role"}, {"actor.id", "actor_id"}, {"entry", "entry"},
	{"customer_id", "customer_id"}, {"text", "text"}, {"reason", "reason"},
	{"resolution", "resolution"}, {"category", "category"}, {"severity", "severity"},
}

// benchTelegraf is the peer of BenchmarkIngest/real-kafka: Telegraf reads
// the same events from the same broker into a table of the same engine,
// and the clock runs from its start until every row is in the table.
func benchTelegraf(b *testing.B) {
	bin := os.Getenv(EnvTelegraf)
	if bin == "" {
		b.Skipf("telegraf: %s is not set (scripts/bench.sh builds Telegraf and sets it)", EnvTelegraf)
	}
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("telegraf: %s: %v", EnvTelegraf, err)
	}
	brokers := kafkatest.Broker(b)
	store := chtest.Start(b)
	var elapsed, cpu time.Duration
	var peakMiB float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, conn := store.Database(b)
		if err := conn.Exec(context.Background(), telegrafTable); err != nil {
			b.Fatal(err)
		}
		topic := kafkatest.Topic(b, brokers, 4)
		produceBench(b, brokers, topic, benchEvents)
		dir := b.TempDir()
		conf := filepath.Join(dir, "telegraf.conf")
		var buf bytes.Buffer
		if err := telegrafConfig.Execute(&buf, map[string]any{
			"Brokers": brokers, "Topic": topic, "DSN": store.DSN(db), "Strings": telegrafStrings,
		}); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(conf, buf.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
		var log lockedBuffer
		cmd := exec.Command(bin, "--config", conf)
		cmd.Stdout, cmd.Stderr = &log, &log
		b.StartTimer()
		t0, cpu0 := time.Now(), processCPU()
		if err := cmd.Start(); err != nil {
			b.Fatalf("telegraf: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		pid := cmd.Process.Pid
		var hwm float64
		deadline := time.Now().Add(5 * time.Minute)
		for {
			hwm = max(hwm, vmHWM(pid))
			if count(b, conn, "SELECT count() FROM telegraf_events") >= uint64(benchEvents) {
				break
			}
			select {
			case err := <-exited:
				b.Fatalf("telegraf exited: %v\n%s", err, log.tail(4000))
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				b.Fatalf("telegraf did not store %d rows within 5 minutes\n%s", benchEvents, log.tail(4000))
			}
		}
		elapsed += time.Since(t0)
		ours := processCPU() - cpu0 // the engine's share
		b.StopTimer()
		peakMiB = max(peakMiB, hwm)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited: //nolint:errcheck // a terminated child exits with an error
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited //nolint:errcheck // killed: its exit status says nothing
		}
		// The child's CPU is known once it has exited; it includes its
		// shutdown, a small overstatement.
		cpu += ours + cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if n := count(b, conn, "SELECT count() FROM telegraf_events"); n != uint64(benchEvents) {
			b.Fatalf("telegraf stored %d rows, want %d\n%s", n, benchEvents, log.tail(4000))
		}
		if n := count(b, conn, "SELECT uniqExact(event_id) FROM telegraf_events"); n != uint64(benchEvents) {
			b.Fatalf("telegraf stored %d distinct events, want %d", n, benchEvents)
		}
	}
	total := float64(benchEvents * b.N)
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/total, "cpu-µs/event")
	b.ReportMetric(benchEventBytes, "bytes/event")
	b.ReportMetric(peakMiB, "telegraf-peak-RSS-MiB")
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
