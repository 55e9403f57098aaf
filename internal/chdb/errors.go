package chdb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is an exception raised by the engine, with ClickHouse's error code
// (60 UNKNOWN_TABLE, 62 SYNTAX_ERROR, 159 TIMEOUT_EXCEEDED, ...).
type Error struct {
	// Code is the ClickHouse error code; 0 when the engine's text carried
	// none.
	Code int
	// Message is the exception text without the "Code: N. DB::Exception: "
	// prefix, usually ending in the symbolic name, e.g. "(UNKNOWN_TABLE)".
	Message string
}

// Error renders the exception the way ClickHouse does, so the text can be
// returned verbatim by the HTTP interface.
func (e *Error) Error() string {
	return fmt.Sprintf("Code: %d. DB::Exception: %s", e.Code, e.Message)
}

// Some well-known codes, for errors.As checks and tests.
const (
	CodeUnknownTable    = 60
	CodeSyntaxError     = 62
	CodeUnknownSetting  = 115
	CodeTimeoutExceeded = 159
	CodeBadQueryParam   = 457
	CodeUnknownDatabase = 81
)

// ErrClosed is returned by calls on an Engine after Close.
var ErrClosed = errors.New("chdb: engine closed")

// parseError turns the engine's error text into an *Error. The engine
// sometimes nests the same prefix several times ("Code: 241.
// DB::Exception: Code: 241. DB::Exception: ..."); the repeats are dropped.
func parseError(text string) *Error {
	text = strings.TrimSpace(text)
	e := &Error{Message: text}
	for {
		code, rest, ok := cutCode(e.Message)
		if !ok || (e.Code != 0 && code != e.Code) {
			break
		}
		e.Code, e.Message = code, rest
	}
	return e
}

// cutCode splits "Code: N. DB::Exception: rest" into N and rest.
func cutCode(s string) (int, string, bool) {
	rest, ok := strings.CutPrefix(s, "Code: ")
	if !ok {
		return 0, s, false
	}
	digits, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, s, false
	}
	code, err := strconv.Atoi(digits)
	if err != nil || code < 0 {
		return 0, s, false
	}
	rest = strings.TrimLeft(rest, " ")
	rest = strings.TrimPrefix(rest, "DB::Exception:")
	return code, strings.TrimLeft(rest, " "), true
}
