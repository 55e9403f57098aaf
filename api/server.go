package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Check is one readiness probe (e.g. "kafka", "clickhouse"). It returns nil
// when the dependency answers.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Deps are what the server needs from the rest of the product. Only
// Metrics is required; an endpoint whose dependency is nil answers 501.
type Deps struct {
	// Config is the api section of the configuration.
	Config Config
	// Ready lists the dependencies /readyz probes.
	Ready []Check
	// Metrics serves /metrics (a promhttp handler).
	Metrics http.Handler
	// KPIs serves /kpis, /kpis/by, /timeseries and the stream.
	KPIs KPISource
	// LiveKPIs, when set, serves the stream, and /kpis and /kpis/by when
	// no from or to is given, instead of KPIs: its windows always end now
	// (kpi.KPIStore.Live).
	LiveKPIs KPISource
	// Conversations serves the drill-down and the CSV export.
	Conversations ConversationReader
	// AlertHistory serves GET /alerts.
	AlertHistory AlertHistory
	// Alerts serves acks and silences.
	Alerts AlertActions
	// Rules serves /rules and the backtest.
	Rules RuleService
	// RuleVersions, if set, stores the rule sets PUT /rules puts (else
	// they only replace this process's rules) and serves
	// /rules/history.
	RuleVersions RuleVersions
	// Producer serves POST /events.
	Producer EventProducer
	// IngestBehind, if set, is how long ago this process's ingest was
	// last caught up with its partitions (ingest.Consumer.Behind): the
	// wall's panels describe no later time than that, so while the
	// ingest catches up (a backlog, a start-up backfill, more events than
	// it keeps up with) they say how old their data is and turn stale,
	// rather than show a window that ends now with its newest events
	// missing.
	IngestBehind func(time.Time) time.Duration
	// Registerer, if set, receives the HTTP and stream metrics.
	Registerer prometheus.Registerer
	// Now is the server clock (default time.Now): the default window
	// and the validation of posted events use it.
	Now func() time.Time
	// Hosts are the names the server listens as (its listen address, its
	// external URL's host); with localhost, 127.0.0.1, ::1 and
	// Config.AllowedHosts they are the only Host headers answered.
	Hosts []string
}

// Server is the gin application.
type Server struct {
	engine *gin.Engine
	logger *slog.Logger
	deps   Deps
	cfg    Config
	lim    limits
	auth   *authenticator
	hub    *Hub
	now    func() time.Time
	// hosts are the Host names answered; anyHost turns the check off.
	hosts   map[string]bool
	anyHost bool
}

// New builds the router.
func New(deps Deps, logger *slog.Logger) (*Server, error) {
	if deps.Metrics == nil {
		return nil, errors.New("api: a metrics handler is required")
	}
	cfg := deps.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	logger = logger.With("component", "api")
	s := &Server{engine: e, logger: logger, deps: deps, cfg: cfg, now: now,
		lim: limits{maxRange: cfg.MaxRange, maxSteps: cfg.MaxSteps}, auth: newAuthenticator(cfg.Tokens)}
	s.hosts, s.anyHost = hostSet(deps.Hosts, cfg.AllowedHosts)
	streamKPIs := deps.KPIs
	if deps.LiveKPIs != nil {
		streamKPIs = deps.LiveKPIs
	}
	s.hub = newHub(streamKPIs, deps.AlertHistory, cfg, now, logger)
	s.hub.ingestBehind = deps.IngestBehind
	if deps.Registerer != nil {
		hm, err := newHTTPMetrics(deps.Registerer, s.hub)
		if err != nil {
			return nil, err
		}
		e.Use(hm.middleware)
	}
	// A panic is logged by us and answered in the contract's shape, never
	// with a stack trace.
	e.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, v any) {
		s.logger.Error("handler panicked", "method", c.Request.Method, "path", c.FullPath(), "panic", fmt.Sprint(v))
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	}))
	e.Use(s.guard())
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(deps.Metrics))
	s.routes()
	e.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "not_found", "no such endpoint: "+c.Request.URL.Path)
	})
	return s, nil
}

// Handler returns the server as an http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Hub returns the live stream's hub: the wiring runs it (Run) and feeds
// it alert changes (PublishAlerts).
func (s *Server) Hub() *Hub { return s.hub }

// Engine exposes the router so later parts (dashboards) can add routes.
func (s *Server) Engine() *gin.Engine { return s.engine }

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz probes every dependency concurrently, each within 2 seconds.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	results := make(map[string]string, len(s.deps.Ready))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chk := range s.deps.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := "ok"
			if err := chk.Fn(ctx); err != nil {
				status = "unavailable: " + err.Error()
			}
			mu.Lock()
			results[chk.Name] = status
			mu.Unlock()
		}()
	}
	wg.Wait()
	ready := true
	for _, st := range results {
		if st != "ok" {
			ready = false
		}
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
		s.logger.Warn("not ready", "checks", results)
	}
	c.JSON(code, gin.H{"ready": ready, "checks": results})
}
