package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/internal/chclient"
)

// Consumer is one member of the ingest consumer group. Several processes
// with the same GroupID share the topic's partitions between them.
type Consumer struct {
	cfg    Config
	store  store
	claims *claims
	dlq    *deadLetter
	m      *metrics
	logger *slog.Logger
	dialer *kafka.Dialer
	stats  Stats
	leader atomic.Bool
	// leaderGen is the generation in which leader was last set.
	leaderGen atomic.Int64
	progress  progress
	watch     *groupWatch
}

// Behind reports how long ago the least recent of the partitions this
// member reads was last caught up: a fetch of it left no more than the
// next one brings. About a second while the ingest keeps up (an idle
// partition is fetched every second); it grows through a backlog, a store
// outage (a batch that cannot be stored holds its partition's fetches), a
// partition just taken over until its first fetches, and while the
// member's generation has ended and no new one has begun (the broker
// unreachable): it is not caught up until it reads again. The partitions
// other members read count too, from the group's committed offsets
// (groupWatch, polled every second): a member that reads some of them, or
// none, is as far behind as the group.
func (c *Consumer) Behind(now time.Time) time.Duration {
	return max(c.progress.behind(now), c.watch.behind(now))
}

// Leader reports whether this member currently owns partition 0 of the
// events topic. Exactly one member of the group does (but for a moment
// during a rebalance), so work that must run once per deployment, such as
// alert evaluation and notification, follows it: no home-made election.
func (c *Consumer) Leader() bool { return c.leader.Load() }

// Leadership reports whether this member owns partition 0 and, if so, the
// consumer-group generation it owns it in: generations only grow, so the
// work that follows partition 0 can fence off a member that still
// believes it leads after a rebalance.
func (c *Consumer) Leadership() (generation int64, leads bool) {
	if !c.leader.Load() {
		return 0, false
	}
	return c.leaderGen.Load(), true
}

// Stats are running totals of one consumer, for progress reports and tests.
// Duplicates are records not stored because their event_id was.
type Stats struct {
	Consumed, Inserted, Rejected, Duplicates atomic.Int64
	stored                                   chan struct{}
}

// Stored returns a channel that receives after a batch is stored: one
// notice waits at most, so a reader that falls behind sees one for
// several batches, and a reader waits without polling.
func (s *Stats) Stored() <-chan struct{} { return s.stored }

// noteStored posts the notice of Stored, unless one is already waiting.
func (s *Stats) noteStored() {
	select {
	case s.stored <- struct{}{}:
	default:
	}
}

// Stats returns the consumer's running totals.
func (c *Consumer) Stats() *Stats { return &c.stats }

// ProgressInterval is how often Run logs its rates while records flow.
const ProgressInterval = 10 * time.Second

// reportProgress logs rates every ProgressInterval while anything changed.
func (c *Consumer) reportProgress(stop <-chan struct{}) {
	t := time.NewTicker(ProgressInterval)
	defer t.Stop()
	var lastC, lastI, lastR, lastD int64
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			cons, ins, rej, dup := c.stats.Consumed.Load(), c.stats.Inserted.Load(), c.stats.Rejected.Load(), c.stats.Duplicates.Load()
			if cons != lastC {
				secs := now.Sub(last).Seconds()
				c.logger.Info("ingest progress",
					"consumed_per_s", int64(float64(cons-lastC)/secs), "inserted_per_s", int64(float64(ins-lastI)/secs),
					"rejected", rej-lastR, "duplicates", dup-lastD, "consumed_total", cons, "inserted_total", ins,
					"rejected_total", rej, "duplicates_total", dup)
			}
			lastC, lastI, lastR, lastD, last = cons, ins, rej, dup, now
		}
	}
}

// New checks cfg with its defaults applied and returns a consumer that
// writes through conn, a clickhouse-go connection bound to the database
// holding the events table. Its metrics are registered on reg.
func New(cfg Config, conn driver.Conn, reg prometheus.Registerer, logger *slog.Logger) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("ingest: a ClickHouse connection is required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ingest: cannot register metrics: %w", err)
	}
	c := &Consumer{
		cfg:    cfg,
		store:  store{conn: chclient.Wrap(conn)},
		claims: newClaims(),
		dlq:    newDeadLetter(cfg),
		m:      m,
		logger: logger.With("component", "ingest", "topic", cfg.Topic),
		dialer: &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true},
		watch:  newGroupWatch(cfg.Brokers, cfg.Topic, cfg.GroupID, time.Now()),
	}
	c.stats.stored = make(chan struct{}, 1)
	// Which member leads is what an operator (and the fault tests) asks
	// first when alerts go quiet after a rebalance.
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cockpit_ingest_leader",
		Help: "1 while this member owns partition 0 of the events topic, and so evaluates rules and sends notifications.",
	}, func() float64 {
		if c.Leader() {
			return 1
		}
		return 0
	})
	// How far behind the member reads is why the rules hold their ticks
	// (rules.max_ingest_delay): the operator sees it before the wall
	// turns unknown.
	behind := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cockpit_ingest_behind_seconds",
		Help: "How long ago the events topic was last all stored: this member's partitions by its fetches, the others by the group's committed offsets (about 1 while the ingest keeps up).",
	}, func() float64 { return c.Behind(time.Now()).Seconds() })
	for _, g := range []prometheus.Collector{leader, behind} {
		if err := reg.Register(g); err != nil {
			return nil, fmt.Errorf("ingest: cannot register metrics: %w", err)
		}
	}
	return c, nil
}

// Run consumes until ctx ends. On the way out every partition flushes the
// records it holds and commits them (within ShutdownTimeout), then the
// member leaves the group. Run returns nil after a clean stop.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.dialer,
		Topics:            []string{c.cfg.Topic},
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.ShutdownTimeout + 5*time.Second,
		JoinGroupBackoff:  time.Second,
		// Rebalances on new partitions, so a topic grown at run time is read.
		WatchPartitionChanges: true,
		ErrorLogger:           kafka.LoggerFunc(func(msg string, args ...any) { c.logger.Debug(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("ingest: cannot join consumer group %s: %w", c.cfg.GroupID, err)
	}
	c.logger.Info("ingest started", "group", c.cfg.GroupID, "brokers", c.cfg.Brokers)
	closed := make(chan error, 1)
	stop := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		c.reportProgress(stop)
	}()
	watched := make(chan struct{})
	wctx, stopWatch := context.WithCancel(ctx)
	go func() {
		defer close(watched)
		c.watch.run(wctx, c.logger)
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		// Close ends the running generation and waits for every partition
		// worker to flush and return.
		closed <- group.Close()
	}()
	defer func() {
		close(stop)
		stopWatch()
		<-closed //nolint:errcheck // a wait: the generation is over either way
		<-reported
		<-watched
		if err := c.dlq.close(); err != nil {
			c.logger.Warn("cannot close the dead-letter writer", "err", err)
		}
		c.logger.Info("ingest stopped")
	}()
	c.progress.begin(time.Now())
	failures := 0
	for {
		gen, err := group.Next(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed):
			return nil
		case err != nil:
			// A fresh topic or broker answers "coordinator not available"
			// for a moment: only a failure that persists is worth a warning.
			failures++
			if failures%30 == 0 {
				c.logger.Warn("consumer group not joined yet, retrying", "group", c.cfg.GroupID, "attempts", failures, "err", err)
			}
			continue
		}
		failures = 0
		assigned := gen.Assignments[c.cfg.Topic]
		c.progress.assigned(len(assigned))
		ids := make([]int, len(assigned))
		for i, pa := range assigned {
			ids[i] = pa.ID
		}
		c.watch.assign(ids)
		for _, pa := range assigned {
			gen.Start(func(gctx context.Context) {
				c.runPartition(gctx, gen, pa)
			})
		}
		c.logger.Info("partitions assigned", "generation", gen.ID, "partitions", ids)
	}
}

// retry calls fn until it succeeds or ctx ends, backing off exponentially
// with jitter between attempts.
func (c *Consumer) retry(ctx context.Context, step string, attrs []any, fn func(context.Context) error) error {
	wait := c.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				c.logger.Info("recovered", append(attrs, "step", step, "attempts", attempt)...)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.retries.WithLabelValues(step).Inc()
		if attempt == 1 || attempt%10 == 0 {
			c.logger.Warn("step failed, retrying", append(attrs, "step", step, "attempt", attempt, "err", err)...)
		}
		jittered := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(jittered):
		}
		wait = min(wait*2, c.cfg.RetryMax)
	}
}
