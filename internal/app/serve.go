package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/api"
	"github.com/cockpit-cs/cockpit/dashboard"
	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// migrate applies the DDL through a connection not bound to the product's
// database, which may not exist yet.
func migrate(ctx context.Context, cfg config.ClickHouse, logger *slog.Logger) error {
	admin, err := openClickHouse(ctx, cfg, "")
	if err != nil {
		return err
	}
	defer admin.Close()
	return schemas.Migrate(ctx, admin, cfg.StoreConfig, logger)
}

// product is the running pipeline: ingest and the HTTP server, over a
// Kafka and a ClickHouse reached by address. serve and demo both run it,
// so the demo is the same product with embedded dependencies.
type product struct {
	cfg      config.Config
	logger   *slog.Logger
	reg      *prometheus.Registry
	conn     driver.Conn
	ln       net.Listener
	http     *http.Server
	ingest   *ingest.Consumer
	alerting *alerting
	hub      *api.Hub
	events   *kafka.Writer
	// source, when set, is how far in time the events its producer had
	// written by a moment reach (the demo's simulator writing its
	// backfill: history, not the present).
	source atomic.Pointer[func(time.Time) time.Time]
}

// behind is how far behind the clock the stored events may be: the
// ingest's own lag behind its partitions (ingest.Consumer.Behind), or,
// when the producer is writing history (source), the time since what it
// had written when the ingest was last caught up. The rules hold their
// ticks, the live view pauses and the wall dates its panels by it, so a
// start-up's backfill shows as catching up, never as a present with no
// complaints and no alerts.
func (p *product) behind(now time.Time) time.Duration {
	lag := p.ingest.Behind(now)
	if f := p.source.Load(); f != nil {
		lag = max(lag, now.Sub((*f)(now.Add(-lag))))
	}
	return lag
}

func newProduct(ctx context.Context, cfg config.Config, logger *slog.Logger) (*product, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := migrate(ctx, cfg.ClickHouse, logger); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := ingest.EnsureTopics(tctx, cfg.Ingest, cfg.Kafka.Partitions, cfg.Kafka.Replication)
	cancel()
	if err != nil {
		return nil, err
	}
	conn, err := openClickHouse(ctx, cfg.ClickHouse, cfg.ClickHouse.Database)
	if err != nil {
		return nil, err
	}
	p := &product{cfg: cfg, logger: logger, conn: conn, reg: prometheus.NewRegistry()}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.ingest, err = ingest.New(cfg.Ingest, conn, p.reg, logger); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if p.alerting, err = newAlerting(ctx, cfg, conn, p.ingest.Leadership, p.reg, logger); err != nil {
		_ = conn.Close()
		return nil, err
	}
	p.alerting.behind = p.behind
	p.alerting.kpi.FollowIngest(p.behind)
	convs, err := kpi.NewConversationStore(conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	// POST /api/v1/events produces here, keyed by conversation like any
	// other producer, and waits for all in-sync replicas.
	p.events = &kafka.Writer{
		Addr: kafka.TCP(cfg.Ingest.Brokers...), Topic: cfg.Ingest.Topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 10000,
	}
	srv, err := api.New(api.Deps{
		Config: cfg.API,
		Hosts:  apiHosts(cfg),
		Ready: []api.Check{
			{Name: "kafka", Fn: p.kafkaReady},
			{Name: "clickhouse", Fn: func(ctx context.Context) error { return conn.Ping(ctx) }},
		},
		Metrics:       promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}),
		KPIs:          p.alerting.kpi,
		LiveKPIs:      p.alerting.kpi.Live(),
		IngestBehind:  p.behind,
		Conversations: convs,
		AlertHistory:  p.alerting.store,
		Alerts:        p.alerting.manager,
		Rules:         p.alerting.evaluator,
		RuleVersions:  p.alerting.rules,
		Registerer:    p.reg,
		Producer: api.ProducerFunc(func(ctx context.Context, msgs []kafka.Message) error {
			return p.events.WriteMessages(ctx, msgs...)
		}),
	}, logger)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	p.hub = srv.Hub()
	if err := dashboard.Mount(srv.Engine(), dashboard.Deps{Rules: p.alerting.evaluator.Rules, TileWindow: cfg.API.StreamWindow}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	p.alerting.manager.OnChange(p.hub.PublishAlerts)
	if err := api.CheckListen(cfg.API, cfg.HTTP.Listen); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if len(cfg.API.Tokens) == 0 {
		logger.Warn("no API tokens configured: every request is allowed, so the server listens on loopback only", "http", cfg.HTTP.Listen)
	}
	if p.ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("cannot listen on %s (http.listen): %w", cfg.HTTP.Listen, err)
	}
	if p.http, p.ln, err = newAPIServer(cfg.HTTP, p.ln, srv.Handler(), logger); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return p, nil
}

// kafkaReady checks that a broker answers and knows the events topic.
func (p *product) kafkaReady(ctx context.Context) error {
	var lastErr error
	for _, b := range p.cfg.Ingest.Brokers {
		conn, err := (&kafka.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", b)
		if err != nil {
			lastErr = err
			continue
		}
		parts, err := conn.ReadPartitions(p.cfg.Ingest.Topic)
		_ = conn.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if len(parts) == 0 {
			return fmt.Errorf("topic %s has no partitions", p.cfg.Ingest.Topic)
		}
		return nil
	}
	return lastErr
}

// run serves until ctx ends or a part fails, then stops in data order
// under one deadline: ingest first (it flushes and commits what it read),
// the HTTP server last.
func (p *product) run(ctx context.Context) error {
	defer p.conn.Close()
	g := newRunGroup(ctx, p.logger)
	g.start("ingest", p.ingest.Run)
	g.start("alerting", func(ctx context.Context) error {
		p.alerting.run(ctx)
		return nil
	})
	g.start("hub", func(ctx context.Context) error {
		p.hub.Run(ctx)
		return nil
	})
	g.start("insert watch", func(ctx context.Context) error {
		watchInserts(ctx, p.ingest.Stats(), func() {
			p.alerting.kpi.Fresh()
			p.alerting.rollup.Fresh()
			p.hub.Fresh()
		})
		return nil
	})
	g.add("http", func() error {
		if err := p.http.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(ctx context.Context) {
		if err := p.http.Shutdown(ctx); err != nil {
			p.logger.Warn("http shutdown", "err", err)
		}
	})
	p.logger.Info("cockpit is up", "http", "http://"+p.ln.Addr().String(), "brokers", p.cfg.Ingest.Brokers,
		"clickhouse", config.RedactDSN(p.cfg.ClickHouse.DSN), "database", p.cfg.ClickHouse.Database)
	var runErr error
	select {
	case <-ctx.Done():
		p.logger.Info("stopping")
	case runErr = <-g.failed():
		p.logger.Error("stopping after a failure", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.cfg.Ingest.ShutdownTimeout+5*time.Second)
	defer cancel()
	// The HTTP server keeps answering /healthz while ingest drains.
	g.stop(sctx, "ingest")
	// Then alerting: the last evaluation's notifications are in the outbox.
	g.stop(sctx, "alerting")
	// The stream ends before the server, so its long-lived requests return.
	g.stop(sctx, "insert watch")
	g.stop(sctx, "hub")
	if err := p.events.Close(); err != nil {
		p.logger.Warn("closing the event producer", "err", err)
	}
	g.stop(sctx, "http")
	return runErr
}

// watchInserts calls fresh whenever this instance's ingest has stored new
// events, so the live stream shows them without waiting for its next tick.
func watchInserts(ctx context.Context, st *ingest.Stats, fresh func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.Stored():
			fresh()
		}
	}
}
