package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
)

// startAlertmanager runs a real Alertmanager (Debian package
// prometheus-alertmanager, or ALERTMANAGER_BIN) on a free loopback port
// with clustering off, and returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ALERTMANAGER_BIN")
	if bin == "" {
		for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		msg := "Alertmanager not installed (apt-get install prometheus-alertmanager, or set ALERTMANAGER_BIN)"
		if os.Getenv("COCKPIT_REQUIRE_ALERTMANAGER") == "1" {
			t.Fatal(msg + ": make test installs it, so this must not happen there")
		}
		t.Skip(msg + ": skipping the real-peer test")
	}
	dir := t.TempDir()
	cfg := "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready after 15s:\n%s", out.String())
		}
	}
}

type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func getAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	q := url.Values{"filter": {`alertname="complaint_spike"`}}
	resp, err := http.Get(base + "/api/v2/alerts?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRealAlertmanager(t *testing.T) {
	base := startAlertmanager(t)
	n, err := New(Config{URL: base, ExtraLabels: map[string]string{"source": "cockpit"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	notif := notifytest.Firing()
	for i := range notif.Alerts {
		notif.Alerts[i].StartsAt = start
	}
	if retry, err := n.Notify(context.Background(), notif); err != nil {
		t.Fatalf("post firing: retry=%v err=%v", retry, err)
	}
	got := getAlerts(t, base)
	if len(got) != 2 {
		t.Fatalf("Alertmanager holds %d alerts, want 2: %+v", len(got), got)
	}
	byQueue := map[string]gettableAlert{}
	for _, a := range got {
		byQueue[a.Labels["queue"]] = a
	}
	vip := byQueue["vip"]
	if vip.Labels["region"] != "广州" || vip.Labels["severity"] != "critical" || vip.Labels["source"] != "cockpit" {
		t.Errorf("labels %v", vip.Labels)
	}
	if vip.Annotations["explanation"] != "广州: 15 分钟内投诉 42 起，预期 9 起" || vip.Annotations["value"] != "42" ||
		vip.Annotations["expected"] != "9" || vip.Annotations["summary"] != "区域投诉激增" {
		t.Errorf("annotations %v", vip.Annotations)
	}
	if vip.Status.State != "active" || !vip.StartsAt.Equal(start) {
		t.Errorf("state %q startsAt %v, want active since %v", vip.Status.State, vip.StartsAt, start)
	}
	// No endsAt sent: Alertmanager applies resolve_timeout (5m default).
	if d := time.Until(vip.EndsAt); d < 3*time.Minute || d > 6*time.Minute {
		t.Errorf("endsAt %v is %s away; want about resolve_timeout", vip.EndsAt, d)
	}
	if vip.GeneratorURL != notif.Alerts[0].URL {
		t.Errorf("generatorURL %q", vip.GeneratorURL)
	}

	// Resolve one alert; Alertmanager stops listing it.
	resolved := notifytest.Firing()
	resolved.Status = alerts.StatusResolved
	resolved.Alerts = resolved.Alerts[:1]
	resolved.Alerts[0].StartsAt = start
	resolved.Alerts[0].Status = alerts.StatusResolved
	resolved.Alerts[0].EndsAt = time.Now().Add(-time.Second)
	if _, err := n.Notify(context.Background(), resolved); err != nil {
		t.Fatalf("post resolved: %v", err)
	}
	got = getAlerts(t, base)
	if len(got) != 1 || got[0].Labels["queue"] != "normal" {
		t.Errorf("after resolving vip, Alertmanager lists %s", fmt.Sprint(got))
	}

	// Alertmanager rejects what it cannot accept: no retry.
	bad := notifytest.Resolved()
	bad.Alerts[0].EndsAt = bad.Alerts[0].StartsAt.Add(-time.Hour)
	if retry, err := n.Notify(context.Background(), bad); err == nil || retry {
		t.Errorf("alert ending before it starts: retry=%v err=%v; want a permanent error", retry, err)
	} else {
		t.Logf("Alertmanager refused as expected: %v", err)
	}
}
