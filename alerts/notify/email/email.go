package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/tmpl"
)

// Transport security modes.
const (
	SecurityStartTLS = "starttls"
	SecurityTLS      = "tls"
	SecurityNone     = "none"
)

// DefaultTimeout bounds one delivery, from dialling to QUIT.
const DefaultTimeout = 30 * time.Second

// Config configures one SMTP receiver.
type Config struct {
	// Host is the SMTP server's host name or IP. Required.
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int `yaml:"port,omitempty"`
	// Security is "starttls" (default), "tls" (implicit TLS) or "none"
	// (only for a relay on a loopback address).
	Security string `yaml:"security,omitempty"`
	// Username, when set, makes the notifier authenticate.
	Username string `yaml:"username,omitempty"`
	// Password for Username.
	Password notify.Secret `yaml:"password,omitempty"`
	// AuthMechanism is "PLAIN" or "LOGIN"; empty picks PLAIN when the
	// server offers it, else LOGIN.
	AuthMechanism string `yaml:"auth_mechanism,omitempty"`
	// From is the sender, e.g. "Cockpit 告警 <alerts@example.com>".
	// Required.
	From string `yaml:"from"`
	// To are the recipients. At least one.
	To []string `yaml:"to"`
	// Hello is the name sent with EHLO. Default "localhost".
	Hello string `yaml:"hello,omitempty"`
	// ServerName is the name the server's certificate must carry.
	// Default Host.
	ServerName string `yaml:"server_name,omitempty"`
	// CAFile is a PEM bundle to verify the server with instead of the
	// system roots.
	CAFile string `yaml:"ca_file,omitempty"`
	// TimeZone of rendered times (IANA name). Default: Asia/Shanghai for
	// zh-CN notifications, UTC for English.
	TimeZone string `yaml:"time_zone,omitempty"`
	// Timeout bounds one delivery. Default 30s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// String describes c without the password.
func (c Config) String() string {
	return fmt.Sprintf("email{host=%s port=%d security=%s username=%q from=%q to=%d}",
		c.Host, c.Port, c.Security, c.Username, c.From, len(c.To))
}

// LogValue implements slog.LogValuer without the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", c.Host), slog.Int("port", c.Port),
		slog.String("security", c.Security), slog.String("username", c.Username),
		slog.Int("recipients", len(c.To)))
}

// Validate checks c.
func (c Config) Validate() error {
	if c.Host == "" || strings.ContainsAny(c.Host, " /:\r\n") && net.ParseIP(c.Host) == nil {
		return fmt.Errorf("email: host %q: need a host name or IP", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("email: port %d out of range", c.Port)
	}
	switch c.Security {
	case "", SecurityStartTLS, SecurityTLS:
	case SecurityNone:
		if !isLoopback(c.Host) {
			return fmt.Errorf("email: security none is only allowed for a loopback relay, not %q", c.Host)
		}
	default:
		return fmt.Errorf("email: security %q: want starttls, tls or none", c.Security)
	}
	switch strings.ToUpper(c.AuthMechanism) {
	case "", "PLAIN", "LOGIN":
	default:
		return fmt.Errorf("email: auth_mechanism %q: want PLAIN or LOGIN", c.AuthMechanism)
	}
	if c.Username == "" && c.Password != "" {
		return errors.New("email: password without username")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("email: from %q: %w", c.From, err)
	}
	if len(c.To) == 0 {
		return errors.New("email: no recipients in to")
	}
	for _, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("email: to %q: %w", to, err)
		}
	}
	if strings.ContainsAny(c.Hello, " \r\n") {
		return fmt.Errorf("email: hello %q contains white space", c.Hello)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("email: timeout %s is negative", c.Timeout)
	}
	if _, err := tmpl.LoadOptions(c.TimeZone); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Dialer opens connections; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Notifier delivers notifications by mail.
type Notifier struct {
	cfg    Config
	opts   tmpl.Options
	from   *mail.Address
	to     []*mail.Address
	tls    *tls.Config
	dialer Dialer
	logger *slog.Logger
	now    func() time.Time
}

var _ alerts.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg; dialer nil means a plain net.Dialer.
func New(cfg Config, dialer Dialer, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Security == "" {
		cfg.Security = SecurityStartTLS
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{SecurityStartTLS: 587, SecurityTLS: 465, SecurityNone: 25}[cfg.Security]
	}
	if cfg.Hello == "" {
		cfg.Hello = "localhost"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.AuthMechanism = strings.ToUpper(cfg.AuthMechanism)
	tc := &tls.Config{ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = strings.Trim(cfg.Host, "[]")
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	opts, _ := tmpl.LoadOptions(cfg.TimeZone) // validated
	from, _ := mail.ParseAddress(cfg.From)    // validated
	n := &Notifier{cfg: cfg, opts: opts, from: from, tls: tc, dialer: dialer, logger: logger, now: time.Now}
	for _, s := range cfg.To {
		a, _ := mail.ParseAddress(s) // validated
		n.to = append(n.to, a)
	}
	if n.dialer == nil {
		n.dialer = &net.Dialer{}
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	n.logger = n.logger.With("integration", "email")
	return n, nil
}

// permanent marks failures that another attempt will not fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Notify sends one mail for n to all recipients.
func (n *Notifier) Notify(ctx context.Context, notif *alerts.Notification) (bool, error) {
	msg, err := n.compose(notif)
	if err != nil {
		return false, fmt.Errorf("email: compose: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	if err := n.send(ctx, msg); err != nil {
		// A deadline or cancellation closes the connection under the
		// SMTP client; report the cause rather than "use of closed
		// connection".
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return retryable(err), fmt.Errorf("email: send via %s: %w", n.addr(), err)
	}
	n.logger.Debug("notification delivered", "notification_id", notif.ID, "recipients", len(n.to))
	return false, nil
}

func (n *Notifier) addr() string {
	return net.JoinHostPort(strings.Trim(n.cfg.Host, "[]"), strconv.Itoa(n.cfg.Port))
}

func (n *Notifier) send(ctx context.Context, msg []byte) error {
	conn, err := n.dialer.DialContext(ctx, "tcp", n.addr())
	if err != nil {
		return err
	}
	// net/smtp knows no contexts: close the connection when ctx ends, so
	// that the blocked call fails and ctx.Err() is already set when Notify
	// looks. The connection deadline, a little later, is only a backstop.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(d.Add(time.Second)); err != nil {
			return err
		}
	}
	if n.cfg.Security == SecurityTLS {
		tc := tls.Client(conn, n.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, n.cfg.Host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(n.cfg.Hello); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if n.cfg.Security == SecurityStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return permanent{errors.New("server does not offer STARTTLS")}
		}
		if err := c.StartTLS(n.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if n.cfg.Username != "" {
		auth, err := n.auth(c)
		if err != nil {
			return err
		}
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range n.to {
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("RCPT TO <%s>: %w", to.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	// The message is accepted; a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (n *Notifier) auth(c *smtp.Client) (smtp.Auth, error) {
	ok, offered := c.Extension("AUTH")
	if !ok {
		return nil, permanent{errors.New("server offers no AUTH but a username is configured")}
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	mech := n.cfg.AuthMechanism
	if mech == "" {
		mech = "LOGIN"
		if has("PLAIN") {
			mech = "PLAIN"
		}
	}
	if !has(mech) {
		return nil, permanent{fmt.Errorf("server offers AUTH %s, not %s", offered, mech)}
	}
	return &auth{mech: mech, user: n.cfg.Username, pass: string(n.cfg.Password), host: n.cfg.Host}, nil
}

// auth implements AUTH PLAIN (RFC 4616) and LOGIN for net/smtp, refusing
// to send credentials in clear text except to a loopback relay.
type auth struct {
	mech, user, pass, host string
	step                   int
}

func (a *auth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !isLoopback(a.host) {
		return "", nil, permanent{errors.New("refusing to authenticate over an unencrypted connection")}
	}
	if a.mech == "PLAIN" {
		return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
	}
	return "LOGIN", nil, nil
}

func (a *auth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	if a.mech == "PLAIN" {
		return nil, errors.New("unexpected AUTH PLAIN challenge")
	}
	a.step++
	ch := strings.ToLower(string(challenge))
	switch {
	case strings.HasPrefix(ch, "user") || (a.step == 1 && !strings.HasPrefix(ch, "pass")):
		return []byte(a.user), nil
	case strings.HasPrefix(ch, "pass") || a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected AUTH LOGIN challenge")
}

// retryable classifies a send error.
func retryable(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return false
	}
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return tpErr.Code < 500
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return false
	}
	return true
}

// compose builds the message with CRLF line ends.
func (n *Notifier) compose(notif *alerts.Notification) ([]byte, error) {
	m := tmpl.New(notif, n.opts)
	html, err := m.HTML()
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, content string }{
		{"text/plain; charset=UTF-8", m.Text()},
		{"text/html; charset=UTF-8", html},
	} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.content, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	to := make([]string, len(n.to))
	for i, a := range n.to {
		to[i] = a.String()
	}
	var msg bytes.Buffer
	header := func(k, v string) {
		msg.WriteString(k + ": " + v + "\r\n")
	}
	header("From", n.from.String())
	header("To", strings.Join(to, ", "))
	// Title is one line; Encode leaves ASCII alone and splits long
	// non-ASCII text into encoded-words of at most 75 bytes.
	header("Subject", mime.BEncoding.Encode("UTF-8", m.Title()))
	header("Date", n.now().Format(time.RFC1123Z))
	header("Message-ID", messageID(notif.ID, n.from.Address))
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// messageID derives a stable Message-ID from the notification ID and the
// sender's domain; IDs with characters unsafe in a msg-id are hashed.
func messageID(id, from string) string {
	domain := "cockpit.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		domain = from[at+1:]
	}
	local := id
	if local == "" || strings.ContainsFunc(local, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		sum := sha256.Sum256([]byte(id))
		local = hex.EncodeToString(sum[:16])
	}
	return "<" + local + "@" + domain + ">"
}
