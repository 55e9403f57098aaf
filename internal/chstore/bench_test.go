package chstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkBatchInsert measures the ingest path: clickhouse-go over HTTP →
// Handler → engine, in batches of 10k rows of about 300 bytes, the size of a
// conversation event row. Reports rows/s.
func BenchmarkBatchInsert(b *testing.B) {
	conn := open(b, nil)
	ctx := context.Background()
	table := uniqueName(b)
	exec(b, conn, "CREATE TABLE "+table+` (
		event_id String, type LowCardinality(String), occurred_at DateTime64(3, 'UTC'),
		conversation_id String, region LowCardinality(String), channel LowCardinality(String),
		queue LowCardinality(String), actor_role LowCardinality(String), sentiment Nullable(Float32),
		payload String
	) ENGINE = MergeTree ORDER BY (region, occurred_at)`)
	const batchRows = 10_000
	payload := strings.Repeat("p", 220) // ~300 bytes a row in all
	at := time.Now().UTC()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
		if err != nil {
			b.Fatal(err)
		}
		for r := 0; r < batchRows; r++ {
			s := float32(r%200)/100 - 1
			if err := batch.Append(
				fmt.Sprintf("evt-%d-%d", i, r), "message.sent", at.Add(time.Duration(r)*time.Millisecond),
				fmt.Sprintf("conv-%d", r%5000), "广州", "chat", "billing", "customer", &s, payload,
			); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchRows)/time.Since(start).Seconds(), "rows/s")
}
