package api

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/netutil"
)

// defaultHosts are the names a server on this machine always answers as.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// hostSet builds the Host names the server answers as: the defaults, the
// wiring's (listen address, external URL) and api.allowed_hosts. "*" in
// allowed_hosts turns the check off.
func hostSet(wired, configured []string) (map[string]bool, bool) {
	set := map[string]bool{}
	for _, list := range [][]string{defaultHosts, wired, configured} {
		for _, h := range list {
			if h == "*" {
				return nil, true
			}
			if h = normalHost(h); h != "" {
				set[h] = true
			}
		}
	}
	return set, false
}

// normalHost is h without port, brackets or case; "" for a wildcard
// listen address, which names no host.
func normalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	if h == "0.0.0.0" || h == "::" {
		return ""
	}
	return h
}

// guard runs before every route: it answers only the Host names the server
// listens as (a page on another name that resolves here, i.e. DNS
// rebinding, gets nothing), refuses state changes from other sites in
// every mode, tokens or not, and marks every answer nosniff and the API's
// not to be cached.
func (s *Server) guard() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		c.Header("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			c.Header("Cache-Control", "no-store")
		}
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if !s.anyHost && !probe && !s.hosts[normalHost(r.Host)] {
			writeError(c, http.StatusMisdirectedRequest, "unknown_host",
				"this server does not answer as "+quoteHost(r.Host)+": add the name to api.allowed_hosts")
			return
		}
		if !safeMethod(r.Method) && !sameOrigin(r) {
			writeError(c, http.StatusForbidden, "cross_site", "a change must come from the cockpit's own pages, not from another site")
			return
		}
		c.Next()
	}
}

func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return `"` + strings.ToValidUTF8(h, "?") + `"`
}

// sameOrigin says whether a browser request comes from this server's own
// pages: by Sec-Fetch-Site when the browser sends it, else by Origin,
// compared in full (scheme, host and port). A request with neither is not
// from a browser page (curl, the product's clients) and is let through.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
			return false
		}
		scheme := "http"
		if isHTTPS(r) {
			scheme = "https"
		}
		return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
	}
	return true
}

// HTTPLimits are the time and connection limits of the API's HTTP server.
type HTTPLimits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConns                                                  int
}

// DefaultHTTPLimits bound a request's headers to 10s, its body to 30s, its
// answer to 60s (the live stream sets a deadline per write itself), an idle
// keep-alive connection to 60s, and the open connections to what the
// process's file limit allows (DefaultMaxConns).
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
	WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxConns: DefaultMaxConns(),
}

// DefaultMaxConns is the API's cap on open connections: three quarters
// of the process's open-file limit (the rest is the engine's, the
// broker clients' and the log's), at most 16,384. A wall viewer holds
// one connection for as long as it watches, so this is also how many
// can watch at once; SPEC §9 asks for 10,000, which needs an open-file
// limit of at least 13,334 (Go raises the soft limit to the hard one at
// start).
func DefaultMaxConns() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur == 0 {
		return 1024
	}
	return int(min(l.Cur*3/4, 16384))
}

// NewHTTPServer returns the API's http.Server for h with limits l (zero
// fields take DefaultHTTPLimits), and ln capped to l.MaxConns open
// connections: more wait in the listen queue.
func NewHTTPServer(ln net.Listener, h http.Handler, l HTTPLimits, logger *slog.Logger) (*http.Server, net.Listener) {
	d := DefaultHTTPLimits
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = d.ReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}, netutil.LimitListener(ln, l.MaxConns)
}
