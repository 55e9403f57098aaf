package api

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/pipeline"
)

// countingKPIs counts computations; each snapshot carries its number.
type countingKPIs struct{ calls atomic.Uint64 }

func (k *countingKPIs) KPIs(ctx context.Context, w pipeline.Window, f pipeline.Filters) (pipeline.Snapshot, error) {
	return pipeline.Snapshot{ConversationsStarted: k.calls.Add(1), From: w.From, To: w.To}, nil
}
func (k *countingKPIs) KPIsBy(context.Context, pipeline.Window, pipeline.Filters, pipeline.Dimension) ([]pipeline.KeyedSnapshot, error) {
	return nil, nil
}
func (k *countingKPIs) Timeseries(context.Context, string, time.Duration, pipeline.Window, pipeline.Filters, pipeline.Dimension) ([]pipeline.Series, error) {
	return nil, nil
}

func TestStreamSharesOneComputationPerTick(t *testing.T) {
	const clients, ticks = 1000, 6
	kpis := &countingKPIs{}
	// A tick and buffer roomy enough for 1,000 readers on two loaded cores
	// under the race detector; the property tested does not depend on them.
	const tick = 250 * time.Millisecond
	s, err := New(Deps{Config: Config{StreamTick: tick, StreamBuffer: 4},
		Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}), KPIs: kpis},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	// A stalled viewer: subscribed, never reading. It must be dropped,
	// and must not delay anyone.
	stalled, _ := s.hub.subscribe()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var connected, done sync.WaitGroup
	connected.Add(clients)
	done.Add(clients)
	got := make([][]string, clients)
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/stream", nil)
			resp, err := client.Do(req)
			if err != nil {
				connected.Done()
				errs <- err
				return
			}
			defer resp.Body.Close()
			connected.Done()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "data: ") {
					got[i] = append(got[i], line)
					if len(got[i]) == ticks {
						return
					}
				}
			}
		}()
	}
	connected.Wait()
	runCtx, stop := context.WithCancel(context.Background())
	started := time.Now()
	runDone := make(chan struct{})
	go func() { defer close(runDone); s.hub.Run(runCtx) }()
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("viewers did not get their ticks in time")
	}
	stop()
	<-runDone
	elapsed := time.Since(started)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case <-stalled.gone:
	default:
		t.Error("the stalled viewer was not dropped")
	}
	// One computation per tick that elapsed, however many viewers: had
	// each viewer caused its own, there would be thousands.
	calls := kpis.calls.Load()
	maxTicks := uint64(elapsed/tick) + 2
	if calls < ticks || calls > maxTicks {
		t.Errorf("%d computations in %s (at most %d ticks) for %d viewers; want one per tick", calls, elapsed.Round(time.Millisecond), maxTicks, clients)
	}
	// Every viewer saw the same snapshots, in order: the shared ones.
	for i := range clients {
		if len(got[i]) != ticks || got[i][0] != got[0][0] {
			t.Fatalf("viewer %d got %v, viewer 0 got %v", i, got[i], got[0])
		}
	}
}

func TestStreamFrames(t *testing.T) {
	h := newHub(nil, Config{StreamBuffer: 2}, time.Now, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	h.broadcast("kpi", []byte(`{"a":1}`), true)
	if f := string(<-c.ch); f != "id: 1\nevent: kpi\ndata: {\"a\":1}\n\n" {
		t.Fatalf("frame = %q", f)
	}
	_, last := h.subscribe()
	if !strings.Contains(string(last), `{"a":1}`) {
		t.Fatalf("a new viewer does not get the latest snapshot: %q", last)
	}
}
