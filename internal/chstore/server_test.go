package chstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

func TestRunServesAndShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var notice bytes.Buffer
	go func() {
		// The same data directory as the shared engine: a process has one
		// engine, and a second Open on its directory shares it.
		done <- Run(ctx, Config{Listen: addr, Engine: chdb.Config{LibPath: testLib, DataDir: testDir, Connections: 1}, Notice: &notice}, nil)
	}()
	deadline := time.Now().Add(30 * time.Second)
	var creds Credentials
	for {
		resp, err := http.Get("http://" + addr + "/?query=SELECT+42")
		if err == nil {
			// First start: the accounts were created and told once.
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("without credentials: %d", resp.StatusCode)
			}
			if creds, err = ReadCredentials(filepath.Join(testDir, CredentialsFile)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(notice.String(), creds.ReadOnlyPassword) || !strings.Contains(notice.String(), CredentialsFile) {
				t.Fatalf("notice: %q", notice.String())
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/?query=SELECT+42", nil)
			req.SetBasicAuth(creds.User, creds.Password)
			if resp, err = http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "42\n" {
				t.Fatalf("got %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The shared engine still works.
	if _, err := testEngine.Query(context.Background(), []byte("SELECT 1"), "TSV", nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg Config
		ok  bool
	}{
		{Config{Engine: chdb.Config{DataDir: "x"}}, true},
		{Config{}, false},
		{Config{Listen: "nope", Engine: chdb.Config{DataDir: "x"}}, false},
		{Config{ShutdownTimeout: -1, Engine: chdb.Config{DataDir: "x"}}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v", tt.cfg, err)
		}
	}
}

// TestSlowRequestsCut: an insert body that trickles in and an idle
// keep-alive connection are closed by the endpoint's server; the body was
// read for as long as the client liked before.
func TestSlowRequestsCut(t *testing.T) {
	h, err := NewHandler(context.Background(), &recordingEngine{}, Options{Credentials: testCreds}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := NewServer(ln, h, Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		IdleTimeout: 300 * time.Millisecond, MaxConns: 4}, slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(lln) }()
	defer srv.Close()
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = io.WriteString(slow, "POST /?query=INSERT+INTO+t+FORMAT+Native HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "+
		base64.StdEncoding.EncodeToString([]byte(testCreds.User+":"+testCreds.Password))+"\r\nContent-Length: 1048576\r\n\r\n")
	done := make(chan bool, 1)
	go func() { done <- closed(slow) }()
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		_, _ = slow.Write([]byte{0})
	}
	if !<-done {
		t.Error("a trickling body was not cut")
	}

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ping: %v %v", resp, err)
	}
	resp.Body.Close()
	if !closed(idle) {
		t.Error("an idle keep-alive connection was not closed")
	}
}
