package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/schemas"
)

// hookKey is the signing key of the test's webhook receiver.
var hookKey = []byte("fault-test-signing-key-0123456789")

// hook is a real HTTP webhook receiver that can be taken down (it then
// answers 503, as a receiver in maintenance does). It checks every
// signature and records each delivery by webhook-id.
type hook struct {
	srv      *httptest.Server
	down     atomic.Bool
	refused  atomic.Int64 // deliveries answered 503 while down
	mu       sync.Mutex
	arrivals []delivery // accepted deliveries, in arrival order, repeats included
}

type delivery struct {
	id string
	at time.Time
	n  alerts.Notification
}

func newHook(t testing.TB) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) url() string { return h.srv.URL + "/hook" }

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	if h.down.Load() {
		h.refused.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, hookKey)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n alerts.Notification
	if err := json.Unmarshal(body, &n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.arrivals = append(h.arrivals, delivery{id: id, at: time.Now(), n: n})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hook) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.arrivals...)
}

// transitions counts, per alert id and status, the distinct notifications
// (by webhook-id) that told it, and the raw deliveries.
func (h *hook) transitions() (distinct map[string]int, raw int) {
	seen := map[string]bool{}
	distinct = map[string]int{}
	ds := h.deliveries()
	for _, d := range ds {
		if seen[d.id] {
			continue
		}
		seen[d.id] = true
		for _, a := range d.n.Alerts {
			distinct[a.ID+" "+string(a.Status)]++
		}
	}
	return distinct, len(ds)
}

// alertConfig writes the rules and the configuration of the alert tests:
// one threshold rule on complaints per region over window, firing after
// 2 s, and a webhook route that groups by rule and region.
func alertConfig(t *testing.T, hookURL string, window time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, fmt.Appendf(nil, `rules:
  - name: complaint_flood
    kind: threshold
    metric: complaints
    window: %s
    by: region
    op: ">"
    value: 20
    for: 2s
    severity: critical
    summary: More than 20 complaints from one region within the window.
`, window), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cockpit.yaml")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(hookKey)
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `rules: {file: %q, tick: 500ms}
alerting:
  routes:
    - receiver: hook
      group_by: [rule, region]
      group_wait: 1s
      group_interval: 1s
      repeat_interval: 1h
  receivers:
    - name: hook
      webhook: {url: %q, secret: %q, timeout: 2s}
  delivery: {retry_min: 200ms, retry_max: 2s}
`, rules, hookURL, secret), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// flood returns n complaints from region, timed now: enough to trip the
// complaint_flood rule.
func flood(prefix, region string, n int) []schemas.Event {
	now := time.Now().UTC()
	out := make([]schemas.Event, n)
	for i := range out {
		out[i] = schemas.Event{EventID: fmt.Sprintf("%s-f%03d", prefix, i), SchemaVersion: 1, Type: schemas.ComplaintFiled,
			OccurredAt: now.Add(-time.Duration(i) * 10 * time.Millisecond), ConversationID: fmt.Sprintf("%s-fc%03d", prefix, i),
			Region: region, Severity: "high", Category: "outage"}
	}
	return out
}

// apiAlert is an alert as GET /api/v1/alerts lists it.
type apiAlert struct {
	ID          string            `json:"id"`
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
}

// alertsOf lists the alerts of rule for region known to the API.
func alertsOf(t *testing.T, api, rule, region string) []apiAlert {
	t.Helper()
	var res struct {
		Alerts []apiAlert `json:"alerts"`
	}
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	if err := getJSON(api, "/api/v1/alerts?state=all&from="+from+"&to="+to, &res); err != nil {
		return nil
	}
	var out []apiAlert
	for _, a := range res.Alerts {
		if a.Rule == rule && a.Labels["region"] == region {
			out = append(out, a)
		}
	}
	return out
}
