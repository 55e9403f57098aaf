package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Check is one readiness probe (e.g. "kafka", "clickhouse"). It returns nil
// when the dependency answers.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Deps are what the server needs from the rest of the product.
type Deps struct {
	// Ready lists the dependencies /readyz probes.
	Ready []Check
	// Metrics serves /metrics (a promhttp handler).
	Metrics http.Handler
}

// Server is the gin application.
type Server struct {
	engine *gin.Engine
	logger *slog.Logger
	deps   Deps
}

// New builds the router.
func New(deps Deps, logger *slog.Logger) (*Server, error) {
	if deps.Metrics == nil {
		return nil, errors.New("api: a metrics handler is required")
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery())
	s := &Server{engine: e, logger: logger.With("component", "api"), deps: deps}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(deps.Metrics))
	e.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "not_found", "no such endpoint: "+c.Request.URL.Path)
	})
	return s, nil
}

// Handler returns the server as an http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

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

// writeError answers with the error shape of the API contract.
func writeError(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"code": code, "message": message}})
}
