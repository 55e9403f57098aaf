package simulate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockpit-cs/cockpit/schemas"
)

// Simulator generates conversation traffic from a Config. Generate and Run
// may be called any number of times, also concurrently: each call runs its
// own simulation and only the Stats are shared.
type Simulator struct {
	cfg    Config
	anchor time.Time
	m      *model
	stats  *counters
	logger *slog.Logger

	// written follows the last Run's backfill (Produced).
	written written
}

// New checks cfg and prepares a simulator. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	anchor := cfg.Anchor
	if anchor.IsZero() {
		anchor = time.Now().Truncate(time.Second)
	}
	s := &Simulator{
		cfg:    cfg,
		anchor: anchor,
		m:      newModel(&cfg, anchor.UnixMilli()),
		stats:  newCounters(),
		logger: logger,
	}
	// A history to write from the start: whoever asks Produced before
	// Run begins must not find a producer that is current.
	s.written.begin(cfg.Backfill > 0, time.Now().Add(-cfg.Backfill))
	return s, nil
}

// Produced is how far in time the events Run had handed its sink by wall
// time t reach: while Run writes a backfill, the simulated moment its
// last write accepted by t had come to (the history's start before the
// first); t itself from the moment the history was all written, and for
// a simulator without a backfill. A consumer that had read everything
// produced by t holds nothing newer: the events of the minutes after it
// were not produced yet, so counts and an all-clear read from them are
// not those of t. It follows the last Run started.
func (s *Simulator) Produced(t time.Time) time.Time {
	return s.written.by(t)
}

// Anchor returns the origin of the incident schedule.
func (s *Simulator) Anchor() time.Time { return s.anchor }

// Schedule returns the incident occurrences that overlap [from, to),
// ordered by start time.
func (s *Simulator) Schedule(from, to time.Time) []Incident {
	return s.m.sched.list(from, to)
}

// Stats are running totals over every Generate and Run of a Simulator.
type Stats struct {
	// Events is the number of events handed to a sink or callback,
	// duplicates and invalid copies included.
	Events uint64
	// Conversations is the number of conversations started.
	Conversations uint64
	// ByType counts the generated events by type, without the copies the
	// faults add.
	ByType map[schemas.EventType]uint64
	// Late, Duplicates and Invalid count the events the faults delayed,
	// repeated or corrupted.
	Late, Duplicates, Invalid uint64
}

// Stats returns a snapshot of the running totals. It is safe to call while
// Run or Generate is running.
func (s *Simulator) Stats() Stats {
	st := Stats{
		Events:        s.stats.events.Load(),
		Conversations: s.stats.conversations.Load(),
		ByType:        make(map[schemas.EventType]uint64, len(schemas.EventTypes)),
		Late:          s.stats.late.Load(),
		Duplicates:    s.stats.duplicates.Load(),
		Invalid:       s.stats.invalid.Load(),
	}
	for i, t := range schemas.EventTypes {
		st.ByType[t] = s.stats.byType[i].Load()
	}
	return st
}

// Generate simulates [from, to) as fast as possible and calls emit with
// each event, in occurred_at order (in delivery order when
// Faults.InFastForward is set). The simulation starts empty at from, so
// the first minutes have no conversations older than from; conversations
// still open at to are cut off there. The events are the same for the same
// seed, from and anchor. It stops at the first error emit returns and
// returns that error.
func (s *Simulator) Generate(from, to time.Time, emit func(schemas.Event) error) error {
	if emit == nil {
		return errors.New("generate: emit must not be nil")
	}
	if !from.Before(to) {
		return fmt.Errorf("generate: from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	e := newEngine(s.m, s.stats, from, s.cfg.Faults.InFastForward)
	e.emit = emit
	return e.advance(to.UnixMilli() - 1)
}

// errStopped unwinds the simulation when Run's context ends during a write.
var errStopped = errors.New("simulation stopped")

// Run emits events in real time: every FlushInterval it writes to sink the
// events whose occurred_at (delivery time, with late faults) has come due
// on the wall clock, in batches of at most MaxBatch. With Backfill it first
// catches up from Backfill ago as fast as the sink accepts, from a warm
// start (WarmUp). A failed write
// is logged and retried with back-off (the events then arrive late, as
// they would from a real producer), so a broker restart does not end the
// traffic. Run returns nil when ctx ends.
func (s *Simulator) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return errors.New("run: sink must not be nil")
	}
	start := time.Now()
	from := start.Add(-s.cfg.Backfill)
	var warmUp time.Duration
	if s.cfg.Backfill > 0 {
		warmUp = WarmUp
	}
	s.written.begin(s.cfg.Backfill > 0, from)
	e := newEngine(s.m, s.stats, from.Add(-warmUp), true)
	batch := make([]schemas.Event, 0, min(s.cfg.MaxBatch, 4096))
	// emitted counts the events handed to the sink (the warm-up's silent
	// ones are in the stats, not here).
	var emitted int
	// The backfill is the first advance below, which lasts as long as the
	// sink takes to accept the history (half a minute or more), so its
	// progress is logged from the writes, at most every 10 s.
	backfilling := s.cfg.Backfill > 0
	backfillLogEvery := min(s.cfg.LogEvery, 10*time.Second)
	lastLog, lastEvents := start, s.stats.events.Load()
	write := func() error {
		backoff := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := sink.Write(ctx, batch)
			if err == nil {
				if backfilling {
					// How far the history has come, by the simulation's
					// clock, not the events' own times: a late event is
					// older, a corrupted one may be hours ahead. The
					// warm-up hands its events over at the history's
					// start.
					now, reached := time.Now(), time.UnixMilli(e.clock).In(Zone)
					s.written.note(now, reached)
					if backfillLogEvery > 0 && now.Sub(lastLog) >= backfillLogEvery {
						s.logger.Info("simulator backfilling", "at", reached.Format(time.RFC3339), "behind", now.Sub(reached).Round(time.Second),
							"events", emitted, "elapsed", now.Sub(start).Round(time.Second))
						lastLog = now
					}
				}
				batch = batch[:0]
				return nil
			}
			if ctx.Err() != nil {
				return errStopped
			}
			// At most one line per back-off period, which grows to 5 s.
			s.logger.Warn("cannot write simulated events, retrying", "events", len(batch), "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return errStopped
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	// ended holds the conversations that ended during the warm-up: what
	// is left of them (a late delivery, a survey after the close) is not
	// emitted either, so no event in the history lacks its start.
	var ended map[string]bool
	out := func(ev schemas.Event) error {
		if ended[ev.ConversationID] {
			return nil
		}
		emitted++
		batch = append(batch, ev)
		if len(batch) >= s.cfg.MaxBatch {
			return write()
		}
		return nil
	}
	if warmUp > 0 {
		var err error
		ended, err = warm(e, from, out)
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	e.emit = out

	s.logger.Info("simulator running", "peak_rate", s.cfg.PeakRate, "seed", s.cfg.Seed,
		"backfill", s.cfg.Backfill, "anchor", s.anchor.Format(time.RFC3339))
	for _, in := range s.Schedule(start, start.Add(3*time.Hour)) {
		s.logger.Info("simulator incident scheduled", "kind", in.Kind, "target", in.Target,
			"start", in.Start.Format(time.RFC3339), "end", in.End.Format(time.RFC3339), "factor", in.Factor)
	}

	ticker := time.NewTicker(s.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		now := time.Now()
		err := e.advance(now.UnixMilli())
		if err == nil && len(batch) > 0 {
			err = write()
		}
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if backfilling {
			backfilling, ended = false, nil
			s.written.finish(time.Now())
			s.logger.Info("simulator backfill done", "backfill", s.cfg.Backfill, "warm_up", warmUp, "events", emitted,
				"took", time.Since(start).Round(100*time.Millisecond))
			lastLog, lastEvents = time.Now(), s.stats.events.Load()
		}
		if s.cfg.LogEvery > 0 && now.Sub(lastLog) >= s.cfg.LogEvery {
			events := s.stats.events.Load()
			waiting := 0
			for _, q := range e.queues {
				waiting += q.waiting
			}
			s.logger.Info("simulator progress", "events", events,
				"events_per_second", float64(events-lastEvents)/now.Sub(lastLog).Seconds(),
				"conversations", s.stats.conversations.Load(), "open_conversations", len(e.steps),
				"waiting_for_human", waiting)
			lastLog, lastEvents = now, events
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// WarmUp is how long Run simulates in silence before a backfill. The
// simulation starts empty and takes about half an hour to fill its queues
// and open conversations; a history that began that way would show the
// filling as a rise in every chart, and judge the first baseline slice of
// the spike rule against it. After the warm-up the history starts busy:
// the conversations open at its start come with their earlier events (a
// few minutes older than the history), those that ended before it not at
// all.
const WarmUp = 30 * time.Minute

// warm runs e up to from without emitting, then hands emit the events of
// the conversations still open at from, oldest first, and returns the
// conversations that ended before it.
func warm(e *engine, from time.Time, emit func(schemas.Event) error) (map[string]bool, error) {
	held := map[string][]schemas.Event{}
	ended := map[string]bool{}
	e.emit = func(ev schemas.Event) error {
		id := ev.ConversationID
		switch {
		case ended[id]:
		case ev.Type == schemas.ConversationClosed || ev.Type == schemas.ConversationAbandoned:
			delete(held, id)
			ended[id] = true
		default:
			held[id] = append(held[id], ev)
		}
		return nil
	}
	if err := e.advance(from.UnixMilli() - 1); err != nil {
		return nil, err
	}
	var open []schemas.Event
	for _, evs := range held {
		open = append(open, evs...)
	}
	slices.SortStableFunc(open, func(a, b schemas.Event) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), cmp.Compare(a.EventID, b.EventID))
	})
	for _, ev := range open {
		if err := emit(ev); err != nil {
			return nil, err
		}
	}
	return ended, nil
}
