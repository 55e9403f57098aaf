package feishu

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

// Message types.
const (
	MsgInteractive = "interactive"
	MsgPost        = "post"
	MsgText        = "text"
)

// Defaults and limits.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultRateLimit = 100 // messages per minute, Feishu's custom-bot limit
	DefaultBurst     = 5   // Feishu also allows at most 5 a second
	// maxContentBytes keeps the body under Feishu's 20 KB request limit.
	maxContentBytes = 16 << 10
)

// Config configures one Feishu bot.
type Config struct {
	// URL is the bot's webhook,
	// https://open.feishu.cn/open-apis/bot/v2/hook/… (Lark:
	// open.larksuite.com). Required; redacted in logs and errors.
	URL notify.SecretURL `yaml:"url"`
	// Secret is the signing secret when 签名校验 is on.
	Secret notify.Secret `yaml:"secret,omitempty"`
	// MsgType is "interactive" (card, default), "post" or "text".
	MsgType string `yaml:"msg_type,omitempty"`
	// TimeZone of rendered times (IANA name). Default: Asia/Shanghai for
	// zh-CN notifications, UTC for English.
	TimeZone string `yaml:"time_zone,omitempty"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// RateLimit is messages per minute to this bot. Default 100.
	RateLimit int `yaml:"rate_limit,omitempty"`
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("feishu{url=%s signed=%t msg_type=%s timeout=%s rate_limit=%d}",
		c.URL, c.Secret != "", c.MsgType, c.Timeout, c.RateLimit)
}

// LogValue implements slog.LogValuer without the secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL.String()), slog.Bool("signed", c.Secret != ""),
		slog.String("msg_type", c.MsgType), slog.Duration("timeout", c.Timeout), slog.Int("rate_limit", c.RateLimit))
}

// Validate checks c.
func (c Config) Validate() error {
	u, err := url.Parse(string(c.URL))
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("feishu: url %s: need an absolute http(s) URL", c.URL)
	}
	switch c.MsgType {
	case "", MsgInteractive, MsgPost, MsgText:
	default:
		return fmt.Errorf("feishu: msg_type %q: want interactive, post or text", c.MsgType)
	}
	if c.Timeout < 0 || c.RateLimit < 0 {
		return fmt.Errorf("feishu: timeout and rate_limit must not be negative")
	}
	if _, err := tmpl.LoadOptions(c.TimeZone); err != nil {
		return fmt.Errorf("feishu: %w", err)
	}
	return nil
}

// Notifier delivers to one bot.
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
	if cfg.MsgType == "" {
		cfg.MsgType = MsgInteractive
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
		bucket: ratelimit.New(cfg.RateLimit, min(DefaultBurst, cfg.RateLimit)),
		logger: logger.With("integration", "feishu"),
		now:    time.Now,
	}, nil
}

// message is the request body; exactly one of Card and Content is set.
type message struct {
	Timestamp string `json:"timestamp,omitempty"`
	Sign      string `json:"sign,omitempty"`
	MsgType   string `json:"msg_type"`
	Card      *card  `json:"card,omitempty"`
	Content   any    `json:"content,omitempty"`
}

type card struct {
	Config   cardConfig `json:"config"`
	Header   cardHeader `json:"header"`
	Elements []any      `json:"elements"`
}

type cardConfig struct {
	WideScreenMode bool `json:"wide_screen_mode"`
}

type cardHeader struct {
	Template string    `json:"template"`
	Title    plainText `json:"title"`
}

type plainText struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type mdElement struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type textContent struct {
	Text string `json:"text"`
}

type postContent struct {
	Post map[string]post `json:"post"`
}

type post struct {
	Title   string         `json:"title"`
	Content [][]postInline `json:"content"`
}

type postInline struct {
	Tag  string `json:"tag"`
	Text string `json:"text"`
	Href string `json:"href,omitempty"`
}

type answer struct {
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// Notify sends n once, waiting for a rate-limit slot first.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	if err := n.bucket.Wait(ctx); err != nil {
		return true, fmt.Errorf("feishu: wait for rate limit: %w", err)
	}
	msg := n.message(notif)
	if n.cfg.Secret != "" {
		// Sign after waiting: the timestamp must be the send time.
		msg.Timestamp = strconv.FormatInt(n.now().Unix(), 10)
		msg.Sign = sign(msg.Timestamp, string(n.cfg.Secret))
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return false, fmt.Errorf("feishu: encode message: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := httpx.Post(ctx, n.client, httpx.Request{URL: string(n.cfg.URL), Redacted: n.cfg.URL.String(), Body: body})
	if err != nil {
		return httpx.RetryableError(err), fmt.Errorf("feishu: %w", err)
	}
	var a answer
	code, text, hasCode := 0, "", false
	if json.Unmarshal(resp.Body, &a) == nil {
		switch {
		case a.Code != nil:
			code, text, hasCode = *a.Code, a.Msg, true
		case a.StatusCode != nil:
			code, text, hasCode = *a.StatusCode, a.StatusMessage, true
		}
	}
	if hasCode && code != 0 {
		return retryable(code, resp.Status), fmt.Errorf("feishu: %s answered HTTP %d code %d: %s",
			n.cfg.URL, resp.Status, code, httpx.Snippet([]byte(text)))
	}
	if resp.Status != http.StatusOK {
		return httpx.RetryableStatus(resp.Status), fmt.Errorf("feishu: %s answered HTTP %d: %s",
			n.cfg.URL, resp.Status, httpx.Snippet(resp.Body))
	}
	if !hasCode {
		return false, fmt.Errorf("feishu: %s answered HTTP 200 without a code: %s", n.cfg.URL, httpx.Snippet(resp.Body))
	}
	n.logger.Debug("notification delivered", "notification_id", notif.ID)
	return false, nil
}

// retryable decides on a non-zero code; see the package doc.
func retryable(code, status int) bool {
	switch code {
	case 11232:
		return true
	case 9499:
		return status != http.StatusBadRequest
	}
	return httpx.RetryableStatus(status)
}

// sign is Feishu's signature: the HMAC key is timestamp+"\n"+secret and
// the message is empty.
func sign(timestamp, secret string) string {
	mac := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (n *Notifier) message(notif *alerts.Notification) message {
	m := tmpl.New(notif, n.opts)
	switch n.cfg.MsgType {
	case MsgText:
		// Text messages parse <at user_id="…"> tags; our own text has no
		// '<', so any is from an event.
		text := noTags(tmpl.Truncate(m.Text(), maxContentBytes))
		return message{MsgType: MsgText, Content: textContent{Text: text}}
	case MsgPost:
		return message{MsgType: MsgPost, Content: n.post(m)}
	default:
		c := &card{
			Config: cardConfig{WideScreenMode: true},
			Header: cardHeader{Template: colour(notif), Title: plainText{Tag: "plain_text", Content: m.Title()}},
			Elements: []any{mdElement{Tag: "markdown",
				Content: tmpl.Truncate(m.MarkdownBody("\n"), maxContentBytes)}},
		}
		return message{MsgType: MsgInteractive, Card: c}
	}
}

// post builds a rich-text message. Its text elements are literal, but as
// text messages parse <at …> tags, '<' is replaced here too to be safe.
func (n *Notifier) post(m *tmpl.Message) postContent {
	var lines [][]postInline
	size := 0
	if m.AllResolved {
		lines = append(lines, []postInline{{Tag: "text", Text: m.AllResolvedText()}})
	}
	for i, a := range m.Alerts {
		if size > maxContentBytes {
			lines = append(lines, []postInline{{Tag: "text", Text: "…"}})
			break
		}
		if i > 0 || m.AllResolved {
			lines = append(lines, []postInline{{Tag: "text", Text: ""}})
		}
		link := a.URL
		a.URL = ""
		for _, l := range m.TextLines(a) {
			l = tmpl.Truncate(l, maxContentBytes/4)
			size += len(l)
			lines = append(lines, []postInline{{Tag: "text", Text: noTags(l)}})
		}
		if link != "" {
			lines = append(lines, []postInline{{Tag: "a", Text: m.DetailsText(), Href: link}})
		}
	}
	lang := "en_us"
	if m.Lang == tmpl.Chinese {
		lang = "zh_cn"
	}
	return postContent{Post: map[string]post{lang: {Title: noTags(m.Title()), Content: lines}}}
}

// colour picks the card header template by the worst firing severity.
func colour(notif *alerts.Notification) string {
	worst := ""
	for _, a := range notif.Alerts {
		if a.Status == alerts.StatusResolved {
			continue
		}
		switch strings.ToLower(a.Severity) {
		case "critical", "error", "page":
			return "red"
		case "warning":
			worst = "orange"
		default:
			if worst == "" {
				worst = "blue"
			}
		}
	}
	if worst == "" {
		return "green"
	}
	return worst
}

// noTags defuses Feishu's inline tags such as <at user_id="all">.
func noTags(s string) string { return strings.ReplaceAll(s, "<", "＜") }
