package rules

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRulesValid(t *testing.T) {
	rs, err := ParseRules([]byte(`
rules:
  - name: first_response_slow
    kind: threshold
    metric: first_response_seconds
    stat: p90
    window: 5m
    by: queue
    op: ">"
    value: 30
    for: 2m
    keep_firing_for: 5m
    min_volume: 10
    severity: warning
    labels: {team: ops}
  - name: complaint_spike
    kind: spike
    severity: critical
    spike_windows: [5m, 15m, 30m]
    min_count: 5
  - name: resolution_sliding
    kind: trend
    metric: resolution_rate
    by: business_line
    window: 10m
    windows: 3
    min_drop: 0.05
    min_volume: 30
    severity: warning
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 3 || rs.Rules[0].Line() != 3 || rs.Rules[2].Line() != 21 {
		t.Fatalf("rules/lines wrong: %d rules, lines %d %d", len(rs.Rules), rs.Rules[0].Line(), rs.Rules[2].Line())
	}
	r := rs.Rules[0]
	if time.Duration(r.Window) != 5*time.Minute || time.Duration(r.For) != 2*time.Minute || *r.Value != 30 || r.Labels["team"] != "ops" {
		t.Fatalf("decoded rule wrong: %+v", r)
	}
}

func TestParseRulesErrors(t *testing.T) {
	head := "rules:\n  - name: r1\n    severity: warning\n"
	cases := []struct {
		name, src, want string
	}{
		{"empty", "", "empty"},
		{"not yaml", "rules: [", "rules:"},
		{"unknown field", head + "    kind: threshold\n    metirc: x\n", "line 5: field metirc not found"},
		{"bad duration", head + "    kind: threshold\n    metric: resolution_rate\n    window: soon\n", `line 6: "soon" is not a duration`},
		{"no kind", head, "line 2: rule \"r1\": kind: is required"},
		{"unknown metric", head + "    kind: threshold\n    metric: happiness\n    window: 1m\n    op: '>'\n    value: 1\n", `unknown metric "happiness"`},
		{"quantile needs stat", head + "    kind: threshold\n    metric: first_response_seconds\n    window: 1m\n    op: '>'\n    value: 1\n", "needs a stat"},
		{"stat on ratio", head + "    kind: threshold\n    metric: resolution_rate\n    stat: p90\n    window: 1m\n    op: '<'\n    value: 1\n", "only quantile metrics"},
		{"bad op", head + "    kind: threshold\n    metric: resolution_rate\n    window: 1m\n    op: '=>'\n    value: 1\n", "op: must be one of"},
		{"no value", head + "    kind: threshold\n    metric: resolution_rate\n    window: 1m\n    op: '<'\n", "value: is required"},
		{"bad by", head + "    kind: threshold\n    metric: resolution_rate\n    window: 1m\n    op: '<'\n    value: 1\n    by: planet\n", "by: must be one of"},
		{"trend one window", head + "    kind: trend\n    metric: resolution_rate\n    window: 1m\n    windows: 1\n", "from 2 to 48"},
		{"spike with metric", head + "    kind: spike\n    metric: complaints\n", "do not apply"},
		{"bad severity", "rules:\n  - name: r1\n    severity: huge\n    kind: spike\n", "severity: must be one of"},
		{"bad name", "rules:\n  - name: R 1\n    severity: info\n    kind: spike\n", "name: must be lowercase"},
		{"reserved label", head + "    kind: spike\n    labels: {region: x}\n", "not a usable label"},
		{"duplicate", "rules:\n  - {name: a, kind: spike, severity: info}\n  - {name: a, kind: spike, severity: info}\n", "line 3: rule \"a\": name: duplicate of the rule on line 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// fakeSource answers Scoped from a function of the window.
type fakeSource struct {
	mu    sync.Mutex
	calls int
	fn    func(metric, stat string, from, to time.Time, by string) []ScopedValue
	err   error
}

func (f *fakeSource) Scoped(_ context.Context, metric, stat string, from, to time.Time, by string) ([]ScopedValue, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.fn(metric, stat, from, to, by), nil
}

type noSpikes struct{}

func (noSpikes) EvaluateSpikeRule(context.Context, time.Time, Rule) ([]Candidate, error) {
	return nil, nil
}

func ptr(v float64) *float64 { return &v }

func mustRules(t *testing.T, src string) *RuleSet {
	t.Helper()
	rs, err := ParseRules([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestThresholdRule(t *testing.T) {
	src := &fakeSource{fn: func(metric, stat string, from, to time.Time, by string) []ScopedValue {
		if metric != "first_response_seconds" || stat != "p90" || by != "queue" || to.Sub(from) != 5*time.Minute {
			t.Errorf("unexpected query %s %s %s %v", metric, stat, by, to.Sub(from))
		}
		return []ScopedValue{
			{Key: "vip", Value: ptr(42), Volume: 50},
			{Key: "billing-l1", Value: ptr(12), Volume: 500},
			{Key: "tiny", Value: ptr(99), Volume: 3},   // below min_volume
			{Key: "empty", Value: nil, Volume: 0},      // no value
			{Key: "edge", Value: ptr(30), Volume: 100}, // not > 30
		}
	}}
	rs := mustRules(t, `rules:
  - {name: frt, kind: threshold, metric: first_response_seconds, stat: p90, window: 5m, by: queue, op: ">", value: 30, min_volume: 10, severity: warning, for: 2m, labels: {team: ops}}`)
	e, err := NewEvaluator(src, noSpikes{}, rs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.Evaluate(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("candidates = %+v, want only vip", cs)
	}
	c := cs[0]
	if c.Labels["queue"] != "vip" || c.Labels["team"] != "ops" || c.Value != 42 || c.Expected != 30 || c.For != 2*time.Minute {
		t.Fatalf("candidate = %+v", c)
	}
	if c.Explanation != "queue=vip: first_response_seconds p90 42 > 30 over 5m0s (n=50)" {
		t.Fatalf("explanation = %q", c.Explanation)
	}
}

func TestTrendRule(t *testing.T) {
	// Per window (oldest first): mobile falls steadily, billing falls then
	// recovers, broadband falls too little, tv falls on thin volume.
	series := map[string][]ScopedValue{
		"mobile":    {{Value: ptr(0.80), Volume: 100}, {Value: ptr(0.72), Volume: 90}, {Value: ptr(0.61), Volume: 95}},
		"billing":   {{Value: ptr(0.80), Volume: 100}, {Value: ptr(0.70), Volume: 90}, {Value: ptr(0.75), Volume: 95}},
		"broadband": {{Value: ptr(0.80), Volume: 100}, {Value: ptr(0.79), Volume: 90}, {Value: ptr(0.78), Volume: 95}},
		"tv":        {{Value: ptr(0.80), Volume: 5}, {Value: ptr(0.50), Volume: 4}, {Value: ptr(0.20), Volume: 5}},
	}
	src := &fakeSource{fn: func(metric, stat string, from, to time.Time, by string) []ScopedValue {
		i := 2 - int(t0.Sub(to)/(10*time.Minute))
		var out []ScopedValue
		for k, s := range series {
			v := s[i]
			v.Key = k
			out = append(out, v)
		}
		return out
	}}
	rs := mustRules(t, `rules:
  - {name: slide, kind: trend, metric: resolution_rate, by: business_line, window: 10m, windows: 3, min_drop: 0.05, min_volume: 30, severity: warning}`)
	e, _ := NewEvaluator(src, noSpikes{}, rs, slog.New(slog.DiscardHandler))
	cs, err := e.Evaluate(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Labels["business_line"] != "mobile" {
		t.Fatalf("candidates = %+v, want only mobile", cs)
	}
	if cs[0].Value != 0.61 || cs[0].Expected != 0.80 || !strings.Contains(cs[0].Explanation, "0.800 → 0.720 → 0.610") {
		t.Fatalf("candidate = %+v", cs[0])
	}
	if src.calls != 3 {
		t.Fatalf("trend read %d windows, want 3", src.calls)
	}
}

func TestEvaluateReportsFailingRules(t *testing.T) {
	src := &fakeSource{err: errors.New("store down")}
	rs := mustRules(t, `rules:
  - {name: a, kind: threshold, metric: resolution_rate, window: 1m, op: "<", value: 0.5, severity: info}`)
	e, _ := NewEvaluator(src, noSpikes{}, rs, slog.New(slog.DiscardHandler))
	if _, err := e.Evaluate(context.Background(), t0); err == nil || !strings.Contains(err.Error(), "rule a: store down") {
		t.Fatalf("err = %v", err)
	}
}

func TestBacktestEpisodes(t *testing.T) {
	// The metric is above threshold from 10:10 to 10:24 (inclusive of
	// evaluations at 10:10, 10:15, 10:20) and again at 10:40.
	src := &fakeSource{fn: func(metric, stat string, from, to time.Time, by string) []ScopedValue {
		m := to.Sub(t0).Minutes()
		v := 10.0
		if (m >= 10 && m < 25) || m == 40 {
			v = 50 + m
		}
		return []ScopedValue{{Key: "", Value: ptr(v), Volume: 100}}
	}}
	rs := mustRules(t, `rules:
  - {name: hot, kind: threshold, metric: abandon_rate, window: 5m, op: ">", value: 20, severity: critical, for: 10m}`)
	e, _ := NewEvaluator(src, noSpikes{}, rs, slog.New(slog.DiscardHandler))
	eps, err := e.Backtest(context.Background(), t0, t0.Add(time.Hour), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 {
		t.Fatalf("episodes = %+v", eps)
	}
	if !eps[0].Start.Equal(t0.Add(10*time.Minute)) || !eps[0].End.Equal(t0.Add(20*time.Minute)) || !eps[0].Fired || eps[0].Peak != 70 {
		t.Errorf("first episode = %+v", eps[0])
	}
	if !eps[1].Start.Equal(t0.Add(40*time.Minute)) || eps[1].Fired {
		t.Errorf("second episode = %+v (a single evaluation cannot satisfy for: 10m)", eps[1])
	}
	if _, err := e.Backtest(context.Background(), t0, t0, time.Minute); err == nil {
		t.Error("empty range accepted")
	}
}

func TestWatchRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - {name: a, kind: spike, severity: info}\n")
	var mu sync.Mutex
	var got []*RuleSet
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchRules(ctx, path, 10*time.Millisecond, func(rs *RuleSet) {
			mu.Lock()
			got = append(got, rs)
			mu.Unlock()
		}, slog.New(slog.DiscardHandler))
	}()
	wait := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d reloads, want %d", l, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(1)
	write("rules:\n  - {name: a, kind: bogus, severity: info}\n") // rejected
	time.Sleep(100 * time.Millisecond)
	write("rules:\n  - {name: b, kind: spike, severity: info}\n  - {name: c, kind: spike, severity: info}\n")
	wait(2)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1].Rules[0].Name != "b" || len(got[1].Rules) != 2 {
		t.Fatalf("reloads = %d, last = %+v (the bad file must not be applied)", len(got), got[len(got)-1])
	}
}

func TestDefaultRules(t *testing.T) {
	rs, err := DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[RuleKind]int{}
	for _, r := range rs.Rules {
		kinds[r.Kind]++
	}
	if kinds[KindThreshold] < 4 || kinds[KindSpike] != 1 || kinds[KindTrend] != 1 {
		t.Fatalf("default rule kinds = %v", kinds)
	}
}
