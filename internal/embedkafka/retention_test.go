package embedkafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// produceSmallBatches writes n ~100-byte messages in batches of ten, so a
// partition's log has many small batches for retention to trim.
func produceSmallBatches(t testing.TB, addr, topic string, n int) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Balancer:     &kafka.RoundRobin{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    10,
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 10)
	for i := 0; i < n; i += len(msgs) {
		for j := range msgs {
			msgs[j] = kafka.Message{Value: []byte(fmt.Sprintf("%08d-%s", i+j, strings.Repeat("r", 90)))}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

func TestRetentionBoundsTheLog(t *testing.T) {
	const (
		segment   = 4 << 10
		retention = 16 << 10
	)
	tests := []struct {
		name string
		cfg  Config
		// ok reports whether retention has done its job on one partition.
		ok func(bytes, logStart, hwm int64) bool
	}{
		{
			name: "bytes",
			cfg:  Config{SegmentBytes: segment, RetentionBytes: retention},
			ok: func(bytes, logStart, _ int64) bool {
				return logStart > 0 && bytes <= retention+segment
			},
		},
		{
			name: "time",
			cfg:  Config{SegmentBytes: segment, RetentionBytes: -1, RetentionTime: 50 * time.Millisecond},
			ok: func(bytes, logStart, hwm int64) bool {
				return logStart == hwm && bytes == 0
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.RetentionCheckInterval = 10 * time.Millisecond
			cfg.Topics = []Topic{{Name: "events", Partitions: 2}}
			b := startTest(t, cfg)
			// ~200 KB, far beyond the limits.
			produceSmallBatches(t, b.Addr(), "events", 2000)

			deadline := time.Now().Add(10 * time.Second)
			for {
				done := true
				var state []string
				for _, p := range b.cluster.PartitionInfos("events") {
					state = append(state, fmt.Sprintf("p%d bytes=%d start=%d hwm=%d", p.Partition, p.NumBytes, p.LogStartOffset, p.HighWatermark))
					if p.HighWatermark != 1000 || !tt.ok(p.NumBytes, p.LogStartOffset, p.HighWatermark) {
						done = false
					}
				}
				if done {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("retention did not trim the log: %s", strings.Join(state, "; "))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestRetentionDisabled(t *testing.T) {
	b := startTest(t, Config{
		SegmentBytes: 4 << 10, RetentionBytes: -1, RetentionTime: -1,
		RetentionCheckInterval: 10 * time.Millisecond,
		Topics:                 []Topic{{Name: "events", Partitions: 1}},
	})
	produceSmallBatches(t, b.Addr(), "events", 500)
	time.Sleep(100 * time.Millisecond)
	p := b.cluster.PartitionInfos("events")[0]
	if p.LogStartOffset != 0 || p.HighWatermark != 500 {
		t.Fatalf("log trimmed with retention disabled: start=%d hwm=%d", p.LogStartOffset, p.HighWatermark)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, Topics: []Topic{{Name: "events", Partitions: 4}}}
	b, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := produce(ctx, b.Addr(), "events", 1000); err != nil {
		b.Close()
		t.Fatal(err)
	}
	const group = "survivor"
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, GroupID: group, Topic: "events", MaxWait: 100 * time.Millisecond})
	for range 600 {
		m, err := r.FetchMessage(ctx)
		if err == nil {
			err = r.CommitMessages(ctx, m)
		}
		if err != nil {
			r.Close()
			b.Close()
			t.Fatal(err)
		}
	}
	r.Close()
	b.Close()

	b2 := startTest(t, cfg)
	var hwm int64
	for _, p := range b2.cluster.PartitionInfos("events") {
		hwm += p.HighWatermark
	}
	if hwm != 1000 {
		t.Fatalf("after restart the topic holds %d records, want 1000", hwm)
	}
	committed, err := committedTotal(ctx, b2.Addr(), group, "events", 4)
	if err != nil {
		t.Fatal(err)
	}
	if committed != 600 {
		t.Fatalf("after restart group %s has %d committed, want 600", group, committed)
	}
	// The rest of the records are still readable from where the group left.
	r2 := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b2.Addr()}, GroupID: group, Topic: "events", MaxWait: 100 * time.Millisecond})
	defer r2.Close()
	for i := range 400 {
		m, err := r2.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of the remaining 400: %v", i, err)
		}
		if _, err := strconv.Atoi(string(m.Key)); err != nil {
			t.Fatalf("bad key %q", m.Key)
		}
	}
}
