package dashboard

import (
	"fmt"
	"slices"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// Threshold colours a tile: the value is red past Red and amber past
// Amber, in the direction of Op (">" means high is bad, "<" low is bad).
type Threshold struct {
	Op    string  `json:"op"` // the rule's comparison: ">", ">=", "<" or "<="
	Amber float64 `json:"amber"`
	Red   float64 `json:"red"`
	// Rule names the rule the threshold comes from; empty for a default.
	Rule string `json:"rule,omitempty"`
}

// Tile is one KPI tile of the wall.
type Tile struct {
	ID     string `json:"id"`     // DOM id, stable
	Metric string `json:"metric"` // name in the snapshot JSON
	Stat   string `json:"stat,omitempty"`
	Label  string `json:"label"`
	// Format is how the value is shown: "s", "pct", "score" or "int".
	Format    string     `json:"format"`
	Window    string     `json:"window"`
	Threshold *Threshold `json:"threshold,omitempty"`
}

// tileSpec is a wall tile with its default threshold.
type tileSpec struct {
	metric, stat, format string
	def                  *Threshold
}

// wallTiles are the tiles of SPEC §8, in display order. The defaults are
// common contact-centre targets, used when no threshold rule watches the
// metric.
var wallTiles = []tileSpec{
	{kpi.MetricFirstResponseSeconds, "p90", "s", &Threshold{Op: ">", Amber: 24, Red: 30}},
	{kpi.MetricHumanWaitSeconds, "p90", "s", &Threshold{Op: ">", Amber: 48, Red: 60}},
	{kpi.MetricServiceLevel, "", "pct", &Threshold{Op: "<", Amber: 0.88, Red: 0.8}},
	{kpi.MetricResolutionRate, "", "pct", &Threshold{Op: "<", Amber: 0.77, Red: 0.7}},
	{kpi.MetricTransferRate, "", "pct", &Threshold{Op: ">", Amber: 0.28, Red: 0.35}},
	{kpi.MetricAbandonRate, "", "pct", &Threshold{Op: ">", Amber: 0.064, Red: 0.08}},
	{kpi.MetricCSATAvg, "", "score", &Threshold{Op: "<", Amber: 3.85, Red: 3.5}},
	{kpi.MetricComplaints, "", "int", nil},
	{kpi.MetricActiveConversations, "", "int", nil},
	{kpi.MetricWaitingForHuman, "", "int", &Threshold{Op: ">", Amber: 8, Red: 10}},
}

// Amber bands around a rule's value: amber starts 20% before a ">" limit
// and 10% above a "<" limit, so the wall warns before the rule fires.
const (
	amberBelowHigh = 0.8
	amberAboveLow  = 1.1
)

// tiles returns the wall tiles in lang, with thresholds from rs where a
// threshold rule watches the tile's metric and statistic.
func tiles(lang string, rs *rules.RuleSet, window time.Duration) []Tile {
	out := make([]Tile, 0, len(wallTiles))
	for _, s := range wallTiles {
		m, _ := kpi.MetricByName(s.metric)
		label := m.LabelZH
		if lang == LangEN {
			label = m.LabelEN
		}
		if s.stat != "" {
			label += " " + s.stat
		}
		win := windowLabel(lang, window)
		if m.Kind == kpi.MetricGauge {
			win = tr(lang, "tile.now")
		}
		t := Tile{ID: "tile-" + s.metric, Metric: s.metric, Stat: s.stat, Label: label,
			Format: s.format, Window: win, Threshold: s.def}
		if th, ok := ruleThreshold(rs, s.metric, s.stat); ok {
			t.Threshold = &th
		}
		out = append(out, t)
	}
	return out
}

// windowLabel names a sliding window: "近15分钟", "last 2 h".
func windowLabel(lang string, d time.Duration) string {
	n, unit := int(d.Round(time.Minute)/time.Minute), "min"
	if n >= 60 && n%60 == 0 {
		n, unit = n/60, "h"
	}
	return fmt.Sprintf(tr(lang, "tile.window."+unit), n)
}

// ruleThreshold finds the most severe threshold rule on metric (and stat)
// in rs and turns it into tile colours.
func ruleThreshold(rs *rules.RuleSet, metric, stat string) (Threshold, bool) {
	if rs == nil {
		return Threshold{}, false
	}
	var best *rules.Rule
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if r.Kind != rules.KindThreshold || r.Metric != metric || r.Value == nil {
			continue
		}
		if r.Stat != stat && !(stat == "" && r.Stat == "") {
			continue
		}
		if r.Op != ">" && r.Op != ">=" && r.Op != "<" && r.Op != "<=" {
			continue // == and != say nothing about a direction
		}
		if best == nil || severityRank(r.Severity) > severityRank(best.Severity) {
			best = r
		}
	}
	if best == nil {
		return Threshold{}, false
	}
	v := *best.Value
	if best.Op[0] == '>' {
		return Threshold{Op: best.Op, Amber: v * amberBelowHigh, Red: v, Rule: best.Name}, true
	}
	amber := v * amberAboveLow
	if m, _ := kpi.MetricByName(metric); m.Kind == kpi.MetricRatio {
		amber = min(amber, 1)
	}
	return Threshold{Op: best.Op, Amber: amber, Red: v, Rule: best.Name}, true
}

func severityRank(s string) int { return slices.Index(rules.RuleSeverities, s) }
