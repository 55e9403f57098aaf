package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

const hostile = `</script><img src=x onerror=alert(1)>`

func newEngine(t *testing.T, deps Deps) *gin.Engine {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := Mount(r, deps); err != nil {
		t.Fatal(err)
	}
	return r
}

func get(t *testing.T, h http.Handler, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// pageConfigOf extracts and decodes the JSON the page script reads.
func pageConfigOf(t *testing.T, body string) pageConfig {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="cockpit-config">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no cockpit-config script in the page")
	}
	var cfg pageConfig
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, m[1])
	}
	return cfg
}

func TestPagesRender(t *testing.T) {
	r := newEngine(t, Deps{})
	for _, tc := range []struct {
		path   string
		charts []string
		ids    []string
	}{
		{"/wall", []string{ChartWallTimes, ChartWallRates, ChartWallRegions}, []string{`id="asof"`, `id="banner"`, `id="tile-first_response_seconds"`, `id="tile-waiting_for_human"`}},
		{"/quality", []string{ChartQuality}, []string{`id="filters"`, `id="breakdown-table"`, `id="conversations"`, `id="timeline"`, `id="export"`}},
		{"/alerts", nil, []string{`id="firing"`, `id="past"`, `id="silences"`, `id="silence-form"`}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, body := get(t, r, tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			for _, id := range tc.charts {
				if !strings.Contains(body, `id="`+id+`"`) {
					t.Errorf("chart %s missing", id)
				}
			}
			for _, s := range tc.ids {
				if !strings.Contains(body, s) {
					t.Errorf("%s missing", s)
				}
			}
			cfg := pageConfigOf(t, body)
			if len(cfg.Charts) != len(tc.charts) {
				t.Errorf("config has %d charts, want %d", len(cfg.Charts), len(tc.charts))
			}
			for i, c := range cfg.Charts {
				if c.ID != tc.charts[i] || c.Option["series"] == nil {
					t.Errorf("chart %d: id %q, option %v", i, c.ID, c.Option)
				}
			}
			if !strings.Contains(body, `<script src="/assets/echarts.min.js">`) {
				t.Error("echarts is not loaded from /assets/")
			}
			// Fully offline: no absolute URL anywhere in the page.
			if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(body); m != "" {
				t.Errorf("page references an external URL: %q", m)
			}
			if strings.Contains(body, "go-echarts.github.io") || strings.Contains(body, "cdn") {
				t.Error("page mentions a CDN")
			}
			if res.Header.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
}

func TestRootRedirectsToWall(t *testing.T) {
	res, _ := get(t, newEngine(t, Deps{}), "/", nil)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/wall" {
		t.Fatalf("status %d, location %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestLanguage(t *testing.T) {
	r := newEngine(t, Deps{})
	for _, tc := range []struct {
		name, target, accept, lang, want, notWant string
	}{
		{"default is Chinese", "/wall", "", LangZH, "首次响应时长", "First response time"},
		{"query en", "/wall?lang=en", "", LangEN, "First response time", "首次响应时长"},
		{"query zh beats header", "/wall?lang=zh-CN", "en-US,en;q=0.9", LangZH, "服务水平", "Service level"},
		{"header en", "/wall", "en-GB,en;q=0.9", LangEN, "Service level", "服务水平"},
		{"header by quality", "/alerts", "fr;q=1,zh-CN;q=0.4,en;q=0.8", LangEN, "Firing alerts", "当前告警"},
		{"header zh-TW", "/quality", "zh-TW", LangZH, "质量分析", "Quality analysis"},
		{"unknown falls back", "/quality?lang=de", "de-DE", LangZH, "质量分析", "Quality analysis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := get(t, r, tc.target, map[string]string{"Accept-Language": tc.accept})
			if got := res.Header.Get("Content-Language"); got != tc.lang {
				t.Errorf("Content-Language %q, want %q", got, tc.lang)
			}
			if !strings.Contains(body, `<html lang="`+tc.lang+`">`) {
				t.Errorf("html lang is not %s", tc.lang)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("page lacks %q", tc.want)
			}
			if strings.Contains(body, tc.notWant) {
				t.Errorf("page has %q of the other language", tc.notWant)
			}
		})
	}
}

func TestHostileQueryIsEscaped(t *testing.T) {
	r := newEngine(t, Deps{})
	q := "region=" + urlEscape(hostile) + "&alert=" + urlEscape(hostile) + "&from=" + urlEscape(`"><svg onload=alert(2)>`)
	_, body := get(t, r, "/quality?"+q, nil)
	for _, bad := range []string{"<img", "</script><", "<svg", "onerror=alert(1)>"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	cfg := pageConfigOf(t, body)
	if cfg.Query["region"] != hostile || cfg.Query["alert"] != hostile {
		t.Errorf("the query does not survive escaping: %q", cfg.Query)
	}
	// The config is the only script with content, and it is JSON.
	if n := strings.Count(body, "<script"); n != 4 {
		t.Errorf("%d script tags, want 4", n)
	}
}

func TestHostileRuleTextIsEscaped(t *testing.T) {
	v := 10.0
	rs := &rules.RuleSet{Rules: []rules.Rule{{Name: "x", Kind: rules.KindThreshold, Metric: kpi.MetricWaitingForHuman,
		Op: ">", Value: &v, Severity: "warning", Summary: hostile}}}
	_, body := get(t, newEngine(t, Deps{Rules: func() *rules.RuleSet { return rs }}), "/wall", nil)
	if strings.Contains(body, "<img") {
		t.Error("hostile text reached the page unescaped")
	}
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "=", "%3D", "<", "%3C", ">", "%3E", " ", "%20", "\"", "%22", "#", "%23", "+", "%2B", "/", "%2F")
	return r.Replace(s)
}

func TestTileThresholds(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rs := &rules.RuleSet{Rules: []rules.Rule{
		{Name: "frt_info", Kind: rules.KindThreshold, Metric: kpi.MetricFirstResponseSeconds, Stat: "p90", Op: ">", Value: f(60), Severity: "info"},
		{Name: "frt_crit", Kind: rules.KindThreshold, Metric: kpi.MetricFirstResponseSeconds, Stat: "p90", Op: ">", Value: f(45), Severity: "critical"},
		{Name: "frt_avg", Kind: rules.KindThreshold, Metric: kpi.MetricFirstResponseSeconds, Stat: "avg", Op: ">", Value: f(5), Severity: "critical"},
		{Name: "sl", Kind: rules.KindThreshold, Metric: kpi.MetricServiceLevel, Op: "<", Value: f(0.95), Severity: "critical"},
		{Name: "trend", Kind: rules.KindTrend, Metric: kpi.MetricResolutionRate, Severity: "warning"},
		{Name: "eq", Kind: rules.KindThreshold, Metric: kpi.MetricTransferRate, Op: "==", Value: f(0), Severity: "warning"},
		{Name: "abandon", Kind: rules.KindThreshold, Metric: kpi.MetricAbandonRate, Op: ">=", Value: f(0.1), Severity: "warning"},
		{Name: "csat", Kind: rules.KindThreshold, Metric: kpi.MetricCSATAvg, Op: "<=", Value: f(3), Severity: "warning"},
	}}
	byMetric := map[string]Tile{}
	for _, tl := range tiles(LangEN, rs, 15*time.Minute) {
		byMetric[tl.Metric] = tl
	}
	for _, tc := range []struct {
		metric string
		want   *Threshold
	}{
		{kpi.MetricFirstResponseSeconds, &Threshold{Op: ">", Amber: 36, Red: 45, Rule: "frt_crit"}},
		{kpi.MetricServiceLevel, &Threshold{Op: "<", Amber: 1, Red: 0.95, Rule: "sl"}},
		{kpi.MetricResolutionRate, &Threshold{Op: "<", Amber: 0.77, Red: 0.7}}, // trend rules give no threshold
		{kpi.MetricTransferRate, &Threshold{Op: ">", Amber: 0.28, Red: 0.35}},
		{kpi.MetricComplaints, nil},
		// The rule's comparison is kept: at exactly the limit, >= and <= are red.
		{kpi.MetricAbandonRate, &Threshold{Op: ">=", Amber: 0.08, Red: 0.1, Rule: "abandon"}},
		{kpi.MetricCSATAvg, &Threshold{Op: "<=", Amber: 3.3, Red: 3, Rule: "csat"}},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			got := byMetric[tc.metric].Threshold
			if (got == nil) != (tc.want == nil) || got != nil && (got.Op != tc.want.Op || got.Rule != tc.want.Rule ||
				!near(got.Amber, tc.want.Amber) || !near(got.Red, tc.want.Red)) {
				t.Errorf("threshold %+v, want %+v", got, tc.want)
			}
		})
	}
	if len(byMetric) != 10 {
		t.Errorf("%d tiles, want the 10 of SPEC §8", len(byMetric))
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestDefaultRulesColourTiles(t *testing.T) {
	rs, err := rules.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tiles(LangZH, rs, 2*time.Hour) {
		if tl.Metric == kpi.MetricHumanWaitSeconds && (tl.Threshold == nil || tl.Threshold.Red != 60 || tl.Threshold.Rule != "human_wait_slow") {
			t.Errorf("human wait tile threshold %+v, want the human_wait_slow rule's 60 s", tl.Threshold)
		}
		// The tiles name the stream's window; the gauges say "now".
		want := "近2小时"
		if tl.Metric == kpi.MetricActiveConversations || tl.Metric == kpi.MetricWaitingForHuman {
			want = "当前"
		}
		if tl.Window != want {
			t.Errorf("tile %s window %q, want %q", tl.Metric, tl.Window, want)
		}
	}
	if got := windowLabel(LangEN, 15*time.Minute); got != "last 15 min" {
		t.Errorf("15m = %q", got)
	}
	if got := windowLabel(LangEN, 90*time.Minute); got != "last 90 min" {
		t.Errorf("90m = %q", got)
	}
}

func TestAssets(t *testing.T) {
	r := newEngine(t, Deps{})
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/assets/echarts.min.js", "text/javascript; charset=utf-8", "echarts"},
		{"/assets/echarts.LICENSE", "", "Apache License"},
		{"/assets/wall.js", "text/javascript; charset=utf-8", "EventSource"},
		{"/assets/common.js", "text/javascript; charset=utf-8", "textContent"},
		{"/assets/style.css", "text/css; charset=utf-8", ".tile"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, body := get(t, r, tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if tc.ctype != "" && res.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("content type %q, want %q", res.Header.Get("Content-Type"), tc.ctype)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
		})
	}
	for _, p := range []string{"/assets/", "/assets/nope.js", "/assets/../dashboard.go"} {
		if res, _ := get(t, r, p, nil); res.StatusCode == http.StatusOK {
			t.Errorf("%s: status 200", p)
		}
	}
}

// The page scripts must not put data into innerHTML.
func TestScriptsAvoidInnerHTML(t *testing.T) {
	for _, f := range []string{"common.js", "wall.js", "quality.js", "alerts.js"} {
		b, err := assetFS.ReadFile("assets/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
	}
}
