package kpi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/schemas"
)

// KPIConfig configures a KPIStore.
type KPIConfig struct {
	// ServiceLevelThreshold is the longest wait for a human that counts as
	// within service level. Default 20s.
	ServiceLevelThreshold time.Duration `yaml:"service_level_threshold"`
	// MaxSteps bounds the number of steps one Timeseries call may ask
	// for. Default 10000.
	MaxSteps int `yaml:"max_steps"`
	// Rollup configures the hourly rollup that answers long windows.
	Rollup RollupConfig `yaml:"rollup"`
	// Live configures the live view that answers the windows that end now
	// (live.go).
	Live LiveConfig `yaml:"live"`
	// Now returns the current time for the "now" gauges. Default
	// time.Now; tests set a fixed clock.
	Now func() time.Time `yaml:"-"`
}

// DefaultKPIConfig returns the defaults of KPIConfig.
func DefaultKPIConfig() KPIConfig {
	return KPIConfig{ServiceLevelThreshold: 20 * time.Second, MaxSteps: 10000,
		Rollup: DefaultRollupConfig(), Live: DefaultLiveConfig(), Now: time.Now}
}

// Validate reports the first problem with c. It does not fill defaults:
// validate c.WithDefaults() for a partial config.
func (c KPIConfig) Validate() error {
	if c.ServiceLevelThreshold <= 0 {
		return fmt.Errorf("service_level_threshold must be positive, got %s", c.ServiceLevelThreshold)
	}
	if c.MaxSteps <= 0 {
		return fmt.Errorf("max_steps must be positive, got %d", c.MaxSteps)
	}
	if err := c.Rollup.Validate(); err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	if err := c.Live.Validate(); err != nil {
		return fmt.Errorf("live: %w", err)
	}
	return nil
}

// WithDefaults returns a copy of c with zero-valued fields, and those of
// Rollup and Live, set to their defaults.
func (c KPIConfig) WithDefaults() KPIConfig {
	d := DefaultKPIConfig()
	if c.ServiceLevelThreshold == 0 {
		c.ServiceLevelThreshold = d.ServiceLevelThreshold
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = d.MaxSteps
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	c.Rollup = c.Rollup.WithDefaults()
	c.Live = c.Live.WithDefaults()
	return c
}

// KPIStore computes the SPEC §5 metrics from ClickHouse: the events table,
// the conversations rollup (schemas/migrations/0003) and, for the whole
// hours of long windows, the hourly KPI rollup (0004, rollup.go). It is
// safe for concurrent use.
type KPIStore struct {
	conn  driver.Conn
	cfg   KPIConfig
	cache *rollupCache
	live  *liveView
	// useLive answers the windows that end now from the live view (Live).
	useLive bool
}

// NewKPIStore returns a store reading through conn, which must be bound to
// the product's database.
func NewKPIStore(conn driver.Conn, cfg KPIConfig) (*KPIStore, error) {
	if conn == nil {
		return nil, errors.New("kpi store: conn must not be nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kpi store config: %w", err)
	}
	s := &KPIStore{conn: conn, cfg: cfg, cache: &rollupCache{}}
	if !cfg.Live.Disabled {
		s.live = newLiveView(s, cfg.Live)
	}
	return s, nil
}

// Live returns the same store answering every window that reaches the
// present, starts within the live horizon and needs no agent from the
// live view (live.go): no store query but the view's refresh, at most
// every live.every. Such a window is widened to whole buckets, and the
// snapshot's from and to say which window was answered. It is for the
// consumers that ask about now again and again (the stream, the rules);
// other windows, and every window of the store itself, are exact. The
// "now" gauges of any window, of the store's too, are the view's while it
// keeps up (compute).
func (s *KPIStore) Live() *KPIStore {
	c := *s
	c.useLive = s.live != nil
	return &c
}

// Fresh tells the live view that this process stored events, so a view
// that found nothing new lately asks the store again at once.
func (s *KPIStore) Fresh() {
	if s.live != nil {
		s.live.fresh()
	}
}

// FollowIngest tells the live view how long the ingest has not been caught
// up (ingest.Consumer.Behind): while that is more than a few seconds the
// view does not refresh, and it loads anew once the ingest has caught up
// (liveIngestPause). Call it before the store is used.
func (s *KPIStore) FollowIngest(behind func(time.Time) time.Duration) {
	if s.live != nil {
		s.live.ingestBehind = behind
	}
}

// KPIs returns every metric over w for the conversations matching f.
func (s *KPIStore) KPIs(ctx context.Context, w Window, f Filters) (Snapshot, error) {
	cells, a, err := s.compute(ctx, w, f, DimNone, 0, true)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{}
	if c := cells[cellKey{}]; c != nil {
		snap = c.snapshot()
	}
	snap.From, snap.To, snap.Filters, snap.AsOf = a.From.UTC(), a.To.UTC(), f, a.asOf
	return snap, nil
}

// KPIsBy returns every metric over w for each value of dim among the
// conversations matching f, ordered by key. Values with no activity in w
// (and no gauge above zero) are absent.
func (s *KPIStore) KPIsBy(ctx context.Context, w Window, f Filters, dim Dimension) ([]KeyedSnapshot, error) {
	if !slices.Contains(Dimensions, dim) {
		return nil, fmt.Errorf("unknown dimension %q", dim)
	}
	cells, a, err := s.compute(ctx, w, f, dim, 0, true)
	if err != nil {
		return nil, err
	}
	out := make([]KeyedSnapshot, 0, len(cells))
	for k, c := range cells {
		snap := c.snapshot()
		snap.From, snap.To, snap.Filters, snap.AsOf = a.From.UTC(), a.To.UTC(), f, a.asOf
		out = append(out, KeyedSnapshot{Key: k.key, Snapshot: snap})
	}
	slices.SortFunc(out, func(a, b KeyedSnapshot) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, nil
}

// Timeseries returns metric over consecutive steps of w (the last step
// may be shorter), one series per value of groupBy (one series with key
// "" for DimNone). A quantile metric is given as "name" (its p90) or
// "name.avg", "name.p50", "name.p90", "name.count". Gauges have no
// history and are refused.
func (s *KPIStore) Timeseries(ctx context.Context, metric string, step time.Duration, w Window, f Filters, groupBy Dimension) ([]Series, error) {
	name, stat, err := seriesMetric(metric)
	if err != nil {
		return nil, err
	}
	if groupBy != DimNone && !slices.Contains(Dimensions, groupBy) {
		return nil, fmt.Errorf("unknown dimension %q", groupBy)
	}
	steps, err := s.stepCount(w, step)
	if err != nil {
		return nil, err
	}
	cells, _, err := s.compute(ctx, w, f, groupBy, step, false)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*Series{}
	var keys []string
	for k := range cells {
		if _, ok := byKey[k.key]; !ok {
			byKey[k.key] = &Series{Key: k.key}
			keys = append(keys, k.key)
		}
	}
	if groupBy == DimNone && len(keys) == 0 {
		byKey[""] = &Series{}
		keys = append(keys, "")
	}
	slices.Sort(keys)
	out := make([]Series, 0, len(keys))
	for _, key := range keys {
		se := byKey[key]
		se.Points = make([]Point, 0, steps)
		for i := range steps {
			snap := Snapshot{}
			if c := cells[cellKey{bucket: i, key: key}]; c != nil {
				snap = c.snapshot()
			}
			v, _, _ := snap.Value(name, stat)
			se.Points = append(se.Points, Point{Time: w.From.Add(time.Duration(i) * step).UTC(), Value: v})
		}
		out = append(out, *se)
	}
	return out, nil
}

// seriesMetric splits a metric as Timeseries and Trends take it into its
// name and statistic: a quantile metric is "name" (its p90) or
// "name.avg", "name.p50", "name.p90", "name.count". Gauges have no
// history and are refused.
func seriesMetric(metric string) (name, stat string, err error) {
	name = metric
	if i := lastDot(metric); i >= 0 {
		name, stat = metric[:i], metric[i+1:]
	}
	m, ok := MetricByName(name)
	if !ok {
		return "", "", fmt.Errorf("unknown metric %q", metric)
	}
	if m.Kind == MetricGauge {
		return "", "", fmt.Errorf("metric %s is a gauge: it has no time series", name)
	}
	if m.Kind == MetricQuantile && stat == "" {
		stat = "p90"
	}
	var probe Snapshot
	if _, _, err := probe.Value(name, stat); err != nil {
		return "", "", err
	}
	return name, stat, nil
}

// stepCount is the number of steps of w (the last one may be shorter),
// checked against MaxSteps.
func (s *KPIStore) stepCount(w Window, step time.Duration) (int64, error) {
	if err := w.Validate(); err != nil {
		return 0, err
	}
	if step < time.Millisecond {
		return 0, fmt.Errorf("step %s is shorter than a millisecond", step)
	}
	steps := int64((w.To.Sub(w.From) + step - 1) / step)
	if steps > int64(s.cfg.MaxSteps) {
		return 0, fmt.Errorf("%d steps asked, at most %d allowed", steps, s.cfg.MaxSteps)
	}
	return steps, nil
}

// split divides w into the whole hours the hourly rollup answers and the
// stretches read raw: the partial hours at both edges, hours not (re)built
// yet or changed since, and, for a time series, hours that straddle a
// step. Agent filters and breakdowns are not in the rollup: they are read
// raw.
//
// version names the builds of the hours and days: the rollup rows a
// window reads stay the same as long as it does.
func (s *KPIStore) split(ctx context.Context, w Window, f Filters, dim Dimension, step time.Duration) (hours, days []time.Time, raw []Window, version string, err error) {
	whole := []Window{w}
	if s.cfg.Rollup.Disabled || needsAgents(f, dim) {
		return nil, nil, whole, "", nil
	}
	if step > 0 && step < time.Hour {
		// No hour fits in one step (the wall's minute trends): nothing to
		// ask the rollup.
		return nil, nil, whole, "", nil
	}
	first, last := w.From.Truncate(time.Hour), w.To.Truncate(time.Hour)
	if first.Before(w.From) {
		first = first.Add(time.Hour)
	}
	if !first.Before(last) {
		return nil, nil, whole, "", nil
	}
	// An hour is clean when its newest build started a settle time after
	// the hour's end and after the newest change to it; a day when its
	// hours are and it was added up after their builds.
	states, err := rollupStates(ctx, s.conn, first, last, s.cfg.ServiceLevelThreshold)
	if err != nil {
		return nil, nil, nil, "", err
	}
	settle := s.cfg.Rollup.Settle
	bucket := func(t time.Time) int64 {
		if step <= 0 {
			return 0
		}
		return int64(t.Sub(w.From) / step)
	}
	inStep := func(from time.Time, d time.Duration) bool {
		return bucket(from) == bucket(from.Add(d-time.Millisecond))
	}
	cur := w.From
	for h := first; h.Before(last); {
		span := time.Hour
		switch {
		case h.Truncate(24*time.Hour).Equal(h) && !h.Add(24*time.Hour).After(last) &&
			states.dayClean(h, settle) && inStep(h, 24*time.Hour):
			span = 24 * time.Hour
			days = append(days, h)
		case states.hours[h].clean(h, settle) && inStep(h, time.Hour):
			hours = append(hours, h)
		default:
			h = h.Add(time.Hour)
			continue
		}
		if cur.Before(h) {
			raw = append(raw, Window{From: cur, To: h})
		}
		h = h.Add(span)
		cur = h
	}
	if cur.Before(w.To) {
		raw = append(raw, Window{From: cur, To: w.To})
	}
	if len(raw) > maxRawStretches {
		hours, days, raw = coalesce(hours, days, raw)
	}
	var v strings.Builder
	for _, h := range hours {
		fmt.Fprintf(&v, "h%d@%d,", h.Unix(), states.hours[h].asOf.UnixMicro())
	}
	for _, d := range days {
		fmt.Fprintf(&v, "d%d@%d,", d.Unix(), states.days[d].asOf.UnixMicro())
	}
	return hours, days, raw, v.String(), nil
}

// coalesce reads the shortest rollup gaps between raw stretches raw too,
// until at most maxRawStretches are left: every stretch is a query of its
// own.
func coalesce(hours, days []time.Time, raw []Window) ([]time.Time, []time.Time, []Window) {
	for len(raw) > maxRawStretches {
		best := 0
		for i := 1; i < len(raw)-1; i++ {
			if raw[i+1].From.Sub(raw[i].To) < raw[best+1].From.Sub(raw[best].To) {
				best = i
			}
		}
		raw[best].To = raw[best+1].To
		raw = slices.Delete(raw, best+1, best+2)
	}
	inRaw := func(t time.Time) bool {
		for _, r := range raw {
			if !t.Before(r.From) && t.Before(r.To) {
				return true
			}
		}
		return false
	}
	return slices.DeleteFunc(hours, inRaw), slices.DeleteFunc(days, inRaw), raw
}

const (
	// maxRawStretches is the most raw stretches one window is split into.
	maxRawStretches = 4
	// maxConcurrentQueries is how many queries of one window run at once.
	maxConcurrentQueries = 4
)

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// Now returns the gauges active_conversations and waiting_for_human for
// the conversations matching f, at the store's clock.
func (s *KPIStore) Now(ctx context.Context, f Filters) (active, waitingForHuman uint64, err error) {
	cells := map[cellKey]*cell{}
	if err := s.gauges(ctx, f, DimNone, cells); err != nil {
		return 0, 0, err
	}
	if c := cells[cellKey{}]; c != nil {
		return c.active, c.waiting, nil
	}
	return 0, 0, nil
}

// cellKey addresses one step (bucket) and one breakdown key.
type cellKey struct {
	bucket int64
	key    string
}

// cell accumulates the rows of one cellKey: the window sums (windowSums
// order), the distributions and the gauges. Every part of it is a sum
// over items, so the rows of any queries that split a window add up.
type cell struct {
	sums            [len(windowSums)]int64
	dists           [distCount]hist
	active, waiting uint64
	// memo, when set, keeps the snapshot of the sums and distributions
	// once computed: the live view sets it on the cells it keeps for
	// several callers, which only read them (liveView.compute).
	memo *snapMemo
}

// snapMemo is a cell's snapshot computed once, gauges apart.
type snapMemo struct {
	once sync.Once
	snap Snapshot
}

// The positions of windowSums.
const (
	sStarted = iota
	sClosed
	sResolved
	sAbandoned
	sComplaints
	sCSATN
	sCSATSum
	sCSATOK
	sSentN
	sSentNeg
	sFRN
	sFRSum
	sHFRN
	sHFRSum
	sBotEnded
	sTransferred
	sContained
	sRespN
	sRespSum
	sWaitN
	sWaitSum
	sSLFinished
	sSLMet
	nSums
)

// merge adds o to c.
func (c *cell) merge(o *cell) {
	for i, v := range o.sums {
		c.sums[i] += v
	}
	for i, h := range o.dists {
		if len(h) == 0 {
			continue
		}
		if c.dists[i] == nil {
			c.dists[i] = hist{}
		}
		c.dists[i].add(h)
	}
	c.active += o.active
	c.waiting += o.waiting
}

// quantile is the distribution dist with count and sum (milliseconds) at
// the sums n and n+1.
func (c *cell) quantile(dist, n int) Quantile {
	out := Quantile{Count: c.u(n)}
	if out.Count == 0 {
		return out
	}
	avg := float64(c.sums[n+1]) / float64(out.Count) / 1000
	out.Avg = &avg
	if q := c.dists[dist-1].quantiles(0.5, 0.9); q != nil {
		p50, p90 := q[0]/1000, q[1]/1000
		out.P50, out.P90 = &p50, &p90
	}
	return out
}

// u is sum i as a count (sums of counts are never negative).
func (c *cell) u(i int) uint64 { return uint64(max(c.sums[i], 0)) }

func ratio(num, den uint64) *float64 {
	if den == 0 {
		return nil
	}
	v := float64(num) / float64(den)
	return &v
}

// snapshot is the metrics of c. A cell the live view keeps computes its
// quantiles once, however many callers ask (memo).
func (c *cell) snapshot() Snapshot {
	if c.memo == nil {
		return c.compute()
	}
	c.memo.once.Do(func() { c.memo.snap = c.compute() })
	s := c.memo.snap
	s.ActiveConversations, s.WaitingForHuman = c.active, c.waiting
	return s
}

// compute works out the metrics of c.
func (c *cell) compute() Snapshot {
	s := Snapshot{
		ConversationsStarted:      c.u(sStarted),
		ConversationsClosed:       c.u(sClosed),
		ResolutionRate:            ratio(c.u(sResolved), c.u(sClosed)),
		TransferRate:              ratio(c.u(sTransferred), c.u(sBotEnded)),
		BotContainmentRate:        ratio(c.u(sContained), c.u(sBotEnded)),
		AbandonRate:               ratio(c.u(sAbandoned), c.u(sClosed)+c.u(sAbandoned)),
		FirstResponseSeconds:      c.quantile(distFirstResponse, sFRN),
		HumanFirstResponseSeconds: c.quantile(distHumanFirstResponse, sHFRN),
		ResponseSeconds:           c.quantile(distResponse, sRespN),
		HumanWaitSeconds:          c.quantile(distHumanWait, sWaitN),
		ServiceLevel:              ratio(c.u(sSLMet), c.u(sSLFinished)),
		Complaints:                c.u(sComplaints),
		CSATAvg:                   ratio(c.u(sCSATSum), c.u(sCSATN)),
		CSATSatisfiedRate:         ratio(c.u(sCSATOK), c.u(sCSATN)),
		NegativeSentimentRate:     ratio(c.u(sSentNeg), c.u(sSentN)),
		ActiveConversations:       c.active,
		WaitingForHuman:           c.waiting,
		abandoned:                 c.u(sAbandoned),
		botEnded:                  c.u(sBotEnded),
		transfersFinished:         c.u(sSLFinished),
		csatCount:                 c.u(sCSATN),
		sentimentCount:            c.u(sSentN),
	}
	return s
}

const chTime = "2006-01-02 15:04:05.000"

// windowParams are the query parameters of the part [from, to) of a
// window that starts at origin, with buckets of step (0: one bucket) and
// service-level threshold sl.
func windowParams(origin, from, to time.Time, f Filters, step, sl time.Duration) clickhouse.Parameters {
	stepMs := to.Sub(origin).Milliseconds() + 1
	if step > 0 {
		stepMs = step.Milliseconds()
	}
	return clickhouse.Parameters{
		"from":          from.UTC().Format(chTime),
		"to":            to.UTC().Format(chTime),
		"from_ms":       strconv.FormatInt(from.UnixMilli(), 10),
		"to_ms":         strconv.FormatInt(to.UnixMilli(), 10),
		"origin_ms":     strconv.FormatInt(origin.UnixMilli(), 10),
		"step_ms":       strconv.FormatInt(stepMs, 10),
		"sl_ms":         strconv.FormatInt(sl.Milliseconds(), 10),
		"region":        schemas.StringParam(f.Region),
		"queue":         schemas.StringParam(f.Queue),
		"channel":       schemas.StringParam(f.Channel),
		"business_line": schemas.StringParam(f.BusinessLine),
		"agent":         schemas.StringParam(f.Agent),
	}
}

// combinedWindowMax is the longest stretch of raw events compute answers
// with windowSQL; longer ones run the three narrower queries.
var combinedWindowMax = 6 * time.Hour

// query is one query of a window and the first of windowSums its sums
// fill; a rollup query says under which key its rows are cached.
type query struct {
	sql      string
	params   clickhouse.Parameters
	first    int
	cacheKey *rollupKey
}

// rollupKey says which rollup rows a window without steps reads: the
// filters and breakdown (which fix the grouping set) and the builds of
// its hours and days. Filter values are compared as they are, so no two
// different filters can share an entry.
type rollupKey struct {
	f       Filters
	dim     Dimension
	version string
}

// rollupCache keeps the rollup rows of recent windows, by rollupCacheSize
// keys; the cells it holds are only read.
type rollupCache struct {
	mu    sync.Mutex
	cells map[rollupKey]map[cellKey]*cell
	order []rollupKey
}

const rollupCacheSize = 64

func (c *rollupCache) get(key rollupKey) map[cellKey]*cell {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cells[key]
}

func (c *rollupCache) put(key rollupKey, cells map[cellKey]*cell) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cells == nil {
		c.cells = map[rollupKey]map[cellKey]*cell{}
	}
	if _, ok := c.cells[key]; ok {
		return
	}
	if len(c.order) >= rollupCacheSize {
		delete(c.cells, c.order[0])
		c.order = c.order[1:]
	}
	c.cells[key] = cells
	c.order = append(c.order, key)
}

// compute answers a window from the rollup's clean hours inside it and
// from the raw events for the rest, all queries at once, and adds their
// rows up by (step, key). withGauges adds the "now" gauges to step 0.
//
// It returns the window it answered: w, or, from the live view, w widened
// to whole buckets.
func (s *KPIStore) compute(ctx context.Context, w Window, f Filters, dim Dimension, step time.Duration, withGauges bool) (map[cellKey]*cell, answered, error) {
	if err := w.Validate(); err != nil {
		return nil, answered{}, err
	}
	if w.From.Truncate(time.Millisecond) != w.From || w.To.Truncate(time.Millisecond) != w.To {
		w = Window{From: w.From.Truncate(time.Millisecond), To: w.To.Truncate(time.Millisecond)}
		if err := w.Validate(); err != nil {
			return nil, answered{}, err
		}
	}
	if s.useLive && s.live.covers(w, f, dim, step) {
		err := s.live.ensure(ctx, s.live.floor(w.From.UnixMilli()))
		maxAge, bounded := ctx.Value(freshnessKey{}).(time.Duration)
		switch {
		case !bounded && err != nil:
			return nil, answered{}, err
		case !bounded || (err == nil && s.live.dataAge() <= maxAge):
			if cells, a, ok := s.live.compute(w, f, dim, step, withGauges); ok {
				return cells, a, nil
			}
			// A view still loading holds only its newest stretch.
			if _, asIs := ctx.Value(asIsKey{}).(time.Duration); asIs {
				return nil, answered{}, ErrLoading
			}
		case ctx.Err() != nil:
			return nil, answered{}, ctx.Err()
		}
		// The view is behind, or cannot answer: the store can.
	}
	asOf := time.Now().UTC()
	// The "now" gauges of any other window come from the live view too
	// while it keeps up: from the store they are a read of the last day's
	// events on every request.
	var g map[liveKey]gaugeCount
	if withGauges && s.live != nil {
		g = s.live.currentGauges(f, dim, liveGaugesMaxAge)
	}
	cells, err := s.computeStored(ctx, w, f, dim, step, withGauges && g == nil)
	if err == nil && g != nil {
		cells = addGauges(cells, g, f, dim)
	}
	return cells, answered{Window: w, asOf: asOf}, err
}

// needsAgents reports whether filter f or breakdown dim is by agent: the
// rollup and the live view keep no agents, so such a window, and its
// gauges, are read from the raw events.
func needsAgents(f Filters, dim Dimension) bool { return f.Agent != "" || dim == DimAgent }

// liveGaugesMaxAge is the oldest live view whose gauges a window the view
// does not hold takes: one the rules or the stream keep refreshing.
const liveGaugesMaxAge = 3 * time.Second

// answered is the window a computation answered and the time of its data.
type answered struct {
	Window
	asOf time.Time
}

// computeStored is compute from the store.
func (s *KPIStore) computeStored(ctx context.Context, w Window, f Filters, dim Dimension, step time.Duration, withGauges bool) (map[cellKey]*cell, error) {
	hours, days, raw, version, err := s.split(ctx, w, f, dim, step)
	if err != nil {
		return nil, err
	}
	// The rollup part of a window without steps is the same for every
	// window with the same whole hours and days, filters and builds: a
	// wall refreshing "the last 30 days" reads it once an hour.
	var cacheKey *rollupKey
	var cached map[cellKey]*cell
	if step == 0 && version != "" {
		cacheKey = &rollupKey{f: f, dim: dim, version: version}
		cached = s.cache.get(*cacheKey)
	}
	var queries []query
	if len(hours)+len(days) > 0 && cached == nil {
		p := windowParams(w.From, w.From, w.To, f, step, s.cfg.ServiceLevelThreshold)
		p["mask"] = strconv.Itoa(rollupMask(f, dim))
		p["hours"] = hoursParam(hours)
		p["days"] = hoursParam(days)
		queries = append(queries, query{sql: render(rollupSQL, dim, false, false), params: p, cacheKey: cacheKey})
	}
	needAgents := needsAgents(f, dim)
	for _, r := range raw {
		p := windowParams(w.From, r.From, r.To, f, step, s.cfg.ServiceLevelThreshold)
		sql := func(q string) string { return render(q, dim, needAgents, false) }
		// A short stretch is dominated by planning, so it runs one
		// combined query; a long one by reading, so it runs the three
		// narrower queries, which read less.
		if r.To.Sub(r.From) <= combinedWindowMax {
			queries = append(queries, query{sql: sql(windowSQL), params: p})
			continue
		}
		queries = append(queries,
			query{sql: sql(eventCountsSQL), params: p, first: sumsEventCounts},
			query{sql: sql(conversationsSQL), params: p, first: sumsConversations},
			query{sql: sql(pairsSQL), params: p, first: sumsPairs})
	}
	parts := make([]map[cellKey]*cell, len(queries)+2)
	errs := make([]error, len(queries)+2)
	parts[len(queries)+1] = cached
	var wg sync.WaitGroup
	// A few at a time: more only queue for connections and the engine's
	// cores.
	sem := make(chan struct{}, maxConcurrentQueries)
	for i, q := range queries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			parts[i] = map[cellKey]*cell{}
			errs[i] = s.read(ctx, q, parts[i])
			if errs[i] == nil && q.cacheKey != nil {
				s.cache.put(*q.cacheKey, parts[i])
			}
		})
	}
	if withGauges {
		wg.Go(func() {
			parts[len(queries)] = map[cellKey]*cell{}
			errs[len(queries)] = s.gauges(ctx, f, dim, parts[len(queries)])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[cellKey]*cell{}
	for _, p := range parts {
		for k, c := range p {
			at(out, k.bucket, k.key).merge(c)
		}
	}
	return out, nil
}

func at(m map[cellKey]*cell, bucket int64, key string) *cell {
	k := cellKey{bucket: bucket, key: key}
	c := m[k]
	if c == nil {
		c = &cell{}
		m[k] = c
	}
	return c
}

// read runs one window query and adds its rows to m. Every window query
// returns (bucket, key, sums, hist); its sums go to windowSums from
// q.first on.
func (s *KPIStore) read(ctx context.Context, q query, m map[cellKey]*cell) error {
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(q.params)), q.sql)
	if err != nil {
		return fmt.Errorf("cannot query window metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket int64
			key    string
			sums   []int64
			hist   []any
		)
		if err := rows.Scan(&bucket, &key, &sums, &hist); err != nil {
			return fmt.Errorf("cannot read window metrics: %w", err)
		}
		if q.first+len(sums) > len(windowSums) {
			return fmt.Errorf("cannot read window metrics: %d sums from %d, only %d exist", len(sums), q.first, len(windowSums))
		}
		c := at(m, bucket, key)
		for i, v := range sums {
			c.sums[q.first+i] += v
		}
		if len(hist) == 2 {
			keys, _ := hist[0].([]int32)
			counts, _ := hist[1].([]uint64)
			c.addHist(keys, counts)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read window metrics: %w", err)
	}
	return nil
}

// gauges adds the "now" gauges to bucket 0 of m.
func (s *KPIStore) gauges(ctx context.Context, f Filters, dim Dimension, m map[cellKey]*cell) error {
	p := windowParams(time.Time{}, time.Time{}, time.Time{}, f, 0, s.cfg.ServiceLevelThreshold)
	p["now"] = s.cfg.Now().UTC().Format(chTime)
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(p))
	rows, err := s.conn.Query(qctx, render(gaugesSQL, dim, needsAgents(f, dim), false))
	if err != nil {
		return fmt.Errorf("cannot query gauges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key             string
			active, waiting uint64
		)
		if err := rows.Scan(&key, &active, &waiting); err != nil {
			return fmt.Errorf("cannot read gauges: %w", err)
		}
		if active == 0 && waiting == 0 {
			continue
		}
		c := at(m, 0, key)
		c.active += active
		c.waiting += waiting
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read gauges: %w", err)
	}
	return nil
}
