package alertmanager

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
)

type am struct {
	mu     sync.Mutex
	srv    *httptest.Server
	paths  []string
	auths  []string
	bodies [][]byte
}

func newAM(t *testing.T, status int) *am {
	t.Helper()
	a := &am{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.paths = append(a.paths, r.Method+" "+r.URL.Path)
		a.auths = append(a.auths, r.Header.Get("Authorization"))
		a.bodies = append(a.bodies, b)
		a.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// snapshot returns copies of what the server received, under the lock.
func (a *am) snapshot() (paths, auths []string, bodies [][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...), append([]string(nil), a.auths...), append([][]byte(nil), a.bodies...)
}

const wantFiring = `[{"labels":{"alertname":"complaint_spike","queue":"vip","region":"广州","severity":"critical","source":"cockpit"},` +
	`"annotations":{"description":"广州: 15 分钟内投诉 42 起，预期 9 起","expected":"9",` +
	`"explanation":"广州: 15 分钟内投诉 42 起，预期 9 起","summary":"区域投诉激增","value":"42"},` +
	`"startsAt":"2024-05-01T02:00:00Z",` +
	`"generatorURL":"https://cockpit.example.com/drill?rule=complaint_spike\u0026region=%E5%B9%BF%E5%B7%9E"},` +
	`{"labels":{"alertname":"complaint_spike","queue":"normal","region":"广州","severity":"warning","source":"cockpit"},` +
	`"annotations":{"description":"广州: 15 分钟内投诉 18 起，预期 7 起","expected":"7",` +
	`"explanation":"广州: 15 分钟内投诉 18 起，预期 7 起","summary":"广州: 15 分钟内投诉 18 起，预期 7 起","value":"18.46"},` +
	`"startsAt":"2024-05-01T02:01:00Z",` +
	`"generatorURL":"https://cockpit.example.com/drill?rule=complaint_spike\u0026queue=normal"}]`

func TestExactPayload(t *testing.T) {
	a := newAM(t, 200)
	n, err := New(Config{URL: a.srv.URL + "/am", ExtraLabels: map[string]string{"source": "cockpit"}}, a.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := n.Notify(context.Background(), notifytest.Firing()); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	if snap(a).paths[0] != "POST /am/api/v2/alerts" {
		t.Errorf("request %q", snap(a).paths[0])
	}
	if string(snap(a).bodies[0]) != wantFiring {
		t.Errorf("body\n got %s\nwant %s", snap(a).bodies[0], wantFiring)
	}
	if strings.Contains(string(snap(a).bodies[0]), "endsAt") {
		t.Error("firing alert carries endsAt")
	}

	if _, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil {
		t.Fatal(err)
	}
	var got []PostableAlert
	if err := json.Unmarshal(snap(a).bodies[1], &got); err != nil {
		t.Fatal(err)
	}
	if want := notifytest.Start.Add(25 * time.Minute); !got[0].EndsAt.Equal(want) {
		t.Errorf("resolved endsAt %v, want %v", got[0].EndsAt, want)
	}
}

func TestLabelNamesSanitised(t *testing.T) {
	a := newAM(t, 200)
	n, _ := New(Config{URL: a.srv.URL}, a.srv.Client(), nil)
	notif := notifytest.Firing()
	notif.Alerts = notif.Alerts[:1]
	notif.Alerts[0].Labels = map[string]string{"业务线": "售后", "queue-id": "7", "9x": "y", "empty": "", "alertname": "spoof"}
	if _, err := n.Notify(context.Background(), notif); err != nil {
		t.Fatal(err)
	}
	var got []PostableAlert
	if err := json.Unmarshal(snap(a).bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"___": "售后", "queue_id": "7", "_x": "y", "alertname": "complaint_spike", "severity": "critical"}
	if len(got[0].Labels) != len(want) {
		t.Fatalf("labels %v, want %v", got[0].Labels, want)
	}
	for k, v := range want {
		if got[0].Labels[k] != v {
			t.Errorf("label %s = %q, want %q (all: %v)", k, got[0].Labels[k], v, got[0].Labels)
		}
	}
}

func TestAuthAndStatus(t *testing.T) {
	a := newAM(t, 200)
	n, _ := New(Config{URL: a.srv.URL, BasicAuth: &BasicAuth{Username: "cockpit", Password: "pa55"}}, a.srv.Client(), nil)
	n2, _ := New(Config{URL: a.srv.URL, BearerToken: "tok"}, a.srv.Client(), nil)
	for _, x := range []*Notifier{n, n2} {
		if _, err := x.Notify(context.Background(), notifytest.Firing()); err != nil {
			t.Fatal(err)
		}
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("cockpit:pa55")); snap(a).auths[0] != want {
		t.Errorf("basic auth %q", snap(a).auths[0])
	}
	if snap(a).auths[1] != "Bearer tok" {
		t.Errorf("bearer %q", snap(a).auths[1])
	}
	if s := (Config{URL: "http://x", BearerToken: "tok"}).String(); strings.Contains(s, "tok") {
		t.Errorf("String leaks: %s", s)
	}

	for _, tc := range []struct {
		status int
		retry  bool
	}{{400, false}, {401, false}, {404, false}, {408, true}, {429, true}, {500, true}, {503, true}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			a := newAM(t, tc.status)
			n, _ := New(Config{URL: a.srv.URL}, a.srv.Client(), nil)
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if err == nil || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want retry=%v", retry, err, tc.retry)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	n, _ := New(Config{URL: srv.URL}, srv.Client(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
}

func TestValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"empty":      {},
		"relative":   {URL: "/am"},
		"userinfo":   {URL: "http://u:p@am:9093"},
		"both auths": {URL: "http://am", BearerToken: "t", BasicAuth: &BasicAuth{Username: "u"}},
		"bad label":  {URL: "http://am", ExtraLabels: map[string]string{"a-b": "x"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var _ alerts.Notifier = (*Notifier)(nil)
}

func TestRejectsAlertWithoutRule(t *testing.T) {
	a := newAM(t, 200)
	n, _ := New(Config{URL: a.srv.URL}, a.srv.Client(), nil)
	notif := notifytest.Firing()
	notif.Alerts[1].Rule = ""
	if retry, err := n.Notify(context.Background(), notif); err == nil || retry {
		t.Fatalf("Notify = %v, %v; want permanent error", retry, err)
	}
	if len(snap(a).bodies) != 0 {
		t.Error("posted anyway")
	}
}

type received struct {
	paths, auths []string
	bodies       [][]byte
}

func snap(a *am) received {
	p, au, b := a.snapshot()
	return received{p, au, b}
}
