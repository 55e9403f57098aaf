package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/largehist"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// BenchmarkKPIEndpoints measures GET /api/v1/kpis and
// /api/v1/kpis/by/region for their default window, the last 15 minutes,
// over 24 hours of simulated traffic that ends now, every hour as busy as
// the peak (5 conversations/s), through gin, the KPI store and the
// engine, as `cockpit serve` answers them: from the live view, loaded
// before the timing as a running process has it loaded, once the
// insert's merges are done (no events arrive meanwhile;
// BenchmarkFreshness asks the same endpoint while 50k events/s do).
// Reports p50 and p99.
func BenchmarkKPIEndpoints(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	to := time.Now().UTC()
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.Floor, cfg.LogEvery = to.Add(-24*time.Hour), 5, 1, 0
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
	n += len(batch)
	b.Logf("%d events over the last 24 h, stored in %s", n, time.Since(to).Round(time.Second))
	// A running product does not answer while the engine merges a day's
	// bulk insert, nor with a view that finds its last rows new.
	chtest.Settle(b, conn)
	ts := kpiServer(b, kpi.KPIConfig{}, conn, true)
	// The first requests load the view; its data is as old as the load
	// took until the next refresh, and older than /kpis takes it (the
	// store answers meanwhile). Timing starts once the view answers.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		code, body := get(b, ts.URL+"/api/v1/kpis")
		if code != 200 {
			b.Fatalf("warm-up request: %d %s", code, body)
		}
		var answer struct{ From time.Time }
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			b.Fatal(err)
		}
		if answer.From.UnixMilli()%10_000 == 0 {
			break // whole buckets: the view's answer
		}
		if time.Now().After(deadline) {
			b.Fatal("the live view did not answer /api/v1/kpis within a minute")
		}
	}
	benchGet(b, ts.URL, "", map[string]float64{"events": float64(n)}, "", "/api/v1/kpis", "/api/v1/kpis/by/region")
}

// kpiServer serves the API over a KPI store of conn with cfg, its clock
// at cfg.Now, until b ends. With live, the default window is answered
// from the store's live view, as `cockpit serve` answers it (the view
// reads the engine's clock: only for a history that ends now).
func kpiServer(b *testing.B, cfg kpi.KPIConfig, conn driver.Conn, live bool) *httptest.Server {
	b.Helper()
	kpis, err := kpi.NewKPIStore(conn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	deps := Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}), KPIs: kpis, Now: cfg.Now}
	if live {
		deps.LiveKPIs = kpis.Live()
	}
	s, err := New(deps, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	return ts
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
// p99. Its history is fixed in the past, so even the 15 minutes are read
// from the store and the rollup, as an explicit window is. It needs
// COCKPIT_BENCH_LARGE=1 (tens of minutes of setup);
// COCKPIT_BENCH_CONVERSATIONS overrides the 6.1M conversations.
func BenchmarkKPIEndpointsLarge(b *testing.B) {
	h := largehist.Build(b)
	ts := kpiServer(b, h.Config, h.Conn, false)
	now, n := h.Now, h.Events
	// Named 15m/… and 30d/… for the report (internal/benchreport); events
	// says how large the history was.
	extra := map[string]float64{"events": float64(n)}
	benchGet(b, ts.URL, "", extra, "15m", "/api/v1/kpis", "/api/v1/kpis/by/region")
	month := "?" + url.Values{"from": {now.Add(-30 * 24 * time.Hour).Format(time.RFC3339Nano)}, "to": {now.Format(time.RFC3339Nano)}}.Encode()
	benchGet(b, ts.URL, month, extra, "30d", "/api/v1/kpis", "/api/v1/kpis/by/region")
}
