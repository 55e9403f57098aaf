package dingtalk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/ratelimit"
)

const (
	token  = "TOKEN0123456789abcdef"
	secret = "SECfedcba9876543210"
)

type robot struct {
	mu     sync.Mutex
	srv    *httptest.Server
	urls   []*url.URL
	bodies [][]byte
	status int
	answer string
}

func newRobot(t *testing.T, status int, answer string) *robot {
	t.Helper()
	r := &robot{status: status, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.urls = append(r.urls, req.URL)
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(r.status)
		io.WriteString(w, r.answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *robot) url() notify.SecretURL {
	return notify.SecretURL(r.srv.URL + "/robot/send?access_token=" + token)
}

// snapshot returns copies of what the robot received, under the lock.
func (r *robot) snapshot() ([]*url.URL, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*url.URL(nil), r.urls...), append([][]byte(nil), r.bodies...)
}

func (r *robot) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.urls)
}

const wantFiring = `{"msgtype":"markdown","markdown":{"title":"【告警:2】complaint_spike 广州","text":` +
	`"### 【告警:2】complaint_spike 广州\n\n**严重** complaint_spike · 告警中\n\n区域投诉激增\n\n` +
	`广州: 15 分钟内投诉 42 起，预期 9 起\n\n当前值 42，预期值 9\n\n开始时间 2024-05-01 10:00:00 CST\n\n` +
	`标签 queue=vip region=广州\n\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026region=%E5%B9%BF%E5%B7%9E)\n\n` +
	`**警告** complaint_spike · 告警中\n\n广州: 15 分钟内投诉 18 起，预期 7 起\n\n当前值 18.46，预期值 7\n\n` +
	`开始时间 2024-05-01 10:01:00 CST\n\n标签 queue=normal region=广州\n\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026queue=normal)\n\n@13800000000"},` +
	`"at":{"atMobiles":["13800000000"]}}`

func TestSignedExactPayload(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url(), Secret: secret, AtMobiles: []string{"13800000000"}}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	retry, err := n.Notify(context.Background(), notifytest.Firing())
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	after := time.Now().UnixMilli()
	urls, bodies := r.snapshot()
	u, body := urls[0], bodies[0]
	if string(body) != wantFiring {
		t.Errorf("body\n got %s\nwant %s", body, wantFiring)
	}
	q := u.Query()
	if q.Get("access_token") != token {
		t.Errorf("access_token %q", q.Get("access_token"))
	}
	ts := q.Get("timestamp")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ms < before || ms > after {
		t.Fatalf("timestamp %q not the send time in ms (%d..%d)", ts, before, after)
	}
	// DingTalk's definition: base64(HMAC-SHA256(key=secret,
	// msg=timestamp+"\n"+secret)), URL-encoded in the query.
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, ts+"\n"+secret)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := q.Get("sign"); got != want {
		t.Errorf("sign %q, want %q", got, want)
	}
	if !strings.Contains(u.RawQuery, "sign="+url.QueryEscape(want)) {
		t.Errorf("sign not URL-encoded in %q", u.RawQuery)
	}
}

func TestUnsignedLeavesURLAlone(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil {
		t.Fatal(err)
	}
	urls, bodies := r.snapshot()
	if got := urls[0].RawQuery; got != "access_token="+token {
		t.Errorf("query %q", got)
	}
	var m message
	if err := json.Unmarshal(bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	if m.At != nil {
		t.Errorf("at block without mentions: %+v", m.At)
	}
	if !strings.Contains(m.Markdown.Text, "All alerts of this group are resolved.") || m.Markdown.Title != "[RESOLVED] complaint_spike Guangzhou" {
		t.Errorf("resolved message: %+v", m.Markdown)
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
		{"too fast", 200, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`, true, true},
		{"throttled", 200, `{"errcode":410100,"errmsg":"发送速度太快而限流"}`, true, true},
		{"busy", 200, `{"errcode":-1,"errmsg":"系统繁忙"}`, true, true},
		{"keyword", 200, `{"errcode":310000,"errmsg":"keywords not in content"}`, true, false},
		{"sign", 200, `{"errcode":310000,"errmsg":"sign not match"}`, true, false},
		{"token", 200, `{"errcode":300001,"errmsg":"token is not exist"}`, true, false},
		{"unknown code", 200, `{"errcode":999999,"errmsg":"?"}`, true, false},
		{"no errcode", 200, `<html>portal</html>`, true, false},
		{"http 500", 500, `oops`, true, true},
		{"http 502 json", 502, `{"errcode":-1}`, true, true},
		{"http 400", 400, `bad`, true, false},
		{"http 404", 404, ``, true, false},
		{"http 429", 429, ``, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRobot(t, tc.status, tc.answer)
			n, err := New(Config{URL: r.url(), Secret: secret}, r.srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if (err != nil) != tc.wantErr || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want err=%v retry=%v", retry, err, tc.wantErr, tc.retry)
			}
			if err != nil && (strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "sign=")) {
				t.Errorf("error leaks the URL: %v", err)
			}
		})
	}
}

func TestRateLimitWaits(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Default: 20 a minute. The 21st must wait ~3s, beyond this deadline,
	// so it fails at once, retryable, without reaching the robot.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := n.Notify(ctx, notifytest.Firing()); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	start := time.Now()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("21st Notify = %v, %v; want retryable rate-limit error", retry, err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("gave up after %s; should give up at once", time.Since(start))
	}
	if got := r.requests(); got != 20 {
		t.Errorf("robot got %d messages, want 20", got)
	}

	// With room in the deadline, Notify waits for the slot.
	n.bucket = ratelimit.New(600, 1) // one every 100 ms
	start = time.Now()
	for range 3 {
		if _, err := n.Notify(context.Background(), notifytest.Firing()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("3 messages at 10/s took %s, want ≥ 200ms", d)
	}
}

func TestTimeoutViaContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	n, err := New(Config{URL: notify.SecretURL(srv.URL + "/robot/send?access_token=" + token)}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestInjectionIsInert(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url()}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"zh-CN", "en"} {
		if _, err := n.Notify(context.Background(), notifytest.Injected(lang)); err != nil {
			t.Fatal(err)
		}
	}
	_, bodies := r.snapshot()
	for _, b := range bodies {
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		text := m.Markdown.Text
		for _, bad := range []string{"<", ">", "**bold**", "[link]", "](", "`", "javascript:", "\n#", "\n>", "@all"} {
			if strings.Contains(text, bad) {
				t.Errorf("markdown contains %q:\n%s", bad, text)
			}
		}
		if !strings.Contains(text, "＜/script＞＜img src=x onerror=alert（1）＞ ＊＊bold＊＊ ［link］（http://x）") {
			t.Errorf("hostile text not kept readable:\n%s", text)
		}
		if m.At != nil {
			t.Errorf("@all in a label became a mention: %+v", m.At)
		}
	}
}

func TestConfig(t *testing.T) {
	c := Config{URL: "https://oapi.dingtalk.com/robot/send?access_token=" + token, Secret: secret}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v|%+v|%#v", c, c, c)} {
		if strings.Contains(s, token) || strings.Contains(s, secret) {
			t.Errorf("config print leaks a secret: %s", s)
		}
	}
	for name, bad := range map[string]Config{
		"no url":      {},
		"bad mobile":  {URL: c.URL, AtMobiles: []string{"138 **x**"}},
		"bad zone":    {URL: c.URL, TimeZone: "Mars/Olympus"},
		"neg timeout": {URL: c.URL, Timeout: -1},
		"tiny max":    {URL: c.URL, MaxBytes: 10},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTruncatesLongMessages(t *testing.T) {
	r := newRobot(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	n, err := New(Config{URL: r.url(), MaxBytes: 1000, AtMobiles: []string{"13800000000"}}, r.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	notif := notifytest.Firing()
	for range 50 {
		notif.Alerts = append(notif.Alerts, notif.Alerts[0])
	}
	if _, err := n.Notify(context.Background(), notif); err != nil {
		t.Fatal(err)
	}
	_, bodies := r.snapshot()
	var m message
	if err := json.Unmarshal(bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Markdown.Text) > 1000 || !strings.Contains(m.Markdown.Text, "…") || !strings.HasSuffix(m.Markdown.Text, "@13800000000") {
		t.Errorf("truncated text (%d bytes):\n%s", len(m.Markdown.Text), m.Markdown.Text)
	}
}
