package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/httpx"
)

// Version is the payload version sent in the body's "version" field.
const Version = "1"

// Defaults.
const (
	DefaultTimeout = 15 * time.Second
)

// Header names of Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Config configures one webhook receiver.
type Config struct {
	// URL is the endpoint, http or https. Required. It is treated as a
	// secret (it may embed a token) and redacted in logs and errors.
	URL notify.SecretURL `yaml:"url"`
	// Secret is the signing secret, "whsec_" followed by the base64 of 24
	// to 64 random bytes (the prefix is optional). Required.
	Secret notify.Secret `yaml:"secret"`
	// PreviousSecret, while rotating secrets, signs too: the
	// webhook-signature header then carries both signatures.
	PreviousSecret notify.Secret `yaml:"previous_secret,omitempty"`
	// Headers are extra request headers, e.g. an API key. They cannot
	// replace Content-Type or the webhook-* headers.
	Headers map[string]notify.Secret `yaml:"headers,omitempty"`
	// Timeout bounds one delivery attempt. Default 15s (the spec suggests
	// 15 to 30 s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("webhook{url=%s timeout=%s headers=%d}", c.URL, c.Timeout, len(c.Headers))
}

// LogValue implements slog.LogValuer without the secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL.String()),
		slog.Duration("timeout", c.Timeout),
		slog.Int("headers", len(c.Headers)),
	)
}

// Validate checks c; zero values that have defaults are fine.
func (c Config) Validate() error {
	u, err := url.Parse(string(c.URL))
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook: url %s: need an absolute http(s) URL", c.URL)
	}
	if _, err := DecodeSecret(string(c.Secret)); err != nil {
		return fmt.Errorf("webhook: secret: %w", err)
	}
	if c.PreviousSecret != "" {
		if _, err := DecodeSecret(string(c.PreviousSecret)); err != nil {
			return fmt.Errorf("webhook: previous_secret: %w", err)
		}
	}
	for k := range c.Headers {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "webhook-") || lk == "content-type" || lk == "host" || lk == "content-length" {
			return fmt.Errorf("webhook: header %q is set by the notifier", k)
		}
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("webhook: invalid header name %q", k)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("webhook: timeout %s is negative", c.Timeout)
	}
	return nil
}

// DecodeSecret returns the HMAC key a "whsec_<base64>" secret encodes.
func DecodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	b64 := strings.TrimPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Tolerate secrets copied without their padding.
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	}
	if err != nil {
		return nil, errors.New("not whsec_ followed by base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("key is %d bytes, want 24 to 64", len(key))
	}
	return key, nil
}

// Notifier delivers notifications to one webhook.
type Notifier struct {
	cfg     Config
	keys    [][]byte
	headers http.Header
	client  *http.Client
	logger  *slog.Logger
	now     func() time.Time
}

var _ alerts.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg. client may be nil for a default client;
// the notifier uses a copy of it that does not follow redirects, as the
// spec recommends.
func New(cfg Config, client *http.Client, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if client == nil {
		client = &http.Client{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	n := &Notifier{cfg: cfg, client: &c, logger: logger.With("integration", "webhook"), now: time.Now}
	for _, s := range []notify.Secret{cfg.Secret, cfg.PreviousSecret} {
		if s == "" {
			continue
		}
		key, _ := DecodeSecret(string(s)) // validated above
		n.keys = append(n.keys, key)
	}
	n.headers = http.Header{}
	for k, v := range cfg.Headers {
		n.headers.Set(k, string(v))
	}
	return n, nil
}

// payload is the body: the notification with a version.
type payload struct {
	Version string `json:"version"`
	*alerts.Notification
}

// Notify sends n once.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	if strings.ContainsAny(notif.ID, ". \t\r\n") || notif.ID == "" {
		// The signed content joins id and timestamp with dots.
		return false, fmt.Errorf("webhook: notification id %q is empty or contains a dot or space", notif.ID)
	}
	body, err := json.Marshal(payload{Version: Version, Notification: notif})
	if err != nil {
		return false, fmt.Errorf("webhook: encode notification %s: %w", notif.ID, err)
	}
	ts := strconv.FormatInt(n.now().Unix(), 10)
	h := n.headers.Clone()
	h.Set(HeaderID, notif.ID)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, n.sign(notif.ID, ts, body))

	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := httpx.Post(ctx, n.client, httpx.Request{
		URL: string(n.cfg.URL), Redacted: n.cfg.URL.String(), Header: h, Body: body,
	})
	if err != nil {
		return httpx.RetryableError(err), fmt.Errorf("webhook: %w", err)
	}
	if resp.Status/100 == 2 {
		n.logger.Debug("notification delivered", "notification_id", notif.ID, "status", resp.Status)
		return false, nil
	}
	return httpx.RetryableStatus(resp.Status), fmt.Errorf("webhook: %s answered HTTP %d: %s",
		n.cfg.URL, resp.Status, httpx.Snippet(resp.Body))
}

// sign returns the webhook-signature value: one "v1,<base64>" per key,
// space separated.
func (n *Notifier) sign(id, ts string, body []byte) string {
	sigs := make([]string, len(n.keys))
	for i, key := range n.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return strings.Join(sigs, " ")
}
