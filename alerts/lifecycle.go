package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// State is where an alert is in its lifecycle.
type State string

// Lifecycle states, as in Prometheus: a condition that holds is pending
// until it has held for the rule's `for`, then firing; a firing alert whose
// condition stopped holding for longer than keep_firing_for is resolved.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
	// StateInactive is a pending alert whose condition cleared before it
	// fired: it is forgotten, and never notified.
	StateInactive State = "inactive"
)

// Record is one alert: one episode of one fingerprint.
type Record struct {
	// ID is the fingerprint and the time the episode became active, so
	// the same episode has the same ID on every instance and after a
	// restart.
	ID          string            `json:"id"`
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	State       State             `json:"state"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	Expected    float64           `json:"expected"`
	Explanation string            `json:"explanation"`
	Summary     string            `json:"summary,omitempty"`
	// ActiveAt is when the condition was first seen holding.
	ActiveAt time.Time `json:"active_at"`
	// StartedAt is when the alert fired (zero while pending).
	StartedAt time.Time `json:"started_at,omitzero"`
	// LastSeen is the last evaluation at which the condition held.
	LastSeen   time.Time     `json:"last_seen"`
	ResolvedAt time.Time     `json:"resolved_at,omitzero"`
	For        time.Duration `json:"-"`
	KeepFiring time.Duration `json:"-"`
	AckedBy    string        `json:"acked_by,omitempty"`
	AckedAt    time.Time     `json:"acked_at,omitzero"`
	AckNote    string        `json:"ack_note,omitempty"`
}

// Fingerprint identifies an alert by its rule and labels (the scope and
// the rule's own labels); the order of labels does not matter.
func Fingerprint(rule string, labels map[string]string) string {
	h := sha256.New()
	h.Write([]byte(rule))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{1})
		h.Write([]byte(labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func recordID(fp string, activeAt time.Time) string {
	return fp + "-" + strconv.FormatInt(activeAt.UnixMilli(), 36)
}

// Change is a lifecycle transition produced by an observation.
type Change struct {
	From, To State
	Alert    Record
}

// Tracker keeps the active alerts (pending and firing) and moves them
// through their lifecycle as evaluations arrive. It is safe for concurrent
// use.
type Tracker struct {
	mu     sync.Mutex
	active map[string]*Record // by fingerprint
}

// NewTracker returns a tracker holding the given active alerts (as loaded
// from the store after a restart).
func NewTracker(active []Record) *Tracker {
	t := &Tracker{active: map[string]*Record{}}
	for _, r := range active {
		if r.State == StatePending || r.State == StateFiring {
			r := r
			t.active[r.Fingerprint] = &r
		}
	}
	return t
}

// Observe applies one evaluation and returns the transitions it caused,
// in a stable order. Alerts of rules that were not evaluated (they
// failed) are left as they are: a store outage must not resolve alerts.
func (t *Tracker) Observe(ev rules.Evaluation) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := ev.At
	var changes []Change
	seen := map[string]bool{}
	for _, c := range ev.Candidates {
		fp := Fingerprint(c.Rule, c.Labels)
		seen[fp] = true
		r, ok := t.active[fp]
		if !ok {
			r = &Record{
				ID: recordID(fp, now), Fingerprint: fp, Rule: c.Rule, Severity: c.Severity,
				State: StatePending, Labels: c.Labels, ActiveAt: now,
			}
			t.active[fp] = r
		}
		r.Value, r.Expected, r.Explanation, r.Summary = c.Value, c.Expected, c.Explanation, c.Summary
		r.Severity, r.For, r.KeepFiring, r.LastSeen = c.Severity, c.For, c.KeepFiring, now
		if r.State == StatePending && now.Sub(r.ActiveAt) >= r.For {
			r.State, r.StartedAt = StateFiring, now
			changes = append(changes, Change{From: StatePending, To: StateFiring, Alert: *r})
		} else if !ok {
			changes = append(changes, Change{From: StateInactive, To: StatePending, Alert: *r})
		}
	}
	for fp, r := range t.active {
		if seen[fp] || !ev.Evaluated[r.Rule] {
			continue
		}
		switch r.State {
		case StatePending:
			// The episode is closed in the store too (state inactive), so
			// no stale pending record outlives it.
			r.State, r.ResolvedAt = StateInactive, now
			delete(t.active, fp)
			changes = append(changes, Change{From: StatePending, To: StateInactive, Alert: *r})
		case StateFiring:
			if now.Sub(r.LastSeen) >= r.KeepFiring {
				r.State, r.ResolvedAt = StateResolved, now
				delete(t.active, fp)
				changes = append(changes, Change{From: StateFiring, To: StateResolved, Alert: *r})
			}
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Alert.ID < changes[j].Alert.ID })
	return changes
}

// Ack records who took an active alert, when and why. It returns false
// when no active alert has that ID.
func (t *Tracker) Ack(id, by, note string, at time.Time) (Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.active {
		if r.ID == id {
			r.AckedBy, r.AckNote, r.AckedAt = by, note, at
			return *r, true
		}
	}
	return Record{}, false
}

// ApplyAcks sets the acknowledgements of the active alerts they name.
func (t *Tracker) ApplyAcks(acks map[string]Ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.active {
		if a, ok := acks[r.ID]; ok {
			r.AckedBy, r.AckNote, r.AckedAt = a.By, a.Note, a.At
		}
	}
}

// Active returns copies of the pending and firing alerts, by ID.
func (t *Tracker) Active() []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Record, 0, len(t.active))
	for _, r := range t.active {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
