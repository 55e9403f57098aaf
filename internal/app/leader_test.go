package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// TestLeaderFencedOff runs the alerting of three members over one store
// with their leadership given by hand, as a rebalance can leave it: two
// members at a time believe they lead. The member whose term is newest
// and whose generation is highest leads; the other steps back and stays
// back, also when a member of an older generation opens a term after it.
func TestLeaderFencedOff(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	// One cheap rule: the test is about who leads, not about evaluation.
	cfg, _ := leaderTestSetup(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	type member struct {
		a     *alerting
		leads atomic.Bool
	}
	start := func(generation int64) *member {
		t.Helper()
		m := &member{}
		a, err := newAlerting(ctx, cfg, conn, func() (int64, bool) { return generation, m.leads.Load() },
			prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.tickTimeout, a.fenceDelay = 2*time.Second, 300*time.Millisecond
		m.a = a
		m.leads.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.run(ctx)
		}()
		return m
	}
	var a, b, c *member
	leading := func(m *member) bool {
		var out dto.Metric
		if err := m.a.m.leader.Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetGauge().GetValue() == 1
	}
	settle := func(what string, want ...bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ok := true
			for i, m := range []*member{a, b, c}[:len(want)] {
				if m != nil && leading(m) != want[i] {
					ok = false
				}
			}
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("timed out waiting until %s", what)
	}
	a = start(1)
	settle("the first member leads", true)
	b = start(2)
	settle("the member of the newer generation leads, the other steps back", false, true)
	// A member of an older generation that still believes it leads opens a
	// term after the leader and fences it off; the leader, of the newer
	// generation, takes the lead back with a newer term still and fences
	// the other off for good. Until that has happened, the gauges can show
	// the old leader still leading (it notices at its next tick), so the
	// end state is the newest term being the leader's, above the one the
	// older member opened, with only the leader leading for a second.
	c = start(1)
	deadline := time.Now().Add(60 * time.Second)
	var held time.Time
	for {
		newest, err := b.a.store.NewestTerm(ctx)
		if err != nil {
			t.Fatal(err)
		}
		settled := newest.Term >= 4 && newest.Generation == 2 && newest.Member == b.a.member &&
			!leading(a) && leading(b) && !leading(c)
		switch {
		case !settled:
			held = time.Time{}
		case held.IsZero():
			held = time.Now()
		case time.Since(held) >= time.Second:
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("newest term %+v; leading: a %v, b %v, c %v; want a term above 3 of generation 2 by %s, and only b leading",
				newest, leading(a), leading(b), leading(c), b.a.member)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEvaluationRecorded: the leader records its evaluations for the
// wall's alert banner, but only ticks in which every rule was evaluated:
// with a rule that fails, the banner's evaluation time stays as it was.
func TestEvaluationRecorded(t *testing.T) {
	store := chtest.Start(t)
	for _, fails := range []bool{false, true} {
		_, conn := store.Database(t)
		cfg, rs := leaderTestSetup(t, conn)
		ctx, cancel := context.WithCancel(context.Background())
		a, err := newAlerting(ctx, cfg, conn, func() (int64, bool) { return 1, true },
			prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.tickTimeout, a.fenceDelay = 2*time.Second, 100*time.Millisecond
		source := &countingSource{fail: fails}
		if a.evaluator, err = rules.NewEvaluator(source, noSpikes{}, rs, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.run(ctx)
		}()
		var last time.Time
		deadline := time.Now().Add(30 * time.Second)
		for source.calls.Load() < 10 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if last, err = a.store.LastEvaluation(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		switch {
		case source.calls.Load() < 10:
			t.Fatalf("fails=%v: %d rule evaluations in 30 s", fails, source.calls.Load())
		case fails && !last.IsZero():
			t.Errorf("with a failing rule, an evaluation was recorded at %s", last)
		case !fails && (last.IsZero() || time.Since(last) > 10*time.Second):
			t.Errorf("after %d evaluations, the last recorded is %s", source.calls.Load(), last)
		}
	}
}

// leaderTestSetup returns the configuration of the alerting of these
// tests, a 200 ms tick and no rollup, with leadership given by hand, and
// stores its one cheap rule in conn's database.
func leaderTestSetup(t *testing.T, conn driver.Conn) (config.Config, *rules.RuleSet) {
	t.Helper()
	cfg := config.Default()
	cfg.Rules.Tick = 200 * time.Millisecond
	cfg.KPI.Rollup.Disabled = true
	cfg.Ingest.Brokers = []string{"127.0.0.1:9"} // never dialled: leadership is given by hand
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src := []byte("rules:\n  - {name: flood, kind: threshold, metric: complaints, window: 1m, op: \">\", value: 3, severity: critical}\n")
	rs, err := rules.ParseRules(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rules.NewRuleStore(conn).Save(context.Background(), src, rs, "api", "test"); err != nil {
		t.Fatal(err)
	}
	return cfg, rs
}

// countingSource answers no values, or fails, and counts the calls.
type countingSource struct {
	fail  bool
	calls atomic.Int64
}

func (s *countingSource) Scoped(context.Context, string, string, time.Time, time.Time, string) ([]rules.ScopedValue, error) {
	s.calls.Add(1)
	if s.fail {
		return nil, errors.New("the metric cannot be read")
	}
	return nil, nil
}

// TestLeaderFollowsStoredRules: a rule set another instance stores is in
// force on the leader within two ticks, read with its term check (the
// session runs here without the rule book's own follow loop).
func TestLeaderFollowsStoredRules(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	cfg, _ := leaderTestSetup(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := newAlerting(ctx, cfg, conn, func() (int64, bool) { return 1, true },
		prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.tickTimeout, a.fenceDelay = 2*time.Second, 100*time.Millisecond
	done := make(chan error, 1)
	go func() { done <- a.session(ctx, 1) }()
	names := func() string {
		var n []string
		for _, r := range a.evaluator.Rules().Rules {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(); got != "flood" {
		t.Fatalf("rules at start = %s, want flood", got)
	}
	// Once the leader has evaluated, another instance stores a new set.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if at, err := a.store.LastEvaluation(ctx); err == nil && !at.IsZero() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	src := []byte("rules:\n  - {name: surge, kind: threshold, metric: complaints, window: 5m, op: \">\", value: 9, severity: warning}\n")
	rs, err := rules.ParseRules(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rules.NewRuleStore(conn).Save(ctx, src, rs, "api", "other instance"); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()
	for names() != "surge" && time.Since(stored) < 5*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(stored)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the leader session ended with %v, want it cancelled", err)
	}
	if got := names(); got != "surge" {
		t.Fatalf("rules on the leader 5 s after another instance stored a set = %s, want surge", got)
	}
	t.Logf("in force on the leader %s after it was stored (tick %s)", took.Round(time.Millisecond), cfg.Rules.Tick)
}

// TestLeaderHoldsWhileIngestBehind: while the ingest has not caught up
// for longer than rules.max_ingest_delay, the leader evaluates no rule
// and records no evaluation (the wall's banner turns unknown rather than
// show an all-clear of half a window); once it has caught up, it
// evaluates and records again.
func TestLeaderHoldsWhileIngestBehind(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	cfg, rs := leaderTestSetup(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	a, err := newAlerting(ctx, cfg, conn, func() (int64, bool) { return 1, true }, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.tickTimeout, a.fenceDelay = 2*time.Second, 100*time.Millisecond
	source := &countingSource{}
	if a.evaluator, err = rules.NewEvaluator(source, noSpikes{}, rs, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	var behind atomic.Int64
	behind.Store(int64(time.Minute))
	a.behind = func(time.Time) time.Duration { return time.Duration(behind.Load()) }
	done := make(chan error, 1)
	go func() { done <- a.session(ctx, 1) }()
	held := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "cockpit_rule_ticks_held_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for held() < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := held(); n < 5 {
		t.Fatalf("%v ticks held in 30 s with the ingest a minute behind", n)
	}
	if n := source.calls.Load(); n != 0 {
		t.Errorf("%d rule evaluations while the ingest was a minute behind", n)
	}
	if at, err := a.store.LastEvaluation(ctx); err != nil || !at.IsZero() {
		t.Errorf("an evaluation was recorded while held: %s, %v", at, err)
	}
	behind.Store(int64(time.Second)) // caught up
	for time.Now().Before(deadline) {
		if at, err := a.store.LastEvaluation(ctx); err == nil && !at.IsZero() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the leader session ended with %v, want it cancelled", err)
	}
	if at, err := a.store.LastEvaluation(context.Background()); err != nil || at.IsZero() || source.calls.Load() == 0 {
		t.Errorf("after the ingest caught up: last evaluation %s (%v), %d rule evaluations", at, err, source.calls.Load())
	}
}
