package simulate

import (
	"slices"
	"sync"
	"time"
)

// written follows how far a Run's backfill has been handed to its sink,
// by the wall clock: a consumer that had read everything the sink took
// by some moment holds the history up to the simulated time written by
// then, and no further (Simulator.Produced).
type written struct {
	mu       sync.Mutex
	backfill bool        // the Run writes (or wrote) a history
	from     time.Time   // the history's start
	done     time.Time   // when it was all written; zero while it is written
	at, upTo []time.Time // accepted writes: when, and the simulated time reached
}

func (w *written) begin(backfill bool, from time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backfill, w.from, w.done = backfill, from, time.Time{}
	w.at, w.upTo = w.at[:0], w.upTo[:0]
}

// note records that the sink took the history up to upTo at at. A write
// holds thousands of events (Config.MaxBatch), so a month's history is a
// few tens of thousands of notes.
func (w *written) note(at, upTo time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.at); n > 0 && !upTo.After(w.upTo[n-1]) {
		return
	}
	w.at, w.upTo = append(w.at, at), append(w.upTo, upTo)
}

// finish records that the history was all written at at: from then on
// the producer writes on the wall clock.
func (w *written) finish(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = at
}

// by is how far the history written by wall time t reaches.
func (w *written) by(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.backfill || (!w.done.IsZero() && !t.Before(w.done)) {
		return t
	}
	// The last write at or before t.
	i, found := slices.BinarySearchFunc(w.at, t, func(a, t time.Time) int { return a.Compare(t) })
	if found {
		i++
	}
	if i == 0 {
		return w.from
	}
	return w.upTo[i-1]
}
