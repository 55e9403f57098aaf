package app

import (
	"net/url"

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
