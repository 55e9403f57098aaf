package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// The stream's frames as a page reads them.
type streamState struct {
	OK           bool       `json:"ok"`
	AsOf         *time.Time `json:"as_of"`
	UnknownSince *time.Time `json:"unknown_since"`
	Error        string     `json:"error"`
	StaleAfter   int        `json:"stale_after_seconds"`
}

type kpiSeen struct {
	streamState
	ComputedAt time.Time  `json:"computed_at"`
	To         *time.Time `json:"to"`
	Complaints *uint64    `json:"complaints"`
}

type wallSeen struct {
	ComputedAt time.Time `json:"computed_at"`
	Trends     struct {
		streamState
		Series map[string][][2]any `json:"series"`
	} `json:"trends"`
	Regions struct {
		streamState
		Rows []regionCount `json:"rows"`
	} `json:"regions"`
	Firing *struct {
		streamState
		Alerts []alertJSON `json:"alerts"`
	} `json:"firing"`
}

// parseFrame splits one SSE frame into its event name and data.
func parseFrame(t *testing.T, frame string) (string, []byte) {
	t.Helper()
	var event, data string
	for _, line := range strings.Split(frame, "\n") {
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	if event == "" || data == "" {
		t.Fatalf("not an event frame: %q", frame)
	}
	return event, []byte(data)
}

// TestStreamStoreDown: with the store unreachable, every panel of the
// stream says it could not be read and since when, keeps its last good
// data with its time (or has none), and a viewer who connects during the
// outage starts in that state; the alert list API answers with an error,
// not an empty list; all recovers when the store is back.
func TestStreamStoreDown(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	t.Cleanup(func() { store.SetDown(false) }) // before the database is dropped
	fixture(t, conn)
	var clock atomic.Int64
	clock.Store(base.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	advance := func(d time.Duration) time.Time { return time.Unix(0, clock.Add(int64(d))).UTC() }
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	history := alerts.NewStore(conn)
	firing := alerts.Record{ID: "fp1-x", Fingerprint: "fp1", Rule: "complaint_spike", Severity: "critical", State: alerts.StateFiring,
		Labels: map[string]string{"region": "广州"}, ActiveAt: base.Add(-5 * time.Minute), StartedAt: base.Add(-4 * time.Minute), LastSeen: base}
	if err := history.SaveAlerts(context.Background(), []alerts.Record{firing}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Config: Config{StreamBuffer: 8}, Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		KPIs: kpis, AlertHistory: history, Now: now}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	h := s.hub
	viewer, _ := h.subscribe()
	ctx := context.Background()
	// compute runs one tick and one panel, and decodes what a viewer got.
	compute := func() (kpiSeen, wallSeen) {
		t.Helper()
		h.tick(ctx)
		h.panel(ctx)
		var k kpiSeen
		var w wallSeen
		for range 2 {
			var frame []byte
			select {
			case frame = <-viewer.ch:
			case <-time.After(10 * time.Second):
				t.Fatal("a computation sent no frame")
			}
			event, data := parseFrame(t, string(frame))
			var err error
			switch event {
			case "kpi":
				err = json.Unmarshal(data, &k)
			case "wall":
				err = json.Unmarshal(data, &w)
			}
			if err != nil {
				t.Fatalf("%s frame %s: %v", event, data, err)
			}
		}
		return k, w
	}
	same := func(what string, got *time.Time, want time.Time) {
		t.Helper()
		if got == nil || !got.Equal(want) {
			t.Errorf("%s = %v, want %s", what, got, want)
		}
	}
	type panel struct {
		name string
		st   streamState
	}
	panels := func(k kpiSeen, w wallSeen) []panel {
		t.Helper()
		if w.Firing == nil {
			t.Fatal("the wall frame has no firing panel")
		}
		return []panel{{"tiles", k.streamState}, {"trends", w.Trends.streamState}, {"regions", w.Regions.streamState}, {"firing", w.Firing.streamState}}
	}

	// Down before anything was read: every panel is unknown since the
	// first failure and carries no data at all, not an empty one.
	store.SetDown(true)
	t0 := now()
	k, w := compute()
	for _, p := range panels(k, w) {
		if p.st.OK || p.st.AsOf != nil || p.st.Error != "unavailable" {
			t.Errorf("%s before any read, store down: %+v", p.name, p.st)
		}
		same(p.name+" unknown since", p.st.UnknownSince, t0)
	}
	if k.To != nil || k.Complaints != nil || w.Trends.Series != nil || w.Regions.Rows != nil || w.Firing.Alerts != nil {
		t.Errorf("data without a read: kpi %+v, wall %+v", k, w)
	}

	// The store is back, but no rule evaluation was ever recorded: the
	// firing list was read, yet what fires now is not known.
	store.SetDown(false)
	t1 := advance(15 * time.Second)
	_, w = compute()
	if st := w.Firing.streamState; st.OK || st.Error != "not_evaluated" || st.UnknownSince == nil || !st.UnknownSince.Equal(t0) {
		t.Errorf("firing panel before any rule evaluation: %+v", st)
	}

	// Evaluated now: every panel is read, as of now.
	if err := history.RecordEvaluation(ctx, alerts.Term{Term: 1, Member: "m"}, t1); err != nil {
		t.Fatal(err)
	}
	k, w = compute()
	for _, p := range panels(k, w) {
		if !p.st.OK || p.st.UnknownSince != nil || p.st.Error != "" || p.st.StaleAfter <= 0 {
			t.Errorf("%s with the store up: %+v", p.name, p.st)
		}
		same(p.name+" as of", p.st.AsOf, t1)
	}
	same("kpi to", k.To, t1)
	if k.Complaints == nil || *k.Complaints != 1 || len(w.Regions.Rows) != 1 || w.Regions.Rows[0] != (regionCount{"广州", 1}) ||
		len(w.Trends.Series) != len(WallTrends) || len(w.Firing.Alerts) != 1 || w.Firing.Alerts[0].ID != firing.ID {
		t.Fatalf("with the store up: kpi %+v, wall %+v", k, w)
	}

	// Down again: each panel says so, and keeps its last good data as of
	// t1; the state is unknown since then.
	store.SetDown(true)
	t2 := advance(20 * time.Second)
	k, w = compute()
	for _, p := range panels(k, w) {
		if p.st.OK || p.st.Error != "unavailable" {
			t.Errorf("%s with the store down: %+v", p.name, p.st)
		}
		same(p.name+" as of", p.st.AsOf, t1)
		same(p.name+" unknown since", p.st.UnknownSince, t1)
	}
	if !k.ComputedAt.Equal(t2) || !w.ComputedAt.Equal(t2) {
		t.Errorf("computed at %s and %s, want %s", k.ComputedAt, w.ComputedAt, t2)
	}
	same("kpi to (the last good snapshot)", k.To, t1)
	if k.Complaints == nil || *k.Complaints != 1 || len(w.Regions.Rows) != 1 || len(w.Firing.Alerts) != 1 {
		t.Errorf("the last good data is gone: kpi %+v, wall %+v", k, w)
	}

	// The alert list and the KPIs answer with an error, never with an
	// empty list that reads as "nothing firing".
	for _, path := range []string{"/api/v1/alerts?state=firing", "/api/v1/kpis"} {
		code, body := get(t, ts.URL+path)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"unavailable"`) || strings.Contains(body, `"alerts"`) {
			t.Errorf("%s with the store down = %d %s", path, code, body)
		}
	}

	// A viewer who connects now starts in the failed state.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, ts.URL+"/api/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var first kpiSeen
	var firstWall wallSeen
	for got := 0; got < 2 && sc.Scan(); {
		if e, ok := strings.CutPrefix(sc.Text(), "event: "); ok && sc.Scan() {
			data := strings.TrimPrefix(sc.Text(), "data: ")
			switch e {
			case "kpi":
				err = json.Unmarshal([]byte(data), &first)
			case "wall":
				err = json.Unmarshal([]byte(data), &firstWall)
			}
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
	if firstWall.Firing == nil {
		t.Fatal("a new viewer got no firing panel")
	}
	for _, p := range panels(first, firstWall) {
		if p.st.OK {
			t.Errorf("a viewer connecting during the outage sees %s as read: %+v", p.name, p.st)
		}
		same(p.name+" unknown since, for a new viewer", p.st.UnknownSince, t1)
	}
	cancel()

	// Back: everything is read again, as of now.
	store.SetDown(false)
	t3 := advance(20 * time.Second)
	if err := history.RecordEvaluation(ctx, alerts.Term{Term: 1, Member: "m"}, t3); err != nil {
		t.Fatal(err)
	}
	k, w = compute()
	for _, p := range panels(k, w) {
		if !p.st.OK || p.st.UnknownSince != nil {
			t.Errorf("%s after the store came back: %+v", p.name, p.st)
		}
		same(p.name+" as of, after the outage", p.st.AsOf, t3)
	}
	if len(w.Firing.Alerts) != 1 {
		t.Errorf("firing after the outage: %+v", w.Firing.Alerts)
	}

	// The rules stop being evaluated (ticks abandoned under load, no
	// leader) while the store answers: the list is read, but the panel
	// is as of the last evaluation and grows stale, as the charts do not.
	t4 := advance(2 * time.Minute)
	k, w = compute()
	same("firing as of, no evaluation since t3", w.Firing.AsOf, t3)
	same("regions as of, no evaluation since t3", w.Regions.AsOf, t4)
	if st := w.Firing.streamState; !st.OK || t4.Sub(t3) <= time.Duration(st.StaleAfter)*time.Second {
		t.Errorf("firing panel two minutes after the last evaluation: %+v, not stale", st)
	}
}

// TestStreamAlertStamps: an `alert` event says when it was sent and the
// time of the evaluation it came from.
func TestStreamAlertStamps(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 30, 20, 0, time.UTC)
	h := newHub(nil, nil, Config{StreamBuffer: 4}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	c, _ := h.subscribe()
	seen := now.Add(-3 * time.Second)
	resolved := now.Add(-time.Second)
	for _, tc := range []struct {
		ch   alerts.Change
		asOf time.Time
	}{
		{alerts.Change{From: alerts.StatePending, To: alerts.StateFiring,
			Alert: alerts.Record{ID: "a", ActiveAt: seen.Add(-time.Minute), StartedAt: seen, LastSeen: seen}}, seen},
		{alerts.Change{From: alerts.StateFiring, To: alerts.StateResolved,
			Alert: alerts.Record{ID: "a", ActiveAt: seen.Add(-time.Minute), StartedAt: seen, LastSeen: seen, ResolvedAt: resolved}}, resolved},
	} {
		h.PublishAlerts([]alerts.Change{tc.ch})
		event, data := parseFrame(t, string(<-c.ch))
		var got struct {
			ComputedAt time.Time    `json:"computed_at"`
			AsOf       time.Time    `json:"as_of"`
			To         alerts.State `json:"to"`
		}
		if err := json.Unmarshal(data, &got); err != nil || event != "alert" {
			t.Fatalf("%s %s: %v", event, data, err)
		}
		if !got.ComputedAt.Equal(now) || !got.AsOf.Equal(tc.asOf) || got.To != tc.ch.To {
			t.Errorf("alert %s: computed at %s as of %s, want %s and %s", got.To, got.ComputedAt, got.AsOf, now, tc.asOf)
		}
	}
}

// TestReadState: a panel is unknown from its last good data (or its first
// failed read when there was none) until a read works again, and says
// whether the read timed out or the store was unavailable.
func TestReadState(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	var r readState
	r.failed(t0, context.DeadlineExceeded)
	r.failed(t0.Add(time.Second), errors.New("connection reset"))
	s := r.state(40 * time.Second)
	if s.OK || s.AsOf != nil || s.UnknownSince == nil || !s.UnknownSince.Equal(t0) || s.Error != "unavailable" || s.StaleAfterSeconds != 40 {
		t.Errorf("never read: %+v", s)
	}
	r.succeeded(t0.Add(2 * time.Second))
	if s := r.state(time.Minute); !s.OK || s.UnknownSince != nil || s.Error != "" || !s.AsOf.Equal(t0.Add(2*time.Second)) {
		t.Errorf("read: %+v", s)
	}
	r.failed(t0.Add(5*time.Second), fmt.Errorf("query: %w", context.DeadlineExceeded))
	if s := r.state(time.Minute); s.OK || s.Error != "timeout" || !s.UnknownSince.Equal(t0.Add(2*time.Second)) || !s.AsOf.Equal(t0.Add(2*time.Second)) {
		t.Errorf("timed out after a good read: %+v", s)
	}
}
