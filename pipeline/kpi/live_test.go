package kpi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// liveTraffic is generated traffic whose conversations run through the
// last two hours (none after cut), with ids prefixed so that two
// generations do not collide.
func liveTraffic(seed uint64, base, cut time.Time, prefix string, convs int) rollupTraffic {
	tr := genRollupTraffic(seed, base, 3, convs)
	keep := func(evs []schemas.Event) []schemas.Event {
		out := evs[:0]
		for _, e := range evs {
			if e.OccurredAt.Before(cut) {
				e.ConversationID = prefix + e.ConversationID
				e.EventID = prefix + e.EventID
				out = append(out, e)
			}
		}
		return out
	}
	return rollupTraffic{early: keep(tr.early), late: keep(tr.late)}
}

// TestLiveAgreesWithStore fills the last two hours with traffic
// (duplicates, out-of-order deliveries), and requires the live view to
// answer the windows that end now exactly as the store answers the same
// windows: every metric, every filter and breakdown, the wall's minute
// trends and the gauges. Then late events arrive (starts after their
// messages, replies and assignments minutes late, csat and complaints for
// conversations long over, a batch delivered twice): a refresh must find
// what they changed, and only that, and agree again.
func TestLiveAgreesWithStore(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	cut := now.Add(-2 * time.Second)
	a := liveTraffic(11, now.Add(-62*time.Minute), cut, "a", 500)
	b := liveTraffic(12, now.Add(-2*time.Hour), cut, "b", 300)
	early := append(a.early, b.early...)
	late := append(a.late, b.late...)
	insertChunks(t, conn, early, 1500)
	insertChunks(t, conn, early[:200], 200) // delivered again
	t.Logf("%d events, %d held back as late", len(early), len(late))

	st, raw := liveAndRaw(t, conn)
	live := st.Live()
	reg := prometheus.NewRegistry()
	if err := st.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}

	filters := []Filters{{}, {Region: "广州"}, {Queue: "q2"}, {Channel: "voice", BusinessLine: "billing"}}
	dims := []Dimension{DimRegion, DimQueue, DimChannel, DimBusinessLine}
	compare := func(stage string) {
		t.Helper()
		to := time.Now()
		for i, d := range []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour} {
			w := Window{From: to.Add(-d).Truncate(time.Millisecond), To: to.Truncate(time.Millisecond)}
			f, dim := filters[i%len(filters)], dims[i%len(dims)]
			for _, f := range []Filters{{}, f} {
				got, err := live.KPIs(ctx, w, f)
				if err != nil {
					t.Fatal(err)
				}
				if got.From.After(w.From) || got.From.Before(w.From.Add(-10*time.Second)) || got.To.Before(w.To.Add(-10*time.Second)) {
					t.Fatalf("%s: asked %s–%s, answered %s–%s", stage, w.From, w.To, got.From, got.To)
				}
				answered := Window{From: got.From, To: got.To}
				want, err := raw.KPIs(ctx, answered, f)
				if err != nil {
					t.Fatal(err)
				}
				if got.ConversationsStarted+got.ConversationsClosed == 0 && d >= 15*time.Minute && f == (Filters{}) {
					t.Fatalf("%s: no conversations in the last %s: the traffic is too thin to test", stage, d)
				}
				if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
					t.Errorf("%s: last %s %+v:\nlive  %s\nstore %s", stage, d, f, gj, wj)
				}
			}
			got, err := live.KPIsBy(ctx, w, f, dim)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatalf("%s: no rows by %s", stage, dim)
			}
			want, err := raw.KPIsBy(ctx, Window{From: got[0].From, To: got[0].To}, f, dim)
			if err != nil {
				t.Fatal(err)
			}
			if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
				t.Errorf("%s: last %s %+v by %s:\nlive  %s\nstore %s", stage, d, f, dim, gj, wj)
			}
			// Asked again from the same refresh (a view as old as this is
			// recent enough), the kept answer (its snapshots computed once,
			// the gauges counted anew) is the same.
			again, err := live.KPIsBy(WithStaleness(ctx, time.Minute), w, f, dim)
			if err != nil {
				t.Fatal(err)
			}
			if gj, aj := jsonOf(got), jsonOf(again); gj != aj {
				t.Errorf("%s: last %s %+v by %s asked again:\nfirst %s\nagain %s", stage, d, f, dim, gj, aj)
			}
		}
		// Every breakdown the view keeps added up (rolled), unfiltered.
		for _, dim := range dims {
			w := Window{From: to.Add(-20 * time.Minute).Truncate(time.Millisecond), To: to.Truncate(time.Millisecond)}
			got, err := live.KPIsBy(ctx, w, Filters{}, dim)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < 2 {
				t.Fatalf("%s: %d rows by %s", stage, len(got), dim)
			}
			want, err := raw.KPIsBy(ctx, Window{From: got[0].From, To: got[0].To}, Filters{}, dim)
			if err != nil {
				t.Fatal(err)
			}
			if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
				t.Errorf("%s: last 20m by %s:\nlive  %s\nstore %s", stage, dim, gj, wj)
			}
		}
		// The trend rule's consecutive windows, the older ones not reaching
		// the present: still whole buckets, and they still partition time.
		var prevTo time.Time
		for k := 3; k >= 1; k-- {
			w := Window{From: to.Add(-time.Duration(k) * 10 * time.Minute), To: to.Add(-time.Duration(k-1) * 10 * time.Minute)}
			got, err := live.KPIsBy(ctx, w, Filters{}, DimBusinessLine)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatalf("%s: no rows by business line", stage)
			}
			if !prevTo.IsZero() && !got[0].From.Equal(prevTo) {
				t.Errorf("%s: consecutive windows %s and %s–%s", stage, prevTo, got[0].From, got[0].To)
			}
			prevTo = got[0].To
			want, err := raw.KPIsBy(ctx, Window{From: got[0].From, To: got[0].To}, Filters{}, DimBusinessLine)
			if err != nil {
				t.Fatal(err)
			}
			if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
				t.Errorf("%s: window %d by business line:\nlive  %s\nstore %s", stage, k, gj, wj)
			}
		}
		// The wall's trends: an hour of minutes ending after now.
		end := to.Truncate(time.Minute).Add(time.Minute)
		tw := Window{From: end.Add(-time.Hour), To: end}
		metrics := []string{"first_response_seconds.p90", "human_wait_seconds.p90", "service_level", "resolution_rate", "transfer_rate", "abandon_rate", "complaints", "response_seconds.avg"}
		gt, _, err := live.Trends(ctx, metrics, time.Minute, tw, Filters{})
		if err != nil {
			t.Fatal(err)
		}
		wt, _, err := raw.Trends(ctx, metrics, time.Minute, tw, Filters{})
		if err != nil {
			t.Fatal(err)
		}
		if gj, wj := jsonOf(gt), jsonOf(wt); gj != wj {
			t.Errorf("%s: trends:\nlive  %s\nstore %s", stage, gj, wj)
		}
	}
	// The first answer loads the newest liveFirst of the horizon; the view
	// answers the windows within it, the store those before, until the
	// refreshes after it have read the rest. Late events that arrive
	// meanwhile, in both parts, come out right.
	if _, err := live.KPIs(ctx, Window{From: now.Add(-15 * time.Minute), To: now}, Filters{}); err != nil {
		t.Fatal(err)
	}
	// The last 15 minutes as of the load: a caller's are no older.
	st.live.mu.RLock()
	loadedAt := st.live.asOf
	st.live.mu.RUnlock()
	w15 := Window{From: loadedAt.Add(-15 * time.Minute), To: loadedAt}
	hour := Window{From: time.Now().Add(-time.Hour), To: time.Now()}
	if _, _, ok := st.live.compute(hour, Filters{}, DimNone, 0, false); ok || st.live.partialFrom == 0 {
		t.Fatalf("a load answers the last hour at once (partialFrom %d): want only its newest %s", st.live.partialFrom, liveFirst)
	}
	if _, _, ok := st.live.compute(w15, Filters{}, DimNone, 0, false); !ok {
		t.Fatal("a loading view does not answer the last 15 minutes")
	}
	// The wall is told to wait, the others are answered by the store.
	if _, err := live.KPIs(AsItIs(ctx, 0), hour, Filters{}); !errors.Is(err, ErrLoading) {
		t.Errorf("a loading view, as it is, the last hour: err = %v, want ErrLoading", err)
	}
	if got, err := live.KPIs(ctx, hour, Filters{}); err != nil {
		t.Fatal(err)
	} else if want, err := raw.KPIs(ctx, hour, Filters{}); err != nil || jsonOf(got) != jsonOf(want) {
		t.Errorf("a loading view, the last hour:\ngot   %s\nstore %s (%v)", jsonOf(got), jsonOf(want), err)
	}
	half := len(late) / 2
	insertChunks(t, conn, late[:half], 400)
	insertChunks(t, conn, late[:25], 25)
	liveLoaded(t, st)
	compare("loaded while late events arrived")

	before := st.live.recomputed.Load()
	insertChunks(t, conn, late[half:], 400)
	insertChunks(t, conn, late[half:half+25], 25)
	compare("late")
	if st.live.recomputed.Load() == before {
		t.Fatal("late events recomputed no conversation")
	}
	// The operator sees the same: one load, refreshes after it, each
	// timed, the conversations they computed, data seconds old.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		m := f.GetMetric()[0]
		switch {
		case m.Counter != nil:
			got[f.GetName()] = m.Counter.GetValue()
		case m.Gauge != nil:
			got[f.GetName()] = m.Gauge.GetValue()
		case m.Histogram != nil:
			got[f.GetName()] = float64(m.Histogram.GetSampleCount())
		}
	}
	refreshes := got["cockpit_kpi_live_refreshes_total"]
	if got["cockpit_kpi_live_loads_total"] != 1 || refreshes < 2 || got["cockpit_kpi_live_refresh_failures_total"] != 0 ||
		got["cockpit_kpi_live_refresh_seconds"] != refreshes ||
		got["cockpit_kpi_live_recomputed_conversations_total"] != float64(st.live.recomputed.Load()) ||
		got["cockpit_kpi_live_data_age_seconds"] <= 0 || got["cockpit_kpi_live_data_age_seconds"] > 60 {
		t.Errorf("live view metrics %v (recomputed %d)", got, st.live.recomputed.Load())
	}

	// One new reply to a message of a minute ago recomputes its own
	// conversation, no other.
	var conv string
	for _, e := range early {
		if e.Type == schemas.ConversationStarted && e.OccurredAt.After(now.Add(-20*time.Minute)) {
			conv = e.ConversationID
			break
		}
	}
	if conv == "" {
		t.Fatal("no conversation started in the last 20 minutes")
	}
	msg := schemas.Event{EventID: "new-m", SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: conv,
		OccurredAt: time.Now().Add(-time.Minute), Actor: &schemas.Actor{Role: "customer", ID: "cu"}}
	reply := schemas.Event{EventID: "new-r", SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: conv,
		OccurredAt: time.Now().Add(-time.Second), Actor: &schemas.Actor{Role: "agent", ID: "a1"}}
	// Past the overlap, the refreshes see only what follows.
	time.Sleep(st.cfg.Live.Overlap + time.Second)
	compare("settled")
	insertChunks(t, conn, []schemas.Event{msg}, 1)
	compare("one message")
	insertChunks(t, conn, []schemas.Event{reply}, 1)
	if _, err := live.KPIs(ctx, Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()}, Filters{}); err != nil {
		t.Fatal(err)
	}
	if n := st.live.lastRecomputed; n != 1 {
		t.Errorf("a reply recomputed %d conversations, want its own", n)
	}
	compare("its reply")

	// Nothing new: the view answers without rebuilding anything, also
	// while the overlap still finds a row among those stored since a
	// refresh began (a row taken in once is not new again).
	another := schemas.Event{EventID: "new-m2", SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: conv,
		OccurredAt: time.Now(), Actor: &schemas.Actor{Role: "customer", ID: "cu"}}
	insertChunks(t, conn, []schemas.Event{another}, 1)
	if _, err := live.KPIs(ctx, Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()}, Filters{}); err != nil {
		t.Fatal(err)
	}
	if st.live.lastRecomputed == 0 {
		t.Fatal("a new customer message recomputed no conversation")
	}
	before = st.live.recomputed.Load()
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		if _, err := live.KPIs(ctx, Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()}, Filters{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.live.recomputed.Load() - before; n != 0 {
		t.Errorf("with nothing new, refreshes recomputed %d conversations", n)
	}

	// Idle past the overlap, a refresh only counts what was stored since;
	// the next event is still taken in, and the view agrees again.
	time.Sleep(st.cfg.Live.Overlap + time.Second)
	for range 2 {
		time.Sleep(2 * time.Millisecond)
		if _, err := live.KPIs(ctx, Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()}, Filters{}); err != nil {
			t.Fatal(err)
		}
	}
	if !st.live.idle || st.live.seen.len() != 0 {
		t.Errorf("past the overlap with nothing stored: idle %v, %d rows still held as seen", st.live.idle, st.live.seen.len())
	}
	after := schemas.Event{EventID: "new-r2", SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: conv,
		OccurredAt: time.Now(), Actor: &schemas.Actor{Role: "bot", ID: "b1"}}
	insertChunks(t, conn, []schemas.Event{after}, 1)
	if _, err := live.KPIs(ctx, Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()}, Filters{}); err != nil {
		t.Fatal(err)
	}
	if st.live.lastRecomputed == 0 {
		t.Error("a reply stored after an idle spell recomputed no conversation")
	}
	compare("after an idle spell")
}

// liveLoaded refreshes st's view until it holds its whole horizon (a
// load reads the newest liveFirst, the refreshes after it the rest).
func liveLoaded(t testing.TB, st *KPIStore) {
	t.Helper()
	for range 100 {
		if err := st.live.ensure(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		refreshEnded(st.live)
		st.live.mu.RLock()
		done := st.live.loaded && st.live.partialFrom == 0
		st.live.mu.RUnlock()
		if done {
			return
		}
	}
	t.Fatal("the live view did not read its whole horizon in 100 refreshes")
}

// refreshEnded waits until no refresh of l runs, the piece of the horizon
// a loading one reads after its callers are answered included.
func refreshEnded(l *liveView) {
	for {
		l.mu.RLock()
		running := l.running != nil
		l.mu.RUnlock()
		if !running {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLiveLoadingHoldsNoCaller: while the view reads the older part of its
// horizon after a load, a caller of a window it already holds gets the
// refresh's news without waiting for that read; a caller of a window it
// does not hold yet waits for the read, then gets the store's answer.
// Callers here wait for a refresh as long as it takes (liveAndRaw), so one
// held by the read would not come back while the read is held.
func TestLiveLoadingHoldsNoCaller(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	tr := liveTraffic(13, now.Add(-62*time.Minute), now.Add(-2*time.Second), "h", 200)
	insertChunks(t, conn, tr.early, 1000)
	st, raw := liveAndRaw(t, conn)
	live := st.Live()
	w15 := func() Window { return Window{From: time.Now().Add(-15 * time.Minute), To: time.Now()} }
	if _, err := live.KPIs(ctx, w15(), Filters{}); err != nil {
		t.Fatal(err)
	}
	st.live.mu.RLock()
	loading := st.live.loaded && st.live.partialFrom != 0
	st.live.mu.RUnlock()
	if !loading {
		t.Fatal("the first answer loaded the whole horizon: nothing left to read after it")
	}
	entered, gate := make(chan struct{}), make(chan struct{})
	st.live.beforeLoadMore = func() {
		close(entered)
		<-gate
	}
	open := sync.OnceFunc(func() { close(gate) })
	defer func() {
		open()
		refreshEnded(st.live)
	}()
	// A conversation started now: the caller's refresh finds it.
	started := schemas.Event{EventID: "hold-s1", SchemaVersion: 1, Type: schemas.ConversationStarted,
		ConversationID: "hold-c1", OccurredAt: time.Now(), Channel: "chat", Region: "广州", Entry: "bot"}
	insertChunks(t, conn, []schemas.Event{started}, 1)
	type answer struct {
		snap Snapshot
		err  error
	}
	got := make(chan answer, 1)
	w := w15()
	go func() {
		snap, err := live.KPIs(ctx, w, Filters{})
		got <- answer{snap, err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(time.Minute):
		t.Fatal("a caller of the last 15 minutes waited for the older part of the horizon to be read")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	<-entered // the read did begin after the refresh
	want, err := raw.KPIs(ctx, Window{From: a.snap.From, To: a.snap.To}, Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(a.snap) != jsonOf(want) {
		t.Errorf("answered while the older part is read:\nlive  %s\nstore %s", jsonOf(a.snap), jsonOf(want))
	}

	// The last 55 minutes start before what the view holds: the store
	// answers them, after the view's read.
	old := Window{From: time.Now().Add(-55 * time.Minute), To: time.Now()}
	if st.live.holds(st.live.floor(old.From.UnixMilli())) {
		t.Fatal("the view holds 55 minutes while it reads the older part: nothing to wait for")
	}
	go func() {
		snap, err := live.KPIs(ctx, old, Filters{})
		got <- answer{snap, err}
	}()
	select {
	case a = <-got:
		t.Fatalf("a caller of a window the view does not hold came back during the view's read (%v)", a.err)
	case <-time.After(300 * time.Millisecond):
	}
	open()
	a = <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	if want, err = raw.KPIs(ctx, old, Filters{}); err != nil {
		t.Fatal(err)
	}
	if jsonOf(a.snap) != jsonOf(want) {
		t.Errorf("55 minutes after the older part was read:\nlive  %s\nstore %s", jsonOf(a.snap), jsonOf(want))
	}
}

// liveAndRaw returns a store whose live view refreshes whenever asked
// (every answer comes from a refresh that saw what was stored before it
// was asked for) and one that answers from the events alone.
func liveAndRaw(t *testing.T, conn driver.Conn) (st, raw *KPIStore) {
	t.Helper()
	cfg := KPIConfig{Live: LiveConfig{Every: time.Millisecond, IdleProbe: time.Millisecond}}
	st, err := NewKPIStore(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.live.wait = time.Hour
	rawCfg := cfg
	rawCfg.Rollup.Disabled, rawCfg.Live.Disabled = true, true
	if raw, err = NewKPIStore(conn, rawCfg); err != nil {
		t.Fatal(err)
	}
	return st, raw
}

func jsonOf(v any) string {
	j, _ := json.Marshal(v)
	return string(j)
}

// TestLiveStaleness: a view is refreshed Every after the last refresh
// when this process stored events since, else a second after a refresh
// that found changes, unless this process is ingesting (its next flush
// brings a refresh); a caller that tolerates an older view (the rules,
// once a tick) does not start a refresh the last one covers.
func TestLiveStaleness(t *testing.T) {
	l := newLiveView(nil, DefaultLiveConfig())
	l.loaded, l.refreshed = true, time.Now().Add(-600*time.Millisecond)
	if l.due(0) {
		t.Error("a view 600 ms old is due though this process stored nothing since")
	}
	l.refreshed = time.Now().Add(-1100 * time.Millisecond)
	if !l.due(0) || !l.due(time.Second) {
		t.Error("a view 1.1 s old whose last refresh found changes is not due (another instance stores them)")
	}
	l.idle = true
	if l.due(0) {
		t.Error("an idle view 1.1 s old is due though this process stored nothing since (idle probe 2 s)")
	}
	l.idle, l.refreshed = false, time.Now().Add(-600*time.Millisecond)
	l.fresh()
	if l.due(time.Second) {
		t.Error("a view 600 ms old is due for a caller that tolerates a second")
	}
	if !l.due(0) {
		t.Error("a view 600 ms old is not due after this process stored events (every 500 ms)")
	}
	l.taken = l.localAt.Load() // the refresh that began took them in
	l.refreshed = time.Now().Add(-1100 * time.Millisecond)
	if l.due(0) {
		t.Error("a view 1.1 s old is due while this process ingests and stored nothing since the refresh")
	}
	l.refreshed = time.Now().Add(-2100 * time.Millisecond)
	if !l.due(0) {
		t.Error("a view 2.1 s old is not due (idle probe 2 s)")
	}
	ctx := WithStaleness(context.Background(), time.Second)
	if got, _ := ctx.Value(stalenessKey{}).(time.Duration); got != time.Second {
		t.Errorf("the context carries %v", got)
	}
}

// TestLiveOldRows: rows stored now whose events precede the live view's
// horizon recompute no conversation that has no pieces in it (a backfill
// stores hours of them first), yet still change the "now" gauges; one
// that has pieces is recomputed, and the view agrees with the store.
func TestLiveOldRows(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := time.Now().UTC()
	start := func(id, region string, at time.Time) schemas.Event {
		return schemas.Event{EventID: id + "-s-" + at.Format("150405"), SchemaVersion: 1, Type: schemas.ConversationStarted,
			ConversationID: id, OccurredAt: at, Channel: "chat", Region: region, Queue: "q1", BusinessLine: "billing", Entry: "bot"}
	}
	msg := func(id, role string, at time.Time) schemas.Event {
		return schemas.Event{EventID: id + "-m-" + role + at.Format("150405"), SchemaVersion: 1, Type: schemas.MessageSent,
			ConversationID: id, OccurredAt: at, Actor: &schemas.Actor{Role: role, ID: role + "1"}}
	}
	insertChunks(t, conn, []schemas.Event{
		start("old", "北京", now.Add(-3*time.Hour)), // open, long before the horizon
		start("new", "上海", now.Add(-20*time.Minute)),
		msg("new", "customer", now.Add(-19*time.Minute)), msg("new", "bot", now.Add(-18*time.Minute)),
	}, 10)

	st, raw := liveAndRaw(t, conn)
	check := func(stage string) Snapshot {
		t.Helper()
		got, err := st.Live().KPIs(ctx, lastHalfHour(), Filters{})
		if err != nil {
			t.Fatal(err)
		}
		agreesWithStore(t, raw, stage, got)
		return got
	}
	if got := check("loaded"); got.ActiveConversations != 2 {
		t.Fatalf("loaded: %d active conversations, want 2", got.ActiveConversations)
	}
	liveLoaded(t, st) // the reads of the rest of the horizon count too
	before := st.live.recomputed.Load()

	// The old conversation was closed two hours ago: no piece to redo,
	// one conversation fewer open.
	closed := schemas.Event{EventID: "old-c", SchemaVersion: 1, Type: schemas.ConversationClosed, ConversationID: "old",
		OccurredAt: now.Add(-2 * time.Hour), Resolution: "resolved"}
	insertChunks(t, conn, []schemas.Event{closed}, 1)
	if got := check("old conversation closed long ago"); got.ActiveConversations != 1 {
		t.Errorf("after the old close: %d active conversations, want 1", got.ActiveConversations)
	}
	if n := st.live.recomputed.Load() - before; n != 0 {
		t.Errorf("a row before the horizon of a conversation without pieces recomputed %d conversations", n)
	}

	// An earlier start of the new conversation, before the horizon: its
	// pieces (first response, region) change, so it is recomputed.
	insertChunks(t, conn, []schemas.Event{start("new", "广州", now.Add(-90*time.Minute))}, 1)
	check("new conversation started earlier")
	if n := st.live.recomputed.Load() - before; n != 1 {
		t.Errorf("an earlier start of a conversation with pieces recomputed %d conversations, want 1", n)
	}
}

// TestLiveFreshnessBound: a caller that bounds the age of live data
// (WithFreshness, the API's default window) is answered from the view
// while it is recent, and from the store, exactly as asked, once the view
// has fallen behind with a refresh still under way; an unbounded caller
// (the stream, the rules) still takes the view as it is.
func TestLiveFreshnessBound(t *testing.T) {
	ctx := context.Background()
	st, now := liveHalfHour(t, 21)
	st.live.wait = 50 * time.Millisecond
	live := st.Live()
	w := Window{From: now.Add(-15*time.Minute - 1234*time.Millisecond), To: now}
	// A bound far above what a load takes on a busy machine: the view is
	// recent for it until the test makes it old.
	bounded := WithFreshness(ctx, 30*time.Second)
	aligned := func(s Snapshot) bool { return s.From.UnixMilli()%10_000 == 0 }
	got, err := live.KPIs(bounded, w, Filters{})
	if err != nil || !aligned(got) {
		t.Fatalf("recent view, bounded caller: answered %s–%s (%v), want the view's buckets", got.From, got.To, err)
	}
	// The view falls behind: its data an hour old, a refresh under way
	// that does not end.
	l := st.live
	// A bounded caller does not wait for that refresh (a caller that
	// waits would meet the deadline).
	l.mu.Lock()
	l.readAt, l.running, l.wait = time.Now().Add(-time.Hour), make(chan struct{}), time.Hour
	l.mu.Unlock()
	tctx, cancel := context.WithTimeout(bounded, 10*time.Second)
	defer cancel()
	got, err = live.KPIs(tctx, w, Filters{})
	if err != nil || !got.From.Equal(w.From) || !got.To.Equal(w.To) {
		t.Fatalf("view behind, bounded caller: answered %s–%s (%v), want the store's %s–%s", got.From, got.To, err, w.From, w.To)
	}
	want, err := st.KPIs(ctx, w, Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
		t.Fatalf("view behind, bounded caller:\ngot   %s\nstore %s", gj, wj)
	}
	l.mu.Lock()
	l.wait = 50 * time.Millisecond
	l.mu.Unlock()
	if got, err = live.KPIs(ctx, w, Filters{}); err != nil || !aligned(got) {
		t.Fatalf("view behind, unbounded caller: answered %s–%s (%v), want the view as it is", got.From, got.To, err)
	}
}

// TestLiveAsItIs: a view that has fallen behind, with a refresh under way
// that does not end, keeps an ordinary caller waiting until its deadline,
// while a caller that takes it as it is (AsItIs, the wall) is answered at
// once, with the time of the view's data; a view whose last refresh
// failed answers neither.
func TestLiveAsItIs(t *testing.T) {
	ctx := context.Background()
	st, now := liveHalfHour(t, 22)
	live := st.Live()
	w := Window{From: now.Add(-15 * time.Minute), To: now}
	if _, err := live.KPIs(ctx, w, Filters{}); err != nil {
		t.Fatal(err)
	}
	liveLoaded(t, st)
	l := st.live
	l.mu.Lock()
	old := l.asOf.Add(-time.Minute)
	l.asOf, l.readAt, l.refreshed = old, time.Now().Add(-time.Minute), time.Now().Add(-time.Minute)
	l.running, l.wait = make(chan struct{}), time.Hour
	l.mu.Unlock()

	short := func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 2*time.Second)
	}
	c, cancel := short(ctx)
	defer cancel()
	if _, err := live.KPIs(c, w, Filters{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("view behind, ordinary caller: err = %v, want it to wait for the refresh until its deadline", err)
	}
	c, cancel = short(AsItIs(ctx, time.Hour))
	defer cancel()
	began := time.Now()
	snap, err := live.KPIs(c, w, Filters{})
	if err != nil || time.Since(began) > time.Second {
		t.Fatalf("view behind, as it is: %v after %s, want an answer at once", err, time.Since(began))
	}
	if !snap.AsOf.Equal(old) || snap.ConversationsStarted == 0 {
		t.Errorf("view behind, as it is: as of %s with %d started, want the view's data as of %s", snap.AsOf, snap.ConversationsStarted, old)
	}
	tw := Window{From: time.UnixMilli(l.floor(now.Add(-time.Hour).UnixMilli())).UTC(), To: now.Truncate(time.Minute)}
	if _, asOf, err := live.Trends(c, []string{"service_level"}, time.Minute, tw, Filters{}); err != nil || !asOf.Equal(old) {
		t.Errorf("view behind, trends as it is: as of %s (%v), want %s", asOf, err, old)
	}
	// A view that keeps up: the refresh under way is waited for, as long
	// as the caller said and no longer.
	l.mu.Lock()
	l.refreshed, l.wait = time.Now(), liveWait
	l.mu.Unlock()
	began = time.Now()
	if _, err := live.KPIs(AsItIs(ctx, 200*time.Millisecond), w, Filters{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("recent view, as it is within 200ms: answered after %s", took)
	}
	down := errors.New("the store is down")
	l.mu.Lock()
	l.err = down
	l.mu.Unlock()
	if _, err := live.KPIs(AsItIs(ctx, 0), w, Filters{}); !errors.Is(err, down) {
		t.Errorf("a view whose refresh failed, as it is: err = %v, want the refresh's error", err)
	}
}

// liveHalfHour is a store over a fresh database holding half an hour of
// generated traffic up to 2 s ago (seed seeds it), and the store's clock.
func liveHalfHour(t *testing.T, seed uint64) (*KPIStore, time.Time) {
	t.Helper()
	_, conn := chtest.Start(t).Database(t)
	now := storeNow(t, conn)
	tr := liveTraffic(seed, now.Add(-30*time.Minute), now.Add(-2*time.Second), "h", 200)
	insertChunks(t, conn, tr.early, 1000)
	st, err := NewKPIStore(conn, KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return st, now
}

// TestLiveIngestPause: while the ingest is more than liveIngestPause
// behind, a loaded view is not refreshed, whatever was stored (a caller
// gets it as it was, dated by its last refresh); once the ingest has
// caught up, the refresh that finds more conversations than
// liveReloadAbove loads the view anew rather than recomputing them by
// ids, and the view agrees with the store. A view that was not paused
// recomputes by ids however many conversations changed.
func TestLiveIngestPause(t *testing.T) {
	ctx := context.Background()
	conn, tr, st, raw, behind := followingIngest(t, 21, "p", 300)
	third := len(tr.early) / 3
	insertChunks(t, conn, tr.early[:third], 1000)
	saved := liveReloadAbove
	liveReloadAbove = 20
	t.Cleanup(func() { liveReloadAbove = saved })
	live := st.Live()
	first, err := live.KPIs(ctx, lastHalfHour(), Filters{})
	if err != nil {
		t.Fatal(err)
	}
	liveLoaded(t, st)
	if st.live.loads.Load() != 1 {
		t.Fatalf("%d loads for the first answer", st.live.loads.Load())
	}

	// Keeping up: many new conversations are recomputed by ids.
	insertChunks(t, conn, tr.early[third:2*third], 1000)
	st.Fresh()
	kept, err := live.KPIs(ctx, lastHalfHour(), Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if st.live.loads.Load() != 1 || st.live.lastRecomputed <= int64(liveReloadAbove) {
		t.Errorf("keeping up: %d loads, %d conversations recomputed by ids (want more than %d, no load)", st.live.loads.Load(), st.live.lastRecomputed, liveReloadAbove)
	}
	agreesWithStore(t, raw, "keeping up", kept)
	if kept.ConversationsStarted <= first.ConversationsStarted {
		t.Fatalf("%d conversations started, before %d: the traffic is too thin to test", kept.ConversationsStarted, first.ConversationsStarted)
	}

	// Behind: not refreshed, whatever was stored.
	behind.Store(int64(liveIngestPause + time.Second))
	insertChunks(t, conn, tr.early[2*third:], 1000)
	st.Fresh()
	recomputed := st.live.recomputed.Load()
	// The window kept answered: one ending now may have moved on by a
	// bucket meanwhile, and lost a start at its beginning.
	paused, err := live.KPIs(ctx, Window{From: kept.From, To: kept.To}, Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if st.live.recomputed.Load() != recomputed || st.live.loads.Load() != 1 || !paused.AsOf.Equal(kept.AsOf) {
		t.Errorf("the ingest %s behind: %d conversations recomputed, %d loads, answer as of %s (the last refresh's %s)",
			time.Duration(behind.Load()), st.live.recomputed.Load()-recomputed, st.live.loads.Load(), paused.AsOf, kept.AsOf)
	}
	if paused.ConversationsStarted != kept.ConversationsStarted {
		t.Errorf("paused: %d conversations started, the view had %d", paused.ConversationsStarted, kept.ConversationsStarted)
	}

	// Caught up: the refresh finds the last third's conversations, more
	// than liveReloadAbove, and loads.
	behind.Store(int64(time.Second))
	got, err := live.KPIs(ctx, lastHalfHour(), Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if st.live.loads.Load() != 2 {
		t.Errorf("caught up: %d loads, want the first and one after the pause", st.live.loads.Load())
	}
	agreesWithStore(t, raw, "after the pause", got)
	liveLoaded(t, st)
	if got, err = live.KPIs(ctx, lastHalfHour(), Filters{}); err != nil {
		t.Fatal(err)
	}
	agreesWithStore(t, raw, "after the pause, loaded", got)
	if got.ConversationsStarted <= kept.ConversationsStarted {
		t.Errorf("after the pause %d conversations started, before it %d: the traffic is too thin to test", got.ConversationsStarted, kept.ConversationsStarted)
	}
}

// followingIngest is a fresh database, forty minutes of generated traffic
// up to 2 s ago (seed, ids prefixed, convs conversations) not stored yet,
// live and raw stores over it (liveAndRaw), and the ingest lag the live
// view follows, which the test sets.
func followingIngest(t *testing.T, seed uint64, prefix string, convs int) (driver.Conn, rollupTraffic, *KPIStore, *KPIStore, *atomic.Int64) {
	t.Helper()
	_, conn := chtest.Start(t).Database(t)
	now := storeNow(t, conn)
	tr := liveTraffic(seed, now.Add(-40*time.Minute), now.Add(-2*time.Second), prefix, convs)
	st, raw := liveAndRaw(t, conn)
	behind := new(atomic.Int64)
	st.FollowIngest(func(time.Time) time.Duration { return time.Duration(behind.Load()) })
	return conn, tr, st, raw, behind
}

// TestLiveReloadByRows: after a pause, a backlog of more than
// liveReloadRows rows loads the view anew without being read back, even
// where its conversations alone would be recomputed by ids; the view then
// agrees with the store.
func TestLiveReloadByRows(t *testing.T) {
	ctx := context.Background()
	conn, tr, st, raw, behind := followingIngest(t, 23, "r", 200)
	half := len(tr.early) / 2
	insertChunks(t, conn, tr.early[:half], 1000)
	savedConvs, savedRows := liveReloadAbove, liveReloadRows
	liveReloadAbove, liveReloadRows = 1<<30, 100
	t.Cleanup(func() { liveReloadAbove, liveReloadRows = savedConvs, savedRows })
	live := st.Live()
	if _, err := live.KPIs(ctx, lastHalfHour(), Filters{}); err != nil {
		t.Fatal(err)
	}
	liveLoaded(t, st)

	behind.Store(int64(liveIngestPause + time.Second))
	insertChunks(t, conn, tr.early[half:], 1000)
	st.Fresh()
	if _, err := live.KPIs(ctx, lastHalfHour(), Filters{}); err != nil {
		t.Fatal(err)
	}
	if n := st.live.loads.Load(); n != 1 {
		t.Fatalf("paused: %d loads, want the first only", n)
	}
	behind.Store(int64(time.Second))
	if _, err := live.KPIs(ctx, lastHalfHour(), Filters{}); err != nil {
		t.Fatal(err)
	}
	if n := st.live.loads.Load(); n != 2 {
		t.Errorf("caught up with %d rows stored meanwhile: %d loads, want one more", len(tr.early)-half, n)
	}
	liveLoaded(t, st)
	got, err := live.KPIs(ctx, lastHalfHour(), Filters{})
	if err != nil {
		t.Fatal(err)
	}
	agreesWithStore(t, raw, "after the reload", got)
}

// lastHalfHour is the window of the last 30 minutes, ending now.
func lastHalfHour() Window {
	to := time.Now().Truncate(time.Millisecond)
	return Window{From: to.Add(-30 * time.Minute), To: to}
}

// agreesWithStore fails the test, naming stage, unless raw answers the
// window of got (a live view's answer) with the same snapshot.
func agreesWithStore(t *testing.T, raw *KPIStore, stage string, got Snapshot) {
	t.Helper()
	want, err := raw.KPIs(context.Background(), Window{From: got.From, To: got.To}, Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
		t.Errorf("%s:\nlive  %s\nstore %s", stage, gj, wj)
	}
}

// TestStoredWindowGaugesFromLive: a window the live view does not hold
// (one in the past, from the store) takes its "now" gauges from the view
// while the view read the store at most liveGaugesMaxAge ago, and from
// the store otherwise; the window's own metrics come from the store
// either way, and both agree with a store without a view.
func TestStoredWindowGaugesFromLive(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := time.Now().UTC()
	start := func(id, region string, at time.Time) schemas.Event {
		return schemas.Event{EventID: id + "-s", SchemaVersion: 1, Type: schemas.ConversationStarted,
			ConversationID: id, OccurredAt: at, Channel: "chat", Region: region, Queue: "q1", BusinessLine: "billing", Entry: "bot"}
	}
	transfer := func(id string, at time.Time) schemas.Event {
		return schemas.Event{EventID: id + "-t", SchemaVersion: 1, Type: schemas.TransferRequested, ConversationID: id, OccurredAt: at}
	}
	insertChunks(t, conn, []schemas.Event{
		start("a", "北京", now.Add(-3*time.Hour)), start("b", "上海", now.Add(-20*time.Minute)),
		transfer("b", now.Add(-10*time.Minute)), start("c", "上海", now.Add(-5*time.Minute)),
	}, 10)
	st, raw := liveAndRaw(t, conn)
	liveLoaded(t, st)
	past := Window{From: now.Add(-4 * time.Hour).Truncate(time.Millisecond), To: now.Add(-2 * time.Hour).Truncate(time.Millisecond)}
	// both asks s for the window in all and by region.
	both := func(s *KPIStore) (Snapshot, []KeyedSnapshot) {
		t.Helper()
		got, err := s.KPIs(ctx, past, Filters{})
		if err != nil {
			t.Fatal(err)
		}
		by, err := s.KPIsBy(ctx, past, Filters{}, DimRegion)
		if err != nil {
			t.Fatal(err)
		}
		return got, by
	}
	read := func(stage string, readAgo time.Duration) (Snapshot, []KeyedSnapshot) {
		t.Helper()
		st.live.mu.Lock()
		st.live.readAt = time.Now().Add(-readAgo)
		st.live.mu.Unlock()
		got, by := both(st)
		if got.From != past.From || got.To != past.To {
			t.Fatalf("%s: answered %s–%s, asked %s–%s", stage, got.From, got.To, past.From, past.To)
		}
		return got, by
	}
	agree := func(stage string, got Snapshot, by []KeyedSnapshot) {
		t.Helper()
		want, wantBy := both(raw)
		if gj, wj := jsonOf(got), jsonOf(want); gj != wj {
			t.Errorf("%s:\nview gauges %s\nstore       %s", stage, gj, wj)
		}
		if gj, wj := jsonOf(by), jsonOf(wantBy); gj != wj {
			t.Errorf("%s by region:\nview gauges %s\nstore       %s", stage, gj, wj)
		}
	}
	got, by := read("view current", 0)
	if got.ActiveConversations != 3 || got.WaitingForHuman != 1 {
		t.Fatalf("view current: %d active, %d waiting, want 3 and 1", got.ActiveConversations, got.WaitingForHuman)
	}
	agree("view current", got, by)

	// A conversation the view has not read yet: counted by the store's
	// gauges, not by a view that read the store a moment ago.
	insertChunks(t, conn, []schemas.Event{start("d", "北京", now.Add(-time.Minute))}, 1)
	if got, _ := read("view a moment old", 0); got.ActiveConversations != 3 {
		t.Errorf("view a moment old: %d active, want the view's 3", got.ActiveConversations)
	}
	got, by = read("view behind", 2*liveGaugesMaxAge)
	if got.ActiveConversations != 4 {
		t.Errorf("view behind: %d active, want the store's 4", got.ActiveConversations)
	}
	agree("view behind", got, by)
}
