package spike

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Episode is a run of consecutive evaluations in which the same scope
// and region fired.
type Episode struct {
	Scope  Scope  `json:"scope"`
	Region string `json:"region,omitempty"`
	// Start and End are the first and last evaluation times that fired.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Evaluations is how many evaluations fired in the episode.
	Evaluations int `json:"evaluations"`
	// Peak is the episode's most significant finding.
	Peak Finding `json:"peak"`
}

// Backtest evaluates d at from, from+step, … up to and including to,
// and merges findings of the same scope and region at consecutive
// evaluation times into episodes, ordered by start time (ties: national
// first, then region). It stops at the first error or when ctx ends.
func Backtest(ctx context.Context, d *Detector, h History, from, to time.Time, step time.Duration) ([]Episode, error) {
	if d == nil || h == nil {
		return nil, errors.New("spike backtest: nil detector or history")
	}
	if step <= 0 {
		return nil, fmt.Errorf("spike backtest: step %s must be > 0", step)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("spike backtest: to %s before from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	type key struct {
		scope  Scope
		region string
	}
	var episodes []Episode
	open := make(map[key]int) // index into episodes of an episode that fired at the previous step
	for t := from; !t.After(to); t = t.Add(step) {
		findings, err := d.Evaluate(ctx, t, h)
		if err != nil {
			return episodes, fmt.Errorf("spike backtest at %s: %w", t.Format(time.RFC3339), err)
		}
		next := make(map[key]int, len(findings))
		for _, f := range findings {
			k := key{f.Scope, f.Region}
			if i, ok := open[k]; ok {
				e := &episodes[i]
				e.End = t
				e.Evaluations++
				if spikeBetter(f, e.Peak) {
					e.Peak = f
				}
				next[k] = i
				continue
			}
			episodes = append(episodes, Episode{
				Scope: f.Scope, Region: f.Region, Start: t, End: t, Evaluations: 1, Peak: f,
			})
			next[k] = len(episodes) - 1
		}
		open = next
	}
	return episodes, nil
}
