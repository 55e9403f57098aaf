package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
)

// verify is an independent Standard Webhooks verifier written from the
// spec (spec/standard-webhooks.md, "Verifying signatures"): decode the
// whsec_ secret, HMAC-SHA256 "<id>.<timestamp>.<body>", compare each
// space-separated "v1,<base64>" in constant time, and check the timestamp
// against a tolerance.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp: %w", err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp out of tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("bad secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// TestVerifierAgainstSpecVector proves the test's verifier right with the
// vector the Standard Webhooks reference libraries test against.
func TestVerifierAgainstSpecVector(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	if err := verify(secret, h, body, time.Unix(1614265330, 0)); err != nil {
		t.Fatalf("spec vector: %v", err)
	}
	if err := verify(secret, h, []byte(`{"test": 2432232315}`), time.Unix(1614265330, 0)); err == nil {
		t.Fatal("tampered body verified")
	}
	if err := verify(secret, h, body, time.Unix(1614265330+600, 0)); err == nil {
		t.Fatal("stale timestamp verified")
	}
}

const (
	secret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secret2 = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
)

type recorded struct {
	header http.Header
	body   []byte
	method string
}

func receiver(t *testing.T, status int) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recorded{r.Header.Clone(), b, r.Method})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), got...)
	}
}

const wantBody = `{"version":"1","id":"ntf_01HZX3","receiver":"ops","group_key":"{}:{region=\"广州\"}",` +
	`"group_labels":{"region":"广州"},"status":"firing","alerts":[` +
	`{"id":"a1","fingerprint":"fp1","rule":"complaint_spike","severity":"critical","status":"firing",` +
	`"labels":{"queue":"vip","region":"广州"},"value":42,"expected":9,` +
	`"explanation":"广州: 15 分钟内投诉 42 起，预期 9 起","summary":"区域投诉激增",` +
	`"starts_at":"2024-05-01T02:00:00Z",` +
	`"url":"https://cockpit.example.com/drill?rule=complaint_spike\u0026region=%E5%B9%BF%E5%B7%9E"},` +
	`{"id":"a2","fingerprint":"fp2","rule":"complaint_spike","severity":"warning","status":"firing",` +
	`"labels":{"queue":"normal","region":"广州"},"value":18.456,"expected":7,` +
	`"explanation":"广州: 15 分钟内投诉 18 起，预期 7 起",` +
	`"starts_at":"2024-05-01T02:01:00Z",` +
	`"url":"https://cockpit.example.com/drill?rule=complaint_spike\u0026queue=normal"}],` +
	`"lang":"zh-CN","external_url":"https://cockpit.example.com","created_at":"2024-05-01T02:02:00Z"}`

func TestNotifySignsExactPayload(t *testing.T) {
	srv, got := receiver(t, http.StatusNoContent)
	n, err := New(Config{
		URL:     notify.SecretURL(srv.URL + "/hook"),
		Secret:  secret1,
		Headers: map[string]notify.Secret{"X-Api-Key": "k-123"},
	}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), notifytest.Firing())
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v; want success", retry, err)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost {
		t.Errorf("method %s", r.method)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if id := r.header.Get("webhook-id"); id != "ntf_01HZX3" {
		t.Errorf("webhook-id %q, want the notification ID", id)
	}
	if k := r.header.Get("X-Api-Key"); k != "k-123" {
		t.Errorf("extra header %q", k)
	}
	if string(r.body) != wantBody {
		t.Errorf("body\n got %s\nwant %s", r.body, wantBody)
	}
	if err := verify(secret1, r.header, r.body, time.Now()); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if err := verify(secret2, r.header, r.body, time.Now()); err == nil {
		t.Error("signature verifies under a foreign secret")
	}
	var back alerts.Notification
	if err := json.Unmarshal(r.body, &back); err != nil {
		t.Fatal(err)
	}
	if back.Alerts[0].Explanation != "广州: 15 分钟内投诉 42 起，预期 9 起" {
		t.Errorf("Chinese text mangled: %q", back.Alerts[0].Explanation)
	}
}

func TestRetrySameIDFreshSignature(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	n, err := New(Config{URL: notify.SecretURL(srv.URL), Secret: secret1}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 0)
	for i := range 2 {
		n.now = func() time.Time { return base.Add(time.Duration(i) * time.Minute) }
		if _, err := n.Notify(context.Background(), notifytest.Firing()); err != nil {
			t.Fatal(err)
		}
	}
	r := got()
	if r[0].header.Get("webhook-id") != r[1].header.Get("webhook-id") {
		t.Error("webhook-id changed between attempts")
	}
	if r[0].header.Get("webhook-signature") == r[1].header.Get("webhook-signature") {
		t.Error("signature did not change with the timestamp")
	}
	for i, req := range r {
		if err := verify(secret1, req.header, req.body, base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
}

func TestSecretRotationSignsWithBoth(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	n, err := New(Config{URL: notify.SecretURL(srv.URL), Secret: secret2, PreviousSecret: secret1}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), notifytest.Resolved()); err != nil {
		t.Fatal(err)
	}
	r := got()[0]
	if f := strings.Fields(r.header.Get("webhook-signature")); len(f) != 2 {
		t.Fatalf("signature header %q, want two signatures", f)
	}
	for _, s := range []string{secret1, secret2} {
		if err := verify(s, r.header, r.body, time.Now()); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestStatusRetryDecision(t *testing.T) {
	for _, tc := range []struct {
		status  int
		wantErr bool
		retry   bool
	}{
		{200, false, false}, {202, false, false}, {204, false, false},
		{301, true, false}, {307, true, false},
		{400, true, false}, {401, true, false}, {403, true, false}, {404, true, false},
		{410, true, false}, {422, true, false},
		{408, true, true}, {429, true, true},
		{500, true, true}, {502, true, true}, {503, true, true}, {504, true, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			n, err := New(Config{URL: notify.SecretURL(srv.URL), Secret: secret1}, srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Firing())
			if (err != nil) != tc.wantErr || retry != tc.retry {
				t.Fatalf("Notify = %v, %v; want err=%v retry=%v", retry, err, tc.wantErr, tc.retry)
			}
		})
	}
}

func TestTimeoutViaContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	n, err := New(Config{URL: notify.SecretURL(srv.URL), Secret: secret1}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	retry, err := n.Notify(ctx, notifytest.Firing())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v; want retryable deadline error", retry, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}

	// The configured timeout applies without a ctx deadline.
	n2, _ := New(Config{URL: notify.SecretURL(srv.URL), Secret: secret1, Timeout: 100 * time.Millisecond}, srv.Client(), nil)
	if retry, err := n2.Notify(context.Background(), notifytest.Firing()); err == nil || !retry {
		t.Fatalf("Notify with timeout = %v, %v", retry, err)
	}
}

func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // connection refused from now on
	cfg := Config{
		URL:     notify.SecretURL(addr + "/hook?token=TOPSECRETTOKEN"),
		Secret:  secret1,
		Headers: map[string]notify.Secret{"Authorization": "Bearer HEADERSECRET"},
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := New(cfg, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), notifytest.Firing())
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want retryable connection error", retry, err)
	}
	logger.Info("config", "cfg", cfg)
	yamlish, _ := json.Marshal(cfg)
	for _, s := range []string{err.Error(), logs.String(), cfg.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), string(yamlish)} {
		for _, secret := range []string{"TOPSECRETTOKEN", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "HEADERSECRET"} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %s leaked in %q", secret, s)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "https://example.com/hook", Secret: secret1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no url":         func(c *Config) { c.URL = "" },
		"relative url":   func(c *Config) { c.URL = "/hook" },
		"ftp url":        func(c *Config) { c.URL = "ftp://example.com" },
		"no secret":      func(c *Config) { c.Secret = "" },
		"not base64":     func(c *Config) { c.Secret = "whsec_!!!" },
		"short key":      func(c *Config) { c.Secret = "whsec_c2hvcnQ=" },
		"bad previous":   func(c *Config) { c.PreviousSecret = "whsec_c2hvcnQ=" },
		"reserved hdr":   func(c *Config) { c.Headers = map[string]notify.Secret{"Webhook-Id": "x"} },
		"content-type":   func(c *Config) { c.Headers = map[string]notify.Secret{"content-type": "x"} },
		"negative delay": func(c *Config) { c.Timeout = -time.Second },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %v", name, c)
		}
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("%s: New accepted %v", name, c)
		}
	}
}

func TestRejectsDottedID(t *testing.T) {
	n, err := New(Config{URL: "https://example.invalid/", Secret: secret1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	notif := notifytest.Firing()
	notif.ID = "a.b"
	if retry, err := n.Notify(context.Background(), notif); err == nil || retry {
		t.Fatalf("Notify = %v, %v; want permanent error", retry, err)
	}
}
