package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// routes registers the API contract's endpoints with the role each needs.
func (s *Server) routes() {
	v1 := s.engine.Group("/api/v1")
	read, export, supervise, admin := s.require(RoleViewer), s.require(RoleAnalyst), s.require(RoleSupervisor), s.require(RoleAdmin)
	small := s.limitBody(s.cfg.MaxBodyBytes)
	v1.Use(checkQuery)

	v1.GET("/kpis", read, s.kpis)
	v1.GET("/kpis/by/:dimension", read, s.kpisBy)
	v1.GET("/timeseries", read, s.timeseries)
	v1.GET("/conversations", read, s.conversations)
	v1.GET("/conversations/:id", read, s.conversation)
	v1.GET("/export.csv", export, s.exportCSV)
	v1.GET("/alerts", read, s.listAlerts)
	v1.POST("/alerts/:id/ack", supervise, small, s.ackAlert)
	v1.GET("/silences", read, s.listSilences)
	v1.POST("/silences", supervise, small, s.addSilence)
	v1.DELETE("/silences/:id", supervise, s.expireSilence)
	v1.GET("/rules", read, s.getRules)
	v1.PUT("/rules", admin, small, s.putRules)
	v1.GET("/rules/history", read, s.ruleHistory)
	v1.POST("/rules/backtest", admin, small, s.backtest)
	v1.GET("/stream", read, s.stream)
	v1.POST("/events", admin, s.limitBody(s.cfg.MaxEventsBodyBytes), s.postEvents)
	v1.GET("/session", s.getSession)
	v1.POST("/session", small, s.signIn)
	v1.DELETE("/session", s.signOut)
	s.engine.GET("/api/openapi.json", s.openAPI)
}

// limitBody bounds the request body; reading past n fails with an
// *http.MaxBytesError, which fail answers 413.
func (s *Server) limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			s.fail(c, &http.MaxBytesError{Limit: n})
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// checkQuery refuses a request whose query string cannot be parsed whole
// (parseQuery), so no endpoint answers for a query it only half read.
func checkQuery(c *gin.Context) {
	if _, err := parseQuery(c.Request.URL.RawQuery); err != nil {
		writeError(c, err.Status, err.Code, err.Message)
		return
	}
	c.Next()
}
