package api

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// exactValues are attribute values and conversation ids that ClickHouse's
// escaped format would read as something else (\N as NULL, \\ as one
// backslash, a lone backslash as an error, \0 as NUL) or that URLs and SQL
// treat specially. Each must reach the store byte for byte.
var exactValues = []string{
	`\`, `\\`, `\N`, `BS\\N`, `a\0b`, `a\tb`, `a\'b`, `it's`, `say "hi"`, `100%`, `%5C`,
	strings.Repeat("广州", 32),
}

// TestParamsByteForByte stores one conversation per value v, with v as its
// id, region, queue, business line and agent, and asks every filter and
// path parameter of the API for v: each must find exactly its own
// conversation.
func TestParamsByteForByte(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	var events []schemas.Event
	for i, v := range exactValues {
		at := base.Add(-50*time.Minute + time.Duration(i)*time.Minute)
		s := schemas.Event{EventID: "s" + v, SchemaVersion: 1, Type: schemas.ConversationStarted, ConversationID: v,
			OccurredAt: at, Channel: "chat", Region: v, Queue: v, BusinessLine: v, Entry: "agent"}
		m := schemas.Event{EventID: "m" + v, SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: v,
			OccurredAt: at.Add(time.Second), Actor: &schemas.Actor{Role: "agent", ID: v}}
		events = append(events, s, m)
	}
	store(t, conn, events)
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: func() time.Time { return base }})
	if err != nil {
		t.Fatal(err)
	}
	convs, err := kpi.NewConversationStore(conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := serve(t, Deps{KPIs: kpis, Conversations: convs, Now: func() time.Time { return base }})
	win := "&from=" + url.QueryEscape(base.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))

	for _, v := range exactValues {
		for _, key := range []string{"region", "queue", "business_line", "agent"} {
			q := key + "=" + url.QueryEscape(v) + win
			code, body := get(t, ts.URL+"/api/v1/kpis?"+q)
			var snap struct {
				Started int `json:"conversations_started"`
				Filters map[string]string
			}
			if code != 200 || json.Unmarshal([]byte(body), &snap) != nil || snap.Started != 1 || snap.Filters[key] != v {
				t.Errorf("kpis %s=%q = %d %s", key, v, code, body)
			}
			code, body = get(t, ts.URL+"/api/v1/conversations?"+q)
			var page struct{ Conversations []kpi.Conversation }
			if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Conversations) != 1 || page.Conversations[0].ID != v {
				t.Errorf("conversations %s=%q = %d %s", key, v, code, body)
			}
		}
		q := "region=" + url.QueryEscape(v) + win
		code, body := get(t, ts.URL+"/api/v1/kpis/by/queue?"+q)
		var by struct {
			Rows []struct {
				Key     string
				Started int `json:"conversations_started"`
			}
		}
		if code != 200 || json.Unmarshal([]byte(body), &by) != nil || len(by.Rows) != 1 || by.Rows[0].Key != v || by.Rows[0].Started != 1 {
			t.Errorf("kpis/by/queue region=%q = %d %s", v, code, body)
		}
		code, body = get(t, ts.URL+"/api/v1/timeseries?metric=conversations_started&step=1h&"+q)
		var ser struct {
			Series []struct{ Points [][2]*float64 }
		}
		if code != 200 || json.Unmarshal([]byte(body), &ser) != nil || len(ser.Series) != 1 || len(ser.Series[0].Points) != 1 ||
			ser.Series[0].Points[0][1] == nil || *ser.Series[0].Points[0][1] != 1 {
			t.Errorf("timeseries region=%q = %d %s", v, code, body)
		}
		code, body = get(t, ts.URL+"/api/v1/export.csv?"+q)
		recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if code != 200 || err != nil || len(recs) != 2 || recs[1][0] != v || recs[1][5] != v {
			t.Errorf("export.csv region=%q = %d %v %q", v, code, err, body)
		}
		// channel is one of a closed list: any other value matches nothing.
		code, body = get(t, ts.URL+"/api/v1/kpis?channel="+url.QueryEscape(v)+win)
		if code != 200 || !strings.Contains(body, `"conversations_started":0`) {
			t.Errorf("kpis channel=%q = %d %s", v, code, body)
		}
		code, body = get(t, ts.URL+"/api/v1/conversations/"+url.PathEscape(v))
		var one struct {
			Conversation kpi.Conversation
			Events       []schemas.Event
		}
		if code != 200 || json.Unmarshal([]byte(body), &one) != nil || one.Conversation.ID != v || one.Conversation.Region != v ||
			len(one.Events) != 2 || one.Events[0].EventID != "s"+v {
			t.Errorf("conversations/%s = %d %s", url.PathEscape(v), code, body)
		}
	}

	// Paging one by one: the cursor carries each id back to the store.
	seen := map[string]bool{}
	next := ""
	for range len(exactValues) + 1 {
		u := ts.URL + "/api/v1/conversations?limit=1" + win
		if next != "" {
			u += "&cursor=" + url.QueryEscape(next)
		}
		code, body := get(t, u)
		var page struct {
			Conversations []kpi.Conversation
			NextCursor    *string `json:"next_cursor"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("conversations page = %d %s", code, body)
		}
		for _, c := range page.Conversations {
			seen[c.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		next = *page.NextCursor
	}
	if len(seen) != len(exactValues) {
		t.Errorf("paging one by one saw %d conversations, want %d: %v", len(seen), len(exactValues), seen)
	}
}

// serve serves the API with deps over a test server.
func serve(t *testing.T, deps Deps) *httptest.Server {
	t.Helper()
	deps.Metrics = promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
	s, err := New(deps, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// TestQueryStringReadWhole: a query string that cannot be read whole is a
// 400 on every endpoint, never an answer with some filters dropped.
func TestQueryStringReadWhole(t *testing.T) {
	ts, _ := newIntegration(t, Config{})
	win := "from=" + url.QueryEscape(base.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))
	paths := []string{"/api/v1/kpis", "/api/v1/kpis/by/queue", "/api/v1/timeseries", "/api/v1/conversations",
		"/api/v1/conversations/c1", "/api/v1/export.csv", "/api/v1/alerts", "/api/v1/silences", "/api/v1/rules", "/api/v1/stream"}
	bad := map[string]string{
		"region=KT1;&" + win: "cannot be parsed",
		"region=a%ZZ&" + win: "cannot be parsed",
		"region=a&" + strings.Repeat("x=1&", maxQueryParams) + win: "at most 100",
	}
	// The stream answers a query it accepts forever: bound every request.
	client := &http.Client{Timeout: 20 * time.Second}
	for q, want := range bad {
		for _, path := range paths {
			resp, err := client.Get(ts.URL + path + "?" + q)
			if err != nil {
				t.Errorf("%s?%.40s…: %v", path, q, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body := resp.StatusCode, string(b)
			if code != 400 || !strings.Contains(body, `"bad_request"`) || !strings.Contains(body, want) {
				t.Errorf("%s?%.40s… = %d %s", path, q, code, body)
			}
		}
	}
	// At the bound the query is read, and its filter applies.
	q := "region=" + url.QueryEscape("北京") + "&" + strings.Repeat("x=1&", maxQueryParams-3) + win
	if code, body := get(t, ts.URL+"/api/v1/kpis?"+q); code != 200 || !strings.Contains(body, `"conversations_started":1,`) {
		t.Errorf("kpis with %d parameters = %d %s", maxQueryParams, code, body)
	}
}

// TestYearRange: a year is within the default range; past the limit the
// 400 says which limit it is and how to raise it.
func TestYearRange(t *testing.T) {
	ts, _ := newIntegration(t, Config{})
	year := "from=" + url.QueryEscape(base.AddDate(-1, 0, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))
	if code, body := get(t, ts.URL+"/api/v1/kpis?"+year); code != 200 || !strings.Contains(body, `"conversations_started":3,`) {
		t.Errorf("kpis over a year = %d %s", code, body)
	}
	long := "from=" + url.QueryEscape(base.Add(-401*24*time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))
	code, body := get(t, ts.URL+"/api/v1/kpis?"+long)
	if code != 400 || !strings.Contains(body, "401 days") || !strings.Contains(body, "400 days") || !strings.Contains(body, "api.max_range") {
		t.Errorf("kpis over 401 days = %d %s", code, body)
	}
}
