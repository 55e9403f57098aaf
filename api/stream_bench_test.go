package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// BenchmarkStream measures the wall's live stream, /api/v1/stream, with 1
// and 1,000 concurrent viewers over HTTP: the update lag (from the
// instant a snapshot is taken, its "to", to each viewer reading the
// frame) and the store statements per tick interval, counted at the
// engine's endpoint, which must not grow with the viewers (frames/tick
// below 1 means some ticks' queries overran the tick). The KPI store runs over
// the last two hours of simulated traffic on the real engine, with the
// real clock. Each run lasts streamTicks ticks whatever b.N.
func BenchmarkStream(b *testing.B) {
	ch := chtest.Start(b)
	_, conn := ch.Database(b)
	now := time.Now().UTC()
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.LogEvery = now.Add(-2*time.Hour), 5, 0
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	var batch []schemas.Event
	if err := sim.Generate(now.Add(-2*time.Hour), now, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == 100_000 {
			store(b, conn, batch)
			batch = batch[:0]
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	store(b, conn, batch)
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for _, viewers := range []int{1, 1000} {
		b.Run("viewers="+strconv.Itoa(viewers), func(b *testing.B) {
			benchStream(b, ch, kpis, viewers)
		})
	}
}

// streamTicks is how many ticks one run of BenchmarkStream observes.
const streamTicks = 15

func benchStream(b *testing.B, ch *chtest.Store, kpi KPISource, viewers int) {
	s, err := New(Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}), KPIs: kpi},
		slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); s.Hub().Run(ctx) }()
	defer func() { cancel(); <-hubDone }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	var (
		mu        sync.Mutex
		lags      []time.Duration
		recording atomic.Bool
		frames    atomic.Int64 // kpi frames read while recording, over all viewers
		connected sync.WaitGroup
		readers   sync.WaitGroup
		// arrived hears of viewer 0's kpi frames: the instant after a
		// broadcast is between two ticks' queries, where counting starts
		// and stops.
		arrived = make(chan struct{}, 1)
	)
	connected.Add(viewers)
	for v := range viewers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/v1/stream", nil)
			resp, err := client.Do(req)
			if err != nil {
				connected.Done()
				b.Error(err)
				return
			}
			defer resp.Body.Close()
			connected.Done()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			var kpiEvent bool
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				switch {
				case bytes.HasPrefix(line, []byte("event: ")):
					kpiEvent = bytes.Equal(bytes.TrimSpace(line[7:]), []byte("kpi"))
				case kpiEvent && bytes.HasPrefix(line, []byte("data: ")):
					at := time.Now()
					var snap struct {
						To time.Time `json:"to"`
					}
					if err := json.Unmarshal(line[6:], &snap); err != nil {
						b.Error(err)
						return
					}
					if recording.Load() {
						frames.Add(1)
						mu.Lock()
						lags = append(lags, at.Sub(snap.To))
						mu.Unlock()
					}
					if v == 0 {
						select {
						case arrived <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	connected.Wait()
	// Let the viewers' first frames and the connection burst pass.
	time.Sleep(2 * s.cfg.StreamTick)
	betweenTicks := func() {
		select {
		case <-arrived: // a stale one
		default:
		}
		select {
		case <-arrived:
		case <-time.After(10 * s.cfg.StreamTick):
			b.Fatal("viewer 0 received no kpi frame in 10 ticks")
		}
	}
	betweenTicks()
	statements0, seq0, t0 := ch.Statements(), hubSeq(s.Hub()), time.Now()
	recording.Store(true)
	b.ResetTimer()
	time.Sleep(streamTicks * s.cfg.StreamTick)
	betweenTicks()
	statements, ticks := ch.Statements()-statements0, hubSeq(s.Hub())-seq0
	// Per tick interval, not per frame: a tick whose query overran its
	// deadline sends no frame but did query the store.
	intervals := time.Since(t0).Seconds() / s.cfg.StreamTick.Seconds()
	recording.Store(false)
	b.StopTimer()
	cancel()
	readers.Wait()
	if ticks == 0 || len(lags) == 0 {
		b.Fatalf("no kpi frames in %d ticks", streamTicks)
	}
	if got, want := frames.Load(), int64(ticks)*int64(viewers); got < want*9/10 {
		b.Fatalf("viewers read %d kpi frames, want about %d (%d ticks × %d viewers)", got, want, ticks, viewers)
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag-p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag-max-ms")
	b.ReportMetric(float64(statements)/intervals, "queries/tick")
	b.ReportMetric(float64(ticks)/intervals, "frames/tick")
	b.ReportMetric(float64(viewers), "viewers")
}

// hubSeq is the number of frames the hub has broadcast (kpi frames only
// here: no alerts are published).
func hubSeq(h *Hub) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}
