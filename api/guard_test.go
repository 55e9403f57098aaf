package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func send(t *testing.T, method, u string, hdr http.Header, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(`{"matchers":[{"name":"rule","value":".*","regex":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCrossSiteChangesRefused: with no tokens configured, a page on
// another site can no longer create a silence or post events through the
// browser of someone on this machine; the cockpit's own pages and clients
// without browser headers still reach the handlers.
func TestCrossSiteChangesRefused(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/api/v1/silences", "/api/v1/events", "/api/v1/alerts/x/ack"} {
		for _, hdr := range []http.Header{
			{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}},
			{"Origin": {"null"}},
			{"Sec-Fetch-Site": {"cross-site"}},
			{"Sec-Fetch-Site": {"same-site"}},
			// Same host, other scheme: not this origin.
			{"Origin": {"https://" + strings.TrimPrefix(ts.URL, "http://")}},
		} {
			resp, body := send(t, http.MethodPost, ts.URL+path, hdr, "")
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross_site") {
				t.Errorf("POST %s %v = %d %s", path, hdr, resp.StatusCode, body)
			}
		}
		for _, hdr := range []http.Header{{"Origin": {ts.URL}}, {"Sec-Fetch-Site": {"same-origin"}}, {}} {
			if resp, body := send(t, http.MethodPost, ts.URL+path, hdr, ""); resp.StatusCode == http.StatusForbidden {
				t.Errorf("own POST %s %v refused: %s", path, hdr, body)
			}
		}
	}
	resp, body := send(t, http.MethodDelete, ts.URL+"/api/v1/silences/x", http.Header{"Sec-Fetch-Site": {"cross-site"}}, "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site DELETE = %d %s", resp.StatusCode, body)
	}
}

// TestUnknownHostRefused: DNS rebinding (another name resolving to this
// machine) reads nothing; the names the server listens as still work.
func TestUnknownHostRefused(t *testing.T) {
	ts := newTestServer(t)
	for _, h := range []string{"evil.example", "evil.example:80", "127.0.0.1.evil.example"} {
		resp, body := send(t, http.MethodGet, ts.URL+"/api/v1/session", http.Header{}, h)
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "api.allowed_hosts") {
			t.Errorf("Host %s = %d %s", h, resp.StatusCode, body)
		}
	}
	for _, h := range []string{"", "localhost:8080", "LOCALHOST", "[::1]:8080"} {
		resp, body := send(t, http.MethodGet, ts.URL+"/api/v1/session", http.Header{}, h)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %q = %d %s", h, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("API answer headers: %v", resp.Header)
		}
	}
	if resp, _ := send(t, http.MethodGet, ts.URL+"/healthz", http.Header{}, "10.1.2.3:8080"); resp.StatusCode != http.StatusOK {
		t.Errorf("liveness probe by IP = %d", resp.StatusCode)
	}

	// Configured names: the wiring's and api.allowed_hosts.
	s, err := New(Deps{Config: Config{AllowedHosts: []string{"cockpit.example.com"}}, Hosts: []string{"wall.local:8080", "0.0.0.0:8080"},
		Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts2 := httptest.NewServer(s.Handler())
	defer ts2.Close()
	for h, want := range map[string]int{"cockpit.example.com": 200, "wall.local:9999": 200, "evil.example": 421, "0.0.0.0": 421} {
		if resp, body := send(t, http.MethodGet, ts2.URL+"/api/v1/session", http.Header{}, h); resp.StatusCode != want {
			t.Errorf("Host %s = %d %s, want %d", h, resp.StatusCode, body, want)
		}
	}
}

// TestSessionOverTLS: served over TLS, the session cookie is Secure and
// only the https origin counts as the server's own.
func TestSessionOverTLS(t *testing.T) {
	s, err := New(Deps{Config: Config{Tokens: tokens}, Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(s.Handler())
	defer ts.Close()
	client := ts.Client()
	post := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/session", strings.NewReader(`{"token":"`+tokens[0].Token+`"}`))
		req.Header.Set("Origin", origin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	host := strings.TrimPrefix(ts.URL, "https://")
	if resp := post("http://" + host); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in from the http origin of an https server = %d, want 403", resp.StatusCode)
	}
	resp := post(ts.URL)
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Fatalf("sign-in over TLS = %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}
