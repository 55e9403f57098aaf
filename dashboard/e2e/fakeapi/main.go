// Command fakeapi serves the dashboard over a small in-memory stand-in of
// the cockpit API, for the browser tests and the screenshots. It prints
// "listening on http://ADDR" once it accepts connections. The /test/
// endpoints let a test change the numbers and stop the stream.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/dashboard"
	"github.com/cockpit-cs/cockpit/pipeline"
)

// Hostile is the text the browser tests look for: it must show as text.
const Hostile = `</script><img src=x onerror=alert(1)>`

type state struct {
	mu       sync.Mutex
	snap     map[string]any
	streamOn bool
	stop     chan struct{} // closed to end the open streams
	acked    map[string]string
}

func newState() *state {
	return &state{streamOn: true, stop: make(chan struct{}), acked: map[string]string{}, snap: map[string]any{
		"conversations_started": 1234, "conversations_closed": 1100,
		"resolution_rate": 0.82, "transfer_rate": 0.31, "bot_containment_rate": 0.55, "abandon_rate": 0.091,
		"first_response_seconds":       map[string]any{"avg": 8.2, "p50": 5.0, "p90": 21.5, "count": 1200},
		"human_first_response_seconds": map[string]any{"avg": 30.0, "p50": 22.0, "p90": 55.0, "count": 300},
		"response_seconds":             map[string]any{"avg": 6.0, "p50": 4.0, "p90": 14.0, "count": 9000},
		"human_wait_seconds":           map[string]any{"avg": 40.0, "p50": 31.0, "p90": 72.4, "count": 290},
		"service_level":                0.84, "complaints": 37, "csat_avg": 4.12, "csat_satisfied_rate": 0.8,
		"negative_sentiment_rate": 0.12, "active_conversations": 412, "waiting_for_human": 9,
	}}
}

// snapshot returns the current numbers as the API's KPI JSON.
func (s *state) snapshot(now time.Time) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{"from": now.Add(-15 * time.Minute).UTC(), "to": now.UTC(), "filters": map[string]string{}}
	for k, v := range s.snap {
		out[k] = v
	}
	return out
}

func alert(id, state string) map[string]any {
	now := time.Now().UTC()
	return map[string]any{"id": id, "fingerprint": "fp-" + id, "rule": "complaint_spike", "severity": "critical", "state": state,
		"labels": map[string]string{"region": Hostile}, "value": 19, "expected": 4.2,
		"explanation": "19 complaints in 15m vs 4.2 expected " + Hostile, "summary": "Complaints from a region far above its usual level.",
		"active_at": now.Add(-10 * time.Minute), "started_at": now.Add(-8 * time.Minute), "resolved_at": nil, "acked_by": nil, "acked_at": nil}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	st := newState()
	v := 45.0
	rules := &pipeline.RuleSet{Rules: []pipeline.Rule{{Name: "first_response_slow", Kind: pipeline.KindThreshold,
		Metric: pipeline.MetricFirstResponseSeconds, Stat: "p90", Op: ">", Value: &v, Severity: "warning"}}}
	if err := dashboard.Mount(r, dashboard.Deps{Rules: func() *pipeline.RuleSet { return rules }}); err != nil {
		log.Fatal(err)
	}
	api := r.Group("/api/v1")
	api.GET("/kpis", func(c *gin.Context) { c.JSON(http.StatusOK, st.snapshot(time.Now())) })
	api.GET("/kpis/by/:dim", func(c *gin.Context) {
		keys := []string{"广州", "上海", "北京", "深圳", "成都", Hostile}
		rows := []map[string]any{}
		for i, k := range keys {
			rows = append(rows, map[string]any{"key": k, "conversations_started": 300 - 40*i, "complaints": 20 - 3*i,
				"resolution_rate": 0.9 - 0.03*float64(i), "transfer_rate": 0.2 + 0.02*float64(i), "abandon_rate": 0.05,
				"first_response_seconds": map[string]any{"avg": 5, "p50": 4, "p90": 10 + i, "count": 100},
				"human_wait_seconds":     map[string]any{"avg": 30, "p50": 20, "p90": 50 + i, "count": 40},
				"service_level":          0.8, "csat_avg": 4.1})
		}
		c.JSON(http.StatusOK, gin.H{"dimension": c.Param("dim"), "rows": rows})
	})
	api.GET("/timeseries", func(c *gin.Context) {
		now := time.Now().Truncate(time.Minute)
		pts := [][2]any{}
		for i := 60; i > 0; i-- {
			t := now.Add(-time.Duration(i) * time.Minute)
			pts = append(pts, [2]any{t.Unix(), 0.5 + 0.3*float64(i%7)/7})
		}
		c.JSON(http.StatusOK, gin.H{"metric": c.Query("metric"), "step_seconds": 60, "series": []gin.H{{"key": "", "points": pts}}})
	})
	api.GET("/alerts", func(c *gin.Context) {
		if c.Query("state") == "resolved" {
			a := alert("a2", "resolved")
			a["resolved_at"] = time.Now().UTC().Add(-time.Minute)
			c.JSON(http.StatusOK, gin.H{"alerts": []any{a}})
			return
		}
		a := alert("a1", "firing")
		st.mu.Lock()
		if by, ok := st.acked["a1"]; ok {
			a["acked_by"], a["acked_at"] = by, time.Now().UTC()
		}
		st.mu.Unlock()
		c.JSON(http.StatusOK, gin.H{"alerts": []any{a}})
	})
	api.POST("/alerts/:id/ack", func(c *gin.Context) {
		var body struct{ By string }
		_ = c.BindJSON(&body)
		st.mu.Lock()
		st.acked[c.Param("id")] = body.By
		st.mu.Unlock()
		c.JSON(http.StatusOK, alert(c.Param("id"), "firing"))
	})
	api.GET("/silences", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"silences": []gin.H{{"id": "s1", "matchers": []gin.H{{"name": "region", "op": "=", "value": Hostile}},
			"starts_at": time.Now().Add(-time.Hour).UTC(), "ends_at": time.Now().Add(time.Hour).UTC(), "created_by": "王五", "comment": Hostile}}})
	})
	api.POST("/silences", func(c *gin.Context) { c.JSON(http.StatusCreated, gin.H{"id": "s2"}) })
	api.DELETE("/silences/:id", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"id": c.Param("id")}) })
	api.GET("/conversations", func(c *gin.Context) {
		now := time.Now().UTC()
		c.JSON(http.StatusOK, gin.H{"conversations": []gin.H{{"id": "c-1001", "started_at": now.Add(-20 * time.Minute), "first_event_at": now.Add(-20 * time.Minute),
			"region": c.DefaultQuery("region", "广州"), "queue": "billing", "channel": "web", "business_line": "broadband", "agents": []string{"a-7"},
			"transferred": true, "closed_at": now.Add(-5 * time.Minute), "resolved": true}}, "next_cursor": nil})
	})
	api.GET("/conversations/:id", func(c *gin.Context) {
		t0 := time.Now().UTC().Add(-20 * time.Minute)
		c.JSON(http.StatusOK, gin.H{"conversation": gin.H{"id": c.Param("id")}, "events": []gin.H{
			{"type": "conversation.started", "occurred_at": t0, "actor": gin.H{"role": "customer", "id": "u-1"}},
			{"type": "message.sent", "occurred_at": t0.Add(5 * time.Second), "actor": gin.H{"role": "customer", "id": "u-1"}, "text": Hostile},
			{"type": "transfer.requested", "occurred_at": t0.Add(40 * time.Second), "reason": "billing"},
			{"type": "conversation.closed", "occurred_at": t0.Add(15 * time.Minute), "resolution": "resolved"},
		}})
	})
	api.GET("/export.csv", func(c *gin.Context) { c.Data(http.StatusOK, "text/csv", []byte("id\nc-1001\n")) })
	api.GET("/stream", func(c *gin.Context) {
		st.mu.Lock()
		on, stop := st.streamOn, st.stop
		st.mu.Unlock()
		if !on {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Header("Content-Type", "text/event-stream")
		c.Header("Cache-Control", "no-cache")
		c.Status(http.StatusOK)
		write := func(event string, v any) bool {
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(c.Writer, "retry: 1000\nevent: %s\ndata: %s\n\n", event, b); err != nil {
				return false
			}
			c.Writer.Flush()
			return true
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if !write("kpi", st.snapshot(time.Now())) {
				return
			}
			select {
			case <-c.Request.Context().Done():
				return
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	test := r.Group("/test")
	test.POST("/kpis", func(c *gin.Context) {
		var m map[string]any
		if err := c.BindJSON(&m); err != nil {
			return
		}
		st.mu.Lock()
		for k, v := range m {
			st.snap[k] = v
		}
		st.mu.Unlock()
		c.Status(http.StatusNoContent)
	})
	test.POST("/stream/:onoff", func(c *gin.Context) {
		st.mu.Lock()
		st.streamOn = c.Param("onoff") == "on"
		if !st.streamOn {
			close(st.stop)
			st.stop = make(chan struct{})
		}
		st.mu.Unlock()
		c.Status(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
