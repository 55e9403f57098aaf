package kpi_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/largehist"
	"github.com/cockpit-cs/cockpit/internal/simfill"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// simulated fills a fresh database with simulated traffic (simfill.Store).
func simulated(tb testing.TB, from, to time.Time, peak float64) (driver.Conn, int) {
	tb.Helper()
	return simfill.Store(tb, from, to, peak)
}

// BenchmarkKPIs measures KPIs and KPIsBy(region) over the last 15 minutes
// and over 30 days of simulated history. COCKPIT_BENCH_PEAK sets the peak
// rate in conversations per second (default 0.5: about 6M events).
func BenchmarkKPIs(b *testing.B) {
	peak := 0.5
	if v, err := strconv.ParseFloat(os.Getenv("COCKPIT_BENCH_PEAK"), 64); err == nil && v > 0 {
		peak = v
	}
	to := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	from := to.Add(-30 * 24 * time.Hour)
	start := time.Now()
	conn, n := simulated(b, from, to, peak)
	b.Logf("stored %d events over 30 days in %s", n, time.Since(start).Round(time.Second))
	st, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: func() time.Time { return to }})
	if err != nil {
		b.Fatal(err)
	}
	benchWindows(b, to, storePath{store: func() *kpi.KPIStore { return st }})
}

// BenchmarkKPIsLarge measures KPIs and KPIsBy(region) over 15 minutes and
// 30 days of a 30-day history of at least 50M events generated inside the
// engine (chtest.Generate), read raw (rollup disabled: the path before the
// hourly rollup) and through the hourly rollup, and reports p50/p99. It
// needs COCKPIT_BENCH_LARGE=1 (generating and building take tens of
// minutes); COCKPIT_BENCH_CONVERSATIONS overrides the 6.1M conversations.
func BenchmarkKPIsLarge(b *testing.B) {
	h := largehist.Build(b)
	conn, cfg, now := h.Conn, h.Config, h.Now
	rolled, err := kpi.NewKPIStore(conn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	rawCfg := cfg
	rawCfg.Rollup.Disabled = true
	raw, err := kpi.NewKPIStore(conn, rawCfg)
	if err != nil {
		b.Fatal(err)
	}
	benchWindows(b, now,
		storePath{"raw", func() *kpi.KPIStore { return raw }},
		storePath{"rollup", func() *kpi.KPIStore { return rolled }},
		// A new store each time: nothing comes from its cache of rollup rows.
		storePath{"rollup_uncached", func() *kpi.KPIStore {
			st, err := kpi.NewKPIStore(conn, cfg)
			if err != nil {
				b.Fatal(err)
			}
			return st
		}})
}

// storePath is a way of reading windows: a name ("" for none) and the
// store to read each window with.
type storePath struct {
	name  string
	store func() *kpi.KPIStore
}

// benchWindows reads the last 15 minutes and 30 days before now, whole
// and by region, through each path, and reports latency percentiles. The
// sub-benchmarks are named path/window, or window for an unnamed path.
func benchWindows(b *testing.B, now time.Time, paths ...storePath) {
	ctx := context.Background()
	for _, path := range paths {
		for _, c := range []struct {
			name string
			w    kpi.Window
			by   bool
		}{
			{"15m", kpi.Window{From: now.Add(-15 * time.Minute), To: now}, false},
			{"15m_by_region", kpi.Window{From: now.Add(-15 * time.Minute), To: now}, true},
			{"30d", kpi.Window{From: now.Add(-30 * 24 * time.Hour), To: now}, false},
			{"30d_by_region", kpi.Window{From: now.Add(-30 * 24 * time.Hour), To: now}, true},
		} {
			name := c.name
			if path.name != "" {
				name = path.name + "/" + name
			}
			b.Run(name, func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					st := path.store()
					t0 := time.Now()
					var err error
					if c.by {
						_, err = st.KPIsBy(ctx, c.w, kpi.Filters{}, kpi.DimRegion)
					} else {
						_, err = st.KPIs(ctx, c.w, kpi.Filters{})
					}
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
			})
		}
	}
}
