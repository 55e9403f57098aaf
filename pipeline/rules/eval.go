package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// Candidate is a rule condition that holds at evaluation time for one
// scope. The alert lifecycle (pending, firing, resolved, for and
// keep_firing_for) is kept by the alerts package from successive
// candidates; evaluation itself keeps no state, so a backtest is the same
// evaluation run at past times.
type Candidate struct {
	Rule     string   `json:"rule"`
	Kind     RuleKind `json:"kind"`
	Severity string   `json:"severity"`
	// Labels are the rule's labels plus the scope (e.g. queue: vip).
	Labels map[string]string `json:"labels"`
	// Value is what was measured; Expected what it was judged against
	// (the threshold, the expected count, the first window's rate).
	Value       float64       `json:"value"`
	Expected    float64       `json:"expected"`
	Explanation string        `json:"explanation"`
	Summary     string        `json:"summary,omitempty"`
	For         time.Duration `json:"for"`
	KeepFiring  time.Duration `json:"keep_firing_for"`
	At          time.Time     `json:"at"`
}

// Key is the candidate's identity: rule name and sorted labels.
func (c Candidate) Key() string {
	keys := slices.Sorted(maps.Keys(c.Labels))
	var b strings.Builder
	b.WriteString(c.Rule)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + c.Labels[k])
	}
	return b.String()
}

// ScopedValue is a metric's value for one value of a dimension ("" when
// the rule is not scoped). Value is nil when the metric has no value
// (empty denominator); Volume is its denominator or sample count.
type ScopedValue struct {
	Key    string
	Value  *float64
	Volume uint64
}

// RuleSource gives rule evaluation the numbers it judges, from the same
// metric definitions the API and the wall show.
type RuleSource interface {
	// Scoped returns metric (its stat, for quantile metrics) over
	// [from, to) for each value of dimension by, or one overall value when
	// by is empty.
	Scoped(ctx context.Context, metric, stat string, from, to time.Time, by string) ([]ScopedValue, error)
}

// SpikeRuleEvaluator evaluates one spike rule at now.
type SpikeRuleEvaluator interface {
	EvaluateSpikeRule(ctx context.Context, now time.Time, r Rule) ([]Candidate, error)
}

// Evaluator evaluates the current rule set. Rules can be replaced at any
// time (hot reload); an evaluation uses the set it started with.
type Evaluator struct {
	src    RuleSource
	spikes SpikeRuleEvaluator
	rules  atomic.Pointer[RuleSet]
	logger *slog.Logger
}

// NewEvaluator returns an evaluator of rs over src; spikes evaluates the
// spike rules.
func NewEvaluator(src RuleSource, spikes SpikeRuleEvaluator, rs *RuleSet, logger *slog.Logger) (*Evaluator, error) {
	if src == nil || spikes == nil {
		return nil, errors.New("pipeline: an evaluator needs a metric source and a spike evaluator")
	}
	if rs == nil {
		rs = &RuleSet{}
	}
	e := &Evaluator{src: src, spikes: spikes, logger: logger.With("component", "rules")}
	e.rules.Store(rs)
	return e, nil
}

// Rules returns the rule set in force.
func (e *Evaluator) Rules() *RuleSet { return e.rules.Load() }

// SetRules replaces the rule set; rs must be validated (ParseRules).
func (e *Evaluator) SetRules(rs *RuleSet) {
	e.rules.Store(rs)
	e.logger.Info("rules loaded", "rules", len(rs.Rules))
}

// Evaluation is the outcome of one evaluation of the rule set.
type Evaluation struct {
	At         time.Time
	Candidates []Candidate
	// Evaluated names every rule that was judged; a rule missing from it
	// failed (see Failed) and its alerts must be left as they were, not
	// resolved for want of a candidate.
	Evaluated map[string]bool
	Failed    map[string]error
}

// Evaluate judges every rule at now. A rule whose numbers cannot be read
// is reported in the joined error; the others' candidates are returned.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) ([]Candidate, error) {
	ev := e.EvaluateAll(ctx, now)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(ev.Failed)) {
		errs = append(errs, fmt.Errorf("rule %s: %w", name, ev.Failed[name]))
	}
	return ev.Candidates, errors.Join(errs...)
}

// EvaluateAll judges every rule at now and says which rules were judged.
func (e *Evaluator) EvaluateAll(ctx context.Context, now time.Time) Evaluation {
	return e.evaluate(ctx, now, nil)
}

// evaluate judges every rule at now, timing each one into m (if set).
func (e *Evaluator) evaluate(ctx context.Context, now time.Time, m *RuleMetrics) Evaluation {
	ev := Evaluation{At: now, Evaluated: map[string]bool{}, Failed: map[string]error{}}
	for _, r := range e.rules.Load().Rules {
		var cs []Candidate
		var err error
		began := time.Now()
		switch r.Kind {
		case KindThreshold:
			cs, err = e.threshold(ctx, now, r)
		case KindTrend:
			cs, err = e.trend(ctx, now, r)
		case KindSpike:
			cs, err = e.spikes.EvaluateSpikeRule(ctx, now, r)
		}
		m.rule(r.Name, time.Since(began), err)
		if err != nil {
			ev.Failed[r.Name] = err
			continue
		}
		ev.Evaluated[r.Name] = true
		ev.Candidates = append(ev.Candidates, cs...)
	}
	return ev
}

func (e *Evaluator) candidate(r Rule, now time.Time, key string, value, expected float64, explanation string) Candidate {
	labels := make(map[string]string, len(r.Labels)+1)
	maps.Copy(labels, r.Labels)
	if r.By != "" {
		labels[r.By] = key
	}
	return Candidate{
		Rule: r.Name, Kind: r.Kind, Severity: r.Severity, Labels: labels,
		Value: value, Expected: expected, Explanation: explanation, Summary: r.Summary,
		For: time.Duration(r.For), KeepFiring: time.Duration(r.KeepFiringFor), At: now,
	}
}

func metricLabel(r Rule) string {
	if r.Stat != "" {
		return r.Metric + " " + r.Stat
	}
	return r.Metric
}

func scopeLabel(r Rule, key string) string {
	if r.By == "" {
		return "overall"
	}
	return r.By + "=" + key
}

func (e *Evaluator) threshold(ctx context.Context, now time.Time, r Rule) ([]Candidate, error) {
	w := time.Duration(r.Window)
	vals, err := e.src.Scoped(ctx, r.Metric, r.Stat, now.Add(-w), now, r.By)
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for _, v := range vals {
		if v.Value == nil || v.Volume < uint64(r.MinVolume) || math.IsNaN(*v.Value) {
			continue
		}
		if compare(r.Op, *v.Value, *r.Value) {
			expl := fmt.Sprintf("%s: %s %s %s %s over %s (n=%d)", scopeLabel(r, v.Key), metricLabel(r),
				formatValue(*v.Value), r.Op, formatValue(*r.Value), w, v.Volume)
			out = append(out, e.candidate(r, now, v.Key, *v.Value, *r.Value, expl))
		}
	}
	return out, nil
}

// trend fires for a scope whose rate fell in each of the last Windows
// consecutive windows, by at least MinDrop in all, with MinVolume
// observations in every window.
func (e *Evaluator) trend(ctx context.Context, now time.Time, r Rule) ([]Candidate, error) {
	w := time.Duration(r.Window)
	series := map[string][]ScopedValue{}
	for i := r.Windows - 1; i >= 0; i-- {
		to := now.Add(-time.Duration(i) * w)
		vals, err := e.src.Scoped(ctx, r.Metric, r.Stat, to.Add(-w), to, r.By)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			// Keys missing from an earlier window have a gap: never a trend.
			if len(series[v.Key]) == r.Windows-1-i {
				series[v.Key] = append(series[v.Key], v)
			}
		}
	}
	keys := slices.Sorted(maps.Keys(series))
	var out []Candidate
	for _, k := range keys {
		s := series[k]
		if len(s) != r.Windows {
			continue
		}
		falling := true
		for i, v := range s {
			if v.Value == nil || v.Volume < uint64(r.MinVolume) || (i > 0 && !(*v.Value < *s[i-1].Value)) {
				falling = false
				break
			}
		}
		if !falling {
			continue
		}
		first, last := *s[0].Value, *s[len(s)-1].Value
		if first-last < r.MinDrop {
			continue
		}
		steps := make([]string, len(s))
		for i, v := range s {
			steps[i] = formatValue(*v.Value)
		}
		expl := fmt.Sprintf("%s: %s fell %s over %d×%s", scopeLabel(r, k), metricLabel(r), strings.Join(steps, " → "), r.Windows, w)
		out = append(out, e.candidate(r, now, k, last, first, expl))
	}
	return out, nil
}

func formatValue(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) < 1:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// Run evaluates every tick until ctx ends and hands each evaluation to
// deliver (also when there are no candidates: that is how alerts learn a
// condition cleared). Evaluation times are truncated to the tick.
//
// One tick runs at a time, evaluation and delivery together, under a
// deadline of timeout: a tick that cannot finish in time is abandoned (its
// evaluation is not delivered, so no alert changes on partial numbers),
// and the ticks that came due while one ran are skipped, never queued.
// Both are counted in m (which may be nil). A tick at which hold (if not
// nil) returns an error is not evaluated at all, and counted as held:
// while the events of the windows are still arriving, a rule would judge
// part of them (a count too low, a rate from the events stored first).
func (e *Evaluator) Run(ctx context.Context, tick, timeout time.Duration, m *RuleMetrics, hold func() error, deliver func(context.Context, Evaluation) error) {
	failing := false
	var holding error
	next := time.Now().Truncate(tick).Add(tick)
	for {
		wait := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		if hold != nil {
			err := hold()
			switch {
			case err != nil && holding == nil:
				e.logger.Warn("rule evaluation held: the windows are not all stored yet; alerts stay as they were", "reason", err)
			case err == nil && holding != nil:
				e.logger.Info("rule evaluation resumed")
			}
			if holding = err; err != nil {
				m.hold()
				next = time.Now().Truncate(tick).Add(tick)
				continue
			}
		}
		began := time.Now()
		// A live view refreshed within the last half tick is recent
		// enough: the tick then judges every event stored by the middle of
		// the tick before it, mostly from the refresh the wall's stream
		// made. Tolerating a whole tick, a process without a wall viewer
		// refreshed its view only every other tick (a refresh a little
		// less than a tick old answered the next): an event took 2.2 s to
		// fire its alert at p99, 1.2 s with half a tick
		// (BenchmarkEventToNotification, to-firing p99).
		tctx, cancel := context.WithTimeout(kpi.WithStaleness(ctx, tick/2), timeout)
		ev := e.evaluate(tctx, next, m)
		err := tctx.Err()
		if err == nil {
			err = deliver(tctx, ev)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.tickDone(time.Since(began))
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			m.skip(1)
			e.logger.Warn("rule tick abandoned: it could not finish in time", "at", next, "timeout", timeout)
		case len(ev.Failed) > 0:
			if !failing {
				for name, err := range ev.Failed {
					e.logger.Warn("rule evaluation failed", "rule", name, "err", err)
				}
			}
			failing = true
		case failing:
			e.logger.Info("rule evaluation recovered")
			failing = false
		}
		// The next tick is the first boundary still ahead; those passed
		// while this one ran are skipped.
		after := time.Now().Truncate(tick).Add(tick)
		if missed := int(after.Sub(next)/tick) - 1; missed > 0 {
			m.skip(missed)
		}
		next = after
	}
}

// Episode is a backtest finding: a rule condition that held for one scope
// from Start to End (the last evaluation at which it held).
type Episode struct {
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end"`
	Peak        float64           `json:"peak"`
	Expected    float64           `json:"expected"`
	Explanation string            `json:"explanation"`
	// Fired says whether the condition held at least the rule's For.
	Fired bool `json:"fired"`
}

// Backtest evaluates the rule set at every step over [from, to) and
// returns the episodes it would have raised, in start order.
func (e *Evaluator) Backtest(ctx context.Context, from, to time.Time, step time.Duration) ([]Episode, error) {
	if step <= 0 || !from.Before(to) {
		return nil, errors.New("backtest: from must be before to and step positive")
	}
	if n := to.Sub(from) / step; n > 100_000 {
		return nil, fmt.Errorf("backtest: %d evaluations is too many; use a larger step", n)
	}
	e, err := e.forBacktest(ctx, from, to)
	if err != nil {
		return nil, err
	}
	open := map[string]*Episode{}
	forOf := map[string]time.Duration{}
	var done []Episode
	for now := from; now.Before(to); now = now.Add(step) {
		cs, err := e.Evaluate(ctx, now)
		if err != nil {
			return nil, fmt.Errorf("backtest at %s: %w", now.Format(time.RFC3339), err)
		}
		seen := map[string]bool{}
		for _, c := range cs {
			k := c.Key()
			seen[k] = true
			ep, ok := open[k]
			if !ok {
				ep = &Episode{Rule: c.Rule, Labels: c.Labels, Start: now, Expected: c.Expected, Explanation: c.Explanation, Peak: c.Value}
				open[k] = ep
				forOf[k] = c.For
			}
			ep.End = now
			if math.Abs(c.Value-c.Expected) > math.Abs(ep.Peak-ep.Expected) {
				ep.Peak, ep.Expected, ep.Explanation = c.Value, c.Expected, c.Explanation
			}
			ep.Fired = ep.End.Sub(ep.Start) >= forOf[k]
		}
		for k, ep := range open {
			if !seen[k] {
				done = append(done, *ep)
				delete(open, k)
			}
		}
	}
	for _, ep := range open {
		done = append(done, *ep)
	}
	sort.Slice(done, func(i, j int) bool {
		if !done[i].Start.Equal(done[j].Start) {
			return done[i].Start.Before(done[j].Start)
		}
		return done[i].Rule < done[j].Rule
	})
	return done, nil
}

// spikeBacktester is a spike evaluator that can prepare for a backtest
// (SpikeRules reads the complaint history once).
type spikeBacktester interface {
	ForBacktest(ctx context.Context, rules []Rule, from, to time.Time) (SpikeRuleEvaluator, error)
}

// forBacktest returns the evaluator a backtest over [from, to) uses: e
// with its spike evaluator prepared for the span, same rules.
func (e *Evaluator) forBacktest(ctx context.Context, from, to time.Time) (*Evaluator, error) {
	p, ok := e.spikes.(spikeBacktester)
	if !ok {
		return e, nil
	}
	rs := e.rules.Load()
	spikes, err := p.ForBacktest(ctx, rs.Rules, from, to)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	b := &Evaluator{src: e.src, spikes: spikes, logger: e.logger}
	b.rules.Store(rs)
	return b, nil
}

// WatchRules reloads the rule file whenever it changes (checked every
// interval) and hands each valid new set to apply. An invalid file is
// reported and the rules in force stay.
func WatchRules(ctx context.Context, path string, interval time.Duration, apply func(*RuleSet), logger *slog.Logger) {
	var lastMod time.Time
	var lastSize int64 = -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil {
			continue
		}
		if st.ModTime().Equal(lastMod) && st.Size() == lastSize {
			continue
		}
		lastMod, lastSize = st.ModTime(), st.Size()
		src, err := os.ReadFile(path)
		if err != nil {
			logger.Warn("cannot read the rule file", "path", path, "err", err)
			continue
		}
		rs, err := ParseRules(src)
		if err != nil {
			logger.Error("rule file rejected; the previous rules stay in force", "path", path, "err", err)
			continue
		}
		apply(rs)
	}
}
