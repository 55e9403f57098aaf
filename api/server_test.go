package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func newTestServer(t *testing.T, checks ...Check) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cockpit_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s, err := New(Deps{Ready: checks, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHealthAndMetrics(t *testing.T) {
	ts := newTestServer(t)
	if code, body := get(t, ts.URL+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/metrics"); code != 200 || !strings.Contains(body, "cockpit_test_total 3") {
		t.Fatalf("/metrics = %d %s", code, body)
	}
	code, body := get(t, ts.URL+"/nope")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code != 404 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_found" {
		t.Fatalf("unknown path = %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	up := Check{Name: "kafka", Fn: func(context.Context) error { return nil }}
	down := Check{Name: "clickhouse", Fn: func(context.Context) error { return errors.New("connection refused") }}
	ts := newTestServer(t, up)
	if code, body := get(t, ts.URL+"/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("ready = %d %s", code, body)
	}
	ts = newTestServer(t, up, down)
	code, body := get(t, ts.URL+"/readyz")
	if code != 503 || !strings.Contains(body, "connection refused") || !strings.Contains(body, `"kafka":"ok"`) {
		t.Fatalf("not ready = %d %s", code, body)
	}
}
