package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chstore"
	"github.com/cockpit-cs/cockpit/internal/testaddr"
)

// syncBuffer collects the demo's log while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func httpDo(t *testing.T, method, url, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var insertedRE = regexp.MustCompile(`(?m)^cockpit_ingest_inserted_total (\S+)$`)

// TestDemo runs `cockpit demo` as a user would and watches events flow
// from the simulator through Kafka and ingest into ClickHouse, through the
// same ports a user's own clients would use.
func TestDemo(t *testing.T) {
	httpAddr, kafkaAddr, chAddr := testaddr.Free(t), testaddr.Free(t), testaddr.Free(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	exit := make(chan int, 1)
	dataDir := t.TempDir()
	go func() {
		exit <- Main(ctx, []string{"demo", "--http", httpAddr, "--kafka-listen", kafkaAddr,
			"--clickhouse-listen", chAddr, "--data-dir", dataDir, "--simulate-backfill", "10m"}, io.Discard, &logs)
	}()

	deadline := time.Now().Add(2 * time.Minute)
	var inserted float64
	for time.Now().Before(deadline) {
		select {
		case code := <-exit:
			t.Fatalf("demo exited early with %d:\n%s", code, logs.String())
		default:
		}
		if code, body := httpGet("http://" + httpAddr + "/metrics"); code == 200 {
			if m := insertedRE.FindStringSubmatch(body); m != nil {
				inserted, _ = strconv.ParseFloat(m[1], 64)
			}
		}
		if inserted >= 1000 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if inserted < 1000 {
		t.Fatalf("only %v events inserted after 2 minutes:\n%s", inserted, logs.String())
	}
	if code, body := httpGet("http://" + httpAddr + "/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("/readyz = %d %s", code, body)
	}
	// The engine's HTTP interface answers an ordinary client with the
	// read-only account the demo printed on its first start.
	creds, err := chstore.ReadCredentials(filepath.Join(dataDir, "clickhouse", chstore.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), creds.ReadOnlyPassword) {
		t.Errorf("the read-only account was not printed on first start")
	}
	count := "/?query=SELECT+count()+FROM+cockpit.events"
	code, body := httpGet("http://" + creds.ReadOnlyUser + ":" + creds.ReadOnlyPassword + "@" + chAddr + count)
	rows, _ := strconv.Atoi(strings.TrimSpace(body))
	if code != 200 || rows < 1000 {
		t.Errorf("events through the ClickHouse endpoint: %d %q", code, body)
	}
	// On its default wiring the demo refuses what a stranger or a web page
	// would try: no credentials, a browser's request, file() with the
	// product's own credentials, a cross-site change to the API.
	if code, body := httpGet("http://" + chAddr + count); code != http.StatusUnauthorized {
		t.Errorf("ClickHouse endpoint without credentials: %d %q", code, body)
	}
	writer := "http://" + creds.User + ":" + creds.Password + "@" + chAddr + "/"
	for _, tt := range []struct {
		query string
		hdr   http.Header
	}{
		{"SELECT count() FROM cockpit.events", http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}}},
		{"SELECT * FROM file('/etc/hostname', 'LineAsString')", nil},
		{"SELECT * FROM url('http://127.0.0.1:9/', 'CSV')", nil},
	} {
		if code, body := httpDo(t, http.MethodPost, writer, tt.query, tt.hdr); code != http.StatusForbidden {
			t.Errorf("%s %v: %d %q", tt.query, tt.hdr, code, body)
		}
	}
	silence := `{"matchers":[{"name":"rule","value":".*","regex":true}],"ends_at":"2099-01-01T00:00:00Z","created_by":"x"}`
	if code, body := httpDo(t, http.MethodPost, "http://"+httpAddr+"/api/v1/silences", silence,
		http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}}); code != http.StatusForbidden {
		t.Errorf("cross-site silence: %d %q", code, body)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("demo exited with %d after interrupt:\n%s", code, logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("demo did not stop within 45s of the interrupt")
	}
	for _, want := range []string{"cockpit is up", "demo running", "ingest stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage") {
		t.Errorf("no command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := Main(context.Background(), []string{"fly"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "fly"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := Main(context.Background(), []string{"serve", "--nope"}, &out, &errOut); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	errOut.Reset()
	// serve with no brokers explains what is missing instead of starting.
	t.Setenv("COCKPIT_INGEST_BROKERS", "")
	if code := Main(context.Background(), []string{"serve", "--clickhouse", "http://127.0.0.1:1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "broker") {
		t.Errorf("serve without brokers: exit %d, %q", code, errOut.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "cockpit ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}
