package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/pipeline"
	"github.com/cockpit-cs/cockpit/schemas"
)

// BenchmarkKPIEndpoints measures GET /api/v1/kpis and
// /api/v1/kpis/by/region for the last 15 minutes over 24 hours of
// simulated traffic (about 5 conversations/s at peak), through gin, the
// KPI store and the engine, and reports p50 and p99.
func BenchmarkKPIEndpoints(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	to := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.LogEvery = to.Add(-24*time.Hour), 5, 0
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	var batch []schemas.Event
	n := 0
	if err := sim.Generate(to.Add(-24*time.Hour), to, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == 200_000 {
			store(b, conn, batch)
			n += len(batch)
			batch = batch[:0]
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	store(b, conn, batch)
	b.Logf("%d events over 24 h", n+len(batch))
	kpi, err := pipeline.NewKPIStore(conn, pipeline.KPIConfig{Now: func() time.Time { return to }})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		KPIs: kpi, Now: func() time.Time { return to }}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	benchGet(b, ts.URL, "", nil, "", "/api/v1/kpis", "/api/v1/kpis/by/region")
}

// benchGet measures GET of each path with the query string query and
// reports p50, p99 and the extra metrics; the sub-benchmark is named
// label+path.
func benchGet(b *testing.B, base, query string, extra map[string]float64, label string, paths ...string) {
	for _, path := range paths {
		b.Run(label+path, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				resp, err := http.Get(base + path + query)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d %s", path, resp.StatusCode, body)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
			for unit, v := range extra {
				b.ReportMetric(v, unit)
			}
		})
	}
}

// BenchmarkKPIEndpointsLarge measures GET /api/v1/kpis and
// /api/v1/kpis/by/region over the last 15 minutes and the last 30 days
// of a 30-day history of at least 50M events generated in the engine
// (chtest.Generate), with the hourly rollup built, and reports p50 and
// p99. It needs COCKPIT_BENCH_LARGE=1 (tens of minutes of setup);
// COCKPIT_BENCH_CONVERSATIONS overrides the 6.1M conversations.
func BenchmarkKPIEndpointsLarge(b *testing.B) {
	if os.Getenv("COCKPIT_BENCH_LARGE") != "1" {
		b.Skip("set COCKPIT_BENCH_LARGE=1 to generate 50M events")
	}
	convs := 6_100_000
	if v, err := strconv.Atoi(os.Getenv("COCKPIT_BENCH_CONVERSATIONS")); err == nil && v > 0 {
		convs = v
	}
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	to := from.Add(30 * 24 * time.Hour)
	_, conn := chtest.Start(b).Database(b)
	start := time.Now()
	n := chtest.Generate(b, conn, chtest.Traffic{From: from, To: to, Conversations: convs, DuplicateShare: 0.02})
	b.Logf("stored %d events over 30 days in %s", n, time.Since(start).Round(time.Second))
	now := to.Add(-7*time.Minute - 27*time.Second - 500*time.Millisecond)
	cfg := pipeline.KPIConfig{Now: func() time.Time { return now }, Rollup: pipeline.RollupConfig{Horizon: 3 * 365 * 24 * time.Hour, ChunkHours: 12, Settle: time.Second}}
	// The events were stored a moment ago, so the builder's first scan
	// marks their hours changed; they count as clean only when built a
	// settle time after that (the product waits 3 min; a second here).
	time.Sleep(2 * cfg.Rollup.Settle)
	builder, err := pipeline.NewRollupBuilder(conn, cfg, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	res, err := builder.Pass(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("rollup: built %d hours in %s", res.Built, time.Since(start).Round(time.Second))
	kpi, err := pipeline.NewKPIStore(conn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		KPIs: kpi, Now: func() time.Time { return now }}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	// Named 15m/… and 30d/… for the report (internal/benchreport); events
	// says how large the history was.
	extra := map[string]float64{"events": float64(n)}
	benchGet(b, ts.URL, "", extra, "15m", "/api/v1/kpis", "/api/v1/kpis/by/region")
	month := "?" + url.Values{"from": {now.Add(-30 * 24 * time.Hour).Format(time.RFC3339Nano)}, "to": {now.Format(time.RFC3339Nano)}}.Encode()
	benchGet(b, ts.URL, month, extra, "30d", "/api/v1/kpis", "/api/v1/kpis/by/region")
}
