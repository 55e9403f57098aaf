package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// Hub is the live stream's fan-out: it computes one KPI snapshot per tick
// for every viewer together and hands each viewer the same encoded frame.
// A viewer that falls Config.StreamBuffer frames behind is dropped (its
// EventSource reconnects), so a slow one never slows the others.
type Hub struct {
	kpis   KPISource
	alerts AlertHistory // nil: the panel has no firing list
	cfg    Config
	now    func() time.Time
	logger *slog.Logger
	// ingestBehind, if set, bounds the time of the panels' data (Deps).
	ingestBehind func(time.Time) time.Duration
	// stored is what ingestBehind said at each tick of the last minutes.
	stored storedLog

	mu        sync.Mutex
	clients   map[*streamClient]struct{}
	seq       uint64
	fresh     chan struct{} // new events stored: compute a snapshot early
	tickAt    time.Time     // when the last snapshot computation started
	lastKPI   []byte        // the latest kpi frame, sent to a viewer on connect
	lastPanel []byte        // the latest wall frame, likewise
	panelAt   time.Time
	lastErr   time.Time

	// What each panel last read, and whether its last read worked. The
	// tiles belong to tick, the others to panel; each runs once at a time.
	tiles                   readState
	lastSnap                *kpi.Snapshot
	lastSnapPartial         bool // lastSnap was read before its window was stored
	trends, regions, firing readState
	lastTrends              *trendsData
	lastRegions             *regionsData
	lastFiring              []alertJSON

	// stopped is set when Run has ended: its viewers were let go, and one
	// that comes later is let go at once, so that the server's shutdown
	// does not wait for their long-lived requests.
	stopped bool
}

// streamClient is one viewer's queue.
type streamClient struct {
	ch   chan []byte
	gone chan struct{} // closed when the hub drops the viewer
}

func newHub(kpis KPISource, alerts AlertHistory, cfg Config, now func() time.Time, logger *slog.Logger) *Hub {
	return &Hub{kpis: kpis, alerts: alerts, cfg: cfg, now: now, logger: logger, clients: map[*streamClient]struct{}{},
		fresh: make(chan struct{}, 1)}
}

// Run computes and sends a KPI snapshot every Config.StreamTick, and the
// wall panel every Config.StreamPanelEvery, while at least one viewer is
// connected, until ctx ends. The wiring owns it: one Run per server. The
// panel is computed beside the ticks, so a slow panel query never delays
// the tiles.
func (h *Hub) Run(ctx context.Context) {
	defer h.stop()
	if h.kpis == nil {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(h.cfg.StreamTick)
	defer t.Stop()
	// At most one snapshot and one panel under way: a tick that comes
	// while the last one still runs is skipped, so a slow store makes the
	// wall late (its "data as of" stamp shows it), never a queue of
	// queries.
	tickBusy, panelBusy := make(chan struct{}, 1), make(chan struct{}, 1)
	// A snapshot asked for while one is being computed may miss the new
	// events: it is computed again as soon as the running one ends.
	var again atomic.Bool
	start := func(busy chan struct{}, fn func(context.Context), isTick bool) {
		select {
		case busy <- struct{}{}:
			go func() {
				defer func() {
					<-busy
					if isTick && again.Swap(false) {
						h.Fresh()
					}
				}()
				fn(ctx)
			}()
		default:
			if isTick {
				again.Store(true)
			}
		}
	}
	// New events make a snapshot due early, but no sooner than a quarter
	// tick after the last one began: the wall shows them without waiting
	// for the next tick, and a busy ingest costs the store at most four
	// snapshots a tick.
	early := time.NewTimer(time.Hour)
	early.Stop()
	for {
		select {
		case <-ctx.Done():
			tickBusy <- struct{}{} // wait for the work under way
			panelBusy <- struct{}{}
			return
		case <-t.C:
		case <-h.fresh:
			h.mu.Lock()
			wait := h.cfg.StreamTick/4 - time.Since(h.tickAt)
			h.mu.Unlock()
			if wait > 0 {
				early.Reset(wait)
				continue
			}
		case <-early.C:
		}
		// Noted here, before any read of this tick, and whether or not
		// anyone watches: an answer read before a viewer came is dated
		// by what was stored then.
		h.noteStored(h.now())
		if h.viewers() == 0 {
			continue
		}
		if h.panelDue() {
			start(panelBusy, h.panel, false)
		}
		start(tickBusy, h.tick, true)
	}
}

// Fresh tells the hub that new events were stored, so the next snapshot
// is computed early. It never blocks.
func (h *Hub) Fresh() {
	select {
	case h.fresh <- struct{}{}:
	default:
	}
}

// streamQueryTimeout bounds one snapshot, and each read of the panel.
const streamQueryTimeout = 10 * time.Second

// panelDue says whether the wall panel is older than StreamPanelEvery.
func (h *Hub) panelDue() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastPanel == nil || h.now().Sub(h.panelAt) >= h.cfg.StreamPanelEvery
}

// viewers is the number of connected viewers.
func (h *Hub) viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// tick computes one snapshot and sends it to every viewer. When the store
// cannot be read, the frame still goes out: it says so, and carries the
// last good snapshot with its time, so no page shows old numbers as new.
func (h *Hub) tick(ctx context.Context) {
	h.mu.Lock()
	h.tickAt = time.Now()
	h.mu.Unlock()
	qctx, cancel := context.WithTimeout(kpi.AsItIs(ctx, h.refreshWait()), streamQueryTimeout)
	defer cancel()
	to := h.now().UTC().Truncate(time.Millisecond)
	snap, err := h.kpis.KPIs(qctx, kpi.Window{From: to.Add(-h.cfg.StreamWindow), To: to}, kpi.Filters{})
	lag := h.ingestLag(to)
	switch {
	case errors.Is(err, kpi.ErrLoading):
		// A stream window longer than what a loading view holds yet.
	case err != nil:
		if ctx.Err() != nil {
			return // shutting down: not a store failure
		}
		h.mu.Lock()
		// Rate-limited: at one tick a second a store outage would
		// otherwise log every second.
		logIt := time.Since(h.lastErr) > 30*time.Second
		if logIt {
			h.lastErr = time.Now()
		}
		h.mu.Unlock()
		if logIt {
			h.logger.Warn("stream: cannot compute KPIs", "err", err)
		}
		h.tiles.failed(to, err)
	default:
		dt := h.dataTime(snap.AsOf, to)
		h.tiles.succeeded(dt)
		h.lastSnap = &snap
		// Read (or, from a live view, refreshed) while the ingest was
		// further behind than the tiles may be old: it counts only part
		// of its window, whenever it is shown.
		readAt := to
		if !snap.AsOf.IsZero() && snap.AsOf.Before(to) {
			readAt = snap.AsOf
		}
		h.lastSnapPartial = readAt.Sub(dt) > h.tilesStaleAfter()
	}
	f := kpiFrame{ComputedAt: h.now().UTC(), panelState: h.tiles.state(h.tilesStaleAfter()), Snapshot: h.lastSnap,
		Partial: h.lastSnap != nil && h.lastSnapPartial}
	if h.ingestBehind != nil {
		s := lag.Round(100 * time.Millisecond).Seconds()
		f.IngestBehindSeconds = &s
	}
	data, err := json.Marshal(f)
	if err != nil {
		h.logger.Error("stream: cannot encode KPIs", "err", err)
		return
	}
	h.broadcast("kpi", data)
}

// refreshWait is the longest a snapshot waits for a refresh of the live
// view under way: half a tick, so the frames keep their cadence whatever
// the refresh takes. A refresh that follows a flush usually ends sooner,
// and its events are then in the frame.
func (h *Hub) refreshWait() time.Duration { return h.cfg.StreamTick / 2 }

// dataTime is the time of the data an answer read at at holds: when the
// events it could hold were all stored (at less ingestLag), or, when the
// answer says it was read earlier (asOf: a live view refreshed before, an
// evaluation made before), when they were all stored at that time by the
// log's last note at or before it (never later than asOf). A view
// refreshed while the ingest was a minute behind, answering after it
// caught up, holds a minute less than its asOf says.
func (h *Hub) dataTime(asOf, at time.Time) time.Time {
	t := at.Add(-h.ingestLag(at))
	if !asOf.IsZero() && asOf.Before(at) {
		t = asOf
		if h.ingestBehind != nil {
			if upTo := h.stored.upTo(asOf); upTo.Before(t) {
				t = upTo
			}
		}
	}
	return t.UTC()
}

// noteStored records how far the events were all stored at at.
func (h *Hub) noteStored(at time.Time) {
	if h.ingestBehind != nil {
		h.stored.note(at, at.Add(-h.ingestLag(at)))
	}
}

// storedLog remembers, for storedHistory, up to when the events were all
// stored at each tick (its time less the ingest's lag then), so that an
// answer read a while ago is dated by what was stored when it was read,
// not by what is stored now.
type storedLog struct {
	mu        sync.Mutex
	at, upTos []time.Time // in the order noted
}

// storedHistory is how long the log keeps what it noted: an answer read
// longer ago than that is stale on every panel anyway.
const storedHistory = 15 * time.Minute

func (l *storedLog) note(at, upTo time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.at); n > 0 && !at.After(l.at[n-1]) {
		// Kept in order: a note no later than the last (the clock set
		// back) adds nothing the log can find.
		return
	}
	old := 0
	for old < len(l.at) && at.Sub(l.at[old]) > storedHistory {
		old++
	}
	if old > 0 {
		l.at, l.upTos = slices.Delete(l.at, 0, old), slices.Delete(l.upTos, 0, old)
	}
	l.at, l.upTos = append(l.at, at), append(l.upTos, upTo)
}

// upTo is up to when the events were all stored at t, as far as the log
// knows, never later: what was noted last at or before t (stores only
// catch up later), or before the first note what it said (the most it can
// have been); t itself when nothing was noted.
func (l *storedLog) upTo(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.at, t, func(a, t time.Time) int { return a.Compare(t) })
	// l.at[i-1] < t <= l.at[i]: the last at or before t.
	if i < len(l.at) && l.at[i].Equal(t) {
		return l.upTos[i]
	}
	switch {
	case i > 0:
		return l.upTos[i-1]
	case len(l.at) > 0:
		return l.upTos[0]
	}
	return t
}

// ingestLag is how long before at this process's ingest was last caught
// up with its partitions (Deps.IngestBehind; 0 when it ingests nothing
// here): the events produced since may not be stored yet, so no panel's
// data is newer, the firing list's included (an evaluation is no newer
// than the events it judged).
func (h *Hub) ingestLag(at time.Time) time.Duration {
	if h.ingestBehind == nil {
		return 0
	}
	return h.ingestBehind(at)
}

// tilesStaleAfter is the age past which a snapshot is stale: several
// ticks have gone by without a newer one.
func (h *Hub) tilesStaleAfter() time.Duration {
	return max(5*time.Second, 3*h.cfg.StreamTick)
}

// panelStaleAfter is the age past which the wall panel is stale: the
// next one should have come, however slow its three reads.
func (h *Hub) panelStaleAfter() time.Duration {
	return 2*h.cfg.StreamPanelEvery + 3*streamQueryTimeout
}

// panelState says whether a panel's data could be read, and the time of
// the data it carries. A panel whose read failed carries its last good
// data (AsOf says how old) or none at all, never an empty value that a
// page would show as "all clear".
type panelState struct {
	// OK is false when the last read failed.
	OK bool `json:"ok"`
	// AsOf is the time the data carried describes (the end of the window
	// read, or when the list was read); null when nothing was read yet.
	AsOf *time.Time `json:"as_of"`
	// UnknownSince, set when OK is false, is when the panel's state
	// stopped being known: the time of the last good data, or of the
	// first failed read when there was none.
	UnknownSince *time.Time `json:"unknown_since,omitempty"`
	// Error is why the read failed: "timeout" or "unavailable" (the
	// store's own message goes to the log only), or for the firing list
	// "not_evaluated": it was read, but no rule evaluation was recorded.
	Error string `json:"error,omitempty"`
	// StaleAfterSeconds is how old AsOf may grow before the data is
	// stale: a newer frame is due before then.
	StaleAfterSeconds int `json:"stale_after_seconds"`
}

// readState follows the reads of one panel.
type readState struct {
	good      time.Time // as of the last good read; zero: none yet
	failSince time.Time // first failed read of the current run; zero: the last read worked
	err       string
}

func (r *readState) succeeded(asOf time.Time) {
	r.good, r.failSince, r.err = asOf, time.Time{}, ""
}

// errNotEvaluated fails a firing list that was read while no rule
// evaluation was ever recorded: it says nothing of what fires now.
var errNotEvaluated = errors.New("no rule evaluation recorded")

func (r *readState) failed(at time.Time, err error) {
	if r.failSince.IsZero() {
		r.failSince = at
	}
	switch {
	case errors.Is(err, errNotEvaluated):
		r.err = "not_evaluated"
	case errors.Is(err, context.DeadlineExceeded):
		r.err = "timeout"
	default:
		r.err = "unavailable"
	}
}

func (r *readState) state(staleAfter time.Duration) panelState {
	s := panelState{OK: r.failSince.IsZero(), StaleAfterSeconds: int(staleAfter / time.Second)}
	if !r.good.IsZero() {
		t := r.good
		s.AsOf = &t
	}
	if !s.OK {
		since := r.failSince
		if s.AsOf != nil {
			since = *s.AsOf
		}
		s.UnknownSince, s.Error = &since, r.err
	}
	return s
}

// kpiFrame is the data of a `kpi` event: the tiles' state and the
// snapshot (its fields at the top level, `to` being the time it
// describes); no snapshot fields when none was ever read.
type kpiFrame struct {
	// ComputedAt is when the frame was made.
	ComputedAt time.Time `json:"computed_at"`
	// IngestBehindSeconds is how long ago this process's ingest was last
	// caught up (Deps.IngestBehind; about a second while it keeps up),
	// so a wall whose tiles went stale can say why; absent when this
	// process does not ingest.
	IngestBehindSeconds *float64 `json:"ingest_behind_seconds,omitempty"`
	// Partial says the snapshot carried was read while the events of
	// its window were not all stored (the ingest, or the producer, was
	// further behind than StaleAfterSeconds): a count of part of a
	// window, which a page does not show as a number, even once the
	// ingest has caught up and the snapshot is merely old.
	Partial bool `json:"partial,omitempty"`
	panelState
	*kpi.Snapshot
}

// WallTrends are the metrics of the wall's trend charts, in the form
// /api/v1/timeseries takes them.
var WallTrends = []string{
	kpi.MetricFirstResponseSeconds + ".p90", kpi.MetricHumanWaitSeconds + ".p90",
	kpi.MetricServiceLevel, kpi.MetricResolutionRate, kpi.MetricTransferRate, kpi.MetricAbandonRate,
}

// wallFrame is the data of a `wall` event: what the wall's charts and
// banner show, computed once for every viewer. Each part says on its own
// whether it could be read and how old its data is.
type wallFrame struct {
	// ComputedAt is when the frame was made.
	ComputedAt time.Time    `json:"computed_at"`
	Trends     trendsPanel  `json:"trends"`
	Regions    regionsPanel `json:"regions"`
	// Firing is absent when the server has no alert history.
	Firing *firingPanel `json:"firing,omitempty"`
}

type trendsPanel struct {
	panelState
	*trendsData
}

// trendsData is the last hour of the wall's trend metrics, by minute.
type trendsData struct {
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	StepSeconds int                 `json:"step_seconds"`
	Series      map[string][][2]any `json:"series"`
}

type regionsPanel struct {
	panelState
	*regionsData
}

// regionsData ranks the regions by complaints over the last hour.
type regionsData struct {
	From time.Time     `json:"from"`
	To   time.Time     `json:"to"`
	Rows []regionCount `json:"rows"`
}

type regionCount struct {
	Key        string `json:"key"`
	Complaints uint64 `json:"complaints"`
}

// firingPanel is the firing alerts. When OK is false, Alerts is the last
// list read (the state now is not known), or null.
type firingPanel struct {
	panelState
	Alerts []alertJSON `json:"alerts"`
}

// panelRegions is how many regions the wall ranks.
const panelRegions = 12

// panel reads the firing alerts and the wall's charts over the last hour,
// and sends them to every viewer. Each read has its own deadline, so a
// slow chart query does not cost the banner its list; they run one after
// the other, the firing list first, so the wall adds no concurrent
// queries to a store already struggling.
func (h *Hub) panel(ctx context.Context) {
	at := h.now().UTC().Truncate(time.Millisecond)
	// The regions count the hour up to now. The trends end with the last
	// whole minute: in the minute under way only the quickest replies and
	// assignments have happened yet, so its wait p90 would plunge and its
	// service level jump at the right edge of every chart.
	to := at.Truncate(time.Minute)
	tw := kpi.Window{From: to.Add(-time.Hour), To: to}
	w := kpi.Window{From: tw.From.Add(time.Minute), To: to.Add(time.Minute)}
	read := func(fn func(context.Context) error) error {
		qctx, cancel := context.WithTimeout(kpi.AsItIs(ctx, h.refreshWait()), streamQueryTimeout)
		defer cancel()
		return fn(qctx)
	}
	var (
		firing                           []alerts.Record
		trends                           map[string][]kpi.Point
		trendsAsOf                       time.Time
		rows                             []kpi.KeyedSnapshot
		firingErr, trendsErr, regionsErr error
	)
	var evaluated time.Time
	if h.alerts != nil {
		firingErr = read(func(ctx context.Context) (err error) {
			firing, err = h.alerts.ListAlerts(ctx, "firing", time.Unix(0, 0), at.Add(time.Minute), maxAlerts)
			if err != nil {
				return err
			}
			evaluated, err = h.alerts.LastEvaluation(ctx)
			return err
		})
	}
	trendsErr = read(func(ctx context.Context) (err error) {
		trends, trendsAsOf, err = h.kpis.Trends(ctx, WallTrends, time.Minute, tw, kpi.Filters{})
		return err
	})
	regionsErr = read(func(ctx context.Context) (err error) {
		rows, err = h.kpis.KPIsBy(ctx, w, kpi.Filters{}, kpi.DimRegion)
		return err
	})
	if ctx.Err() != nil {
		return // shutting down: not a store failure
	}
	// A live view still loading the hour of these panels holds it within
	// seconds: they keep what they show, and its age, meanwhile.
	loading := func(err error) bool { return errors.Is(err, kpi.ErrLoading) }
	var failures []error
	for _, err := range []error{trendsErr, regionsErr, firingErr} {
		if err != nil && !loading(err) {
			failures = append(failures, err)
		}
	}
	if err := errors.Join(failures...); err != nil {
		h.logger.Warn("stream: wall panel incomplete", "err", err)
	}
	switch {
	case loading(trendsErr):
	case trendsErr != nil:
		h.trends.failed(at, trendsErr)
	default:
		d := &trendsData{From: tw.From, To: tw.To, StepSeconds: 60, Series: map[string][][2]any{}}
		for m, pts := range trends {
			d.Series[m] = pointsJSON(pts)
		}
		h.trends.succeeded(h.dataTime(trendsAsOf, at))
		h.lastTrends = d
	}
	switch {
	case loading(regionsErr):
	case regionsErr != nil:
		h.regions.failed(at, regionsErr)
	default:
		d := &regionsData{From: w.From, To: w.To, Rows: []regionCount{}}
		for _, r := range rows {
			if r.Complaints > 0 {
				d.Rows = append(d.Rows, regionCount{Key: r.Key, Complaints: r.Complaints})
			}
		}
		slices.SortStableFunc(d.Rows, func(a, b regionCount) int { return cmp.Compare(b.Complaints, a.Complaints) })
		d.Rows = d.Rows[:min(len(d.Rows), panelRegions)]
		// The rows say how old they are; with no rows, the trends read
		// just before from the same source do.
		asOf := trendsAsOf
		if len(rows) > 0 {
			asOf = rows[0].AsOf
		}
		h.regions.succeeded(h.dataTime(asOf, at))
		h.lastRegions = d
	}
	if firingErr != nil {
		h.firing.failed(at, firingErr)
	} else if h.alerts != nil {
		h.lastFiring = make([]alertJSON, 0, len(firing))
		for _, r := range firing {
			h.lastFiring = append(h.lastFiring, toAlertJSON(r))
		}
		// The list is as current as the rules' last evaluation: when the
		// leader's ticks stop finishing, or no instance leads, it grows
		// old and the wall says the alert state is unknown.
		switch {
		case evaluated.IsZero():
			h.firing.failed(at, errNotEvaluated)
		default:
			h.firing.succeeded(h.dataTime(evaluated, at))
		}
	}

	stale := h.panelStaleAfter()
	f := wallFrame{ComputedAt: h.now().UTC(),
		Trends:  trendsPanel{h.trends.state(stale), h.lastTrends},
		Regions: regionsPanel{h.regions.state(stale), h.lastRegions}}
	if h.alerts != nil {
		f.Firing = &firingPanel{h.firing.state(stale), h.lastFiring}
	}
	data, err := json.Marshal(f)
	if err != nil {
		h.logger.Error("stream: cannot encode the wall panel", "err", err)
		return
	}
	h.mu.Lock()
	h.panelAt = h.now()
	h.mu.Unlock()
	h.broadcast("wall", data)
}

// alertChange is the data of an `alert` event.
type alertChange struct {
	// ComputedAt is when the frame was made.
	ComputedAt time.Time `json:"computed_at"`
	// AsOf is the time of the evaluation the change came from.
	AsOf  time.Time    `json:"as_of"`
	From  alerts.State `json:"from"`
	To    alerts.State `json:"to"`
	Alert alertJSON    `json:"alert"`
}

// changeTime is the evaluation time of a change: the latest time the
// record was seen, started or resolved at.
func changeTime(r alerts.Record) time.Time {
	t := r.ActiveAt
	for _, u := range []time.Time{r.LastSeen, r.StartedAt, r.ResolvedAt} {
		if u.After(t) {
			t = u
		}
	}
	return t.UTC()
}

// PublishAlerts sends alert lifecycle changes to every viewer; it has the
// signature alerts.Manager.OnChange wants.
func (h *Hub) PublishAlerts(changes []alerts.Change) {
	for _, ch := range changes {
		data, err := json.Marshal(alertChange{ComputedAt: h.now().UTC(), AsOf: changeTime(ch.Alert), From: ch.From, To: ch.To, Alert: toAlertJSON(ch.Alert)})
		if err != nil {
			h.logger.Error("stream: cannot encode alert", "err", err)
			continue
		}
		h.broadcast("alert", data)
	}
}

// broadcast frames one event and queues it for every viewer without
// waiting: a viewer whose queue is full is dropped.
func (h *Hub) broadcast(event string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	var b bytes.Buffer
	b.Grow(len(data) + 64)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(h.seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(event)
	b.WriteString("\ndata: ")
	b.Write(data) // JSON from encoding/json has no raw newlines
	b.WriteString("\n\n")
	frame := b.Bytes()
	switch event {
	case "kpi":
		h.lastKPI = frame
	case "wall":
		h.lastPanel = frame
	}
	for c := range h.clients {
		select {
		case c.ch <- frame:
		default:
			h.drop(c)
		}
	}
}

// subscribe adds a viewer and returns it with the latest kpi and wall
// frames.
func (h *Hub) subscribe() (*streamClient, []byte) {
	c := &streamClient{ch: make(chan []byte, h.cfg.StreamBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		close(c.gone)
	} else {
		h.clients[c] = struct{}{}
	}
	return c, append(slices.Clip(h.lastKPI), h.lastPanel...)
}

// stop lets every viewer go and turns later ones away: the stream
// requests return (EventSource reconnects to whatever serves next).
func (h *Hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for c := range h.clients {
		h.drop(c)
	}
}

// unsubscribe removes a viewer that left.
func (h *Hub) unsubscribe(c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		h.drop(c)
	}
}

// drop lets a connected viewer go; h.mu is held.
func (h *Hub) drop(c *streamClient) {
	delete(h.clients, c)
	close(c.gone)
}

// streamWriteTimeout bounds one write to a viewer: a connection that
// takes no data for this long is given up.
const streamWriteTimeout = 10 * time.Second

// GET /api/v1/stream: Server-Sent Events, `kpi` every tick, `wall` every
// StreamPanelEvery and `alert` on changes, with keep-alive comments
// between.
func (s *Server) stream(c *gin.Context) {
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no") // no proxy buffering
	c.Status(http.StatusOK)
	cl, last := s.hub.subscribe()
	defer s.hub.unsubscribe(cl)
	rc := http.NewResponseController(c.Writer)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := c.Writer.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// retry tells EventSource how soon to reconnect after a drop.
	first := append([]byte("retry: 2000\n\n"), last...)
	if !write(first) {
		return
	}
	keep := time.NewTicker(s.cfg.StreamKeepAlive)
	defer keep.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cl.gone:
			return
		case frame := <-cl.ch:
			if !write(frame) {
				return
			}
		case <-keep.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}
