package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestSharedStateAcrossLeaders runs three `cockpit serve` in one group. A
// rule change, an ack and a silence are each posted to an instance that
// does not lead, and take effect on the leader; the leader is killed and
// the next one honours all three; the receiver, which counts every
// request and drops nothing as a repeat, hears each notification exactly
// once; only the leader evaluates rules; the rules survive a restart of
// every instance.
func TestSharedStateAcrossLeaders(t *testing.T) {
	began := time.Now()
	hk := newHook(t)
	d, _, _ := setup(t, sharedConfig(t, hk.url()))
	var servers []*serveProc
	for _, name := range []string{"serve-a", "serve-b", "serve-c"} {
		servers = append(servers, d.startServeNoWait(name))
	}
	for _, s := range servers {
		s.waitReady()
	}
	leader := func(among []*serveProc) *serveProc {
		var l *serveProc
		for _, s := range among {
			if s.metric("cockpit_leader") == 1 {
				if l != nil {
					return nil
				}
				l = s
			}
		}
		return l
	}
	var lead *serveProc
	waitUntil(t, 2*time.Minute, "one instance leads", func() bool { lead = leader(servers); return lead != nil })
	var follower *serveProc
	for _, s := range servers {
		if s != lead {
			follower = s
			break
		}
	}
	t.Logf("%s leads; changes go to %s", lead.name, follower.name)

	// 1. The rule change, on an instance that does not lead.
	const rules = `rules:
  - name: complaint_flood
    kind: threshold
    metric: complaints
    window: 10m
    by: region
    op: ">"
    value: 20
    for: 1s
    severity: critical
`
	ticks := func() float64 { return lead.metric("cockpit_rule_tick_duration_seconds_count") }
	before := ticks()
	if code, body := call(t, http.MethodPut, follower.base+"/api/v1/rules", "application/yaml", rules); code != http.StatusOK {
		t.Fatalf("PUT /api/v1/rules on %s: %d %s", follower.name, code, body)
	}
	put := time.Now()
	waitUntil(t, 30*time.Second, "the leader evaluates the new rule", func() bool {
		return strings.Contains(get(t, lead.base+"/api/v1/rules"), "complaint_flood")
	})
	// The tick under way at the PUT, the one that reads the new version,
	// and one more for this poll's own delay.
	took := ticks() - before
	t.Logf("the leader had the new rules %s and %v ticks after the PUT (tick 500ms)", time.Since(put).Round(time.Millisecond), took)
	if took > 3 {
		t.Errorf("the leader took %v ticks to put the new rules in force, want at most two (and one for the poll)", took)
	}

	// 2. An alert fires; the ack goes to the instance that does not lead.
	const acked, silenced, later = "确认市", "静默市", "接管市"
	send(t, d, "ak", acked)
	alert := waitFiring(t, follower.base, acked)
	waitUntil(t, 30*time.Second, "the receiver hears the alert fire", func() bool { return hk.told(alert.ID) > 0 })
	// Unacknowledged, it is told again every repeat_interval (2s).
	waitUntil(t, 30*time.Second, "the alert is repeated while nobody took it", func() bool { return hk.told(alert.ID) > 1 })
	if code, body := call(t, http.MethodPost, follower.base+"/api/v1/alerts/"+alert.ID+"/ack", "application/json", `{"by":"lin","note":"on it"}`); code != http.StatusOK {
		t.Fatalf("ack on %s: %d %s", follower.name, code, body)
	}
	// Within two ticks the leader knows; give it two more for a
	// notification already queued to go.
	time.Sleep(2 * time.Second)
	toldAfterAck := hk.told(alert.ID)
	time.Sleep(5 * time.Second)
	if n := hk.told(alert.ID); n != toldAfterAck {
		t.Errorf("the leader repeated an acknowledged alert: %d notices, %d at the ack", n, toldAfterAck)
	}

	// 3. The silence, on the instance that does not lead, before its
	// region floods.
	if code, body := call(t, http.MethodPost, follower.base+"/api/v1/silences", "application/json",
		fmt.Sprintf(`{"matchers":["region=\"%s\""],"ends_at":%q,"created_by":"lin","comment":"maintenance"}`,
			silenced, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))); code != http.StatusCreated {
		t.Fatalf("silence on %s: %d %s", follower.name, code, body)
	}
	time.Sleep(time.Second) // two ticks
	send(t, d, "sl", silenced)
	muted := waitFiring(t, follower.base, silenced)

	// Only the leader evaluates rules.
	for _, s := range servers {
		ticks := s.metric("cockpit_rule_tick_duration_seconds_count")
		if s == lead && ticks <= 0 {
			t.Errorf("the leader %s counts %v rule ticks", s.name, ticks)
		}
		if s != lead && ticks > 0 {
			t.Errorf("%s does not lead but counts %v rule ticks", s.name, ticks)
		}
	}

	// 4. The leader goes; the next one honours the rules, the ack and the
	// silence.
	lead.kill()
	var rest []*serveProc
	for _, s := range servers {
		if s != lead {
			rest = append(rest, s)
		}
	}
	killed := time.Now()
	var next *serveProc
	waitUntil(t, 2*time.Minute, "another instance leads", func() bool { next = leader(rest); return next != nil })
	t.Logf("%s leads %s after the kill", next.name, time.Since(killed).Round(time.Millisecond))
	toldAtTakeover := hk.told(alert.ID)
	send(t, d, "tk", later)
	fresh := waitFiring(t, next.base, later)
	waitUntil(t, 30*time.Second, "the new leader tells the new alert", func() bool { return hk.told(fresh.ID) > 0 })
	time.Sleep(5 * time.Second) // repeats of an unacknowledged alert would come by now
	if n := hk.told(alert.ID); n != toldAtTakeover {
		t.Errorf("the new leader repeated the acknowledged alert: %d notices, %d at the takeover", n, toldAtTakeover)
	}
	if n := hk.told(muted.ID); n != 0 {
		t.Errorf("the silenced alert was told %d times", n)
	}
	for _, a := range []apiAlert{alert, muted} {
		if as := alertsOf(t, next.base, "complaint_flood", a.Labels["region"]); len(as) != 1 || as[0].ID != a.ID || as[0].State != "firing" {
			t.Errorf("after the takeover, alerts of %s = %+v; want %s still firing", a.Labels["region"], as, a.ID)
		}
	}

	// 5. Every notification reached the counting receiver exactly once.
	seen := map[string]int{}
	for _, dl := range hk.deliveries() {
		seen[dl.id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("notification %s arrived %d times", id, n)
		}
	}
	t.Logf("the receiver got %d notifications", len(seen))

	// 6. The rules survive a restart of every instance.
	for _, s := range rest {
		if err := s.stop(30 * time.Second); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	again := d.startServe("serve-d")
	if got := get(t, again.base+"/api/v1/rules"); !strings.Contains(got, "complaint_flood") {
		t.Errorf("rules after a restart of every instance:\n%s", got)
	}
	var hist struct {
		Versions []struct {
			Author string `json:"author"`
			Diff   string `json:"diff"`
		} `json:"versions"`
	}
	if err := getJSON(again.base, "/api/v1/rules/history", &hist); err != nil || len(hist.Versions) != 1 || !strings.Contains(hist.Versions[0].Diff, "+2:   - name: complaint_flood") {
		t.Errorf("rule history = %+v, %v", hist, err)
	}
	t.Logf("%s in all", time.Since(began).Round(time.Second))
}

// sharedConfig routes every alert to the hook, repeats an unacknowledged
// alert every 2 s, and keeps the rules in the store (no rules.file).
func sharedConfig(t *testing.T, hookURL string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "cockpit.yaml")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(hookKey)
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `rules: {tick: 500ms}
kpi: {rollup: {disabled: true}}
alerting:
  routes:
    - receiver: hook
      group_by: [rule, region]
      group_wait: 1s
      group_interval: 1s
      repeat_interval: 2s
  receivers:
    - name: hook
      webhook: {url: %q, secret: %q, timeout: 2s}
  delivery: {retry_min: 200ms, retry_max: 2s}
`, hookURL, secret), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// told counts the deliveries that carried alert id as firing.
func (h *hook) told(id string) int {
	n := 0
	for _, d := range h.deliveries() {
		for _, a := range d.n.Alerts {
			if a.ID == id && a.Status == "firing" {
				n++
			}
		}
	}
	return n
}

// send floods region with complaints.
func send(t *testing.T, d *deployment, prefix, region string) {
	t.Helper()
	evs := flood(prefix, region, 30)
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		v, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(e.ConversationID), Value: v}
	}
	sendNow(t, d.brokers, d.topic, msgs)
}

// waitFiring waits until the API lists the alert of region as firing.
func waitFiring(t *testing.T, api, region string) apiAlert {
	t.Helper()
	var a apiAlert
	waitUntil(t, time.Minute, "the alert of "+region+" fires", func() bool {
		as := alertsOf(t, api, "complaint_flood", region)
		if len(as) > 0 && as[0].State == "firing" {
			a = as[0]
			return true
		}
		return false
	})
	return a
}

func call(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
