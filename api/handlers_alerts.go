package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/alerts"
)

// maxAlerts bounds one GET /api/v1/alerts answer.
const maxAlerts = 1000

// alertJSON is an alert as the contract names its fields.
type alertJSON struct {
	ID          string            `json:"id"`
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	State       alerts.State      `json:"state"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	Expected    float64           `json:"expected"`
	Explanation string            `json:"explanation"`
	Summary     string            `json:"summary,omitempty"`
	ActiveAt    time.Time         `json:"active_at"`
	StartedAt   *time.Time        `json:"started_at"`
	ResolvedAt  *time.Time        `json:"resolved_at"`
	AckedBy     *string           `json:"acked_by"`
	AckedAt     *time.Time        `json:"acked_at"`
	AckNote     string            `json:"ack_note,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toAlertJSON(r alerts.Record) alertJSON {
	a := alertJSON{ID: r.ID, Fingerprint: r.Fingerprint, Rule: r.Rule, Severity: r.Severity, State: r.State,
		Labels: r.Labels, Value: r.Value, Expected: r.Expected, Explanation: r.Explanation, Summary: r.Summary,
		ActiveAt: r.ActiveAt, StartedAt: optTime(r.StartedAt), ResolvedAt: optTime(r.ResolvedAt),
		AckedAt: optTime(r.AckedAt), AckNote: r.AckNote}
	if r.AckedBy != "" {
		a.AckedBy = &r.AckedBy
	}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	return a
}

// GET /api/v1/alerts?state=firing|resolved|all&from&to
func (s *Server) listAlerts(c *gin.Context) {
	if s.deps.AlertHistory == nil {
		s.fail(c, errUnavailable)
		return
	}
	v := c.Request.URL.Query()
	state, err := single(v, "state")
	if err != nil {
		s.fail(c, err)
		return
	}
	switch state {
	case "":
		state = "all"
	case "firing", "resolved", "all":
	default:
		s.fail(c, badRequest("state must be firing, resolved or all"))
		return
	}
	w, err := parseWindow(v, s.now(), s.lim)
	if err != nil {
		s.fail(c, err)
		return
	}
	limit, err := parseLimit(v.Get("limit"), maxAlerts, maxAlerts)
	if err != nil {
		s.fail(c, err)
		return
	}
	rs, err := s.deps.AlertHistory.ListAlerts(c.Request.Context(), state, w.From, w.To, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]alertJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, toAlertJSON(r))
	}
	c.JSON(http.StatusOK, gin.H{"alerts": out})
}

// decodeBody reads a JSON body into dst strictly: unknown fields and
// trailing data are errors.
func decodeBody(c *gin.Context, dst any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("cannot read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest("request body: %s", jsonMessage(err))
	}
	if dec.More() {
		return badRequest("request body: trailing data after the JSON value")
	}
	return nil
}

// jsonMessage describes a JSON decoding error without echoing input.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON"
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	}
	// Unknown-field errors name the field, which the client sent.
	return truncate(err.Error(), 200)
}

// ackRequest is the body of POST /alerts/:id/ack.
type ackRequest struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

// POST /api/v1/alerts/:id/ack {by, note}; by defaults to the token's name.
func (s *Server) ackAlert(c *gin.Context) {
	if s.deps.Alerts == nil {
		s.fail(c, errUnavailable)
		return
	}
	var req ackRequest
	if err := decodeBody(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.By == "" {
		req.By = principal(c).Name
	}
	if req.By == "" {
		s.fail(c, badRequest("by is required"))
		return
	}
	if err := checkText("by", req.By, 128); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Note) > 1000 {
		s.fail(c, badRequest("note is longer than 1000 bytes"))
		return
	}
	r, err := s.deps.Alerts.Ack(c.Request.Context(), c.Param("id"), req.By, req.Note, s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toAlertJSON(r))
}

// GET /api/v1/silences
func (s *Server) listSilences(c *gin.Context) {
	if s.deps.Alerts == nil {
		s.fail(c, errUnavailable)
		return
	}
	ss, err := s.deps.Alerts.Silences(c.Request.Context(), s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	if ss == nil {
		ss = []alerts.Silence{}
	}
	c.JSON(http.StatusOK, gin.H{"silences": ss})
}

// silenceRequest is the body of POST /silences. Matchers are objects
// {name, op, value} or strings such as `region="广州"`.
type silenceRequest struct {
	Matchers  []json.RawMessage `json:"matchers"`
	StartsAt  *time.Time        `json:"starts_at"`
	EndsAt    time.Time         `json:"ends_at"`
	CreatedBy string            `json:"created_by"`
	Comment   string            `json:"comment"`
}

// POST /api/v1/silences
func (s *Server) addSilence(c *gin.Context) {
	if s.deps.Alerts == nil {
		s.fail(c, errUnavailable)
		return
	}
	var req silenceRequest
	if err := decodeBody(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	now := s.now()
	x := alerts.Silence{EndsAt: req.EndsAt, CreatedBy: req.CreatedBy, Comment: req.Comment, StartsAt: now}
	if req.StartsAt != nil {
		x.StartsAt = *req.StartsAt
	}
	if x.CreatedBy == "" {
		x.CreatedBy = principal(c).Name
	}
	if len(req.Matchers) == 0 {
		s.fail(c, badRequest("matchers: at least one is required"))
		return
	}
	if len(req.Matchers) > alerts.MaxSilenceMatchers {
		s.fail(c, badRequest("matchers: %d given, the limit is %d", len(req.Matchers), alerts.MaxSilenceMatchers))
		return
	}
	for i, raw := range req.Matchers {
		var str string
		var m alerts.Matcher
		var err error
		if json.Unmarshal(raw, &str) == nil {
			m, err = alerts.ParseMatcher(str)
		} else if err = json.Unmarshal(raw, &m); err == nil {
			m, err = alerts.NewMatcher(m.Name, m.Op, m.Value)
		}
		if err != nil {
			s.fail(c, badRequest("matchers[%d]: %s", i, truncate(err.Error(), 200)))
			return
		}
		x.Matchers = append(x.Matchers, m)
	}
	probe := x
	if err := probe.Validate(); err != nil {
		s.fail(c, badRequest("%s", err.Error()))
		return
	}
	out, err := s.deps.Alerts.AddSilence(c.Request.Context(), x, now)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

// DELETE /api/v1/silences/:id ends a silence now.
func (s *Server) expireSilence(c *gin.Context) {
	if s.deps.Alerts == nil {
		s.fail(c, errUnavailable)
		return
	}
	out, err := s.deps.Alerts.ExpireSilence(c.Request.Context(), c.Param("id"), s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
