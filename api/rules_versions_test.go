package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// fakeVersions stands in for the wiring's rule book.
type fakeVersions struct {
	mu       sync.Mutex
	fromFile bool
	versions []rules.RuleVersion
	rules    *fakeRules
}

func (f *fakeVersions) Writable() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fromFile {
		return rules.ErrRulesFromFile
	}
	return nil
}

func (f *fakeVersions) Replace(_ context.Context, src []byte, rs *rules.RuleSet, by string) (rules.RuleVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fromFile {
		return rules.RuleVersion{}, rules.ErrRulesFromFile
	}
	v := rules.RuleVersion{Version: uint64(len(f.versions) + 1), Source: "api", Author: by, CreatedAt: time.Now(), Rules: len(rs.Rules), Diff: "+1: x\n"}
	f.versions = append([]rules.RuleVersion{v}, f.versions...)
	f.rules.SetRules(rs)
	return v, nil
}

func (f *fakeVersions) History(_ context.Context, limit int) ([]rules.RuleVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.versions[:min(limit, len(f.versions))], nil
}

func TestRuleVersionsAndHTTPMetrics(t *testing.T) {
	rs, err := rules.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeRules{rs: rs}
	fv := &fakeVersions{rules: fr, fromFile: true}
	reg := prometheus.NewRegistry()
	s, err := New(Deps{Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Rules: fr, RuleVersions: fv, Registerer: reg},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	put := "rules:\n  - {name: only_rule, kind: threshold, metric: complaints, window: 5m, op: \">\", value: 3, severity: critical}\n"
	code, body := do("PUT", "/api/v1/rules", put)
	if code != http.StatusConflict || !strings.Contains(body, `"code":"conflict"`) || !strings.Contains(body, "rules.file") {
		t.Errorf("PUT with rules.file = %d %s, want 409 naming rules.file", code, body)
	}
	if len(fr.Rules().Rules) != len(rs.Rules) {
		t.Error("a refused PUT changed the rules")
	}
	if code, body := do("PUT", "/api/v1/rules", "not: [valid"); code != http.StatusConflict {
		t.Errorf("PUT of a bad rule set with rules.file = %d %s, want 409 first", code, body)
	}
	fv.mu.Lock()
	fv.fromFile = false
	fv.mu.Unlock()
	if code, body := do("PUT", "/api/v1/rules", put); code != http.StatusOK || !strings.Contains(body, `"version":1`) {
		t.Errorf("PUT = %d %s, want 200 with version 1", code, body)
	}
	code, body = do("GET", "/api/v1/rules/history", "")
	var hist struct {
		Versions []rules.RuleVersion `json:"versions"`
	}
	if err := json.Unmarshal([]byte(body), &hist); code != http.StatusOK || err != nil || len(hist.Versions) != 1 || hist.Versions[0].Rules != 1 || hist.Versions[0].Diff == "" {
		t.Errorf("GET /rules/history = %d %s", code, body)
	}
	if code, body := do("GET", "/api/v1/rules/history?limit=0", ""); code != http.StatusBadRequest || !strings.Contains(body, "limit") {
		t.Errorf("history with limit=0 = %d %s, want 400 naming limit", code, body)
	}
	_, metrics := do("GET", "/metrics", "")
	for _, want := range []string{
		`cockpit_http_request_duration_seconds_count{code="409",method="PUT",route="/api/v1/rules"} 2`,
		`cockpit_http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/rules/history"} 1`,
		`cockpit_stream_viewers 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
