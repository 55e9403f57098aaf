package api

import (
	"errors"
	"fmt"
	"net"
	"time"
	"unicode/utf8"
)

// Role is what a bearer token may do. Roles are ordered: each one may do
// everything the roles before it may.
type Role string

// The roles of the API contract, weakest first.
const (
	// RoleViewer reads: KPIs, time series, conversations, alerts, the stream.
	RoleViewer Role = "viewer"
	// RoleAnalyst reads and exports CSV.
	RoleAnalyst Role = "analyst"
	// RoleSupervisor also acknowledges alerts and manages silences.
	RoleSupervisor Role = "supervisor"
	// RoleAdmin also replaces rules and posts events.
	RoleAdmin Role = "admin"
)

// rank orders the roles; 0 is not a role.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleAnalyst:
		return 2
	case RoleSupervisor:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// allows reports whether r may do what need requires.
func (r Role) allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

// Token is one configured bearer token.
type Token struct {
	// Token is the secret the client sends as "Authorization: Bearer …".
	// At least 16 characters. Never logged.
	Token string `yaml:"token" json:"-"`
	// Role is viewer, analyst, supervisor or admin.
	Role Role `yaml:"role" json:"role"`
	// Name says whose token it is; it is logged and used as the default
	// actor of acks and silences.
	Name string `yaml:"name" json:"name"`
}

// Config configures the API (the `api:` section of the config file).
type Config struct {
	// Tokens are the accepted bearer tokens. With none, every request is
	// allowed and the server must listen on loopback only (CheckListen).
	Tokens []Token `yaml:"tokens"`
	// AllowedHosts are more Host names the server answers as, beside
	// localhost, 127.0.0.1, ::1, the listen address and the external URL's
	// host: the names users type to reach it. "*" answers any (behind a
	// proxy that checks Host itself).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// MaxRange is the longest from–to window a query may ask for.
	// Default 400 days (a year, with room to compare it).
	MaxRange time.Duration `yaml:"max_range"`
	// MaxSteps bounds the points of one time series. Default 10000.
	MaxSteps int `yaml:"max_steps"`
	// MaxEventsBodyBytes bounds the body of POST /api/v1/events.
	// Default 32 MiB (an array of 10,000 events of a few KiB each).
	MaxEventsBodyBytes int64 `yaml:"max_events_body_bytes"`
	// MaxBodyBytes bounds every other request body (rules, acks,
	// silences). Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxExportRows bounds the rows of one CSV export. Default 100000.
	MaxExportRows int `yaml:"max_export_rows"`
	// StreamTick is how often the live stream sends a KPI snapshot.
	// Default 1s.
	StreamTick time.Duration `yaml:"stream_tick"`
	// StreamWindow is the window of the stream's snapshot, ending now.
	// Default 15m.
	StreamWindow time.Duration `yaml:"stream_window"`
	// StreamBuffer is how many messages a stream client may fall behind
	// before it is dropped (it reconnects by itself). Default 16.
	StreamBuffer int `yaml:"stream_buffer"`
	// StreamKeepAlive is the interval of keep-alive comments. Default 15s.
	StreamKeepAlive time.Duration `yaml:"stream_keep_alive"`
	// StreamPanelEvery is how often the stream sends the wall's charts
	// (last-hour trends, complaints by region, firing alerts). Default 10s:
	// SPEC §9 wants one at least every 15 s, and a panel is due only at a
	// tick once its interval has passed.
	StreamPanelEvery time.Duration `yaml:"stream_panel_every"`
}

// DefaultMaxRange is the default of Config.MaxRange.
const DefaultMaxRange = 400 * 24 * time.Hour

// maxEvents is the most events one POST /api/v1/events may carry.
const maxEvents = 10_000

// DefaultConfig returns the defaults of Config: no tokens, no more
// allowed hosts.
func DefaultConfig() Config {
	return Config{
		MaxRange:           DefaultMaxRange,
		MaxSteps:           10000,
		MaxEventsBodyBytes: 32 << 20,
		MaxBodyBytes:       1 << 20,
		MaxExportRows:      100_000,
		StreamTick:         time.Second,
		StreamWindow:       15 * time.Minute,
		StreamBuffer:       16,
		StreamKeepAlive:    15 * time.Second,
		StreamPanelEvery:   10 * time.Second,
	}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxRange == 0 {
		c.MaxRange = d.MaxRange
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = d.MaxSteps
	}
	if c.MaxEventsBodyBytes == 0 {
		c.MaxEventsBodyBytes = d.MaxEventsBodyBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxExportRows == 0 {
		c.MaxExportRows = d.MaxExportRows
	}
	if c.StreamTick == 0 {
		c.StreamTick = d.StreamTick
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = d.StreamWindow
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = d.StreamBuffer
	}
	if c.StreamKeepAlive == 0 {
		c.StreamKeepAlive = d.StreamKeepAlive
	}
	if c.StreamPanelEvery == 0 {
		c.StreamPanelEvery = d.StreamPanelEvery
	}
	return c
}

// Validate reports every setting of c that cannot work. It does not fill
// defaults: validate c.WithDefaults() for a partial config.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range c.Tokens {
		// The position, never the token, goes into the message.
		switch {
		case utf8.RuneCountInString(t.Token) < 16:
			errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): token must be at least 16 characters", i, t.Name))
		case seen[t.Token]:
			errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): the same token is configured twice", i, t.Name))
		}
		seen[t.Token] = true
		if t.Role.rank() == 0 {
			errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): role %q is not one of viewer, analyst, supervisor, admin", i, t.Name, t.Role))
		}
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("api.tokens[%d]: name is required", i))
		}
	}
	if c.MaxRange < time.Minute {
		errs = append(errs, fmt.Errorf("api.max_range must be at least 1m, got %s", c.MaxRange))
	}
	if c.MaxSteps < 1 {
		errs = append(errs, fmt.Errorf("api.max_steps must be positive, got %d", c.MaxSteps))
	}
	if c.MaxEventsBodyBytes < 64<<10 || c.MaxBodyBytes < 1<<10 {
		errs = append(errs, errors.New("api.max_events_body_bytes must be at least 64KiB and api.max_body_bytes at least 1KiB"))
	}
	if c.MaxExportRows < 1 {
		errs = append(errs, fmt.Errorf("api.max_export_rows must be positive, got %d", c.MaxExportRows))
	}
	if c.StreamTick < 10*time.Millisecond || c.StreamWindow < time.Second || c.StreamBuffer < 1 || c.StreamKeepAlive < time.Second || c.StreamPanelEvery < time.Second {
		errs = append(errs, errors.New("api.stream_tick (≥10ms), stream_window (≥1s), stream_buffer (≥1), stream_keep_alive (≥1s) and stream_panel_every (≥1s) must be positive"))
	}
	return errors.Join(errs...)
}

// CheckListen refuses to serve an API without tokens on anything but a
// loopback address: without tokens every request is allowed, so only the
// local machine may reach it.
func CheckListen(cfg Config, addr string) error {
	if len(cfg.Tokens) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http.listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("http.listen %q is not a loopback address, and no api.tokens are configured: "+
		"the API would be open to anyone who can reach it; configure api.tokens or listen on 127.0.0.1", addr)
}
