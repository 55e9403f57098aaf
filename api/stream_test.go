package api

import (
	"bufio"
	"context"
	"encoding/json"
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

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// countingKPIs counts computations; each snapshot carries its number.
// It stands for the store only in these fan-out tests, which count calls;
// the numbers themselves are tested against the real engine elsewhere.
// Its answers say they were read at asOf (zero: they do not say).
type countingKPIs struct {
	calls, panelCalls atomic.Uint64
	asOf              atomic.Pointer[time.Time]
}

func (k *countingKPIs) read() time.Time {
	if t := k.asOf.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

func (k *countingKPIs) KPIs(ctx context.Context, w kpi.Window, f kpi.Filters) (kpi.Snapshot, error) {
	return kpi.Snapshot{ConversationsStarted: k.calls.Add(1), From: w.From, To: w.To, AsOf: k.read()}, nil
}
func (k *countingKPIs) KPIsBy(context.Context, kpi.Window, kpi.Filters, kpi.Dimension) ([]kpi.KeyedSnapshot, error) {
	k.panelCalls.Add(1)
	return []kpi.KeyedSnapshot{{Key: "a", Snapshot: kpi.Snapshot{Complaints: 1, AsOf: k.read()}}, {Key: "b", Snapshot: kpi.Snapshot{Complaints: 5, AsOf: k.read()}},
		{Key: "c", Snapshot: kpi.Snapshot{AsOf: k.read()}}}, nil
}
func (k *countingKPIs) Timeseries(context.Context, string, time.Duration, kpi.Window, kpi.Filters, kpi.Dimension) ([]kpi.Series, error) {
	return nil, nil
}
func (k *countingKPIs) Trends(_ context.Context, ms []string, _ time.Duration, w kpi.Window, _ kpi.Filters) (map[string][]kpi.Point, time.Time, error) {
	k.panelCalls.Add(1)
	v := 0.5
	out := map[string][]kpi.Point{}
	for _, m := range ms {
		out[m] = []kpi.Point{{Time: w.From, Value: &v}}
	}
	return out, k.read(), nil
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
	panels := make([]int, clients)
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
			event := ""
			for sc.Scan() {
				line := sc.Text()
				if e, ok := strings.CutPrefix(line, "event: "); ok {
					event = e
				}
				if strings.HasPrefix(line, "data: ") {
					if event == "wall" {
						panels[i]++
						continue
					}
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
	// The wall panel (trends + regions) was computed once for everyone
	// (the default interval is 15 s), and everyone got it.
	if n := kpis.panelCalls.Load(); n != 2 {
		t.Errorf("%d panel queries for %d viewers, want 2", n, clients)
	}
	for i := range clients {
		if panels[i] != 1 {
			t.Fatalf("viewer %d got %d wall frames, want 1", i, panels[i])
		}
	}
}

func TestStreamPanel(t *testing.T) {
	kpis := &countingKPIs{}
	now := time.Date(2026, 11, 22, 8, 30, 20, 0, time.UTC)
	h := newHub(kpis, nil, Config{StreamBuffer: 4, StreamPanelEvery: time.Minute}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	if !h.panelDue() {
		t.Fatal("no panel yet, but none is due")
	}
	h.panel(context.Background())
	f := string(<-c.ch)
	// The trends: the last 60 whole minutes, without the minute under way
	// (its wait p90 and service level count only what was quick enough
	// to have happened yet). The regions: the last hour, in whole minutes
	// up to the current minute's end, with complaints, most first.
	var frame struct {
		Trends  struct{ From, To time.Time } `json:"trends"`
		Regions struct{ From, To time.Time } `json:"regions"`
	}
	if err := json.Unmarshal([]byte(f[strings.Index(f, "data: ")+len("data: "):]), &frame); err != nil {
		t.Fatalf("wall frame: %v\n%s", err, f)
	}
	if got := frame.Trends; !got.From.Equal(now.Add(-time.Hour-20*time.Second)) || !got.To.Equal(now.Add(-20*time.Second)) {
		t.Errorf("trends over [%s, %s), want the 60 whole minutes before 08:30", got.From, got.To)
	}
	if got := frame.Regions; !got.From.Equal(now.Add(-time.Hour+40*time.Second)) || !got.To.Equal(now.Add(40*time.Second)) {
		t.Errorf("regions over [%s, %s), want the hour up to 08:31", got.From, got.To)
	}
	for _, want := range []string{"event: wall\n", `"step_seconds":60`,
		`"rows":[{"key":"b","complaints":5},{"key":"a","complaints":1}]`, `"service_level":[[`, `"as_of":"2026-11-22T08:30:20Z"`} {
		if !strings.Contains(f, strings.ReplaceAll(want, "\\n", "\n")) {
			t.Errorf("wall frame lacks %s:\n%s", want, f)
		}
	}
	// Without an alert history there is no firing list to show, and the
	// frame does not pretend to have one.
	if strings.Contains(f, `"firing"`) {
		t.Errorf("wall frame has a firing list without an alert history:\n%s", f)
	}
	if h.panelDue() {
		t.Error("a panel is due right after one was sent")
	}
	now = now.Add(time.Minute)
	if !h.panelDue() {
		t.Error("no panel due a whole interval later")
	}
	_, last := h.subscribe()
	if !strings.Contains(string(last), "event: wall") {
		t.Error("a new viewer does not get the latest panel")
	}
}

func TestStreamFrames(t *testing.T) {
	h := newHub(nil, nil, Config{StreamBuffer: 2}, time.Now, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	h.broadcast("kpi", []byte(`{"a":1}`))
	if f := string(<-c.ch); f != "id: 1\nevent: kpi\ndata: {\"a\":1}\n\n" {
		t.Fatalf("frame = %q", f)
	}
	_, last := h.subscribe()
	if !strings.Contains(string(last), `{"a":1}`) {
		t.Fatalf("a new viewer does not get the latest snapshot: %q", last)
	}
}

// TestStreamFreshData: stored events make a snapshot go out before the
// next tick, at most once per quarter tick.
func TestStreamFreshData(t *testing.T) {
	kpis := &countingKPIs{}
	// A tick so long that any snapshot seen here came from Fresh.
	h := newHub(kpis, nil, Config{StreamTick: time.Hour, StreamBuffer: 8, StreamPanelEvery: time.Hour}, time.Now, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h.Fresh()
	deadline := time.After(30 * time.Second)
	for got := false; !got; {
		select {
		case f := <-c.ch:
			got = strings.Contains(string(f), "event: kpi")
		case <-deadline:
			t.Fatal("no snapshot after fresh data")
		}
	}
	// Within the same quarter tick, more fresh data waits.
	h.Fresh()
	h.Fresh()
	time.Sleep(200 * time.Millisecond)
	if n := kpis.calls.Load(); n != 1 {
		t.Errorf("%d snapshots, want 1 within a quarter tick", n)
	}
}

// TestStreamEndsWithHub: when the hub stops (the server is shutting
// down), its viewers' requests end instead of holding the shutdown until
// its deadline, and a viewer that comes later is let go at once.
func TestStreamEndsWithHub(t *testing.T) {
	h := newHub(&countingKPIs{}, nil, Config{StreamTick: time.Hour, StreamBuffer: 4, StreamPanelEvery: time.Hour}, time.Now, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx)
	}()
	cancel()
	<-done
	select {
	case <-c.gone:
	default:
		t.Error("a viewer connected when the hub stopped was not let go")
	}
	late, _ := h.subscribe()
	select {
	case <-late.gone:
	default:
		t.Error("a viewer that came after the hub stopped was kept")
	}
	if n := h.viewers(); n != 0 {
		t.Errorf("%d viewers left after the hub stopped", n)
	}
}

// TestStreamIngestBehind: while the ingest catches up, the tiles, trends
// and regions describe no later time than when it was last caught up, so
// the wall shows them as old as they are (and stale once past their
// limit) instead of a window ending now without its newest events; once
// it keeps up again they are as of the view.
func TestStreamIngestBehind(t *testing.T) {
	kpis := &countingKPIs{}
	now := time.Date(2026, 11, 22, 8, 30, 20, 0, time.UTC)
	h := newHub(kpis, &fakeAlerts{evaluated: now.Add(-2 * time.Second)}, Config{StreamBuffer: 8, StreamPanelEvery: time.Minute}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	var behind atomic.Int64
	h.ingestBehind = func(time.Time) time.Duration { return time.Duration(behind.Load()) }
	c, _ := h.subscribe()
	frame := func() map[string]any {
		t.Helper()
		f := string(<-c.ch)
		var m map[string]any
		if err := json.Unmarshal([]byte(f[strings.Index(f, "data: ")+len("data: "):]), &m); err != nil {
			t.Fatalf("frame: %v\n%s", err, f)
		}
		return m
	}
	asOf := func(m map[string]any) string {
		t.Helper()
		if m["ok"] != true {
			t.Errorf("a panel read while the ingest catches up is not ok: %v", m)
		}
		s, _ := m["as_of"].(string)
		return s
	}

	// As Run does each tick: note how far the events are stored, then
	// read.
	run := func(read func(context.Context)) {
		h.noteStored(now)
		read(context.Background())
	}

	behind.Store(int64(40 * time.Second))
	run(h.tick)
	tiles := frame()
	if got, want := asOf(tiles), "2026-11-22T08:29:40Z"; got != want {
		t.Errorf("tiles as of %s with the ingest caught up 40 s ago, want %s", got, want)
	}
	// The page says why its tiles are stale, and that they count part
	// of their window.
	if got := tiles["ingest_behind_seconds"]; got != 40.0 {
		t.Errorf("kpi frame ingest_behind_seconds = %v, want 40", got)
	}
	if tiles["partial"] != true {
		t.Errorf("a snapshot read with the ingest 40 s behind: partial = %v, want true", tiles["partial"])
	}
	run(h.panel)
	wall := frame()
	// The firing list too: the rules judged windows whose newest events
	// were not stored yet.
	for _, p := range []string{"trends", "regions", "firing"} {
		if got, want := asOf(wall[p].(map[string]any)), "2026-11-22T08:29:40Z"; got != want {
			t.Errorf("%s as of %s with the ingest caught up 40 s ago, want %s", p, got, want)
		}
	}

	// Caught up now, but the answers were read, and the rules evaluated,
	// while it was still 40 s behind (a live view refreshed in the last
	// seconds of a backfill): they hold no more than was stored then.
	behind.Store(int64(time.Second / 2))
	now = now.Add(10 * time.Second)
	read := now.Add(-5 * time.Second)
	kpis.asOf.Store(&read)
	run(h.tick)
	tiles = frame()
	if got, want := asOf(tiles), "2026-11-22T08:29:40Z"; got != want {
		t.Errorf("tiles read at 08:30:25 (ingest caught up at 08:29:40 by the last note before), as of %s, want %s", got, want)
	}
	// The ingest keeps up now, but this snapshot counts what was stored
	// then: still part of its window.
	if tiles["partial"] != true {
		t.Errorf("a snapshot refreshed while the ingest was 40 s behind, read once caught up: partial = %v, want true", tiles["partial"])
	}
	run(h.panel)
	wall = frame()
	for _, p := range []string{"trends", "regions", "firing"} {
		if got, want := asOf(wall[p].(map[string]any)), "2026-11-22T08:29:40Z"; got != want {
			t.Errorf("%s read or evaluated while the ingest was 40 s behind, as of %s, want %s", p, got, want)
		}
	}

	// Read after a note that the ingest kept up: as of what was stored
	// then, or of the read if earlier.
	now = now.Add(time.Second)
	read = now.Add(-500 * time.Millisecond)
	kpis.asOf.Store(&read)
	run(h.tick)
	tiles = frame()
	if got, want := asOf(tiles), "2026-11-22T08:30:29.5Z"; got != want {
		t.Errorf("tiles read at 08:30:30.5 with the ingest keeping up, as of %s, want %s", got, want)
	}
	if _, ok := tiles["partial"]; ok {
		t.Errorf("a snapshot read with the ingest keeping up: partial = %v, want none", tiles["partial"])
	}
	// An evaluation made while the ingest kept up: as of what was stored
	// when it was made.
	now = now.Add(time.Minute)
	h.noteStored(now.Add(-20 * time.Second))
	h.alerts = &fakeAlerts{evaluated: now.Add(-20 * time.Second)}
	run(h.panel)
	if got, want := asOf(frame()["firing"].(map[string]any)), "2026-11-22T08:31:10.5Z"; got != want {
		t.Errorf("firing evaluated at 08:31:11 with the ingest half a second behind then, as of %s, want %s", got, want)
	}
}

// TestStoredLog: the log answers, for a time, up to when the events were
// all stored by the last note at or before it, never later than that.
func TestStoredLog(t *testing.T) {
	var l storedLog
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	if got := l.upTo(t0); !got.Equal(t0) {
		t.Errorf("empty log: %s, want the time asked", got)
	}
	l.note(t0, t0.Add(-time.Minute))
	l.note(t0.Add(10*time.Second), t0.Add(9*time.Second))
	for _, c := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{-time.Second, -time.Minute}, // before the first note: what it said
		{0, -time.Minute},
		{5 * time.Second, -time.Minute},
		{10 * time.Second, 9 * time.Second},
		{time.Hour, 9 * time.Second},
	} {
		if got := l.upTo(t0.Add(c.at)); !got.Equal(t0.Add(c.want)) {
			t.Errorf("up to at t0%+v: %s, want t0%+v", c.at, got, c.want)
		}
	}
	// Notes older than storedHistory go.
	l.note(t0.Add(storedHistory+5*time.Second), t0.Add(storedHistory))
	if len(l.at) != 2 || !l.upTo(t0).Equal(t0.Add(9*time.Second)) {
		t.Errorf("after storedHistory: %d notes, up to at t0 %s", len(l.at), l.upTo(t0))
	}
}
