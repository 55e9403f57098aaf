package api

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// kpiSource is the source that answers a request for the metrics with
// query v, and the context to ask it under: the live view
// (Deps.LiveKPIs) for the default window, the last 15 minutes, which a
// wall or a script asks again and again and which the view answers from
// memory, widened to whole buckets (the answer's from and to say so), as
// long as its data is at most liveFreshness old (else the store answers);
// the store for a window the caller chose, exactly.
func (s *Server) kpiSource(c *gin.Context, v url.Values) (KPISource, context.Context) {
	if s.deps.LiveKPIs != nil && v.Get("from") == "" && v.Get("to") == "" {
		return s.deps.LiveKPIs, kpi.WithFreshness(c.Request.Context(), liveFreshness)
	}
	return s.deps.KPIs, c.Request.Context()
}

// liveFreshness is the oldest live data /kpis answers with: the view is
// refreshed after every insert and probed every 2 s when idle, so only a
// view that has fallen behind its events is older.
const liveFreshness = 3 * time.Second

// GET /api/v1/kpis: every metric over the window for the filters.
func (s *Server) kpis(c *gin.Context) {
	if s.deps.KPIs == nil {
		s.fail(c, errUnavailable)
		return
	}
	v := c.Request.URL.Query()
	w, err := parseWindow(v, s.now(), s.lim)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := parseFilters(v)
	if err != nil {
		s.fail(c, err)
		return
	}
	src, ctx := s.kpiSource(c, v)
	snap, err := src.KPIs(ctx, w, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, snap)
}

// GET /api/v1/kpis/by/:dimension: the metrics per value of a dimension.
func (s *Server) kpisBy(c *gin.Context) {
	if s.deps.KPIs == nil {
		s.fail(c, errUnavailable)
		return
	}
	dim, err := parseDimension("dimension", c.Param("dimension"), false)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := c.Request.URL.Query()
	w, err := parseWindow(v, s.now(), s.lim)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := parseFilters(v)
	if err != nil {
		s.fail(c, err)
		return
	}
	src, ctx := s.kpiSource(c, v)
	rows, err := src.KPIsBy(ctx, w, f, dim)
	if err != nil {
		s.fail(c, err)
		return
	}
	if rows == nil {
		rows = []kpi.KeyedSnapshot{}
	}
	if len(rows) > 0 { // the window answered, which the live view widens
		w = kpi.Window{From: rows[0].From, To: rows[0].To}
	}
	c.JSON(http.StatusOK, gin.H{"dimension": dim, "from": w.From, "to": w.To, "filters": f, "rows": rows})
}

// seriesJSON is one series of the contract: points as [unix_seconds, value].
type seriesJSON struct {
	Key    string   `json:"key"`
	Points [][2]any `json:"points"`
}

// pointsJSON writes points as the contract has them.
func pointsJSON(ps []kpi.Point) [][2]any {
	out := make([][2]any, 0, len(ps))
	for _, p := range ps {
		var val any
		if p.Value != nil {
			val = *p.Value
		}
		out = append(out, [2]any{p.Time.Unix(), val})
	}
	return out
}

// GET /api/v1/timeseries: one metric over steps, optionally per group.
func (s *Server) timeseries(c *gin.Context) {
	if s.deps.KPIs == nil {
		s.fail(c, errUnavailable)
		return
	}
	v := c.Request.URL.Query()
	q, err := parseTimeseriesQuery(v, s.now(), s.lim)
	if err != nil {
		s.fail(c, err)
		return
	}
	series, err := s.deps.KPIs.Timeseries(c.Request.Context(), q.metric, q.step, q.window, q.filters, q.groupBy)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]seriesJSON, 0, len(series))
	for _, se := range series {
		out = append(out, seriesJSON{Key: se.Key, Points: pointsJSON(se.Points)})
	}
	c.JSON(http.StatusOK, gin.H{"metric": q.metric, "step_seconds": int64(q.step / time.Second),
		"from": q.window.From, "to": q.window.To, "group_by": q.groupBy, "filters": q.filters, "series": out})
}

// GET /api/v1/conversations: a page of the conversations behind a number.
func (s *Server) conversations(c *gin.Context) {
	if s.deps.Conversations == nil {
		s.fail(c, errUnavailable)
		return
	}
	q, err := parseConversationQuery(c.Request.URL.Query(), s.now(), s.lim, defaultPageSize, maxPageSize)
	if err != nil {
		s.fail(c, err)
		return
	}
	pageSize := q.Limit
	q.Limit++ // one more tells whether there is a next page
	rows := make([]kpi.Conversation, 0, min(pageSize, 128))
	more := false
	err = s.deps.Conversations.Conversations(c.Request.Context(), q, func(cv kpi.Conversation) error {
		if len(rows) == pageSize {
			more = true
			return nil
		}
		rows = append(rows, cv)
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	var next *string
	if more {
		last := rows[len(rows)-1]
		cur := Cursor{At: last.FirstEventAt, ID: last.ID}.encode()
		next = &cur
	}
	c.JSON(http.StatusOK, gin.H{"from": q.Window.From, "to": q.Window.To, "filters": q.Filters,
		"conversations": rows, "next_cursor": next})
}

// GET /api/v1/conversations/:id: one conversation and its events.
func (s *Server) conversation(c *gin.Context) {
	if s.deps.Conversations == nil {
		s.fail(c, errUnavailable)
		return
	}
	id := c.Param("id")
	if id == "" {
		s.fail(c, badRequest("conversation id must be 1 to 128 characters"))
		return
	}
	if err := checkText("id", id, 128); err != nil {
		s.fail(c, err)
		return
	}
	conv, events, err := s.deps.Conversations.Conversation(c.Request.Context(), id)
	if errors.Is(err, kpi.ErrNoConversation) {
		err = notFound("no conversation %q", truncate(id, 128))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"conversation": conv, "events": events})
}

// csvHeader is the header row of the export, in the column order of csvRow.
var csvHeader = []string{"id", "started_at", "first_event_at", "last_event_at", "channel", "region", "queue",
	"business_line", "entry", "customer_id", "agents", "transferred", "closed_at", "abandoned_at", "resolved"}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// csvSafe keeps a spreadsheet from reading a cell as a formula (CSV
// injection): such cells get a leading apostrophe.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvRow(cv kpi.Conversation) []string {
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	first, last := cv.FirstEventAt, cv.LastEventAt
	return []string{csvSafe(cv.ID), csvTime(cv.StartedAt), csvTime(&first), csvTime(&last), csvSafe(cv.Channel),
		csvSafe(cv.Region), csvSafe(cv.Queue), csvSafe(cv.BusinessLine), csvSafe(cv.Entry), csvSafe(cv.CustomerID),
		csvSafe(strings.Join(cv.Agents, ";")), b(cv.Transferred), csvTime(cv.ClosedAt), csvTime(cv.AbandonedAt), b(cv.Resolved)}
}

// GET /api/v1/export.csv: the conversations list as CSV, streamed, from
// the cursor on (no paging: at most Config.MaxExportRows rows).
func (s *Server) exportCSV(c *gin.Context) {
	if s.deps.Conversations == nil {
		s.fail(c, errUnavailable)
		return
	}
	q, err := parseConversationQuery(c.Request.URL.Query(), s.now(), s.lim, s.cfg.MaxExportRows, s.cfg.MaxExportRows)
	if err != nil {
		s.fail(c, err)
		return
	}
	w := csv.NewWriter(c.Writer)
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="conversations.csv"`)
		c.Status(http.StatusOK)
		_ = w.Write(csvHeader)
	}
	n := 0
	err = s.deps.Conversations.Conversations(c.Request.Context(), q, func(cv kpi.Conversation) error {
		start()
		if err := w.Write(csvRow(cv)); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			w.Flush()
			c.Writer.Flush()
		}
		return w.Error()
	})
	if err != nil && !started {
		s.fail(c, err)
		return
	}
	if err != nil {
		// Headers are gone; all we can do is cut the body short, which a
		// client sees as a truncated download rather than a valid file.
		s.logger.Error("export failed midway", "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	start()
	w.Flush()
}

// timeseriesQuery is the parsed query of /timeseries.
type timeseriesQuery struct {
	metric  string
	step    time.Duration
	window  kpi.Window
	filters kpi.Filters
	groupBy kpi.Dimension
}

// parseTimeseriesQuery reads metric, step, from, to, group_by and the
// filters.
func parseTimeseriesQuery(v map[string][]string, now time.Time, lim limits) (timeseriesQuery, error) {
	var q timeseriesQuery
	var err error
	for _, key := range []string{"metric", "step", "group_by"} {
		if _, err := single(v, key); err != nil {
			return q, err
		}
	}
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	if q.window, err = parseWindow(v, now, lim); err != nil {
		return q, err
	}
	if q.filters, err = parseFilters(v); err != nil {
		return q, err
	}
	if q.metric, err = parseMetric(get("metric")); err != nil {
		return q, err
	}
	if q.step, err = parseStep(get("step"), q.window, lim); err != nil {
		return q, err
	}
	if q.groupBy, err = parseDimension("group_by", get("group_by"), true); err != nil {
		return q, err
	}
	return q, nil
}
