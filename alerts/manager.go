package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// Manager runs the alert lifecycle over rule evaluations: it tracks
// alerts, stores every change and its audit entry, and hands the
// dispatcher what must be told.
type Manager struct {
	store      *Store
	tracker    *Tracker
	silences   *Silences
	dispatcher *Dispatcher
	logger     *slog.Logger

	mu        sync.Mutex
	listeners []func([]Change)
	// op serialises the operations that read or replace the state.
	op sync.Mutex
	// silencesAt is the probe whose stamp the silences in force match;
	// silenceLoads counts the reads of the silences table.
	silencesAt   silenceStamp
	silenceLoads int
}

// NewManager loads the active alerts and silences from the store, so a
// restart continues where the last process stopped: no alert is raised
// twice for one fingerprint.
func NewManager(ctx context.Context, store *Store, cfg DispatchConfig, logger *slog.Logger) (*Manager, error) {
	now := time.Now()
	active, err := store.LoadActive(ctx)
	if err != nil {
		return nil, err
	}
	ss, err := store.LoadSilences(ctx, now.Add(-30*24*time.Hour))
	if err != nil {
		return nil, err
	}
	silences, err := NewSilences(ss)
	if err != nil {
		return nil, err
	}
	d, err := NewDispatcher(cfg, silences, store)
	if err != nil {
		return nil, err
	}
	if err := restore(ctx, store, d, active, now); err != nil {
		return nil, err
	}
	logger = logger.With("component", "alerts")
	if len(active) > 0 {
		logger.Info("active alerts restored", "alerts", len(active))
	}
	return &Manager{store: store, tracker: NewTracker(active), silences: silences, dispatcher: d, logger: logger}, nil
}

// Reload replaces the in-memory state with the store's: used when this
// instance takes over alerting from another (or after a gap), so it
// continues the alerts the other raised instead of raising them again.
func (m *Manager) Reload(ctx context.Context, now time.Time) error {
	m.op.Lock()
	defer m.op.Unlock()
	active, err := m.store.LoadActive(ctx)
	if err != nil {
		return err
	}
	ss, err := m.store.LoadSilences(ctx, now.Add(-30*24*time.Hour))
	if err != nil {
		return err
	}
	silences, err := NewSilences(ss)
	if err != nil {
		return err
	}
	d, err := NewDispatcher(m.dispatcher.cfg, silences, m.store)
	if err != nil {
		return err
	}
	if active, err = m.closeStale(ctx, active, now); err != nil {
		return err
	}
	if err := m.repairHistory(ctx, active, now); err != nil {
		return err
	}
	if err := restore(ctx, m.store, d, active, now); err != nil {
		return err
	}
	m.tracker, m.silences, m.dispatcher = NewTracker(active), silences, d
	return nil
}

// closeStale closes the older of two active episodes of one fingerprint
// (an earlier release left a pending episode that cleared open) and
// returns the active alerts without them.
func (m *Manager) closeStale(ctx context.Context, active []Record, now time.Time) ([]Record, error) {
	newest := map[string]Record{}
	for _, r := range active {
		if n, ok := newest[r.Fingerprint]; !ok || r.ActiveAt.After(n.ActiveAt) {
			newest[r.Fingerprint] = r
		}
	}
	var keep, stale []Record
	var history []HistoryEntry
	for _, r := range active {
		if newest[r.Fingerprint].ID == r.ID {
			keep = append(keep, r)
			continue
		}
		h := HistoryEntry{At: now, AlertID: r.ID, Fingerprint: r.Fingerprint, Rule: r.Rule, From: r.State,
			Value: r.Value, Explanation: r.Explanation, Note: "closed: a newer episode of the same alert exists"}
		if r.State == StateFiring {
			r.State = StateResolved
		} else {
			r.State = StateInactive
		}
		r.ResolvedAt, h.To = now, r.State
		stale, history = append(stale, r), append(history, h)
	}
	if len(stale) == 0 {
		return active, nil
	}
	m.logger.Warn("closed alert episodes left open beside a newer one of the same fingerprint", "episodes", len(stale))
	if err := m.store.SaveAlerts(ctx, stale); err != nil {
		return nil, err
	}
	return keep, m.store.AppendHistory(ctx, history)
}

// repairHistory writes the audit entries a process that died between
// storing an alert's new state and its history entry did not write: a
// pending, firing or resolved state with no entry for it. Only the
// leader calls it (through Reload), so two instances do not both repair.
func (m *Manager) repairHistory(ctx context.Context, active []Record, now time.Time) error {
	resolved, err := m.store.LoadResolved(ctx, now.Add(-restoreLookback))
	if err != nil {
		return err
	}
	all := append(slices.Clip(active), resolved...)
	if len(all) == 0 {
		return nil
	}
	since := now.Add(-restoreLookback)
	ids := make([]string, len(all))
	for i, r := range all {
		ids[i] = r.ID
		if r.ActiveAt.Before(since) {
			since = r.ActiveAt
		}
	}
	recorded, err := m.store.Recorded(ctx, ids, since)
	if err != nil {
		return err
	}
	var missing []HistoryEntry
	for _, r := range all {
		if recorded[r.ID][r.State] {
			continue
		}
		h := HistoryEntry{AlertID: r.ID, Fingerprint: r.Fingerprint, Rule: r.Rule, To: r.State,
			Value: r.Value, Explanation: r.Explanation}
		switch r.State {
		case StatePending:
			h.At, h.From = r.ActiveAt, StateInactive
		case StateFiring:
			h.At, h.From = r.StartedAt, StatePending
		case StateResolved:
			h.At, h.From = r.ResolvedAt, StateFiring
		default:
			continue
		}
		missing = append(missing, h)
	}
	if len(missing) == 0 {
		return nil
	}
	m.logger.Warn("alert history lacked transitions stored in the alert state (a process died between the two writes); recorded them now", "entries", len(missing))
	return m.store.AppendHistory(ctx, missing)
}

// restoreLookback is how long after resolving an alert may still be owed
// its resolved notice by a process that died before queueing it.
const restoreLookback = 24 * time.Hour

// restore rebuilds d's groups from the store: the active alerts, those
// resolved within restoreLookback, and the last notification each group
// queued since the oldest of them started (see Dispatcher.Restore).
func restore(ctx context.Context, store *Store, d *Dispatcher, active []Record, now time.Time) error {
	resolved, err := store.LoadResolved(ctx, now.Add(-restoreLookback))
	if err != nil {
		return err
	}
	since := now.Add(-restoreLookback)
	for _, r := range append(slices.Clip(active), resolved...) {
		if r.State != StatePending && !r.StartedAt.IsZero() && r.StartedAt.Before(since) {
			since = r.StartedAt
		}
	}
	last, err := store.LastNotifications(ctx, since)
	if err != nil {
		return err
	}
	d.Restore(active, resolved, last, now)
	return nil
}

// OnChange registers fn to be told of every lifecycle change (the live
// wall's stream).
func (m *Manager) OnChange(fn func([]Change)) {
	m.mu.Lock()
	m.listeners = append(m.listeners, fn)
	m.mu.Unlock()
}

// Observe applies one rule evaluation: transitions are stored (state and
// history) before anything is dispatched, so what recipients hear is
// always in the audit trail.
func (m *Manager) Observe(ctx context.Context, ev rules.Evaluation) error {
	m.op.Lock()
	defer m.op.Unlock()
	if err := m.sync(ctx, ev.At); err != nil {
		return fmt.Errorf("cannot read silences and acks: %w", err)
	}
	changes := m.tracker.Observe(ev)
	active := m.tracker.Active()
	var changed []Record
	var history []HistoryEntry
	for _, ch := range changes {
		changed = append(changed, ch.Alert)
		history = append(history, HistoryEntry{
			At: ev.At, AlertID: ch.Alert.ID, Fingerprint: ch.Alert.Fingerprint, Rule: ch.Alert.Rule,
			From: ch.From, To: ch.To, Value: ch.Alert.Value, Explanation: ch.Alert.Explanation,
		})
		m.logger.Info("alert "+string(ch.To), "rule", ch.Alert.Rule, "labels", ch.Alert.Labels, "explanation", ch.Alert.Explanation)
	}
	if err := m.save(ctx, changed, history); err != nil {
		return err
	}
	m.dispatcher.Update(changes, ev.At)
	m.dispatcher.Refresh(active)
	var firing []Record
	for _, r := range active {
		if r.State == StateFiring {
			firing = append(firing, r)
		}
	}
	if err := m.dispatcher.Flush(ctx, ev.At, firing); err != nil {
		return fmt.Errorf("cannot queue notifications: %w", err)
	}
	if len(changes) > 0 {
		m.mu.Lock()
		ls := append([]func([]Change){}, m.listeners...)
		m.mu.Unlock()
		for _, fn := range ls {
			fn(changes)
		}
	}
	return nil
}

// save writes the alerts' new states and their history. The two writes
// go to different tables and run side by side: each is an insert that
// makes a part, and the tick that fires an alert waits for both before it
// queues a notification. The term is checked once, before either.
func (m *Manager) save(ctx context.Context, changed []Record, history []HistoryEntry) error {
	if len(changed) == 0 && len(history) == 0 {
		return nil
	}
	if err := fenced(ctx); err != nil {
		return err
	}
	wctx := fenceChecked(ctx)
	var herr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		herr = m.store.AppendHistory(wctx, history)
	}()
	aerr := m.store.SaveAlerts(wctx, changed)
	<-done
	return errors.Join(aerr, herr)
}

// ErrNotFound is returned for an unknown alert or silence.
var ErrNotFound = errors.New("not found")

// Ack records that someone took an active alert. It works on any
// instance: the alert is looked up in the store and the ack stored there,
// where the leader reads it on its next tick (Sync).
func (m *Manager) Ack(ctx context.Context, id, by, note string, now time.Time) (Record, error) {
	if by == "" {
		return Record{}, errors.New("ack: by is required")
	}
	r, err := m.store.LoadAlert(ctx, id)
	if err != nil {
		return Record{}, err
	}
	if r.State != StatePending && r.State != StateFiring {
		return Record{}, fmt.Errorf("alert %s is not active: %w", id, ErrNotFound)
	}
	r.AckedBy, r.AckNote, r.AckedAt = by, note, now
	if err := m.store.SaveAck(ctx, Ack{AlertID: id, By: by, Note: note, At: now}); err != nil {
		return Record{}, err
	}
	m.op.Lock()
	m.tracker.ApplyAcks(map[string]Ack{id: {AlertID: id, By: by, Note: note, At: now}})
	m.op.Unlock()
	err = m.store.AppendHistory(ctx, []HistoryEntry{{At: now, AlertID: r.ID, Fingerprint: r.Fingerprint, Rule: r.Rule,
		From: r.State, To: r.State, Actor: by, Note: "ack: " + note, Value: r.Value, Explanation: r.Explanation}})
	return r, err
}

// AddSilence validates and stores a silence; the leader applies it from
// the store on its next tick, whichever instance received it.
func (m *Manager) AddSilence(ctx context.Context, s Silence, now time.Time) (Silence, error) {
	s, err := newSilence(s, now)
	if err != nil {
		return Silence{}, err
	}
	if err := m.store.SaveSilence(ctx, s); err != nil {
		return Silence{}, err
	}
	m.op.Lock()
	defer m.op.Unlock()
	_ = m.silences.Replace(append(m.silences.List(), s))
	return s, nil
}

// ExpireSilence ends a silence now.
func (m *Manager) ExpireSilence(ctx context.Context, id string, now time.Time) (Silence, error) {
	x, err := m.store.LoadSilence(ctx, id)
	if err != nil {
		return Silence{}, err
	}
	x = expire(x, now)
	if err := m.store.SaveSilence(ctx, x); err != nil {
		return Silence{}, err
	}
	m.op.Lock()
	defer m.op.Unlock()
	m.silences.Expire(id, now)
	return x, nil
}

// silenceLookback is how long after its end a silence is still listed.
const silenceLookback = 30 * 24 * time.Hour

// Silences lists the silences (those that ended within 30 days), newest
// first, from the store: every instance answers the same.
func (m *Manager) Silences(ctx context.Context, now time.Time) ([]Silence, error) {
	ss, err := m.store.LoadSilences(ctx, now.Add(-silenceLookback))
	if err != nil {
		return nil, err
	}
	set, err := NewSilences(ss)
	if err != nil {
		return nil, err
	}
	return set.List(), nil
}

// Sync reads what any instance may have changed since the last tick, the
// silences and the acks of the active alerts, into the state the leader
// evaluates with. Observe calls it every tick.
func (m *Manager) Sync(ctx context.Context, now time.Time) error {
	m.op.Lock()
	defer m.op.Unlock()
	return m.sync(ctx, now)
}

func (m *Manager) sync(ctx context.Context, now time.Time) error {
	// Under WithFence, a tick that made no term check since the last sync
	// leaves the silences and acks as they are until the next tick's.
	seen := m.store.silencesSeen.Load()
	if deferred(ctx) && seen != nil && seen.seq == m.silencesAt.seq {
		return nil
	}
	// The acks of the active alerts are read beside the silences: two
	// small reads a tick that fires waits for.
	active := m.tracker.Active()
	ids := make([]string, len(active))
	for i, r := range active {
		ids[i] = r.ID
	}
	var (
		acks    map[string]Ack
		ackErr  error
		ackDone = make(chan struct{})
	)
	go func() {
		defer close(ackDone)
		acks, ackErr = m.store.LoadAcks(ctx, ids)
	}()
	serr := m.syncSilences(ctx, now, seen)
	<-ackDone
	if err := errors.Join(serr, ackErr); err != nil {
		return err
	}
	m.tracker.ApplyAcks(acks)
	return nil
}

// syncSilences reads the silences again unless seen, the stamp of the
// newest term check, says they are unchanged since the last sync: a stamp
// the last sync already used says nothing of writes made after it.
func (m *Manager) syncSilences(ctx context.Context, now time.Time, seen *silenceStamp) error {
	if seen != nil && m.silencesAt.seq != 0 && seen.seq != m.silencesAt.seq && seen.hash == m.silencesAt.hash {
		m.silencesAt.seq = seen.seq
		return nil
	}
	ss, err := m.store.LoadSilences(ctx, now.Add(-silenceLookback))
	if err != nil {
		return err
	}
	if err := m.silences.Replace(ss); err != nil {
		return err
	}
	m.silenceLoads++
	m.silencesAt = silenceStamp{}
	if seen != nil {
		// Read after the probe: whatever it stamped is in force.
		m.silencesAt = *seen
	}
	return nil
}

// Active lists the pending and firing alerts.
func (m *Manager) Active() []Record {
	m.op.Lock()
	defer m.op.Unlock()
	return m.tracker.Active()
}
