// Package simfill fills a fresh test database with simulated traffic, for
// the tests and benchmarks that need history of realistic shape.
package simfill

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/schemas"
)

// Store fills a fresh database with simulated traffic over [from, to) at
// peak rate peak (conversations per second), with duplicates and late
// events, stored as ingest stores them, and returns the connection and
// the number of events stored.
func Store(tb testing.TB, from, to time.Time, peak float64) (driver.Conn, int) {
	tb.Helper()
	_, conn := chtest.Start(tb).Database(tb)
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.LogEvery = from, peak, 0
	cfg.Faults = simulate.Faults{LateShare: 0.02, MaxLateness: 90 * time.Second, DuplicateShare: 0.01, InFastForward: true}
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var batch []schemas.Event
	n := 0
	flush := func() {
		if err := ingest.Insert(context.Background(), conn, batch); err != nil {
			tb.Fatal(err)
		}
		n += len(batch)
		batch = batch[:0]
	}
	if err := sim.Generate(from, to, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == 200_000 {
			flush()
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	flush()
	return conn, n
}
