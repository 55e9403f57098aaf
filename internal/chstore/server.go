package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

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
	return serve(ctx, cfg.Listen, h, cfg.ShutdownTimeout, logger)
}

// Serve serves handler on addr until ctx ends, then shuts down gracefully:
// it stops accepting, and waits up to 30s for running requests.
func Serve(ctx context.Context, addr string, handler http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return serve(ctx, addr, handler, defaultShutdownTimeout, logger)
}

func serve(ctx context.Context, addr string, handler http.Handler, grace time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No read or write timeout: a batch insert body or a long query may
		// take minutes; max_execution_time bounds queries instead.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
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
