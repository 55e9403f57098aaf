package alerts_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/webhook"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// receiver is a webhook endpoint that can be taken down; it records what
// arrives by webhook-id, with the arrival time.
type receiver struct {
	down atomic.Bool
	mu   sync.Mutex
	ids  map[string]int
	at   map[string]time.Time
	body map[string]alerts.Notification
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	data, _ := io.ReadAll(req.Body)
	var n alerts.Notification
	if err := json.Unmarshal(data, &n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.ids[id]++
	if _, ok := r.at[id]; !ok {
		r.at[id] = time.Now()
	}
	r.body[id] = n
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// TestWebhookDownDuringSpikeAndRestart takes the receiver down while a
// spike raises alerts in several regions, restarts the cockpit's alerting
// (manager and deliverer) in the middle, then brings the receiver back:
// every notification arrives, none twice (by webhook-id).
func TestWebhookDownDuringSpikeAndRestart(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	recv := &receiver{ids: map[string]int{}, at: map[string]time.Time{}, body: map[string]alerts.Notification{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	hook, err := webhook.New(webhook.Config{URL: notify.SecretURL(srv.URL), Secret: notify.Secret(secret)}, srv.Client(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := alerts.DispatchConfig{Routes: []alerts.Route{{Receiver: "hook", GroupBy: []string{"rule", "region"},
		GroupWait: alerts.Duration(time.Second), GroupInterval: alerts.Duration(time.Second), RepeatInterval: alerts.Duration(time.Hour)}}}
	if err := cfg.WithDefaults().Validate([]string{"hook"}); err != nil {
		t.Fatal(err)
	}
	st := alerts.NewStore(conn)
	logger := slog.New(slog.DiscardHandler)
	dcfg := alerts.DeliveryConfig{RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
	start := func() (*alerts.Manager, *alerts.Deliverer) {
		m, err := alerts.NewManager(ctx, st, cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		return m, alerts.NewDeliverer(dcfg, st, map[string]alerts.Notifier{"hook": hook}, logger)
	}
	spike := func(regions ...string) []rules.Candidate {
		var cs []rules.Candidate
		for _, r := range regions {
			cs = append(cs, rules.Candidate{Rule: "complaint_spike", Kind: rules.KindSpike, Severity: "critical",
				Labels: map[string]string{"scope": "region", "region": r}, Value: 40, Expected: 8,
				Explanation: r + ": 40 complaints in 15m, expected 8", KeepFiring: 5 * time.Second})
		}
		return cs
	}
	ev := func(at time.Time, cs []rules.Candidate) rules.Evaluation {
		return rules.Evaluation{At: at, Candidates: cs, Evaluated: map[string]bool{"complaint_spike": true}}
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	recv.down.Store(true)
	m, d := start()
	// The spike spreads over three regions while the receiver is down.
	for i, regions := range [][]string{{"广州"}, {"广州", "成都"}, {"广州", "成都", "杭州"}, {"广州", "成都", "杭州"}} {
		if err := m.Observe(ctx, ev(base.Add(time.Duration(i)*time.Second), spike(regions...))); err != nil {
			t.Fatal(err)
		}
		d.Once(ctx, time.Now())
	}
	// The cockpit restarts in the middle of it.
	m, d = start()
	for i := 4; i < 8; i++ {
		if err := m.Observe(ctx, ev(base.Add(time.Duration(i)*time.Second), spike("广州", "成都", "杭州"))); err != nil {
			t.Fatal(err)
		}
		d.Once(ctx, time.Now())
	}
	// 广州 ends; the others go on.
	for i := 8; i < 16; i++ {
		if err := m.Observe(ctx, ev(base.Add(time.Duration(i)*time.Second), spike("成都", "杭州"))); err != nil {
			t.Fatal(err)
		}
		d.Once(ctx, time.Now())
	}
	recv.mu.Lock()
	if len(recv.ids) != 0 {
		t.Fatalf("deliveries while the receiver was down: %v", recv.ids)
	}
	recv.mu.Unlock()
	recv.down.Store(false)
	_, d = start() // and once more, now that the receiver is back
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		d.Once(ctx, time.Now())
		recv.mu.Lock()
		n := len(recv.ids)
		recv.mu.Unlock()
		if n >= 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	d.Once(ctx, time.Now())
	recv.mu.Lock()
	defer recv.mu.Unlock()
	var lines []string
	for id, n := range recv.ids {
		if n != 1 {
			t.Errorf("notification %s delivered %d times", id, n)
		}
		b := recv.body[id]
		var as []string
		for _, a := range b.Alerts {
			as = append(as, fmt.Sprintf("%s:%s", a.Labels["region"], a.Status))
		}
		sort.Strings(as)
		lines = append(lines, fmt.Sprintf("%v", as))
	}
	sort.Strings(lines)
	// One firing notice per region, and 广州's resolved notice.
	want := []string{"[广州:firing]", "[广州:resolved]", "[成都:firing]", "[杭州:firing]"}
	sort.Strings(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("received %v, want %v", lines, want)
	}
}

// BenchmarkFiringToNotification measures the time from an evaluation that
// fires an alert to its notification arriving at a webhook receiver: the
// alert state and history writes, the outbox write, the claim and the
// signed HTTP delivery, through the real engine, with delivery running as
// the leader runs it (Deliverer.Run, told of each outbox write). It
// reports p50 and p99.
func BenchmarkFiringToNotification(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	ctx := context.Background()
	recv := &receiver{ids: map[string]int{}, at: map[string]time.Time{}, body: map[string]alerts.Notification{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	hook, err := webhook.New(webhook.Config{URL: notify.SecretURL(srv.URL), Secret: notify.Secret(secret)}, srv.Client(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	cfg := alerts.DispatchConfig{Routes: []alerts.Route{{Receiver: "hook", GroupBy: []string{"rule", "region"},
		GroupWait: alerts.Duration(time.Millisecond), GroupInterval: alerts.Duration(time.Second), RepeatInterval: alerts.Duration(time.Hour)}}}
	if err := cfg.WithDefaults().Validate([]string{"hook"}); err != nil {
		b.Fatal(err)
	}
	st := alerts.NewStore(conn)
	m, err := alerts.NewManager(ctx, st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d := alerts.NewDeliverer(alerts.DeliveryConfig{}, st, map[string]alerts.Notifier{"hook": hook}, slog.New(slog.DiscardHandler))
	// Delivery runs as the leader runs it: told of each notification
	// written to the outbox, which the store claims for it.
	st.DeliverWith(d)
	rctx, stop := context.WithCancel(ctx)
	running := make(chan struct{})
	go func() {
		defer close(running)
		d.Run(rctx, 30*time.Second)
	}()
	defer func() { stop(); <-running }()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		region := fmt.Sprintf("r%d", i)
		c := rules.Candidate{Rule: "complaint_spike", Kind: rules.KindSpike, Severity: "critical",
			Labels: map[string]string{"scope": "region", "region": region}, Value: 40, Expected: 8, Explanation: region}
		t0 := time.Now()
		e := rules.Evaluation{At: t0, Candidates: []rules.Candidate{c}, Evaluated: map[string]bool{"complaint_spike": true}}
		// Two evaluations: the one that fires and, a tick later, the one
		// that finds the group's wait over (1 ms here).
		if err := m.Observe(ctx, e); err != nil {
			b.Fatal(err)
		}
		e.At = t0.Add(time.Millisecond)
		if err := m.Observe(ctx, e); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("the notification of %s did not arrive within a minute", region)
			}
			recv.mu.Lock()
			var got time.Time
			for id, n := range recv.body {
				if n.Alerts[0].Labels["region"] == region {
					got = recv.at[id]
				}
			}
			recv.mu.Unlock()
			if !got.IsZero() {
				lat = append(lat, got.Sub(t0))
				break
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
