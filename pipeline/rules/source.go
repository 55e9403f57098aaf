package rules

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// KPIRuleSource gives rule evaluation its numbers from the KPI store, so a
// rule judges exactly what the wall and the API show. Rules that share a
// window and a scope in one evaluation share one query.
type KPIRuleSource struct {
	kpi *kpi.KPIStore

	mu    sync.Mutex
	cache map[string][]kpi.KeyedSnapshot
}

// NewKPIRuleSource returns the rule source over store.
func NewKPIRuleSource(store *kpi.KPIStore) *KPIRuleSource {
	return &KPIRuleSource{kpi: store, cache: map[string][]kpi.KeyedSnapshot{}}
}

func (s *KPIRuleSource) snapshots(ctx context.Context, from, to time.Time, by string) ([]kpi.KeyedSnapshot, error) {
	key := fmt.Sprintf("%d|%d|%s", from.UnixMilli(), to.UnixMilli(), by)
	s.mu.Lock()
	if snaps, ok := s.cache[key]; ok {
		s.mu.Unlock()
		return snaps, nil
	}
	s.mu.Unlock()
	w := kpi.Window{From: from, To: to}
	var snaps []kpi.KeyedSnapshot
	if by == "" {
		snap, err := s.kpi.KPIs(ctx, w, kpi.Filters{})
		if err != nil {
			return nil, err
		}
		snaps = []kpi.KeyedSnapshot{{Key: "", Snapshot: snap}}
	} else {
		var err error
		if snaps, err = s.kpi.KPIsBy(ctx, w, kpi.Filters{}, kpi.Dimension(by)); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	// Windows move with every evaluation: old entries are never asked
	// again, so the cache is simply emptied when it grows.
	if len(s.cache) >= 64 {
		clear(s.cache)
	}
	s.cache[key] = snaps
	s.mu.Unlock()
	return snaps, nil
}

// Scoped returns metric (its stat) over [from, to) per value of by.
func (s *KPIRuleSource) Scoped(ctx context.Context, metric, stat string, from, to time.Time, by string) ([]ScopedValue, error) {
	snaps, err := s.snapshots(ctx, from, to, by)
	if err != nil {
		return nil, err
	}
	out := make([]ScopedValue, 0, len(snaps))
	for i := range snaps {
		v, volume, err := snaps[i].Snapshot.Value(metric, stat)
		if err != nil {
			return nil, err
		}
		out = append(out, ScopedValue{Key: snaps[i].Key, Value: v, Volume: volume})
	}
	return out, nil
}
