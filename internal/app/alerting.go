package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/alerts/notify/receiver"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/pipeline"
)

// alerting is the rules-to-notifications chain: rule evaluation on a tick,
// the alert lifecycle, and delivery from the outbox. Only the instance
// that leads the ingest group (owns partition 0) evaluates and delivers.
type alerting struct {
	cfg       config.Config
	logger    *slog.Logger
	kpi       *pipeline.KPIStore
	rollup    *pipeline.RollupBuilder
	evaluator *pipeline.Evaluator
	store     *alerts.Store
	manager   *alerts.Manager
	deliverer *alerts.Deliverer
	leader    func() bool
}

func newAlerting(ctx context.Context, cfg config.Config, conn driver.Conn, leader func() bool, reg prometheus.Registerer, logger *slog.Logger) (*alerting, error) {
	kcfg := pipeline.KPIConfig{ServiceLevelThreshold: cfg.KPI.ServiceLevelThreshold, Rollup: cfg.KPI.Rollup, Live: cfg.KPI.Live}
	kpi, err := pipeline.NewKPIStore(conn, kcfg)
	if err != nil {
		return nil, err
	}
	rollup, err := pipeline.NewRollupBuilder(conn, kcfg, reg, logger)
	if err != nil {
		return nil, err
	}
	rs, err := loadRules(cfg.Rules.File)
	if err != nil {
		return nil, err
	}
	ev, err := pipeline.NewEvaluator(pipeline.NewKPIRuleSource(kpi.Live()), pipeline.NewSpikeRules(pipeline.NewClickHouseSpikeHistory(conn)), rs, logger)
	if err != nil {
		return nil, err
	}
	store := alerts.NewStore(conn)
	manager, err := alerts.NewManager(ctx, store, cfg.Alerting.DispatchConfig, logger)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	notifiers := map[string]alerts.Notifier{alerts.LogReceiver: alerts.LogNotifier{Logger: logger.With("component", "notify")}}
	for _, rc := range cfg.Alerting.Receivers {
		n, err := receiver.New(rc, client, nil, logger)
		if err != nil {
			return nil, err
		}
		notifiers[rc.Name] = n
	}
	return &alerting{
		cfg: cfg, logger: logger, kpi: kpi, rollup: rollup, evaluator: ev, store: store, manager: manager, leader: leader,
		deliverer: alerts.NewDeliverer(cfg.Alerting.Delivery, store, notifiers, logger),
	}, nil
}

func loadRules(path string) (*pipeline.RuleSet, error) {
	if path == "" {
		return pipeline.DefaultRules()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules.file: %w", err)
	}
	rs, err := pipeline.ParseRules(src)
	if err != nil {
		return nil, fmt.Errorf("rules.file %s: %w", path, err)
	}
	return rs, nil
}

// outboxPoll is how often the leader reads the outbox when no
// notification was queued and no retry is due.
const outboxPoll = 5 * time.Second

// run evaluates, alerts, delivers and keeps the hourly KPI rollup built
// until ctx ends.
func (a *alerting) run(ctx context.Context) {
	const workers = 4
	done := make(chan struct{}, workers)
	// kick wakes delivery as soon as a notification was written to the
	// outbox; otherwise the outbox is read when a retry falls due, and
	// every outboxPoll for what an earlier leader left.
	kick := make(chan struct{}, 1)
	a.store.OnEnqueue = func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	go func() {
		defer func() { done <- struct{}{} }()
		if a.cfg.Rules.File != "" {
			pipeline.WatchRules(ctx, a.cfg.Rules.File, 2*time.Second, a.evaluator.SetRules, a.logger)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		wasLeader := false
		a.evaluator.Run(ctx, a.cfg.Rules.Tick, func(ev pipeline.Evaluation) {
			if !a.leader() {
				if wasLeader {
					a.logger.Info("no longer leading the ingest group; alerting paused here")
				}
				wasLeader = false
				return
			}
			if !wasLeader {
				// Take over what another instance (or an earlier run) left.
				if err := a.manager.Reload(ctx, ev.At); err != nil {
					a.logger.Warn("cannot load alert state; will retry", "err", err)
					return
				}
				a.logger.Info("leading the ingest group: evaluating rules and sending notifications")
				wasLeader = true
				a.store.OnEnqueue()
			}
			if err := a.manager.Observe(ctx, ev); err != nil && ctx.Err() == nil {
				a.logger.Warn("cannot record alerts", "err", err)
			}
		})
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			wait := outboxPoll
			if a.leader() {
				if next := a.deliverer.Once(ctx, time.Now()); !next.IsZero() {
					wait = min(wait, max(time.Until(next), 50*time.Millisecond))
				}
			}
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-kick:
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		a.rollup.Run(ctx, a.leader)
	}()
	for range workers {
		<-done
	}
}
