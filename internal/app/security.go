package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

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

// newAPIServer is the API's HTTP server on ln with its time and connection
// limits, serving HTTPS when http.tls_cert and http.tls_key are set.
func newAPIServer(cfg config.HTTP, ln net.Listener, h http.Handler, logger *slog.Logger) (*http.Server, net.Listener, error) {
	srv, ln := api.NewHTTPServer(ln, h, api.HTTPLimits{}, logger)
	if cfg.TLSCert == "" {
		return srv, ln, nil
	}
	certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, logger)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	return srv, tls.NewListener(ln, srv.TLSConfig), nil
}

// certReloader serves a certificate and key from files, loading them
// again when either file changes (checked at most once a second). A pair
// that cannot be loaded leaves the one in use in place.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the pair loaded
	checked time.Time
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() string {
	stamp := ""
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return stamp
}

// load reads the pair; the caller holds mu or owns r.
func (r *certReloader) load() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("cannot load http.tls_cert %s and http.tls_key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if stamp := r.fileStamp(); stamp != r.stamp {
			if err := r.load(); err != nil {
				r.logger.Warn("keeping the certificate in use", "err", err)
				r.stamp = stamp // do not retry until the files change again
			} else {
				r.logger.Info("certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.cert, nil
}
