package dingtalk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/ratelimit"
	"github.com/cockpit-cs/cockpit/alerts/notify/tmpl"
)

// Defaults.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultRateLimit = 20 // messages per minute, the robot's documented limit
	// DefaultMaxBytes caps the markdown text. DingTalk documents no exact
	// limit for markdown; 16 KiB stays well below where it rejects.
	DefaultMaxBytes = 16 << 10
)

// Config configures one DingTalk robot.
type Config struct {
	// URL is the robot's webhook,
	// https://oapi.dingtalk.com/robot/send?access_token=…. Required;
	// redacted in logs and errors.
	URL notify.SecretURL `yaml:"url"`
	// Secret is the signing secret ("SEC…") when the robot uses 加签.
	Secret notify.Secret `yaml:"secret,omitempty"`
	// AtMobiles are phone numbers to @-mention.
	AtMobiles []string `yaml:"at_mobiles,omitempty"`
	// AtUserIDs are DingTalk user IDs to @-mention.
	AtUserIDs []string `yaml:"at_user_ids,omitempty"`
	// AtAll @-mentions everyone, for firing notifications only.
	AtAll bool `yaml:"at_all,omitempty"`
	// TimeZone of rendered times (IANA name). Default: Asia/Shanghai for
	// zh-CN notifications, UTC for English.
	TimeZone string `yaml:"time_zone,omitempty"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// RateLimit is messages per minute to this robot. Default 20.
	RateLimit int `yaml:"rate_limit,omitempty"`
	// MaxBytes caps the markdown text in bytes. Default 16384.
	MaxBytes int `yaml:"max_bytes,omitempty"`
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("dingtalk{url=%s signed=%t timeout=%s rate_limit=%d}", c.URL, c.Secret != "", c.Timeout, c.RateLimit)
}

// LogValue implements slog.LogValuer without the secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL.String()), slog.Bool("signed", c.Secret != ""),
		slog.Duration("timeout", c.Timeout), slog.Int("rate_limit", c.RateLimit))
}

// Validate checks c.
func (c Config) Validate() error {
	u, err := url.Parse(string(c.URL))
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("dingtalk: url %s: need an absolute http(s) URL", c.URL)
	}
	if c.Timeout < 0 || c.RateLimit < 0 || c.MaxBytes < 0 {
		return fmt.Errorf("dingtalk: timeout, rate_limit and max_bytes must not be negative")
	}
	if c.MaxBytes > 0 && c.MaxBytes < 256 {
		return fmt.Errorf("dingtalk: max_bytes %d is below 256", c.MaxBytes)
	}
	for _, m := range c.AtMobiles {
		if m == "" || strings.ContainsFunc(m, func(r rune) bool { return (r < '0' || r > '9') && r != '+' && r != '-' }) {
			return fmt.Errorf("dingtalk: at_mobiles: %q is not a phone number", m)
		}
	}
	if _, err := tmpl.LoadOptions(c.TimeZone); err != nil {
		return fmt.Errorf("dingtalk: %w", err)
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
	now    func() time.Time
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
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
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
		logger: logger.With("integration", "dingtalk"),
		now:    time.Now,
	}, nil
}

type message struct {
	MsgType  string   `json:"msgtype"`
	Markdown markdown `json:"markdown"`
	At       *at      `json:"at,omitempty"`
}

type markdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

type at struct {
	AtMobiles []string `json:"atMobiles,omitempty"`
	AtUserIDs []string `json:"atUserIds,omitempty"`
	IsAtAll   bool     `json:"isAtAll,omitempty"`
}

type answer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// retryable lists the errcodes worth another attempt; see the package doc.
var retryable = map[int]bool{-1: true, 130101: true, 410100: true}

// Notify sends n once, waiting for a rate-limit slot first.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	body, err := json.Marshal(n.message(notif))
	if err != nil {
		return false, fmt.Errorf("dingtalk: encode message: %w", err)
	}
	if err := n.bucket.Wait(ctx); err != nil {
		return true, fmt.Errorf("dingtalk: wait for rate limit: %w", err)
	}
	target, err := n.signedURL()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := httpx.Post(ctx, n.client, httpx.Request{URL: target, Redacted: n.cfg.URL.String(), Body: body})
	if err != nil {
		return httpx.RetryableError(err), fmt.Errorf("dingtalk: %w", err)
	}
	var a answer
	jsonErr := json.Unmarshal(resp.Body, &a)
	if resp.Status != http.StatusOK {
		if jsonErr == nil && a.ErrCode != nil && *a.ErrCode != 0 {
			return retryable[*a.ErrCode] || httpx.RetryableStatus(resp.Status),
				fmt.Errorf("dingtalk: %s answered HTTP %d errcode %d: %s", n.cfg.URL, resp.Status, *a.ErrCode, a.ErrMsg)
		}
		return httpx.RetryableStatus(resp.Status), fmt.Errorf("dingtalk: %s answered HTTP %d: %s",
			n.cfg.URL, resp.Status, httpx.Snippet(resp.Body))
	}
	if jsonErr != nil || a.ErrCode == nil {
		return false, fmt.Errorf("dingtalk: %s answered HTTP 200 without an errcode: %s", n.cfg.URL, httpx.Snippet(resp.Body))
	}
	if *a.ErrCode != 0 {
		return retryable[*a.ErrCode], fmt.Errorf("dingtalk: %s refused the message: errcode %d: %s",
			n.cfg.URL, *a.ErrCode, a.ErrMsg)
	}
	n.logger.Debug("notification delivered", "notification_id", notif.ID)
	return false, nil
}

func (n *Notifier) message(notif *alerts.Notification) message {
	m := tmpl.New(notif, n.opts)
	text := m.Markdown("\n\n")
	msg := message{MsgType: "markdown", Markdown: markdown{Title: m.Title()}}
	// DingTalk highlights a mention only when "@<mobile>" or "@<userId>"
	// appears in the text as well as in the at block.
	var mentions []string
	for _, mob := range n.cfg.AtMobiles {
		mentions = append(mentions, "@"+mob)
	}
	for _, id := range n.cfg.AtUserIDs {
		mentions = append(mentions, "@"+id)
	}
	atAll := n.cfg.AtAll && !m.AllResolved
	if len(mentions) > 0 || atAll {
		msg.At = &at{AtMobiles: n.cfg.AtMobiles, AtUserIDs: n.cfg.AtUserIDs, IsAtAll: atAll}
	}
	suffix := ""
	if len(mentions) > 0 {
		suffix = "\n\n" + strings.Join(mentions, " ")
	}
	msg.Markdown.Text = tmpl.Truncate(text, n.cfg.MaxBytes-len(suffix)) + suffix
	return msg
}

// signedURL adds timestamp and sign to the robot URL when a secret is set.
func (n *Notifier) signedURL() (string, error) {
	if n.cfg.Secret == "" {
		return string(n.cfg.URL), nil
	}
	u, err := url.Parse(string(n.cfg.URL))
	if err != nil {
		return "", fmt.Errorf("dingtalk: url %s: invalid", n.cfg.URL)
	}
	ts := strconv.FormatInt(n.now().UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(n.cfg.Secret))
	mac.Write([]byte(ts + "\n" + string(n.cfg.Secret)))
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	u.RawQuery = q.Encode()
	return u.String(), nil
}
