package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/embedkafka"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/internal/memlimit"
	"github.com/cockpit-cs/cockpit/internal/procstat"
	"github.com/cockpit-cs/cockpit/schemas"
)

// The workload of the ingest benchmarks: 300-byte events (each padded to
// exactly that with message text), five per conversation.
const (
	benchEventBytes = 300
	// defaultBenchEvents is enough that joining the consumer group, which
	// the clock includes, is a small part of the time.
	defaultBenchEvents = 1_000_000
	// benchEventsEmbedded is smaller: the embedded broker is the slow part
	// there, and it keeps every record in memory.
	benchEventsEmbedded = 200_000
)

// benchEvents is the number of events of one iteration:
// COCKPIT_BENCH_EVENTS, default defaultBenchEvents. (For experiments,
// COCKPIT_BENCH_BATCH_ROWS overrides the consumer's batch_rows.)
var benchEvents = func() int {
	if n, err := strconv.Atoi(os.Getenv("COCKPIT_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return defaultBenchEvents
}()

// BenchmarkIngest measures Kafka -> ClickHouse committed throughput: the
// topic is filled first, then the clock runs from the consumer's start
// until every record is inserted and its offset committed. The engine runs
// in this process behind its HTTP endpoint, as in the demo, so peak RSS
// and CPU per event include it. The telegraf sub-benchmark
// (telegraf_bench_test.go) is the peer, on the same broker and engine.
func BenchmarkIngest(b *testing.B) {
	b.Run("real-kafka", func(b *testing.B) {
		brokers := kafkatest.Broker(b)
		benchIngest(b, brokers, benchEvents, func(b *testing.B) string { return kafkatest.Topic(b, brokers, 4) })
	})
	b.Run("telegraf", benchTelegraf)
	b.Run("embedded-kafka", func(b *testing.B) {
		// Topics made at start: one per iteration (b.N is small).
		var topics []embedkafka.Topic
		for i := range 20 {
			topics = append(topics, embedkafka.Topic{Name: "bench-" + strconv.Itoa(i), Partitions: 4})
		}
		broker, err := embedkafka.Start(context.Background(), embedkafka.Config{Listen: "127.0.0.1:0", Topics: topics})
		if err != nil {
			b.Fatal(err)
		}
		defer broker.Close()
		n := 0
		benchIngest(b, broker.Addr(), benchEventsEmbedded, func(b *testing.B) string {
			if n == len(topics) {
				b.Fatal("more iterations than topics")
			}
			n++
			return topics[n-1].Name
		})
	})
}

func benchIngest(b *testing.B, brokers string, events int, newTopic func(*testing.B) string) {
	// The Go runtime's memory limit of the cockpit process: without it the
	// heap of this process grows as no cockpit's does, and the peak RSS
	// measured is not the product's.
	memlimit.Apply()
	store := chtest.Start(b)
	var elapsed, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, conn := store.Database(b)
		topic := newTopic(b)
		produceBench(b, brokers, topic, events)
		cfg := ingest.Default()
		cfg.Brokers, cfg.Topic, cfg.GroupID = []string{brokers}, topic, "bench-"+topic
		if n, err := strconv.Atoi(os.Getenv("COCKPIT_BENCH_BATCH_ROWS")); err == nil && n > 0 {
			cfg.BatchRows, cfg.BatchBytes = n, max(cfg.BatchBytes, n*2*benchEventBytes)
		}
		c, err := ingest.New(cfg, conn, prometheus.NewRegistry(), testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		t0, cpu0 := time.Now(), processCPU()
		go func() { done <- c.Run(ctx) }()
		for c.Stats().Inserted.Load()+c.Stats().Rejected.Load() < int64(events) {
			time.Sleep(2 * time.Millisecond)
		}
		elapsed += time.Since(t0)
		cpu += processCPU() - cpu0
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if rej := c.Stats().Rejected.Load(); rej != 0 {
			b.Fatalf("%d events rejected", rej)
		}
		if n := count(b, conn, "SELECT count() FROM events"); n != uint64(events) {
			b.Fatalf("stored %d rows, want %d", n, events)
		}
	}
	total := float64(events * b.N)
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/total, "cpu-µs/event")
	b.ReportMetric(benchEventBytes, "bytes/event")
	b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
}

// benchMessage is event i of the benchmark workload, exactly
// benchEventBytes long. Events are generated as they are produced, so the
// benchmark process does not hold the workload in memory (its peak RSS is
// the consumer's and the engine's).
func benchMessage(prefix string, i int, base time.Time) kafka.Message {
	conv := fmt.Sprintf("%s-c%07d", prefix, i/5)
	types := [5]schemas.EventType{schemas.ConversationStarted, schemas.MessageSent, schemas.MessageSent, schemas.MessageSent, schemas.ConversationClosed}
	at := base.Add(time.Duration(i/5)*10*time.Millisecond + time.Duration(i%5)*time.Second)
	m := event(fmt.Sprintf("%s-e%08d", prefix, i), conv, types[i%5], at, 0)
	var e schemas.Event
	if err := json.Unmarshal(m.Value, &e); err != nil {
		panic(err)
	}
	// "text":"…" adds 10 bytes of syntax to the object.
	if pad := benchEventBytes - len(m.Value) - 10; pad > 0 {
		e.Text = strings.Repeat("x", pad)
		m.Value, _ = json.Marshal(e)
	}
	if len(m.Value) != benchEventBytes {
		panic(fmt.Sprintf("bench event is %d bytes, want %d", len(m.Value), benchEventBytes))
	}
	return m
}

// produceBench fills topic with n benchmark events.
//
// The writer gets a transport of its own: kafka-go's shared default
// transport caches a broker's metadata for seconds and, for a topic not in
// that cache, answers Unknown Topic Or Partition without asking the broker,
// which failed the second iteration on a topic the broker already had.
func produceBench(b *testing.B, brokers, topic string, n int) {
	b.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{}, Transport: tr,
		BatchSize: 10000, BatchBytes: 1 << 20, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const chunk = 20000
	msgs := make([]kafka.Message, 0, chunk)
	for j := 0; j < n; j += chunk {
		msgs = msgs[:0]
		for k := j; k < min(j+chunk, n); k++ {
			msgs = append(msgs, benchMessage("bench", k, base))
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			msg := err.Error()
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			b.Fatalf("produce to %s: %s", topic, msg)
		}
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMiB reads the process's high-water resident set from /proc.
func peakRSSMiB() float64 { return vmHWM(os.Getpid()) }

// vmHWM is the high-water resident set of process pid, in MiB (0 when it
// cannot be read).
func vmHWM(pid int) float64 {
	b, err := procstat.PeakRSS(pid)
	if err != nil {
		return 0
	}
	return float64(b) / (1 << 20)
}
