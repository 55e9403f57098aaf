package rules_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
	"github.com/cockpit-cs/cockpit/pipeline/spike"
	"github.com/cockpit-cs/cockpit/schemas"
)

// spikeStoreComplaints inserts weeks of complaints over regions (mean
// hourly rates) with a daily shape, ending at end, plus a ×6 rise in
// regions[0] during [rise, rise+20m), and a second delivery of every 50th
// complaint. It returns the rule set with the built-in spike rule only.
func spikeStoreComplaints(tb testing.TB, conn driver.Conn, seed uint64, rates []float64, weeks int, end, rise time.Time) *rules.RuleSet {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	start := end.Add(-time.Duration(weeks) * 7 * 24 * time.Hour)
	var events []schemas.Event
	for ri, rate := range rates {
		region := fmt.Sprintf("region-%02d", ri)
		t := start
		for {
			t = t.Add(time.Duration(rng.ExpFloat64() / (12 * rate) * float64(time.Hour)))
			if !t.Before(end) {
				break
			}
			h := float64(t.Hour()) + float64(t.Minute())/60
			l := rate * (0.3 + 1.7*math.Pow(math.Sin(math.Pi*h/24), 2))
			if ri == 0 && !t.Before(rise) && t.Before(rise.Add(20*time.Minute)) {
				l *= 6
			}
			if rng.Float64()*12*rate < l {
				events = append(events, schemas.Event{EventID: fmt.Sprintf("cp-%d-%d", ri, len(events)), SchemaVersion: 1,
					Type: schemas.ComplaintFiled, OccurredAt: t.Truncate(time.Millisecond),
					ConversationID: fmt.Sprintf("c-%d", len(events)), Region: region})
			}
		}
	}
	for i := 0; i < len(events); i += 50 {
		events = append(events, events[i])
	}
	for i := 0; i < len(events); i += 20000 {
		insertEvents(tb, conn, events[i:min(i+20000, len(events))])
	}
	def, err := rules.DefaultRules()
	if err != nil {
		tb.Fatal(err)
	}
	rs := &rules.RuleSet{}
	for _, r := range def.Rules {
		if r.Kind == rules.KindSpike {
			rs.Rules = append(rs.Rules, r)
		}
	}
	if len(rs.Rules) != 1 {
		tb.Fatalf("built-in spike rules: %d", len(rs.Rules))
	}
	return rs
}

// TestSpikeBacktestAgreesWithLive: the spike rule evaluated live over the
// store at each minute of two hours around a regional rise, and the same
// times evaluated by a backtest (which reads the complaint history once),
// give the same candidates one for one (labels, count, expected,
// explanation); the backtest's episodes start where the live findings do.
func TestSpikeBacktestAgreesWithLive(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	end := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	rise := end.Add(-90*time.Minute + 17*time.Second)
	rs := spikeStoreComplaints(t, conn, 1, []float64{12, 6, 9, 20, 3}, 3, end, rise)
	live := rules.NewSpikeRules(rules.NewClickHouseSpikeHistory(conn))
	ctx := context.Background()
	from, to := end.Add(-2*time.Hour), end
	bt, err := live.ForBacktest(ctx, rs.Rules, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if bt == rules.SpikeRuleEvaluator(live) {
		t.Fatal("the backtest evaluator reads the store at every step")
	}
	rule := rs.Rules[0]
	firstLive := map[string]time.Time{}
	findings := 0
	for now := from; now.Before(to); now = now.Add(time.Minute) {
		want, err := live.EvaluateSpikeRule(ctx, now, rule)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bt.EvaluateSpikeRule(ctx, now, rule)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: backtest %+v\nlive %+v", now.Format("15:04"), got, want)
		}
		for _, c := range want {
			findings++
			if _, ok := firstLive[c.Key()]; !ok {
				firstLive[c.Key()] = now
			}
			t.Logf("%s live: %s", now.Format("15:04"), c.Explanation)
		}
	}
	if findings == 0 {
		t.Fatal("no finding in two hours around a ×6 rise: nothing was compared")
	}

	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.NewEvaluator(rules.NewKPIRuleSource(kpis), live, rs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	eps, err := e.Backtest(ctx, from, to, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, ep := range eps {
		c := rules.Candidate{Rule: ep.Rule, Labels: ep.Labels}
		starts = append(starts, c.Key()+"@"+ep.Start.Format("15:04"))
	}
	var want []string
	for k, at := range firstLive {
		want = append(want, k+"@"+at.Format("15:04"))
	}
	slices.Sort(starts)
	slices.Sort(want)
	// A key can fire, stop and fire again: its later episodes are extra
	// starts, so every first live finding must be an episode start.
	for _, w := range want {
		if !slices.Contains(starts, w) {
			t.Errorf("live first fired %q; backtest episodes start at %v", w, starts)
		}
	}
}

// BenchmarkSpikeRuleBacktestWeek: the built-in spike rule backtested over
// 7 days at a 1-minute step (10,080 evaluations) through the rules
// engine, over the store (5 weeks of complaints, 20 regions); the history
// is read once.
func BenchmarkSpikeRuleBacktestWeek(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	end := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	rates := make([]float64, 20)
	for i := range rates {
		rates[i] = 25 * math.Pow(50, -float64(i)/19) // the rise goes to the first, 25 an hour
	}
	rs := spikeStoreComplaints(b, conn, 2, rates, 5, end, end.Add(-50*time.Hour))
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := rules.NewEvaluator(rules.NewKPIRuleSource(kpis),
		rules.NewSpikeRules(rules.NewClickHouseSpikeHistory(conn)), rs, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var eps []rules.Episode
	for b.Loop() {
		if eps, err = e.Backtest(ctx, end.Add(-7*24*time.Hour), end, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/7d-backtest")
	b.ReportMetric(float64(len(eps)), "episodes")
}

// countingHistory counts the reads of a history.
type countingHistory struct {
	*spike.MemoryHistory
	reads int
}

func (h *countingHistory) SpikeCounts(ctx context.Context, ranges []spike.Range) ([]map[string]float64, error) {
	h.reads++
	return h.MemoryHistory.SpikeCounts(ctx, ranges)
}

// TestSpikeStep: a spike rule is judged once per point of the SpikeStep
// grid, at that point: the ticks until the next point repeat the
// judgement without reading the history again, and a complaint timed
// after the point waits for the next one.
func TestSpikeStep(t *testing.T) {
	end := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 9))
	var recs []spike.Record
	for at := end.Add(-21 * 24 * time.Hour); at.Before(end.Add(-11 * time.Minute)); at = at.Add(time.Duration(rng.ExpFloat64() * float64(5*time.Minute))) {
		recs = append(recs, spike.Record{Region: fmt.Sprintf("r%d", rng.IntN(4)), At: at})
	}
	// A burst in r0 in the last ten minutes, and one more complaint
	// three seconds past the grid point the ticks below share.
	for i := range 30 {
		recs = append(recs, spike.Record{Region: "r0", At: end.Add(-9*time.Minute + time.Duration(i)*18*time.Second)})
	}
	recs = append(recs, spike.Record{Region: "r0", At: end.Add(3 * time.Second)})
	h := &countingHistory{MemoryHistory: spike.NewMemoryHistory(recs, end.Add(-21*24*time.Hour))}
	def, err := rules.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	var rule rules.Rule
	for _, r := range def.Rules {
		if r.Kind == rules.KindSpike {
			rule = r
		}
	}
	s := rules.NewSpikeRules(h)
	ctx := context.Background()
	var first []rules.Candidate
	for _, d := range []time.Duration{0, 4 * time.Second, 9*time.Second + 999*time.Millisecond} {
		cs, err := s.EvaluateSpikeRule(ctx, end.Add(d), rule)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			t.Fatalf("+%s: no finding for 30 complaints in ten minutes", d)
		}
		for i := range cs {
			if !cs[i].At.Equal(end.Add(d)) {
				t.Errorf("+%s: candidate at %s, want the tick's time", d, cs[i].At)
			}
			cs[i].At = time.Time{}
		}
		if first == nil {
			first = cs
		} else if !reflect.DeepEqual(cs, first) {
			t.Errorf("+%s: %+v, want the judgement at the grid point %+v", d, cs, first)
		}
	}
	if h.reads != 1 {
		t.Errorf("three ticks within one step read the history %d times, want once", h.reads)
	}
	cs, err := s.EvaluateSpikeRule(ctx, end.Add(10*time.Second), rule)
	if err != nil {
		t.Fatal(err)
	}
	if h.reads != 2 {
		t.Errorf("the next grid point read the history %d times in all, want twice", h.reads)
	}
	// What the detector itself finds for r0 at each time: the grid point
	// misses the complaint 3 s past it, a judgement at the tick would not.
	d, err := spike.NewDetector(rules.SpikeConfigOf(rule))
	if err != nil {
		t.Fatal(err)
	}
	r0 := func(at time.Time) float64 {
		fs, err := d.Evaluate(ctx, at, h.MemoryHistory)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Region == "r0" {
				return f.Count
			}
		}
		t.Fatalf("%s: no finding for r0", at)
		return 0
	}
	value := func(cs []rules.Candidate) float64 {
		for _, c := range cs {
			if c.Labels["region"] == "r0" {
				return c.Value
			}
		}
		t.Fatal("no candidate for r0")
		return 0
	}
	if at, tick := r0(end), r0(end.Add(9*time.Second)); at == tick {
		t.Fatalf("r0 counts %v at the grid point and at the tick: the test cannot tell them apart", at)
	}
	if got, want := value(first), r0(end); got != want {
		t.Errorf("within the step: r0 %v, want %v (the grid point's)", got, want)
	}
	if got, want := value(cs), r0(end.Add(10*time.Second)); got != want {
		t.Errorf("next grid point: r0 %v, want %v", got, want)
	}
}
