package app

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"

	"golang.org/x/net/netutil"

	"github.com/cockpit-cs/cockpit/api"
	"github.com/cockpit-cs/cockpit/internal/config"
)

// apiHosts are the names the API listens as: its listen address and the
// host of the external URL links point to.
func apiHosts(cfg config.Config) []string {
	hosts := []string{cfg.HTTP.Listen}
	if u, err := url.Parse(cfg.Alerting.ExternalURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// newHTTPServer is the API's server with header, body, write and idle
// time limits, and ln capped to a number of connections.
func newHTTPServer(ln net.Listener, h http.Handler, logger *slog.Logger) (*http.Server, net.Listener) {
	l := api.DefaultHTTPLimits
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
