package rules_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestMain is the only one of the rules test binary: chtest needs it.
func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// insertEvents stores events as ingest does, in one insert.
func insertEvents(tb testing.TB, conn driver.Conn, events []schemas.Event) {
	tb.Helper()
	if err := ingest.Insert(context.Background(), conn, events); err != nil {
		tb.Fatal(err)
	}
}

// simulated fills a fresh database with simulated traffic over [from, to)
// at peak rate peak (conversations per second), with duplicates and late
// events, and returns the connection and the number of events stored.
func simulated(tb testing.TB, from, to time.Time, peak float64) (driver.Conn, int) {
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
	if err := sim.Generate(from, to, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == 200_000 {
			insertEvents(tb, conn, batch)
			n += len(batch)
			batch = batch[:0]
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	insertEvents(tb, conn, batch)
	return conn, n + len(batch)
}
