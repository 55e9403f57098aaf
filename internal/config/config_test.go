package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cockpit.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	path := writeFile(t, `
http:
  listen: 0.0.0.0:9999
clickhouse:
  dsn: clickhouse://ch:9000
  database: cs
ingest:
  brokers: [k1:9092, k2:9092]
  batch_rows: 1000
  batch_interval: 50ms
`)
	cfg, err := Load(path, []string{
		"COCKPIT_INGEST_BATCH_ROWS=2000",
		"COCKPIT_INGEST_BROKERS=a:1, b:2",
		"COCKPIT_INGEST_LIMITS_MAX_AGE=0s",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "0.0.0.0:9999" || cfg.ClickHouse.Database != "cs" || cfg.ClickHouse.DSN != "clickhouse://ch:9000" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.Ingest.BatchRows != 2000 || !slices.Equal(cfg.Ingest.Brokers, []string{"a:1", "b:2"}) {
		t.Fatalf("environment did not override the file: %+v", cfg.Ingest)
	}
	if cfg.Ingest.BatchInterval != 50*time.Millisecond || cfg.Ingest.Limits.MaxAge != 0 {
		t.Fatalf("durations wrong: %+v", cfg.Ingest)
	}
	if cfg.Ingest.Topic != "cs.conversation-events" || cfg.ClickHouse.MaxOpenConns != 8 {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{name: "unknown key", file: "ingest:\n  batch_rowz: 5\n", want: "batch_rowz"},
		{name: "bad duration env", env: []string{"COCKPIT_INGEST_BATCH_INTERVAL=soon"}, want: "COCKPIT_INGEST_BATCH_INTERVAL"},
		{name: "bad route duration", file: "alerting:\n  routes:\n    - receiver: log\n      group_wait: soon\n", want: `line 4: "soon" is not a duration`},
		{name: "bad int env", env: []string{"COCKPIT_INGEST_BATCH_ROWS=many"}, want: "COCKPIT_INGEST_BATCH_ROWS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := Load(path, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Default()
	ok.Ingest.Brokers = []string{"k:9092"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"no brokers":   func(c *Config) { c.Ingest.Brokers = nil },
		"bad level":    func(c *Config) { c.Log.Level = "loud" },
		"bad dsn":      func(c *Config) { c.ClickHouse.DSN = "mysql://x" },
		"sql in db":    func(c *Config) { c.ClickHouse.Database = "x; DROP TABLE y" },
		"tiny batches": func(c *Config) { c.Ingest.BatchBytes = 10 },
		"tiny settle":  func(c *Config) { c.KPI.Rollup.Settle = time.Millisecond },
		"negative group_wait": func(c *Config) {
			c.Alerting.Routes = []alerts.Route{{Receiver: alerts.LogReceiver, GroupWait: alerts.Duration(-time.Second)}}
		},
	}
	for name, mutate := range cases {
		c := ok
		c.Ingest.Brokers = slices.Clone(ok.Ingest.Brokers)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDefaultsAndValidateArePure: the defaults are complete (only the
// brokers are missing), WithDefaults adds the log route and the routes'
// defaults without touching the config it is called on, and Validate
// changes nothing.
func TestDefaultsAndValidateArePure(t *testing.T) {
	d := Default()
	d.Ingest.Brokers = []string{"k:9092"}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	var c Config
	c.Alerting.Routes = []alerts.Route{{Receiver: alerts.LogReceiver, Matchers: []string{"severity=critical"}}}
	before := fmt.Sprintf("%+v", c)
	w := c.WithDefaults()
	if w.Alerting.Routes[0].GroupInterval == 0 || w.API.MaxSteps == 0 || w.Alerting.Lang == "" {
		t.Fatalf("defaults not filled: %+v", w)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("a config without its defaults validated")
	}
	if after := fmt.Sprintf("%+v", c); after != before {
		t.Fatalf("config changed:\n%s\n%s", before, after)
	}
	w.Log, w.HTTP, w.ClickHouse, w.Rules = d.Log, d.HTTP, d.ClickHouse, d.Rules
	w.Ingest, w.KPI = d.Ingest, d.KPI
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(Default().WithDefaults().Alerting.Routes) != 1 {
		t.Fatal("no default route")
	}
}

func TestEmptyFileAndKeys(t *testing.T) {
	cfg, err := Load(writeFile(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != Default().HTTP.Listen {
		t.Fatal("empty file changed defaults")
	}
	keys := Keys()
	for _, want := range []string{"ingest.batch_rows", "clickhouse.database", "clickhouse.dsn", "ingest.limits.max_age", "kpi.rollup.settle"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys() lacks %s", want)
		}
	}
}

// TestRollupConfig sets part of kpi.rollup in the file and part in the
// environment; the rest keeps its defaults.
func TestRollupConfig(t *testing.T) {
	cfg, err := Load(writeFile(t, "kpi:\n  rollup: {settle: 5m}\n"), []string{"COCKPIT_KPI_ROLLUP_DISABLED=true"})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.KPI.Rollup
	if r.Settle != 5*time.Minute || !r.Disabled || r.Interval != 10*time.Second || r.Horizon != 92*24*time.Hour || r.ChunkHours != 6 {
		t.Fatalf("rollup config = %+v", r)
	}
	cfg.Ingest.Brokers = []string{"k:9092"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.KPI.Rollup.ChunkHours = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kpi.rollup") {
		t.Fatalf("chunk_hours 0: %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	got := RedactDSN("clickhouse://user:s3cret@host:9000/db?password=other")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "other") {
		t.Fatalf("secret leaked: %s", got)
	}
}

// TestExampleConfig keeps examples/cockpit.yaml loadable and valid.
func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../../examples/cockpit.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Alerting.Receivers) != 2 || len(cfg.Alerting.Routes) != 2 || cfg.Alerting.Routes[1].GroupWait == 0 {
		t.Fatalf("alerting not loaded or defaults not filled: %+v", cfg.Alerting)
	}
	// A route naming a receiver that does not exist is refused.
	cfg.Alerting.Routes[0].Receiver = "nobody"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown receiver accepted: %v", err)
	}
}

func TestTokensFromEnvironment(t *testing.T) {
	cfg, err := Load("", []string{"COCKPIT_API_TOKENS=wall:viewer:0123456789abcdef, ops:admin:fedcba9876543210"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.API.Tokens) != 2 || cfg.API.Tokens[1].Role != "admin" || cfg.API.Tokens[1].Token != "fedcba9876543210" {
		t.Fatalf("tokens = %+v", cfg.API.Tokens)
	}
	cfg.Ingest.Brokers = []string{"k:9092"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", []string{"COCKPIT_API_TOKENS=broken"}); err == nil || strings.Contains(err.Error(), "broken:") {
		t.Fatalf("bad entry: %v", err)
	}
}

// TestRetiredDeliveryPoll loads a file written when alerting.delivery.poll
// still meant something: it loads, the other delivery keys apply, and the
// key is named among the notices.
func TestRetiredDeliveryPoll(t *testing.T) {
	cfg, err := Load(writeFile(t, "alerting:\n  delivery: {poll: 200ms, retry_min: 2s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alerting.Delivery.RetryMin != 2*time.Second {
		t.Fatalf("retry_min not applied: %+v", cfg.Alerting.Delivery)
	}
	if n := cfg.Notices(); len(n) != 1 || !strings.Contains(n[0], "alerting.delivery.poll") {
		t.Fatalf("notices: %q", n)
	}
	if n := Default().Notices(); len(n) != 0 {
		t.Fatalf("defaults have notices: %q", n)
	}
	if slices.Contains(Keys(), "alerting.delivery.poll") {
		t.Fatal("Keys() lists the retired key")
	}
	if _, err := Load(writeFile(t, "alerting:\n  delivery: {pol: 200ms}\n"), nil); err == nil {
		t.Fatal("an unknown delivery key was accepted")
	}
}
