package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cockpit-cs/cockpit/internal/yamltime"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// RuleKind is what a rule watches.
type RuleKind string

// Rule kinds (SPEC §6).
const (
	// KindThreshold compares a metric over a sliding window with a value.
	KindThreshold RuleKind = "threshold"
	// KindSpike finds regional complaint counts improbable under each
	// region's own history.
	KindSpike RuleKind = "spike"
	// KindTrend finds a rate falling over consecutive windows.
	KindTrend RuleKind = "trend"
)

// RuleSeverities are the severities of a rule, most urgent last.
var RuleSeverities = []string{"info", "warning", "critical"}

// RuleDimensions are the labels a rule may be scoped by.
var RuleDimensions = []string{"region", "queue", "channel", "business_line", "agent"}

// Duration is a time.Duration written as "30s", "2m" or "1h" in YAML.
type Duration = yamltime.Duration

// Rule is one rule of the rule set. Fields that do not apply to its kind
// must be left out: validation refuses them, so a misplaced field is not
// silently ignored.
type Rule struct {
	// Name identifies the rule; with the scope labels it makes an alert's
	// fingerprint. Lowercase letters, digits and underscores.
	Name string   `yaml:"name"`
	Kind RuleKind `yaml:"kind"`
	// Severity is info, warning or critical.
	Severity string `yaml:"severity"`
	// Summary is a sentence for people, shown with the alert.
	Summary string `yaml:"summary,omitempty"`
	// Labels are added to every alert of the rule (e.g. team: billing).
	Labels map[string]string `yaml:"labels,omitempty"`
	// For is how long the condition must hold before the alert fires.
	For Duration `yaml:"for,omitempty"`
	// KeepFiringFor keeps an alert firing this long after the condition
	// clears, so a flapping metric does not flap the alert.
	KeepFiringFor Duration `yaml:"keep_firing_for,omitempty"`

	// threshold and trend
	// Metric is a metric name of SPEC §5 (e.g. first_response_seconds).
	Metric string `yaml:"metric,omitempty"`
	// Stat picks the statistic of a quantile metric: avg, p50, p90 or count.
	Stat string `yaml:"stat,omitempty"`
	// Window is the sliding window the metric is computed over.
	Window Duration `yaml:"window,omitempty"`
	// By scopes the rule: one alert per value of this dimension.
	By string `yaml:"by,omitempty"`
	// Op and Value: the condition, e.g. ">" 30.
	Op    string   `yaml:"op,omitempty"`
	Value *float64 `yaml:"value,omitempty"`
	// MinVolume is the least number of underlying observations (the
	// metric's denominator or sample count) for the condition to be
	// judged at all.
	MinVolume int `yaml:"min_volume,omitempty"`

	// trend
	// Windows is how many consecutive windows the rate must fall over.
	Windows int `yaml:"windows,omitempty"`
	// MinDrop is the least total fall, first window to last (absolute,
	// e.g. 0.05 for five percentage points).
	MinDrop float64 `yaml:"min_drop,omitempty"`

	// spike
	// SpikeWindows are the counting windows (default 5m, 10m, 15m, 30m).
	SpikeWindows []Duration `yaml:"spike_windows,omitempty"`
	// MinCount is the least count in a window to alert (default 5).
	MinCount int `yaml:"min_count,omitempty"`
	// MinRatio is the least count/expected to alert (default 1.5).
	MinRatio float64 `yaml:"min_ratio,omitempty"`
	// Alpha is the family-wise false-alarm probability per evaluation,
	// corrected for the number of regions tested (default 0.0007).
	Alpha float64 `yaml:"alpha,omitempty"`

	line int
}

// Line is the line of the rule in its YAML source (0 when built in Go).
func (r Rule) Line() int { return r.line }

// RuleSet is a validated set of rules.
type RuleSet struct {
	Rules []Rule `yaml:"rules"`
}

var ruleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
var labelNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// RuleError points at the rule and field at fault.
type RuleError struct {
	Line  int
	Rule  string
	Field string
	Msg   string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ParseRules decodes and validates a YAML rule set. Unknown fields, wrong
// types and every semantic rule are errors naming the line; nothing of a
// rule set with an error is used.
func ParseRules(src []byte) (*RuleSet, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var rs RuleSet
	if err := dec.Decode(&rs); err != nil {
		if strings.TrimSpace(string(src)) == "" {
			return nil, errors.New("rules: the rule set is empty (write `rules: []` to have no rules)")
		}
		return nil, fmt.Errorf("rules: %w", err)
	}
	// Line numbers of each rule, for errors found after decoding.
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "rules" && m.Content[i+1].Kind == yaml.SequenceNode {
				for j, item := range m.Content[i+1].Content {
					if j < len(rs.Rules) {
						rs.Rules[j].line = item.Line
					}
				}
			}
		}
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	return &rs, nil
}

// Size limits of a rule set: every rule is evaluated on every tick, so a
// set of thousands would stall the evaluator.
const (
	MaxRules           = 200
	maxRuleLabels      = 16
	maxRuleLabelValue  = 256
	maxRuleSummary     = 1000
	maxRuleSpikeWindow = 8
)

// Validate checks every rule, and that names are unique.
func (rs *RuleSet) Validate() error {
	if len(rs.Rules) > MaxRules {
		return fmt.Errorf("rules: %d rules, the limit is %d", len(rs.Rules), MaxRules)
	}
	seen := map[string]int{}
	var errs []error
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if err := r.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[r.Name]; dup {
			errs = append(errs, &RuleError{Line: r.line, Rule: r.Name, Field: "name", Msg: fmt.Sprintf("duplicate of the rule on line %d", prev)})
		}
		seen[r.Name] = r.line
	}
	return errors.Join(errs...)
}

// ruleMetric says whether name is a metric a rule can watch and whether
// it is a quantile metric (which needs a stat), from the metric registry.
func ruleMetric(name string) (known, quantile bool) {
	m, ok := kpi.MetricByName(name)
	return ok, m.Kind == kpi.MetricQuantile
}

func (r *Rule) validate() error {
	fail := func(field, format string, args ...any) error {
		return &RuleError{Line: r.line, Rule: r.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if !ruleNameRE.MatchString(r.Name) {
		return fail("name", "must be lowercase letters, digits and underscores, starting with a letter (got %q)", r.Name)
	}
	if len(r.Summary) > maxRuleSummary {
		return fail("summary", "is %d bytes, the limit is %d", len(r.Summary), maxRuleSummary)
	}
	if len(r.Labels) > maxRuleLabels {
		return fail("labels", "%d labels, the limit is %d", len(r.Labels), maxRuleLabels)
	}
	for k, v := range r.Labels {
		if len(v) > maxRuleLabelValue {
			return fail("labels", "the value of %q is %d bytes, the limit is %d", k, len(v), maxRuleLabelValue)
		}
	}
	if len(r.SpikeWindows) > maxRuleSpikeWindow {
		return fail("spike_windows", "%d windows, the limit is %d", len(r.SpikeWindows), maxRuleSpikeWindow)
	}
	if !slices.Contains(RuleSeverities, r.Severity) {
		return fail("severity", "must be one of %s (got %q)", strings.Join(RuleSeverities, ", "), r.Severity)
	}
	for k := range r.Labels {
		if !labelNameRE.MatchString(k) || k == "rule" || k == "severity" || slices.Contains(RuleDimensions, k) {
			return fail("labels", "%q is not a usable label name (lowercase identifier, not rule, severity or a dimension)", k)
		}
	}
	if r.For < 0 || r.KeepFiringFor < 0 {
		return fail("for", "durations must not be negative")
	}
	if r.By != "" && !slices.Contains(RuleDimensions, r.By) {
		return fail("by", "must be one of %s (got %q)", strings.Join(RuleDimensions, ", "), r.By)
	}
	switch r.Kind {
	case KindThreshold, KindTrend:
		known, quantile := ruleMetric(r.Metric)
		if !known {
			return fail("metric", "unknown metric %q", r.Metric)
		}
		if quantile && !slices.Contains([]string{"avg", "p50", "p90", "count"}, r.Stat) {
			return fail("stat", "metric %s needs a stat: avg, p50, p90 or count", r.Metric)
		}
		if !quantile && r.Stat != "" {
			return fail("stat", "only quantile metrics take a stat")
		}
		if r.Window < Duration(time.Second) {
			return fail("window", "is required (at least 1s)")
		}
		if r.MinVolume < 0 {
			return fail("min_volume", "must not be negative")
		}
		if len(r.SpikeWindows) > 0 || r.MinCount != 0 || r.MinRatio != 0 || r.Alpha != 0 {
			return fail("spike_windows", "spike settings do not apply to a %s rule", r.Kind)
		}
		if r.Kind == KindThreshold {
			if !slices.Contains([]string{">", ">=", "<", "<=", "==", "!="}, r.Op) {
				return fail("op", "must be one of > >= < <= == != (got %q)", r.Op)
			}
			if r.Value == nil {
				return fail("value", "is required")
			}
			if r.Windows != 0 || r.MinDrop != 0 {
				return fail("windows", "trend settings do not apply to a threshold rule")
			}
		} else {
			if r.Windows < 2 || r.Windows > 48 {
				return fail("windows", "must be from 2 to 48 consecutive windows (got %d)", r.Windows)
			}
			if r.MinDrop < 0 {
				return fail("min_drop", "must not be negative")
			}
			if r.Op != "" || r.Value != nil {
				return fail("op", "a trend rule has no op or value; it fires on a fall over windows")
			}
		}
	case KindSpike:
		if r.Metric != "" || r.Op != "" || r.Value != nil || r.Windows != 0 || r.Window != 0 || r.Stat != "" {
			return fail("metric", "a spike rule watches complaints per region; metric, stat, window, op, value and windows do not apply")
		}
		if r.By != "" && r.By != "region" {
			return fail("by", "a spike rule is per region")
		}
		for _, w := range r.SpikeWindows {
			if w < Duration(time.Minute) || w > Duration(48*time.Hour) {
				return fail("spike_windows", "each window must be from 1m to 48h (got %s)", time.Duration(w))
			}
		}
		if r.MinCount < 0 || r.MinRatio < 0 || r.Alpha < 0 || r.Alpha >= 1 {
			return fail("alpha", "min_count and min_ratio must not be negative; alpha must be in (0, 1)")
		}
	case "":
		return fail("kind", "is required: threshold, spike or trend")
	default:
		return fail("kind", "must be threshold, spike or trend (got %q)", r.Kind)
	}
	return nil
}

// compare applies a threshold rule's operator.
func compare(op string, v, threshold float64) bool {
	switch op {
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	case "==":
		return v == threshold
	case "!=":
		return v != threshold
	}
	return false
}

//go:embed rules.default.yaml
var defaultRules []byte

// DefaultRules returns the built-in rule set (rules.default.yaml). It
// fails only if the binary was built with a broken file, which a test
// rules out.
func DefaultRules() (*RuleSet, error) {
	rs, err := ParseRules(defaultRules)
	if err != nil {
		return nil, fmt.Errorf("built-in rules: %w", err)
	}
	return rs, nil
}

// DefaultRulesYAML returns the text of the built-in rule set.
func DefaultRulesYAML() []byte { return slices.Clone(defaultRules) }
