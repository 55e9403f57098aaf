package spike

import (
	"context"
	"slices"
	"sort"
	"time"
)

// Range is the half-open event-time range [From, To).
type Range struct {
	From, To time.Time
}

// History is where the spike detector reads complaint counts from.
//
// One Evaluate makes exactly two calls: SpikeDataStart (cheap, cacheable)
// and one SpikeCounts with every range it needs: per window the current
// window and its baseline slices (HistoryWeeks weekly slices, or up to
// 7×MinHistoryWeeks daily slices, or up to 24 trailing slices), plus one
// long range for regions' shares. With the defaults that is 4×(1+4)+1 = 21
// ranges in the weekly mode, at most 4×(1+24)+1 = 101.
//
// Over ClickHouse, SpikeCounts is one query whatever the number of ranges,
// e.g. with the bounds as array parameters:
//
//	SELECT region, arrayJoin(arrayFilter(i -> occurred_at >= {from:Array(DateTime64(3))}[i]
//	        AND occurred_at < {to:Array(DateTime64(3))}[i], range(1, length({from:Array(DateTime64(3))}) + 1))) AS idx,
//	       count() AS n
//	FROM complaints
//	WHERE occurred_at >= {min_from:DateTime64(3)} AND occurred_at < {max_to:DateTime64(3)}
//	GROUP BY region, idx
//
// (or the same over an hourly or 5-minute rollup table when the range
// bounds fall on its buckets).
type History interface {
	// SpikeCounts returns, for each range, the number of complaint.filed
	// events per region whose event time lies in the range. The result has
	// one map per range, in order; regions without complaints may be left
	// out. Ranges may overlap. Counts must be finite and non-negative.
	// The detector does not modify or keep the maps.
	SpikeCounts(ctx context.Context, ranges []Range) ([]map[string]float64, error)
	// SpikeDataStart returns the time from which the store holds complete
	// complaint data (the start of ingestion or of retention). Baselines
	// never reach before it, so a young store is not mistaken for a quiet
	// one. The zero time means the store holds no data yet.
	SpikeDataStart(ctx context.Context) (time.Time, error)
}

// Record is one complaint: its region and event time.
type Record struct {
	Region string
	At     time.Time
}

// MemoryHistory is an in-memory History over complaint records,
// for tests and backtests. It is immutable after construction and safe for
// concurrent use.
type MemoryHistory struct {
	start   time.Time
	regions []string
	times   [][]int64 // per region, sorted Unix nanoseconds
}

// NewMemoryHistory indexes records. start is the start of the data; if
// it is zero, the earliest record's time is used. Records with an empty
// region or zero time are ignored.
func NewMemoryHistory(records []Record, start time.Time) *MemoryHistory {
	byRegion := make(map[string][]int64)
	earliest := time.Time{}
	for _, r := range records {
		if r.Region == "" || r.At.IsZero() {
			continue
		}
		byRegion[r.Region] = append(byRegion[r.Region], r.At.UnixNano())
		if earliest.IsZero() || r.At.Before(earliest) {
			earliest = r.At
		}
	}
	h := &MemoryHistory{start: start}
	if h.start.IsZero() {
		h.start = earliest
	}
	for region := range byRegion {
		h.regions = append(h.regions, region)
	}
	sort.Strings(h.regions)
	h.times = make([][]int64, len(h.regions))
	for i, region := range h.regions {
		ts := byRegion[region]
		slices.Sort(ts)
		h.times[i] = ts
	}
	return h
}

// SpikeCounts implements History by binary search per region and range.
func (h *MemoryHistory) SpikeCounts(ctx context.Context, ranges []Range) ([]map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]map[string]float64, len(ranges))
	for i, rg := range ranges {
		m := make(map[string]float64)
		from, to := rg.From.UnixNano(), rg.To.UnixNano()
		if to > from {
			for j, ts := range h.times {
				lo, _ := slices.BinarySearch(ts, from)
				hi, _ := slices.BinarySearch(ts, to)
				if hi > lo {
					m[h.regions[j]] = float64(hi - lo)
				}
			}
		}
		out[i] = m
	}
	return out, nil
}

// SpikeDataStart implements History.
func (h *MemoryHistory) SpikeDataStart(ctx context.Context) (time.Time, error) {
	return h.start, ctx.Err()
}
