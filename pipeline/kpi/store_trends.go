package kpi

import (
	"context"
	"time"
)

// Trends returns several metrics over consecutive steps of w, without a
// breakdown, from one computation: the wall's trend charts in one query
// instead of one per metric. Metrics are named as Timeseries takes them;
// the result maps each name to its points, which are the points
// Timeseries gives for that metric (the same computation answers both).
// asOf is the time of the newest data the points can hold (the live
// view's last refresh, or the query itself).
func (s *KPIStore) Trends(ctx context.Context, metrics []string, step time.Duration, w Window, f Filters) (_ map[string][]Point, asOf time.Time, _ error) {
	type ref struct{ name, stat string }
	refs := make([]ref, len(metrics))
	for i, metric := range metrics {
		name, stat, err := seriesMetric(metric)
		if err != nil {
			return nil, time.Time{}, err
		}
		refs[i] = ref{name, stat}
	}
	steps, err := s.stepCount(w, step)
	if err != nil {
		return nil, time.Time{}, err
	}
	cells, a, err := s.compute(ctx, w, f, DimNone, step, false)
	if err != nil {
		return nil, time.Time{}, err
	}
	out := make(map[string][]Point, len(metrics))
	for _, m := range metrics {
		out[m] = make([]Point, 0, steps)
	}
	for i := range steps {
		snap := Snapshot{}
		if c := cells[cellKey{bucket: i, key: ""}]; c != nil {
			snap = c.snapshot()
		}
		at := w.From.Add(time.Duration(i) * step).UTC()
		for j, r := range refs {
			v, _, _ := snap.Value(r.name, r.stat)
			out[metrics[j]] = append(out[metrics[j]], Point{Time: at, Value: v})
		}
	}
	return out, a.asOf, nil
}
