package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// Error is an error the client may see: its status, code and message go
// into the response as they are. Every other error is logged and answered
// with 500 "internal error", so no SQL text or internal detail leaks.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// badRequest is a 400 with a message for the client.
func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

// notFound is a 404 with a message for the client.
func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

// errUnavailable answers an endpoint whose dependency was not wired.
var errUnavailable = &Error{Status: http.StatusNotImplemented, Code: "not_implemented", Message: "this endpoint is not enabled on this server"}

// fail answers err: the one place that maps error kinds to statuses.
func (s *Server) fail(c *gin.Context, err error) {
	var ae *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(c, ae.Status, ae.Code, ae.Message)
	case errors.As(err, &mbe):
		writeError(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
	case errors.Is(err, rules.ErrRulesFromFile):
		writeError(c, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, alerts.ErrNotFound):
		writeError(c, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		c.Abort()
	case errors.Is(err, context.DeadlineExceeded):
		s.logger.Warn("request timed out", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		writeError(c, http.StatusGatewayTimeout, "timeout", "the query took too long; narrow the time range or filters")
	case unreachable(err):
		// Not "internal error", and never an empty answer: the client
		// must see that the answer is not known.
		s.logger.Warn("request failed: the store cannot be reached", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		writeError(c, http.StatusServiceUnavailable, "unavailable", "the data store cannot be reached, so the answer is not known; try again")
	default:
		s.logger.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

// writeError answers with the error shape of the API contract.
func writeError(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"code": code, "message": message}})
}

// unreachable says whether err is the store's connection failing (refused,
// reset, dropped, or no connection free in time) rather than a query that
// went wrong.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, clickhouse.ErrAcquireConnTimeout)
}
