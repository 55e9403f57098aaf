package wecom

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/httpx"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/ratelimit"
	"github.com/cockpit-cs/cockpit/alerts/notify/tmpl"
)

// Defaults and limits.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultRateLimit = 20 // messages per minute, the robot's documented limit
	// MaxContentBytes is WeCom's limit on markdown content.
	MaxContentBytes = 4096
)

// Config configures one WeCom robot.
type Config struct {
	// URL is the robot's webhook,
	// https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…. Required;
	// redacted in logs and errors.
	URL notify.SecretURL `yaml:"url"`
	// MentionUserIDs are WeCom user IDs to @-mention (as <@userid> in the
	// markdown) in firing notifications.
	MentionUserIDs []string `yaml:"mention_user_ids,omitempty"`
	// TimeZone of rendered times (IANA name). Default: Asia/Shanghai for
	// zh-CN notifications, UTC for English.
	TimeZone string `yaml:"time_zone,omitempty"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// RateLimit is messages per minute to this robot. Default 20.
	RateLimit int `yaml:"rate_limit,omitempty"`
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("wecom{url=%s timeout=%s rate_limit=%d}", c.URL, c.Timeout, c.RateLimit)
}

// LogValue implements slog.LogValuer without the secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL.String()),
		slog.Duration("timeout", c.Timeout), slog.Int("rate_limit", c.RateLimit))
}

// Validate checks c.
func (c Config) Validate() error {
	u, err := url.Parse(string(c.URL))
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("wecom: url %s: need an absolute http(s) URL", c.URL)
	}
	if c.Timeout < 0 || c.RateLimit < 0 {
		return fmt.Errorf("wecom: timeout and rate_limit must not be negative")
	}
	for _, id := range c.MentionUserIDs {
		if id == "" || strings.ContainsAny(id, "<>\r\n ") {
			return fmt.Errorf("wecom: mention_user_ids: invalid user ID %q", id)
		}
	}
	if _, err := tmpl.LoadOptions(c.TimeZone); err != nil {
		return fmt.Errorf("wecom: %w", err)
	}
	return nil
}

// Notifier delivers to one robot.
type Notifier struct {
	cfg    Config
	opts   tmpl.Options
	client *http.Client
	bucket *ratelimit.Bucket
	logger *slog.Logger
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
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	opts, _ := tmpl.LoadOptions(cfg.TimeZone) // validated
	if client == nil {
		client = http.DefaultClient
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{
		cfg: cfg, opts: opts, client: client,
		bucket: ratelimit.New(cfg.RateLimit, cfg.RateLimit),
		logger: logger.With("integration", "wecom"),
	}, nil
}

type message struct {
	MsgType  string   `json:"msgtype"`
	Markdown markdown `json:"markdown"`
}

type markdown struct {
	Content string `json:"content"`
}

type answer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// retryable lists the errcodes worth another attempt; see the package doc.
var retryable = map[int]bool{-1: true, 45009: true}

// Notify sends n once, waiting for a rate-limit slot first.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	body, err := json.Marshal(n.message(notif))
	if err != nil {
		return false, fmt.Errorf("wecom: encode message: %w", err)
	}
	if err := n.bucket.Wait(ctx); err != nil {
		return true, fmt.Errorf("wecom: wait for rate limit: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := httpx.Post(ctx, n.client, httpx.Request{URL: string(n.cfg.URL), Redacted: n.cfg.URL.String(), Body: body})
	if err != nil {
		return httpx.RetryableError(err), fmt.Errorf("wecom: %w", err)
	}
	var a answer
	jsonErr := json.Unmarshal(resp.Body, &a)
	if resp.Status != http.StatusOK {
		if jsonErr == nil && a.ErrCode != nil && *a.ErrCode != 0 {
			return retryable[*a.ErrCode] || httpx.RetryableStatus(resp.Status),
				fmt.Errorf("wecom: %s answered HTTP %d errcode %d: %s", n.cfg.URL, resp.Status, *a.ErrCode, a.ErrMsg)
		}
		return httpx.RetryableStatus(resp.Status), fmt.Errorf("wecom: %s answered HTTP %d: %s",
			n.cfg.URL, resp.Status, httpx.Snippet(resp.Body))
	}
	if jsonErr != nil || a.ErrCode == nil {
		return false, fmt.Errorf("wecom: %s answered HTTP 200 without an errcode: %s", n.cfg.URL, httpx.Snippet(resp.Body))
	}
	if *a.ErrCode != 0 {
		// WeCom appends a request hint, our IP and a help link to errmsg;
		// the message before them is what matters.
		msg, _, _ := strings.Cut(a.ErrMsg, ", hint:")
		return retryable[*a.ErrCode], fmt.Errorf("wecom: %s refused the message: errcode %d: %s",
			n.cfg.URL, *a.ErrCode, httpx.Snippet([]byte(msg)))
	}
	n.logger.Debug("notification delivered", "notification_id", notif.ID)
	return false, nil
}

func (n *Notifier) message(notif *alerts.Notification) message {
	m := tmpl.New(notif, n.opts)
	suffix := ""
	if len(n.cfg.MentionUserIDs) > 0 && !m.AllResolved {
		var b strings.Builder
		b.WriteString("\n")
		for _, id := range n.cfg.MentionUserIDs {
			b.WriteString("<@" + id + ">")
		}
		suffix = b.String()
	}
	content := tmpl.Truncate(m.Markdown("\n"), MaxContentBytes-len(suffix)) + suffix
	return message{MsgType: "markdown", Markdown: markdown{Content: content}}
}
