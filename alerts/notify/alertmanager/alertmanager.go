package alertmanager

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/httpx"
	"github.com/cockpit-cs/cockpit/alerts/notify/tmpl"
)

// DefaultTimeout bounds one attempt.
const DefaultTimeout = 10 * time.Second

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username string        `yaml:"username"`
	Password notify.Secret `yaml:"password"`
}

// Config configures one Alertmanager.
type Config struct {
	// URL is Alertmanager's base URL, e.g. http://alertmanager:9093 (a
	// path prefix such as /alertmanager is kept). Required.
	URL string `yaml:"url"`
	// BasicAuth, when set, authenticates every request.
	BasicAuth *BasicAuth `yaml:"basic_auth,omitempty"`
	// BearerToken, when set, is sent as "Authorization: Bearer …". Not
	// with basic_auth.
	BearerToken notify.Secret `yaml:"bearer_token,omitempty"`
	// ExtraLabels are added to every alert (e.g. source: cockpit); alert
	// labels win on conflict.
	ExtraLabels map[string]string `yaml:"extra_labels,omitempty"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// String describes c without its secrets.
func (c Config) String() string {
	auth := "none"
	switch {
	case c.BasicAuth != nil:
		auth = "basic"
	case c.BearerToken != "":
		auth = "bearer"
	}
	return fmt.Sprintf("alertmanager{url=%s auth=%s timeout=%s}", notify.RedactURL(c.URL), auth, c.Timeout)
}

// LogValue implements slog.LogValuer without the secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate checks c.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("alertmanager: url %s: need an absolute http(s) URL", notify.RedactURL(c.URL))
	}
	if u.User != nil {
		return fmt.Errorf("alertmanager: url: put credentials in basic_auth, not the URL")
	}
	if c.BasicAuth != nil && c.BearerToken != "" {
		return fmt.Errorf("alertmanager: basic_auth and bearer_token are exclusive")
	}
	if c.BasicAuth != nil && (c.BasicAuth.Username == "" || strings.Contains(c.BasicAuth.Username, ":")) {
		return fmt.Errorf("alertmanager: basic_auth.username is empty or contains ':'")
	}
	for k := range c.ExtraLabels {
		if !validLabelName(k) {
			return fmt.Errorf("alertmanager: extra_labels: invalid label name %q", k)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("alertmanager: timeout %s is negative", c.Timeout)
	}
	return nil
}

// Notifier posts alerts to one Alertmanager.
type Notifier struct {
	cfg      Config
	endpoint string
	client   *http.Client
	logger   *slog.Logger
}

var _ alerts.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg; client nil means http.DefaultClient.
func New(cfg Config, client *http.Client, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if client == nil {
		client = http.DefaultClient
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(cfg.URL) // validated
	u = u.JoinPath("api", "v2", "alerts")
	return &Notifier{cfg: cfg, endpoint: u.String(), client: client, logger: logger.With("integration", "alertmanager")}, nil
}

// PostableAlert is one alert in Alertmanager's API v2 schema.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notify posts every alert of n in one request.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	if len(notif.Alerts) == 0 {
		return false, nil
	}
	for _, a := range notif.Alerts {
		if a.Rule == "" {
			return false, fmt.Errorf("alertmanager: alert %s of notification %s has no rule for alertname", a.ID, notif.ID)
		}
	}
	body, err := json.Marshal(n.alerts(notif))
	if err != nil {
		return false, fmt.Errorf("alertmanager: encode alerts: %w", err)
	}
	h := http.Header{}
	switch {
	case n.cfg.BasicAuth != nil:
		cred := n.cfg.BasicAuth.Username + ":" + string(n.cfg.BasicAuth.Password)
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	case n.cfg.BearerToken != "":
		h.Set("Authorization", "Bearer "+string(n.cfg.BearerToken))
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	redacted := notify.RedactURL(n.endpoint)
	resp, err := httpx.Post(ctx, n.client, httpx.Request{URL: n.endpoint, Redacted: redacted, Header: h, Body: body})
	if err != nil {
		return httpx.RetryableError(err), fmt.Errorf("alertmanager: %w", err)
	}
	if resp.Status/100 != 2 {
		return httpx.RetryableStatus(resp.Status), fmt.Errorf("alertmanager: %s answered HTTP %d: %s",
			redacted, resp.Status, httpx.Snippet(resp.Body))
	}
	n.logger.Debug("alerts posted", "notification_id", notif.ID, "alerts", len(notif.Alerts))
	return false, nil
}

func (n *Notifier) alerts(notif *alerts.Notification) []PostableAlert {
	out := make([]PostableAlert, 0, len(notif.Alerts))
	for _, a := range notif.Alerts {
		labels := make(map[string]string, len(a.Labels)+len(n.cfg.ExtraLabels)+2)
		for k, v := range n.cfg.ExtraLabels {
			labels[k] = v
		}
		for k, v := range a.Labels {
			if v == "" {
				continue // an empty value means "no such label" to Alertmanager
			}
			labels[labelName(k)] = strings.ToValidUTF8(v, "\uFFFD")
		}
		labels["alertname"] = a.Rule
		if a.Severity != "" {
			labels["severity"] = a.Severity
		}
		ann := map[string]string{
			"value":    tmpl.FormatNumber(a.Value),
			"expected": tmpl.FormatNumber(a.Expected),
		}
		summary := a.Summary
		if summary == "" {
			summary = a.Explanation
		}
		for k, v := range map[string]string{"summary": summary, "description": a.Explanation, "explanation": a.Explanation} {
			if v != "" {
				ann[k] = strings.ToValidUTF8(v, "\uFFFD")
			}
		}
		pa := PostableAlert{Labels: labels, Annotations: ann, StartsAt: a.StartsAt.UTC()}
		if a.Status == alerts.StatusResolved {
			pa.EndsAt = a.EndsAt.UTC()
			if a.EndsAt.IsZero() {
				pa.EndsAt = notif.CreatedAt.UTC()
			}
			if pa.EndsAt.IsZero() {
				pa.EndsAt = time.Now().UTC()
			}
		}
		if u, err := url.Parse(a.URL); err == nil && u.IsAbs() && u.Host != "" {
			pa.GeneratorURL = a.URL
		}
		out = append(out, pa)
	}
	return out
}

// labelName rewrites a label name to Prometheus' classic charset, which
// Alertmanager before 0.28 enforces.
func labelName(s string) string {
	if validLabelName(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

func validLabelName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
