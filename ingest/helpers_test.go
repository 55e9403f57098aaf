package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/schemas"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig is a consumer configuration with small, quick batches.
func testConfig(brokers, topic, dlq string) ingest.Config {
	cfg := ingest.Default()
	cfg.Brokers = []string{brokers}
	cfg.Topic = topic
	cfg.DeadLetterTopic = dlq
	cfg.GroupID = "g-" + topic
	cfg.BatchRows = 1000
	cfg.BatchInterval = 50 * time.Millisecond
	cfg.RetryMax = time.Second
	cfg.SessionTimeout = 6 * time.Second
	return cfg
}

// running is a consumer running in the test process.
type running struct {
	c    *ingest.Consumer
	reg  *prometheus.Registry
	stop func()
}

func start(t *testing.T, cfg ingest.Config, conn driver.Conn) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := ingest.New(cfg, conn, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	r := &running{c: c, reg: reg}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("consumer did not stop within 60s")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// metric sums the samples of a metric family, optionally of one label value.
func (r *running) metric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// stopMerges keeps ReplacingMergeTree from folding duplicate rows while a
// test counts them: a count of physical rows then shows every row that was
// inserted, including any that a broken replay would have inserted twice.
func stopMerges(t testing.TB, conn driver.Conn) {
	t.Helper()
	if err := conn.Exec(context.Background(), "SYSTEM STOP MERGES events"); err != nil {
		t.Fatalf("stop merges: %v", err)
	}
}

// count runs a single-number query.
func count(t testing.TB, conn driver.Conn, query string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitRows waits until events holds want rows (physically, duplicates
// included) and fails if it holds more or never gets there.
func waitRows(t testing.TB, conn driver.Conn, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var n uint64
	for time.Now().Before(deadline) {
		n = count(t, conn, "SELECT count() FROM events")
		if n >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != want {
		t.Fatalf("events has %d rows, want %d", n, want)
	}
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// event builds a valid event as a Kafka record; pad makes the value about
// that many bytes long with message text.
func event(id, conv string, typ schemas.EventType, at time.Time, pad int) kafka.Message {
	e := schemas.Event{
		EventID: id, SchemaVersion: 1, Type: typ, OccurredAt: at, ConversationID: conv,
	}
	switch typ {
	case schemas.ConversationStarted:
		e.Channel, e.Region, e.Entry, e.Queue, e.BusinessLine = "chat", "广州", "bot", "billing-l1", "billing"
	case schemas.MessageSent:
		e.Actor = &schemas.Actor{Role: "customer", ID: "u-" + conv}
		s := -0.4
		e.Sentiment = &s
	case schemas.ConversationClosed:
		e.Resolution = "resolved"
	}
	v, _ := json.Marshal(e)
	if pad > len(v) && typ == schemas.MessageSent {
		e.Text = strings.Repeat("x", pad-len(v)-10)
		v, _ = json.Marshal(e)
	}
	return kafka.Message{Key: []byte(conv), Value: v, Time: time.Now()}
}

// conversationEvents returns n events spread over n/5 conversations, in
// conversation order, ending before now.
func conversationEvents(prefix string, n, pad int) []kafka.Message {
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	msgs := make([]kafka.Message, 0, n)
	for i := 0; len(msgs) < n; i++ {
		conv := fmt.Sprintf("%s-c%06d", prefix, i)
		at := base.Add(time.Duration(i) * 10 * time.Millisecond)
		types := []schemas.EventType{schemas.ConversationStarted, schemas.MessageSent, schemas.MessageSent, schemas.MessageSent, schemas.ConversationClosed}
		for j, typ := range types {
			if len(msgs) == n {
				break
			}
			msgs = append(msgs, event(fmt.Sprintf("%s-e%07d", prefix, len(msgs)), conv, typ, at.Add(time.Duration(j)*time.Second), pad))
		}
	}
	return msgs
}
