package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/embedkafka"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
)

// benchEvents is the workload of the ingest benchmarks: 300-byte events.
const benchEvents = 200_000

// BenchmarkIngest measures Kafka -> ClickHouse committed throughput: the
// topic is filled first, then the clock runs from the consumer's start
// until every record is inserted and its offset committed. The engine runs
// in this process behind its HTTP endpoint, as in the demo, so peak RSS
// includes it.
func BenchmarkIngest(b *testing.B) {
	b.Run("real-kafka", func(b *testing.B) {
		benchIngest(b, kafkatest.Broker(b), func(b *testing.B, brokers string) string {
			return kafkatest.Topic(b, brokers, 4)
		})
	})
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
		benchIngest(b, broker.Addr(), func(b *testing.B, brokers string) string {
			if n == len(topics) {
				b.Fatal("more iterations than topics")
			}
			n++
			return topics[n-1].Name
		})
	})
}

func benchIngest(b *testing.B, brokers string, newTopic func(*testing.B, string) string) {
	store := chtest.Start(b)
	msgs := conversationEvents("bench", benchEvents, 370)
	var bytes int
	for _, m := range msgs {
		bytes += len(m.Value)
	}
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, conn := store.Database(b)
		topic := newTopic(b, brokers)
		w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{},
			BatchSize: 10000, BatchBytes: 8 << 20, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireAll}
		for j := 0; j < len(msgs); j += 10000 {
			if err := w.WriteMessages(context.Background(), msgs[j:min(j+10000, len(msgs))]...); err != nil {
				b.Fatal(err)
			}
		}
		_ = w.Close()
		cfg := ingest.Default()
		cfg.Brokers, cfg.Topic, cfg.GroupID = []string{brokers}, topic, "bench-"+topic
		c, err := ingest.New(cfg, conn, prometheus.NewRegistry(), testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		t0 := time.Now()
		go func() { done <- c.Run(ctx) }()
		for c.Stats().Inserted.Load()+c.Stats().Rejected.Load() < benchEvents {
			time.Sleep(2 * time.Millisecond)
		}
		elapsed += time.Since(t0)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if n := count(b, conn, "SELECT count() FROM events"); n != benchEvents {
			b.Fatalf("stored %d rows, want %d", n, benchEvents)
		}
	}
	b.ReportMetric(float64(benchEvents*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(benchEvents), "bytes/event")
	b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
}

// peakRSSMiB reads the process's high-water resident set from /proc.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb / 1024
		}
	}
	return 0
}
