package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// flakyNotifier is down until up is set, then records what it receives.
type flakyNotifier struct {
	mu       sync.Mutex
	up       bool
	attempts int
	got      map[string]int
}

func (f *flakyNotifier) Notify(_ context.Context, n *Notification) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if !f.up {
		return true, errors.New("receiver down")
	}
	f.got[n.ID]++
	return false, nil
}

func TestManagerStoreRestartAndDelivery(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops", GroupWait: Duration(time.Second), GroupBy: []string{"rule", "queue"}}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	m, err := NewManager(ctx, st, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	// Evaluation times a little in the past, so notifications are due now.
	now := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	c := cand("slow", map[string]string{"queue": "vip"}, 42, 0, time.Minute)
	for i := 0; i < 3; i++ {
		if err := m.Observe(ctx, evalAt(now.Add(time.Duration(i)*time.Second), []string{"slow"}, c)); err != nil {
			t.Fatal(err)
		}
	}
	active := m.Active()
	if len(active) != 1 || active[0].State != StateFiring {
		t.Fatalf("active = %+v", active)
	}
	if _, err := m.Ack(ctx, active[0].ID, "lin", "on it", now.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ack(ctx, "nope", "lin", "", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack of unknown alert: %v", err)
	}

	// A restart: the new manager restores the alert and continues it.
	m2, err := NewManager(ctx, st, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	restored := m2.Active()
	if len(restored) != 1 || restored[0].ID != active[0].ID || restored[0].AckedBy != "lin" || restored[0].State != StateFiring {
		t.Fatalf("restored = %+v", restored)
	}
	if err := m2.Observe(ctx, evalAt(now.Add(4*time.Second), []string{"slow"}, c)); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListAlerts(ctx, "all", now.Add(-time.Hour), now.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d alerts stored for one fingerprint, want 1", len(list))
	}

	// The receiver is down for a while: the notification waits in the
	// outbox (across a deliverer restart), then arrives exactly once.
	fn := &flakyNotifier{got: map[string]int{}}
	dcfg := DeliveryConfig{RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	d := NewDeliverer(dcfg, st, map[string]Notifier{"ops": fn}, logger)
	for i := 0; i < 5; i++ {
		d.Once(ctx, time.Now())
		time.Sleep(60 * time.Millisecond)
	}
	if fn.attempts < 2 {
		t.Fatalf("only %d attempts while down", fn.attempts)
	}
	fn.mu.Lock()
	fn.up = true
	fn.mu.Unlock()
	d2 := NewDeliverer(dcfg, st, map[string]Notifier{"ops": fn}, logger)
	for i := 0; i < 5; i++ {
		d2.Once(ctx, time.Now())
		time.Sleep(60 * time.Millisecond)
	}
	if len(fn.got) != 1 {
		t.Fatalf("notifications delivered: %v, want exactly one", fn.got)
	}
	for id, n := range fn.got {
		if n != 1 {
			t.Fatalf("notification %s delivered %d times", id, n)
		}
	}

	// Resolve: the condition stops past keep_firing_for; the resolved notice
	// follows after group_interval.
	if err := m2.Observe(ctx, evalAt(now.Add(2*time.Minute), []string{"slow"})); err != nil {
		t.Fatal(err)
	}
	if err := m2.Observe(ctx, evalAt(now.Add(4*time.Minute), []string{"slow"})); err != nil {
		t.Fatal(err)
	}
	d2.Once(ctx, time.Now().Add(5*time.Minute))
	if len(fn.got) != 2 {
		t.Fatalf("resolved notice not delivered: %v", fn.got)
	}
	resolved, err := st.ListAlerts(ctx, "resolved", now.Add(-time.Hour), now.Add(time.Hour), 10)
	if err != nil || len(resolved) != 1 || resolved[0].ResolvedAt.IsZero() {
		t.Fatalf("resolved alerts = %+v, %v", resolved, err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM alert_history").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// pending->firing, the ack, firing->resolved.
	if n != 3 {
		t.Fatalf("alert_history has %d entries, want 3", n)
	}
}

func TestSilencesPersist(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops"}}}
	_ = cfg.WithDefaults().Validate([]string{"ops"})
	m, err := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := ParseMatcher(`region=~"广.*"`)
	now := time.Now()
	s, err := m.AddSilence(ctx, Silence{Matchers: Matchers{mt}, EndsAt: now.Add(time.Hour), CreatedBy: "lin", Comment: "维护"}, now)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Silences(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != s.ID || got[0].Comment != "维护" || !got[0].Matchers.Matches(map[string]string{"region": "广州"}) {
		t.Fatalf("silences after restart = %+v", got)
	}
	if _, err := m2.ExpireSilence(ctx, s.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	m3, _ := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if x, err := m3.Silences(ctx, now); err != nil || len(x) != 1 || x[0].Active(now.Add(2*time.Minute)) {
		t.Fatalf("expiry not persisted: %+v", x)
	}
}

// TestRestartOwesNotices restarts the manager (as a crash or a change of
// leader does) in the two moments where a transition is stored but its
// notice is not queued yet: within group_wait after an alert fires, and
// within group_interval after it resolves. Each notice is queued exactly
// once all the same, and further restarts queue nothing again.
func TestRestartOwesNotices(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops", GroupBy: []string{"rule", "queue"},
		GroupWait: Duration(time.Second), GroupInterval: Duration(time.Minute), RepeatInterval: Duration(time.Hour)}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	restart := func() *Manager {
		m, err := NewManager(ctx, st, cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	observe := func(m *Manager, at time.Time, cs ...rules.Candidate) {
		if err := m.Observe(ctx, evalAt(at, []string{"slow"}, cs...)); err != nil {
			t.Fatal(err)
		}
	}
	queued := func() []string {
		rows, err := conn.Query(ctx, "SELECT payload FROM notification_outbox FINAL ORDER BY created_at")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				t.Fatal(err)
			}
			var n Notification
			if err := json.Unmarshal([]byte(p), &n); err != nil {
				t.Fatal(err)
			}
			for _, a := range n.Alerts {
				out = append(out, string(a.Status))
			}
		}
		return out
	}
	base := time.Now().Truncate(time.Millisecond)
	c := cand("slow", map[string]string{"queue": "vip"}, 42, 0, 0)

	observe(restart(), base, c) // fires; its notice waits for group_wait
	if q := queued(); len(q) != 0 {
		t.Fatalf("queued within group_wait: %v", q)
	}
	// The process dies here. Its successor owes the firing notice.
	m := restart()
	observe(m, base.Add(2*time.Second), c)
	if q := queued(); !slices.Equal(q, []string{"firing"}) {
		t.Fatalf("after a restart within group_wait: queued %v, want [firing]", q)
	}
	m = restart()
	observe(m, base.Add(3*time.Second), c)
	observe(m, base.Add(4*time.Second)) // resolves; its notice waits for group_interval
	if q := queued(); !slices.Equal(q, []string{"firing"}) {
		t.Fatalf("queued %v, want [firing] (no repeat, resolved notice not due yet)", q)
	}
	// The process dies again. Its successor owes the resolved notice.
	m = restart()
	observe(m, base.Add(2*time.Minute))
	if q := queued(); !slices.Equal(q, []string{"firing", "resolved"}) {
		t.Fatalf("after a restart within group_interval: queued %v, want [firing resolved]", q)
	}
	m = restart()
	observe(m, base.Add(3*time.Minute))
	observe(m, base.Add(5*time.Hour))
	if q := queued(); !slices.Equal(q, []string{"firing", "resolved"}) {
		t.Fatalf("queued %v after further restarts, want [firing resolved] still", q)
	}
}

// TestReloadRepairsHistory stores alert states without their history
// entries, as a process that died between the two writes leaves them: the
// next leader's Reload records the missing transitions, once.
func TestReloadRepairsHistory(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops"}}}
	if err := cfg.WithDefaults().Validate([]string{"ops"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond).UTC()
	rec := func(rule string, state State) Record {
		fp := Fingerprint(rule, map[string]string{"queue": "vip"})
		r := Record{ID: recordID(fp, now.Add(-time.Minute)), Fingerprint: fp, Rule: rule, Severity: "warning", State: state,
			Labels: map[string]string{"queue": "vip"}, ActiveAt: now.Add(-time.Minute), LastSeen: now}
		if state != StatePending {
			r.StartedAt = now.Add(-50 * time.Second)
		}
		if state == StateResolved {
			r.ResolvedAt = now.Add(-10 * time.Second)
		}
		return r
	}
	if err := st.SaveAlerts(ctx, []Record{rec("a", StatePending), rec("b", StateFiring), rec("c", StateResolved)}); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	history := func() []string {
		rows, err := conn.Query(ctx, "SELECT rule, from_state, to_state FROM alert_history ORDER BY rule, at")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var rule, from, to string
			if err := rows.Scan(&rule, &from, &to); err != nil {
				t.Fatal(err)
			}
			out = append(out, rule+":"+from+"->"+to)
		}
		return out
	}
	if h := history(); len(h) != 0 {
		t.Fatalf("history before any leader: %v", h)
	}
	want := []string{"a:inactive->pending", "b:pending->firing", "c:firing->resolved"}
	for range 2 {
		if err := m.Reload(ctx, now); err != nil {
			t.Fatal(err)
		}
		if h := history(); !slices.Equal(h, want) {
			t.Fatalf("history after Reload = %v, want %v", h, want)
		}
	}
}

// orderNotifier records the order notifications arrive in.
type orderNotifier struct {
	mu  sync.Mutex
	ids []string
}

func (o *orderNotifier) Notify(_ context.Context, n *Notification) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ids = append(o.ids, n.ID)
	return false, nil
}

// TestDeliveryKeepsOrderAcrossBackoff: a receiver's older notification
// that is waiting out its back-off holds back a newer one that is due, so
// a receiver coming back hears "firing" before "resolved".
func TestDeliveryKeepsOrderAcrossBackoff(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := NewStore(conn)
	now := time.Now().Truncate(time.Millisecond)
	older := OutboxItem{Notification: Notification{ID: "n1-firing", Receiver: "ops", CreatedAt: now.Add(-time.Minute)},
		State: "pending", Attempts: 9, NextAttempt: now.Add(10 * time.Second), CreatedAt: now.Add(-time.Minute)}
	newer := OutboxItem{Notification: Notification{ID: "n2-resolved", Receiver: "ops", CreatedAt: now.Add(-time.Second)},
		State: "pending", Attempts: 1, NextAttempt: now, CreatedAt: now.Add(-time.Second)}
	other := OutboxItem{Notification: Notification{ID: "n3-other", Receiver: "duty", CreatedAt: now.Add(-time.Second)},
		State: "pending", NextAttempt: now, CreatedAt: now.Add(-time.Second)}
	for _, it := range []OutboxItem{older, newer, other} {
		if err := st.UpdateOutbox(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	ops, duty := &orderNotifier{}, &orderNotifier{}
	d := NewDeliverer(DeliveryConfig{}, st, map[string]Notifier{"ops": ops, "duty": duty}, slog.New(slog.DiscardHandler))
	d.Once(ctx, now)
	if len(ops.ids) != 0 {
		t.Fatalf("delivered %v while the older notification waits for its next attempt", ops.ids)
	}
	if !slices.Equal(duty.ids, []string{"n3-other"}) {
		t.Fatalf("another receiver was held back: %v", duty.ids)
	}
	d.Once(ctx, now.Add(11*time.Second))
	if !slices.Equal(ops.ids, []string{"n1-firing", "n2-resolved"}) {
		t.Fatalf("delivered %v, want [n1-firing n2-resolved]", ops.ids)
	}
	d.Once(ctx, now.Add(20*time.Second))
	if len(ops.ids) != 2 || len(duty.ids) != 1 {
		t.Fatalf("delivered again: %v %v", ops.ids, duty.ids)
	}
}

// countingOutbox counts the deliverer's outbox reads.
type countingOutbox struct {
	*Store
	reads, writes atomic.Int64
}

func (c *countingOutbox) Due(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error) {
	c.reads.Add(1)
	return c.Store.Due(ctx, now, limit)
}

func (c *countingOutbox) UpdateOutbox(ctx context.Context, it OutboxItem) error {
	c.writes.Add(1)
	return c.Store.UpdateOutbox(ctx, it)
}

// TestClaimedWhenEnqueued: a notification the store writes already
// claimed for its deliverer (ClaimEnqueued) goes out with one outbox
// write, its outcome, whether it is handed over or found by a read;
// another member leaves it alone while the claim holds; a claim too near
// its end to cover an attempt is written again first; one that expired
// gives way to a newer claim.
func TestClaimedWhenEnqueued(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := &countingOutbox{Store: NewStore(conn)}
	ops := &orderNotifier{}
	logger := slog.New(slog.DiscardHandler)
	d := NewDeliverer(DeliveryConfig{}, st, map[string]Notifier{"ops": ops}, logger)
	other := NewDeliverer(DeliveryConfig{}, NewStore(conn), map[string]Notifier{"ops": ops}, logger)
	st.DeliverWith(d)
	now := time.Now()
	enqueue := func(id string) {
		t.Helper()
		if err := st.Enqueue(ctx, &Notification{ID: id, Receiver: "ops", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("n1")
	due, err := st.Store.Due(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].State != "sending" || due[0].NextAttempt.Sub(now) < d.enqueueClaim()-time.Second {
		t.Fatalf("outbox after Enqueue: %+v, %v; want n1 claimed for %s", due, err, d.enqueueClaim())
	}
	other.Once(ctx, time.Now())
	if len(ops.ids) != 0 {
		t.Fatalf("another member sent %v while the claim holds", ops.ids)
	}
	// Found by a read: sent, and the outcome is the one write.
	d.Once(ctx, time.Now())
	if !slices.Equal(ops.ids, []string{"n1"}) || st.writes.Load() != 1 {
		t.Fatalf("after the read: sent %v with %d outbox writes, want [n1] and 1", ops.ids, st.writes.Load())
	}
	// Handed over: the same.
	enqueue("n2")
	if !d.handed(ctx, time.Now(), d.takeQueued()) || !slices.Equal(ops.ids, []string{"n1", "n2"}) || st.writes.Load() != 2 {
		t.Fatalf("handed: sent %v with %d outbox writes, want [n1 n2] and 2", ops.ids, st.writes.Load())
	}
	// A claim that would end within an attempt is written again.
	st.ClaimEnqueued = time.Second
	enqueue("n3")
	if !d.handed(ctx, time.Now(), d.takeQueued()) || !slices.Equal(ops.ids, []string{"n1", "n2", "n3"}) || st.writes.Load() != 4 {
		t.Fatalf("short claim: sent %v with %d outbox writes, want [n1 n2 n3] and 4", ops.ids, st.writes.Load())
	}
	if due, err := st.Store.Due(ctx, time.Now(), 10); err != nil || len(due) != 0 {
		t.Fatalf("outbox after delivery: %+v, %v", due, err)
	}
	// Once its own claim has expired, a notification is another member's
	// to send if that member claimed it since: this deliverer leaves the
	// newer claim alone.
	n4 := Notification{ID: "n4", Receiver: "ops", CreatedAt: time.Now()}
	d.Enqueued(OutboxItem{Notification: n4, State: "sending", NextAttempt: time.Now().Add(-time.Second), CreatedAt: n4.CreatedAt})
	d.takeQueued()
	if err := st.Store.UpdateOutbox(ctx, OutboxItem{Notification: n4, State: "sending", NextAttempt: time.Now().Add(time.Minute), CreatedAt: n4.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	d.Once(ctx, time.Now())
	if len(ops.ids) != 3 {
		t.Fatalf("sent %v past another member's claim", ops.ids)
	}
}

// TestHandedDelivery: a notification this process wrote goes out without
// a read of the outbox once a read showed its receiver has nothing older
// waiting; it waits behind an older one in back-off, and one that a read
// already found is not sent twice.
func TestHandedDelivery(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st := &countingOutbox{Store: NewStore(conn)}
	var written []OutboxItem
	st.OnEnqueue = func(it OutboxItem) { written = append(written, it) }
	enqueue := func(id, recv string, at time.Time) OutboxItem {
		t.Helper()
		written = nil
		if err := st.Enqueue(ctx, &Notification{ID: id, Receiver: recv, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if len(written) != 1 {
			t.Fatalf("OnEnqueue told of %d notifications, want 1", len(written))
		}
		return written[0]
	}
	ops, duty := &orderNotifier{}, &orderNotifier{}
	d := NewDeliverer(DeliveryConfig{}, st, map[string]Notifier{"ops": ops, "duty": duty}, slog.New(slog.DiscardHandler))
	now := time.Now().Truncate(time.Millisecond)

	// Before any read the deliverer cannot tell: Once must run.
	n1 := enqueue("n1", "ops", now)
	if d.handed(ctx, now, []OutboxItem{n1}) || len(ops.ids) != 0 {
		t.Fatalf("sent %v before reading the outbox", ops.ids)
	}
	d.Once(ctx, now)
	if !slices.Equal(ops.ids, []string{"n1"}) || st.reads.Load() != 1 {
		t.Fatalf("after the read: sent %v, %d reads", ops.ids, st.reads.Load())
	}
	// n1 was found by that read: handing it over again sends nothing.
	if !d.handed(ctx, now, []OutboxItem{n1}) || len(ops.ids) != 1 {
		t.Fatalf("a notification the read found was sent again: %v", ops.ids)
	}
	// Receivers are clear: new ones go out at once, in their order,
	// without another read.
	n3, n2 := enqueue("n3", "ops", now.Add(2*time.Second)), enqueue("n2", "ops", now.Add(time.Second))
	n4 := enqueue("n4", "duty", now.Add(time.Second))
	if !d.handed(ctx, now.Add(2*time.Second), []OutboxItem{n3, n4, n2}) {
		t.Fatal("handed: false with every receiver clear")
	}
	if !slices.Equal(ops.ids, []string{"n1", "n2", "n3"}) || !slices.Equal(duty.ids, []string{"n4"}) || st.reads.Load() != 1 {
		t.Fatalf("sent %v and %v with %d reads, want [n1 n2 n3], [n4] and 1", ops.ids, duty.ids, st.reads.Load())
	}
	if due, err := st.Store.Due(ctx, now.Add(time.Minute), 10); err != nil || len(due) != 0 {
		t.Fatalf("outbox after handed delivery: %+v, %v", due, err)
	}
	// An older notification of ops waits out its back-off: a new one for
	// ops is not sent ahead of it, and handed sends nothing at all.
	older := OutboxItem{Notification: Notification{ID: "n5-older", Receiver: "ops", CreatedAt: now.Add(-time.Minute)},
		State: "pending", Attempts: 3, NextAttempt: now.Add(10 * time.Second), CreatedAt: now.Add(-time.Minute)}
	if err := st.UpdateOutbox(ctx, older); err != nil {
		t.Fatal(err)
	}
	d.Once(ctx, now.Add(3*time.Second))
	n6, n7 := enqueue("n6", "ops", now.Add(4*time.Second)), enqueue("n7", "duty", now.Add(4*time.Second))
	if d.handed(ctx, now.Add(4*time.Second), []OutboxItem{n7, n6}) || len(ops.ids) != 3 || len(duty.ids) != 1 {
		t.Fatalf("handed sent %v and %v past a notification in back-off", ops.ids, duty.ids)
	}
	d.Once(ctx, now.Add(11*time.Second))
	if !slices.Equal(ops.ids, []string{"n1", "n2", "n3", "n5-older", "n6"}) || !slices.Equal(duty.ids, []string{"n4", "n7"}) {
		t.Fatalf("after the back-off: sent %v and %v", ops.ids, duty.ids)
	}
}

// TestRunSendsWhatItIsTold: Run reads the outbox when it starts and then
// sends what Enqueued tells it of without reading it again; what it was
// told of before it started, and another member sent meanwhile, it does
// not send again.
func TestRunSendsWhatItIsTold(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &countingOutbox{Store: NewStore(conn)}
	ops := &orderNotifier{}
	d := NewDeliverer(DeliveryConfig{}, st, map[string]Notifier{"ops": ops}, slog.New(slog.DiscardHandler))
	st.OnEnqueue = d.Enqueued
	now := time.Now().Truncate(time.Millisecond)
	// Told of before Run, and sent by another member since.
	if err := st.Enqueue(ctx, &Notification{ID: "n0", Receiver: "ops", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateOutbox(ctx, OutboxItem{Notification: Notification{ID: "n0", Receiver: "ops", CreatedAt: now},
		State: "sent", Attempts: 1, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, time.Hour)
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the first read", func() bool { return st.reads.Load() == 1 })
	for i := 1; i <= 3; i++ {
		if err := st.Enqueue(ctx, &Notification{ID: "n" + strconv.Itoa(i), Receiver: "ops", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		waitFor("n"+strconv.Itoa(i), func() bool {
			ops.mu.Lock()
			defer ops.mu.Unlock()
			return len(ops.ids) == i
		})
	}
	cancel()
	<-done
	if !slices.Equal(ops.ids, []string{"n1", "n2", "n3"}) || st.reads.Load() != 1 {
		t.Fatalf("sent %v with %d outbox reads, want [n1 n2 n3] and 1", ops.ids, st.reads.Load())
	}
}

// TestOnceWhenOutboxUnreadable: with nothing pending, delivery has no
// next time and waits to be woken; when the outbox cannot be read, it
// asks to be run again after RetryMin rather than waiting for the
// leader's slow poll, so a notification queued meanwhile is not held up.
func TestOnceWhenOutboxUnreadable(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	cfg := DeliveryConfig{RetryMin: 3 * time.Second}
	now := time.Now()
	logger := slog.New(slog.DiscardHandler)
	if next := NewDeliverer(cfg, NewStore(conn), nil, logger).Once(ctx, now); !next.IsZero() {
		t.Fatalf("empty outbox: next = %s, want none", next)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if next := NewDeliverer(cfg, NewStore(conn), nil, logger).Once(ctx, now); !next.Equal(now.Add(cfg.RetryMin)) {
		t.Fatalf("unreadable outbox: next = %s, want %s", next, now.Add(cfg.RetryMin))
	}
}

// BenchmarkDue reads the outbox for delivery when it holds a month of
// delivered notifications (30 days is its TTL) and one pending: what each
// delivery pass costs a long-running deployment. Reports the pass's p50.
func BenchmarkDue(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	ctx := context.Background()
	const delivered = 50_000
	for i, state := range []string{"pending", "sending", "sent"} {
		if err := conn.Exec(ctx, `INSERT INTO notification_outbox (id, receiver, payload, state, attempts, next_attempt_at, last_error, created_at, updated_at, version, term)
			SELECT concat('old-', toString(number)), 'ops', repeat('x', 2000), '`+state+`', 1, now64(3), '', now64(3) - toIntervalSecond(number * 50), now64(3), `+strconv.Itoa(i+1)+`, 0
			FROM numbers(`+strconv.Itoa(delivered)+`)`); err != nil {
			b.Fatal(err)
		}
	}
	st := NewStore(conn)
	now := time.Now().Truncate(time.Millisecond)
	if err := st.UpdateOutbox(ctx, OutboxItem{Notification: Notification{ID: "new", Receiver: "ops", CreatedAt: now},
		State: "pending", NextAttempt: now, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		items, err := st.Due(ctx, now, 200)
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != 1 || items[0].Notification.ID != "new" {
			b.Fatalf("due: %d items, want the pending one", len(items))
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
}
