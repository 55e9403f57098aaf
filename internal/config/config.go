package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/receiver"
	"github.com/cockpit-cs/cockpit/api"
	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// Config is everything a cockpit process can be told.
type Config struct {
	Log        Log           `yaml:"log"`
	HTTP       HTTP          `yaml:"http"`
	API        api.Config    `yaml:"api"`
	ClickHouse ClickHouse    `yaml:"clickhouse"`
	Ingest     ingest.Config `yaml:"ingest"`
	Kafka      Kafka         `yaml:"kafka"`
	KPI        KPI           `yaml:"kpi"`
	Rules      Rules         `yaml:"rules"`
	Alerting   Alerting      `yaml:"alerting"`
}

// Kafka says how the topics are created when they do not exist yet.
type Kafka struct {
	// Partitions of the events topic when it is created. It bounds how many
	// cockpit processes share ingest. Default 8.
	Partitions int `yaml:"partitions"`
	// Replication factor of created topics. Default 1 (a single broker);
	// use 3 on a real cluster.
	Replication int `yaml:"replication"`
}

// KPI tunes the metric definitions.
type KPI struct {
	// ServiceLevelThreshold is the wait within which a transfer counts as
	// answered in time for service_level. Default 20s.
	ServiceLevelThreshold time.Duration `yaml:"service_level_threshold"`
	// Rollup configures the hourly rollup that answers the whole hours of
	// long windows: settle (3m), interval (10s), horizon (2208h = 92
	// days), chunk_hours (6), disabled (false).
	Rollup kpi.RollupConfig `yaml:"rollup"`
	// Live configures the live view that answers the windows that end now
	// (the stream, the rules): bucket (10s), horizon (65m), overlap (5s),
	// every (500ms), idle_probe (2s), disabled (false).
	Live kpi.LiveConfig `yaml:"live"`
}

// Rules says which rules run and how often.
type Rules struct {
	// File is a YAML rule set, reloaded when it changes; a file with an
	// error is refused and the previous rules stay. Empty: the built-in
	// rules (pipeline/rules/rules.default.yaml).
	File string `yaml:"file"`
	// Tick is the evaluation interval. Default 1s.
	Tick time.Duration `yaml:"tick"`
	// MaxIngestDelay is how long the ingest may go without catching up
	// with the topic before the rules stop judging windows that hold only
	// part of their events: ticks are held (counted, alerts left as they
	// were) until it catches up. Default 15s.
	MaxIngestDelay time.Duration `yaml:"max_ingest_delay"`
}

// Alerting configures routing and delivery of notifications.
type Alerting struct {
	alerts.DispatchConfig `yaml:",inline"`
	// Receivers are the destinations routes name. A receiver named "log"
	// (write to the log) always exists; with no routes every alert goes to
	// it.
	Receivers []receiver.Config `yaml:"receivers"`
	Delivery  Delivery          `yaml:"delivery"`
}

// Delivery tunes retries (see alerts.DeliveryConfig).
type Delivery struct {
	alerts.DeliveryConfig `yaml:",inline"`
	// Poll is retired: the leader reads the outbox when a notification is
	// enqueued, when a retry falls due and every 5s. The key is still
	// accepted, so that older files load, and has no effect.
	Poll retired `yaml:"poll"`
}

// retired is a key that is accepted in any form and has no effect; Notices
// names it when a file sets it. Environment variables do not reach it.
type retired struct{ set bool }

// UnmarshalYAML accepts any value.
func (r *retired) UnmarshalYAML(*yaml.Node) error {
	r.set = true
	return nil
}

var retiredType = reflect.TypeFor[retired]()

// Notices lists what the settings say that has no effect, for the log.
func (c Config) Notices() []string {
	var out []string
	if c.Alerting.Delivery.Poll.set {
		out = append(out, "alerting.delivery.poll has no effect and can be removed: the leader reads the outbox when a notification is enqueued, when a retry falls due and every 5s")
	}
	return out
}

// ReceiverNames lists the configured receivers and the built-in log one.
func (a Alerting) ReceiverNames() []string {
	names := []string{alerts.LogReceiver}
	for _, r := range a.Receivers {
		names = append(names, r.Name)
	}
	return names
}

// Log selects the log output.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// HTTP configures the API and dashboard server.
type HTTP struct {
	// Listen is the address to serve on. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files of a certificate (with its chain)
	// and its key: set both to serve HTTPS. They are read again when they
	// change, so a renewed certificate needs no restart.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// ClickHouse says where the store is and how its schema is laid out.
type ClickHouse struct {
	// DSN of the server: clickhouse://host:9000 (native protocol) or
	// http://host:8123 (HTTP, as the embedded engine speaks). User and
	// password may be given in it. Default http://127.0.0.1:8123.
	DSN string `yaml:"dsn"`
	// Store is the database and cluster layout (see schemas.StoreConfig).
	schemas.StoreConfig `yaml:",inline"`
	// MaxOpenConns bounds the connection pool. Default 8.
	MaxOpenConns int `yaml:"max_open_conns"`
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// QueryTimeout bounds one query or insert. Default 60s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// Default returns the settings used when nothing is said.
func Default() Config {
	return Config{
		Log:  Log{Level: "info", Format: "text"},
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		API:  api.DefaultConfig(),
		ClickHouse: ClickHouse{
			DSN:          "http://127.0.0.1:8123",
			StoreConfig:  schemas.StoreConfig{Database: "cockpit"},
			MaxOpenConns: 8,
			DialTimeout:  5 * time.Second,
			QueryTimeout: 60 * time.Second,
		},
		Ingest:   ingest.Default(),
		Kafka:    Kafka{Partitions: 8, Replication: 1},
		KPI:      KPI{ServiceLevelThreshold: 20 * time.Second, Rollup: kpi.DefaultRollupConfig(), Live: kpi.DefaultLiveConfig()},
		Rules:    Rules{Tick: time.Second, MaxIngestDelay: 15 * time.Second},
		Alerting: Alerting{DispatchConfig: alerts.DefaultDispatchConfig()},
	}
}

// WithDefaults returns a copy of c with the zero values of the api and
// alerting sections (no routes: one to the log receiver) set to their
// defaults, as the process runs with them. Ingest, kpi and delivery
// settings are completed by their constructors.
func (c Config) WithDefaults() Config {
	c.API = c.API.WithDefaults()
	c.Alerting.DispatchConfig = c.Alerting.DispatchConfig.WithDefaults()
	return c
}

// Validate reports the first setting that cannot work. It does not fill
// defaults: validate c.WithDefaults().
func (c Config) Validate() error {
	if _, err := ParseLevel(c.Log.Level); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format must be text or json, got %q", c.Log.Format)
	}
	if c.HTTP.Listen == "" {
		return errors.New("http.listen is required")
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		return errors.New("http.tls_cert and http.tls_key go together: set both to serve HTTPS, or neither")
	}
	if err := c.API.Validate(); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	u, err := url.Parse(c.ClickHouse.DSN)
	if err != nil || (u.Scheme != "clickhouse" && u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tcp") || u.Host == "" {
		return fmt.Errorf("clickhouse.dsn must look like clickhouse://host:9000 or http://host:8123, got %q", RedactDSN(c.ClickHouse.DSN))
	}
	if err := c.ClickHouse.StoreConfig.Validate(); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	if c.Rules.Tick < 100*time.Millisecond {
		return fmt.Errorf("rules.tick must be at least 100ms, got %s", c.Rules.Tick)
	}
	if c.Rules.MaxIngestDelay < time.Second {
		return fmt.Errorf("rules.max_ingest_delay must be at least 1s, got %s", c.Rules.MaxIngestDelay)
	}
	if c.KPI.ServiceLevelThreshold <= 0 {
		return fmt.Errorf("kpi.service_level_threshold must be positive, got %s", c.KPI.ServiceLevelThreshold)
	}
	if err := c.KPI.Live.Validate(); err != nil {
		return fmt.Errorf("kpi.live: %w", err)
	}
	if err := c.KPI.Rollup.Validate(); err != nil {
		return fmt.Errorf("kpi.rollup: %w", err)
	}
	seen := map[string]bool{alerts.LogReceiver: true}
	for i, r := range c.Alerting.Receivers {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("alerting.receivers[%d]: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("alerting.receivers[%d]: the name %q is used twice (or is the built-in log receiver)", i, r.Name)
		}
		seen[r.Name] = true
	}
	if err := c.Alerting.DispatchConfig.Validate(c.Alerting.ReceiverNames()); err != nil {
		return err
	}
	// Zero ingest settings are left for the consumer to fill: check them
	// as it will see them.
	return c.Ingest.WithDefaults().Validate()
}

// ParseLevel maps a level name to slog's.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log.level must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// RedactDSN hides a password in a DSN so it can be logged.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable dsn)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Load reads the YAML file at path (none when path is empty) over the
// defaults, then applies COCKPIT_* variables from environ.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("cannot read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF: it means "all defaults".
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// EnvName is the variable that sets the YAML key path (e.g.
// "ingest.batch_rows" -> COCKPIT_INGEST_BATCH_ROWS).
func EnvName(path string) string {
	return "COCKPIT_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(path))
}

// applyEnv sets every leaf field whose COCKPIT_* variable is present.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "COCKPIT_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	// Tokens are secrets, so they have a compact variable of their own:
	// COCKPIT_API_TOKENS="name:role:token,name:role:token".
	if raw, ok := env["COCKPIT_API_TOKENS"]; ok {
		delete(env, "COCKPIT_API_TOKENS")
		cfg.API.Tokens = nil
		for _, item := range strings.Split(raw, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			name, rest, ok1 := strings.Cut(item, ":")
			role, token, ok2 := strings.Cut(rest, ":")
			if !ok1 || !ok2 {
				return fmt.Errorf("COCKPIT_API_TOKENS: each entry is name:role:token (entry for %q is not)", name)
			}
			cfg.API.Tokens = append(cfg.API.Tokens, api.Token{Name: name, Role: api.Role(role), Token: token})
		}
	}
	return walk(reflect.ValueOf(cfg).Elem(), "", func(path string, v reflect.Value) error {
		raw, ok := env[EnvName(path)]
		if !ok {
			return nil
		}
		if err := setFromString(v, raw); err != nil {
			return fmt.Errorf("%s: %w", EnvName(path), err)
		}
		return nil
	})
}

// Keys lists every settable key path, for help texts and tests.
func Keys() []string {
	var out []string
	cfg := Default()
	_ = walk(reflect.ValueOf(&cfg).Elem(), "", func(path string, _ reflect.Value) error {
		out = append(out, path)
		return nil
	})
	return out
}

var durationType = reflect.TypeFor[time.Duration]()

func walk(v reflect.Value, prefix string, leaf func(path string, v reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Type == retiredType {
			continue
		}
		fv := v.Field(i)
		if opts == "inline" {
			if err := walk(fv, prefix, leaf); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if fv.Kind() == reflect.Struct && f.Type != durationType {
			if err := walk(fv, path, leaf); err != nil {
				return err
			}
			continue
		}
		if err := leaf(path, fv); err != nil {
			return err
		}
	}
	return nil
}

func setFromString(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 250ms, 5s): %q", raw)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", raw)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", raw)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}
