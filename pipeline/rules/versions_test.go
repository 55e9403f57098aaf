package rules

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/internal/chtest"
)

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct{ name, a, b, want string }{
		{"same", "a\nb\n", "a\nb\n", ""},
		{"from nothing", "", "a\nb\n", "+1: a\n+2: b\n"},
		{"changed line", "a\nb\nc\n", "a\nB\nc\n", "-2: b\n+2: B\n"},
		{"inserted", "a\nc\n", "a\nb\nc\n", "+2: b\n"},
		{"removed", "a\nb\nc\n", "a\nc\n", "-2: b\n"},
		{"moved apart", "x\na\ny\n", "a\nz\n", "-1: x\n-3: y\n+2: z\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LineDiff(tc.a, tc.b); got != tc.want {
				t.Errorf("LineDiff = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRuleStoreVersions stores two versions of the rule set and reads them
// back through a second store (as another instance, or the same one
// after a restart, does): the newest is in force, the history says who
// changed what.
func TestRuleStoreVersions(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	s := NewRuleStore(conn)
	if _, ok, err := s.Latest(ctx); err != nil || ok {
		t.Fatalf("an empty store has a latest version (%v, %v)", ok, err)
	}
	v1src := DefaultRulesYAML()
	v1, err := s.Save(ctx, v1src, mustParse(t, v1src), "api", "lin")
	if err != nil {
		t.Fatal(err)
	}
	v2src := []byte(strings.Replace(string(v1src), "severity: warning", "severity: critical", 1))
	if string(v2src) == string(v1src) {
		t.Fatal("the built-in rules have no warning rule to change")
	}
	v2, err := s.Save(ctx, v2src, mustParse(t, v2src), "api", "wang")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version <= v1.Version {
		t.Fatalf("versions %d then %d do not grow", v1.Version, v2.Version)
	}
	again := NewRuleStore(conn)
	latest, ok, err := again.Latest(ctx)
	if err != nil || !ok || latest.Version != v2.Version || latest.YAML != string(v2src) || latest.Author != "wang" {
		t.Fatalf("latest = %+v (%v, %v), want version %d by wang", latest, ok, err, v2.Version)
	}
	if n, err := again.LatestVersion(ctx); err != nil || n != v2.Version {
		t.Errorf("LatestVersion = %d, %v; want %d", n, err, v2.Version)
	}
	hist, err := again.History(ctx, 10)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history = %+v, %v; want two versions", hist, err)
	}
	if hist[0].Version != v2.Version || hist[1].Author != "lin" || hist[0].YAML != "" {
		t.Errorf("history order or content wrong: %+v", hist)
	}
	if d := hist[0].Diff; !strings.HasPrefix(d, "-") || !strings.Contains(d, "severity: warning\n+") ||
		!strings.Contains(d, "severity: critical") || strings.Count(d, "\n") != 2 {
		t.Errorf("diff of the second version = %q, want the one changed line out and in", hist[0].Diff)
	}
	if hist[1].Rules != len(mustParse(t, v1src).Rules) || hist[1].Source != "api" {
		t.Errorf("first version = %+v", hist[1])
	}
}

func mustParse(t *testing.T, src []byte) *RuleSet {
	t.Helper()
	rs, err := ParseRules(src)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// slowRuleRun returns an evaluator of one threshold rule ("slow") over
// src, for Run, with its metrics on a registry of their own.
func slowRuleRun(t *testing.T, src RuleSource) (*Evaluator, *prometheus.Registry, *RuleMetrics) {
	t.Helper()
	rs := mustRules(t, `rules:
  - {name: slow, kind: threshold, metric: first_response_seconds, stat: p90, window: 5m, op: ">", value: 30, severity: warning}
`)
	e, err := NewEvaluator(src, noSpikes{}, rs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewRuleMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return e, reg, m
}

// TestRunOneTickAtATime makes one tick take several tick periods and
// another outlast its deadline: ticks never overlap, the ones that came
// due meanwhile are skipped and counted, the abandoned one is counted
// and not delivered.
func TestRunOneTickAtATime(t *testing.T) {
	src := &fakeSource{fn: func(string, string, time.Time, time.Time, string) []ScopedValue { return nil }}
	e, reg, m := slowRuleRun(t, src)
	const tick = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls, inFlight, overlaps, delivered atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, tick, 500*time.Millisecond, m, nil, func(tctx context.Context, ev Evaluation) error {
			if inFlight.Add(1) > 1 {
				overlaps.Add(1)
			}
			defer inFlight.Add(-1)
			switch calls.Add(1) {
			case 1:
				time.Sleep(350 * time.Millisecond) // three more ticks come due
			case 2:
				<-tctx.Done() // outlasts the deadline
				return tctx.Err()
			case 5:
				cancel()
			}
			if !ev.Evaluated["slow"] {
				return errors.New("rule not evaluated")
			}
			delivered.Add(1)
			return nil
		})
	}()
	<-done
	if overlaps.Load() != 0 {
		t.Errorf("%d ticks overlapped another", overlaps.Load())
	}
	// Tick 1 skipped at least two boundaries; tick 2 was abandoned and the
	// boundaries of its 500 ms skipped too.
	if got := gathered(t, reg, "cockpit_rule_ticks_skipped_total"); got < 2+1+3 {
		t.Errorf("skipped ticks = %v, want at least 6", got)
	}
	if got := gathered(t, reg, "cockpit_rule_evaluation_duration_seconds"); got < 4 {
		t.Errorf("rule evaluations timed = %v, want at least 4", got)
	}
	if delivered.Load() < 3 {
		t.Errorf("%d evaluations delivered, want at least 3", delivered.Load())
	}
}

// gathered returns the value of a counter, or the sample count of a
// histogram, summed over its series.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestRunHolds: a tick at which hold says no is neither evaluated nor
// delivered, and is counted as held (not skipped); evaluation resumes at
// the first tick hold allows.
func TestRunHolds(t *testing.T) {
	var asked atomic.Int32
	src := &fakeSource{fn: func(string, string, time.Time, time.Time, string) []ScopedValue { asked.Add(1); return nil }}
	e, reg, m := slowRuleRun(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holds, askedWhileHeld, delivered atomic.Int32
	hold := func() error {
		if holds.Add(1) <= 4 {
			if asked.Load() != 0 {
				askedWhileHeld.Store(asked.Load())
			}
			return errors.New("behind")
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, 200*time.Millisecond, time.Second, m, hold, func(context.Context, Evaluation) error {
			if delivered.Add(1) == 2 {
				cancel()
			}
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not deliver twice within 10 s")
	}
	if n := askedWhileHeld.Load(); n != 0 {
		t.Errorf("the source was asked %d times while the ticks were held", n)
	}
	if got := gathered(t, reg, "cockpit_rule_ticks_held_total"); got != 4 {
		t.Errorf("held ticks = %v, want 4", got)
	}
	if got := gathered(t, reg, "cockpit_rule_ticks_skipped_total"); got != 0 {
		t.Errorf("skipped ticks = %v, want 0", got)
	}
	if asked.Load() == 0 || delivered.Load() != 2 {
		t.Errorf("after the hold: source asked %d times, %d evaluations delivered", asked.Load(), delivered.Load())
	}
}
