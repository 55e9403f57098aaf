// Package largehist builds the history the large KPI benchmarks read: 30
// days of at least 50M events generated inside the engine
// (chtest.Generate), with the hourly rollup built over it.
package largehist

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// History is a built history: the connection to its database, the KPI
// configuration its rollup was built with, the "now" to query at and the
// number of events stored.
type History struct {
	Conn   driver.Conn
	Config kpi.KPIConfig
	Now    time.Time
	Events uint64
}

// Build generates the history and builds its rollup, or skips b unless
// COCKPIT_BENCH_LARGE=1 (generating and building take minutes);
// COCKPIT_BENCH_CONVERSATIONS overrides the 6.1M conversations.
func Build(b *testing.B) History {
	b.Helper()
	convs := chtest.LargeConversations(b)
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	to := from.Add(30 * 24 * time.Hour)
	_, conn := chtest.Start(b).Database(b)
	start := time.Now()
	n := chtest.Generate(b, conn, chtest.Traffic{From: from, To: to, Conversations: convs, DuplicateShare: 0.02})
	b.Logf("stored %d events of %d conversations over 30 days in %s", n, convs, time.Since(start).Round(time.Second))
	// "Now" is late in the last hour, so a 30-day window has a partial
	// hour at both ends.
	now := to.Add(-7*time.Minute - 27*time.Second - 500*time.Millisecond)
	cfg := kpi.KPIConfig{Now: func() time.Time { return now },
		Rollup: kpi.RollupConfig{Horizon: 3 * 365 * 24 * time.Hour, ChunkHours: 12, Settle: time.Second}}
	// The events were stored a moment ago, so the builder's first scan
	// marks their hours changed; they count as clean only when built a
	// settle time after that (the product waits 3 min; a second here).
	time.Sleep(2 * cfg.Rollup.Settle)
	builder, err := kpi.NewRollupBuilder(conn, cfg, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	res, err := builder.Pass(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("rollup: built %d hours in %s", res.Built, time.Since(start).Round(time.Second))
	return History{Conn: conn, Config: cfg, Now: now, Events: n}
}
