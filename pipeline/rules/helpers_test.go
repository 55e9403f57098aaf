package rules_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simfill"
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

// simulated fills a fresh database with simulated traffic (simfill.Store).
func simulated(tb testing.TB, from, to time.Time, peak float64) (driver.Conn, int) {
	tb.Helper()
	return simfill.Store(tb, from, to, peak)
}
