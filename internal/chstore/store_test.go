package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// The engine, the handler and an HTTP server over them are shared by every
// test of this process: the library allows one engine per process.
var (
	testEngine *chdb.Engine
	testServer *httptest.Server
	testDir    string
	testLib    string
	// testCreds are the handler's accounts; open authenticates as the
	// product's.
	testCreds = Credentials{User: "cockpit", Password: "test-secret", ReadOnlyUser: "reader", ReadOnlyPassword: "test-read"}
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	lib, err := chdb.Ensure(ctx, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chstore tests need the engine:", err)
		return 1
	}
	testLib = lib
	dir, err := os.MkdirTemp("", "chstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDir = dir
	testEngine, err = chdb.Open(chdb.Config{LibPath: lib, DataDir: dir, Connections: 4}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testEngine.Close()
	h, err := NewHandler(ctx, testEngine, Options{MaxRequestBytes: 256 << 20, Credentials: testCreds}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testServer = httptest.NewServer(h)
	defer testServer.Close()
	return m.Run()
}

// open returns a clickhouse-go connection over HTTP to the test server.
func open(tb testing.TB, mod func(*clickhouse.Options)) driver.Conn {
	tb.Helper()
	u, err := url.Parse(testServer.URL)
	if err != nil {
		tb.Fatal(err)
	}
	opts := &clickhouse.Options{
		Addr:        []string{u.Host},
		Protocol:    clickhouse.HTTP,
		Auth:        clickhouse.Auth{Username: testCreds.User, Password: testCreds.Password},
		DialTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(opts)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

func exec(t testing.TB, conn driver.Conn, q string, args ...any) {
	t.Helper()
	if err := conn.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// exceptionCode returns the ClickHouse code carried by err, or -1.
func exceptionCode(err error) int {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return int(ex.Code)
	}
	return -1
}

// uniqueName gives each test its own table.
func uniqueName(t testing.TB) string {
	r := strings.NewReplacer("/", "_", " ", "_", "-", "_", "#", "_")
	return strings.ToLower(r.Replace(t.Name())) + fmt.Sprintf("_%d", time.Now().UnixNano()%1e6)
}
