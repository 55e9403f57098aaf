package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestKPIsDefaultWindowLive: /api/v1/kpis and /kpis/by/region with
// neither from nor to are answered from the live view (a window of whole
// buckets that the answer names), and agree with the store asked for the
// window they name; an explicit window is answered as asked.
func TestKPIsDefaultWindowLive(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT now64(3)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	now = now.UTC()
	start := func(id, region string, ago time.Duration) schemas.Event {
		return schemas.Event{EventID: "s" + id, SchemaVersion: 1, Type: schemas.ConversationStarted, ConversationID: id,
			OccurredAt: now.Add(-ago), Channel: "chat", Region: region, Queue: "q1", Entry: "bot"}
	}
	store(t, conn, []schemas.Event{
		start("c1", "广州", 3*time.Minute), start("c2", "北京", 9*time.Minute), start("c0", "广州", 20*time.Minute),
	})
	st, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		KPIs: st, LiveKPIs: st.Live()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	type answer struct {
		From    time.Time `json:"from"`
		To      time.Time `json:"to"`
		Started uint64    `json:"conversations_started"`
		Rows    []struct {
			Key     string    `json:"key"`
			From    time.Time `json:"from"`
			Started uint64    `json:"conversations_started"`
		} `json:"rows"`
	}
	getJSON := func(path string) (answer, string) {
		t.Helper()
		code, body := get(t, ts.URL+path)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		var a answer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("%s: %v in %s", path, err, body)
		}
		return a, body
	}
	window := func(from, to time.Time) string {
		return "from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339Nano))
	}

	// The view answers only while its data is at most 3 s old, else the
	// store does (exactly, for the last 15 minutes to the millisecond). On
	// a machine busy with other tests its first load, or a refresh, can
	// take longer than that: ask until the view keeps up, for a while.
	liveGet := func(path string) (answer, string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			a, body := getJSON(path)
			if a.From.UnixMilli()%10_000 == 0 && a.To.UnixMilli()%10_000 == 0 {
				return a, body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: window %s–%s is not whole 10-s buckets: never answered by the live view in 30 s", path, a.From, a.To)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	live, liveBody := liveGet("/api/v1/kpis")
	// The window covers the last 15 minutes as of the answer, which on a
	// busy machine comes seconds after the events were stored: it ends no
	// sooner than they were, and starts no later than 15 minutes before
	// the clock read after the answer.
	var answered time.Time
	if err := conn.QueryRow(ctx, "SELECT now64(3)").Scan(&answered); err != nil {
		t.Fatal(err)
	}
	if d := live.To.Sub(live.From); d < 15*time.Minute || d > 15*time.Minute+20*time.Second ||
		live.To.Before(now) || live.From.After(answered.Add(-15*time.Minute)) {
		t.Fatalf("default window %s–%s, the events stored at %s, answered by %s", live.From, live.To, now, answered.UTC())
	}
	if live.Started != 2 {
		t.Fatalf("conversations_started %d in the last 15 minutes, want 2: %s", live.Started, liveBody)
	}
	_, exactBody := getJSON("/api/v1/kpis?" + window(live.From, live.To))
	if exactBody != liveBody {
		t.Fatalf("the live answer and the store's for the window it names differ:\nlive  %s\nstore %s", liveBody, exactBody)
	}

	by, _ := liveGet("/api/v1/kpis/by/region")
	if len(by.Rows) != 2 || !by.From.Equal(by.Rows[0].From) {
		t.Fatalf("by region: window %s, rows %+v", by.From, by.Rows)
	}

	asked := now.Add(-15*time.Minute - 1234*time.Millisecond)
	exact, _ := getJSON("/api/v1/kpis?" + window(asked, now))
	if !exact.From.Equal(asked) || !exact.To.Equal(now) {
		t.Fatalf("asked %s–%s, answered %s–%s", asked, now, exact.From, exact.To)
	}
	from, _ := getJSON("/api/v1/kpis/by/region?from=" + url.QueryEscape(asked.Format(time.RFC3339Nano)))
	if !from.From.Equal(asked) {
		t.Fatalf("by region from %s: answered from %s", asked, from.From)
	}
}
