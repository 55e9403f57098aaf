package kpi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// The hourly rollup (schemas/migrations/0004) holds, per closed hour,
// service-level threshold and subset of the filter attributes, the rows
// windowSQL would return for that hour: sums and histograms, which add up
// over hours. KPIStore answers the clean whole hours of a window from it
// and the rest (the partial hours at the edges, hours not built yet or
// changed since their build) from the raw events, so a 30-day window
// reads a few thousand rows plus two partial hours.
//
// Correctness does not rest on timing except for one assumption: an
// event is visible to queries within Settle of its ingested_at (the
// server's clock when the insert began). Then:
//   - an hour is built only after it ended Settle ago, and its build
//     reads every event stored up to as_of − Settle;
//   - events stored after that are found by their ingested_at (a scan
//     that overlaps the previous one by Settle) and mark every hour their
//     conversations span, from the first to the last event (a reply
//     changes the hour of its message, a late conversation.started the
//     attributes of every event of its conversation), with changed_at =
//     their ingested_at;
//   - a reader uses a built hour only if the build's as_of is Settle after
//     the hour's end and after the newest mark, otherwise the hour is
//     read raw until it is rebuilt.
//
// So a late event shows in long windows at once if it lands in a partial
// or unbuilt hour, and otherwise from the next builder pass (Interval) on;
// until then the hour shows its earlier build.
//
// Duplicates and replays change nothing: a build reads the same
// de-duplicated items as the raw queries, a replayed insert only marks
// hours again, and a build is idempotent: building an hour twice, or by
// two instances at once, leaves one of the builds, whole, under FINAL.
// Hostile input: a repeated event_id is stored once (ingest keeps the
// first version), so it is one event to the rollup as to the raw queries;
// a conversation with events years apart marks only the hours of the
// horizon; events in the future wait until their hour has closed.

// RollupConfig configures the hourly rollup: what KPIStore reads and what
// RollupBuilder builds.
type RollupConfig struct {
	// Disabled reads every window from the raw events and builds nothing.
	// Default false.
	Disabled bool `yaml:"disabled"`
	// Settle is how long after an hour ends before it is built, and how
	// long after the last change to an hour before it is rebuilt; it must
	// exceed the time an insert takes to become visible. Default 3m.
	Settle time.Duration `yaml:"settle"`
	// Interval is the pause between two passes of the builder. Default 10s.
	Interval time.Duration `yaml:"interval"`
	// Horizon is how far back hours are built; older hours are read raw.
	// Default 92 days (the API's longest window is 90).
	Horizon time.Duration `yaml:"horizon"`
	// ChunkHours is the most hours one build query covers; it covers
	// fewer when they hold more than buildEvents events. Default 6.
	ChunkHours int `yaml:"chunk_hours"`
}

// DefaultRollupConfig returns the defaults of RollupConfig.
func DefaultRollupConfig() RollupConfig {
	return RollupConfig{Settle: 3 * time.Minute, Interval: 10 * time.Second, Horizon: 92 * 24 * time.Hour, ChunkHours: 6}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults.
func (c RollupConfig) WithDefaults() RollupConfig {
	d := DefaultRollupConfig()
	if c.Settle == 0 {
		c.Settle = d.Settle
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Horizon == 0 {
		c.Horizon = d.Horizon
	}
	if c.ChunkHours == 0 {
		c.ChunkHours = d.ChunkHours
	}
	return c
}

// Validate reports the first problem with c. It does not fill defaults:
// validate c.WithDefaults() for a partial config.
func (c RollupConfig) Validate() error {
	if c.Settle < time.Second {
		return fmt.Errorf("settle must be at least 1s, got %s", c.Settle)
	}
	if c.Interval < 100*time.Millisecond {
		return fmt.Errorf("interval must be at least 100ms, got %s", c.Interval)
	}
	if c.Horizon < time.Hour {
		return fmt.Errorf("horizon must be at least 1h, got %s", c.Horizon)
	}
	if c.ChunkHours < 1 || c.ChunkHours > 24*28 {
		return fmt.Errorf("chunk_hours must be in [1, 672], got %d", c.ChunkHours)
	}
	return nil
}

// hourState is what the store knows of one hour (or day): its newest
// build's as_of and the rows that build stored, and its newest change
// (zero when none).
type hourState struct {
	asOf, changedAt time.Time
	rows            uint64
}

// clean reports whether hour h's newest build holds every event of h.
func (st hourState) clean(h time.Time, settle time.Duration) bool {
	if st.asOf.IsZero() || st.asOf.Before(h.Add(time.Hour+settle)) {
		return false
	}
	return st.changedAt.IsZero() || !st.asOf.Before(st.changedAt.Add(settle))
}

// rollupState is what the store knows of the hours and days of a range.
type rollupState struct {
	hours map[time.Time]hourState
	days  map[time.Time]hourState // a day's newest build
}

// dayClean reports whether the day starting at d may be read from its day
// rows: every hour of it is clean and the day was built after each of
// their newest builds.
func (r rollupState) dayClean(d time.Time, settle time.Duration) bool {
	asOf := r.days[d].asOf
	if asOf.IsZero() {
		return false
	}
	for h := d; h.Before(d.Add(24 * time.Hour)); h = h.Add(time.Hour) {
		st := r.hours[h]
		if !st.clean(h, settle) || asOf.Before(st.asOf) {
			return false
		}
	}
	return true
}

// rollupStates returns the states of the hours and days of [from, to)
// that have a build or a change.
func rollupStates(ctx context.Context, conn driver.Conn, from, to time.Time, sl time.Duration) (rollupState, error) {
	out := rollupState{hours: map[time.Time]hourState{}, days: map[time.Time]hourState{}}
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"from": from.UTC().Format(chTime), "to": to.UTC().Format(chTime),
		"sl_ms": strconv.FormatInt(sl.Milliseconds(), 10),
	}))
	rows, err := conn.Query(qctx, rollupStateSQL)
	if err != nil {
		return out, fmt.Errorf("cannot query rollup state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			h, asOf, changed time.Time
			span             uint8
			n                uint64
		)
		if err := rows.Scan(&h, &span, &asOf, &changed, &n); err != nil {
			return out, fmt.Errorf("cannot read rollup state: %w", err)
		}
		if asOf.UnixMilli() <= 0 {
			asOf = time.Time{}
		}
		st := hourState{asOf: asOf.UTC(), rows: n}
		if span == 24 {
			out.days[h.UTC()] = st
			continue
		}
		if changed.UnixMilli() > 0 {
			st.changedAt = changed.UTC()
		}
		out.hours[h.UTC()] = st
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("cannot read rollup state: %w", err)
	}
	return out, nil
}

// rollupMask is the grouping set that answers filters f broken down by
// dim: the attributes filtered or broken down.
func rollupMask(f Filters, dim Dimension) int {
	mask := 0
	for i, on := range []bool{
		f.Region != "" || dim == DimRegion,
		f.Queue != "" || dim == DimQueue,
		f.Channel != "" || dim == DimChannel,
		f.BusinessLine != "" || dim == DimBusinessLine,
	} {
		if on {
			mask |= 1 << i
		}
	}
	return mask
}

// hoursParam is hours as an Array(DateTime) query parameter.
func hoursParam(hours []time.Time) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, h := range hours {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + h.UTC().Format(time.DateTime) + "'")
	}
	b.WriteByte(']')
	return b.String()
}

// RollupBuilder keeps the hourly rollup up to date: it builds every closed
// hour of the horizon that has no clean build, newest first, and marks
// the hours late events change so they are rebuilt. One instance of a
// deployment runs it (the rules leader); a second one at the same time
// does no harm. A RollupBuilder runs one pass at a time (Run does):
// Pass must not be called concurrently on the same builder.
type RollupBuilder struct {
	conn    driver.Conn
	cfg     RollupConfig
	sl      time.Duration
	logger  *slog.Logger
	metrics rollupMetrics

	budget    uint64    // the most events one build statement reads: buildEvents
	scannedTo time.Time // zero until read from the store
	// stored counts the events of each whole second of ingested_at in
	// the last scan's overlap (unix seconds), as that scan found them;
	// nil until a scan has counted.
	stored   map[uint32]uint64
	scanFrom time.Time // where the last scan began reading, zero if none read (tests)
	fresh    chan struct{}
}

// Fresh tells the builder that this process stored events, so its next
// tick passes over the rollup even if it would otherwise rest.
func (b *RollupBuilder) Fresh() {
	select {
	case b.fresh <- struct{}{}:
	default:
	}
}

// rollupRest is the longest a leader goes without a pass when nothing
// tells it one is needed: it finds the events other instances stored.
const rollupRest = 30 * time.Second

// due says whether a pass is needed: the first one, hours still pending
// (those waiting for their changes to settle once the first of them has,
// at next), events stored here since the last, an hour closed (and
// settled) since the last, or rollupRest without one.
func (b *RollupBuilder) due(last time.Time, pending int, next time.Time) bool {
	now := time.Now()
	switch {
	case last.IsZero() || (pending > 0 && !now.Before(next)) || now.Sub(last) >= rollupRest:
		return true
	case !now.Add(-b.cfg.Settle).Truncate(time.Hour).Equal(last.Add(-b.cfg.Settle).Truncate(time.Hour)):
		return true
	}
	select {
	case <-b.fresh:
		return true
	default:
		return false
	}
}

type rollupMetrics struct {
	built    prometheus.Counter
	days     prometheus.Counter
	marked   prometheus.Counter
	pending  prometheus.Gauge
	duration prometheus.Histogram
	failures prometheus.Counter
	lastPass prometheus.Gauge
}

// NewRollupBuilder returns a builder writing through conn (bound to the
// product's database) with the store's configuration; reg, if not nil,
// gets its metrics.
func NewRollupBuilder(conn driver.Conn, cfg KPIConfig, reg prometheus.Registerer, logger *slog.Logger) (*RollupBuilder, error) {
	if conn == nil {
		return nil, errors.New("rollup builder: conn must not be nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kpi config: %w", err)
	}
	m := rollupMetrics{
		built: prometheus.NewCounter(prometheus.CounterOpts{Name: "cockpit_kpi_rollup_hours_built_total",
			Help: "Hours of the hourly KPI rollup built or rebuilt."}),
		days: prometheus.NewCounter(prometheus.CounterOpts{Name: "cockpit_kpi_rollup_days_built_total",
			Help: "Days of the hourly KPI rollup added up from their hours."}),
		marked: prometheus.NewCounter(prometheus.CounterOpts{Name: "cockpit_kpi_rollup_hours_marked_total",
			Help: "Hour marks written because events arrived for hours already built or being built."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cockpit_kpi_rollup_pending_hours",
			Help: "Closed hours of the horizon without a clean build at the last pass (read raw until built)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cockpit_kpi_rollup_build_seconds",
			Help: "Duration of one build query (up to chunk_hours hours).", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cockpit_kpi_rollup_failures_total",
			Help: "Builder passes that failed (retried at the next pass)."}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cockpit_kpi_rollup_last_pass_timestamp_seconds",
			Help: "When the builder last finished a pass without error."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.built, m.days, m.marked, m.pending, m.duration, m.failures, m.lastPass} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rollup builder metrics: %w", err)
			}
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RollupBuilder{conn: conn, cfg: cfg.Rollup, sl: cfg.ServiceLevelThreshold, logger: logger.With("component", "kpi_rollup"), metrics: m, budget: buildEvents, fresh: make(chan struct{}, 1)}, nil
}

// Run passes over the rollup every Interval while lead reports true,
// until ctx ends. A failed pass is logged and retried at the next one.
func (b *RollupBuilder) Run(ctx context.Context, lead func() bool) {
	if b.cfg.Disabled {
		return
	}
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	failing := false
	var (
		last, next time.Time
		pending    int
	)
	for {
		if lead() && (failing || b.due(last, pending, next)) {
			res, err := b.Pass(ctx, lead)
			last, pending, next = time.Now(), res.Pending, res.Next
			switch {
			case err != nil && ctx.Err() == nil:
				b.metrics.failures.Inc()
				if !failing {
					b.logger.Warn("rollup pass failed; retrying every interval", "err", err, "interval", b.cfg.Interval)
				}
				failing = true
			case err == nil:
				if failing {
					b.logger.Info("rollup passes succeed again")
				}
				failing = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PassResult says what one pass did.
type PassResult struct {
	// Marked is the number of hour marks written for late events.
	Marked int
	// Built is the number of hours built.
	Built int
	// Pending is the number of closed hours without a clean build left
	// (waiting for their changes to settle, or cut short by ctx or lead).
	Pending int
	// Next is when the first hour left waiting for its changes to settle
	// can be built (this process's clock); zero when an hour was left for
	// another reason, or none was. Until then a pass would find nothing
	// to build: after a burst of traffic the pending hours wait Settle.
	Next time.Time
}

// Pass marks the hours changed by events stored since the last pass, then
// builds every closed hour of the horizon that needs it, newest first,
// while lead (nil: always) reports true.
func (b *RollupBuilder) Pass(ctx context.Context, lead func() bool) (PassResult, error) {
	var res PassResult
	now, err := b.serverNow(ctx)
	if err != nil {
		return res, err
	}
	oldest := now.Add(-b.cfg.Horizon).Truncate(time.Hour)
	if res.Marked, err = b.mark(ctx, now, oldest); err != nil {
		return res, err
	}
	end := now.Add(-b.cfg.Settle).Truncate(time.Hour) // hours before end are closed
	if !oldest.Before(end) {
		return res, nil
	}
	states, err := rollupStates(ctx, b.conn, oldest, end, b.sl)
	if err != nil {
		return res, err
	}
	var (
		todo    []time.Time
		waiting int
		settles time.Time // when the first waiting hour settles (store clock)
	)
	for h := oldest; h.Before(end); h = h.Add(time.Hour) {
		st := states.hours[h]
		if st.clean(h, b.cfg.Settle) {
			continue
		}
		if at := st.changedAt.Add(b.cfg.Settle); !st.changedAt.IsZero() && now.Before(at) {
			waiting++ // built once its changes settle
			if settles.IsZero() || at.Before(settles) {
				settles = at
			}
			continue
		}
		todo = append(todo, h)
	}
	res.Pending = len(todo) + waiting
	b.metrics.pending.Set(float64(res.Pending))
	if waiting > 0 {
		res.Next = time.Now().Add(settles.Sub(now))
	}
	if len(todo) == 0 {
		if err := b.buildDays(ctx, oldest, end, lead); err != nil {
			return res, err
		}
		b.metrics.lastPass.SetToCurrentTime()
		return res, nil
	}
	// Hours without events and without rows have no items: they are
	// recorded as built without a build query (most of the horizon of a
	// young deployment).
	todo, events, empty, err := b.splitEmpty(ctx, todo)
	if err != nil {
		return res, err
	}
	res.Built += len(empty)
	res.Pending -= len(empty)
	chunks := b.chunks(todo, events)
	long := len(chunks) > 1
	if long {
		b.logger.Info("rollup: building hours", "hours", len(todo), "queries", len(chunks),
			"from", todo[0].Format(time.RFC3339), "to", todo[len(todo)-1].Add(time.Hour).Format(time.RFC3339))
	}
	start, lastLog, done := time.Now(), time.Now(), 0
	for i, c := range chunks {
		if ctx.Err() != nil || (lead != nil && !lead()) {
			break
		}
		if err := b.build(ctx, c); err != nil {
			return res, err
		}
		done += len(c.hours)
		res.Built += len(c.hours)
		res.Pending -= len(c.hours)
		if long && (time.Since(lastLog) >= 10*time.Second || i == len(chunks)-1) {
			lastLog = time.Now()
			elapsed := time.Since(start)
			left := time.Duration(float64(elapsed) / float64(done) * float64(len(todo)-done))
			b.logger.Info("rollup: progress", "built", done, "of", len(todo), "elapsed", elapsed.Round(time.Second), "left", left.Round(time.Second))
		}
	}
	b.metrics.pending.Set(float64(res.Pending))
	if res.Pending > waiting {
		res.Next = time.Time{} // cut short: the next pass goes on at once
	}
	if err := b.buildDays(ctx, oldest, end, lead); err != nil {
		return res, err
	}
	if ctx.Err() == nil {
		b.metrics.lastPass.SetToCurrentTime()
	}
	return res, ctx.Err()
}

// buildDays adds up the days of [oldest, end) whose hours are all clean
// and that have no day build newer than their hour builds.
func (b *RollupBuilder) buildDays(ctx context.Context, oldest, end time.Time, lead func() bool) error {
	first := oldest.Truncate(24 * time.Hour)
	if first.Before(oldest) {
		first = first.Add(24 * time.Hour)
	}
	if !first.Add(24 * time.Hour).After(end) {
		// Newer than every hour build the states below show.
		asOf, err := b.serverNow(ctx)
		if err != nil {
			return err
		}
		states, err := rollupStates(ctx, b.conn, first, end, b.sl)
		if err != nil {
			return err
		}
		var empty []time.Time
		for d := end.Truncate(24 * time.Hour).Add(-24 * time.Hour); !d.Before(first); d = d.Add(-24 * time.Hour) {
			if ctx.Err() != nil || (lead != nil && !lead()) {
				return ctx.Err()
			}
			if states.dayClean(d, b.cfg.Settle) {
				continue
			}
			clean, rows := true, states.days[d].rows
			for h := d; h.Before(d.Add(24 * time.Hour)); h = h.Add(time.Hour) {
				clean = clean && states.hours[h].clean(h, b.cfg.Settle)
				rows += states.hours[h].rows
			}
			switch {
			case !clean:
			case rows == 0:
				// No hour of the day holds a row and no earlier build of
				// the day left any to cancel: the day is recorded as
				// built, without a query (most of the horizon of a young
				// deployment).
				empty = append(empty, d)
			default:
				if err := b.buildDay(ctx, d); err != nil {
					return err
				}
			}
		}
		if err := b.recordEmpty(ctx, empty, 24, asOf); err != nil {
			return err
		}
		b.metrics.days.Add(float64(len(empty)))
	}
	return nil
}

// recordEmpty records builds without rows of the periods starting at
// starts, span hours long, as of asOf (taken before the store was found
// to hold nothing for them), in one insert.
func (b *RollupBuilder) recordEmpty(ctx context.Context, starts []time.Time, span uint8, asOf time.Time) error {
	if len(starts) == 0 {
		return nil
	}
	batch, err := b.conn.PrepareBatch(ctx, rollupRecordEmptySQL)
	if err != nil {
		return fmt.Errorf("cannot record empty rollup periods: %w", err)
	}
	slMs := b.sl.Milliseconds()
	for _, h := range starts {
		if err := batch.Append(h, slMs, span, buildVersion(asOf), asOf, uint64(0)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("cannot record empty rollup periods: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot record empty rollup periods: %w", err)
	}
	return nil
}

// buildDay adds up the hours of the day starting at d into day rows.
func (b *RollupBuilder) buildDay(ctx context.Context, d time.Time) error {
	p, err := b.buildParams(ctx, []time.Time{d}, 24)
	if err != nil {
		return err
	}
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(p))
	t0 := time.Now()
	if err := b.conn.Exec(qctx, rollupDaySQL); err != nil {
		return fmt.Errorf("cannot build rollup day %s: %w", d.Format(time.DateOnly), err)
	}
	if err := b.conn.Exec(qctx, rollupRecordSQL); err != nil {
		return fmt.Errorf("cannot record rollup day %s: %w", d.Format(time.DateOnly), err)
	}
	b.metrics.duration.Observe(time.Since(t0).Seconds())
	b.metrics.days.Inc()
	return nil
}

// splitEmpty separates the hours (ascending) that have no events and no
// rollup rows, and records them as built; events holds the events stored
// in each of the others.
func (b *RollupBuilder) splitEmpty(ctx context.Context, hours []time.Time) (full []time.Time, events map[time.Time]uint64, empty []time.Time, err error) {
	asOf, err := b.serverNow(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	from, to := hours[0], hours[len(hours)-1].Add(time.Hour)
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"from": from.Format(chTime), "to": to.Format(chTime),
	}))
	rows, err := b.conn.Query(qctx, rollupBusySQL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot find busy hours: %w", err)
	}
	events = map[time.Time]uint64{}
	for rows.Next() {
		var (
			h time.Time
			n uint64
		)
		if err := rows.Scan(&h, &n); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("cannot read busy hours: %w", err)
		}
		events[h.UTC()] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("cannot read busy hours: %w", err)
	}
	for _, h := range hours {
		if _, busy := events[h]; busy {
			full = append(full, h)
		} else {
			empty = append(empty, h)
		}
	}
	if len(empty) == 0 {
		return full, events, nil, nil
	}
	if err := b.recordEmpty(ctx, empty, 1, asOf); err != nil {
		return nil, nil, nil, err
	}
	b.metrics.built.Add(float64(len(empty)))
	return full, events, empty, nil
}

// buildEvents is the most events one build statement reads: what the
// statement holds in memory grows with them (rollupItemRowsSQL). An hour
// holding more is built in parts.
const buildEvents = 300_000

// bigBuild is the size of a build statement (events) before which the Go
// heap returns its free memory to the system, making room for the engine's
// share: rebuilding an hour of 667k events on an idle process that had
// just loaded the live view, the process peaked at 778 and 841 MiB
// without it, 724 and 748 with it. It costs a collection, once for each
// such statement.
const bigBuild = 100_000

// buildChunk is the hours one build covers, the events stored in them and
// the parts the build reads them in (1: one statement).
type buildChunk struct {
	hours  []time.Time
	events uint64
	parts  int
}

// chunks cuts hours (ascending) into runs of consecutive hours of one
// month, at most ChunkHours long and holding at most budget events
// (events per hour), newest run first. An hour holding more than budget
// is a run of its own, read in as many parts as it takes to give each
// about budget events.
func (b *RollupBuilder) chunks(hours []time.Time, events map[time.Time]uint64) []buildChunk {
	var out []buildChunk
	for _, h := range hours {
		n := events[h]
		if k := len(out); k > 0 {
			last := &out[k-1]
			prev := last.hours[len(last.hours)-1]
			if h.Equal(prev.Add(time.Hour)) && h.Month() == prev.Month() && len(last.hours) < b.cfg.ChunkHours && last.events+n <= b.budget {
				last.hours = append(last.hours, h)
				last.events += n
				continue
			}
		}
		parts := int(min((n+b.budget-1)/b.budget, rollupMaxParts))
		out = append(out, buildChunk{hours: []time.Time{h}, events: n, parts: max(parts, 1)})
	}
	slices.Reverse(out)
	return out
}

// buildParams are the parameters of a build of the consecutive periods
// starting at starts, each span hours long: the window they cover, a new
// build version and the store's clock as the build's as_of.
func (b *RollupBuilder) buildParams(ctx context.Context, starts []time.Time, span int) (clickhouse.Parameters, error) {
	asOf, err := b.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	from, to := starts[0], starts[len(starts)-1].Add(time.Duration(span)*time.Hour)
	p := windowParams(from, from, to, Filters{}, 0, b.sl)
	p["build"] = strconv.FormatUint(buildVersion(asOf), 10)
	p["as_of"] = asOf.Format(chTime)
	p["hours"] = hoursParam(starts)
	p["span"] = strconv.Itoa(span)
	return p, nil
}

// build builds the consecutive hours of one month, then records them.
func (b *RollupBuilder) build(ctx context.Context, c buildChunk) error {
	p, err := b.buildParams(ctx, c.hours, 1)
	if err != nil {
		return err
	}
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(p))
	from, to := c.hours[0], c.hours[len(c.hours)-1].Add(time.Hour)
	fail := func(err error) error {
		return fmt.Errorf("cannot build rollup hours %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	// Before each statement that reads many events the Go heap gives back
	// what it holds beyond its live objects: the engine is about to take a
	// few hundred MB.
	read := func(ctx context.Context, query string) error {
		if c.events/uint64(c.parts) >= bigBuild {
			debug.FreeOSMemory()
		}
		return b.conn.Exec(ctx, query)
	}
	t0 := time.Now()
	if c.parts <= 1 {
		if err := read(qctx, rollupWholeSQL); err != nil {
			return fail(err)
		}
	} else {
		pp := maps.Clone(p)
		pp["parts"] = strconv.Itoa(c.parts)
		for part := range c.parts {
			pp["part"] = strconv.Itoa(part)
			if err := read(clickhouse.Context(ctx, clickhouse.WithParameters(pp)), rollupPartsSQL); err != nil {
				return fail(err)
			}
		}
		if err := b.conn.Exec(qctx, rollupPartsSumSQL); err != nil {
			return fail(err)
		}
	}
	if err := b.conn.Exec(qctx, rollupCubeSQL); err != nil {
		return fail(err)
	}
	if err := b.conn.Exec(qctx, rollupRecordSQL); err != nil {
		return fmt.Errorf("cannot record rollup hours %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	b.metrics.duration.Observe(time.Since(t0).Seconds())
	b.metrics.built.Add(float64(len(c.hours)))
	b.logger.Debug("rollup: built", "from", from.Format(time.RFC3339), "hours", len(c.hours), "events", c.events, "parts", c.parts, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// mark writes the marks of the events stored since the last scan (less
// Settle, for inserts that became visible late) and records the scan.
func (b *RollupBuilder) mark(ctx context.Context, now, oldest time.Time) (int, error) {
	if b.scannedTo.IsZero() {
		var (
			last time.Time
			n    uint64
		)
		if err := b.conn.QueryRow(ctx, rollupScannedSQL).Scan(&last, &n); err != nil {
			return 0, fmt.Errorf("cannot read the rollup scan position: %w", err)
		}
		if n == 0 {
			// Nothing was ever built from a scan position: every hour is
			// unbuilt, so only events stored from now on need marks.
			last = now
		}
		b.scannedTo = last.UTC()
	}
	since, counts, err := b.lateSince(ctx, now)
	if err != nil {
		return 0, err
	}
	b.scanFrom = since
	marks, err := b.changedHours(ctx, since, now, oldest)
	if err != nil {
		return 0, err
	}
	if len(marks) > 0 {
		batch, err := b.conn.PrepareBatch(ctx, rollupMarkSQL)
		if err != nil {
			return 0, fmt.Errorf("cannot mark changed rollup hours: %w", err)
		}
		for _, m := range marks {
			if err := batch.Append(m.hour, m.changed); err != nil {
				_ = batch.Abort()
				return 0, fmt.Errorf("cannot mark changed rollup hours: %w", err)
			}
		}
		if err := batch.Send(); err != nil {
			return 0, fmt.Errorf("cannot mark changed rollup hours: %w", err)
		}
		b.metrics.marked.Add(float64(len(marks)))
	}
	p := clickhouse.Parameters{"until": now.Format(chTime)}
	if err := b.conn.Exec(clickhouse.Context(ctx, clickhouse.WithParameters(p)), rollupScanSQL); err != nil {
		return 0, fmt.Errorf("cannot record the rollup scan position: %w", err)
	}
	b.scannedTo, b.stored = now, counts
	return len(marks), nil
}

// rollupMark is an hour that events stored since the last scan changed,
// with the newest ingested_at among them.
type rollupMark struct{ hour, changed time.Time }

// changedHours returns the hours of [oldest, now] that the events stored
// in [since, now) changed (rollupChangedSQL); none when since is zero
// (lateSince: nothing stored since the last scan), without the scan, a
// join of those events with their conversations (an idle leader's pass
// made it to find nothing, 88 ms each).
func (b *RollupBuilder) changedHours(ctx context.Context, since, now, oldest time.Time) ([]rollupMark, error) {
	if since.IsZero() {
		return nil, nil
	}
	p := clickhouse.Parameters{
		"since":  since.Format(chTime),
		"until":  now.Format(chTime),
		"oldest": oldest.Format(time.DateTime),
		"newest": now.Truncate(time.Hour).Format(time.DateTime),
	}
	rows, err := b.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), rollupChangedSQL)
	if err != nil {
		return nil, fmt.Errorf("cannot find changed rollup hours: %w", err)
	}
	defer rows.Close()
	var marks []rollupMark
	for rows.Next() {
		var m rollupMark
		if err := rows.Scan(&m.hour, &m.changed); err != nil {
			return nil, fmt.Errorf("cannot read changed rollup hours: %w", err)
		}
		marks = append(marks, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read changed rollup hours: %w", err)
	}
	return marks, nil
}

// lateSince returns where a scan up to now begins reading, and the
// counts per second of the overlap for the next scan to compare with.
// An insert becomes visible within Settle of its ingested_at, so the
// events stored in the Settle before the last scan's end may have come
// into view since; reading them all again (and joining their
// conversations) every pass cost what Settle holds, 19 times what a pass
// at the default interval adds. Instead the overlap's events are counted
// per second of ingested_at, one column, and the scan reads from the
// first second whose count changed since the last scan counted it, else
// from the second the last scan ended in (counted up to that end), or not
// at all (zero) when nothing was stored since. A pass that has not
// counted before reads the whole overlap.
func (b *RollupBuilder) lateSince(ctx context.Context, now time.Time) (time.Time, map[uint32]uint64, error) {
	from := b.scannedTo.Add(-b.cfg.Settle).Truncate(time.Second)
	p := clickhouse.Parameters{"since": from.Format(chTime), "until": now.Format(chTime)}
	rows, err := b.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), rollupStoredSQL)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("cannot count recently stored events: %w", err)
	}
	defer rows.Close()
	counts := map[uint32]uint64{}
	for rows.Next() {
		var (
			sec uint32
			n   uint64
		)
		if err := rows.Scan(&sec, &n); err != nil {
			return time.Time{}, nil, fmt.Errorf("cannot count recently stored events: %w", err)
		}
		counts[sec] = n
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, nil, fmt.Errorf("cannot count recently stored events: %w", err)
	}
	if b.stored == nil {
		return from, counts, nil
	}
	since := b.scannedTo.Truncate(time.Second)
	for sec := uint32(from.Unix()); int64(sec) < since.Unix(); sec++ {
		if counts[sec] != b.stored[sec] {
			return time.Unix(int64(sec), 0).UTC(), counts, nil
		}
	}
	// The last scan counted its last second up to its end: the same
	// count and no later second, and nothing was stored since.
	for sec, n := range counts {
		if int64(sec) > since.Unix() || (int64(sec) == since.Unix() && n != b.stored[sec]) {
			return since, counts, nil
		}
	}
	return time.Time{}, counts, nil
}

// buildRandomBits is how many low bits of a build version are random.
const buildRandomBits = 20

// buildVersion is the version of a build that started reading at asOf.
// A later build has a higher version, so FINAL keeps the newest; the
// random low bits keep two builds that start in the same millisecond (two
// builders at once) apart, because a build adds up its own rows into the
// other grouping sets by version and must not add up another's too.
func buildVersion(asOf time.Time) uint64 {
	return uint64(asOf.UnixMilli())<<buildRandomBits | rand.Uint64N(1<<buildRandomBits)
}

// serverNow is the store's clock, the one ingested_at is written with.
func (b *RollupBuilder) serverNow(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := b.conn.QueryRow(ctx, "SELECT now64(3)").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("cannot read the store's clock: %w", err)
	}
	return now.UTC(), nil
}
