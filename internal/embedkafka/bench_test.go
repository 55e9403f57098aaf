package embedkafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// BenchmarkProduceConsume measures end-to-end throughput of 300-byte
// messages through the embedded broker: a kafka-go Writer (acks=all,
// batches of 1000) and a concurrent consumer-group Reader committing every
// 1000 messages, in memory and with segments on disk.
func BenchmarkProduceConsume(b *testing.B) {
	for _, mode := range []string{"memory", "datadir"} {
		b.Run(mode, func(b *testing.B) {
			cfg := Config{Listen: "127.0.0.1:0"}
			if mode == "datadir" {
				cfg.DataDir = b.TempDir()
			}
			br := startTest(b, cfg)
			benchProduceConsume(b, br)
		})
	}
}

var benchRun int

func benchProduceConsume(b *testing.B, br *Broker) {
	benchRun++
	topic := fmt.Sprintf("bench-%d", benchRun)
	if err := br.cluster.CreateTopic(topic, 4, nil); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := make([]byte, 300)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:  []string{br.Addr()},
		GroupID:  topic,
		Topic:    topic,
		MinBytes: 1,
		MaxBytes: 8 << 20,
		MaxWait:  50 * time.Millisecond,
	})
	defer r.Close()
	w := &kafka.Writer{
		Addr:         kafka.TCP(br.Addr()),
		Topic:        topic,
		Balancer:     &kafka.RoundRobin{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   4 << 20,
		BatchTimeout: 2 * time.Millisecond,
	}
	b.SetBytes(int64(len(value)))
	b.ResetTimer()

	var (
		wg       sync.WaitGroup
		writeErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		msgs := make([]kafka.Message, 0, 4000)
		for sent := 0; sent < b.N; {
			msgs = msgs[:0]
			for ; len(msgs) < cap(msgs) && sent < b.N; sent++ {
				msgs = append(msgs, kafka.Message{Value: value})
			}
			if writeErr = w.WriteMessages(ctx, msgs...); writeErr != nil {
				return
			}
		}
	}()
	var pending []kafka.Message
	for got := 0; got < b.N; got++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			cancel()
			wg.Wait()
			b.Fatalf("fetch %d of %d: %v (producer: %v)", got, b.N, err, writeErr)
		}
		pending = append(pending, m)
		if len(pending) == 1000 || got == b.N-1 {
			if err := r.CommitMessages(ctx, pending...); err != nil {
				b.Fatal(err)
			}
			pending = pending[:0]
		}
	}
	wg.Wait()
	if writeErr != nil {
		b.Fatal(writeErr)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
