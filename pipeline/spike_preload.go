package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Backtests of spike rules read the complaint history once, not once per
// step: the complaints of the whole span the detector can reach are listed
// from the store, and every step is evaluated over them in memory. The
// detector is the same and so are its ranges, so a step at T gives exactly
// what a live evaluation at T gives over the same complaints.

// SpikeRecordReader is a SpikeHistory that can list its complaints.
type SpikeRecordReader interface {
	SpikeHistory
	// SpikeRecords returns the complaints whose event time lies in
	// [from, to), each event once.
	SpikeRecords(ctx context.Context, from, to time.Time) ([]SpikeRecord, error)
}

// SpikeRecords lists complaints in [from, to), a repeated event_id once
// (the same rule as SpikeCounts' uniqExact).
func (h *ClickHouseSpikeHistory) SpikeRecords(ctx context.Context, from, to time.Time) ([]SpikeRecord, error) {
	rows, err := h.conn.Query(ctx, `
		SELECT region, occurred_at FROM events
		WHERE type = 'complaint.filed' AND occurred_at >= ? AND occurred_at < ?
		LIMIT 1 BY event_id, region`, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("cannot list complaints: %w", err)
	}
	defer rows.Close()
	var out []SpikeRecord
	for rows.Next() {
		var r SpikeRecord
		if err := rows.Scan(&r.Region, &r.At); err != nil {
			return nil, fmt.Errorf("cannot read complaints: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SpikeRecords implements SpikeRecordReader.
func (h *SpikeMemoryHistory) SpikeRecords(ctx context.Context, from, to time.Time) ([]SpikeRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []SpikeRecord
	lo, hi := from.UnixNano(), to.UnixNano()
	for i, ts := range h.times {
		a, _ := slices.BinarySearch(ts, lo)
		b, _ := slices.BinarySearch(ts, hi)
		for _, t := range ts[a:b] {
			out = append(out, SpikeRecord{Region: h.regions[i], At: time.Unix(0, t).UTC()})
		}
	}
	return out, nil
}

// spikeReach is how far before an evaluation time d's ranges can reach.
func (d *SpikeDetector) spikeReach() time.Duration {
	var r time.Duration
	for _, w := range d.cfg.Windows {
		span := d.spikeSpan(w)
		r = max(r, w+span, // one slice of each kind, and the window
			time.Duration(spikeTrailingBuckets)*span+w) // the trailing slices
	}
	return time.Duration(d.cfg.HistoryWeeks)*spikeWeek + r
}

// spikeSpanHistory serves SpikeCounts from complaints preloaded for
// [lo, hi) and refuses ranges outside it, so a backtest can never quietly
// count nothing where it read nothing.
type spikeSpanHistory struct {
	mem    *SpikeMemoryHistory
	start  time.Time
	lo, hi time.Time
}

func (p *spikeSpanHistory) SpikeCounts(ctx context.Context, ranges []SpikeRange) ([]map[string]float64, error) {
	for _, r := range ranges {
		if r.To.After(r.From) && (r.From.Before(p.lo) || r.To.After(p.hi)) {
			return nil, fmt.Errorf("range [%s, %s) outside the preloaded [%s, %s)", r.From.Format(time.RFC3339),
				r.To.Format(time.RFC3339), p.lo.Format(time.RFC3339), p.hi.Format(time.RFC3339))
		}
	}
	return p.mem.SpikeCounts(ctx, ranges)
}

func (p *spikeSpanHistory) SpikeDataStart(context.Context) (time.Time, error) { return p.start, nil }

// ForBacktest returns a spike evaluator for evaluation times in [from, to]
// of the spike rules in rules that reads the complaints once: everything
// the rules' detectors can reach from those times. It returns s itself
// when its history cannot list complaints.
func (s *SpikeRules) ForBacktest(ctx context.Context, rules []Rule, from, to time.Time) (SpikeRuleEvaluator, error) {
	src, ok := s.history.(SpikeRecordReader)
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
		reach = max(reach, d.spikeReach())
		found = true
	}
	if !found {
		return s, nil
	}
	if to.Before(from) {
		return nil, errors.New("spike backtest: to before from")
	}
	start, err := src.SpikeDataStart(ctx)
	if err != nil {
		return nil, fmt.Errorf("spike backtest: read data start: %w", err)
	}
	lo, hi := from.Add(-reach), to.Add(time.Nanosecond)
	recs, err := src.SpikeRecords(ctx, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("spike backtest: %w", err)
	}
	h := &spikeSpanHistory{mem: NewSpikeMemoryHistory(recs, start), start: start, lo: lo, hi: hi}
	if start.IsZero() {
		// No data: the memory history must not invent a start from the
		// (empty) records either.
		h.mem.start = time.Time{}
	}
	b := NewSpikeRules(h)
	// Share the detectors (same settings, same code).
	s.mu.Lock()
	for k, d := range s.detectors {
		b.detectors[k] = d
	}
	s.mu.Unlock()
	return b, nil
}
