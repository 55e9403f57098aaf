package spike

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

// RecordReader is a History that can list its complaints.
type RecordReader interface {
	History
	// SpikeRecords returns the complaints whose event time lies in
	// [from, to), each event once.
	SpikeRecords(ctx context.Context, from, to time.Time) ([]Record, error)
}

// SpikeRecords implements RecordReader.
func (h *MemoryHistory) SpikeRecords(ctx context.Context, from, to time.Time) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Record
	lo, hi := from.UnixNano(), to.UnixNano()
	for i, ts := range h.times {
		a, _ := slices.BinarySearch(ts, lo)
		b, _ := slices.BinarySearch(ts, hi)
		for _, t := range ts[a:b] {
			out = append(out, Record{Region: h.regions[i], At: time.Unix(0, t).UTC()})
		}
	}
	return out, nil
}

// Reach is how far before an evaluation time d's ranges can reach.
func (d *Detector) Reach() time.Duration {
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
	mem    *MemoryHistory
	start  time.Time
	lo, hi time.Time
}

func (p *spikeSpanHistory) SpikeCounts(ctx context.Context, ranges []Range) ([]map[string]float64, error) {
	for _, r := range ranges {
		if r.To.After(r.From) && (r.From.Before(p.lo) || r.To.After(p.hi)) {
			return nil, fmt.Errorf("range [%s, %s) outside the preloaded [%s, %s)", r.From.Format(time.RFC3339),
				r.To.Format(time.RFC3339), p.lo.Format(time.RFC3339), p.hi.Format(time.RFC3339))
		}
	}
	return p.mem.SpikeCounts(ctx, ranges)
}

func (p *spikeSpanHistory) SpikeDataStart(context.Context) (time.Time, error) { return p.start, nil }

// Preload returns a History for evaluations at times in [from, to] of
// detectors that reach at most reach back: it reads from src, once, the
// complaints from reach before from up to to, and refuses ranges outside
// them.
func Preload(ctx context.Context, src RecordReader, reach time.Duration, from, to time.Time) (History, error) {
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
	h := &spikeSpanHistory{mem: NewMemoryHistory(recs, start), start: start, lo: lo, hi: hi}
	if start.IsZero() {
		// No data: the memory history must not invent a start from the
		// (empty) records either.
		h.mem.start = time.Time{}
	}
	return h, nil
}
