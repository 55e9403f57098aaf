package pipeline

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestRulesBacktestComcast runs the rules engine's backtest, with a spike
// rule written as an operator would, over the real Comcast complaints of
// 2015 (region = state): the 23–24 June surge must be among the episodes,
// as a national alert, and every episode is listed in the log.
func TestRulesBacktestComcast(t *testing.T) {
	recs := spikeLoadComcast(t, true)
	h := NewSpikeMemoryHistory(recs, time.Date(2015, 4, 1, 0, 0, 0, 0, time.UTC))
	rs := mustRules(t, `rules:
  - name: complaint_spike
    kind: spike
    severity: critical
    spike_windows: [6h, 24h]
    for: 2h
`)
	e, err := NewEvaluator(&fakeSource{}, NewSpikeRules(h), rs, slog.New(slog.DiscardHandler))
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
