package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockpit-cs/cockpit/internal/yamltime"
)

// Duration is a time.Duration written as "30s" or "4h" in YAML.
type Duration = yamltime.Duration

// Route sends the alerts its matchers select to a receiver, grouped by
// labels. Routes are tried in order; the first that matches takes the
// alert unless it says continue.
type Route struct {
	Receiver string `yaml:"receiver"`
	// Matchers select alerts, e.g. `severity="critical"`, `region=~"广.*"`;
	// the rule name is matched as label "rule". None matches everything.
	Matchers []string `yaml:"matchers"`
	// GroupBy labels make one notification per distinct value set.
	// Default [rule].
	GroupBy []string `yaml:"group_by"`
	// GroupWait delays a new group's first notification to collect its
	// siblings. Rules are evaluated together on each tick, so alerts of one
	// cause mostly arrive together anyway. Default 1s.
	GroupWait Duration `yaml:"group_wait"`
	// GroupInterval is the least time between notifications of a group
	// whose alerts changed. Default 1m.
	GroupInterval Duration `yaml:"group_interval"`
	// RepeatInterval re-sends a group that still fires unchanged (unless
	// every alert in it is acknowledged). Default 4h.
	RepeatInterval Duration `yaml:"repeat_interval"`
	// SendResolved tells the receiver when alerts resolve. Default true.
	SendResolved *bool `yaml:"send_resolved"`
	Continue     bool  `yaml:"continue"`

	matchers Matchers
}

// withDefaults returns r with its zero-valued fields set to their
// defaults.
func (r Route) withDefaults() Route {
	if len(r.GroupBy) == 0 {
		r.GroupBy = []string{"rule"}
	}
	if r.GroupWait == 0 {
		r.GroupWait = Duration(time.Second)
	}
	if r.GroupInterval == 0 {
		r.GroupInterval = Duration(time.Minute)
	}
	if r.RepeatInterval == 0 {
		r.RepeatInterval = Duration(4 * time.Hour)
	}
	if r.SendResolved == nil {
		t := true
		r.SendResolved = &t
	}
	return r
}

// DispatchConfig is the routing part of the alerting configuration.
type DispatchConfig struct {
	// ExternalURL is the cockpit's address as recipients reach it, for the
	// drill-down links. Default http://127.0.0.1:8080.
	ExternalURL string `yaml:"external_url"`
	// Lang of the messages: zh-CN (default) or en.
	Lang string `yaml:"lang"`
	// Routes are tried in order. Default: one route that sends every alert
	// to the log receiver.
	Routes []Route `yaml:"routes"`
	// InhibitRules mute alerts while others fire. Default (nil):
	// DefaultInhibitRules; an empty list inhibits nothing.
	InhibitRules []InhibitRule `yaml:"inhibit_rules"`
}

// DefaultDispatchConfig returns the defaults of DispatchConfig.
func DefaultDispatchConfig() DispatchConfig {
	return DispatchConfig{
		ExternalURL:  "http://127.0.0.1:8080",
		Lang:         "zh-CN",
		Routes:       []Route{Route{Receiver: LogReceiver}.withDefaults()},
		InhibitRules: DefaultInhibitRules(),
	}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults, in c and in each of its routes. The routes and inhibit rules
// are copied.
func (c DispatchConfig) WithDefaults() DispatchConfig {
	d := DefaultDispatchConfig()
	if c.ExternalURL == "" {
		c.ExternalURL = d.ExternalURL
	}
	if c.Lang == "" {
		c.Lang = d.Lang
	}
	if len(c.Routes) == 0 {
		c.Routes = d.Routes
	} else {
		routes := make([]Route, len(c.Routes))
		for i, r := range c.Routes {
			routes[i] = r.withDefaults()
		}
		c.Routes = routes
	}
	if c.InhibitRules == nil {
		c.InhibitRules = d.InhibitRules
	} else {
		c.InhibitRules = cloneInhibitRules(c.InhibitRules)
	}
	return c
}

// cloneInhibitRules copies rules down to their matchers, which compiling
// changes.
func cloneInhibitRules(rules []InhibitRule) []InhibitRule {
	out := make([]InhibitRule, len(rules))
	for i, ir := range rules {
		out[i] = InhibitRule{SourceMatchers: slices.Clone(ir.SourceMatchers), TargetMatchers: slices.Clone(ir.TargetMatchers), Equal: ir.Equal}
	}
	return out
}

// Validate reports the first problem with c. receivers are the names
// routes may send to; nil leaves the names unchecked. It does not fill
// defaults: validate c.WithDefaults() for a partial config.
func (c DispatchConfig) Validate(receivers []string) error {
	if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("alerting: external_url must be an http(s) URL, got %q", c.ExternalURL)
	}
	if c.Lang != "zh-CN" && c.Lang != "en" {
		return fmt.Errorf("alerting: lang must be zh-CN or en, got %q", c.Lang)
	}
	if _, err := compileInhibitRules(c.InhibitRules); err != nil {
		return err
	}
	_, err := compileRoutes(c.Routes, receivers)
	return err
}

// compileInhibitRules returns a copy of rules with their matchers compiled.
func compileInhibitRules(rules []InhibitRule) ([]InhibitRule, error) {
	rules = cloneInhibitRules(rules)
	for i := range rules {
		if err := rules[i].SourceMatchers.Compile(); err != nil {
			return nil, fmt.Errorf("alerting: inhibit rule %d source: %w", i+1, err)
		}
		if err := rules[i].TargetMatchers.Compile(); err != nil {
			return nil, fmt.Errorf("alerting: inhibit rule %d target: %w", i+1, err)
		}
	}
	return rules, nil
}

// compileRoutes returns a copy of routes with their matchers parsed,
// checking each route (its receiver against receivers unless nil).
func compileRoutes(routes []Route, receivers []string) ([]Route, error) {
	routes = slices.Clone(routes)
	for i := range routes {
		r := &routes[i]
		if receivers != nil && !slices.Contains(receivers, r.Receiver) {
			return nil, fmt.Errorf("alerting: route %d: unknown receiver %q", i+1, r.Receiver)
		}
		r.matchers = nil
		for _, s := range r.Matchers {
			m, err := ParseMatcher(s)
			if err != nil {
				return nil, fmt.Errorf("alerting: route %d: %w", i+1, err)
			}
			r.matchers = append(r.matchers, m)
		}
		if r.GroupWait < 0 {
			return nil, fmt.Errorf("alerting: route %d: group_wait must not be negative", i+1)
		}
		if r.GroupInterval < Duration(time.Second) || r.RepeatInterval < r.GroupInterval {
			return nil, fmt.Errorf("alerting: route %d: group_interval must be at least 1s and repeat_interval at least group_interval", i+1)
		}
	}
	return routes, nil
}

// Outbox accepts notifications for reliable delivery.
type Outbox interface {
	Enqueue(ctx context.Context, n *Notification) error
}

// group is the alerts of one route and one set of group_by values.
type group struct {
	key      string
	route    *Route
	labels   map[string]string
	alerts   map[string]Record // by fingerprint
	created  time.Time
	sentAt   time.Time
	sentHash string
}

// Dispatcher groups alert changes by route and hands notifications to the
// outbox when they are due: group_wait after a group's first alert,
// group_interval after a change, repeat_interval while it fires unchanged.
// Silenced and inhibited alerts are left out of notifications.
type Dispatcher struct {
	cfg      DispatchConfig
	silences *Silences
	outbox   Outbox

	mu     sync.Mutex
	groups map[string]*group
}

// NewDispatcher returns a dispatcher for cfg with its defaults applied
// (no routes: every alert goes to the log receiver). It refuses a config
// that Validate refuses, except for the receiver names, which it does not
// know; the routes' and inhibit rules' matchers are compiled for it.
func NewDispatcher(cfg DispatchConfig, silences *Silences, outbox Outbox) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(nil); err != nil {
		return nil, err
	}
	var err error
	if cfg.InhibitRules, err = compileInhibitRules(cfg.InhibitRules); err != nil {
		return nil, err
	}
	if cfg.Routes, err = compileRoutes(cfg.Routes, nil); err != nil {
		return nil, err
	}
	return &Dispatcher{cfg: cfg, silences: silences, outbox: outbox, groups: map[string]*group{}}, nil
}

// routes calls fn for every route an alert with labels goes to, with the
// key and labels of its group there.
func (d *Dispatcher) routes(labels map[string]string, fn func(r *Route, key string, gl map[string]string)) {
	for i := range d.cfg.Routes {
		r := &d.cfg.Routes[i]
		if !r.matchers.Matches(labels) {
			continue
		}
		gl := map[string]string{}
		for _, name := range r.GroupBy {
			gl[name] = labels[name]
		}
		fn(r, strconv.Itoa(i)+":"+labelKey(gl), gl)
		if !r.Continue {
			return
		}
	}
}

// Update files the alerts that fired or resolved into their groups.
func (d *Dispatcher) Update(changes []Change, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range changes {
		if ch.To != StateFiring && ch.To != StateResolved {
			continue
		}
		d.routes(withRule(ch.Alert), func(r *Route, key string, gl map[string]string) {
			g, ok := d.groups[key]
			if !ok {
				if ch.To == StateResolved {
					// A resolved alert whose firing was never grouped here
					// (e.g. routes changed): nothing to tell.
					return
				}
				g = &group{key: key, route: r, labels: gl, alerts: map[string]Record{}, created: now}
				d.groups[key] = g
			}
			g.alerts[ch.Alert.Fingerprint] = ch.Alert
		})
	}
}

// Restore rebuilds the groups after a restart or a change of leader from
// the store: the active alerts, the recently resolved ones, and the last
// notification each group put in the outbox (by group key). A group is
// where that notification left it: sent at its time, its receiver knowing
// the alerts it told as firing. So a firing alert whose notice was never
// queued (the process died within group_wait) is still told, one whose
// notice was queued is not told again, and an alert that resolved after
// its group's last notice still gets its resolved notice.
func (d *Dispatcher) Restore(active, resolved []Record, last map[string]*Notification, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	toldFiring := func(key, id string) bool {
		n := last[key]
		if n == nil {
			return false
		}
		for _, a := range n.Alerts {
			if a.ID == id && a.Status == StatusFiring {
				return true
			}
		}
		return false
	}
	file := func(r Record) {
		d.routes(withRule(r), func(rt *Route, key string, gl map[string]string) {
			if r.State == StateResolved && !toldFiring(key, r.ID) {
				return // its receiver was told it resolved, or never heard of it
			}
			g, ok := d.groups[key]
			if !ok {
				g = &group{key: key, route: rt, labels: gl, alerts: map[string]Record{}, created: now}
				if n := last[key]; n != nil {
					known := &Notification{}
					for _, a := range n.Alerts {
						if a.Status == StatusFiring {
							known.Alerts = append(known.Alerts, a)
						}
					}
					g.sentAt, g.sentHash = n.CreatedAt, contentHash(known)
				}
				d.groups[key] = g
			}
			g.alerts[r.Fingerprint] = r
		})
	}
	for _, r := range active {
		if r.State == StateFiring {
			file(r)
		}
	}
	for _, r := range resolved {
		if r.State == StateResolved {
			file(r)
		}
	}
}

// Refresh replaces the copies of active alerts (new values, acks).
func (d *Dispatcher) Refresh(active []Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	byFP := map[string]Record{}
	for _, r := range active {
		byFP[r.Fingerprint] = r
	}
	for _, g := range d.groups {
		for fp, a := range g.alerts {
			if r, ok := byFP[fp]; ok && a.State == StateFiring {
				g.alerts[fp] = r
			}
		}
	}
}

// Flush enqueues every notification due at now.
func (d *Dispatcher) Flush(ctx context.Context, now time.Time, firing []Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for key, g := range d.groups {
		n := d.build(g, now, firing)
		if n == nil {
			if len(g.alerts) == 0 {
				delete(d.groups, key)
			}
			continue
		}
		if err := d.outbox.Enqueue(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		// What the receiver now knows: the firing alerts (resolved ones
		// leave the group below), so dropping them is not a change.
		known := &Notification{}
		for _, a := range n.Alerts {
			if a.Status == StatusFiring {
				known.Alerts = append(known.Alerts, a)
			}
		}
		g.sentAt, g.sentHash = now, contentHash(known)
		for fp, a := range g.alerts {
			if a.State == StateResolved {
				delete(g.alerts, fp)
			}
		}
		if len(g.alerts) == 0 {
			delete(d.groups, key)
		}
	}
	return errors.Join(errs...)
}

// build returns the group's notification if one is due, else nil.
func (d *Dispatcher) build(g *group, now time.Time, firing []Record) *Notification {
	r := g.route
	n := &Notification{
		Receiver: r.Receiver, GroupKey: g.key, GroupLabels: g.labels, Status: StatusResolved,
		Lang: d.cfg.Lang, ExternalURL: d.cfg.ExternalURL, CreatedAt: now,
	}
	allAcked := true
	for _, fp := range slices.Sorted(maps.Keys(g.alerts)) {
		a := g.alerts[fp]
		if a.State == StateResolved && !*r.SendResolved {
			continue
		}
		if a.State == StateFiring {
			if len(d.silences.Silenced(withRule(a), now)) > 0 || Inhibited(a, firing, d.cfg.InhibitRules) {
				continue
			}
			n.Status = StatusFiring
			if a.AckedBy == "" {
				allAcked = false
			}
		}
		n.Alerts = append(n.Alerts, d.toAlert(a))
	}
	if len(n.Alerts) == 0 {
		// Everything silenced or inhibited: resolved alerts are dropped,
		// firing ones wait in the group.
		for fp, a := range g.alerts {
			if a.State == StateResolved {
				delete(g.alerts, fp)
			}
		}
		return nil
	}
	h := contentHash(n)
	switch {
	case g.sentAt.IsZero():
		if now.Sub(g.created) < time.Duration(r.GroupWait) {
			return nil
		}
	case h != g.sentHash:
		if now.Sub(g.sentAt) < time.Duration(r.GroupInterval) {
			return nil
		}
	default:
		if n.Status != StatusFiring || allAcked || now.Sub(g.sentAt) < time.Duration(r.RepeatInterval) {
			return nil
		}
	}
	sum := sha256.Sum256([]byte(r.Receiver + "\x00" + g.key + "\x00" + h + "\x00" + strconv.FormatInt(now.UnixMilli(), 10)))
	n.ID = hex.EncodeToString(sum[:12])
	return n
}

func (d *Dispatcher) toAlert(r Record) Alert {
	status := StatusFiring
	if r.State == StateResolved {
		status = StatusResolved
	}
	return Alert{
		ID: r.ID, Fingerprint: r.Fingerprint, Rule: r.Rule, Severity: r.Severity, Status: status,
		Labels: r.Labels, Value: r.Value, Expected: r.Expected, Explanation: r.Explanation,
		Summary: r.Summary, StartsAt: r.StartedAt, EndsAt: r.ResolvedAt,
		URL: DrillDownURL(d.cfg.ExternalURL, r),
	}
}

// DrillDownURL links an alert to the quality page filtered to its scope,
// over the hour before it started (until it resolved, if it did).
func DrillDownURL(base string, r Record) string {
	q := url.Values{}
	for _, dim := range []string{"region", "queue", "channel", "business_line", "agent"} {
		if v := r.Labels[dim]; v != "" {
			q.Set(dim, v)
		}
	}
	start := r.StartedAt
	if start.IsZero() {
		start = r.ActiveAt
	}
	end := r.ResolvedAt
	if end.IsZero() {
		end = start.Add(15 * time.Minute)
	}
	q.Set("from", start.Add(-time.Hour).UTC().Format(time.RFC3339))
	q.Set("to", end.UTC().Format(time.RFC3339))
	q.Set("alert", r.ID)
	return strings.TrimRight(base, "/") + "/quality?" + q.Encode()
}

func contentHash(n *Notification) string {
	h := sha256.New()
	for _, a := range n.Alerts {
		h.Write([]byte(a.ID + "\x00" + string(a.Status) + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func labelKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k + "=" + strconv.Quote(l[k]) + ",")
	}
	return b.String()
}
