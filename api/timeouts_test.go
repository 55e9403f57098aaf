package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveLimited serves s with short limits on a real listener.
func serveLimited(t *testing.T, s *Server, l HTTPLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := NewHTTPServer(ln, s.Handler(), l, slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(lln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes conn within d.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowClientsCut: a body that trickles in, headers that never end and
// an idle keep-alive connection are closed by the server; they stayed
// open for 100 s and more before, holding descriptors.
func TestSlowClientsCut(t *testing.T) {
	s, _, _, _, _ := newFakeServer(t)
	limits := HTTPLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MaxConns: 8}
	addr := serveLimited(t, s, limits)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	slowBody := dial()
	_, _ = io.WriteString(slowBody, "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+tokens[3].Token+
		"\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n[")
	done := make(chan bool, 1)
	go func() { done <- closedWithin(slowBody, 5*time.Second) }()
	for i := 0; i < 8; i++ {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(slowBody, " ")
	}
	if !<-done {
		t.Error("a trickling body was not cut")
	}

	slowHeaders := dial()
	io.WriteString(slowHeaders, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	if !closedWithin(slowHeaders, 5*time.Second) {
		t.Error("unfinished headers were not cut")
	}

	idle := dial()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if !closedWithin(idle, 5*time.Second) {
		t.Error("an idle keep-alive connection was not closed")
	}
}

// TestStreamOutlivesWriteTimeout: the server's write timeout does not cut
// the live stream, which sets a deadline per write itself.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	s, err := New(Deps{Config: Config{StreamTick: 100 * time.Millisecond},
		Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}), KPIs: &countingKPIs{}},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.hub.Run(ctx)
	addr := serveLimited(t, s, HTTPLimits{WriteTimeout: 300 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	start := time.Now()
	kpis := 0
	for sc.Scan() && time.Since(start) < 1500*time.Millisecond {
		if strings.HasPrefix(sc.Text(), "event: kpi") {
			kpis++
		}
	}
	if elapsed := time.Since(start); elapsed < 1500*time.Millisecond || kpis < 5 {
		t.Fatalf("the stream ended after %v with %d snapshots (err %v)", elapsed, kpis, sc.Err())
	}
}
