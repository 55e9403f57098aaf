// Package httpx is the HTTP plumbing the HTTP-based notifiers share: one
// POST with a redacted URL in every error, and the retry classification of
// status codes and transport errors.
package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxResponseBytes bounds how much of a receiver's answer is read: robots
// answer with a few dozen bytes, and a misconfigured URL must not make us
// buffer a web page.
const maxResponseBytes = 64 << 10

// Response is what a receiver answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request is one POST.
type Request struct {
	// URL is where to send; it may carry credentials.
	URL string
	// Redacted is the URL as it may appear in errors.
	Redacted string
	// ContentType defaults to application/json.
	ContentType string
	// Header holds extra request headers.
	Header http.Header
	// Body is the request body.
	Body []byte
}

// Post sends r with client under ctx. Errors never contain r.URL, only
// r.Redacted; the cause (e.g. context.DeadlineExceeded) stays in the chain.
func Post(ctx context.Context, client *http.Client, r Request) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		// The url package quotes the whole URL in its parse errors.
		return nil, fmt.Errorf("cannot build request for %s: invalid URL", r.Redacted)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	ct := r.ContentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "cockpit-notifier/1")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post %s: %w", r.Redacted, stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read answer of %s (HTTP %d): %w", r.Redacted, resp.StatusCode, stripURL(err))
	}
	// Drain a little more so the connection can be reused; ignore errors.
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseBytes)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// stripURL replaces a *url.Error, whose message quotes the full URL with
// its token, by the error it wraps.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return urlFree{op: ue.Op, err: ue.Err}
	}
	return err
}

type urlFree struct {
	op  string
	err error
}

func (e urlFree) Error() string { return e.op + ": " + e.err.Error() }
func (e urlFree) Unwrap() error { return e.err }

// RetryableStatus says whether an HTTP status is worth another attempt:
// 408 Request Timeout, 429 Too Many Requests and every 5xx.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// RetryableError says whether a transport error is worth another attempt.
// Network trouble and timeouts are; a certificate the receiver will keep
// presenting is not.
func RetryableError(err error) bool {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	return true
}

// Snippet renders at most 200 bytes of a receiver's answer for an error
// message, on one line.
func Snippet(b []byte) string {
	const limit = 200
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
