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
	"github.com/cockpit-cs/cockpit/pipeline"
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

	mu        sync.Mutex
	clients   map[*streamClient]struct{}
	seq       uint64
	fresh     chan struct{} // new events stored: compute a snapshot early
	tickAt    time.Time     // when the last snapshot computation started
	lastKPI   []byte        // the latest kpi frame, sent to a viewer on connect
	lastPanel []byte        // the latest wall frame, likewise
	panelAt   time.Time
	lastErr   time.Time
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

// streamQueryTimeout bounds one snapshot or panel computation.
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

// tick computes one snapshot and sends it to every viewer.
func (h *Hub) tick(ctx context.Context) {
	h.mu.Lock()
	h.tickAt = time.Now()
	h.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, streamQueryTimeout)
	defer cancel()
	to := h.now().UTC().Truncate(time.Millisecond)
	snap, err := h.kpis.KPIs(qctx, pipeline.Window{From: to.Add(-h.cfg.StreamWindow), To: to}, pipeline.Filters{})
	if err != nil {
		h.mu.Lock()
		// Rate-limited: at one tick a second a store outage would
		// otherwise log every second.
		logIt := time.Since(h.lastErr) > 30*time.Second
		if logIt {
			h.lastErr = time.Now()
		}
		h.mu.Unlock()
		if logIt && ctx.Err() == nil {
			h.logger.Warn("stream: cannot compute KPIs", "err", err)
		}
		return
	}
	data, err := json.Marshal(snap)
	if err != nil {
		h.logger.Error("stream: cannot encode KPIs", "err", err)
		return
	}
	h.broadcast("kpi", data)
}

// WallTrends are the metrics of the wall's trend charts, in the form
// /api/v1/timeseries takes them.
var WallTrends = []string{
	pipeline.MetricFirstResponseSeconds + ".p90", pipeline.MetricHumanWaitSeconds + ".p90",
	pipeline.MetricServiceLevel, pipeline.MetricResolutionRate, pipeline.MetricTransferRate, pipeline.MetricAbandonRate,
}

// wallPanel is the data of a `wall` event: what the wall's charts and
// banner show, computed once for every viewer. A part whose query failed
// is left out (null), and the page keeps what it showed.
type wallPanel struct {
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	StepSeconds int                 `json:"step_seconds"`
	Trends      map[string][][2]any `json:"trends"`
	Regions     []regionCount       `json:"regions"`
	Firing      []alertJSON         `json:"firing"`
}

type regionCount struct {
	Key        string `json:"key"`
	Complaints uint64 `json:"complaints"`
}

// panelRegions is how many regions the wall ranks.
const panelRegions = 12

// panel computes the wall's charts over the last hour and the firing
// alerts, and sends them to every viewer.
func (h *Hub) panel(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, streamQueryTimeout)
	defer cancel()
	to := h.now().UTC().Truncate(time.Minute).Add(time.Minute)
	w := pipeline.Window{From: to.Add(-time.Hour), To: to}
	p := wallPanel{From: w.From, To: w.To, StepSeconds: 60, Trends: map[string][][2]any{}}
	var errs []error
	if trends, err := h.kpis.Trends(qctx, WallTrends, time.Minute, w, pipeline.Filters{}); err != nil {
		errs = append(errs, err)
		p.Trends = nil
	} else {
		for m, pts := range trends {
			p.Trends[m] = pointsJSON(pts)
		}
	}
	if rows, err := h.kpis.KPIsBy(qctx, w, pipeline.Filters{}, pipeline.DimRegion); err != nil {
		errs = append(errs, err)
	} else {
		p.Regions = []regionCount{}
		for _, r := range rows {
			if r.Complaints > 0 {
				p.Regions = append(p.Regions, regionCount{Key: r.Key, Complaints: r.Complaints})
			}
		}
		slices.SortStableFunc(p.Regions, func(a, b regionCount) int { return cmp.Compare(b.Complaints, a.Complaints) })
		p.Regions = p.Regions[:min(len(p.Regions), panelRegions)]
	}
	if h.alerts != nil {
		if rs, err := h.alerts.ListAlerts(qctx, "firing", time.Unix(0, 0), h.now().Add(time.Minute), maxAlerts); err != nil {
			errs = append(errs, err)
		} else {
			p.Firing = make([]alertJSON, 0, len(rs))
			for _, r := range rs {
				p.Firing = append(p.Firing, toAlertJSON(r))
			}
		}
	}
	if len(errs) > 0 && ctx.Err() == nil {
		h.logger.Warn("stream: wall panel incomplete", "err", errors.Join(errs...))
	}
	data, err := json.Marshal(p)
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
	From  alerts.State `json:"from"`
	To    alerts.State `json:"to"`
	Alert alertJSON    `json:"alert"`
}

// PublishAlerts sends alert lifecycle changes to every viewer; it has the
// signature alerts.Manager.OnChange wants.
func (h *Hub) PublishAlerts(changes []alerts.Change) {
	for _, ch := range changes {
		data, err := json.Marshal(alertChange{From: ch.From, To: ch.To, Alert: toAlertJSON(ch.Alert)})
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
			delete(h.clients, c)
			close(c.gone)
		}
	}
}

// subscribe adds a viewer and returns it with the latest kpi and wall
// frames.
func (h *Hub) subscribe() (*streamClient, []byte) {
	c := &streamClient{ch: make(chan []byte, h.cfg.StreamBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	return c, append(slices.Clip(h.lastKPI), h.lastPanel...)
}

// unsubscribe removes a viewer that left.
func (h *Hub) unsubscribe(c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.gone)
	}
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
