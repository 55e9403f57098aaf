package rules

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RuleMetrics are the rule evaluation metrics, in the spirit of
// Prometheus's own rule manager. Only evaluations run by Run (the
// leader's ticks) move them; backtests do not.
type RuleMetrics struct {
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	tick     prometheus.Histogram
	skipped  prometheus.Counter
	held     prometheus.Counter
}

// NewRuleMetrics registers the rule evaluation metrics on reg.
func NewRuleMetrics(reg prometheus.Registerer) (*RuleMetrics, error) {
	m := &RuleMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cockpit_rule_evaluation_duration_seconds",
			Help:    "Duration of one rule's evaluation in a tick (rules sharing a window share its read: the first pays for it).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"rule"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_rule_evaluation_failures_total",
			Help: "Rule evaluations that failed (their alerts are left as they were).",
		}, []string{"rule"}),
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cockpit_rule_tick_duration_seconds",
			Help:    "Duration of one tick: every rule evaluated and the alert lifecycle applied.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_rule_ticks_skipped_total",
			Help: "Ticks not evaluated because the one before was still running, or abandoned because they could not finish in time; a skipped tick is never queued.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_rule_ticks_held_total",
			Help: "Ticks not evaluated because the events their windows hold were still arriving (the ingest had not caught up): their alerts are left as they were.",
		}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.failures, m.tick, m.skipped, m.held} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("pipeline: cannot register rule metrics"), err)
		}
	}
	return m, nil
}

func (m *RuleMetrics) rule(name string, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(name).Observe(took.Seconds())
	if err != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}

func (m *RuleMetrics) tickDone(took time.Duration) {
	if m != nil {
		m.tick.Observe(took.Seconds())
	}
}

func (m *RuleMetrics) skip(n int) {
	if m != nil && n > 0 {
		m.skipped.Add(float64(n))
	}
}

func (m *RuleMetrics) hold() {
	if m != nil {
		m.held.Inc()
	}
}
