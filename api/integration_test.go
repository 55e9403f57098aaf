package api

import (
	"context"
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

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// store inserts events as ingest would.
func store(t testing.TB, conn driver.Conn, events []schemas.Event) {
	t.Helper()
	if err := ingest.Insert(context.Background(), conn, events); err != nil {
		t.Fatal(err)
	}
}

// base is the fixed clock of the integration tests.
var base = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// fixture stores three conversations: c1 (广州, chat, resolved by agent
// a1), c2 (北京, voice, abandoned), c3 (广州, voice, open) and a
// complaint.
func fixture(t *testing.T, conn driver.Conn) {
	at := func(minute int) time.Time { return base.Add(time.Duration(minute) * time.Minute) }
	ev := func(id string, typ schemas.EventType, conv string, minute int) schemas.Event {
		return schemas.Event{EventID: id, SchemaVersion: 1, Type: typ, ConversationID: conv, OccurredAt: at(minute)}
	}
	s1 := ev("e1", schemas.ConversationStarted, "c1", -10)
	s1.Channel, s1.Region, s1.Queue, s1.BusinessLine, s1.Entry = "chat", "广州", "q1", "billing", "bot"
	m1 := ev("e2", schemas.MessageSent, "c1", -9)
	m1.Actor = &schemas.Actor{Role: "agent", ID: "a1"}
	c1 := ev("e3", schemas.ConversationClosed, "c1", -8)
	c1.Resolution = "resolved"
	s2 := ev("e4", schemas.ConversationStarted, "c2", -7)
	s2.Channel, s2.Region, s2.Queue, s2.Entry = "voice", "北京", "q2", "agent"
	a2 := ev("e5", schemas.ConversationAbandoned, "c2", -6)
	s3 := ev("e6", schemas.ConversationStarted, "c3", -5)
	s3.Channel, s3.Region, s3.Queue, s3.Entry = "voice", "广州", "q1", "bot"
	cf := ev("e7", schemas.ComplaintFiled, "c3", -4)
	cf.Region, cf.Severity, cf.Category = "广州", "high", "billing"
	store(t, conn, []schemas.Event{s1, m1, c1, s2, a2, s3, cf})
}

// newIntegration serves the API over a fresh database holding fixture.
func newIntegration(t *testing.T, cfg Config) (*httptest.Server, driver.Conn) {
	t.Helper()
	_, conn := chtest.Start(t).Database(t)
	fixture(t, conn)
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: func() time.Time { return base }})
	if err != nil {
		t.Fatal(err)
	}
	convs, err := kpi.NewConversationStore(conn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Config: cfg, Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		KPIs: kpis, Conversations: convs, Now: func() time.Time { return base }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, conn
}

// call does a request with an optional bearer token and returns status
// and body.
func call(t *testing.T, method, u, token string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestKPIsAndDrillDown(t *testing.T) {
	ts, _ := newIntegration(t, Config{})
	win := "from=" + url.QueryEscape(base.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))

	code, body := get(t, ts.URL+"/api/v1/kpis?"+win)
	var snap map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &snap) != nil {
		t.Fatalf("kpis = %d %s", code, body)
	}
	if snap["conversations_started"] != 3.0 || snap["complaints"] != 1.0 || snap["resolution_rate"] != 1.0 {
		t.Errorf("kpis = %s", body)
	}
	if _, ok := snap["first_response_seconds"].(map[string]any)["p90"]; !ok {
		t.Errorf("quantile metric has no p90: %s", body)
	}

	code, body = get(t, ts.URL+"/api/v1/kpis?region="+url.QueryEscape("广州")+"&"+win)
	if code != 200 || !strings.Contains(body, `"conversations_started":2`) || !strings.Contains(body, `"region":"广州"`) {
		t.Errorf("kpis 广州 = %d %s", code, body)
	}

	code, body = get(t, ts.URL+"/api/v1/kpis/by/region?"+win)
	var by struct {
		Dimension string
		Rows      []struct {
			Key                  string
			ConversationsStarted int `json:"conversations_started"`
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &by) != nil || by.Dimension != "region" || len(by.Rows) != 2 ||
		by.Rows[0].Key != "北京" || by.Rows[1].ConversationsStarted != 2 {
		t.Errorf("kpis/by/region = %d %s", code, body)
	}

	code, body = get(t, ts.URL+"/api/v1/timeseries?metric=conversations_started&step=30m&"+win)
	var ser struct {
		Metric      string
		StepSeconds int `json:"step_seconds"`
		Series      []struct {
			Key    string
			Points [][2]*float64
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &ser) != nil || ser.StepSeconds != 1800 || len(ser.Series) != 1 ||
		len(ser.Series[0].Points) != 2 || *ser.Series[0].Points[1][1] != 3 {
		t.Errorf("timeseries = %d %s", code, body)
	}

	// Paging: one per page, newest first, the cursor walks all three.
	var ids []string
	next := ""
	for range 5 {
		u := ts.URL + "/api/v1/conversations?limit=1&" + win
		if next != "" {
			u += "&cursor=" + url.QueryEscape(next)
		}
		code, body = get(t, u)
		var page struct {
			Conversations []kpi.Conversation
			NextCursor    *string `json:"next_cursor"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("conversations = %d %s", code, body)
		}
		for _, c := range page.Conversations {
			ids = append(ids, c.ID)
		}
		if page.NextCursor == nil {
			break
		}
		next = *page.NextCursor
	}
	if strings.Join(ids, ",") != "c3,c2,c1" {
		t.Errorf("paged ids = %v, want c3,c2,c1", ids)
	}

	code, body = get(t, ts.URL+"/api/v1/conversations?agent=a1&"+win)
	if code != 200 || !strings.Contains(body, `"id":"c1"`) || strings.Contains(body, `"id":"c2"`) {
		t.Errorf("conversations agent=a1 = %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/api/v1/conversations?type=complaint.filed&"+win)
	if code != 200 || !strings.Contains(body, `"id":"c3"`) || strings.Contains(body, `"id":"c1"`) {
		t.Errorf("conversations type=complaint.filed = %d %s", code, body)
	}

	code, body = get(t, ts.URL+"/api/v1/conversations/c1")
	var one struct {
		Conversation kpi.Conversation
		Events       []schemas.Event
	}
	if code != 200 || json.Unmarshal([]byte(body), &one) != nil || len(one.Events) != 3 ||
		one.Events[0].Type != schemas.ConversationStarted || one.Events[2].Type != schemas.ConversationClosed ||
		!one.Conversation.Resolved || one.Conversation.Region != "广州" {
		t.Errorf("conversation c1 = %d %s", code, body)
	}
	if code, body = get(t, ts.URL+"/api/v1/conversations/nope"); code != 404 {
		t.Errorf("unknown conversation = %d %s", code, body)
	}

	code, body = get(t, ts.URL+"/api/v1/export.csv?"+win)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil || len(recs) != 4 || recs[0][0] != "id" || recs[1][0] != "c3" {
		t.Errorf("export = %d %v %q", code, err, body)
	}
}

// injections are SQL-injection attempts: each must be treated as a plain
// filter value (matching nothing) without an error.
var injections = []string{
	`' OR 1=1 --`,
	`广州' OR '1'='1`,
	`x'; DROP TABLE events; --`,
	`{region:String}`,
	`\' OR 1=1 #`,
	`") OR ("a"="a`,
	`1 UNION SELECT name FROM system.tables`,
}

func TestFiltersAreNeverSQL(t *testing.T) {
	ts, conn := newIntegration(t, Config{})
	win := "from=" + url.QueryEscape(base.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Format(time.RFC3339))
	for _, inj := range injections {
		for _, key := range filterKeys {
			for _, path := range []string{"/api/v1/kpis", "/api/v1/conversations", "/api/v1/kpis/by/region", "/api/v1/export.csv"} {
				code, body := get(t, ts.URL+path+"?"+key+"="+url.QueryEscape(inj)+"&"+win)
				if code != 200 {
					t.Errorf("%s %s=%q = %d %s", path, key, inj, code, body)
					continue
				}
				if strings.Contains(body, `"conversations_started":3`) || strings.Contains(body, `"id":"c1"`) || strings.Contains(body, "\nc1,") {
					t.Errorf("%s %s=%q matched rows: %s", path, key, inj, body)
				}
			}
		}
	}
	if code, body := get(t, ts.URL+"/api/v1/conversations/"+url.PathEscape(`c1' OR '1'='1`)); code != 404 {
		t.Errorf("injected id = %d %s", code, body)
	}
	// The table is still there.
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&n); err != nil || n != 7 {
		t.Errorf("events after injections: %d, %v", n, err)
	}
}

func TestStoreErrorIsNotLeaked(t *testing.T) {
	ts, _ := newIntegration(t, Config{})
	chtest.Start(t).SetDown(true)
	defer chtest.Start(t).SetDown(false)
	for _, path := range []string{"/api/v1/kpis", "/api/v1/conversations", "/api/v1/conversations/c1", "/api/v1/export.csv"} {
		code, body := get(t, ts.URL+path)
		if code != 503 || body != `{"error":{"code":"unavailable","message":"the data store cannot be reached, so the answer is not known; try again"}}` {
			t.Errorf("%s with the store down = %d %s", path, code, body)
		}
	}
}
