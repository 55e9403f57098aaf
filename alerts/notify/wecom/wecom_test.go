package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/ratelimit"
)

const key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"

type robot struct {
	mu     sync.Mutex
	srv    *httptest.Server
	keys   []string
	bodies [][]byte
}

func newRobot(t *testing.T, status int, answer string) *robot {
	t.Helper()
	r := &robot{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.keys = append(r.keys, req.URL.Query().Get("key"))
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *robot) url() notify.SecretURL {
	return notify.SecretURL(r.srv.URL + "/cgi-bin/webhook/send?key=" + key)
}

func (r *robot) body(i int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[i]
}

func (r *robot) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

const wantFiring = `{"msgtype":"markdown","markdown":{"content":` +
	`"### 【告警:2】complaint_spike 广州\n\n**严重** complaint_spike · 告警中\n区域投诉激增\n` +
	`广州: 15 分钟内投诉 42 起，预期 9 起\n当前值 42，预期值 9\n开始时间 2024-05-01 10:00:00 CST\n` +
	`标签 queue=vip region=广州\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026region=%E5%B9%BF%E5%B7%9E)\n\n` +
	`**警告** complaint_spike · 告警中\n广州: 15 分钟内投诉 18 起，预期 7 起\n当前值 18.46，预期值 7\n` +
	`开始时间 2024-05-01 10:01:00 CST\n标签 queue=normal region=广州\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026queue=normal)\n\u003c@zhangsan\u003e"}}`

func TestExactPayload(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url(), MentionUserIDs: []string{"zhangsan"}}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := n.Notify(context.Background(), notifytest.Firing()); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	if got := string(r.body(0)); got != wantFiring {
		t.Errorf("body\n got %s\nwant %s", got, wantFiring)
	}
	if r.keys[0] != key {
		t.Errorf("key %q", r.keys[0])
	}

	// Resolved: no mention, English, says so.
	if _, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(r.body(1), &m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Markdown.Content, "### [RESOLVED] complaint_spike Guangzhou\n\nAll alerts of this group are resolved.\n") ||
		strings.Contains(m.Markdown.Content, "<@") || !strings.Contains(m.Markdown.Content, "Resolved 2024-05-01 02:25:00 UTC") {
		t.Errorf("resolved content:\n%s", m.Markdown.Content)
	}
}

func TestAnswerHandling(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		answer  string
		wantErr bool
		retry   bool
	}{
		{"ok", 200, `{"errcode":0,"errmsg":"ok"}`, false, false},
		{"freq limit", 200, `{"errcode":45009,"errmsg":"api freq out of limit, hint: [x], from ip: 1.2.3.4"}`, true, true},
		{"busy", 200, `{"errcode":-1,"errmsg":"system busy"}`, true, true},
		{"bad key", 200, `{"errcode":93000,"errmsg":"invalid webhook url, hint: [x]"}`, true, false},
		{"empty", 200, `{"errcode":44004,"errmsg":"empty content"}`, true, false},
		{"garbage", 200, `not json`, true, false},
		{"http 503", 503, ``, true, true},
		{"http 403", 403, ``, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRobot(t, tc.status, tc.answer)
			n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if (err != nil) != tc.wantErr || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want err=%v retry=%v", retry, err, tc.wantErr, tc.retry)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func TestTruncatesAt4096BytesOnRuneBoundary(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url(), MentionUserIDs: []string{"lisi"}}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	notif := notifytest.Firing()
	notif.Alerts[0].Explanation = strings.Repeat("投诉激增", 2000) // one 24 KB line
	if _, err := n.Notify(context.Background(), notif); err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(r.body(0), &m); err != nil {
		t.Fatal(err)
	}
	c := m.Markdown.Content
	if len(c) > MaxContentBytes || !utf8.ValidString(c) || !strings.Contains(c, "…") || !strings.HasSuffix(c, "<@lisi>") {
		t.Errorf("content: %d bytes, valid=%v, tail %q", len(c), utf8.ValidString(c), c[len(c)-40:])
	}
	if len(c) < MaxContentBytes-16 {
		t.Errorf("cut too early: %d bytes", len(c))
	}
}

func TestRateLimitAndTimeout(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.bucket = ratelimit.New(60, 1) // one a second
	if _, err := n.Notify(context.Background(), notifytest.Firing()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry {
		t.Fatalf("Notify over the limit = %v, %v; want retryable", retry, err)
	}
	if r.count() != 1 {
		t.Errorf("robot got %d messages, want 1", r.count())
	}

	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-block:
		case <-req.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	n2, _ := New(Config{URL: notify.SecretURL(slow.URL + "/?key=" + key)}, slow.Client(), nil)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	retry, err = n2.Notify(ctx2, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), key) {
		t.Fatalf("Notify to a hung robot = %v, %v", retry, err)
	}
}

func TestInjectionIsInert(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), notifytest.Injected("zh-CN")); err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(r.body(0), &m); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<", ">", "**bold**", "](", "`", "javascript", "\n#", "\n>", "@all"} {
		if strings.Contains(m.Markdown.Content, bad) {
			t.Errorf("content contains %q:\n%s", bad, m.Markdown.Content)
		}
	}
}

func TestConfigRedacts(t *testing.T) {
	c := Config{URL: notify.SecretURL("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + key)}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	for _, s := range []string{c.String(), string(b)} {
		if strings.Contains(s, key) {
			t.Errorf("leak: %s", s)
		}
	}
	if err := (Config{URL: c.URL, MentionUserIDs: []string{"<@all>"}}).Validate(); err == nil {
		t.Error("accepted a mention with markup")
	}
	var _ alerts.Notifier = (*Notifier)(nil)
}
