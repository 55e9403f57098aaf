package pipeline

import (
	"context"
	"fmt"
	"time"
)

// Trends returns several metrics over consecutive steps of w, without a
// breakdown, from one computation: the wall's trend charts in one query
// instead of one per metric. Metrics are named as Timeseries takes them;
// the result maps each name to its points.
func (s *KPIStore) Trends(ctx context.Context, metrics []string, step time.Duration, w Window, f Filters) (map[string][]Point, error) {
	type ref struct{ name, stat string }
	refs := make([]ref, len(metrics))
	var probe Snapshot
	for i, metric := range metrics {
		name, stat := metric, ""
		if j := lastDot(metric); j >= 0 {
			name, stat = metric[:j], metric[j+1:]
		}
		m, ok := MetricByName(name)
		if !ok {
			return nil, fmt.Errorf("unknown metric %q", metric)
		}
		if m.Kind == MetricGauge {
			return nil, fmt.Errorf("metric %s is a gauge: it has no time series", name)
		}
		if m.Kind == MetricQuantile && stat == "" {
			stat = "p90"
		}
		if _, _, err := probe.Value(name, stat); err != nil {
			return nil, err
		}
		refs[i] = ref{name, stat}
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if step < time.Millisecond {
		return nil, fmt.Errorf("step %s is shorter than a millisecond", step)
	}
	steps := int64((w.To.Sub(w.From) + step - 1) / step)
	if steps > int64(s.cfg.MaxSteps) {
		return nil, fmt.Errorf("%d steps asked, at most %d allowed", steps, s.cfg.MaxSteps)
	}
	cells, err := s.compute(ctx, w, f, DimNone, step, false)
	if err != nil {
		return nil, err
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
	return out, nil
}
