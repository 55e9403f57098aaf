package feishu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
	"github.com/cockpit-cs/cockpit/alerts/notify/internal/ratelimit"
)

const (
	hook   = "7f1c2a3b-hook-token"
	secret = "feishuSigningSecret123"
)

type bot struct {
	mu     sync.Mutex
	srv    *httptest.Server
	bodies [][]byte
}

func newBot(t *testing.T, status int, answer string) *bot {
	t.Helper()
	b := &bot{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies = append(b.bodies, body)
		b.mu.Unlock()
		if r.URL.Path != "/open-apis/bot/v2/hook/"+hook {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bot) url() notify.SecretURL {
	return notify.SecretURL(b.srv.URL + "/open-apis/bot/v2/hook/" + hook)
}

func (b *bot) body(i int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bodies[i]
}

// feishuSign follows Feishu's guide: HMAC-SHA256 keyed with
// timestamp+"\n"+secret over an empty message, base64.
func feishuSign(ts, secret string) string {
	mac := hmac.New(sha256.New, []byte(ts+"\n"+secret))
	mac.Write(nil)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

const wantCard = `"msg_type":"interactive","card":{"config":{"wide_screen_mode":true},` +
	`"header":{"template":"red","title":{"tag":"plain_text","content":"【告警:2】complaint_spike 广州"}},` +
	`"elements":[{"tag":"markdown","content":"**严重** complaint_spike · 告警中\n区域投诉激增\n` +
	`广州: 15 分钟内投诉 42 起，预期 9 起\n当前值 42，预期值 9\n开始时间 2024-05-01 10:00:00 CST\n` +
	`标签 queue=vip region=广州\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026region=%E5%B9%BF%E5%B7%9E)\n\n` +
	`**警告** complaint_spike · 告警中\n广州: 15 分钟内投诉 18 起，预期 7 起\n当前值 18.46，预期值 7\n` +
	`开始时间 2024-05-01 10:01:00 CST\n标签 queue=normal region=广州\n` +
	`[查看详情](https://cockpit.example.com/drill?rule=complaint_spike\u0026queue=normal)"}]}}`

func TestSignedCardExactPayload(t *testing.T) {
	b := newBot(t, 200, `{"code":0,"data":{},"msg":"success"}`)
	n, err := New(Config{URL: b.url(), Secret: secret}, b.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Unix()
	if retry, err := n.Notify(context.Background(), notifytest.Firing()); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	body := b.body(0)
	var head struct {
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatal(err)
	}
	ts, err := strconv.ParseInt(head.Timestamp, 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Fatalf("timestamp %q is not the send time in seconds", head.Timestamp)
	}
	want := `{"timestamp":"` + head.Timestamp + `","sign":"` + feishuSign(head.Timestamp, secret) + `",` + wantCard
	if string(body) != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
}

func TestSignKnownValue(t *testing.T) {
	// Pins the definition so that a refactor swapping key and message
	// (DingTalk's order) fails: this value was computed with the
	// guide's key = "1599360473\nsecret", empty message.
	got := sign("1599360473", "secret")
	if got != feishuSign("1599360473", "secret") {
		t.Fatalf("sign = %s", got)
	}
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte("1599360473\nsecret"))
	if got == base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatal("sign uses DingTalk's key/message order")
	}
}

func TestPostAndText(t *testing.T) {
	b := newBot(t, 200, `{"StatusCode":0,"StatusMessage":"success"}`)
	for i, mt := range []string{MsgPost, MsgText} {
		n, err := New(Config{URL: b.url(), MsgType: mt}, b.srv.Client(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if retry, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil || retry {
			t.Fatalf("%s: Notify = %v, %v", mt, retry, err)
		}
		got := string(b.body(i))
		if strings.Contains(got, `"timestamp"`) || strings.Contains(got, `"sign"`) {
			t.Errorf("%s: unsigned bot got signature fields: %s", mt, got)
		}
		var want string
		switch mt {
		case MsgPost:
			want = `{"msg_type":"post","content":{"post":{"en_us":{"title":"[RESOLVED] complaint_spike Guangzhou","content":[` +
				`[{"tag":"text","text":"All alerts of this group are resolved."}],[{"tag":"text","text":""}],` +
				`[{"tag":"text","text":"critical complaint_spike · resolved"}],` +
				`[{"tag":"text","text":"Guangzhou: 8 complaints in 15 min, expected 9"}],` +
				`[{"tag":"text","text":"Value 8, expected 9"}],[{"tag":"text","text":"Started 2024-05-01 02:00:00 UTC"}],` +
				`[{"tag":"text","text":"Resolved 2024-05-01 02:25:00 UTC"}],[{"tag":"text","text":"Labels region=Guangzhou"}],` +
				`[{"tag":"a","text":"Details","href":"https://cockpit.example.com/drill?rule=complaint_spike"}]]}}}}`
		case MsgText:
			want = `{"msg_type":"text","content":{"text":"[RESOLVED] complaint_spike Guangzhou\n\n` +
				`All alerts of this group are resolved.\n\ncritical complaint_spike · resolved\n` +
				`Guangzhou: 8 complaints in 15 min, expected 9\nValue 8, expected 9\n` +
				`Started 2024-05-01 02:00:00 UTC\nResolved 2024-05-01 02:25:00 UTC\nLabels region=Guangzhou\n` +
				`Details: https://cockpit.example.com/drill?rule=complaint_spike\n"}}`
		}
		if got != want {
			t.Errorf("%s body\n got %s\nwant %s", mt, got, want)
		}
	}
}

func TestHeaderColour(t *testing.T) {
	b := newBot(t, 200, `{"code":0,"msg":"success"}`)
	n, _ := New(Config{URL: b.url()}, b.srv.Client(), nil)
	warn := notifytest.Firing()
	warn.Alerts = warn.Alerts[1:]
	info := notifytest.Firing()
	info.Alerts[0].Severity, info.Alerts[1].Severity = "info", "info"
	for i, tc := range []struct {
		notif  *alerts.Notification
		colour string
	}{
		{notifytest.Firing(), "red"},
		{warn, "orange"},
		{info, "blue"},
		{notifytest.Resolved(), "green"},
	} {
		if _, err := n.Notify(context.Background(), tc.notif); err != nil {
			t.Fatal(err)
		}
		var m struct {
			Card card `json:"card"`
		}
		if err := json.Unmarshal(b.body(i), &m); err != nil {
			t.Fatal(err)
		}
		if m.Card.Header.Template != tc.colour {
			t.Errorf("case %d: colour %q, want %q", i, m.Card.Header.Template, tc.colour)
		}
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
		{"ok", 200, `{"code":0,"msg":"success","data":{}}`, false, false},
		{"ok legacy", 200, `{"Extra":null,"StatusCode":0,"StatusMessage":"success"}`, false, false},
		{"frequency", 200, `{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}`, true, true},
		{"too many", 200, `{"code":9499,"msg":"too many request"}`, true, true},
		{"bad request 9499", 400, `{"code":9499,"msg":"Bad Request"}`, true, false},
		{"sign", 200, `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`, true, false},
		{"sign on 400", 400, `{"code":19021,"msg":"sign match fail"}`, true, false},
		{"keyword", 200, `{"code":19024,"msg":"Key Words Not Found"}`, true, false},
		{"legacy error", 200, `{"StatusCode":19001,"StatusMessage":"param invalid: incoming webhook access token invalid"}`, true, false},
		{"no code", 200, `{}`, true, false},
		{"http 500", 500, `upstream`, true, true},
		{"http 429", 429, ``, true, true},
		{"http 404", 404, ``, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBot(t, tc.status, tc.answer)
			n, err := New(Config{URL: b.url(), Secret: secret}, b.srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if (err != nil) != tc.wantErr || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want err=%v retry=%v", retry, err, tc.wantErr, tc.retry)
			}
			if err != nil && (strings.Contains(err.Error(), hook) || strings.Contains(err.Error(), secret)) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestRateLimitAndTimeout(t *testing.T) {
	b := newBot(t, 200, `{"code":0,"msg":"success"}`)
	n, _ := New(Config{URL: b.url()}, b.srv.Client(), nil)
	// Default: bursts of 5.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for i := range 5 {
		if _, err := n.Notify(ctx, notifytest.Firing()); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if retry, err := n.Notify(ctx, notifytest.Firing()); err == nil || !retry {
		t.Fatalf("6th in a burst = %v, %v; want retryable", retry, err)
	}
	n.bucket = ratelimit.New(1200, 1)
	if _, err := n.Notify(context.Background(), notifytest.Firing()); err != nil {
		t.Fatal(err)
	}

	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	n2, _ := New(Config{URL: notify.SecretURL(slow.URL + "/open-apis/bot/v2/hook/" + hook)}, slow.Client(), nil)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	retry, err := n2.Notify(ctx2, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), hook) {
		t.Fatalf("Notify to a hung bot = %v, %v", retry, err)
	}
}

func TestInjectionIsInert(t *testing.T) {
	b := newBot(t, 200, `{"code":0,"msg":"success"}`)
	for i, mt := range []string{MsgInteractive, MsgText, MsgPost} {
		n, _ := New(Config{URL: b.url(), MsgType: mt}, b.srv.Client(), nil)
		if _, err := n.Notify(context.Background(), notifytest.Injected("en")); err != nil {
			t.Fatal(err)
		}
		var m message
		if err := json.Unmarshal(b.body(i), &m); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(m.Content)
		if m.Card != nil {
			raw, _ = json.Marshal(m.Card.Elements)
		}
		// Decode the JSON escapes back to text for the checks.
		var text any
		_ = json.Unmarshal(raw, &text)
		s := strings.ReplaceAll(string(mustJSON(text)), `\u003c`, "<")
		s = strings.ReplaceAll(s, `\u003e`, ">")
		bad := []string{"<", "javascript"}
		if mt == MsgInteractive {
			bad = append(bad, "**bold**", "](", "`", ">")
		}
		for _, x := range bad {
			if strings.Contains(s, x) {
				t.Errorf("%s: contains %q: %s", mt, x, s)
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestConfig(t *testing.T) {
	c := Config{URL: "https://open.feishu.cn/open-apis/bot/v2/hook/" + hook, Secret: secret}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(c)
	for _, s := range []string{c.String(), string(js)} {
		if strings.Contains(s, hook) || strings.Contains(s, secret) {
			t.Errorf("leak: %s", s)
		}
	}
	if err := (Config{URL: c.URL, MsgType: "image"}).Validate(); err == nil {
		t.Error("accepted msg_type image")
	}
}
