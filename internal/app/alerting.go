package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/receiver"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// alerting is the rules-to-notifications chain: rule evaluation on a tick,
// the alert lifecycle, delivery from the outbox and the rollup builds.
// Every instance serves the API from the store; only the leader (the
// member that owns partition 0 of the ingest group) runs the chain, in a
// leader session that starts and stops with its leadership.
type alerting struct {
	cfg       config.Config
	logger    *slog.Logger
	kpi       *kpi.KPIStore
	rollup    *kpi.RollupBuilder
	evaluator *rules.Evaluator
	rules     *ruleBook
	store     *alerts.Store
	manager   *alerts.Manager
	deliverer *alerts.Deliverer
	// leadership is the ingest group's answer: whether this member owns
	// partition 0, and in which generation.
	leadership func() (generation int64, leads bool)
	// behind, when set, is how long the ingest has not been caught up
	// (ingest.Consumer.Behind): beyond rules.max_ingest_delay the ticks
	// are held, not evaluated.
	behind func(time.Time) time.Duration
	member string
	m      *leaderMetrics
	// tickTimeout bounds one tick; a new leader waits fenceDelay (a
	// tick's worth and a margin) after opening its term, so that whatever
	// the member before it was writing is written.
	tickTimeout, fenceDelay time.Duration
}

// leaderMetrics are what an operator watches of the leader's work.
type leaderMetrics struct {
	rules      *rules.RuleMetrics
	leader     prometheus.Gauge
	term       prometheus.Gauge
	alerts     *prometheus.GaugeVec
	outboxSize prometheus.Gauge
	outboxAge  prometheus.Gauge
}

func newLeaderMetrics(reg prometheus.Registerer) (*leaderMetrics, error) {
	rm, err := rules.NewRuleMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &leaderMetrics{
		rules: rm,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cockpit_leader",
			Help: "1 while this instance leads: it evaluates rules, runs the alert lifecycle, delivers notifications and builds rollups.",
		}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cockpit_leader_term",
			Help: "The leadership term this instance opened last (0 before it ever led).",
		}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cockpit_alerts",
			Help: "Active alerts by state, as the leader tracks them (0 on the other instances).",
		}, []string{"state"}),
		outboxSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cockpit_outbox_pending",
			Help: "Notifications in the outbox not yet delivered or given up on (read by the leader).",
		}),
		outboxAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cockpit_outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest undelivered notification (0 when none; read by the leader).",
		}),
	}
	for _, c := range []prometheus.Collector{m.leader, m.term, m.alerts, m.outboxSize, m.outboxAge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register leader metrics: %w", err)
		}
	}
	return m, nil
}

func newAlerting(ctx context.Context, cfg config.Config, conn driver.Conn, leadership func() (int64, bool), reg prometheus.Registerer, logger *slog.Logger) (*alerting, error) {
	kcfg := kpi.KPIConfig{ServiceLevelThreshold: cfg.KPI.ServiceLevelThreshold, Rollup: cfg.KPI.Rollup, Live: cfg.KPI.Live}
	kpis, err := kpi.NewKPIStore(conn, kcfg)
	if err != nil {
		return nil, err
	}
	if err := kpis.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	rollup, err := kpi.NewRollupBuilder(conn, kcfg, reg, logger)
	if err != nil {
		return nil, err
	}
	defaults, err := rules.DefaultRules()
	if err != nil {
		return nil, err
	}
	ev, err := rules.NewEvaluator(rules.NewKPIRuleSource(kpis.Live()), rules.NewSpikeRules(rules.NewClickHouseSpikeHistory(conn)), defaults, logger)
	if err != nil {
		return nil, err
	}
	book := &ruleBook{file: cfg.Rules.File, store: rules.NewRuleStore(conn), ev: ev, logger: logger.With("component", "rules")}
	if err := book.load(ctx); err != nil {
		return nil, err
	}
	store := alerts.NewStore(conn)
	manager, err := alerts.NewManager(ctx, store, cfg.Alerting.DispatchConfig, logger)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	notifiers := map[string]alerts.Notifier{alerts.LogReceiver: alerts.LogNotifier{Logger: logger.With("component", "notify")}}
	integrations := map[string]string{alerts.LogReceiver: "log"}
	for _, rc := range cfg.Alerting.Receivers {
		n, err := receiver.New(rc, client, nil, logger)
		if err != nil {
			return nil, err
		}
		notifiers[rc.Name], integrations[rc.Name] = n, rc.Kind()
	}
	dm, err := alerts.NewDeliveryMetrics(reg, integrations)
	if err != nil {
		return nil, err
	}
	lm, err := newLeaderMetrics(reg)
	if err != nil {
		return nil, err
	}
	deliverer := alerts.NewDeliverer(cfg.Alerting.Delivery.DeliveryConfig, store, notifiers, logger)
	deliverer.Metrics = dm
	host, _ := os.Hostname()
	var id [4]byte
	_, _ = rand.Read(id[:])
	// A tick's deadline is generous: on a loaded machine the built-in
	// rules take seconds, and a deadline they never meet would silence
	// every alert. A new leader waits it out once, when it takes over.
	tickTimeout := max(10*time.Second, 4*cfg.Rules.Tick)
	return &alerting{
		cfg: cfg, logger: logger.With("component", "leader"), kpi: kpis, rollup: rollup, evaluator: ev, rules: book,
		store: store, manager: manager, deliverer: deliverer, leadership: leadership, m: lm,
		member:      fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(id[:])),
		tickTimeout: tickTimeout, fenceDelay: tickTimeout + time.Second,
	}, nil
}

// run keeps the rule set in step with the store (or rules.file) on every
// instance, and runs a leader session whenever this instance leads,
// until ctx ends.
func (a *alerting) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.rules.follow(ctx)
	}()
	defer wg.Wait()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var (
		stop    context.CancelFunc
		done    chan error
		leadGen int64 = -1
		// fencedIn is the generation in which this member was fenced off:
		// it does not try again until its generation changes.
		fencedIn int64 = -1
	)
	end := func() {
		if stop != nil {
			stop()
			<-done //nolint:errcheck // a wait for the stopped loop
			stop, done = nil, nil
		}
	}
	defer end()
	for {
		gen, leads := a.leadership()
		if done != nil {
			select {
			case err := <-done:
				stop, done = nil, nil
				var fe *alerts.FencedError
				if errors.As(err, &fe) {
					a.logger.Warn("leader session fenced off: another member leads", "err", err)
					// A member that opened its term with an older
					// generation is the one to step back; this one takes
					// the lead again.
					if fe.Newest.Generation >= gen {
						fencedIn = leadGen
					}
				}
			default:
			}
		}
		if done != nil && (!leads || gen != leadGen) {
			a.logger.Info("no longer leading the ingest group; stopping the leader session")
			end()
		}
		if done == nil && leads && gen != fencedIn {
			sctx, cancel := context.WithCancel(ctx)
			stop, done, leadGen = cancel, make(chan error, 1), gen
			go func() { done <- a.session(sctx, gen) }()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hold says why the rules must not be evaluated now, if they must not:
// the stored events are further behind than rules.max_ingest_delay (the
// ingest after a restart with a backlog, or under more events than it
// keeps up with; the demo's producer writing its history: product.behind),
// so the windows hold only part of their events. Meanwhile the
// alerts stay as they were and no evaluation is recorded: the wall's
// alert banner turns "unknown" once the last one is older than it
// tolerates, rather than showing the all-clear of half a window.
func (a *alerting) hold() error {
	if a.behind == nil {
		return nil
	}
	if d := a.behind(time.Now()); d > a.cfg.Rules.MaxIngestDelay {
		return fmt.Errorf("the stored events are %s behind: the ingest, or the producer's history, is catching up (rules.max_ingest_delay %s)", d.Round(time.Second), a.cfg.Rules.MaxIngestDelay)
	}
	return nil
}

// session is one leadership: it opens a term, waits until the member
// before can no longer write, takes over the alert state, then evaluates,
// delivers and builds rollups until ctx ends or a newer term fences it
// off (returned as a *alerts.FencedError).
func (a *alerting) session(ctx context.Context, generation int64) error {
	var term alerts.Term
	if err := retry(ctx, a.logger, "open a leadership term", func() (err error) {
		term, err = a.store.BeginTerm(ctx, generation, a.member)
		return err
	}); err != nil {
		return err
	}
	a.m.term.Set(float64(term.Term))
	a.logger.Info("leading the ingest group: taking over alerting", "term", term.Term, "generation", generation, "wait", a.fenceDelay)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(a.fenceDelay):
	}
	if err := retry(ctx, a.logger, "take over the alert state", func() error {
		if err := a.store.CheckTerm(ctx, term); err != nil {
			return err
		}
		a.store.SetTerm(term.Term)
		return a.manager.Reload(ctx, time.Now())
	}); err != nil {
		return err
	}
	defer a.store.SetTerm(0)
	a.m.leader.Set(1)
	defer func() {
		a.m.leader.Set(0)
		a.m.alerts.Reset()
		a.m.outboxSize.Set(0)
		a.m.outboxAge.Set(0)
	}()
	a.logger.Info("leading: evaluating rules and sending notifications", "term", term.Term)

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// lastFence is when a tick last checked the term (unix ns).
	var lastFence atomic.Int64
	fence := func(ctx context.Context) error {
		err := a.store.CheckTerm(ctx, term)
		if errors.Is(err, alerts.ErrFenced) {
			cancel(err)
		}
		return err
	}
	a.deliverer.Fence = fence
	var wg sync.WaitGroup
	defer wg.Wait()
	a.store.DeliverWith(a.deliverer)
	wg.Add(4)
	go func() {
		defer wg.Done()
		var (
			recorded time.Time // the newest evaluation recorded
			checked  bool      // whether the last tick checked the term
		)
		a.evaluator.Run(sctx, a.cfg.Rules.Tick, a.tickTimeout, a.m.rules, a.hold, func(tctx context.Context, ev rules.Evaluation) error {
			// Every other tick checks the term at its start, which reads
			// what other instances stored (silences, acks, rule sets: in
			// force within two ticks); the others check it only before
			// they write (alerts.WithFence), which an idle tick does not.
			// An idle leader's checks, one a tick of 7.6 ms each, were
			// most of its store time.
			check := func(ctx context.Context) error {
				if checked {
					return nil
				}
				if err := fence(ctx); err != nil {
					return err
				}
				checked = true
				lastFence.Store(time.Now().UnixNano())
				return nil
			}
			octx := tctx
			if checked {
				checked, octx = false, alerts.WithFence(tctx, check)
			} else if err := check(tctx); err != nil {
				return err
			}
			err := a.manager.Observe(octx, ev)
			if err != nil && tctx.Err() == nil {
				a.logger.Warn("cannot record alerts", "err", err)
			}
			// The wall's firing list is as current as the newest recorded
			// evaluation (api: the alert banner): one in which every rule
			// was evaluated, since the alerts of a rule that failed stay
			// as they were. A tick that made no term check leaves the
			// record to the next, which makes one.
			if err == nil && len(ev.Failed) == 0 && checked && !ev.At.Before(recorded.Add(evaluationRecordEvery)) {
				if rerr := a.store.RecordEvaluation(tctx, term, ev.At); rerr == nil {
					recorded = ev.At
				} else if tctx.Err() == nil {
					a.logger.Warn("cannot record the rule evaluation", "err", rerr)
				}
			}
			a.countAlerts()
			// A rule set stored by any instance is in force from the next
			// tick: the term check read the newest version.
			if serr := a.rules.syncTo(tctx, a.store.RuleSetSeen()); serr != nil && tctx.Err() == nil {
				a.logger.Warn("cannot read the stored rule set", "err", serr)
			}
			return err
		})
	}()
	go func() {
		defer wg.Done()
		a.deliverer.Run(sctx, outboxPoll)
	}()
	go func() {
		defer wg.Done()
		a.rollup.Run(sctx, func() bool { return sctx.Err() == nil })
	}()
	go func() {
		defer wg.Done()
		a.watchOutbox(sctx)
	}()
	// Ticks check the term before they change anything; this check ends
	// the session also when no tick finishes (a store too slow for the
	// rules).
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(a.cfg.Rules.Tick, time.Second))
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			if time.Since(time.Unix(0, lastFence.Load())) < 3*max(a.cfg.Rules.Tick, time.Second) {
				continue // the ticks check it
			}
			if err := fence(sctx); err != nil && !errors.Is(err, alerts.ErrFenced) && sctx.Err() == nil {
				a.logger.Warn("cannot read the leadership term", "err", err)
			}
		}
	}()
	<-sctx.Done()
	if cause := context.Cause(sctx); errors.Is(cause, alerts.ErrFenced) {
		return cause
	}
	return ctx.Err()
}

// evaluationRecordEvery is how often the leader records that it
// evaluated the rules: the wall judges its alert banner by the newest
// record, and turns it "unknown" once that is older than the panel's
// staleness (tens of seconds).
const evaluationRecordEvery = 10 * time.Second

// outboxPoll is how often the leader reads the outbox when no
// notification was queued and nothing is due. Every notification is
// queued by this session (which wakes delivery) or was left by an earlier
// leader (read when the session starts), and Deliverer.Once says when
// the next retry or expiring claim falls due: this read is a safety net,
// and an idle leader made 12 of them a minute at 5 s.
const outboxPoll = 30 * time.Second

// countAlerts sets the alerts-by-state gauge from the leader's tracker.
func (a *alerting) countAlerts() {
	n := map[alerts.State]int{alerts.StatePending: 0, alerts.StateFiring: 0}
	for _, r := range a.manager.Active() {
		n[r.State]++
	}
	for st, c := range n {
		a.m.alerts.WithLabelValues(string(st)).Set(float64(c))
	}
}

// watchOutbox reads the outbox's depth and oldest age every 15 s (a
// Prometheus scrape interval): delivery itself does not need them.
func (a *alerting) watchOutbox(ctx context.Context) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		if st, err := a.store.OutboxStats(ctx); err == nil {
			a.m.outboxSize.Set(float64(st.Pending))
			age := 0.0
			if !st.Oldest.IsZero() {
				age = max(time.Since(st.Oldest).Seconds(), 0)
			}
			a.m.outboxAge.Set(age)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retry calls fn every second until it succeeds, ctx ends, or it reports
// that this member is fenced off.
func retry(ctx context.Context, logger *slog.Logger, what string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || errors.Is(err, alerts.ErrFenced) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 || attempt%30 == 0 {
			logger.Warn("cannot "+what+"; retrying", "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// ruleBook holds the rule set in force on this instance: the newest one
// stored (put through the API on any instance), or rules.file when set,
// in which case the file is the source of truth and its versions are
// recorded in the history.
type ruleBook struct {
	file    string
	store   *rules.RuleStore
	ev      *rules.Evaluator
	logger  *slog.Logger
	version atomic.Uint64
	// checked is when the stored version was last read (unix ns): the
	// leader's term check reads it every tick, and follow then has
	// nothing to add.
	checked atomic.Int64
	mu      sync.Mutex
}

// followInterval is how often an instance that does not lead checks the
// stored rule set (the leader's term check reads it every tick).
const followInterval = 5 * time.Second

// load puts the rules in force at start: the file's, or the newest
// stored set, or the built-in rules when none was ever stored.
func (b *ruleBook) load(ctx context.Context) error {
	if b.file != "" {
		src, err := os.ReadFile(b.file)
		if err != nil {
			return fmt.Errorf("cannot read rules.file: %w", err)
		}
		rs, err := rules.ParseRules(src)
		if err != nil {
			return fmt.Errorf("rules.file %s: %w", b.file, err)
		}
		b.ev.SetRules(rs)
		b.record(ctx, src, rs)
		return nil
	}
	return b.sync(ctx)
}

// record stores the file's rule set in the history when it differs from
// the newest stored version.
func (b *ruleBook) record(ctx context.Context, src []byte, rs *rules.RuleSet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	latest, ok, err := b.store.Latest(ctx)
	if err == nil && ok && latest.YAML == string(src) {
		return
	}
	if err == nil {
		_, err = b.store.Save(ctx, src, rs, "file", "rules.file "+b.file)
	}
	if err != nil {
		b.logger.Warn("cannot record the rule file in the rule history", "err", err)
	}
}

// sync loads the newest stored rule set if it is not the one in force.
func (b *ruleBook) sync(ctx context.Context) error {
	if b.file != "" {
		return nil
	}
	v, err := b.store.LatestVersion(ctx)
	if err != nil {
		return err
	}
	return b.syncTo(ctx, v)
}

// syncTo loads the newest stored rule set if v, the newest version just
// read from the store, is not the one in force.
func (b *ruleBook) syncTo(ctx context.Context, v uint64) error {
	if b.file != "" {
		return nil
	}
	b.checked.Store(time.Now().UnixNano())
	if v == 0 || v == b.version.Load() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	latest, ok, err := b.store.Latest(ctx)
	if err != nil || !ok || latest.Version == b.version.Load() {
		return err
	}
	rs, err := rules.ParseRules([]byte(latest.YAML))
	b.version.Store(latest.Version)
	if err != nil {
		// Stored sets were validated when put; one this release refuses
		// leaves the rules in force as they are.
		return fmt.Errorf("stored rule set %d refused; the rules in force stay: %w", latest.Version, err)
	}
	b.ev.SetRules(rs)
	return nil
}

// follow keeps the rules in step until ctx ends: the file is watched for
// changes, the store is read every followInterval.
func (b *ruleBook) follow(ctx context.Context) {
	if b.file != "" {
		rules.WatchRules(ctx, b.file, 2*time.Second, func(rs *rules.RuleSet) {
			b.ev.SetRules(rs)
			if src, err := os.ReadFile(b.file); err == nil {
				b.record(ctx, src, rs)
			}
		}, b.logger)
		return
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, b.checked.Load())) < followInterval/2 {
			continue // the leader's ticks read it
		}
		if err := b.sync(ctx); err != nil && ctx.Err() == nil {
			b.logger.Warn("cannot read the stored rule set", "err", err)
		}
	}
}

// Writable refuses rule changes through the API while rules.file is set.
func (b *ruleBook) Writable() error {
	if b.file != "" {
		return rules.ErrRulesFromFile
	}
	return nil
}

// Replace stores a new rule set, in force on this instance at once and on
// the leader from its next tick.
func (b *ruleBook) Replace(ctx context.Context, src []byte, rs *rules.RuleSet, by string) (rules.RuleVersion, error) {
	if b.file != "" {
		return rules.RuleVersion{}, rules.ErrRulesFromFile
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.store.Save(ctx, src, rs, "api", by)
	if err != nil {
		return rules.RuleVersion{}, err
	}
	b.version.Store(v.Version)
	b.ev.SetRules(rs)
	return v, nil
}

// History lists the stored versions, newest first.
func (b *ruleBook) History(ctx context.Context, limit int) ([]rules.RuleVersion, error) {
	return b.store.History(ctx, limit)
}
