package api

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// Every query parameter of the API is parsed and checked here, so each
// rule is written once. Parsers return *Error (400) for bad input.

// defaultWindow is the window of a query that names neither from nor to.
const defaultWindow = 15 * time.Minute

// maxFilterLen is the longest filter value, in characters (the event
// contract's bound on region, queue and business_line).
const maxFilterLen = 64

// maxQueryParams is the most parameters one query string may have; the
// API's longest query has about a dozen.
const maxQueryParams = 100

// parseQuery reads a raw query string. One that cannot be parsed (a ';'
// separator, a bad %-escape) or has more than maxQueryParams parameters is
// refused whole: reading what can be read would drop the rest, filters
// included, and answer for everything.
func parseQuery(raw string) (url.Values, *Error) {
	if raw == "" {
		return url.Values{}, nil
	}
	if n := strings.Count(raw, "&") + strings.Count(raw, ";") + 1; n > maxQueryParams {
		return nil, badRequest("the query string has %d parameters; at most %d are allowed", n, maxQueryParams)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("the query string cannot be parsed (%s): separate parameters with & and write %%, ; and other reserved characters in values as %%XX",
			truncate(strings.TrimPrefix(err.Error(), "invalid "), 80))
	}
	return v, nil
}

// limits are the bounds the parsers check, from Config.
type limits struct {
	maxRange time.Duration
	maxSteps int
}

// single returns the one value of key, refusing repeated keys: with
// region=a&region=b it is not clear which the client meant.
func single(v url.Values, key string) (string, error) {
	vs := v[key]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", badRequest("%s is given %d times; give it once", key, len(vs))
}

// days writes d in days when it is at least one, as a person reads a
// range, with the Go duration that configures it.
func days(d time.Duration) string {
	if d < 24*time.Hour {
		return d.String()
	}
	return strconv.FormatFloat(d.Hours()/24, 'f', -1, 64) + " days (" + d.Truncate(time.Second).String() + ")"
}

// parseTime reads an RFC 3339 timestamp.
func parseTime(key, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s must be an RFC 3339 time such as 2025-01-02T15:04:05Z", key)
	}
	return t.UTC(), nil
}

// parseWindow reads from and to: both default to the last 15 minutes
// ending now (from alone ends at now, to alone starts 15 minutes
// before it); from must be before to, and the range at most lim.maxRange.
func parseWindow(v url.Values, now time.Time, lim limits) (kpi.Window, error) {
	fs, err := single(v, "from")
	if err != nil {
		return kpi.Window{}, err
	}
	ts, err := single(v, "to")
	if err != nil {
		return kpi.Window{}, err
	}
	w := kpi.Window{To: now.UTC().Truncate(time.Millisecond)}
	if ts != "" {
		if w.To, err = parseTime("to", ts); err != nil {
			return kpi.Window{}, err
		}
	}
	w.From = w.To.Add(-defaultWindow)
	if fs != "" {
		if w.From, err = parseTime("from", fs); err != nil {
			return kpi.Window{}, err
		}
	}
	if !w.From.Before(w.To) {
		return kpi.Window{}, badRequest("from must be before to")
	}
	if w.To.Sub(w.From) > lim.maxRange {
		return kpi.Window{}, badRequest("the range from–to is %s, longer than the limit of %s; the server's api.max_range (COCKPIT_API_MAX_RANGE) raises it",
			days(w.To.Sub(w.From)), days(lim.maxRange))
	}
	// ClickHouse DateTime64 holds years 1900–2299; refuse the rest here
	// rather than as a query error.
	if w.From.Year() < 1970 || w.To.Year() > 2200 {
		return kpi.Window{}, badRequest("from and to must be between 1970 and 2200")
	}
	return w, nil
}

// filterKeys are the filter parameters, in the order of kpi.Filters.
var filterKeys = []string{"region", "queue", "channel", "business_line", "agent"}

// checkText refuses values a person would not type: too long, not UTF-8,
// or with control characters.
func checkText(key, s string, maxLen int) error {
	if !utf8.ValidString(s) {
		return badRequest("%s is not valid UTF-8", key)
	}
	if utf8.RuneCountInString(s) > maxLen {
		return badRequest("%s is longer than %d characters", key, maxLen)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return badRequest("%s contains control characters", key)
	}
	return nil
}

// parseFilters reads the five filters; an absent or empty one does not
// filter. Values are only checked, never interpreted: they reach the store
// as query parameters.
func parseFilters(v url.Values) (kpi.Filters, error) {
	var vals [5]string
	for i, k := range filterKeys {
		s, err := single(v, k)
		if err != nil {
			return kpi.Filters{}, err
		}
		if err := checkText(k, s, maxFilterLen); err != nil {
			return kpi.Filters{}, err
		}
		vals[i] = s
	}
	return kpi.Filters{Region: vals[0], Queue: vals[1], Channel: vals[2], BusinessLine: vals[3], Agent: vals[4]}, nil
}

// parseDimension reads a breakdown dimension; empty is allowed only when
// optional.
func parseDimension(key, s string, optional bool) (kpi.Dimension, error) {
	if s == "" && optional {
		return kpi.DimNone, nil
	}
	d := kpi.Dimension(s)
	if !slices.Contains(kpi.Dimensions, d) {
		return "", badRequest("%s must be one of region, queue, channel, business_line, agent", key)
	}
	return d, nil
}

// parseMetric reads a time-series metric: a registered metric that is not
// a gauge, with a .avg/.p50/.p90/.count suffix allowed on quantiles.
func parseMetric(s string) (string, error) {
	if s == "" {
		return "", badRequest("metric is required")
	}
	name, stat, hasStat := strings.Cut(s, ".")
	m, ok := kpi.MetricByName(name)
	if !ok {
		return "", badRequest("unknown metric %q", truncate(s, 80))
	}
	if m.Kind == kpi.MetricGauge {
		return "", badRequest("metric %s is a gauge: it has no time series", name)
	}
	if hasStat && (m.Kind != kpi.MetricQuantile || !slices.Contains(kpi.QuantileStats, stat)) {
		return "", badRequest("metric %q: only quantile metrics take a suffix, one of .avg .p50 .p90 .count", truncate(s, 80))
	}
	return s, nil
}

// parseStep reads step as a Go duration ("5m") or a number of seconds;
// the default gives 60 points. It must be at least 1 s and give at most
// lim.maxSteps points over w.
func parseStep(s string, w kpi.Window, lim limits) (time.Duration, error) {
	span := w.To.Sub(w.From)
	if s == "" {
		step := (span / 60).Truncate(time.Second)
		return max(step, time.Second), nil
	}
	var step time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 1 || n > int64(lim.maxRange/time.Second) {
			return 0, badRequest("step must be between 1s and %s", lim.maxRange)
		}
		step = time.Duration(n) * time.Second
	} else if step, err = time.ParseDuration(s); err != nil {
		return 0, badRequest("step must be a duration such as 30s or 5m, or a number of seconds")
	}
	if step < time.Second {
		return 0, badRequest("step must be at least 1s")
	}
	if n := (span + step - 1) / step; n > time.Duration(lim.maxSteps) {
		return 0, badRequest("step %s gives %d points; at most %d are allowed", step, n, lim.maxSteps)
	}
	return step, nil
}

// parseLimit reads a page size in [1, maxLimit], def when absent.
func parseLimit(s string, def, maxLimit int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badRequest("limit must be a whole number from 1 to %d", maxLimit)
	}
	return n, nil
}

// parseEventType reads an optional event-type filter.
func parseEventType(s string) (schemas.EventType, error) {
	if s == "" {
		return "", nil
	}
	t := schemas.EventType(s)
	if !slices.Contains(schemas.EventTypes, t) {
		return "", badRequest("type must be an event type of contract v1, such as complaint.filed")
	}
	return t, nil
}

// Cursor is a position in the conversations list: the sort key of the
// last row of the previous page. Clients see it only as an opaque string.
type Cursor kpi.ConversationCursor

// encode makes the opaque form of c.
func (c Cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor reads a cursor made by encode; empty means the first page.
func parseCursor(s string) (*kpi.ConversationCursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := badRequest("cursor is not one this server gave out")
	if len(s) > 1024 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" || utf8.RuneCountInString(c.ID) > 128 || c.At.IsZero() {
		return nil, bad
	}
	return (*kpi.ConversationCursor)(&c), nil
}

// Page sizes of the conversations list.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// parseConversationQuery reads the parameters of the conversations list
// and the export; limit defaults to defLimit and may be at most maxLimit.
func parseConversationQuery(v url.Values, now time.Time, lim limits, defLimit, maxLimit int) (kpi.ConversationQuery, error) {
	var q kpi.ConversationQuery
	var err error
	if q.Window, err = parseWindow(v, now, lim); err != nil {
		return q, err
	}
	if q.Filters, err = parseFilters(v); err != nil {
		return q, err
	}
	for _, key := range []string{"type", "limit", "cursor"} {
		if _, err := single(v, key); err != nil {
			return q, err
		}
	}
	if q.Type, err = parseEventType(v.Get("type")); err != nil {
		return q, err
	}
	if q.Limit, err = parseLimit(v.Get("limit"), defLimit, maxLimit); err != nil {
		return q, err
	}
	if q.After, err = parseCursor(v.Get("cursor")); err != nil {
		return q, err
	}
	return q, nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
