package chstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/net/netutil"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// Config configures Run, i.e. `cockpit store`.
type Config struct {
	// Listen is the address of the HTTP interface. Default: 127.0.0.1:8123.
	Listen string
	// Engine configures the embedded engine; Engine.DataDir is required.
	// With Engine.LibPath empty the library is located, and fetched into the
	// user cache if missing (166 MB download on first use).
	Engine chdb.Config
	// Handler tunes the HTTP interface.
	Handler Options
	// ShutdownTimeout bounds the wait for running requests on shutdown.
	// Default: 30s.
	ShutdownTimeout time.Duration
	// Limits bound each connection; zero fields take the defaults.
	Limits Limits
	// Notice receives, once, the accounts created on first start (the
	// credentials file's path and how to use it); nil: not printed.
	Notice io.Writer
	// Credentials, when set, are used as they are; otherwise they are read
	// from, or created in, Engine.DataDir (see LoadOrCreateCredentials).
	Credentials Credentials
}

// Limits are the HTTP server's time and connection limits.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default: 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: an insert
	// body that trickles in is cut there. Default: 2m.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its answer, i.e. a query's run time. Default: 10m.
	WriteTimeout time.Duration
	// IdleTimeout closes an idle keep-alive connection. Default: 2m,
	// longer than clients keep idle connections (clickhouse-go: 90s), so
	// the server never closes one a client is about to reuse.
	IdleTimeout time.Duration
	// MaxConns caps the open connections; more wait in the listen queue.
	// Default: 256.
	MaxConns int
}

func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 2 * time.Minute
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 10 * time.Minute
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 256
	}
	return l
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if err := c.Engine.Validate(); err != nil {
		return err
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("chstore: invalid listen address %q: %w", c.Listen, err)
		}
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("chstore: negative shutdown timeout %v", c.ShutdownTimeout)
	}
	return nil
}

const (
	defaultListen          = "127.0.0.1:8123"
	defaultShutdownTimeout = 30 * time.Second
)

// Run opens the engine, serves the HTTP interface on cfg.Listen until ctx
// ends, then stops accepting, waits for running requests and closes the
// engine.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = defaultListen
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = defaultShutdownTimeout
	}
	if cfg.Engine.LibPath == "" {
		lib, err := chdb.Ensure(ctx, logger)
		if err != nil {
			return fmt.Errorf("cannot find the ClickHouse engine: %w", err)
		}
		cfg.Engine.LibPath = lib
	}
	creds, created := cfg.Credentials, false
	if creds == (Credentials{}) {
		var err error
		if creds, created, err = LoadOrCreateCredentials(cfg.Engine.DataDir); err != nil {
			return err
		}
	} else {
		created = cfg.Notice != nil
	}
	if created && cfg.Notice != nil {
		printNotice(cfg.Notice, filepath.Join(cfg.Engine.DataDir, CredentialsFile), cfg.Listen, creds)
	}
	cfg.Handler.Credentials = creds
	engine, err := chdb.Open(cfg.Engine, logger)
	if err != nil {
		return err
	}
	// The engine closes after the server has drained: Serve returns only
	// when no handler is running.
	defer engine.Close()
	h, err := NewHandler(ctx, engine, cfg.Handler, logger)
	if err != nil {
		return err
	}
	return serve(ctx, cfg.Listen, h, cfg.ShutdownTimeout, cfg.Limits, logger)
}

// printNotice tells the operator, once, where the accounts are and how to
// use them.
func printNotice(w io.Writer, path, listen string, c Credentials) {
	fmt.Fprintf(w, `
The embedded ClickHouse endpoint on %[1]s now requires credentials.
They were created in %[2]s (mode 0600) and are shown only this once:
  product account (cockpit serve):  %[3]s
  read-only account (curl, clients): user %[4]s, password %[5]s
    curl -u '%[4]s:%[5]s' 'http://%[1]s/?query=SELECT+1'

`, listen, path, c.DSN(listen, ""), c.ReadOnlyUser, c.ReadOnlyPassword)
}

// Serve serves handler on addr until ctx ends, then shuts down gracefully:
// it stops accepting, and waits up to 30s for running requests.
func Serve(ctx context.Context, addr string, handler http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return serve(ctx, addr, handler, defaultShutdownTimeout, Limits{}, logger)
}

// NewServer returns an http.Server for handler with the limits applied,
// and wraps ln so that it holds at most limits.MaxConns connections.
func NewServer(ln net.Listener, handler http.Handler, limits Limits, logger *slog.Logger) (*http.Server, net.Listener) {
	limits = limits.withDefaults()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return srv, netutil.LimitListener(ln, limits.MaxConns)
}

func serve(ctx context.Context, addr string, handler http.Handler, grace time.Duration, limits Limits, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	srv, ln := NewServer(ln, handler, limits, logger)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("chstore listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("cannot serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("chstore shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("cannot shut down cleanly: %w", err)
	}
	return nil
}
