package simulate

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a [Simulator]. Start from [DefaultConfig]: the zero
// value is not valid (PeakRate 0 produces no traffic), and zero shares are
// meaningful (BotFirstShare 0 means every conversation starts with a human),
// so zero fields are not silently replaced by defaults.
type Config struct {
	// Seed makes the traffic reproducible: the same seed, start time and
	// anchor produce the same events. Default 1.
	Seed uint64 `yaml:"seed"`
	// PeakRate is the arrival rate of new conversations at the busiest
	// moment of a weekday, in conversations per second. A conversation
	// produces about 11 events. Default 20 (about 230 events/s at peak).
	PeakRate float64 `yaml:"peak_rate"`
	// Floor is the lowest traffic level of the diurnal curve, as a fraction
	// of PeakRate in [0,1]. 0 keeps the natural night (about 3% of peak at
	// 04:00 Shanghai time); raise it (e.g. 0.5) to demo at night. Default 0.
	Floor float64 `yaml:"floor"`
	// WeekendFactor scales Saturday and Sunday traffic (Shanghai dates), in
	// (0,1]. Default 0.85.
	WeekendFactor float64 `yaml:"weekend_factor"`
	// BotFirstShare is the share of conversations answered first by the
	// bot (entry=bot), in [0,1]. Default 0.75.
	BotFirstShare float64 `yaml:"bot_first_share"`
	// TransferShare is the share of bot-first conversations that ask for a
	// human (transfer.requested), in [0,1]. Default 0.20.
	TransferShare float64 `yaml:"transfer_share"`

	// Anchor is the origin of the incident schedule: incident offsets count
	// from it and no incident happens before it. Zero means the time New is
	// called, so a live demo shows its first incident minutes after start
	// and a backfill ending at start is incident-free. Default zero.
	Anchor time.Time `yaml:"anchor"`
	// Incidents are the scheduled incidents. nil in DefaultConfig is
	// replaced by DefaultIncidents(); an empty, non-nil slice means none.
	Incidents []IncidentSpec `yaml:"incidents"`
	// Faults injects late, duplicate and invalid events. Default: none.
	Faults Faults `yaml:"faults"`

	// Backfill makes Run start its simulated clock this long before the
	// wall clock and catch up as fast as the sink accepts, so the dashboards
	// have history the moment the demo starts. At most 29 days (the contract
	// rejects events older than 30 days). Default 0.
	Backfill time.Duration `yaml:"backfill"`
	// FlushInterval is how often Run writes the events that came due, so it
	// bounds how far behind the wall clock an event reaches the sink.
	// Default 100ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBatch is the most events handed to one Sink.Write. Default 5000.
	MaxBatch int `yaml:"max_batch"`
	// LogEvery is the interval of Run's progress log line; 0 disables it.
	// Default 30s.
	LogEvery time.Duration `yaml:"log_every"`
}

// Faults configures deliberate imperfections of the delivered stream. All
// shares are per emitted event, in [0,1].
type Faults struct {
	// LateShare of events are delivered after their occurred_at, by a
	// uniform delay in (0, MaxLateness]. Default 0.
	LateShare float64 `yaml:"late_share"`
	// MaxLateness bounds the delivery delay of a late event. Default 90s,
	// inside the ingest's default allowed lateness of 10 minutes.
	MaxLateness time.Duration `yaml:"max_lateness"`
	// DuplicateShare of events are delivered a second time, unchanged (same
	// event_id), within 5 s, as a producer retry would. Default 0.
	DuplicateShare float64 `yaml:"duplicate_share"`
	// InvalidShare of events are followed by a corrupted copy with a fresh
	// event_id (missing region, unknown channel, sentiment out of range,
	// CSAT score 7, timestamp an hour ahead, message without actor) that the
	// contract rejects: traffic for the dead-letter path. The originals are
	// delivered too, so the valid stream is unaffected. Default 0.
	InvalidShare float64 `yaml:"invalid_share"`
	// InFastForward applies the faults in Generate too. When false, Generate
	// emits clean history in strict occurred_at order. Default false.
	InFastForward bool `yaml:"in_fast_forward"`
}

// DemoFaults are the faults suggested for `cockpit demo`: enough late,
// duplicate and invalid events for the lateness, de-duplication and
// dead-letter counters to move, too few to bend any KPI visibly.
func DemoFaults() Faults {
	return Faults{LateShare: 0.01, MaxLateness: 90 * time.Second, DuplicateShare: 0.002, InvalidShare: 0.0005}
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Seed:          1,
		PeakRate:      20,
		WeekendFactor: 0.85,
		BotFirstShare: 0.75,
		TransferShare: 0.20,
		Incidents:     DefaultIncidents(),
		Faults:        Faults{MaxLateness: 90 * time.Second},
		FlushInterval: 100 * time.Millisecond,
		MaxBatch:      5000,
		LogEvery:      30 * time.Second,
	}
}

// DemoBackfill is the history `cockpit demo` generates before it goes
// live. The complaint spike rule judges each region against its own
// history; while that history is younger than a day it uses the trailing
// hours, and it judges nothing until its longest window (30 minutes) and
// one hour-long baseline slice before it, 1.5 h in all, hold data. The
// first complaint spike of DefaultIncidents starts 5 minutes after the
// demo, so the history must be at least 1 h 25 min long. Run's warm-up
// (WarmUp) keeps the simulation's filling from empty out of it; without
// the warm-up the history was 2 h, a third more events for the demo's
// start-up to store.
const DemoBackfill = 90 * time.Minute

// maxBackfill keeps backfilled events inside the contract's 30-day max age
// with a day to spare for a slow catch-up.
const maxBackfill = 29 * 24 * time.Hour

// Validate reports the first invalid field; it does not change c.
func (c Config) Validate() error {
	share := func(name string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%s must be in [0,1], got %v", name, v)
		}
		return nil
	}
	switch {
	case !(c.PeakRate > 0) || c.PeakRate > 1e6:
		return fmt.Errorf("peak_rate must be in (0, 1e6] conversations/s, got %v", c.PeakRate)
	case !(c.WeekendFactor > 0 && c.WeekendFactor <= 1):
		return fmt.Errorf("weekend_factor must be in (0,1], got %v", c.WeekendFactor)
	case c.Backfill < 0 || c.Backfill > maxBackfill:
		return fmt.Errorf("backfill must be in [0, %s], got %s", maxBackfill, c.Backfill)
	case c.FlushInterval < time.Millisecond || c.FlushInterval > time.Minute:
		return fmt.Errorf("flush_interval must be in [1ms, 1m], got %s", c.FlushInterval)
	case c.MaxBatch < 1:
		return fmt.Errorf("max_batch must be at least 1, got %d", c.MaxBatch)
	case c.LogEvery < 0:
		return fmt.Errorf("log_every must not be negative, got %s", c.LogEvery)
	}
	for _, s := range []struct {
		name string
		v    float64
	}{
		{"floor", c.Floor}, {"bot_first_share", c.BotFirstShare}, {"transfer_share", c.TransferShare},
		{"faults.late_share", c.Faults.LateShare}, {"faults.duplicate_share", c.Faults.DuplicateShare},
		{"faults.invalid_share", c.Faults.InvalidShare},
	} {
		if err := share(s.name, s.v); err != nil {
			return err
		}
	}
	if c.Faults.LateShare > 0 && (c.Faults.MaxLateness < time.Millisecond || c.Faults.MaxLateness > 24*time.Hour) {
		return fmt.Errorf("faults.max_lateness must be in [1ms, 24h] when late_share > 0, got %s", c.Faults.MaxLateness)
	}
	for i, in := range c.Incidents {
		if err := in.validate(); err != nil {
			return fmt.Errorf("incidents[%d] (%s): %w", i, in.Kind, err)
		}
	}
	return nil
}

// IncidentKind names a scheduled incident.
type IncidentKind string

// The incidents the simulator can stage.
const (
	// ComplaintSpike multiplies the complaint probability of one region's
	// conversations by Factor (default 6), as a local outage would, and
	// shifts their categories towards network_outage.
	ComplaintSpike IncidentKind = "complaint_spike"
	// QueueSlowdown multiplies one queue's agent reply delays and the human
	// wait of conversations routed to it by Factor (default 4). Slower agents
	// also stay busy longer, so the queue's load rises and waits grow a
	// little beyond Factor, and more customers abandon.
	QueueSlowdown IncidentKind = "queue_slowdown"
	// ResolutionSlide lowers one business line's probability of closing a
	// conversation resolved in Steps equal steps, reaching Factor times its
	// usual value (default 0.4) in the last step, then recovers at once.
	ResolutionSlide IncidentKind = "resolution_slide"
)

// IncidentSpec schedules one kind of incident, recurring every Every from
// Anchor+Offset. Occurrence k hits Targets[k mod len(Targets)], so a
// recurring incident moves around the regions, queues or business lines.
type IncidentSpec struct {
	// Kind is what happens.
	Kind IncidentKind `yaml:"kind"`
	// Targets are region names (ComplaintSpike), queue names
	// (QueueSlowdown) or business lines (ResolutionSlide), used in turn.
	Targets []string `yaml:"targets"`
	// Offset is the start of the first occurrence after the anchor.
	Offset time.Duration `yaml:"offset"`
	// Duration is how long each occurrence lasts.
	Duration time.Duration `yaml:"duration"`
	// Every is the period of recurrence; 0 means once. At least Duration.
	Every time.Duration `yaml:"every"`
	// Factor is the multiplier described on each kind.
	Factor float64 `yaml:"factor"`
	// Steps is the number of steps of a ResolutionSlide (default 6); unused
	// by the other kinds.
	Steps int `yaml:"steps"`
}

// DefaultIncidents is a schedule for a live demo: a queue slows down 3
// minutes after the anchor, a region's complaints spike after 5, a
// business line's resolution rate starts sliding after 8, and each recurs
// hourly on the next target.
func DefaultIncidents() []IncidentSpec {
	return []IncidentSpec{
		{Kind: QueueSlowdown, Targets: []string{"broadband-l1", "billing-l1", "mobile-l1"},
			Offset: 3 * time.Minute, Duration: 20 * time.Minute, Every: time.Hour, Factor: 4},
		{Kind: ComplaintSpike, Targets: []string{"广州", "成都", "杭州", "武汉"},
			Offset: 5 * time.Minute, Duration: 15 * time.Minute, Every: time.Hour, Factor: 6},
		{Kind: ResolutionSlide, Targets: []string{"mobile", "billing", "broadband"},
			Offset: 8 * time.Minute, Duration: 30 * time.Minute, Every: time.Hour, Factor: 0.4, Steps: 6},
	}
}

func (s *IncidentSpec) validate() error {
	if len(s.Targets) == 0 {
		return errors.New("targets must not be empty")
	}
	var known func(string) bool
	switch s.Kind {
	case ComplaintSpike:
		known = func(t string) bool { return regionIndex(t) >= 0 }
		if !(s.Factor >= 1 && s.Factor <= 100) {
			return fmt.Errorf("factor must be in [1,100], got %v", s.Factor)
		}
	case QueueSlowdown:
		known = func(t string) bool { return queueIndex(t) >= 0 }
		if !(s.Factor >= 1 && s.Factor <= 100) {
			return fmt.Errorf("factor must be in [1,100], got %v", s.Factor)
		}
	case ResolutionSlide:
		known = func(t string) bool { return lineIndex(t) >= 0 }
		if !(s.Factor >= 0 && s.Factor < 1) {
			return fmt.Errorf("factor must be in [0,1), got %v", s.Factor)
		}
		if s.Steps < 1 || s.Steps > 100 {
			return fmt.Errorf("steps must be in [1,100], got %d", s.Steps)
		}
	default:
		return fmt.Errorf("unknown kind %q (want %s, %s or %s)", s.Kind, ComplaintSpike, QueueSlowdown, ResolutionSlide)
	}
	for _, t := range s.Targets {
		if !known(t) {
			return fmt.Errorf("unknown target %q", t)
		}
	}
	switch {
	case s.Offset < 0:
		return fmt.Errorf("offset must not be negative, got %s", s.Offset)
	case s.Duration < time.Second:
		return fmt.Errorf("duration must be at least 1s, got %s", s.Duration)
	case s.Every != 0 && s.Every < s.Duration:
		return fmt.Errorf("every (%s) must be 0 or at least duration (%s)", s.Every, s.Duration)
	}
	return nil
}
