package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
)

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

type parsed struct {
	header mail.Header
	plain  string
	html   string
}

// parse reads a delivered message with the standard library only.
func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	p := parsed{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			if i != 2 {
				t.Fatalf("%d parts, want 2", i)
			}
			return p
		}
		if err != nil {
			t.Fatal(err)
		}
		if cte := part.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d encoding %q", i, cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		switch ct := part.Header.Get("Content-Type"); ct {
		case "text/plain; charset=UTF-8":
			p.plain = string(b)
		case "text/html; charset=UTF-8":
			p.html = string(b)
		default:
			t.Errorf("part %d Content-Type %q", i, ct)
		}
	}
}

const wantPlain = "【告警:2】complaint_spike 广州\r\n\r\n" +
	"严重 complaint_spike · 告警中\r\n区域投诉激增\r\n广州: 15 分钟内投诉 42 起，预期 9 起\r\n" +
	"当前值 42，预期值 9\r\n开始时间 2024-05-01 10:00:00 CST\r\n标签 queue=vip region=广州\r\n" +
	"查看详情: https://cockpit.example.com/drill?rule=complaint_spike&region=%E5%B9%BF%E5%B7%9E\r\n\r\n" +
	"警告 complaint_spike · 告警中\r\n广州: 15 分钟内投诉 18 起，预期 7 起\r\n" +
	"当前值 18.46，预期值 7\r\n开始时间 2024-05-01 10:01:00 CST\r\n标签 queue=normal region=广州\r\n" +
	"查看详情: https://cockpit.example.com/drill?rule=complaint_spike&queue=normal\r\n"

func TestStartTLSAuthPlainExactMessage(t *testing.T) {
	cert, caFile := selfSigned(t)
	srv := &smtpd{t: t, cert: cert, startTLS: true, authMech: "PLAIN LOGIN", user: "alerts", pass: "s3cret-pw"}
	host, port := hostPort(t, srv.start())
	n, err := New(Config{
		Host: host, Port: port, CAFile: caFile,
		Username: "alerts", Password: "s3cret-pw",
		From: "Cockpit 告警 <alerts@example.com>",
		To:   []string{"ops@example.com", "值班 <duty@example.com>"},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.now = func() time.Time { return time.Date(2024, 5, 1, 10, 3, 0, 0, time.FixedZone("CST", 8*3600)) }
	if retry, err := n.Notify(context.Background(), notifytest.Firing()); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	s := srv.last()
	if !s.Delivered || !s.TLS || !s.AuthTLS || s.AuthUser != "alerts" || s.AuthMech != "PLAIN" {
		t.Fatalf("session %+v: want TLS before AUTH PLAIN as alerts", s)
	}
	if !strings.HasPrefix(s.MailFrom, "<alerts@example.com>") || strings.Join(s.RcptTo, ",") != "<ops@example.com>,<duty@example.com>" {
		t.Errorf("envelope from %s to %v", s.MailFrom, s.RcptTo)
	}
	p := parse(t, s.Data)
	dec := new(mime.WordDecoder)
	for k, want := range map[string]string{
		"Subject":        "【告警:2】complaint_spike 广州",
		"Message-Id":     "<ntf_01HZX3@example.com>",
		"Date":           "Wed, 01 May 2024 10:03:00 +0800",
		"Mime-Version":   "1.0",
		"Auto-Submitted": "auto-generated",
	} {
		got, err := dec.DecodeHeader(p.header.Get(k))
		if err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", k, got, err, want)
		}
	}
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Cockpit 告警" || from[0].Address != "alerts@example.com" {
		t.Errorf("From %v (%v)", from, err)
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" || to[1].Name != "值班" || to[1].Address != "duty@example.com" {
		t.Errorf("To %v (%v)", to, err)
	}
	if raw := p.header.Get("Subject"); !strings.HasPrefix(raw, "=?UTF-8?b?") {
		t.Errorf("Subject not RFC 2047 encoded: %q", raw)
	}
	for _, line := range strings.Split(string(s.Data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes", len(line))
		}
		for _, r := range line {
			if r > 0x7e {
				t.Fatalf("non-ASCII on the wire: %q", line)
			}
		}
	}
	if p.plain != wantPlain {
		t.Errorf("plain part\n got %q\nwant %q", p.plain, wantPlain)
	}
	for _, want := range []string{
		`<html lang="zh-CN">`,
		`<title>【告警:2】complaint_spike 广州</title>`,
		`<td colspan="2"><strong>严重</strong> complaint_spike · 告警中</td>`,
		`<td colspan="2">广州: 15 分钟内投诉 42 起，预期 9 起</td>`,
		`<td>当前值</td><td>42 (预期值 9)</td>`,
		`<td>开始时间</td><td>2024-05-01 10:00:00 CST</td>`,
		`<code>region=广州</code>`,
		`<a href="https://cockpit.example.com/drill?rule=complaint_spike&amp;region=%E5%B9%BF%E5%B7%9E">查看详情</a>`,
	} {
		if !strings.Contains(p.html, strings.ReplaceAll(want, "\n", "\r\n")) {
			t.Errorf("HTML lacks %s\n%s", want, p.html)
		}
	}
}

func TestImplicitTLSAndAuthLogin(t *testing.T) {
	cert, caFile := selfSigned(t)
	srv := &smtpd{t: t, cert: cert, implicit: true, authMech: "LOGIN", user: "u@example.com", pass: "p"}
	host, port := hostPort(t, srv.start())
	n, err := New(Config{Host: host, Port: port, Security: SecurityTLS, CAFile: caFile,
		Username: "u@example.com", Password: "p", From: "alerts@example.com", To: []string{"ops@example.com"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	s := srv.last()
	if !s.Delivered || s.AuthMech != "LOGIN" || !s.AuthTLS {
		t.Fatalf("session %+v", s)
	}
	p := parse(t, s.Data)
	if subj := p.header.Get("Subject"); subj != "[RESOLVED] complaint_spike Guangzhou" {
		t.Errorf("ASCII subject %q", subj)
	}
	if !strings.Contains(p.plain, "All alerts of this group are resolved.") || !strings.Contains(p.html, "All alerts of this group are resolved.") {
		t.Error("resolved mail does not say so")
	}
}

func TestPlainLoopbackRelay(t *testing.T) {
	srv := &smtpd{t: t}
	host, port := hostPort(t, srv.start())
	n, err := New(Config{Host: host, Port: port, Security: SecurityNone, From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), notifytest.Firing()); err != nil {
		t.Fatal(err)
	}
	if s := srv.last(); !s.Delivered || s.TLS {
		t.Fatalf("session %+v", s)
	}
	if err := (Config{Host: "smtp.example.com", Security: SecurityNone, From: "a@example.com", To: []string{"b@example.com"}}).Validate(); err == nil {
		t.Error("security none accepted for a remote host")
	}
}

func TestReplyCodes(t *testing.T) {
	cert, caFile := selfSigned(t)
	for _, tc := range []struct {
		name  string
		srv   *smtpd
		retry bool
	}{
		{"greeting 421", &smtpd{greeting: "421 4.3.2 shutting down"}, true},
		{"greeting 554", &smtpd{greeting: "554 5.3.2 go away"}, false},
		{"MAIL 451", &smtpd{replies: map[string]string{"MAIL": "451 4.3.0 try again later"}}, true},
		{"MAIL 550", &smtpd{replies: map[string]string{"MAIL": "550 5.7.1 sender rejected"}}, false},
		{"RCPT 452", &smtpd{replies: map[string]string{"RCPT": "452 4.2.2 mailbox full"}}, true},
		{"RCPT 550", &smtpd{replies: map[string]string{"RCPT": "550 5.1.1 no such user"}}, false},
		{"DATA 451", &smtpd{replies: map[string]string{"DATA": "451 4.7.1 greylisted"}}, true},
		{"DATA 554", &smtpd{replies: map[string]string{"DATA": "554 5.6.0 spam"}}, false},
		{"AUTH 535", &smtpd{authMech: "PLAIN", user: "x", pass: "other"}, false},
		{"AUTH 454", &smtpd{authMech: "PLAIN", replies: map[string]string{"AUTH": "454 4.7.0 temporary auth failure"}}, true},
		{"no STARTTLS", &smtpd{startTLS: false, authMech: "PLAIN"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv
			srv.t, srv.cert = t, cert
			if tc.name != "no STARTTLS" {
				srv.startTLS = true
			}
			if srv.authMech == "" {
				srv.authMech = "PLAIN"
			}
			if srv.user == "" {
				srv.user, srv.pass = "alerts", "pw"
			}
			host, port := hostPort(t, srv.start())
			n, err := New(Config{Host: host, Port: port, CAFile: caFile, Username: "alerts", Password: "pw",
				From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if err == nil || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want retry=%v", retry, err, tc.retry)
			}
			if strings.Contains(err.Error(), "pw") && !strings.Contains(tc.name, "AUTH") {
				t.Errorf("error mentions the password: %v", err)
			}
		})
	}
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	cert, _ := selfSigned(t)
	srv := &smtpd{t: t, cert: cert, startTLS: true}
	host, port := hostPort(t, srv.start())
	n, _ := New(Config{Host: host, Port: port, From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
	retry, err := n.Notify(context.Background(), notifytest.Firing())
	if err == nil || retry {
		t.Fatalf("Notify = %v, %v; want permanent certificate error", retry, err)
	}
}

func TestConnectionErrorsAndTimeout(t *testing.T) {
	// Refused: retry.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	host, port := hostPort(t, ln.Addr().String())
	ln.Close()
	n, _ := New(Config{Host: host, Port: port, Security: SecurityNone, From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
	if retry, err := n.Notify(context.Background(), notifytest.Firing()); err == nil || !retry {
		t.Fatalf("refused: %v, %v", retry, err)
	}

	// A server that never greets: ctx ends the attempt.
	host, port = hostPort(t, silent(t))
	n, _ = New(Config{Host: host, Port: port, Security: SecurityNone, From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent server: %v, %v", retry, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}

	// Cancellation (not a deadline) also ends it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	if retry, err := n.Notify(ctx2, notifytest.Firing()); err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, %v", retry, err)
	}
}

func TestInjectionIsInert(t *testing.T) {
	srv := &smtpd{t: t}
	host, port := hostPort(t, srv.start())
	n, _ := New(Config{Host: host, Port: port, Security: SecurityNone, From: "a@example.com", To: []string{"b@example.com"}}, nil, nil)
	notif := notifytest.Injected("en")
	notif.GroupLabels["region"] = "x\r\nBcc: victim@example.com\r\n\r\n<b>body</b>"
	if _, err := n.Notify(context.Background(), notif); err != nil {
		t.Fatal(err)
	}
	data := srv.last().Data
	p := parse(t, data)
	if p.header.Get("Bcc") != "" || strings.Contains(string(data), "\r\nBcc:") {
		t.Errorf("header injection: %s", data)
	}
	for _, bad := range []string{"<img", "<script", "</script>", "javascript:", "<b>"} {
		if strings.Contains(p.html, bad) {
			t.Errorf("HTML contains %q:\n%s", bad, p.html)
		}
	}
	if !strings.Contains(p.html, "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("hostile text not escaped visibly:\n%s", p.html)
	}
}

func TestMessageID(t *testing.T) {
	for id, want := range map[string]string{
		"ntf_01HZX3":    "<ntf_01HZX3@example.com>",
		"a b<c>":        "",
		"..":            "",
		"ntf.2024.0001": "<ntf.2024.0001@example.com>",
	} {
		got := messageID(id, "x@example.com")
		if want != "" && got != want {
			t.Errorf("messageID(%q) = %s, want %s", id, got, want)
		}
		if want == "" && (strings.ContainsAny(strings.Trim(got, "<>"), " <>") || len(got) != len("<@example.com>")+32) {
			t.Errorf("messageID(%q) = %s, want a hash", id, got)
		}
		if messageID(id, "x@example.com") != got {
			t.Error("not stable")
		}
	}
}

func TestConfigRedactsAndValidates(t *testing.T) {
	c := Config{Host: "smtp.example.com", Username: "u", Password: "TOPSECRETPW", From: "a@example.com", To: []string{"b@example.com"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %s", c, c, c.String()); strings.Contains(s, "TOPSECRETPW") {
		t.Errorf("leak: %s", s)
	}
	for name, mod := range map[string]func(*Config){
		"no host":    func(c *Config) { c.Host = "" },
		"bad from":   func(c *Config) { c.From = "not an address" },
		"no to":      func(c *Config) { c.To = nil },
		"bad to":     func(c *Config) { c.To = []string{"@@"} },
		"bad sec":    func(c *Config) { c.Security = "ssl" },
		"bad mech":   func(c *Config) { c.AuthMechanism = "CRAM-MD5" },
		"pw no user": func(c *Config) { c.Username = "" },
		"bad port":   func(c *Config) { c.Port = 70000 },
	} {
		x := c
		mod(&x)
		if err := x.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
