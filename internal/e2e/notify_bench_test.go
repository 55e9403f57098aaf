package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// BenchmarkEventToNotification measures SPEC §9's end-to-end alert path:
// from handing one event to the Kafka producer to the notification it
// causes arriving at a webhook receiver. The product is `cockpit serve`
// with its defaults (ingest batches, live view, a rule tick every second,
// group_wait 1 s) over `cockpit store` and a real broker; the rule fires
// on the first complaint of a region (`for: 0s`, so the figure is the
// time after `for`). Each iteration files one complaint in a region of
// its own and waits for its notification, so iterations do not share an
// alert group. Nothing else flows through the topic.
func BenchmarkEventToNotification(b *testing.B) {
	hk := newHook(b)
	dir := b.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
  - name: complaint_seen
    kind: threshold
    metric: complaints
    window: 5m
    by: region
    op: ">"
    value: 0
    severity: critical
`), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "cockpit.yaml")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(hookKey)
	// The product's defaults but for the route to the receiver: group_wait
	// 1 s as SPEC §9 counts it.
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `rules: {file: %q}
alerting:
  routes:
    - receiver: hook
      group_by: [rule, region]
      group_wait: 1s
      repeat_interval: 1h
  receivers:
    - name: hook
      webhook: {url: %q, secret: %q}
`, rules, hk.url(), secret), 0o644); err != nil {
		b.Fatal(err)
	}
	d, _, conn := setup(b, cfg)
	execCH(b, conn, "SYSTEM START MERGES events") // a bench runs as production does
	// The harness's small fault-test batches give way to the defaults.
	d.env = []string{"COCKPIT_INGEST_BATCH_ROWS=50000", "COCKPIT_INGEST_BATCH_INTERVAL=200ms"}
	s := d.startServe("serve")
	waitUntil(b, 2*time.Minute, "the serve takes the partitions and leads", func() bool {
		return s.assigned() && s.metric("cockpit_leader") == 1
	})
	w := newWriter(d.brokers, d.topic)
	defer w.Close()
	// One event first, so the ingest, the live view and the first rule
	// ticks are under way before anything is timed.
	warm := fmt.Sprintf("预热-%d", time.Now().UnixNano())
	if err := sendRetrying(w, []kafka.Message{complaintMsg(warm)}, time.Now().Add(time.Minute)); err != nil {
		b.Fatal(err)
	}
	waitUntil(b, time.Minute, "the warm-up notification", func() bool { _, ok := hk.regionDelivery(warm); return ok })

	// The whole path, and its parts: to the tick that fires the alert (the
	// alert's starts_at: ingest, the live view, waiting for the tick),
	// from there to the notification's creation (group_wait, counted in
	// ticks) and from there to the receiver (outbox, delivery).
	var lat, toTick, toFlush, toRecv []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		region := fmt.Sprintf("通知%03d-%d", i, time.Now().UnixNano()%1e6)
		t0 := time.Now()
		if err := sendRetrying(w, []kafka.Message{complaintMsg(region)}, t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
		var (
			got delivery
			ok  bool
		)
		waitUntil(b, time.Minute, "the notification of "+region, func() bool {
			got, ok = hk.regionDelivery(region)
			return ok
		})
		lat = append(lat, got.at.Sub(t0))
		toTick = append(toTick, got.n.Alerts[0].StartsAt.Sub(t0))
		toFlush = append(toFlush, got.n.CreatedAt.Sub(got.n.Alerts[0].StartsAt))
		toRecv = append(toRecv, got.at.Sub(got.n.CreatedAt))
		// The next complaint comes at a random point of the tick.
		time.Sleep(time.Duration(137*(i%7)) * time.Millisecond)
	}
	b.StopTimer()
	for _, d := range []struct {
		name string
		ds   []time.Duration
	}{{"", lat}, {"to-firing-", toTick}, {"firing-to-notification-", toFlush}, {"notification-to-receiver-", toRecv}} {
		slices.Sort(d.ds)
		b.ReportMetric(float64(d.ds[len(d.ds)/2].Microseconds())/1000, d.name+"p50-ms")
		b.ReportMetric(float64(d.ds[len(d.ds)*99/100].Microseconds())/1000, d.name+"p99-ms")
	}
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// complaintMsg is one complaint filed now in region (flood's), as a
// Kafka record.
func complaintMsg(region string) kafka.Message {
	e := flood(region, region, 1)[0]
	v, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(e.ConversationID), Value: v}
}

// regionDelivery is the first notification naming region, if one
// arrived.
func (h *hook) regionDelivery(region string) (delivery, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.arrivals {
		for _, a := range d.n.Alerts {
			if a.Labels["region"] == region {
				return d, true
			}
		}
	}
	return delivery{}, false
}
