// Package chtest gives integration tests the real ClickHouse engine behind
// the embedded HTTP endpoint, exactly as the product uses it: one engine
// per test process (the engine allows no more), one fresh database per
// test, migrated with the product's DDL, reached through clickhouse-go.
//
// A test binary that uses it must call Main from its TestMain, which
// removes the engine's data directory at the end.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chclient"
	"github.com/cockpit-cs/cockpit/internal/chdb"
	"github.com/cockpit-cs/cockpit/internal/chstore"
	"github.com/cockpit-cs/cockpit/schemas"
)

// Store is the process-wide engine and its HTTP endpoint.
type Store struct {
	// URL is the endpoint's base URL (http://127.0.0.1:port).
	URL    string
	engine *chdb.Engine
	srv    *httptest.Server
	dir    string
	down   atomic.Bool
	// statements counts the requests that reached the engine (not pings).
	statements atomic.Int64
	// creds are the endpoint's accounts; Conn and DSN use the product's.
	creds chstore.Credentials
}

var (
	once    sync.Once
	shared  *Store
	openErr error
)

// Main runs the tests, then closes the engine and removes its files.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.srv.Close()
		_ = shared.engine.Close()
		_ = os.RemoveAll(shared.dir)
	}
	return code
}

// Start returns the shared store, opening it on first use. The engine
// library is fetched if it is not cached yet (see chdb.Ensure).
func Start(t testing.TB) *Store {
	t.Helper()
	once.Do(func() {
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		lib, err := chdb.Ensure(ctx, logger)
		if err != nil {
			openErr = fmt.Errorf("cannot get the ClickHouse engine: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "cockpit-chtest-")
		if err != nil {
			openErr = err
			return
		}
		engine, err := chdb.Open(chdb.Config{LibPath: lib, DataDir: dir}, logger)
		if err != nil {
			openErr = fmt.Errorf("cannot open the ClickHouse engine: %w", err)
			return
		}
		creds, _, err := chstore.LoadOrCreateCredentials(dir)
		if err != nil {
			openErr = err
			return
		}
		h, err := chstore.NewHandler(ctx, engine, chstore.Options{Credentials: creds}, logger)
		if err != nil {
			openErr = err
			return
		}
		s := &Store{engine: engine, dir: dir, creds: creds}
		s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.down.Load() {
				// An outage as a client sees it: the connection drops.
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						_ = conn.Close()
						return
					}
				}
				http.Error(w, "store down", http.StatusServiceUnavailable)
				return
			}
			if r.URL.Path != "/ping" {
				s.statements.Add(1)
			}
			h.ServeHTTP(w, r)
		}))
		s.URL = s.srv.URL
		shared = s
	})
	if openErr != nil {
		t.Fatal(openErr)
	}
	return shared
}

// Statements is the number of requests the endpoint has passed to the
// engine so far (queries and inserts, not pings), over every database:
// benchmarks count the store work of one component by the difference
// across a quiet interval.
func (s *Store) Statements() int64 { return s.statements.Load() }

// SetDown makes every request fail (true) or be served again (false).
func (s *Store) SetDown(down bool) { s.down.Store(down) }

// Database creates a fresh database with the product's schema and returns
// its name and a clickhouse-go connection bound to it. Both are cleaned up
// with the test.
func (s *Store) Database(t testing.TB) (string, driver.Conn) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	admin := s.Conn(t, "")
	ctx := context.Background()
	if err := schemas.Migrate(ctx, admin, schemas.StoreConfig{Database: name}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name, s.Conn(t, name)
}

// Conn opens a clickhouse-go HTTP connection to database ("" = default).
func (s *Store) Conn(t testing.TB, database string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{s.srv.Listener.Addr().String()},
		Protocol:    clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: database, Username: s.creds.User, Password: s.creds.Password},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// The product's client, as the product opens it.
	return chclient.Wrap(conn)
}

// DSN is the clickhouse-go DSN of database on this store, with the
// product's credentials.
func (s *Store) DSN(database string) string {
	return s.creds.DSN(s.srv.Listener.Addr().String(), database)
}

// Credentials are the endpoint's accounts.
func (s *Store) Credentials() chstore.Credentials { return s.creds }
