package kpi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The live view answers the windows that end now (the wall's tiles and
// trends, the rules' sliding windows) from memory, so their cost grows
// with what arrived rather than with what the window holds.
//
// It keeps the sums and histograms of windowSQL (the same formulas as
// every other path) per bucket of event time (10 s) and full grain of the
// four filter attributes, for the last Horizon. A refresh asks the store
// which conversations got events since the previous one (by ingested_at),
// works out from their events which buckets those events can change, and
// recomputes only those buckets with windowSQL. A window is then a sum of
// buckets in memory: any length within the horizon, any filter or
// breakdown but the agent, for every consumer, with no store query.
//
// Which buckets an event changes (the items of windowItemsSQL):
//   - its own bucket (a counted event, a customer message, a transfer);
//   - a reply: the customer messages of its conversation since the reply
//     before it (their response pair); an assignment or abandon: the
//     transfers since the one before it;
//   - the buckets of its conversation's start and end (first response,
//     transfer, containment are items at those times);
//   - a conversation.started: every bucket of its conversation (the
//     attributes of all its items come from the start).
//
// Windows are aligned to buckets: a window's start is rounded down to a
// bucket and its end is the end of the newest bucket, so a 15-minute
// window evaluated mid-bucket covers up to 10 s more. The snapshot says
// which window it answered. The "now" gauges come from the open
// conversations of the last day, kept up to date the same way.

// LiveConfig configures the live view.
type LiveConfig struct {
	// Bucket is the width of a bucket of event time. Default 10s.
	Bucket time.Duration `yaml:"bucket"`
	// Horizon is how far back buckets are kept. Default 65m: the wall's
	// hour of trends and every default rule window.
	Horizon time.Duration `yaml:"horizon"`
	// Overlap is how far before the previous refresh's end a refresh looks
	// for stored rows again, for inserts that became visible after their
	// ingested_at. Default 5s.
	Overlap time.Duration `yaml:"overlap"`
	// Every is the shortest time between two refreshes. Default 500ms.
	Every time.Duration `yaml:"every"`
	// IdleProbe is how often the store is asked for changes when the last
	// refresh found none and this process stored nothing since. Default
	// 2s: an idle view is only as recent as its last probe, and the wall
	// judges its tiles stale after 5 s.
	IdleProbe time.Duration `yaml:"idle_probe"`
	// Disabled answers every window from the store.
	Disabled bool `yaml:"disabled"`
}

// DefaultLiveConfig returns the defaults of LiveConfig.
func DefaultLiveConfig() LiveConfig {
	return LiveConfig{Bucket: 10 * time.Second, Horizon: 65 * time.Minute, Overlap: 5 * time.Second,
		Every: 500 * time.Millisecond, IdleProbe: 2 * time.Second}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults.
func (c LiveConfig) WithDefaults() LiveConfig {
	d := DefaultLiveConfig()
	if c.Bucket == 0 {
		c.Bucket = d.Bucket
	}
	if c.Horizon == 0 {
		c.Horizon = d.Horizon
	}
	if c.Overlap == 0 {
		c.Overlap = d.Overlap
	}
	if c.Every == 0 {
		c.Every = d.Every
	}
	if c.IdleProbe == 0 {
		c.IdleProbe = d.IdleProbe
	}
	return c
}

// Validate reports the first problem with c. It does not fill defaults:
// validate c.WithDefaults() for a partial config.
func (c LiveConfig) Validate() error {
	if c.Bucket < time.Second || time.Minute%c.Bucket != 0 {
		return fmt.Errorf("bucket must be at least 1s and divide a minute, got %s", c.Bucket)
	}
	if c.Horizon < 10*c.Bucket || c.Horizon > 24*time.Hour {
		return fmt.Errorf("horizon must be between 10 buckets and 24h, got %s", c.Horizon)
	}
	if c.Overlap < 0 || c.Every < 0 || c.IdleProbe < 0 {
		return errors.New("overlap, every and idle_probe must not be negative")
	}
	return nil
}

// liveKey is a full-grain attribute key: region, queue, channel and
// business line.
type liveKey struct {
	region, queue, channel, businessLine string
}

func (k liveKey) matches(f Filters) bool {
	return (f.Region == "" || f.Region == k.region) && (f.Queue == "" || f.Queue == k.queue) &&
		(f.Channel == "" || f.Channel == k.channel) && (f.BusinessLine == "" || f.BusinessLine == k.businessLine)
}

func (k liveKey) of(dim Dimension) string {
	switch dim {
	case DimRegion:
		return k.region
	case DimQueue:
		return k.queue
	case DimChannel:
		return k.channel
	case DimBusinessLine:
		return k.businessLine
	}
	return ""
}

// openConv is what the "now" gauges need of a conversation that has not
// ended: its start, its last transfer and assignment (unix ms, 0 none).
type openConv struct {
	key                             liveKey
	startMs, transferMs, assignedMs int64
}

// liveView is the state of the live view.
type liveView struct {
	cfg LiveConfig
	s   *KPIStore

	// wait is how long a caller waits for a refresh under way before it
	// answers from the view as it was (liveWait; tests wait for it).
	wait time.Duration

	mu        sync.RWMutex
	running   chan struct{} // closed when the refresh under way ends
	loaded    bool
	buckets   map[int64]map[liveKey]*cell // bucket start (unix ms) → key → sums
	open      map[string]openConv
	scannedTo time.Time // store clock: rows stored before it are in the buckets
	asOf      time.Time // when the last refresh ended, by the store's clock
	refreshed time.Time // when the last refresh ended, by this process's clock
	idle      bool      // the last refresh found nothing
	// seen holds the rows a refresh took in that a later one still finds
	// among those stored since its start (the overlap), with the store's
	// clock when they were taken in: they are not new again.
	seen map[string]int64
	err  error // the last refresh's error, until one succeeds

	local chan struct{} // this process stored events (Fresh)

	// rebuilt counts the buckets recomputed, lastRebuilt those of the
	// newest refresh.
	rebuilt, lastRebuilt int64
}

func newLiveView(s *KPIStore, cfg LiveConfig) *liveView {
	return &liveView{cfg: cfg, s: s, wait: liveWait, buckets: map[int64]map[liveKey]*cell{}, open: map[string]openConv{},
		seen: map[string]int64{}, local: make(chan struct{}, 1)}
}

// fresh tells the view that this process stored events.
func (l *liveView) fresh() {
	select {
	case l.local <- struct{}{}:
	default:
	}
}

func (l *liveView) bucketMs() int64 { return l.cfg.Bucket.Milliseconds() }

func (l *liveView) floor(ms int64) int64 {
	b := l.bucketMs()
	if ms >= 0 {
		return ms / b * b
	}
	return -((-ms + b - 1) / b * b)
}

// ensure refreshes the view if it is due and returns the error of that
// refresh. A refresh runs on its own, with its own time limit, so a
// caller that gives up (ctx) leaves it to finish for the next caller;
// callers that come while one runs wait for it.
func (l *liveView) ensure(ctx context.Context) error {
	l.mu.Lock()
	done := l.running
	if done == nil && l.due() {
		done = make(chan struct{})
		l.running = done
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), liveRefreshTimeout)
			defer cancel()
			err := l.update(rctx)
			l.mu.Lock()
			defer l.mu.Unlock()
			l.err = err
			if err != nil {
				// Try again at once next time.
				l.refreshed = time.Time{}
			}
			l.running = nil
			close(done)
		}()
	}
	recent := l.loaded && time.Since(l.refreshed) < liveMaxLag-l.wait
	l.mu.Unlock()
	if done != nil {
		// Once loaded, a caller waits a moment for the refresh and then
		// takes the view as it is: its numbers say how old they are.
		var late <-chan time.Time
		if recent {
			t := time.NewTimer(l.wait)
			defer t.Stop()
			late = t.C
		}
		select {
		case <-done:
		case <-late:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.err != nil:
		return l.err
	case !l.loaded:
		return errors.New("the live view is not loaded yet")
	case time.Since(l.refreshed) > liveMaxLag:
		return fmt.Errorf("the live view is %s behind: its refresh has not finished", time.Since(l.refreshed).Round(time.Second))
	}
	return nil
}

// liveWait is how long a caller waits for a refresh under way before it
// answers from the view as it was.
const liveWait = time.Second

// liveMaxLag is the oldest a view may be and still answer.
const liveMaxLag = 15 * time.Second

// liveRefreshTimeout bounds one refresh.
const liveRefreshTimeout = 2 * time.Minute

// due says whether a refresh should run now; l.mu is held.
func (l *liveView) due() bool {
	since := time.Since(l.refreshed)
	if !l.loaded || since >= l.cfg.IdleProbe || (since >= l.cfg.Every && !l.idle) {
		return true
	}
	if since < l.cfg.Every {
		return false
	}
	select {
	case <-l.local:
		return true
	default:
		return false
	}
}

// liveChangedSQL returns, for every conversation with rows stored since
// {since} whose event time is within the last day, its events of the
// horizon (time, type, role, stored since {since}, event id), and the
// store's clock.
// Only the rows stored since {since} are looked for by ingested_at (its
// skip index makes that a read of the newest granules).
const liveChangedSQL = `SELECT now64(3) AS server_now,
    groupArray((conversation_id, ms, e_type, role, is_new, event_id)) AS evs
FROM (
    SELECT conversation_id, toUnixTimestamp64Milli(occurred_at) AS ms, toString(type) AS e_type,
        toString(actor_role) AS role, toUInt8(ingested_at >= {since:DateTime64(3, 'UTC')}) AS is_new, event_id
    FROM events
    WHERE occurred_at >= {day:DateTime64(3, 'UTC')}
        AND (occurred_at >= {horizon:DateTime64(3, 'UTC')} OR ingested_at >= {since:DateTime64(3, 'UTC')})
        AND conversation_id IN (
            SELECT conversation_id FROM events
            WHERE occurred_at >= {day:DateTime64(3, 'UTC')} AND ingested_at >= {since:DateTime64(3, 'UTC')})
)
SETTINGS enable_analyzer = 0`

// liveIdleSQL counts the rows liveChangedSQL would look at (those of its
// subquery), with the store's clock.
const liveIdleSQL = `SELECT now64(3), count() FROM events
    WHERE occurred_at >= {day:DateTime64(3, 'UTC')} AND ingested_at >= {since:DateTime64(3, 'UTC')}
SETTINGS enable_analyzer = 0`

// liveOpenSQL returns the state the "now" gauges need of the
// conversations of the ids subquery, and whether they are still open.
const liveOpenSQL = `SELECT conversation_id,
        toString(tupleElement(min(start), 3)), toString(tupleElement(min(start), 4)),
        toString(tupleElement(min(start), 5)), toString(tupleElement(min(start), 6)),
        ifNull(toUnixTimestamp64Milli(min(started_at)), 0) AS start_ms,
        ifNull(toUnixTimestamp64Milli(max(last_transfer_at)), 0) AS transfer_ms,
        ifNull(toUnixTimestamp64Milli(max(last_assigned_at)), 0) AS assigned_ms,
        min(closed_at) IS NULL AND min(abandoned_at) IS NULL AS open
    FROM conversations
    WHERE conversation_id IN ({{ids}})
    GROUP BY conversation_id
    SETTINGS enable_analyzer = 0`

// liveOpenDaySQL: the first load looks at every conversation with a start
// or transfer in the last day.
const liveOpenDaySQL = `SELECT conversation_id FROM events
    WHERE occurred_at > {day:DateTime64(3, 'UTC')} AND type IN ('conversation.started', 'transfer.requested')`

// liveOpenChangedSQL: a refresh looks at the conversations it found
// changed (the subquery of liveChangedSQL).
const liveOpenChangedSQL = `SELECT conversation_id FROM events
    WHERE occurred_at >= {day:DateTime64(3, 'UTC')} AND ingested_at >= {since:DateTime64(3, 'UTC')}`

// liveEvent is one event of a changed conversation.
type liveEvent struct {
	ms        int64
	typ, role string
	stored    bool // stored since the previous refresh
}

// update brings the view up to date with the store.
func (l *liveView) update(ctx context.Context) error {
	if !l.loaded {
		return l.load(ctx)
	}
	since := l.scannedTo.Add(-l.cfg.Overlap)
	horizon := l.asOf.Add(-l.cfg.Horizon)
	p := clickhouse.Parameters{
		"since":   since.UTC().Format(chTime),
		"horizon": time.UnixMilli(l.floor(horizon.UnixMilli())).UTC().Format(chTime),
		"day":     l.asOf.Add(-24 * time.Hour).UTC().Format(chTime),
	}
	var (
		serverNow time.Time
		evs       [][]any
	)
	if l.idle {
		// An idle view first asks whether anything was stored at all: a
		// count on the skip index costs a fraction of liveChangedSQL.
		var n uint64
		row := l.s.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(p)), liveIdleSQL)
		if err := row.Scan(&serverNow, &n); err != nil {
			return fmt.Errorf("cannot look for stored rows: %w", err)
		}
		if n == 0 {
			serverNow = serverNow.UTC()
			l.mu.Lock()
			defer l.mu.Unlock()
			l.expireOpen(serverNow)
			clear(l.seen) // none was stored since since
			l.scannedTo, l.asOf, l.refreshed = serverNow, serverNow, time.Now()
			l.lastRebuilt = 0
			return nil
		}
	}
	row := l.s.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(p)), liveChangedSQL)
	if err := row.Scan(&serverNow, &evs); err != nil {
		return fmt.Errorf("cannot find changed conversations: %w", err)
	}
	serverNow = serverNow.UTC()
	// A row stored since {since} is new unless an earlier refresh took it
	// in: the overlap finds each row again for several refreshes, and
	// marking its buckets every time would multiply the work.
	byConv := map[string][]liveEvent{}
	var taken []string
	for _, e := range evs {
		if len(e) != 6 {
			return fmt.Errorf("cannot read changed conversations: a row of %d fields", len(e))
		}
		id, _ := e[0].(string)
		ms, _ := e[1].(int64)
		typ, _ := e[2].(string)
		role, _ := e[3].(string)
		isNew, _ := e[4].(uint8)
		eventID, _ := e[5].(string)
		stored := false
		if isNew == 1 {
			k := id + "\x00" + eventID
			if _, ok := l.seen[k]; !ok {
				stored = true
				taken = append(taken, k)
			}
		}
		byConv[id] = append(byConv[id], liveEvent{ms: ms, typ: typ, role: role, stored: stored})
	}
	for id, evs := range byConv {
		if !slices.ContainsFunc(evs, func(e liveEvent) bool { return e.stored }) {
			delete(byConv, id)
		}
	}
	dirty := l.dirtyBuckets(byConv)
	nowBucket := l.floor(serverNow.UnixMilli())
	horizonMs := l.floor(serverNow.Add(-l.cfg.Horizon).UnixMilli())
	// The bucket of now is always recomputed while events arrive in it;
	// buckets past it (events timed ahead of the store's clock) wait.
	dirty = slices.DeleteFunc(dirty, func(b int64) bool { return b < horizonMs || b > nowBucket })
	// read gives every bucket of a stretch an entry, so fresh replaces
	// the dirty buckets whole.
	fresh := map[int64]map[liveKey]*cell{}
	for _, r := range l.stretches(dirty) {
		if err := l.read(ctx, r[0], r[1], fresh); err != nil {
			return err
		}
	}
	var changed []string
	for id := range byConv {
		changed = append(changed, id)
	}
	var open map[string]openConv
	if len(changed) > 0 {
		var err error
		if open, err = l.readOpen(ctx, liveOpenChangedSQL, p); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for b, m := range fresh {
		l.buckets[b] = m
	}
	for b := range l.buckets {
		if b < horizonMs {
			delete(l.buckets, b)
		}
	}
	for _, id := range changed {
		if c, ok := open[id]; ok {
			l.open[id] = c
		} else {
			delete(l.open, id)
		}
	}
	l.expireOpen(serverNow)
	for _, k := range taken {
		l.seen[k] = serverNow.UnixMilli()
	}
	// A row taken in before since was stored before it too: no later
	// refresh finds it new.
	for k, at := range l.seen {
		if at < since.UnixMilli() {
			delete(l.seen, k)
		}
	}
	l.scannedTo, l.asOf, l.refreshed = serverNow, serverNow, time.Now()
	l.idle = len(byConv) == 0
	l.rebuilt += int64(len(dirty))
	l.lastRebuilt = int64(len(dirty))
	return nil
}

// load fills the view from the store: every bucket of the horizon and the
// open conversations of the last day.
func (l *liveView) load(ctx context.Context) error {
	var serverNow time.Time
	if err := l.s.conn.QueryRow(ctx, "SELECT now64(3)").Scan(&serverNow); err != nil {
		return fmt.Errorf("cannot read the store's clock: %w", err)
	}
	serverNow = serverNow.UTC()
	from := l.floor(serverNow.Add(-l.cfg.Horizon).UnixMilli())
	to := l.floor(serverNow.UnixMilli()) + l.bucketMs()
	fresh := map[int64]map[liveKey]*cell{}
	if err := l.read(ctx, from, to, fresh); err != nil {
		return err
	}
	open, err := l.readOpen(ctx, liveOpenDaySQL, clickhouse.Parameters{"day": serverNow.Add(-24 * time.Hour).Format(chTime)})
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets, l.open, l.seen = fresh, open, map[string]int64{}
	l.expireOpen(serverNow)
	l.scannedTo, l.asOf, l.refreshed = serverNow, serverNow, time.Now()
	l.loaded, l.idle = true, false
	l.rebuilt += (to - from) / l.bucketMs()
	return nil
}

// expireOpen forgets conversations that no gauge can count any more.
func (l *liveView) expireOpen(now time.Time) {
	day := now.Add(-24 * time.Hour).UnixMilli()
	for id, c := range l.open {
		if c.startMs <= day && c.transferMs <= day {
			delete(l.open, id)
		}
	}
}

// dirtyBuckets is the sorted set of buckets the events stored since the
// previous refresh can change (see the list at the top of this file).
func (l *liveView) dirtyBuckets(byConv map[string][]liveEvent) []int64 {
	set := map[int64]bool{}
	add := func(ms int64) { set[l.floor(ms)] = true }
	isReply := func(e liveEvent) bool { return e.typ == "message.sent" && (e.role == "bot" || e.role == "agent") }
	for _, evs := range byConv {
		slices.SortFunc(evs, func(a, b liveEvent) int {
			switch {
			case a.ms < b.ms:
				return -1
			case a.ms > b.ms:
				return 1
			}
			return 0
		})
		newMin := int64(-1)
		started := false
		for _, e := range evs {
			if !e.stored {
				continue
			}
			add(e.ms)
			if newMin < 0 {
				newMin = e.ms
			}
			if e.typ == "conversation.started" {
				started = true
			}
		}
		if newMin < 0 {
			continue
		}
		// The last follower of each kind before the first new event: the
		// pairs that start before it are settled.
		lastReply, lastAssign, lastAbandon := int64(-1<<62), int64(-1<<62), int64(-1<<62)
		// The first old reply and agent message, the end if the
		// conversation has one.
		firstOldReply, firstOldAgent, end := int64(1<<62), int64(1<<62), int64(-1)
		for _, e := range evs {
			if e.typ == "conversation.closed" || e.typ == "conversation.abandoned" {
				if end < 0 || e.ms < end {
					end = e.ms
				}
			}
			if e.stored {
				continue
			}
			if isReply(e) {
				firstOldReply = min(firstOldReply, e.ms)
				if e.role == "agent" {
					firstOldAgent = min(firstOldAgent, e.ms)
				}
			}
			if e.ms >= newMin {
				continue
			}
			switch {
			case isReply(e):
				lastReply = max(lastReply, e.ms)
			case e.typ == "agent.assigned":
				lastAssign = max(lastAssign, e.ms)
			case e.typ == "conversation.abandoned":
				lastAbandon = max(lastAbandon, e.ms)
			}
		}
		// Whether the new events change the conversation's facts kept at
		// its start (first response) and its end (transfer, containment),
		// and which pairs they can complete.
		startChanged, endChanged := false, false
		newReply, newAssign, newAbandon := false, false, false
		for _, e := range evs {
			if !e.stored {
				continue
			}
			switch {
			case isReply(e):
				newReply = true
				if e.ms < firstOldReply || (e.role == "agent" && e.ms < firstOldAgent) {
					startChanged = true
				}
			case e.typ == "agent.assigned":
				newAssign = true
			case e.typ == "conversation.abandoned":
				newAbandon = true
			}
			if e.typ != "message.sent" || e.role != "customer" {
				// A transfer, assignment, agent message or close can
				// change the facts an ended conversation is counted with.
				endChanged = true
			}
		}
		// A customer message's pair changes only with a new reply after
		// the last one before it; a transfer's only with a new assignment
		// or abandon, likewise.
		transferFrom := int64(1 << 62)
		if newAssign {
			transferFrom = min(transferFrom, lastAssign)
		}
		if newAbandon {
			transferFrom = min(transferFrom, lastAbandon)
		}
		for _, e := range evs {
			switch {
			case started:
				add(e.ms)
			case e.typ == "conversation.started" && startChanged:
				add(e.ms)
			case end >= 0 && e.ms == end && endChanged:
				add(e.ms)
			case e.typ == "message.sent" && e.role == "customer" && newReply && e.ms >= lastReply:
				add(e.ms)
			case e.typ == "transfer.requested" && e.ms >= transferFrom:
				add(e.ms)
			}
		}
	}
	out := make([]int64, 0, len(set))
	for b := range set {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// maxLiveStretches is the most windowSQL queries one refresh runs.
const maxLiveStretches = 3

// stretches covers the sorted buckets with ranges [from, to) of bucket
// starts, as few as it can: planning, not reading, dominates a short
// window on this engine, so gaps are read rather than split off while the
// joined range stays within liveChunk (one query); past that, at most
// maxLiveStretches ranges, joined across the smallest gaps.
func (l *liveView) stretches(buckets []int64) [][2]int64 {
	var out [][2]int64
	for _, b := range buckets {
		if n := len(out); n > 0 && out[n-1][1] == b {
			out[n-1][1] = b + l.bucketMs()
			continue
		}
		out = append(out, [2]int64{b, b + l.bucketMs()})
	}
	chunk := liveChunk.Milliseconds()
	for len(out) > 1 {
		best := 0
		for i := 1; i < len(out)-1; i++ {
			if out[i+1][0]-out[i][1] < out[best+1][0]-out[best][1] {
				best = i
			}
		}
		if len(out) <= maxLiveStretches && out[best+1][1]-out[best][0] > chunk {
			break
		}
		out[best][1] = out[best+1][1]
		out = slices.Delete(out, best+1, best+2)
	}
	return out
}

// read computes the buckets of [from, to) (unix ms, whole buckets) at
// full grain with windowSQL into m; every bucket of the range gets an
// entry, empty ones too, so that it replaces what the view had.
func (l *liveView) read(ctx context.Context, from, to int64, m map[int64]map[liveKey]*cell) error {
	// A long range (the first load, a burst of late events) is read in
	// pieces: each query holds a few minutes of events in memory.
	for chunk := liveChunk.Milliseconds(); to-from > chunk; from += chunk {
		if err := l.readRange(ctx, from, from+chunk, m); err != nil {
			return err
		}
	}
	return l.readRange(ctx, from, to, m)
}

// liveChunk is the longest range one query of the view reads.
const liveChunk = 5 * time.Minute

func (l *liveView) readRange(ctx context.Context, from, to int64, m map[int64]map[liveKey]*cell) error {
	f, t := time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	p := windowParams(f, f, t, Filters{}, l.cfg.Bucket, l.s.cfg.ServiceLevelThreshold)
	rows, err := l.s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), withAgents(withKey(windowSQL, dimFullGrain), false))
	if err != nil {
		return fmt.Errorf("cannot compute live buckets: %w", err)
	}
	defer rows.Close()
	for b := from; b < to; b += l.bucketMs() {
		if m[b] == nil {
			m[b] = map[liveKey]*cell{}
		}
	}
	for rows.Next() {
		var (
			bucket int64
			key    string
			sums   []int64
			hist   []any
		)
		if err := rows.Scan(&bucket, &key, &sums, &hist); err != nil {
			return fmt.Errorf("cannot read live buckets: %w", err)
		}
		k, err := parseFullGrainKey(key)
		if err != nil {
			return err
		}
		start := from + bucket*l.bucketMs()
		if start < from || start >= to || len(sums) > len(windowSums) {
			continue
		}
		c := m[start][k]
		if c == nil {
			c = &cell{}
			m[start][k] = c
		}
		for i, v := range sums {
			c.sums[i] += v
		}
		if len(hist) == 2 {
			keys, _ := hist[0].([]int32)
			counts, _ := hist[1].([]uint64)
			c.addHist(keys, counts)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read live buckets: %w", err)
	}
	return nil
}

// readOpen reads the open conversations among those of the ids
// subquery.
func (l *liveView) readOpen(ctx context.Context, ids string, p clickhouse.Parameters) (map[string]openConv, error) {
	out := map[string]openConv{}
	q := strings.Replace(liveOpenSQL, "{{ids}}", ids, 1)
	rows, err := l.s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), q)
	if err != nil {
		return nil, fmt.Errorf("cannot read open conversations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			c    openConv
			open bool
		)
		if err := rows.Scan(&id, &c.key.region, &c.key.queue, &c.key.channel, &c.key.businessLine,
			&c.startMs, &c.transferMs, &c.assignedMs, &open); err != nil {
			return nil, fmt.Errorf("cannot read open conversations: %w", err)
		}
		if open {
			out[id] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read open conversations: %w", err)
	}
	return out, nil
}

// dimFullGrain is the internal breakdown by all four filter attributes,
// as one key parseFullGrainKey splits: each value length-prefixed, so any
// bytes survive.
const dimFullGrain Dimension = "\x00full"

const fullGrainKeySQL = `concat(toString(length(toString(f_region))), ':', toString(f_region),
    toString(length(toString(f_queue))), ':', toString(f_queue),
    toString(length(toString(f_channel))), ':', toString(f_channel),
    toString(length(toString(f_business_line))), ':', toString(f_business_line))`

func parseFullGrainKey(s string) (liveKey, error) {
	var parts [4]string
	for i := range parts {
		colon := -1
		for j := 0; j < len(s) && j < 12; j++ {
			if s[j] == ':' {
				colon = j
				break
			}
		}
		if colon < 0 {
			return liveKey{}, fmt.Errorf("cannot read a live bucket key %q", s)
		}
		n, err := strconv.Atoi(s[:colon])
		if err != nil || n < 0 || colon+1+n > len(s) {
			return liveKey{}, fmt.Errorf("cannot read a live bucket key %q", s)
		}
		parts[i] = s[colon+1 : colon+1+n]
		s = s[colon+1+n:]
	}
	if s != "" {
		return liveKey{}, fmt.Errorf("cannot read a live bucket key: %d bytes left", len(s))
	}
	return liveKey{parts[0], parts[1], parts[2], parts[3]}, nil
}

// covers reports whether the view answers w (with filters f, breakdown
// dim, steps of step): a window within the horizon that needs no agent.
func (l *liveView) covers(w Window, f Filters, dim Dimension, step time.Duration) bool {
	if f.Agent != "" || dim == DimAgent {
		return false
	}
	if step > 0 && (step%l.cfg.Bucket != 0 || w.From.UnixMilli() != l.floor(w.From.UnixMilli())) {
		return false
	}
	now := l.s.cfg.Now()
	return !w.From.Before(now.Add(-l.cfg.Horizon).Add(l.cfg.Bucket))
}

// compute answers w from the buckets, as KPIStore.compute does from the
// store, and returns the window it answered: From rounded down to a
// bucket; To the end of the newest bucket if w reaches the present (ends
// at most two buckets before the view's time), else rounded down too, so
// that consecutive windows still partition time.
func (l *liveView) compute(w Window, f Filters, dim Dimension, step time.Duration, withGauges bool) (map[cellKey]*cell, answered) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	from := l.floor(w.From.UnixMilli())
	to := l.floor(l.asOf.UnixMilli()) + l.bucketMs()
	if w.To.Before(l.asOf.Add(-2 * l.cfg.Bucket)) {
		to = l.floor(w.To.UnixMilli())
	}
	if to <= from {
		to = from + l.bucketMs()
	}
	out := map[cellKey]*cell{}
	for b, keys := range l.buckets {
		if b < from || b >= to {
			continue
		}
		var idx int64
		if step > 0 {
			idx = (b - from) / step.Milliseconds()
		}
		for k, c := range keys {
			if !k.matches(f) {
				continue
			}
			at(out, idx, k.of(dim)).merge(c)
		}
	}
	if withGauges {
		now := l.asOf.UnixMilli()
		day := now - 24*time.Hour.Milliseconds()
		for _, c := range l.open {
			if !c.key.matches(f) {
				continue
			}
			active := c.startMs > day && c.startMs <= now
			waiting := c.transferMs > day && c.transferMs <= now && c.assignedMs < c.transferMs
			if !active && !waiting {
				continue
			}
			x := at(out, 0, c.key.of(dim))
			if active {
				x.active++
			}
			if waiting {
				x.waiting++
			}
		}
	}
	return out, answered{Window: Window{From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC()}, asOf: l.asOf}
}
