package api

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testLim = limits{maxRange: 90 * 24 * time.Hour, maxSteps: 10000}

func TestParseQuery(t *testing.T) {
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		query string
		ok    bool
	}{
		{"", true},
		{"from=2025-03-04T09:00:00Z&to=2025-03-04T10:00:00%2B08:00", false}, // to before from
		{"from=2025-03-04T09:00:00Z", true},
		{"from=yesterday", false},
		{"from=2024-01-01T00:00:00Z&to=2025-03-04T00:00:00Z", false}, // > 90 days
		{"region=" + url.QueryEscape("广州"), true},
		{"region=a&region=b", false},
		{"queue=" + strings.Repeat("x", 65), false},
		{"agent=a%00b", false},
		{"channel=%ff", false},
		{"business_line=" + url.QueryEscape("' OR 1=1 --"), true},
		{"metric=first_response_seconds.p50&step=60", true},
		{"metric=first_response_seconds.p99", false},
		{"metric=active_conversations", false},
		{"metric=nope", false},
		{"metric=complaints&step=0", false},
		{"metric=complaints&step=1ms", false},
		{"metric=complaints&step=1s&from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z", false}, // too many points
		{"metric=complaints&group_by=planet", false},
		{"metric=complaints&group_by=agent&step=5m", true},
		{"limit=0", false},
		{"limit=1001", false},
		{"cursor=garbage!", false},
		{"type=complaint.filed", true},
		{"type=DROP", false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			err = parseAll(v, now)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if ae := (*Error)(nil); !errors.As(err, &ae) {
					t.Fatalf("error %T is not an *Error (would be a 500)", err)
				}
			}
		})
	}
}

// parseAll runs every query parser the endpoints use.
func parseAll(v url.Values, now time.Time) error {
	if _, err := parseConversationQuery(v, now, testLim, defaultPageSize, maxPageSize); err != nil {
		return err
	}
	if v.Has("metric") {
		if _, err := parseTimeseriesQuery(v, now, testLim); err != nil {
			return err
		}
	}
	return nil
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{At: time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC), ID: "广州-1"}
	got, err := parseCursor(c.encode())
	if err != nil || !got.At.Equal(c.At) || got.ID != c.ID {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "from=2025-03-04T09:00:00Z&to=2025-03-04T10:00:00Z&region=x",
		"metric=first_response_seconds.p90&step=5m&group_by=region", "cursor=eyJ0IjoiMjAyNS0wMS0wMlQwMzowNDowNVoiLCJpZCI6ImEifQ&limit=5",
		"region=%27+OR+1%3D1", "step=-1&metric=complaints", "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	f.Add("region=KT1;")
	f.Add("region=a%ZZ&from=2025-03-04T09:00:00Z")
	f.Add(strings.Repeat("x=1&", maxQueryParams) + "region=a")
	f.Fuzz(func(t *testing.T, raw string) {
		v, perr := parseQuery(raw)
		if perr != nil {
			if perr.Status != 400 || !strings.Contains(perr.Message, "query string") {
				t.Fatalf("%q: refused with %d %q", raw, perr.Status, perr.Message)
			}
			return
		}
		// Accepted: read whole, nothing dropped, within the bound.
		all, err := url.ParseQuery(raw)
		if err != nil || len(all) != len(v) || len(v) > maxQueryParams {
			t.Fatalf("%q: accepted as %d keys, url.ParseQuery gives %d, %v", raw, len(v), len(all), err)
		}
		q, err := parseConversationQuery(v, now, testLim, defaultPageSize, maxPageSize)
		if err != nil {
			if ae := (*Error)(nil); !errors.As(err, &ae) {
				t.Fatalf("%q: error %T is not an *Error", raw, err)
			}
			return
		}
		if !q.Window.From.Before(q.Window.To) || q.Window.To.Sub(q.Window.From) > testLim.maxRange {
			t.Fatalf("%q: bad window %v", raw, q.Window)
		}
		if q.Limit < 1 || q.Limit > maxPageSize {
			t.Fatalf("%q: limit %d", raw, q.Limit)
		}
		for _, s := range []string{q.Filters.Region, q.Filters.Queue, q.Filters.Channel, q.Filters.BusinessLine, q.Filters.Agent} {
			if checkText("f", s, maxFilterLen) != nil {
				t.Fatalf("%q: filter %q accepted", raw, s)
			}
		}
		if ts, err := parseTimeseriesQuery(v, now, testLim); err == nil {
			if ts.step < time.Second || int(q.Window.To.Sub(q.Window.From)/ts.step) > testLim.maxSteps {
				t.Fatalf("%q: step %s", raw, ts.step)
			}
		}
	})
}
