package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/internal/chdb"
	"github.com/cockpit-cs/cockpit/internal/chstore"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/internal/embedkafka"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/schemas"
)

// simFlags are the simulator settings shared by demo and simulate.
type simFlags struct {
	rate      float64
	seed      uint64
	floor     float64
	backfill  time.Duration
	incidents string
	faults    string
}

func (s *simFlags) register(fs *flag.FlagSet, prefix string, backfill time.Duration, faults string) {
	d := simulate.DefaultConfig()
	fs.Float64Var(&s.rate, prefix+"rate", d.PeakRate, "simulated conversations per second at the weekday peak")
	fs.Uint64Var(&s.seed, prefix+"seed", d.Seed, "simulator random seed")
	fs.Float64Var(&s.floor, prefix+"floor", 0.3, "share of the peak rate kept at night (0..1), so incidents show at any hour")
	fs.DurationVar(&s.backfill, prefix+"backfill", backfill, "history to generate at start, e.g. 1h (0 = none)")
	fs.StringVar(&s.incidents, prefix+"incidents", "default", "scheduled incidents: default or none")
	fs.StringVar(&s.faults, prefix+"faults", faults, "bad input mixed in (late, duplicate, invalid events): demo or none")
}

func (s *simFlags) config() (simulate.Config, error) {
	cfg := simulate.DefaultConfig()
	cfg.PeakRate, cfg.Seed, cfg.Floor, cfg.Backfill = s.rate, s.seed, s.floor, s.backfill
	switch s.incidents {
	case "default":
	case "none":
		cfg.Incidents = nil
	default:
		return cfg, fmt.Errorf("incidents must be default or none, got %q", s.incidents)
	}
	switch s.faults {
	case "demo":
		cfg.Faults = simulate.DemoFaults()
	case "none":
		cfg.Faults = simulate.Faults{}
	default:
		return cfg, fmt.Errorf("faults must be demo or none, got %q", s.faults)
	}
	return cfg, cfg.Validate()
}

// newEventWriter is the producer of simulated events: keyed by
// conversation, so a conversation's events stay in order on one partition.
func newEventWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		BatchTimeout: 10 * time.Millisecond,
		BatchSize:    5000,
		RequiredAcks: kafka.RequireAll,
		// A topic that does not exist yet is created by the broker (when it
		// allows) rather than failing every write.
		AllowAutoTopicCreation: true,
	}
}

func cmdDemo(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	var c common
	c.register(fs)
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP listen address of the API and dashboards")
	kafkaListen := fs.String("kafka-listen", embedkafka.DefaultListen, "listen address of the embedded Kafka broker")
	chListen := fs.String("clickhouse-listen", "127.0.0.1:8123", "listen address of the embedded ClickHouse HTTP endpoint")
	dataDir := fs.String("data-dir", "./data", "directory for the embedded Kafka and ClickHouse data")
	simOn := fs.Bool("simulate", true, "run the traffic simulator")
	var sim simFlags
	sim.register(fs, "simulate-", simulate.DemoBackfill, "demo")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(func(cfg *config.Config) { cfg.HTTP.Listen = *httpAddr })
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	simCfg, err := sim.config()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}

	// 1. The ClickHouse engine (fetched on first run) behind its HTTP endpoint.
	lib, err := chdb.Ensure(ctx, logger)
	if err != nil {
		return fmt.Errorf("cannot get the ClickHouse engine: %w", err)
	}
	// Its accounts are made here, before it starts, so the product's own
	// client can use them.
	chDir := filepath.Join(*dataDir, "clickhouse")
	creds, created, err := chstore.LoadOrCreateCredentials(chDir)
	if err != nil {
		return err
	}
	var notice io.Writer
	if created {
		notice = stderr
	}
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStore()
	storeErr := make(chan error, 1)
	go func() {
		storeErr <- chstore.Run(storeCtx, chstore.Config{
			Listen:      *chListen,
			Engine:      chdb.Config{LibPath: lib, DataDir: chDir},
			Notice:      notice,
			Credentials: creds,
		}, logger.With("component", "store"))
	}()
	defer func() {
		stopStore()
		if err := <-storeErr; err != nil {
			logger.Warn("store stopped with an error", "err", err)
		}
	}()

	// 2. Kafka, with the product's topics, kept on disk across restarts.
	broker, err := embedkafka.Start(ctx, embedkafka.Config{
		Listen:  *kafkaListen,
		DataDir: filepath.Join(*dataDir, "kafka"),
		Topics: []embedkafka.Topic{
			{Name: cfg.Ingest.Topic, Partitions: demoPartitions},
			{Name: deadLetterTopic(cfg), Partitions: 1},
		},
		Logger: logger.With("component", "kafka"),
	})
	if err != nil {
		return err
	}
	defer broker.Close()

	cfg.Ingest.Brokers = []string{broker.Addr()}
	cfg.ClickHouse.DSN = creds.DSN(*chListen, "")
	if err := waitForStore(ctx, cfg.ClickHouse, storeErr, logger); err != nil {
		return err
	}

	// 3. The product itself, exactly as `cockpit serve` runs it.
	p, err := newProduct(ctx, cfg, logger)
	if err != nil {
		return err
	}
	simDone := make(chan struct{})
	if *simOn {
		simCfg.Backfill = backfillNeeded(ctx, p, simCfg.Backfill, logger)
		s, err := simulate.New(simCfg, logger.With("component", "simulator"))
		if err != nil {
			return err
		}
		produced := s.Produced
		p.source.Store(&produced)
		w := newEventWriter(cfg.Ingest.Brokers, cfg.Ingest.Topic)
		go func() {
			defer close(simDone)
			defer w.Close()
			if err := s.Run(ctx, simulate.NewKafkaSink(w)); err != nil {
				logger.Error("simulator stopped", "err", err)
			}
		}()
	} else {
		close(simDone)
	}
	logger.Info("demo running", "wall", "http://"+*httpAddr+"/wall", "kafka", broker.Addr(), "clickhouse", "http://"+*chListen,
		"data_dir", *dataDir, "simulate", *simOn)
	err = p.run(ctx)
	<-simDone
	return err
}

// demoPartitions is the partition count of the demo's events topic. One
// process consumes it, and each partition's batch is an insert of its own
// (with the rows the views derive from it): at the demo's rate four
// partitions made four times the small inserts and the merges behind
// them, which took about half of the demo's CPU (1.49 cores against 0.81
// with one). A data directory made before keeps its topic.
const demoPartitions = 1

// backfillNeeded shortens the simulator's backfill to the gap since the
// newest stored event, so that restarting the demo on its data directory
// does not generate the same hours twice.
func backfillNeeded(ctx context.Context, p *product, want time.Duration, logger *slog.Logger) time.Duration {
	if want <= 0 {
		return 0
	}
	var newest time.Time
	if err := p.conn.QueryRow(ctx, "SELECT max(occurred_at) FROM events").Scan(&newest); err != nil {
		logger.Warn("cannot read the newest event; backfilling in full", "err", err)
		return want
	}
	if gap := time.Since(newest); !newest.IsZero() && newest.Unix() > 0 && gap < want {
		logger.Info("history present; backfilling only the gap", "newest_event", newest, "backfill", gap.Round(time.Second))
		return max(gap, 0)
	}
	return want
}

func deadLetterTopic(cfg config.Config) string {
	if cfg.Ingest.DeadLetterTopic != "" {
		return cfg.Ingest.DeadLetterTopic
	}
	return cfg.Ingest.Topic + ".dlq"
}

// waitForStore waits until the endpoint answers, or fails with the
// store's own error if it could not start.
func waitForStore(ctx context.Context, cfg config.ClickHouse, storeErr chan error, logger *slog.Logger) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		conn, err := openClickHouse(ctx, cfg, "")
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case serr := <-storeErr:
			storeErr <- serr // for the deferred reader
			return fmt.Errorf("the embedded ClickHouse did not start: %w", serr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the embedded ClickHouse did not answer within 2 minutes: %w", err)
		}
		logger.Debug("waiting for the embedded ClickHouse", "err", err)
	}
}

func cmdStore(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("store", stderr)
	var c common
	c.register(fs)
	listen := fs.String("listen", "127.0.0.1:8123", "listen address of the ClickHouse HTTP endpoint (credentials in <data-dir>/"+chstore.CredentialsFile+")")
	dataDir := fs.String("data-dir", "./data/clickhouse", "engine data directory (one process per directory)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(nil)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	return chstore.Run(ctx, chstore.Config{Listen: *listen, Engine: chdb.Config{DataDir: *dataDir}, Notice: stderr}, logger)
}

func cmdSimulate(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr)
	var c common
	c.register(fs)
	brokers := fs.String("brokers", "", "Kafka brokers, comma separated (ingest.brokers)")
	topic := fs.String("topic", "", "topic to produce to (ingest.topic)")
	duration := fs.Duration("duration", 0, "stop after this long (0 = until interrupted)")
	from := fs.String("from", "", "fast-forward: generate the events of [from, to) as fast as possible (RFC 3339)")
	to := fs.String("to", "", "end of the fast-forward range (RFC 3339, default now)")
	printSchedule := fs.Bool("print-schedule", false, "print the incidents of the next 3 hours and exit")
	var sim simFlags
	sim.register(fs, "", 0, "none")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(func(cfg *config.Config) {
		if *brokers != "" {
			cfg.Ingest.Brokers = splitList(*brokers)
		}
		if *topic != "" {
			cfg.Ingest.Topic = *topic
		}
	})
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	simCfg, err := sim.config()
	if err != nil {
		return err
	}
	s, err := simulate.New(simCfg, logger)
	if err != nil {
		return err
	}
	if *printSchedule {
		now := time.Now()
		for _, inc := range s.Schedule(now, now.Add(3*time.Hour)) {
			fmt.Fprintln(stderr, inc.String())
		}
		return nil
	}
	if len(cfg.Ingest.Brokers) == 0 {
		return errors.New("no Kafka brokers: give --brokers or COCKPIT_INGEST_BROKERS")
	}
	w := newEventWriter(cfg.Ingest.Brokers, cfg.Ingest.Topic)
	defer w.Close()
	sink := simulate.NewKafkaSink(w)
	if *from != "" {
		return fastForward(ctx, s, sink, *from, *to, logger)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	return s.Run(ctx, sink)
}

func fastForward(ctx context.Context, s *simulate.Simulator, sink simulate.Sink, fromS, toS string, logger *slog.Logger) error {
	from, err := time.Parse(time.RFC3339, fromS)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to := time.Now()
	if toS != "" {
		if to, err = time.Parse(time.RFC3339, toS); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	if !from.Before(to) {
		return errors.New("--from must be before --to")
	}
	const batch = 5000
	buf := make([]schemas.Event, 0, batch)
	total := 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := sink.Write(ctx, buf); err != nil {
			return err
		}
		total += len(buf)
		if total%(batch*40) == 0 {
			logger.Info("fast-forward progress", "events", total, "at", buf[len(buf)-1].OccurredAt.Format(time.RFC3339))
		}
		buf = buf[:0]
		return nil
	}
	err = s.Generate(from, to, func(e schemas.Event) error {
		buf = append(buf, e)
		if len(buf) == batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	logger.Info("fast-forward done", "events", total, "from", from, "to", to)
	return err
}
