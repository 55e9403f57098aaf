package kpi_test

import (
	"context"
	"math"
	"os"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestMain is the only one of the kpi test binary: chtest needs it.
func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// insertEvents stores events as ingest does, in one insert.
func insertEvents(tb testing.TB, conn driver.Conn, events []schemas.Event) {
	tb.Helper()
	if err := ingest.Insert(context.Background(), conn, events); err != nil {
		tb.Fatal(err)
	}
}

func f64(v float64) *float64 { return &v }

// near reports whether got is within 1e-9 (or rel relative) of want.
func near(got, want, rel float64) bool {
	d := math.Abs(got - want)
	return d <= 1e-9 || d <= rel*math.Abs(want)
}

func checkRatio(t *testing.T, name string, got *float64, want *float64) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s = %v, want null", name, *got)
	case want != nil && got == nil:
		t.Errorf("%s = null, want %v", name, *want)
	case want != nil && !near(*got, *want, 1e-12):
		t.Errorf("%s = %v, want %v", name, *got, *want)
	}
}

// wantQ is a hand-computed distribution; nil avg means count 0.
type wantQ struct {
	count         uint64
	avg, p50, p90 float64
}

func checkQuantile(t *testing.T, name string, got kpi.Quantile, want wantQ) {
	t.Helper()
	n, avg, p50, p90 := got.Count, got.Avg, got.P50, got.P90
	if n != want.count {
		t.Errorf("%s.count = %d, want %d", name, n, want.count)
		return
	}
	if n == 0 {
		if avg != nil || p50 != nil || p90 != nil {
			t.Errorf("%s: count 0 but avg/p50/p90 not null", name)
		}
		return
	}
	if avg == nil || p50 == nil || p90 == nil {
		t.Errorf("%s: count %d but a stat is null", name, n)
		return
	}
	if !near(*avg, want.avg, 1e-12) {
		t.Errorf("%s.avg = %v, want %v (exact)", name, *avg, want.avg)
	}
	if !near(*p50, want.p50, 0.01) {
		t.Errorf("%s.p50 = %v, want %v ±1%%", name, *p50, want.p50)
	}
	if !near(*p90, want.p90, 0.01) {
		t.Errorf("%s.p90 = %v, want %v ±1%%", name, *p90, want.p90)
	}
}
