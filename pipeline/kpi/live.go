package kpi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/schemas"
)

// The live view answers the windows that end now (the wall's tiles and
// trends, the rules' sliding windows) from memory, so their cost grows
// with what arrived rather than with what the window holds.
//
// It keeps the sums and histograms of windowSQL (the same formulas as
// every other path) per bucket of event time (10 s) and full grain of the
// four filter attributes, for the last Horizon, and for each conversation
// what it adds to them (its pieces). Every item of windowSQL belongs to
// one conversation and is computed from that conversation's events and
// attributes alone, so a bucket is the sum of its conversations' pieces.
// A refresh asks the store which conversations got rows since the
// previous one (by ingested_at), computes their pieces anew from their
// events and their row of the conversations rollup (live_items.go: the
// items of windowByConversationSQL restricted to them, which a test holds
// it to), and swaps each one's old pieces for the new: a reply hours
// late, a conversation.started after its messages, a repeated delivery
// all come out right without the view knowing which buckets they touch.
// A load computes the pieces of the whole horizon with the SQL. A window
// is then a sum of buckets in memory: any length within the horizon, any
// filter or breakdown but the agent, for every consumer, with no store
// query.
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
	// Every is the shortest time between two refreshes, and how soon after
	// the last one events this process stored are looked for. Default 500ms.
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

	mu      sync.RWMutex
	running chan struct{} // closed when the refresh under way ends
	// current is closed when the refresh under way has made the view
	// current, before a loading view reads its next piece (update).
	current chan struct{}
	loaded  bool
	// partialFrom is, while a load reads the rest of the horizon, the
	// start of what it has read (unix ms): it answers no window that
	// starts before (compute); 0 otherwise.
	partialFrom int64
	buckets     map[int64]*lbucket // bucket start (unix ms) → its cells (live_cells.go)
	// version counts the changes to the buckets: answers computed at one
	// version are kept in answers until the next (computeCached).
	version   uint64
	answersMu sync.Mutex
	answers   map[answerKey]map[cellKey]*cell
	answersAt uint64             // the version answers were computed at
	convs     map[string][]int64 // conversation → what it adds to the buckets (its pieces, live_cells.go)
	keyIDs    map[string]uint32  // the full-grain keys met so far, by their SQL form …
	keyList   []liveKey          // … and by id
	pruned    int64              // the horizon's start when convs was last pruned
	open      map[string]openConv
	openGen   uint64 // counts the refreshes that changed open
	// gauges are the "now" gauges of the open conversations by full-grain
	// key, counted again when open changes (gaugesOpen is the openGen
	// they were counted at) or the view's time reaches gaugesUntil (unix
	// ms), the first time at which a conversation's start or transfer
	// comes into or leaves the gauges' day.
	gaugesMu    sync.Mutex
	gauges      map[liveKey]gaugeCount
	gaugesOpen  uint64
	gaugesUntil int64
	gaugesGen   uint64    // counts the changes of gauges
	scannedTo   time.Time // store clock: rows stored before it are in the buckets
	asOf        time.Time // when the last refresh ended, by the store's clock
	refreshed   time.Time // when the last refresh ended, by this process's clock
	readAt      time.Time // when the last refresh asked the store what changed, by this process's clock: the age of the data
	idle        bool      // the last refresh found nothing
	// seen holds the rows a refresh took in that a later one still finds
	// among those stored since its start (the overlap), with the store's
	// clock when they were taken in: they are not new again.
	seen seenRows
	err  error // the last refresh's error, until one succeeds

	// ingestBehind, if set, is how long the ingest has not been caught up
	// (FollowIngest): past liveIngestPause the view does not refresh, and
	// paused says so until a refresh has taken in the backlog (set in due,
	// which runs while no refresh does, read by the next refresh).
	ingestBehind func(time.Time) time.Duration
	paused       bool

	// localAt is when this process last stored events (Fresh, unix ns);
	// taken is what it was when the newest refresh began, which reads
	// everything stored before: it is news while the two differ.
	localAt atomic.Int64
	taken   int64

	// recomputed counts the conversations whose pieces were computed,
	// loads the loads, refreshes and failures the refreshes (loads
	// included) that ended without and with an error (RegisterMetrics
	// exposes them); lastRecomputed is the newest refresh's recomputed.
	recomputed, loads, refreshes, failures atomic.Int64
	lastRecomputed                         int64
	refreshSeconds                         prometheus.Histogram

	// beforeLoadMore, when a test sets it, runs as loadMore begins.
	beforeLoadMore func()
}

func newLiveView(s *KPIStore, cfg LiveConfig) *liveView {
	return &liveView{cfg: cfg, s: s, wait: liveWait, buckets: map[int64]*lbucket{},
		convs:  map[string][]int64{},
		keyIDs: map[string]uint32{}, open: map[string]openConv{},
		refreshSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cockpit_kpi_live_refresh_seconds",
			Help:    "Duration of one refresh of the live view (a load included), successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
	}
}

// fresh tells the view that this process stored events.
func (l *liveView) fresh() {
	l.localAt.Store(time.Now().UnixNano())
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
// callers that come while one runs wait for it. from is the start of the
// caller's window (unix ms): while the view loads, a caller of a window
// it holds waits only for the refresh, not for the older piece read after
// it.
func (l *liveView) ensure(ctx context.Context, from int64) error {
	tolerated, _ := ctx.Value(stalenessKey{}).(time.Duration)
	maxAge, bounded := ctx.Value(freshnessKey{}).(time.Duration)
	asIsWait, asIs := ctx.Value(asIsKey{}).(time.Duration)
	l.mu.Lock()
	done, current := l.running, l.current
	if done != nil && bounded && time.Since(l.readAt) > maxAge {
		// A refresh under way and the view already too old for this
		// caller: it has fallen behind, and the store answers sooner.
		l.mu.Unlock()
		return errLiveBehind
	}
	if done == nil && l.due(tolerated) {
		done, current = make(chan struct{}), make(chan struct{})
		l.running, l.current, l.taken = done, current, l.localAt.Load()
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), liveRefreshTimeout)
			defer cancel()
			began := time.Now()
			release := sync.OnceFunc(func() { close(current) })
			err := l.update(rctx, func() {
				// The callers of windows the view holds have what the
				// refresh brought; the older piece a loading view reads
				// next is not theirs to wait for (a default window is
				// held from the load on), and no refresh starts before
				// it is in.
				l.mu.Lock()
				l.err = nil
				l.mu.Unlock()
				release()
			})
			l.refreshSeconds.Observe(time.Since(began).Seconds())
			if err != nil {
				l.failures.Add(1)
			} else {
				l.refreshes.Add(1)
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			l.err = err
			if err != nil {
				// Try again at once next time.
				l.refreshed = time.Time{}
			}
			l.running, l.current = nil, nil
			release()
			close(done)
		}()
	}
	recent := l.loaded && time.Since(l.refreshed) < liveMaxLag-l.wait
	// A view that has fallen behind its events takes longer than any
	// wait to catch up: a caller that takes it as it is does not wait.
	behind := asIs && l.loaded && !recent
	wait := l.wait
	if asIs {
		wait = min(wait, asIsWait)
	}
	l.mu.Unlock()
	if done != nil && !behind {
		// Once loaded, a caller waits a moment for the refresh and then
		// takes the view as it is: its numbers say how old they are.
		var late <-chan time.Time
		if recent {
			t := time.NewTimer(wait)
			defer t.Stop()
			late = t.C
		}
		// A caller of a window older than a loading view holds waits for
		// the piece it reads: the store answers such a window, and its
		// read beside the view's raised the demo's peak RSS, start-up
		// included, from 876 MiB to 958 (means of 4 and 8 runs).
		// wait reports whether c closed before the caller's wait ran out.
		wait := func(c <-chan struct{}) (bool, error) {
			select {
			case <-c:
				return true, nil
			case <-late:
				return false, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		closed, err := wait(current)
		if err == nil && closed && !l.holds(from) {
			_, err = wait(done)
		}
		if err != nil {
			return err
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.err != nil:
		return l.err
	case !l.loaded:
		return errors.New("the live view is not loaded yet")
	case time.Since(l.refreshed) > liveMaxLag && !asIs:
		return fmt.Errorf("the live view is %s behind: its refresh has not finished", time.Since(l.refreshed).Round(time.Second))
	}
	return nil
}

type stalenessKey struct{}

// ErrLoading is returned to an AsItIs caller whose window starts before
// what the live view has loaded so far; it will hold it within seconds.
var ErrLoading = errors.New("the live view is still loading this window")

// errLiveBehind: the view is older than a WithFreshness caller takes and
// still refreshing.
var errLiveBehind = errors.New("the live view is behind its events")

type freshnessKey struct{}

// WithFreshness returns a context under which a window that ends now is
// answered from the live view only if the view's data is at most age old
// once it has had its refresh (or its wait for one); otherwise, or if the
// view cannot answer, from the store, exactly. It is for callers that
// would rather wait for the store than be answered from a view that has
// fallen behind (under more events than its refreshes keep up with), and
// whose answer does not say how old it is.
func WithFreshness(ctx context.Context, age time.Duration) context.Context {
	return context.WithValue(ctx, freshnessKey{}, age)
}

// dataAge is how old the view's data is: since its last refresh asked the
// store what changed.
func (l *liveView) dataAge() time.Duration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return time.Since(l.readAt)
}

// WithStaleness returns a context under which a window that ends now may
// be answered from a live view refreshed up to age ago, without a refresh
// of its own. The rules, judged once a tick, take the view the stream's
// last refresh left rather than each running one more.
func WithStaleness(ctx context.Context, age time.Duration) context.Context {
	return context.WithValue(ctx, stalenessKey{}, age)
}

type asIsKey struct{}

// AsItIs returns a context under which a window that ends now is answered
// from a loaded live view however far behind its events it has fallen:
// once loaded, the view answers at once when a refresh under way will not
// finish soon, and waits for one (wait at most, and never more than
// liveWait) only while it keeps up. The answer says how old it is (Snapshot.AsOf, and the as-of time
// Trends returns); a refresh that failed is still an error. It is for the
// wall, whose panels show the age of what they show and turn stale on
// their own: under more events than the view's refreshes keep up with,
// it gets numbers a little behind, marked so, on time, rather than a
// timeout after ten seconds and nothing at all.
//
// A window the view does not hold yet (a load under way reads the newest
// liveFirst first) is not read from the store for such a caller: it gets
// ErrLoading, as soon, and its panel keeps what it showed.
func AsItIs(ctx context.Context, wait time.Duration) context.Context {
	return context.WithValue(ctx, asIsKey{}, max(wait, 0))
}

// liveWait is how long a caller waits for a refresh under way before it
// answers from the view as it was.
const liveWait = time.Second

// liveMaxLag is the oldest a view may be and still answer.
const liveMaxLag = 15 * time.Second

// liveRefreshTimeout bounds one refresh.
const liveRefreshTimeout = 2 * time.Minute

// due says whether a refresh should run now for a caller that tolerates
// a view that old; l.mu is held. Events this process stored make it due
// Every after the last one. A view whose last refresh found changes
// while this process stores none (another instance stores them) looks
// again a second after it, and an idle one every IdleProbe. So while this
// process ingests, the one refresh after each of its flushes (every
// second for a trickle) serves every caller and takes in what other
// instances stored too, rather than each tick of the stream and of the
// rules starting one of its own that finds the same rows.
func (l *liveView) due(tolerated time.Duration) bool {
	if l.loaded && l.ingestBehind != nil && l.ingestBehind(time.Now()) > liveIngestPause {
		l.paused = true
		return false
	}
	since := time.Since(l.refreshed)
	local := l.localAt.Load()
	ingesting := time.Since(time.Unix(0, local)) < 2*liveRemotePoll
	switch {
	case !l.loaded || l.partialFrom != 0 || since >= max(l.cfg.IdleProbe, tolerated):
		return true
	case !l.idle && !ingesting && since >= max(liveRemotePoll, l.cfg.Every, tolerated):
		return true
	}
	return since >= max(l.cfg.Every, tolerated) && local != l.taken
}

// liveIngestPause is how far behind the ingest may be before the view
// stops refreshing until it has caught up. A backlog stores tens of
// thousands of events a second, each refresh recomputes the conversations
// they touch by reading the horizon again, and the refreshes take the
// cores the ingest needs to catch up (a demo's start-up: 24 s of engine
// time in its first minute, more than the inserts). The view's numbers
// are that old anyway: the stream dates them by what was stored when they
// were read and greys them, other callers get the store's exact answer
// (ensure, liveMaxLag), the rules are held (rules.max_ingest_delay). The
// refresh after the pause finds the backlog's conversations and, as many
// as they are, loads the view anew (liveReloadAbove). A demo's start-up
// (1.08M events of backfill, at 18:10 Shanghai time): the ingest caught up
// in 34–38 s against 42–47 s with the view following it; the load after
// it took about as long as the last refreshes of a view that followed,
// so the tiles were current no sooner (53–58 s against 52–57 s).
const liveIngestPause = 5 * time.Second

// liveRemotePoll is how long after a refresh that found changes the view
// looks again without being told of new events: the wall's tiles are a
// second old at most.
const liveRemotePoll = time.Second

// liveChangedSQL returns the conversations with rows stored since
// {since} whose event time is within the last day, and the store's clock.
// Only those rows are looked for, by ingested_at: its skip index makes
// that a read of the newest granules, and of nothing when none is new.
// Each conversation comes once, by its id; its rows come as hashes of
// their ids and as their event times (unix ms), in the conversations'
// order: after a backfill the rows of the overlap are hundreds of
// thousands, and as two strings each they held 108 of the 209 MB a busy
// start-up's refresh held at its peak (liveChangedRows). Every array comes from the one array of
// tuples, so their orders agree; an array of tuples read into Go is one
// boxed value at a time, so it is taken apart in the query.
const liveChangedSQL = `SELECT now64(3) AS server_now,
        arrayMap(c -> c.1, convs), arrayMap(c -> c.2, convs), arrayMap(c -> toUInt32(length(c.3)), convs),
        arrayFlatten(arrayMap(c -> c.3, convs)), arrayFlatten(arrayMap(c -> c.4, convs))
    FROM (
        SELECT groupArray((id, id_hash, event_hashes, ats)) AS convs FROM (
            SELECT conversation_id AS id, sipHash64(conversation_id) AS id_hash,
                groupArray(sipHash64(event_id)) AS event_hashes,
                groupArray(toUnixTimestamp64Milli(occurred_at)) AS ats
            FROM events
            WHERE occurred_at >= {day:DateTime64(3, 'UTC')} AND ingested_at >= {since:DateTime64(3, 'UTC')}
            GROUP BY conversation_id))
    SETTINGS enable_analyzer = 0`

// liveAnySQL counts the rows liveChangedSQL would return, and reads the
// store's clock: an idle view looks with it first. In an idle process over
// a demo's store (1.1M events) it took 7.7 to 8.4 ms, where liveChangedSQL
// took 15.5 (averages of 40, as the embedded endpoint timed them).
const liveAnySQL = `SELECT now64(3), count() FROM events
    WHERE occurred_at >= {day:DateTime64(3, 'UTC')} AND ingested_at >= {since:DateTime64(3, 'UTC')}
    SETTINGS enable_analyzer = 0`

// liveOpenSQL returns the row of the conversations rollup of each
// conversation of the ids subquery: what its items take from it
// (conversationAttrsSQL), what the "now" gauges need of it, and whether
// it is still open.
var liveOpenSQL = `SELECT conversation_id, ` + conversationAttrsSQL + `,
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

// liveOpenChangedSQL: a refresh looks at the conversations it recomputes.
const liveOpenChangedSQL = `SELECT arrayJoin({ids:Array(String)})`

// liveAhead is how far past the present the view reads and keeps buckets:
// events timed a little ahead of the store's clock (ingest allows some
// skew, max_future) wait in them until their time comes. A recomputed
// conversation is read up to it and no further (withConversations).
const liveAhead = time.Hour

// liveIDsPerQuery is the most conversations one recomputing query names.
const liveIDsPerQuery = 2000

// liveReloadAbove is the most conversations the first refresh after a
// pause (liveIngestPause) recomputes; with more it loads the view anew.
// Each query of liveIDsPerQuery ids reads every granule of the horizon
// (the events are ordered by hour and type before the conversation), a
// load reads each once. Only after a pause: a view that keeps up with a
// heavy ingest recomputes by ids, in queries of bounded memory, rather
// than loading the horizon again and again. A variable for tests.
var liveReloadAbove = 2 * liveIDsPerQuery

// liveReloadRows is the most rows stored during a pause that the refresh
// after it reads to find their conversations; with more it loads the view
// anew without. Every conversation has a row among them: with more rows
// than liveReloadAbove conversations usually have, the refresh would
// most likely load it anyway. A variable for tests.
var liveReloadRows = 25 * liveReloadAbove

// update brings the view up to date with the store (refresh) and, while
// it is loading, calls current and then reads the next piece of its
// horizon (loadMore).
func (l *liveView) update(ctx context.Context, current func()) error {
	more, err := l.refresh(ctx)
	if err != nil || !more {
		return err
	}
	current()
	return l.loadMore(ctx)
}

// refresh brings the view up to date with the store: it finds the
// conversations with rows stored since the previous refresh and
// recomputes their pieces, and only theirs (or loads the view, when it
// is not loaded or has more to take in than that). more says that a
// refresh found the view loading: loadMore reads its next piece.
func (l *liveView) refresh(ctx context.Context) (more bool, err error) {
	if !l.loaded {
		return false, l.load(ctx)
	}
	since := l.scannedTo.Add(-l.cfg.Overlap)
	began := time.Now()
	if l.paused {
		// After a pause, a backlog of rows is loaded anew at once: reading
		// them back only to count their conversations costs more than the
		// load they lead to (a demo's start-up: 1.09M rows, 0.5 s to read,
		// and 1.6 s more before the load's first query began).
		if _, n, err := l.count(ctx, l.sinceParams(since)); err != nil {
			return false, err
		} else if n > uint64(liveReloadRows) {
			return false, l.load(ctx)
		}
	}
	serverNow, stored, err := l.changed(ctx, since)
	if err != nil {
		return false, err
	}
	horizonMs := l.floor(serverNow.Add(-l.cfg.Horizon).UnixMilli())
	toMs := l.floor(serverNow.Add(liveAhead).UnixMilli())
	// While the view is loading it holds the buckets from partialFrom on:
	// a conversation is recomputed there, the piece before is read whole
	// (loadOlder).
	fromMs := horizonMs
	if l.partialFrom != 0 {
		fromMs = max(fromMs, l.partialFrom)
	}
	// A row stored since {since} is new unless an earlier refresh took it
	// in: the overlap finds each row again for several refreshes, and
	// recomputing its conversation every time would multiply the work.
	// The rows not seen before are moved to the front of stored.rows.
	taken := stored.rows[:0]
	changed := map[string]bool{} // conversation: its pieces are recomputed
	for c := range stored.convs() {
		for i := c.from; i < c.to; i++ {
			if r := stored.rows[i]; !l.seen.has(r) {
				taken = append(taken, r)
				changed[c.id] = changed[c.id] || stored.ats[i] >= fromMs
			}
		}
	}
	if cap(taken) > 2*len(taken) {
		taken = slices.Clone(taken)
	}
	// A conversation whose new rows all precede the horizon (or what a
	// loading view holds) keeps its pieces unless it has some: an item is
	// timed by its own event, or
	// (first response, end) needs a lifecycle event in the horizon, which
	// is an item itself. Its open state is read all the same. A backfill
	// stores hours of such rows before it reaches the horizon.
	l.mu.RLock()
	for id, in := range changed {
		if !in {
			_, changed[id] = l.convs[id]
		}
	}
	l.mu.RUnlock()
	ids := slices.Sorted(maps.Keys(changed))
	recompute := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !changed[id] })
	if l.paused && len(recompute) > liveReloadAbove {
		return false, l.load(ctx)
	}
	attrs := map[string]convAttrs{}
	for chunk := range slices.Chunk(ids, liveIDsPerQuery) {
		p := clickhouse.Parameters{"ids": schemas.StringsParam(chunk)}
		o, err := l.readOpen(ctx, liveOpenChangedSQL, p, false)
		if err != nil {
			return false, err
		}
		maps.Copy(attrs, o)
	}
	fresh := map[string][]int64{}
	for chunk := range slices.Chunk(recompute, liveIDsPerQuery) {
		if err := l.recompute(ctx, fromMs, toMs, chunk, attrs, fresh); err != nil {
			return false, err
		}
	}
	l.mu.Lock()
	for b := range l.buckets {
		if b < horizonMs {
			delete(l.buckets, b)
			l.version++
		}
	}
	for _, id := range recompute {
		l.replace(id, fresh[id])
	}
	for _, id := range ids {
		if c, ok := attrs[id]; ok && c.open {
			l.open[id] = c.openConv
		} else {
			delete(l.open, id)
		}
	}
	if len(ids) > 0 {
		l.openGen++
	}
	if horizonMs >= l.pruned+livePruneEvery.Milliseconds() {
		l.prune(horizonMs)
	}
	l.expireOpen(serverNow)
	l.seen.add(serverNow.UnixMilli(), taken)
	// A row taken in before since was stored before it too: no later
	// refresh finds it new.
	l.seen.forget(since.UnixMilli())
	l.scannedTo, l.asOf, l.refreshed, l.readAt = serverNow, serverNow, time.Now(), began
	l.idle, l.paused = len(ids) == 0, false
	l.recomputed.Add(int64(len(recompute)))
	l.lastRecomputed = int64(len(recompute))
	more = l.partialFrom != 0
	l.mu.Unlock()
	return more, nil
}

// loadMore reads the next piece of the horizon of a loading view, once a
// refresh has made what it holds current (load, loadOlder).
func (l *liveView) loadMore(ctx context.Context) error {
	l.mu.RLock()
	partialFrom, horizonMs := l.partialFrom, l.floor(l.asOf.Add(-l.cfg.Horizon).UnixMilli())
	l.mu.RUnlock()
	if partialFrom == 0 {
		return nil
	}
	if l.beforeLoadMore != nil {
		l.beforeLoadMore()
	}
	older := map[string][]int64{}
	partialFrom, err := l.loadOlder(ctx, partialFrom, horizonMs, older)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, ps := range older {
		l.add(id, ps)
	}
	l.partialFrom = partialFrom
	l.version++
	l.recomputed.Add(int64(len(older)))
	return nil
}

// storedRow is a row of events by hashes of its conversation and event
// ids (sipHash64): two rows of the overlap that collide, 2^-128 for a
// pair, would have the newer one taken for seen.
type storedRow struct{ conv, event uint64 }

// liveChangedRows is what liveChangedSQL found: the conversations, and
// their rows in the same order (the first counts[0] rows are ids[0]'s)
// with their event times (unix ms).
type liveChangedRows struct {
	ids    []string
	counts []uint32
	rows   []storedRow
	ats    []int64
}

// changedConv is a conversation of liveChangedRows (the i-th) and the
// range of its rows.
type changedConv struct {
	i, from, to int
	id          string
}

// convs yields the conversations and their rows' ranges.
func (r *liveChangedRows) convs() func(yield func(changedConv) bool) {
	return func(yield func(changedConv) bool) {
		off := 0
		for i, id := range r.ids {
			n := int(r.counts[i])
			if !yield(changedConv{i, off, off + n, id}) {
				return
			}
			off += n
		}
	}
}

// changed returns the store's clock and the rows stored since since
// (the overlap before this process's clock when since is zero).
func (l *liveView) changed(ctx context.Context, since time.Time) (time.Time, liveChangedRows, error) {
	p := l.sinceParams(since)
	var (
		serverNow   time.Time
		out         liveChangedRows
		convHashes  []uint64
		eventHashes []uint64
	)
	if l.idle {
		// The last look found nothing: most likely so does this one,
		// which a count answers in half the time.
		serverNow, n, err := l.count(ctx, p)
		if err != nil || n == 0 {
			return serverNow, out, err
		}
	}
	row := l.s.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(p)), liveChangedSQL)
	if err := row.Scan(&serverNow, &out.ids, &convHashes, &out.counts, &eventHashes, &out.ats); err != nil {
		return time.Time{}, liveChangedRows{}, fmt.Errorf("cannot find changed conversations: %w", err)
	}
	var total int
	for _, n := range out.counts {
		total += int(n)
	}
	if len(convHashes) != len(out.ids) || len(out.counts) != len(out.ids) || len(eventHashes) != total || len(out.ats) != total {
		return time.Time{}, liveChangedRows{}, fmt.Errorf("cannot read changed conversations: %d conversations (%d hashes, %d counts) of %d rows, %d event hashes and %d times",
			len(out.ids), len(convHashes), len(out.counts), total, len(eventHashes), len(out.ats))
	}
	out.rows = make([]storedRow, total)
	for c := range out.convs() {
		for i := c.from; i < c.to; i++ {
			out.rows[i] = storedRow{convHashes[c.i], eventHashes[i]}
		}
	}
	return serverNow.UTC(), out, nil
}

// sinceParams are the parameters of liveChangedSQL and liveAnySQL: the
// rows stored since since (the overlap before this process's clock when
// it is zero) in the last day.
func (l *liveView) sinceParams(since time.Time) clickhouse.Parameters {
	day := l.asOf.Add(-24 * time.Hour)
	if since.IsZero() {
		// The first look: the store's clock is not known yet; a day
		// and the overlap before this process's clock are near enough.
		since, day = time.Now().Add(-l.cfg.Overlap), time.Now().Add(-24*time.Hour)
	}
	return clickhouse.Parameters{"since": since.UTC().Format(chTime), "day": day.UTC().Format(chTime)}
}

// count returns the store's clock and how many rows liveChangedSQL would
// find (liveAnySQL).
func (l *liveView) count(ctx context.Context, p clickhouse.Parameters) (time.Time, uint64, error) {
	var (
		serverNow time.Time
		n         uint64
	)
	row := l.s.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(p)), liveAnySQL)
	if err := row.Scan(&serverNow, &n); err != nil {
		return time.Time{}, 0, fmt.Errorf("cannot look for changed conversations: %w", err)
	}
	return serverNow.UTC(), n, nil
}

// load fills the view from the store: the pieces of every conversation
// in the newest liveFirst of the horizon and the open conversations of the
// last day. The rest of the horizon is read by the refreshes that follow,
// a piece each (loadOlder): meanwhile the view answers the windows within
// what it has read, and keeps them current.
func (l *liveView) load(ctx context.Context) error {
	// The rows of the overlap already visible now are read below: they
	// are taken in, so that the first refresh does not find them new (a
	// backfill that has just ended would be recomputed whole).
	began := time.Now()
	serverNow, seen, err := l.changed(ctx, time.Time{})
	if err != nil {
		return err
	}
	var taken seenRows
	taken.add(serverNow.UnixMilli(), seen.rows)
	from := l.floor(serverNow.Add(-l.cfg.Horizon).UnixMilli())
	to := l.floor(serverNow.Add(liveAhead).UnixMilli())
	// Read in pieces, newest first: each query holds a few minutes of
	// events in memory. The first reaches on to the view's end, past the
	// present, where few events are. A conversation's items fall in
	// exactly one piece each, so its pieces from several add up. The
	// pieces start a whole liveChunk before the current bucket, so that
	// liveFirst takes whole pieces.
	first := max(from, l.floor(serverNow.Add(-liveFirst).UnixMilli()))
	fresh := map[string][]int64{}
	end, f := to, l.floor(serverNow.Add(-liveChunk).UnixMilli())
	for {
		f = max(f, from)
		if err := l.read(ctx, f, end, nil, fresh); err != nil {
			return err
		}
		if f <= first {
			break
		}
		end, f = f, l.floor(f-liveChunk.Milliseconds())
	}
	attrs, err := l.readOpen(ctx, liveOpenDaySQL, clickhouse.Parameters{"day": serverNow.Add(-24 * time.Hour).Format(chTime)}, true)
	if err != nil {
		return err
	}
	open := map[string]openConv{}
	for id, c := range attrs {
		if c.open {
			open[id] = c.openConv
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets, l.convs, l.open, l.seen = map[int64]*lbucket{}, map[string][]int64{}, open, taken
	l.openGen++
	l.version++
	for id, ps := range fresh {
		l.replace(id, ps)
	}
	l.pruned = from
	l.partialFrom = 0
	if f > from {
		l.partialFrom = f
	}
	l.expireOpen(serverNow)
	l.scannedTo, l.asOf, l.refreshed, l.readAt = serverNow, serverNow, time.Now(), began
	l.loaded, l.idle, l.paused = true, false, false
	l.recomputed.Add(int64(len(fresh)))
	l.loads.Add(1)
	return nil
}

// liveFirst is the stretch of the horizon a load reads before the view
// answers: the wall's tiles (15 minutes) and the shorter rule windows.
// The rest (the hour of the wall's trends and regions, the 30-minute rule
// windows) is read by the refreshes after it, one liveChunk each; the
// store answers those windows meanwhile, but for the wall (ErrLoading).
// After a demo's start-up backfill the whole horizon took 8 s to load (65
// minutes in 14 queries), and the tiles were as old when it ended. The
// tiles' 15 minutes alone, three queries against four, let the tiles fill
// sooner but sent more rule windows to the store beside the reads that
// followed, and two demo start-ups in eight peaked over 1 GiB.
const liveFirst = 20 * time.Minute

// loadOlder reads the piece of the horizon before partialFrom (unix ms)
// that a refresh takes in during a load (load): the pieces of every
// conversation in it, into m. It returns where what the view holds will
// then start (0: the whole horizon).
func (l *liveView) loadOlder(ctx context.Context, partialFrom, horizonMs int64, m map[string][]int64) (int64, error) {
	f := max(l.floor(partialFrom-liveChunk.Milliseconds()), horizonMs)
	if f < partialFrom {
		if err := l.read(ctx, f, partialFrom, nil, m); err != nil {
			return 0, err
		}
	}
	if f <= horizonMs {
		return 0, nil
	}
	return f, nil
}

// liveChunk is the longest range one loading query reads.
const liveChunk = 5 * time.Minute

// expireOpen forgets conversations that no gauge can count any more (the
// gauges do not change).
func (l *liveView) expireOpen(now time.Time) {
	day := now.Add(-24 * time.Hour).UnixMilli()
	for id, c := range l.open {
		if c.startMs <= day && c.transferMs <= day {
			delete(l.open, id)
		}
	}
}

// replace takes the conversation's pieces out of the buckets and puts ps
// in instead; l.mu is held. A piece of a bucket that has left the horizon
// has nothing to take out of.
func (l *liveView) replace(id string, ps []int64) {
	l.version++
	for rest := l.convs[id]; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		b := l.buckets[p.bucket]
		if b == nil {
			continue
		}
		c := b.full.find(p.key)
		if c == nil {
			continue
		}
		// A key no item falls in any more is not a row of a breakdown,
		// as it is not in the store's answer (an item that adds nothing,
		// a message without a reply yet, is).
		if p.apply(c, -1) {
			b.full.drop(p.key)
		}
		if p.apply(&b.total, -1) {
			b.total = lcell{}
		}
		k := &l.keyList[p.key]
		for i := range b.by {
			v := k.of(rollDims[i])
			if c := b.by[i].find(v); c != nil && p.apply(c, -1) {
				b.by[i].drop(v)
			}
		}
	}
	delete(l.convs, id)
	l.add(id, ps)
}

// add puts the pieces ps of the conversation id in the buckets, beside
// those it has; l.mu is held.
func (l *liveView) add(id string, ps []int64) {
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		b := l.buckets[p.bucket]
		if b == nil {
			b = &lbucket{}
			l.buckets[p.bucket] = b
		}
		p.apply(b.full.get(p.key), 1)
		p.apply(&b.total, 1)
		k := &l.keyList[p.key]
		for i := range b.by {
			p.apply(b.by[i].get(k.of(rollDims[i])), 1)
		}
	}
	switch {
	case len(ps) == 0:
	case l.convs[id] == nil:
		l.convs[id] = ps
	default:
		l.convs[id] = append(l.convs[id], ps...)
	}
}

// prune drops the pieces of buckets that have left the horizon, and the
// conversations left with none; l.mu is held.
func (l *liveView) prune(horizonMs int64) {
	for id, ps := range l.convs {
		ps = prunePieces(ps, horizonMs)
		if len(ps) == 0 {
			delete(l.convs, id)
		} else {
			l.convs[id] = ps
		}
	}
	l.pruned = horizonMs
}

// livePruneEvery is how far the horizon moves before the pieces that
// left it are dropped. A prune looks at every conversation of the view
// (hundreds of thousands after a busy hour) whatever it drops, so it runs
// seldom: meanwhile it keeps up to 5 minutes of pieces past the horizon
// (65 minutes by default).
const livePruneEvery = 5 * time.Minute

// read computes the pieces of the conversations ids (all with ids nil)
// in [from, to) (unix ms, whole buckets) with windowByConversationSQL and
// appends them to m.
func (l *liveView) read(ctx context.Context, from, to int64, ids []string, m map[string][]int64) error {
	f, t := time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	p := windowParams(f, f, t, Filters{}, l.cfg.Bucket, l.s.cfg.ServiceLevelThreshold)
	if ids != nil {
		p["ids"] = schemas.StringsParam(ids)
	}
	byIDs := ids != nil
	q := liveLoadSQL
	if byIDs {
		q = liveByIDsSQL
	}
	rows, err := l.s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), q)
	if err != nil {
		return fmt.Errorf("cannot compute live buckets: %w", err)
	}
	defer rows.Close()
	var (
		id, key string
		bucket  int64
		sums    [len(windowSums)]int64
		sumsArr []int64
		keys    []int32
		counts  []uint64
	)
	dest := []any{&id, &bucket, &key}
	if byIDs {
		dest = append(dest, &sumsArr)
	} else {
		for i := range sums {
			dest = append(dest, &sums[i])
		}
	}
	dest = append(dest, &keys, &counts)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("cannot read live buckets: %w", err)
		}
		if byIDs {
			if len(sumsArr) != len(sums) {
				return fmt.Errorf("cannot read live buckets: %d sums, want %d", len(sumsArr), len(sums))
			}
			copy(sums[:], sumsArr)
		}
		k, err := l.internKey(key)
		if err != nil {
			return err
		}
		start := from + bucket*l.bucketMs()
		if start < from || start >= to {
			continue
		}
		m[id] = appendPiece(m[id], start, k, sums[:], keys, counts)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read live buckets: %w", err)
	}
	return nil
}

// The two shapes of windowByConversationSQL, rendered once. A load reads
// every row of the horizon: its sums come as columns, which the driver
// reads without boxing. The shape by ids is the reference a refresh's
// computation (recompute) is held to, and reads few rows: its sums come
// as one array, which the engine plans sooner.
var (
	liveLoadSQL  = strings.Replace(render(windowByConversationSQL, dimFullGrain, false, false), "{{sums}}", sumColumnsSQL(), 1)
	liveByIDsSQL = strings.Replace(render(windowByConversationSQL, dimFullGrain, false, true), "{{sums}}", sumArraySQL, 1)
)

// internKey returns the id of a full-grain key (only the refresh under
// way calls it; keyList only grows, under l.mu).
func (l *liveView) internKey(s string) (uint32, error) {
	if id, ok := l.keyIDs[s]; ok {
		return id, nil
	}
	k, err := parseFullGrainKey(s)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	id := uint32(len(l.keyList))
	l.keyList = append(l.keyList, k)
	l.mu.Unlock()
	l.keyIDs[s] = id
	return id, nil
}

// readOpen reads the conversations rollup's row of the conversations of
// the ids subquery (liveOpenSQL), of the open ones only when openOnly is
// set (a load's: a day of conversations, most of them ended).
func (l *liveView) readOpen(ctx context.Context, ids string, p clickhouse.Parameters, openOnly bool) (map[string]convAttrs, error) {
	out := map[string]convAttrs{}
	q := strings.Replace(liveOpenSQL, "{{ids}}", ids, 1)
	rows, err := l.s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), q)
	if err != nil {
		return nil, fmt.Errorf("cannot read open conversations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id         string
			c          convAttrs
			start, end *int64
		)
		if err := rows.Scan(&id, &c.entry, &c.key.region, &c.key.queue, &c.key.channel, &c.key.businessLine,
			&start, &end, &c.frMs, &c.hfrMs, &c.hasFR, &c.hasHFR, &c.hasTransfer, &c.contained,
			&c.transferMs, &c.assignedMs, &c.open); err != nil {
			return nil, fmt.Errorf("cannot read open conversations: %w", err)
		}
		if start != nil {
			c.startMs = *start
		}
		if end != nil {
			c.endMs = *end
		}
		if c.open || !openOnly {
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
	if needsAgents(f, dim) {
		return false
	}
	if step > 0 && (step%l.cfg.Bucket != 0 || w.From.UnixMilli() != l.floor(w.From.UnixMilli())) {
		return false
	}
	now := l.s.cfg.Now()
	return !w.From.Before(now.Add(-l.cfg.Horizon).Add(l.cfg.Bucket))
}

// holds reports whether the view holds the buckets from from (unix ms)
// on: it is loaded, or its load has read that far back.
func (l *liveView) holds(from int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.loaded && (l.partialFrom == 0 || from >= l.partialFrom)
}

// compute answers w from the buckets, as KPIStore.compute does from the
// store, and returns the window it answered: From rounded down to a
// bucket; To the end of the newest bucket if w reaches the present (ends
// at most two buckets before the view's time), else rounded down too, so
// that consecutive windows still partition time.
//
// The sums are kept until the buckets change: the rules ask the same
// windows every tick, and while nothing new arrives (or until their
// window moves on by a bucket) the answer is the one before, its
// snapshots (quantiles) computed once (cell.memo); so is the answer with
// the gauges (those at the view's time) added, until they change too.
// Callers only read the cells.
func (l *liveView) compute(w Window, f Filters, dim Dimension, step time.Duration, withGauges bool) (map[cellKey]*cell, answered, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	from := l.floor(w.From.UnixMilli())
	if l.partialFrom != 0 && from < l.partialFrom {
		return nil, answered{}, false
	}
	to := l.floor(l.asOf.UnixMilli()) + l.bucketMs()
	if w.To.Before(l.asOf.Add(-2 * l.cfg.Bucket)) {
		to = l.floor(w.To.UnixMilli())
	}
	if to <= from {
		to = from + l.bucketMs()
	}
	a := answered{Window: Window{From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC()}, asOf: l.asOf}
	key := answerKey{from: from, to: to, f: f, dim: dim, step: step}
	out := l.answer(key, func() map[cellKey]*cell {
		cells := l.computeLocked(from, to, f, dim, step)
		for _, c := range cells {
			c.memo = &snapMemo{}
		}
		return cells
	})
	if withGauges {
		sums := out
		g, gen := l.gaugesLocked()
		key.gauges = gen
		out = l.answer(key, func() map[cellKey]*cell { return addGauges(sums, g, f, dim) })
	}
	return out, a, true
}

// answer returns the answer kept for key while the buckets are at the
// view's version, computing it once; l.mu is held (read).
func (l *liveView) answer(key answerKey, compute func() map[cellKey]*cell) map[cellKey]*cell {
	at := l.version
	l.answersMu.Lock()
	if l.answersAt != at || len(l.answers) >= maxAnswers {
		l.answers, l.answersAt = map[answerKey]map[cellKey]*cell{}, at
	}
	out, ok := l.answers[key]
	l.answersMu.Unlock()
	if ok {
		return out
	}
	out = compute()
	l.answersMu.Lock()
	if l.answersAt == at {
		l.answers[key] = out
	}
	l.answersMu.Unlock()
	return out
}

// answerKey names a computed window: its bucket range, filters, breakdown
// and steps.
type answerKey struct {
	from, to int64
	f        Filters
	dim      Dimension
	step     time.Duration
	// gauges is, for an answer with the "now" gauges added, their
	// gaugesGen (which starts at 1); 0 for the sums alone.
	gauges uint64
}

// maxAnswers bounds the answers kept for one version of the view.
const maxAnswers = 256

// gaugeCount is what the open conversations of one full-grain key add
// to the "now" gauges.
type gaugeCount struct{ active, waiting uint64 }

// currentGauges returns the gauges at the view's time for the keys of f
// and dim if the view holds them (no agent), is loaded and read the store
// at most maxAge ago, else nil.
func (l *liveView) currentGauges(f Filters, dim Dimension, maxAge time.Duration) map[liveKey]gaugeCount {
	if needsAgents(f, dim) {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.loaded || l.partialFrom != 0 || time.Since(l.readAt) > maxAge {
		return nil
	}
	g, _ := l.gaugesLocked()
	return g
}

// gaugesLocked returns the "now" gauges at the view's time by full-grain
// key, and a number that changes when they do; l.mu is held (read). They
// are counted over the open conversations once, and again only when a
// refresh changed those or the view's time has moved past a start or a
// transfer, or a day past one: the rules ask for them by several
// breakdowns every tick, and there are far fewer keys than open
// conversations (an idle view over a demo's store counted thousands of
// them every refresh; its simulator had 4,614 open when it stopped).
func (l *liveView) gaugesLocked() (map[liveKey]gaugeCount, uint64) {
	l.gaugesMu.Lock()
	defer l.gaugesMu.Unlock()
	now := l.asOf.UnixMilli()
	if l.gauges != nil && l.gaugesOpen == l.openGen && now < l.gaugesUntil {
		return l.gauges, l.gaugesGen
	}
	const dayMs = 24 * int64(time.Hour/time.Millisecond)
	day := now - dayMs
	until := int64(math.MaxInt64)
	after := func(ms int64) {
		for _, t := range [2]int64{ms, ms + dayMs} {
			if t > now {
				until = min(until, t)
			}
		}
	}
	g := map[liveKey]gaugeCount{}
	for _, c := range l.open {
		after(c.startMs)
		after(c.transferMs)
		active := c.startMs > day && c.startMs <= now
		waiting := c.transferMs > day && c.transferMs <= now && c.assignedMs < c.transferMs
		if !active && !waiting {
			continue
		}
		n := g[c.key]
		if active {
			n.active++
		}
		if waiting {
			n.waiting++
		}
		g[c.key] = n
	}
	if l.gauges == nil || !maps.Equal(g, l.gauges) {
		l.gaugesGen++
	}
	l.gauges, l.gaugesOpen, l.gaugesUntil = g, l.openGen, until
	return g, l.gaugesGen
}

// addGauges returns cells with the "now" gauges g of the open
// conversations matching f added, by dim; cells is not changed (a cell
// with gauges is a copy).
func addGauges(cells map[cellKey]*cell, g map[liveKey]gaugeCount, f Filters, dim Dimension) map[cellKey]*cell {
	var out map[cellKey]*cell
	for key, n := range g {
		if !key.matches(f) {
			continue
		}
		if out == nil {
			out = maps.Clone(cells)
		}
		k := cellKey{key: key.of(dim)}
		x := out[k]
		if x == nil || x == cells[k] {
			cp := &cell{}
			if x != nil {
				*cp = *x
			}
			x, out[k] = cp, cp
		}
		x.active += n.active
		x.waiting += n.waiting
	}
	if out == nil {
		return cells
	}
	return out
}

// computeLocked adds up the buckets of [from, to); l.mu is held.
func (l *liveView) computeLocked(from, to int64, f Filters, dim Dimension, step time.Duration) map[cellKey]*cell {
	out := map[cellKey]*cell{}
	roll := -1 // the rolled cells that answer, if any: 0 total, 1+i by rollDims[i]
	if f == (Filters{}) {
		roll = slices.Index(rollDims[:], dim) + 1
	}
	// The sums are added at once, the histograms once every cell of an
	// answer is known: each answer cell's live cells, in the order found.
	parts := map[*cell][]*lcell{}
	add := func(idx int64, key string, c *lcell) {
		o := at(out, idx, key)
		for i, v := range c.sums {
			o.sums[i] += v
		}
		if len(c.hist) > 0 {
			parts[o] = append(parts[o], c)
		}
	}
	for b := from; b < to; b += l.bucketMs() {
		var idx int64
		if step > 0 {
			idx = (b - from) / step.Milliseconds()
		}
		bk := l.buckets[b]
		switch {
		case bk == nil:
		case roll == 0:
			if bk.total.pieces > 0 {
				add(idx, "", &bk.total)
			}
		case roll > 0:
			bk.by[roll-1].each(func(v string, c *lcell) { add(idx, v, c) })
		default:
			bk.full.each(func(id uint32, c *lcell) {
				if k := &l.keyList[id]; k.matches(f) {
					add(idx, k.of(dim), c)
				}
			})
		}
	}
	if len(parts) > 0 {
		h := histSums.Get().(*histSum)
		for o, cs := range parts {
			for _, c := range cs {
				h.add(c)
			}
			h.flush(o)
		}
		histSums.Put(h)
	}
	return out
}

// histSums are the histSum of computations under way (computeLocked runs
// under the read lock, so several at once).
var histSums = sync.Pool{New: func() any { return new(histSum) }}

// RegisterMetrics registers the live view's metrics with reg (nothing
// when the store has no live view): its refreshes, loads, failures and
// their durations, the conversations it recomputed, and how old its data
// is. A refresh costs what its conversations do: recomputed per refresh
// is the figure to watch against the events' rate.
func (s *KPIStore) RegisterMetrics(reg prometheus.Registerer) error {
	l := s.live
	if l == nil {
		return nil
	}
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	for _, c := range []prometheus.Collector{
		counter("cockpit_kpi_live_refreshes_total", "Refreshes of the live view that ended without error, loads included.", &l.refreshes),
		counter("cockpit_kpi_live_refresh_failures_total", "Refreshes of the live view that failed (the next caller tries again).", &l.failures),
		counter("cockpit_kpi_live_loads_total", "Loads of the live view: the first, and after a pause while the ingest was behind.", &l.loads),
		counter("cockpit_kpi_live_recomputed_conversations_total", "Conversations whose pieces the live view computed (by refreshes and loads).", &l.recomputed),
		l.refreshSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cockpit_kpi_live_data_age_seconds",
			Help: "Age of the live view's data: since its last refresh asked the store what changed (0 before the first)."},
			func() float64 {
				l.mu.RLock()
				defer l.mu.RUnlock()
				if l.readAt.IsZero() {
					return 0
				}
				return time.Since(l.readAt).Seconds()
			}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("cannot register live view metrics: %w", err)
		}
	}
	return nil
}
