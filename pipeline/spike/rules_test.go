package spike_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
	"github.com/cockpit-cs/cockpit/pipeline/spike"
)

// The rules package imports this one, so the tests that need a rule live
// in this external test package.

func init() {
	spike.BuiltinConfig = func(t testing.TB) spike.Config {
		t.Helper()
		rs, err := rules.DefaultRules()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs.Rules {
			if r.Kind == rules.KindSpike {
				return rules.SpikeConfigOf(r)
			}
		}
		t.Fatal("no spike rule in rules.default.yaml")
		return spike.Config{}
	}
}

// noSource is a rule source for rule sets without threshold or trend
// rules: nothing asks it.
type noSource struct{}

func (noSource) Scoped(context.Context, string, string, time.Time, time.Time, string) ([]rules.ScopedValue, error) {
	return nil, nil
}

// TestRulesBacktestComcast runs the rules engine's backtest, with a spike
// rule written as an operator would, over the real Comcast complaints of
// 2015 (region = state): the 23–24 June surge must be among the episodes,
// as a national alert, and every episode is listed in the log.
func TestRulesBacktestComcast(t *testing.T) {
	recs := spike.LoadComcast(t, true)
	h := spike.NewMemoryHistory(recs, time.Date(2015, 4, 1, 0, 0, 0, 0, time.UTC))
	rs, err := rules.ParseRules([]byte(`rules:
  - name: complaint_spike
    kind: spike
    severity: critical
    spike_windows: [6h, 24h]
    for: 2h
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.NewEvaluator(noSource{}, rules.NewSpikeRules(h), rs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	eps, err := e.Backtest(context.Background(), time.Date(2015, 4, 2, 0, 0, 0, 0, time.UTC), time.Date(2015, 7, 1, 0, 0, 0, 0, time.UTC), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	surgeFrom := time.Date(2015, 6, 23, 0, 0, 0, 0, time.UTC)
	surgeTo := time.Date(2015, 6, 26, 0, 0, 0, 0, time.UTC)
	found := false
	for _, ep := range eps {
		t.Logf("%s .. %s fired=%v %v peak %.0f expected %.1f: %s", ep.Start.Format("01-02 15:04"), ep.End.Format("01-02 15:04"),
			ep.Fired, ep.Labels, ep.Peak, ep.Expected, ep.Explanation)
		if ep.Start.Before(surgeTo) && ep.End.After(surgeFrom) && ep.Labels["scope"] == "national" && ep.Fired {
			found = true
		}
		if ep.Start.Before(time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("alert in April or May, when nothing unusual happened: %+v", ep)
		}
	}
	if !found {
		t.Fatal("the 23–24 June 2015 surge did not fire a national alert")
	}
}
