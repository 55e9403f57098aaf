package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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
	for _, path := range []string{"/api/v1/kpis", "/api/v1/kpis/by/region"} {
		b.Run(path, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				resp, err := http.Get(ts.URL + path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", path, resp.StatusCode)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
