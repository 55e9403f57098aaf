package rules

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/pipeline/spike"
)

// SpikeRules evaluates the spike rules of a rule set with the spike
// detector over a complaint history.
type SpikeRules struct {
	history spike.History

	mu        sync.Mutex
	detectors map[string]*spikeDetector // by rule name and settings
}

// spikeDetector is a detector and what it found at the last point of the
// SpikeStep grid it judged.
type spikeDetector struct {
	*spike.Detector

	mu       sync.Mutex
	at       time.Time
	findings []spike.Finding
}

// SpikeStep is the grid spike rules are judged on: a spike rule evaluated
// at t judges the windows that end at t truncated to the step, once, and
// every tick until the next point of the grid repeats that judgement. Its
// windows are minutes long and its evidence builds over minutes, so ten
// seconds of delay change nothing a supervisor would see, while each
// judgement reads weeks of complaints from the store: once a step rather
// than once a tick (a second) is a tenth of the reads, idle or under load.
// A backtest step at T sees exactly what a live tick in [T, T+step) saw.
const SpikeStep = 10 * time.Second

// NewSpikeRules returns the spike evaluator over h.
func NewSpikeRules(h spike.History) *SpikeRules {
	return &SpikeRules{history: h, detectors: map[string]*spikeDetector{}}
}

// SpikeConfigOf maps a spike rule's settings over the detector defaults.
func SpikeConfigOf(r Rule) spike.Config {
	cfg := spike.DefaultConfig()
	if len(r.SpikeWindows) > 0 {
		cfg.Windows = nil
		for _, w := range r.SpikeWindows {
			cfg.Windows = append(cfg.Windows, time.Duration(w))
		}
		// Wide windows (hours, for sparse complaint streams) compare with
		// wider past slices.
		if w := slices.Max(cfg.Windows); w > cfg.BaselineSpan {
			cfg.BaselineSpan = min(w, 6*time.Hour)
		}
	}
	if r.MinCount > 0 {
		cfg.MinCount = r.MinCount
	}
	if r.MinRatio > 0 {
		cfg.MinRatio = r.MinRatio
	}
	if r.Alpha > 0 {
		cfg.Alpha = r.Alpha
		cfg.NationalAlpha = r.Alpha / 10
	}
	return cfg
}

func (s *SpikeRules) detector(r Rule) (*spikeDetector, error) {
	cfg := SpikeConfigOf(r)
	key := fmt.Sprintf("%s|%v|%d|%g|%g|%s", r.Name, cfg.Windows, cfg.MinCount, cfg.MinRatio, cfg.Alpha, cfg.BaselineSpan)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.detectors[key]; ok {
		return d, nil
	}
	d, err := spike.NewDetector(cfg)
	if err != nil {
		return nil, err
	}
	s.detectors[key] = &spikeDetector{Detector: d}
	return s.detectors[key], nil
}

// judge returns what d finds over h at at, judged once per grid point.
func (d *spikeDetector) judge(ctx context.Context, at time.Time, h spike.History) ([]spike.Finding, error) {
	d.mu.Lock()
	if d.at.Equal(at) {
		defer d.mu.Unlock()
		return d.findings, nil
	}
	d.mu.Unlock()
	findings, err := d.Evaluate(ctx, at, h)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.at, d.findings = at, findings
	d.mu.Unlock()
	return findings, nil
}

// EvaluateSpikeRule runs the detector for r at now truncated to
// SpikeStep. Each finding becomes a candidate labelled scope=region (with
// region) or scope=national, so that a national spike can inhibit the
// regional ones.
func (s *SpikeRules) EvaluateSpikeRule(ctx context.Context, now time.Time, r Rule) ([]Candidate, error) {
	d, err := s.detector(r)
	if err != nil {
		return nil, err
	}
	findings, err := d.judge(ctx, now.Truncate(SpikeStep), s.history)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(findings))
	for _, f := range findings {
		labels := make(map[string]string, len(r.Labels)+2)
		maps.Copy(labels, r.Labels)
		labels["scope"] = string(f.Scope)
		if f.Scope == spike.ScopeRegion {
			labels["region"] = f.Region
		}
		out = append(out, Candidate{
			Rule: r.Name, Kind: KindSpike, Severity: r.Severity, Labels: labels,
			Value: f.Count, Expected: f.Expected, Explanation: f.Explanation, Summary: r.Summary,
			For: time.Duration(r.For), KeepFiring: time.Duration(r.KeepFiringFor), At: now,
		})
	}
	return out, nil
}

// chTime is the layout of a DateTime64(3) value in ClickHouse query text.
const chTime = "2006-01-02 15:04:05.000"

// ClickHouseSpikeHistory reads complaint counts per region from the
// complaints table (every stored complaint.filed, by time), counting a
// repeated event_id once, with one query per evaluation.
type ClickHouseSpikeHistory struct {
	conn driver.Conn

	mu    sync.Mutex
	start time.Time
	asked time.Time
}

// NewClickHouseSpikeHistory returns the history over conn.
func NewClickHouseSpikeHistory(conn driver.Conn) *ClickHouseSpikeHistory {
	return &ClickHouseSpikeHistory{conn: conn}
}

// SpikeCounts returns complaints per region in each range.
func (h *ClickHouseSpikeHistory) SpikeCounts(ctx context.Context, ranges []spike.Range) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(ranges))
	if len(ranges) == 0 {
		return out, nil
	}
	lo, hi := ranges[0].From, ranges[0].To
	froms := make([]string, len(ranges))
	tos := make([]string, len(ranges))
	for i, r := range ranges {
		out[i] = map[string]float64{}
		if r.From.Before(lo) {
			lo = r.From
		}
		if r.To.After(hi) {
			hi = r.To
		}
		froms[i] = "'" + r.From.UTC().Format(chTime) + "'"
		tos[i] = "'" + r.To.UTC().Format(chTime) + "'"
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"froms": "[" + strings.Join(froms, ",") + "]",
		"tos":   "[" + strings.Join(tos, ",") + "]",
		"lo":    lo.UTC().Format(chTime),
		"hi":    hi.UTC().Format(chTime),
	}))
	rows, err := h.conn.Query(ctx, `
		SELECT region, idx, uniqExact(event_id) FROM (
			SELECT region, event_id,
				arrayJoin(arrayFilter(i -> occurred_at >= {froms:Array(DateTime64(3, 'UTC'))}[i]
					AND occurred_at < {tos:Array(DateTime64(3, 'UTC'))}[i],
					range(1, length({froms:Array(DateTime64(3, 'UTC'))}) + 1))) AS idx
			FROM complaints
			WHERE occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at < {hi:DateTime64(3, 'UTC')}
		)
		GROUP BY region, idx`)
	if err != nil {
		return nil, fmt.Errorf("cannot count complaints by region: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var region string
		var idx uint64
		var n uint64
		if err := rows.Scan(&region, &idx, &n); err != nil {
			return nil, fmt.Errorf("cannot read complaint counts: %w", err)
		}
		if idx >= 1 && int(idx) <= len(out) {
			out[idx-1][region] = float64(n)
		}
	}
	return out, rows.Err()
}

// SpikeDataStart returns the time of the oldest complaint, cached for a
// minute.
func (h *ClickHouseSpikeHistory) SpikeDataStart(ctx context.Context) (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.asked.IsZero() && time.Since(h.asked) < time.Minute {
		return h.start, nil
	}
	var n uint64
	var t time.Time
	if err := h.conn.QueryRow(ctx, "SELECT count(), min(occurred_at) FROM complaints").Scan(&n, &t); err != nil {
		return time.Time{}, fmt.Errorf("cannot find the start of complaint history: %w", err)
	}
	if n == 0 {
		t = time.Time{}
	}
	h.start, h.asked = t.UTC(), time.Now()
	return h.start, nil
}

// SpikeRecords lists complaints in [from, to), a repeated event_id once
// (the same rule as SpikeCounts' uniqExact).
func (h *ClickHouseSpikeHistory) SpikeRecords(ctx context.Context, from, to time.Time) ([]spike.Record, error) {
	rows, err := h.conn.Query(ctx, `
		SELECT region, occurred_at FROM complaints
		WHERE occurred_at >= ? AND occurred_at < ?
		LIMIT 1 BY event_id, region`, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("cannot list complaints: %w", err)
	}
	defer rows.Close()
	var out []spike.Record
	for rows.Next() {
		var r spike.Record
		if err := rows.Scan(&r.Region, &r.At); err != nil {
			return nil, fmt.Errorf("cannot read complaints: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ForBacktest returns a spike evaluator for evaluation times in [from, to]
// of the spike rules in rules that reads the complaints once: everything
// the rules' detectors can reach from those times. It returns s itself
// when its history cannot list complaints.
func (s *SpikeRules) ForBacktest(ctx context.Context, rules []Rule, from, to time.Time) (SpikeRuleEvaluator, error) {
	src, ok := s.history.(spike.RecordReader)
	if !ok {
		return s, nil
	}
	var reach time.Duration
	found := false
	for _, r := range rules {
		if r.Kind != KindSpike {
			continue
		}
		d, err := s.detector(r)
		if err != nil {
			return nil, err
		}
		reach = max(reach, d.Reach())
		found = true
	}
	if !found {
		return s, nil
	}
	// Its steps judge at times truncated to SpikeStep.
	h, err := spike.Preload(ctx, src, reach, from.Truncate(SpikeStep), to)
	if err != nil {
		return nil, err
	}
	b := NewSpikeRules(h)
	// Share the detectors (same settings, same code), not what they
	// found live.
	s.mu.Lock()
	for k, d := range s.detectors {
		b.detectors[k] = &spikeDetector{Detector: d.Detector}
	}
	s.mu.Unlock()
	return b, nil
}
