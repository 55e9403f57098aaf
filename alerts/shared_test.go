package alerts

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// TestSharedStateAcrossInstances runs two managers over one store, as two
// instances do: the leader observes evaluations, the other only answers
// the API. An ack, a silence and its expiry taken by the other, which
// started before the alert fired, are in force on the leader at its next
// tick; a pending episode that clears is closed in the store.
func TestSharedStateAcrossInstances(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops", GroupBy: []string{"rule", "queue"}}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	leader, err := NewManager(ctx, st, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewManager(ctx, st, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	vip := map[string]string{"queue": "vip"}
	slow := cand("slow", vip, 42, 0, time.Minute)
	tick := 0
	observe := func(cs ...rules.Candidate) {
		t.Helper()
		tick++
		ev := evalAt(base.Add(time.Duration(tick)*time.Second), []string{"slow", "waiting"}, cs...)
		if err := leader.Observe(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	observe(slow)
	active := leader.Active()
	if len(active) != 1 || active[0].State != StateFiring {
		t.Fatalf("leader's active alerts = %+v, want one firing", active)
	}
	id := active[0].ID

	// An ack taken by the other instance.
	acked, err := other.Ack(ctx, id, "lin", "on it", base.Add(90*time.Second))
	if err != nil {
		t.Fatalf("ack on the instance that does not lead: %v", err)
	}
	if acked.AckedBy != "lin" || acked.ID != id {
		t.Errorf("ack answered %+v", acked)
	}
	if _, err := other.Ack(ctx, "no-such-alert", "lin", "", base); !errors.Is(err, ErrNotFound) {
		t.Errorf("ack of an unknown alert: %v, want ErrNotFound", err)
	}
	listed, err := st.ListAlerts(ctx, "firing", base.Add(-time.Hour), base.Add(time.Hour), 10)
	if err != nil || len(listed) != 1 || listed[0].AckedBy != "lin" || listed[0].AckNote != "on it" {
		t.Errorf("stored alerts after the ack = %+v, %v; want acked by lin", listed, err)
	}
	observe(slow)
	if a := leader.Active(); len(a) != 1 || a[0].AckedBy != "lin" {
		t.Errorf("the leader's alert after its next tick = %+v, want acked by lin", a)
	}

	// A silence added, then expired, on the other instance.
	m, _ := ParseMatcher(`queue="vip"`)
	sil, err := other.AddSilence(ctx, Silence{Matchers: Matchers{m}, EndsAt: base.Add(time.Hour), CreatedBy: "lin"}, base)
	if err != nil {
		t.Fatal(err)
	}
	labels := withRule(leader.Active()[0])
	observe(slow)
	if got := leader.silences.Silenced(labels, base.Add(3*time.Second)); len(got) != 1 || got[0] != sil.ID {
		t.Errorf("silences muting the alert on the leader after its next tick = %v, want [%s]", got, sil.ID)
	}
	if _, err := other.ExpireSilence(ctx, sil.ID, base.Add(3500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	observe(slow)
	if got := leader.silences.Silenced(labels, base.Add(4*time.Second)); len(got) != 0 {
		t.Errorf("the expired silence still mutes the alert on the leader: %v", got)
	}
	if ss, err := leader.Silences(ctx, base); err != nil || len(ss) != 1 || ss[0].Active(base.Add(4*time.Second)) {
		t.Errorf("silences listed by the leader = %+v, %v; want the one, expired", ss, err)
	}
	if _, err := leader.ExpireSilence(ctx, "no-such-silence", base); !errors.Is(err, ErrNotFound) {
		t.Errorf("expiring an unknown silence: %v, want ErrNotFound", err)
	}

	// A pending episode that clears is closed, in the store too.
	waiting := cand("waiting", map[string]string{"queue": "l1"}, 9, time.Hour, 0)
	observe(slow, waiting)
	var pendingID string
	for _, r := range leader.Active() {
		if r.Rule == "waiting" {
			pendingID = r.ID
		}
	}
	if pendingID == "" {
		t.Fatalf("no pending alert of rule waiting: %+v", leader.Active())
	}
	observe(slow)
	r, err := st.LoadAlert(ctx, pendingID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateInactive || r.ResolvedAt.IsZero() {
		t.Errorf("stored episode after its condition cleared: state %s, closed at %v; want inactive with a time", r.State, r.ResolvedAt)
	}
	all, err := st.ListAlerts(ctx, "all", base.Add(-time.Hour), base.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.State == StatePending {
			t.Errorf("a pending record outlived its episode: %+v", a)
		}
	}
}

// countingNotifier counts what it receives, as a robot without any
// idempotency key would.
type countingNotifier struct {
	mu  sync.Mutex
	got map[string]int
}

func (c *countingNotifier) Notify(_ context.Context, n *Notification) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[n.ID]++
	return false, nil
}

func (c *countingNotifier) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id]
}

// TestDeliveryFencedAcrossTerms has two members believe they lead: the
// one whose term is older claims the notification but does not send it;
// the newer one leaves the claim alone until it expires, then sends it,
// exactly once.
func TestDeliveryFencedAcrossTerms(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	older, err := st.BeginTerm(ctx, 5, "a")
	if err != nil {
		t.Fatal(err)
	}
	newer, err := st.BeginTerm(ctx, 6, "b")
	if err != nil {
		t.Fatal(err)
	}
	if newer.Term != older.Term+1 {
		t.Fatalf("terms %d then %d, want consecutive", older.Term, newer.Term)
	}
	if err := st.CheckTerm(ctx, older); !errors.Is(err, ErrFenced) {
		t.Fatalf("the older term is not fenced off: %v", err)
	}
	if err := st.CheckTerm(ctx, newer); err != nil {
		t.Fatalf("the newest term is fenced off: %v", err)
	}
	n := &Notification{ID: "n1", Receiver: "robot", GroupKey: "g", Status: StatusFiring, CreatedAt: time.Now().Add(-time.Second)}
	if err := st.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	robot := &countingNotifier{got: map[string]int{}}
	logger := slog.New(slog.DiscardHandler)
	cfg := DeliveryConfig{Timeout: 500 * time.Millisecond}
	reg := prometheus.NewRegistry()
	metrics, err := NewDeliveryMetrics(reg, map[string]string{"robot": "dingtalk"})
	if err != nil {
		t.Fatal(err)
	}
	member := func(term Term) *Deliverer {
		d := NewDeliverer(cfg, st, map[string]Notifier{"robot": robot}, logger)
		d.Fence = func(ctx context.Context) error { return st.CheckTerm(ctx, term) }
		d.Metrics = metrics
		return d
	}
	a, b := member(older), member(newer)
	a.Once(ctx, time.Now())
	if c := robot.count("n1"); c != 0 {
		t.Fatalf("the fenced-off member sent the notification %d times", c)
	}
	b.Once(ctx, time.Now())
	if c := robot.count("n1"); c != 0 {
		t.Fatalf("the leader sent a notification another member had claimed, %d times", c)
	}
	time.Sleep(cfg.Timeout + claimMargin + 500*time.Millisecond)
	b.Once(ctx, time.Now())
	a.Once(ctx, time.Now())
	b.Once(ctx, time.Now())
	if c := robot.count("n1"); c != 1 {
		t.Fatalf("the notification went out %d times, want once", c)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			got[mf.GetName()+"{"+labels+"}"] = v
		}
	}
	for name, want := range map[string]float64{
		"cockpit_notifications_sent_total{integration=dingtalk,receiver=robot,}":            1,
		"cockpit_notification_latency_seconds{integration=dingtalk,receiver=robot,}":        1,
		"cockpit_notification_delivery_delay_seconds{integration=dingtalk,receiver=robot,}": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], want, got)
		}
	}
	stats, err := st.OutboxStats(ctx)
	if err != nil || stats.Pending != 0 {
		t.Errorf("outbox after delivery: %+v, %v; want empty", stats, err)
	}
}

// TestReloadClosesStaleEpisodes stores what an earlier release left: a
// pending episode that cleared and was never closed, beside a newer
// episode of the same fingerprint. Taking over closes the older one.
func TestReloadClosesStaleEpisodes(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	labels := map[string]string{"queue": "enterprise-l1"}
	fp := Fingerprint("service_level_low", labels)
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	stale := Record{ID: recordID(fp, at), Fingerprint: fp, Rule: "service_level_low", Severity: "warning",
		State: StatePending, Labels: labels, ActiveAt: at, LastSeen: at}
	newer := stale
	newer.ID, newer.ActiveAt, newer.LastSeen = recordID(fp, at.Add(73*time.Second)), at.Add(73*time.Second), at.Add(80*time.Second)
	if err := st.SaveAlerts(ctx, []Record{stale, newer}); err != nil {
		t.Fatal(err)
	}
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops"}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if a := m.Active(); len(a) != 1 || a[0].ID != newer.ID {
		t.Errorf("active after the takeover = %+v, want only %s", a, newer.ID)
	}
	r, err := st.LoadAlert(ctx, stale.ID)
	if err != nil || r.State != StateInactive {
		t.Errorf("the stale episode is %+v (%v), want it closed as inactive", r, err)
	}
	active, err := st.LoadActive(ctx)
	if err != nil || len(active) != 1 {
		t.Errorf("stored active episodes = %+v, %v; want one", active, err)
	}
}

// TestSilencesReadOnChange: the leader's term check stamps the silences
// table, and a sync reads the silences only when the stamp moved or no
// check was made since the last sync; a silence another instance stores
// is in force after the next check and sync.
func TestSilencesReadOnChange(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st, other := NewStore(conn), NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops"}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	term, err := st.BeginTerm(ctx, 1, "leader")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tick := func(check bool) int {
		t.Helper()
		if check {
			if err := st.CheckTerm(ctx, term); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Sync(ctx, now); err != nil {
			t.Fatal(err)
		}
		return m.silenceLoads
	}
	if n := tick(true); n != 1 {
		t.Fatalf("first sync read the silences %d times, want 1", n)
	}
	if n := tick(true); n != 1 {
		t.Fatalf("a sync with nothing changed read the silences again (%d reads)", n)
	}
	if n := tick(false); n != 2 {
		t.Fatalf("a sync with no term check since the last one did not read the silences (%d reads)", n)
	}
	mt, _ := ParseMatcher(`region="广州"`)
	x := Silence{ID: "s-other", Matchers: Matchers{mt}, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), CreatedBy: "lin", CreatedAt: now}
	if err := other.SaveSilence(ctx, x); err != nil {
		t.Fatal(err)
	}
	if n := tick(true); n != 3 {
		t.Fatalf("a silence stored by another instance was not read (%d reads)", n)
	}
	if l := m.silences.List(); len(l) != 1 || l[0].ID != "s-other" {
		t.Fatalf("silences in force = %+v, want s-other", l)
	}
	if n := tick(true); n != 3 {
		t.Fatalf("unchanged silences read again (%d reads)", n)
	}
	// A tick that checks the term only before it writes (WithFence)
	// takes the silences as the last check left them.
	y := x
	y.ID = "s-other-2"
	if err := other.SaveSilence(ctx, y); err != nil {
		t.Fatal(err)
	}
	dctx := WithFence(ctx, func(context.Context) error { return nil })
	if err := m.Sync(dctx, now); err != nil {
		t.Fatal(err)
	}
	if m.silenceLoads != 3 {
		t.Fatalf("a tick that made no term check read the silences (%d reads)", m.silenceLoads)
	}
	if n := tick(true); n != 4 || len(m.silences.List()) != 2 {
		t.Fatalf("the next checked tick did not read the new silence (%d reads, %d in force)", n, len(m.silences.List()))
	}
}

// TestWriteUnderFence: under WithFence the leader's writes (alert states,
// history, notifications) call the fence first and write nothing when it
// refuses; writes any instance makes (acks, silences) do not call it.
func TestWriteUnderFence(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	st := NewStore(conn)
	now := time.Now().UTC().Truncate(time.Millisecond)
	calls := 0
	refuse := &FencedError{Mine: Term{Term: 1}, Newest: Term{Term: 2}}
	var verdict error
	ctx := WithFence(context.Background(), func(context.Context) error { calls++; return verdict })
	count := func(table string) uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rec := Record{ID: "a1", Fingerprint: "f1", Rule: "r", State: StateFiring, ActiveAt: now, LastSeen: now}
	hist := HistoryEntry{At: now, AlertID: "a1", Fingerprint: "f1", Rule: "r", From: StatePending, To: StateFiring}
	note := &Notification{ID: "n1", Receiver: "robot", GroupKey: "g", Status: StatusFiring, CreatedAt: now}
	writes := []struct {
		table string
		write func() error
	}{
		{"alerts", func() error { return st.SaveAlerts(ctx, []Record{rec}) }},
		{"alert_history", func() error { return st.AppendHistory(ctx, []HistoryEntry{hist}) }},
		{"notification_outbox", func() error { return st.Enqueue(ctx, note) }},
	}
	verdict = refuse
	for _, w := range writes {
		if err := w.write(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s: a refused fence gave %v, want ErrFenced", w.table, err)
		}
		if n := count(w.table); n != 0 {
			t.Errorf("%s: %d rows written past a refused fence", w.table, n)
		}
	}
	if calls != len(writes) {
		t.Fatalf("the fence was called %d times for %d writes", calls, len(writes))
	}
	verdict, calls = nil, 0
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.table, err)
		}
		if n := count(w.table); n != 1 {
			t.Errorf("%s: %d rows, want 1", w.table, n)
		}
	}
	if calls != len(writes) {
		t.Fatalf("the fence was called %d times for %d writes", calls, len(writes))
	}
	calls = 0
	if err := st.SaveAck(ctx, Ack{AlertID: "a1", By: "lin", At: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveAlerts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatalf("an ack and an empty write called the fence %d times", calls)
	}
}

// TestLastEvaluation: the newest evaluation recorded by any term, and zero
// before any was.
func TestLastEvaluation(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	if at, err := st.LastEvaluation(ctx); err != nil || !at.IsZero() {
		t.Fatalf("before any evaluation: %s, %v; want zero", at, err)
	}
	base := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	a, b := Term{Term: 1, Member: "a"}, Term{Term: 2, Member: "b"}
	for i, rec := range []struct {
		term Term
		at   time.Time
	}{{a, base}, {a, base.Add(5 * time.Second)}, {b, base.Add(12 * time.Second)}, {a, base.Add(10 * time.Second)}} {
		if err := st.RecordEvaluation(ctx, rec.term, rec.at); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if at, err := st.LastEvaluation(ctx); err != nil || !at.Equal(base.Add(12*time.Second)) {
		t.Errorf("last evaluation = %s, %v; want %s", at, err, base.Add(12*time.Second))
	}
}
