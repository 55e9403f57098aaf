package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/app"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/internal/testaddr"
)

func TestMain(m *testing.M) {
	code := chtest.Main(m)
	removeBinary()
	os.Exit(code)
}

// TestServeEventsToKPIs runs `cockpit serve` against real Kafka and the
// engine, posts events to POST /api/v1/events, and sees them counted in
// GET /api/v1/kpis: the HTTP ingest path, the topic, the consumer and the
// metric definitions, end to end. A bad event in the batch is refused by
// index and the rest are accepted.
func TestServeEventsToKPIs(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	db := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	topic := fmt.Sprintf("e2e-events-%d", time.Now().UnixNano())
	t.Setenv("COCKPIT_CLICKHOUSE_DATABASE", db)
	t.Setenv("COCKPIT_INGEST_TOPIC", topic)
	t.Setenv("COCKPIT_INGEST_GROUP_ID", "g-"+topic)
	t.Setenv("COCKPIT_INGEST_BATCH_INTERVAL", "50ms")
	httpAddr := testaddr.Free(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- app.Main(ctx, []string{"serve", "--brokers", brokers, "--clickhouse", store.DSN(""), "--http", httpAddr}, io.Discard, &logs)
	}()
	base := "http://" + httpAddr
	waitFor(t, time.Minute, exit, &logs, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	now := time.Now().UTC()
	var evs []string
	for i := 0; i < 3; i++ {
		evs = append(evs, fmt.Sprintf(`{"event_id":"e2e-%d","schema_version":1,"type":"complaint.filed","occurred_at":%q,"conversation_id":"c-%d","region":"测试市","severity":"high"}`,
			i, now.Add(-time.Duration(i+1)*time.Minute).Format(time.RFC3339Nano), i))
	}
	evs = append(evs[:1], append([]string{`{"event_id":"bad","schema_version":1,"type":"complaint.filed"}`}, evs[1:]...)...)
	body := "[" + strings.Join(evs, ",") + "]"
	resp, err := http.Post(base+"/api/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		} `json:"rejected"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || res.Accepted != 3 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 {
		t.Fatalf("POST /api/v1/events = %d %+v", resp.StatusCode, res)
	}

	q := url.Values{"region": {"测试市"}, "from": {now.Add(-time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Minute).Format(time.RFC3339)}}
	var complaints float64
	waitFor(t, time.Minute, exit, &logs, func() bool {
		resp, err := http.Get(base + "/api/v1/kpis?" + q.Encode())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var k map[string]any
		if json.NewDecoder(resp.Body).Decode(&k) != nil {
			return false
		}
		complaints, _ = k["complaints"].(float64)
		return complaints >= 3
	})
	if complaints != 3 {
		t.Fatalf("complaints = %v, want 3", complaints)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func waitFor(t *testing.T, within time.Duration, exit chan int, logs *bytes.Buffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		select {
		case code := <-exit:
			t.Fatalf("serve exited early with %d:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
