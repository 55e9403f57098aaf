package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// fakeAlerts stands in for *alerts.Manager and *alerts.Store.
type fakeAlerts struct {
	mu       sync.Mutex
	acked    map[string]string
	silences []alerts.Silence
	// evaluated is the last rule evaluation LastEvaluation reports;
	// zero: now.
	evaluated time.Time
}

func (f *fakeAlerts) ListAlerts(_ context.Context, state string, from, to time.Time, limit int) ([]alerts.Record, error) {
	return []alerts.Record{{ID: "a1", Rule: "r", State: alerts.StateFiring, Labels: map[string]string{"region": "广州"}}}, nil
}
func (f *fakeAlerts) LastEvaluation(context.Context) (time.Time, error) {
	if f.evaluated.IsZero() {
		return time.Now(), nil
	}
	return f.evaluated, nil
}
func (f *fakeAlerts) Ack(_ context.Context, id, by, note string, now time.Time) (alerts.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "a1" {
		return alerts.Record{}, fmt.Errorf("alert %s is not active: %w", id, alerts.ErrNotFound)
	}
	f.acked[id] = by
	return alerts.Record{ID: id, AckedBy: by, AckedAt: now}, nil
}
func (f *fakeAlerts) AddSilence(_ context.Context, s alerts.Silence, now time.Time) (alerts.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.ID = fmt.Sprint(len(f.silences) + 1)
	f.silences = append(f.silences, s)
	return s, nil
}
func (f *fakeAlerts) ExpireSilence(_ context.Context, id string, now time.Time) (alerts.Silence, error) {
	return alerts.Silence{}, fmt.Errorf("silence %s: %w", id, alerts.ErrNotFound)
}
func (f *fakeAlerts) Silences(context.Context, time.Time) ([]alerts.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.silences), nil
}

// fakeRules stands in for *rules.Evaluator.
type fakeRules struct {
	mu sync.Mutex
	rs *rules.RuleSet
}

func (f *fakeRules) Rules() *rules.RuleSet { f.mu.Lock(); defer f.mu.Unlock(); return f.rs }
func (f *fakeRules) SetRules(rs *rules.RuleSet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs = rs
}
func (f *fakeRules) Backtest(context.Context, time.Time, time.Time, time.Duration) ([]rules.Episode, error) {
	return nil, nil
}

// fakeProducer records what it was asked to produce.
type fakeProducer struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (f *fakeProducer) Produce(_ context.Context, m []kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m...)
	return nil
}

var tokens = []Token{
	{Token: "viewer-token-0123456789", Role: RoleViewer, Name: "wall"},
	{Token: "analyst-token-0123456789", Role: RoleAnalyst, Name: "qa"},
	{Token: "supervisor-token-0123456789", Role: RoleSupervisor, Name: "sup"},
	{Token: "admin-token-0123456789", Role: RoleAdmin, Name: "root"},
}

func newFakeServer(t *testing.T) (*Server, *httptest.Server, *fakeAlerts, *fakeRules, *fakeProducer) {
	t.Helper()
	rs, err := rules.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	fa, fr, fp := &fakeAlerts{acked: map[string]string{}}, &fakeRules{rs: rs}, &fakeProducer{}
	s, err := New(Deps{Config: Config{Tokens: tokens}, Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		AlertHistory: fa, Alerts: fa, Rules: fr, Producer: fp, KPIs: &countingKPIs{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts, fa, fr, fp
}

func TestRoles(t *testing.T) {
	_, ts, _, _, _ := newFakeServer(t)
	event := `{"event_id":"x1","schema_version":1,"type":"csat.submitted","occurred_at":"%s","conversation_id":"c9","score":5}`
	event = fmt.Sprintf(event, time.Now().UTC().Format(time.RFC3339))
	tests := []struct {
		method, path, body string
		need               Role
		okCode             int
	}{
		{"GET", "/api/v1/kpis", "", RoleViewer, 200},
		{"GET", "/api/v1/alerts?state=firing", "", RoleViewer, 200},
		{"GET", "/api/v1/silences", "", RoleViewer, 200},
		{"GET", "/api/v1/rules", "", RoleViewer, 200},
		{"GET", "/api/v1/export.csv", "", RoleAnalyst, 501},
		{"POST", "/api/v1/alerts/a1/ack", `{"note":"on it"}`, RoleSupervisor, 200},
		{"POST", "/api/v1/silences", `{"matchers":["region=\"广州\""],"ends_at":"2999-01-01T00:00:00Z"}`, RoleSupervisor, 201},
		{"DELETE", "/api/v1/silences/9", "", RoleSupervisor, 404},
		{"PUT", "/api/v1/rules", "rules: []\n", RoleAdmin, 200},
		{"POST", "/api/v1/events", event, RoleAdmin, 202},
	}
	for _, tt := range tests {
		for _, tok := range tokens {
			t.Run(tt.method+tt.path+"/"+string(tok.Role), func(t *testing.T) {
				code, body := call(t, tt.method, ts.URL+tt.path, tok.Token, strings.NewReader(tt.body))
				want := 403
				if tok.Role.allows(tt.need) {
					want = tt.okCode
				}
				if code != want {
					t.Fatalf("= %d %s, want %d", code, body, want)
				}
			})
		}
		if code, _ := call(t, tt.method, ts.URL+tt.path, "", strings.NewReader(tt.body)); code != 401 {
			t.Errorf("%s %s without a token = %d, want 401", tt.method, tt.path, code)
		}
		if code, _ := call(t, tt.method, ts.URL+tt.path, "viewer-token-012345678X", strings.NewReader(tt.body)); code != 401 {
			t.Errorf("%s %s with a wrong token = %d, want 401", tt.method, tt.path, code)
		}
	}
}

func TestRulesAndEvents(t *testing.T) {
	_, ts, fa, fr, fp := newFakeServer(t)
	admin := tokens[3].Token
	before := fr.Rules()
	code, body := call(t, "PUT", ts.URL+"/api/v1/rules", admin, strings.NewReader("rules:\n  - name: BAD NAME\n    kind: threshold\n"))
	if code != 400 || !strings.Contains(body, "line 2") || fr.Rules() != before {
		t.Errorf("bad rules = %d %s (rules replaced: %v)", code, body, fr.Rules() != before)
	}
	code, body = call(t, "GET", ts.URL+"/api/v1/rules", admin, nil)
	if code != 200 || !strings.Contains(body, "rules:") {
		t.Errorf("get rules = %d %s", code, body)
	}
	if code, body = call(t, "POST", ts.URL+"/api/v1/alerts/a1/ack", tokens[2].Token, strings.NewReader(`{"by":"张三","note":"x"}`)); code != 200 || fa.acked["a1"] != "张三" {
		t.Errorf("ack = %d %s", code, body)
	}
	if code, body = call(t, "POST", ts.URL+"/api/v1/alerts/a1/ack", tokens[2].Token, strings.NewReader(`{"by":1}`)); code != 400 {
		t.Errorf("ack with a wrong type = %d %s", code, body)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	good := `{"event_id":"e%d","schema_version":1,"type":"csat.submitted","occurred_at":"` + now + `","conversation_id":"c%d","score":4}`
	batch := "[" + fmt.Sprintf(good, 1, 1) + `,{"event_id":"bad"},` + fmt.Sprintf(good, 2, 2) + "]"
	code, body = call(t, "POST", ts.URL+"/api/v1/events", admin, strings.NewReader(batch))
	var res struct {
		Accepted int
		Rejected []struct {
			Index int
			Error string
		}
	}
	if code != 202 || json.Unmarshal([]byte(body), &res) != nil || res.Accepted != 2 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 {
		t.Fatalf("events = %d %s", code, body)
	}
	if len(fp.msgs) != 2 || string(fp.msgs[1].Key) != "c2" {
		t.Errorf("produced %+v", fp.msgs)
	}
	if code, body = call(t, "POST", ts.URL+"/api/v1/events", admin, strings.NewReader("["+strings.Repeat("{},", maxEvents)+"{}]")); code != 400 {
		t.Errorf("too many events = %d %s", code, body)
	}
}

func TestConfigAndListen(t *testing.T) {
	if err := CheckListen(Config{}, "0.0.0.0:8080"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("CheckListen 0.0.0.0 without tokens = %v", err)
	}
	for _, a := range []string{"127.0.0.1:8080", "[::1]:80", "localhost:1"} {
		if err := CheckListen(Config{}, a); err != nil {
			t.Errorf("CheckListen %s = %v", a, err)
		}
	}
	if err := CheckListen(Config{Tokens: tokens}, ":8080"); err != nil {
		t.Errorf("with tokens: %v", err)
	}
	bad := Config{Tokens: []Token{{Token: "short", Role: "root", Name: ""}}}
	err := bad.Validate()
	if err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("Validate = %v (must fail without echoing the token)", err)
	}
}

func TestOpenAPICoversRoutes(t *testing.T) {
	s, _, _, _, _ := newFakeServer(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	registered := map[string]bool{}
	for _, r := range s.Engine().Routes() {
		key := strings.ToLower(r.Method) + " " + param.ReplaceAllString(r.Path, "{$1}")
		registered[key] = true
		p, m := param.ReplaceAllString(r.Path, "{$1}"), strings.ToLower(r.Method)
		if _, ok := doc.Paths[p][m]; !ok {
			t.Errorf("route %s %s is not in openapi.json", r.Method, r.Path)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !registered[m+" "+p] {
				t.Errorf("openapi.json has %s %s, which is not a route", m, p)
			}
		}
	}
}

// TestSessionCookie: a browser signs in with a token and then uses the
// cookie alone, reads and (from its own origin only) changes; a wrong
// token sets nothing; signing out clears it.
func TestSessionCookie(t *testing.T) {
	_, ts, fa, _, _ := newFakeServer(t)
	do := func(method, path, body string, hdr map[string]string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := do("GET", "/api/v1/session", "", nil); r.StatusCode != 401 {
		t.Fatalf("session without credentials = %d", r.StatusCode)
	}
	if r := do("POST", "/api/v1/session", `{"token":"supervisor-token-012345678X"}`, nil); r.StatusCode != 401 || len(r.Cookies()) != 0 {
		t.Fatalf("sign in with a wrong token = %d, cookies %v", r.StatusCode, r.Cookies())
	}
	if r := do("POST", "/api/v1/session", `{"token":"supervisor-token-0123456789"}`, map[string]string{"Origin": "https://evil.example"}); r.StatusCode != 403 {
		t.Fatalf("sign in from another origin = %d", r.StatusCode)
	}
	r := do("POST", "/api/v1/session", `{"token":"supervisor-token-0123456789"}`, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if r.StatusCode != 200 || len(r.Cookies()) != 1 {
		t.Fatalf("sign in = %d, cookies %v", r.StatusCode, r.Cookies())
	}
	ck := r.Cookies()[0]
	if ck.Name != SessionCookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 {
		t.Fatalf("cookie %+v", ck)
	}
	if r := do("GET", "/api/v1/alerts?state=firing", "", nil, ck); r.StatusCode != 200 {
		t.Errorf("read with the cookie = %d", r.StatusCode)
	}
	if r := do("GET", "/api/v1/export.csv", "", nil, ck); r.StatusCode != 501 {
		t.Errorf("export with a supervisor cookie = %d, want 501 (allowed, no store here)", r.StatusCode)
	}
	// A change by cookie must come from the cockpit's own pages.
	ack := `{"by":"王五"}`
	if r := do("POST", "/api/v1/alerts/a1/ack", ack, map[string]string{"Sec-Fetch-Site": "cross-site"}, ck); r.StatusCode != 403 {
		t.Errorf("cross-site ack by cookie = %d, want 403", r.StatusCode)
	}
	if r := do("POST", "/api/v1/alerts/a1/ack", ack, map[string]string{"Origin": "http://attacker.example"}, ck); r.StatusCode != 403 {
		t.Errorf("ack by cookie from another Origin = %d, want 403", r.StatusCode)
	}
	if fa.acked["a1"] != "" {
		t.Fatal("a refused ack was applied")
	}
	if r := do("POST", "/api/v1/alerts/a1/ack", ack, map[string]string{"Sec-Fetch-Site": "same-origin"}, ck); r.StatusCode != 200 || fa.acked["a1"] != "王五" {
		t.Errorf("same-origin ack by cookie = %d", r.StatusCode)
	}
	// The cookie is an opaque session, not the token: the token itself
	// as a cookie (what the cookie used to be) is no session.
	if strings.Contains(ck.Value, tokens[2].Token) {
		t.Fatalf("the session cookie carries the token: %q", ck.Value)
	}
	if r := do("GET", "/api/v1/kpis", "", nil, &http.Cookie{Name: SessionCookie, Value: tokens[2].Token}); r.StatusCode != 401 {
		t.Errorf("the bearer token as a cookie = %d, want 401", r.StatusCode)
	}
	// The cookie gives its token's role, no more.
	r = do("POST", "/api/v1/session", `{"token":"`+tokens[0].Token+`"}`, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if r.StatusCode != 200 || len(r.Cookies()) != 1 {
		t.Fatalf("viewer sign in = %d", r.StatusCode)
	}
	viewer := r.Cookies()[0]
	if r := do("POST", "/api/v1/alerts/a1/ack", ack, map[string]string{"Sec-Fetch-Site": "same-origin"}, viewer); r.StatusCode != 403 {
		t.Errorf("ack with a viewer cookie = %d, want 403", r.StatusCode)
	}
	if r := do("GET", "/api/v1/kpis", "", nil, &http.Cookie{Name: SessionCookie, Value: "stale-token-0123456789"}); r.StatusCode != 401 {
		t.Errorf("a cookie with an unknown token = %d, want 401", r.StatusCode)
	}
	r = do("DELETE", "/api/v1/session", "", nil, ck)
	if r.StatusCode != 204 || len(r.Cookies()) != 1 || r.Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out = %d, cookies %v", r.StatusCode, r.Cookies())
	}
	// Signed out means revoked: the old cookie, replayed, is refused.
	if r := do("GET", "/api/v1/kpis", "", nil, ck); r.StatusCode != 401 {
		t.Errorf("a signed-out session = %d, want 401", r.StatusCode)
	}
}

// TestSessionExpiresAndRotates: a session ends at its expiry, and with a
// change of the configured tokens.
func TestSessionExpiresAndRotates(t *testing.T) {
	now := time.Now()
	a := newAuthenticator(tokens)
	v := a.sessions.issue(tokens[1].Token, now.Add(time.Hour))
	fp, _, _, ok := a.sessions.open(v, now)
	if tok, found := a.tokenFor(fp); !ok || !found || tok.Name != tokens[1].Name {
		t.Fatalf("a fresh session: %v %v %+v", ok, found, tok)
	}
	if _, _, _, ok := a.sessions.open(v, now.Add(time.Hour)); ok {
		t.Error("a session past its expiry was accepted")
	}
	rotated := newAuthenticator(append(slices.Clone(tokens[:3]), Token{Token: "admin-token-rotated-0123", Role: RoleAdmin, Name: "root"}))
	if _, _, _, ok := rotated.sessions.open(v, now); ok {
		t.Error("a session outlived a change of the tokens")
	}
	tampered := []byte(v)
	tampered[3] ^= 1
	if _, _, _, ok := a.sessions.open(string(tampered), now); ok {
		t.Error("a tampered session was accepted")
	}
}
