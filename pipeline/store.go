package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// KPIConfig configures a KPIStore.
type KPIConfig struct {
	// ServiceLevelThreshold is the longest wait for a human that counts as
	// within service level. Default 20s.
	ServiceLevelThreshold time.Duration `yaml:"service_level_threshold"`
	// MaxSteps bounds the number of steps one Timeseries call may ask
	// for. Default 10000.
	MaxSteps int `yaml:"max_steps"`
	// Now returns the current time for the "now" gauges. Default
	// time.Now; tests set a fixed clock.
	Now func() time.Time `yaml:"-"`
}

// Validate checks the config after defaults are applied.
func (c *KPIConfig) Validate() error {
	if c.ServiceLevelThreshold <= 0 {
		return fmt.Errorf("service_level_threshold must be positive, got %s", c.ServiceLevelThreshold)
	}
	if c.MaxSteps <= 0 {
		return fmt.Errorf("max_steps must be positive, got %d", c.MaxSteps)
	}
	return nil
}

func (c *KPIConfig) defaults() {
	if c.ServiceLevelThreshold == 0 {
		c.ServiceLevelThreshold = 20 * time.Second
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// KPIStore computes the SPEC §5 metrics from ClickHouse: the events table
// and the conversations rollup (schemas/migrations/0003). It is safe for
// concurrent use.
type KPIStore struct {
	conn driver.Conn
	cfg  KPIConfig
}

// NewKPIStore returns a store reading through conn, which must be bound to
// the product's database.
func NewKPIStore(conn driver.Conn, cfg KPIConfig) (*KPIStore, error) {
	if conn == nil {
		return nil, errors.New("kpi store: conn must not be nil")
	}
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kpi store config: %w", err)
	}
	return &KPIStore{conn: conn, cfg: cfg}, nil
}

// KPIs returns every metric over w for the conversations matching f.
func (s *KPIStore) KPIs(ctx context.Context, w Window, f Filters) (Snapshot, error) {
	cells, err := s.compute(ctx, w, f, DimNone, 0, true)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{}
	if c := cells[cellKey{}]; c != nil {
		snap = c.snapshot()
	}
	snap.From, snap.To, snap.Filters = w.From.UTC(), w.To.UTC(), f
	return snap, nil
}

// KPIsBy returns every metric over w for each value of dim among the
// conversations matching f, ordered by key. Values with no activity in w
// (and no gauge above zero) are absent.
func (s *KPIStore) KPIsBy(ctx context.Context, w Window, f Filters, dim Dimension) ([]KeyedSnapshot, error) {
	if !slices.Contains(Dimensions, dim) {
		return nil, fmt.Errorf("unknown dimension %q", dim)
	}
	cells, err := s.compute(ctx, w, f, dim, 0, true)
	if err != nil {
		return nil, err
	}
	out := make([]KeyedSnapshot, 0, len(cells))
	for k, c := range cells {
		snap := c.snapshot()
		snap.From, snap.To, snap.Filters = w.From.UTC(), w.To.UTC(), f
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
	name, stat := metric, ""
	if i := lastDot(metric); i >= 0 {
		name, stat = metric[:i], metric[i+1:]
	}
	m, ok := MetricByName(name)
	if !ok {
		return nil, fmt.Errorf("unknown metric %q", metric)
	}
	if m.Kind == MetricGauge {
		return nil, fmt.Errorf("metric %s is a gauge: it has no time series", name)
	}
	if m.Kind == MetricQuantile && stat == "" {
		stat = "p90"
	}
	if groupBy != DimNone && !slices.Contains(Dimensions, groupBy) {
		return nil, fmt.Errorf("unknown dimension %q", groupBy)
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if step < time.Millisecond {
		return nil, fmt.Errorf("step %s is shorter than a millisecond", step)
	}
	steps := (w.To.Sub(w.From) + step - 1) / step
	if steps > time.Duration(s.cfg.MaxSteps) {
		return nil, fmt.Errorf("%d steps asked, at most %d allowed", steps, s.cfg.MaxSteps)
	}
	// Validate the stat before the query.
	var probe Snapshot
	if _, _, err := probe.Value(name, stat); err != nil {
		return nil, err
	}
	cells, err := s.compute(ctx, w, f, groupBy, step, false)
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
		for i := int64(0); i < int64(steps); i++ {
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

// cell accumulates the raw sums of one cellKey from the queries.
type cell struct {
	started, closed, resolved, abandoned, complaints uint64
	csatN, csatSum, csatOK, sentN, sentNeg           uint64
	fr, hfr, resp, wait                              quantileRaw
	botEnded, transferred, contained                 uint64
	slFinished, slMet                                uint64
	active, waiting                                  uint64
}

// quantileRaw is a distribution as the store returns it, in milliseconds.
type quantileRaw struct {
	n   uint64
	sum int64
	q   []float64 // p50, p90
}

func (q quantileRaw) value() Quantile {
	out := Quantile{Count: q.n}
	if q.n == 0 {
		return out
	}
	avg := float64(q.sum) / float64(q.n) / 1000
	out.Avg = &avg
	if len(q.q) == 2 {
		p50, p90 := q.q[0]/1000, q.q[1]/1000
		out.P50, out.P90 = &p50, &p90
	}
	return out
}

func ratio(num, den uint64) *float64 {
	if den == 0 {
		return nil
	}
	v := float64(num) / float64(den)
	return &v
}

func (c *cell) snapshot() Snapshot {
	s := Snapshot{
		ConversationsStarted:      c.started,
		ConversationsClosed:       c.closed,
		ResolutionRate:            ratio(c.resolved, c.closed),
		TransferRate:              ratio(c.transferred, c.botEnded),
		BotContainmentRate:        ratio(c.contained, c.botEnded),
		AbandonRate:               ratio(c.abandoned, c.closed+c.abandoned),
		FirstResponseSeconds:      c.fr.value(),
		HumanFirstResponseSeconds: c.hfr.value(),
		ResponseSeconds:           c.resp.value(),
		HumanWaitSeconds:          c.wait.value(),
		ServiceLevel:              ratio(c.slMet, c.slFinished),
		Complaints:                c.complaints,
		CSATAvg:                   ratio(c.csatSum, c.csatN),
		CSATSatisfiedRate:         ratio(c.csatOK, c.csatN),
		NegativeSentimentRate:     ratio(c.sentNeg, c.sentN),
		ActiveConversations:       c.active,
		WaitingForHuman:           c.waiting,
		abandoned:                 c.abandoned,
		botEnded:                  c.botEnded,
		transfersFinished:         c.slFinished,
		csatCount:                 c.csatN,
		sentimentCount:            c.sentN,
	}
	return s
}

const chTime = "2006-01-02 15:04:05.000"

// params are the query parameters of a window query.
func (s *KPIStore) params(w Window, f Filters, step time.Duration) clickhouse.Parameters {
	stepMs := w.To.Sub(w.From).Milliseconds() + 1
	if step > 0 {
		stepMs = step.Milliseconds()
	}
	return clickhouse.Parameters{
		"from":          w.From.UTC().Format(chTime),
		"to":            w.To.UTC().Format(chTime),
		"from_ms":       strconv.FormatInt(w.From.UnixMilli(), 10),
		"to_ms":         strconv.FormatInt(w.To.UnixMilli(), 10),
		"step_ms":       strconv.FormatInt(stepMs, 10),
		"sl_ms":         strconv.FormatInt(s.cfg.ServiceLevelThreshold.Milliseconds(), 10),
		"region":        f.Region,
		"queue":         f.Queue,
		"channel":       f.Channel,
		"business_line": f.BusinessLine,
		"agent":         f.Agent,
	}
}

// combinedWindowMax is the longest window compute answers with windowSQL.
var combinedWindowMax = 6 * time.Hour

// compute runs the window queries concurrently and merges their rows by
// (step, key). withGauges adds the "now" gauges to step 0.
func (s *KPIStore) compute(ctx context.Context, w Window, f Filters, dim Dimension, step time.Duration, withGauges bool) (map[cellKey]*cell, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if w.From.Truncate(time.Millisecond) != w.From || w.To.Truncate(time.Millisecond) != w.To {
		w = Window{From: w.From.Truncate(time.Millisecond), To: w.To.Truncate(time.Millisecond)}
		if err := w.Validate(); err != nil {
			return nil, err
		}
	}
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(s.params(w, f, step)))
	type part struct {
		cells map[cellKey]*cell
		err   error
	}
	// A short window is dominated by planning, so it runs one combined
	// query; a long one by reading, so it runs the three narrower queries,
	// which read less.
	jobs := []func(context.Context, Dimension, map[cellKey]*cell) error{s.window}
	if w.To.Sub(w.From) > combinedWindowMax {
		jobs = []func(context.Context, Dimension, map[cellKey]*cell) error{s.eventCounts, s.conversationFacts, s.pairs}
	}
	if withGauges {
		jobs = append(jobs, func(_ context.Context, d Dimension, m map[cellKey]*cell) error { return s.gauges(ctx, f, d, m) })
	}
	parts := make([]part, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() {
			m := map[cellKey]*cell{}
			parts[i] = part{cells: m, err: job(qctx, dim, m)}
		})
	}
	wg.Wait()
	out := map[cellKey]*cell{}
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		for k, c := range p.cells {
			dst := out[k]
			if dst == nil {
				out[k] = c
				continue
			}
			dst.merge(c)
		}
	}
	return out, nil
}

// merge adds the fields another query filled in; each query fills
// disjoint fields, so adding is the same as copying.
func (c *cell) merge(o *cell) {
	c.started += o.started
	c.closed += o.closed
	c.resolved += o.resolved
	c.abandoned += o.abandoned
	c.complaints += o.complaints
	c.csatN += o.csatN
	c.csatSum += o.csatSum
	c.csatOK += o.csatOK
	c.sentN += o.sentN
	c.sentNeg += o.sentNeg
	for _, pr := range [][2]*quantileRaw{{&c.fr, &o.fr}, {&c.hfr, &o.hfr}, {&c.resp, &o.resp}, {&c.wait, &o.wait}} {
		if pr[1].n > 0 {
			*pr[0] = *pr[1]
		}
	}
	c.botEnded += o.botEnded
	c.transferred += o.transferred
	c.contained += o.contained
	c.slFinished += o.slFinished
	c.slMet += o.slMet
	c.active += o.active
	c.waiting += o.waiting
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

// window runs windowSQL: the event counts, conversation facts and
// response pairs of the window in one query.
func (s *KPIStore) window(ctx context.Context, dim Dimension, m map[cellKey]*cell) error {
	rows, err := s.conn.Query(ctx, withKey(windowSQL, dim))
	if err != nil {
		return fmt.Errorf("cannot query window metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket int64
			key    string
			v      cell
		)
		var sums []int64
		if err := rows.Scan(&bucket, &key, &sums, &v.fr.q, &v.hfr.q, &v.resp.q, &v.wait.q); err != nil {
			return fmt.Errorf("cannot read window metrics: %w", err)
		}
		// The order of windowSQL's sums.
		u := []*uint64{&v.started, &v.closed, &v.resolved, &v.abandoned, &v.complaints,
			&v.csatN, &v.csatSum, &v.csatOK, &v.sentN, &v.sentNeg,
			&v.fr.n, nil, &v.hfr.n, nil, &v.botEnded, &v.transferred, &v.contained,
			&v.resp.n, nil, &v.wait.n, nil, &v.slFinished, &v.slMet}
		i64 := map[int]*int64{11: &v.fr.sum, 13: &v.hfr.sum, 18: &v.resp.sum, 20: &v.wait.sum}
		if len(sums) != len(u) {
			return fmt.Errorf("cannot read window metrics: %d sums, want %d", len(sums), len(u))
		}
		for i, x := range sums {
			if u[i] != nil {
				*u[i] = uint64(x)
			} else {
				*i64[i] = x
			}
		}
		at(m, bucket, key).merge(&v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read window metrics: %w", err)
	}
	return nil
}

func (s *KPIStore) eventCounts(ctx context.Context, dim Dimension, m map[cellKey]*cell) error {
	rows, err := s.conn.Query(ctx, withKey(eventCountsSQL, dim))
	if err != nil {
		return fmt.Errorf("cannot query event counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket int64
			key    string
			v      cell
		)
		if err := rows.Scan(&bucket, &key, &v.started, &v.closed, &v.resolved, &v.abandoned, &v.complaints,
			&v.csatN, &v.csatSum, &v.csatOK, &v.sentN, &v.sentNeg); err != nil {
			return fmt.Errorf("cannot read event counts: %w", err)
		}
		at(m, bucket, key).merge(&v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read event counts: %w", err)
	}
	return nil
}

func (s *KPIStore) conversationFacts(ctx context.Context, dim Dimension, m map[cellKey]*cell) error {
	rows, err := s.conn.Query(ctx, withKey(conversationsSQL, dim))
	if err != nil {
		return fmt.Errorf("cannot query conversation facts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket int64
			key    string
			v      cell
		)
		if err := rows.Scan(&bucket, &key, &v.fr.n, &v.fr.sum, &v.fr.q, &v.hfr.n, &v.hfr.sum, &v.hfr.q,
			&v.botEnded, &v.transferred, &v.contained); err != nil {
			return fmt.Errorf("cannot read conversation facts: %w", err)
		}
		at(m, bucket, key).merge(&v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read conversation facts: %w", err)
	}
	return nil
}

func (s *KPIStore) pairs(ctx context.Context, dim Dimension, m map[cellKey]*cell) error {
	rows, err := s.conn.Query(ctx, withKey(pairsSQL, dim))
	if err != nil {
		return fmt.Errorf("cannot query response pairs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket int64
			key    string
			v      cell
		)
		if err := rows.Scan(&bucket, &key, &v.resp.n, &v.resp.sum, &v.resp.q, &v.wait.n, &v.wait.sum, &v.wait.q,
			&v.slFinished, &v.slMet); err != nil {
			return fmt.Errorf("cannot read response pairs: %w", err)
		}
		at(m, bucket, key).merge(&v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read response pairs: %w", err)
	}
	return nil
}

// gauges adds the "now" gauges to bucket 0 of m.
func (s *KPIStore) gauges(ctx context.Context, f Filters, dim Dimension, m map[cellKey]*cell) error {
	p := s.params(Window{}, f, 0)
	p["now"] = s.cfg.Now().UTC().Format(chTime)
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(p))
	rows, err := s.conn.Query(qctx, withKey(gaugesSQL, dim))
	if err != nil {
		return fmt.Errorf("cannot query gauges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key string
			v   cell
		)
		if err := rows.Scan(&key, &v.active, &v.waiting); err != nil {
			return fmt.Errorf("cannot read gauges: %w", err)
		}
		if v.active == 0 && v.waiting == 0 {
			continue
		}
		at(m, 0, key).merge(&v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read gauges: %w", err)
	}
	return nil
}
