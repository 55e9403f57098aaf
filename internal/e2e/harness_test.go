package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chstore"
	"github.com/cockpit-cs/cockpit/internal/testaddr"
)

// The fault tests run the product as it ships: the cockpit binary, built
// once per test binary, started as child processes (`cockpit store` over a
// data directory on disk, `cockpit serve` against the real broker) and
// killed with SIGKILL.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// cockpitBinary builds ./cmd/cockpit once and returns its path.
func cockpitBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "cockpit-e2e-bin-"); err != nil {
			binErr = err
			return
		}
		path := filepath.Join(binDir, "cockpit")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/cockpit")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/cockpit: %v\n%s", err, out)
			return
		}
		binPath = path
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// proc is one run of the cockpit binary; its output goes to a log file.
type proc struct {
	t       testing.TB
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid after done
}

// runs numbers the log files of a test's processes.
var runs sync.Map // test name -> *int

func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	bin := cockpitBinary(t)
	n, _ := runs.LoadOrStore(t.Name()+"/"+name, new(int))
	seq := n.(*int)
	*seq++
	dir := os.Getenv("COCKPIT_E2E_LOGS") // keep the logs there instead
	if dir == "" {
		dir = t.TempDir()
	}
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), name, *seq))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: fmt.Sprintf("%s#%d", name, *seq), logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.kill()
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.name, p.tail(30))
		}
	})
	return p
}

func (p *proc) exited() bool { return closed(p.done) }

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to stop (SIGTERM) and waits up to within.
func (p *proc) stop(within time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("%s did not stop within %s", p.name, within)
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLog counts the log lines that contain s.
func (p *proc) countLog(s string) int {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// storeProc is `cockpit store`: the engine over a data directory, behind
// its ClickHouse HTTP interface.
type storeProc struct {
	*proc
	addr, dir string
}

func startStore(t testing.TB, addr, dir string) *storeProc {
	t.Helper()
	p := startProc(t, "store", nil, "store", "--listen", addr, "--data-dir", dir)
	s := &storeProc{proc: p, addr: addr, dir: dir}
	waitUntil(t, 2*time.Minute, "the store answers /ping", func() bool {
		if p.exited() {
			t.Fatalf("cockpit store exited: %v\n%s", p.err, p.tail(30))
		}
		resp, err := http.Get("http://" + addr + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// url is the store's DSN with the product's credentials, read from the
// file the store created in its data directory on first start.
func (s *storeProc) url() string {
	s.t.Helper()
	creds, err := chstore.ReadCredentials(filepath.Join(s.dir, chstore.CredentialsFile))
	if err != nil {
		s.t.Fatalf("the store's credentials: %v", err)
	}
	return creds.DSN(s.addr, "")
}

// deployment is what every cockpit serve of one test shares.
type deployment struct {
	t       testing.TB
	brokers string
	store   string // ClickHouse HTTP URL
	db      string
	topic   string
	dlq     string
	group   string
	config  string // YAML file, may be empty
	env     []string
}

func (d *deployment) environ() []string {
	env := []string{
		"COCKPIT_CLICKHOUSE_DATABASE=" + d.db,
		"COCKPIT_INGEST_TOPIC=" + d.topic,
		"COCKPIT_INGEST_DEAD_LETTER_TOPIC=" + d.dlq,
		"COCKPIT_INGEST_GROUP_ID=" + d.group,
		// Small, quick batches: a kill lands inside one more often.
		"COCKPIT_INGEST_BATCH_ROWS=300",
		"COCKPIT_INGEST_BATCH_INTERVAL=50ms",
		"COCKPIT_INGEST_RETRY_MAX=1s",
		// The broker's minimum: a killed member's partitions move on soon.
		"COCKPIT_INGEST_SESSION_TIMEOUT=6s",
		"COCKPIT_INGEST_SHUTDOWN_TIMEOUT=5s",
		"COCKPIT_CONFIG=" + d.config,
		"COCKPIT_LOG_LEVEL=info",
	}
	return append(env, d.env...)
}

// migrate runs `cockpit migrate`, so a test can prepare the tables (and
// stop their merges) before any serve starts.
func (d *deployment) migrate() {
	t := d.t
	t.Helper()
	p := startProc(t, "migrate", d.environ(), "migrate", "--clickhouse", d.store)
	<-p.done
	if p.err != nil {
		t.Fatalf("cockpit migrate: %v\n%s", p.err, p.tail(20))
	}
}

// serveProc is one `cockpit serve`.
type serveProc struct {
	*proc
	base string // http://host:port
}

// startServe starts a serve and waits until it is ready.
func (d *deployment) startServe(name string) *serveProc {
	t := d.t
	t.Helper()
	s := d.startServeNoWait(name)
	s.waitReady()
	return s
}

func (d *deployment) startServeNoWait(name string) *serveProc {
	t := d.t
	t.Helper()
	addr := testaddr.Free(t)
	p := startProc(t, name, d.environ(), "serve", "--brokers", d.brokers, "--clickhouse", d.store, "--http", addr)
	return &serveProc{proc: p, base: "http://" + addr}
}

func (s *serveProc) waitReady() {
	t := s.t
	t.Helper()
	waitUntil(t, 2*time.Minute, s.name+" is ready", func() bool {
		if s.exited() {
			t.Fatalf("%s exited: %v\n%s", s.name, s.err, s.tail(30))
		}
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// assigned reports whether the serve has been given partitions.
func (s *serveProc) assigned() bool { return s.countLog("partitions assigned") > 0 }

// metric returns the value of an unlabelled series of /metrics, or -1.
func (s *serveProc) metric(name string) float64 { return metricAt(s.base, name) }

// metricAt returns the value of the metric name, summed over its series
// (any labels), or -1 when there is none or /metrics cannot be read.
func metricAt(base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if f, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				sum, found = sum+f, true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// getJSON decodes GET base+path into out.
func getJSON(base, path string, out any) error {
	resp, err := http.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, out)
}

// chConn is a clickhouse-go connection to the store process, bound to db.
// Over HTTP every query is a request, so it rides out store restarts.
func chConn(t testing.TB, storeURL, db string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = db
	opts.DialTimeout = 5 * time.Second
	opts.ReadTimeout = 2 * time.Minute
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// count runs a one-number query, retrying while the store restarts.
func count(t *testing.T, conn driver.Conn, query string) uint64 {
	t.Helper()
	var n uint64
	var err error
	for range 60 {
		if err = conn.QueryRow(context.Background(), query).Scan(&n); err == nil {
			return n
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %v", query, err)
	return 0
}

// exec runs a statement, retrying while the store restarts.
func execCH(t testing.TB, conn driver.Conn, query string) {
	t.Helper()
	var err error
	for range 60 {
		if err = conn.Exec(context.Background(), query); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %v", query, err)
}

// waitUntil polls cond every 100 ms until it holds, failing after within.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uniqueName is a short name for databases and groups of one test run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
}

// slowInserts is a proxy in front of the store that holds every insert
// into the events table for delay before passing it on, so that a batch
// spends that long between its intent and its commit: a kill at a random
// moment then lands inside a batch most of the time, not by luck.
func slowInserts(t *testing.T, storeURL string, delay time.Duration) string {
	t.Helper()
	target, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(strings.TrimSpace(r.URL.Query().Get("query")), "INSERT INTO events") {
			time.Sleep(delay)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u := *target
	u.Host = strings.TrimPrefix(srv.URL, "http://")
	return u.String()
}
