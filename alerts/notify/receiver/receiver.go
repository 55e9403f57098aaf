// Package receiver builds a notifier from one receiver entry of the
// configuration: a name and exactly one integration block.
package receiver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/alertmanager"
	"github.com/cockpit-cs/cockpit/alerts/notify/dingtalk"
	"github.com/cockpit-cs/cockpit/alerts/notify/email"
	"github.com/cockpit-cs/cockpit/alerts/notify/feishu"
	"github.com/cockpit-cs/cockpit/alerts/notify/webhook"
	"github.com/cockpit-cs/cockpit/alerts/notify/wecom"
)

// Config is one receiver: a name and exactly one integration.
type Config struct {
	Name         string               `yaml:"name"`
	Webhook      *webhook.Config      `yaml:"webhook,omitempty"`
	DingTalk     *dingtalk.Config     `yaml:"dingtalk,omitempty"`
	WeCom        *wecom.Config        `yaml:"wecom,omitempty"`
	Feishu       *feishu.Config       `yaml:"feishu,omitempty"`
	Email        *email.Config        `yaml:"email,omitempty"`
	Alertmanager *alertmanager.Config `yaml:"alertmanager,omitempty"`
}

// Kind names the configured integration, or "" when none or several are.
func (c Config) Kind() string {
	kinds := c.kinds()
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

func (c Config) kinds() []string {
	var k []string
	if c.Webhook != nil {
		k = append(k, "webhook")
	}
	if c.DingTalk != nil {
		k = append(k, "dingtalk")
	}
	if c.WeCom != nil {
		k = append(k, "wecom")
	}
	if c.Feishu != nil {
		k = append(k, "feishu")
	}
	if c.Email != nil {
		k = append(k, "email")
	}
	if c.Alertmanager != nil {
		k = append(k, "alertmanager")
	}
	return k
}

// Validate checks that c has a name and exactly one valid integration.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("receiver: missing name")
	}
	switch k := c.kinds(); len(k) {
	case 0:
		return fmt.Errorf("receiver %s: no integration configured", c.Name)
	case 1:
	default:
		return fmt.Errorf("receiver %s: several integrations configured (%v); use one receiver each", c.Name, k)
	}
	var err error
	switch {
	case c.Webhook != nil:
		err = c.Webhook.Validate()
	case c.DingTalk != nil:
		err = c.DingTalk.Validate()
	case c.WeCom != nil:
		err = c.WeCom.Validate()
	case c.Feishu != nil:
		err = c.Feishu.Validate()
	case c.Email != nil:
		err = c.Email.Validate()
	case c.Alertmanager != nil:
		err = c.Alertmanager.Validate()
	}
	if err != nil {
		return fmt.Errorf("receiver %s: %w", c.Name, err)
	}
	return nil
}

// New builds the notifier c describes. client serves the HTTP
// integrations and dialer the e-mail one; either may be nil for defaults.
func New(c Config, client *http.Client, dialer email.Dialer, logger *slog.Logger) (alerts.Notifier, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("receiver", c.Name)
	var (
		n   alerts.Notifier
		err error
	)
	switch {
	case c.Webhook != nil:
		n, err = webhook.New(*c.Webhook, client, logger)
	case c.DingTalk != nil:
		n, err = dingtalk.New(*c.DingTalk, client, logger)
	case c.WeCom != nil:
		n, err = wecom.New(*c.WeCom, client, logger)
	case c.Feishu != nil:
		n, err = feishu.New(*c.Feishu, client, logger)
	case c.Email != nil:
		n, err = email.New(*c.Email, dialer, logger)
	case c.Alertmanager != nil:
		n, err = alertmanager.New(*c.Alertmanager, client, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("receiver %s: %w", c.Name, err)
	}
	return n, nil
}
