package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
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
	cfg    Config
	now    func() time.Time
	logger *slog.Logger

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	seq     uint64
	lastKPI []byte // the latest kpi frame, sent to a viewer on connect
	lastErr time.Time
}

// streamClient is one viewer's queue.
type streamClient struct {
	ch   chan []byte
	gone chan struct{} // closed when the hub drops the viewer
}

func newHub(kpis KPISource, cfg Config, now func() time.Time, logger *slog.Logger) *Hub {
	return &Hub{kpis: kpis, cfg: cfg, now: now, logger: logger, clients: map[*streamClient]struct{}{}}
}

// Run computes and sends a KPI snapshot every Config.StreamTick while at
// least one viewer is connected, until ctx ends. The wiring owns it: one
// Run per server.
func (h *Hub) Run(ctx context.Context) {
	if h.kpis == nil {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(h.cfg.StreamTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if h.viewers() == 0 {
			continue
		}
		h.tick(ctx)
	}
}

// viewers is the number of connected viewers.
func (h *Hub) viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// tick computes one snapshot and sends it to every viewer. The query may
// take at most one tick, so a slow store delays the wall by a tick, not
// by a queue of ticks.
func (h *Hub) tick(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, max(h.cfg.StreamTick, time.Second))
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
	h.broadcast("kpi", data, true)
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
		h.broadcast("alert", data, false)
	}
}

// broadcast frames one event and queues it for every viewer without
// waiting: a viewer whose queue is full is dropped.
func (h *Hub) broadcast(event string, data []byte, isKPI bool) {
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
	if isKPI {
		h.lastKPI = frame
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

// subscribe adds a viewer and returns it with the latest kpi frame.
func (h *Hub) subscribe() (*streamClient, []byte) {
	c := &streamClient{ch: make(chan []byte, h.cfg.StreamBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	return c, h.lastKPI
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

// GET /api/v1/stream: Server-Sent Events, `kpi` every tick and `alert` on
// changes, with keep-alive comments between.
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
