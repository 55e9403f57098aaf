package embedkafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running embedded Kafka broker. Its methods are safe for
// concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	logger  *slog.Logger

	stop      chan struct{} // closed by Close to stop the retention loop
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start validates cfg, starts a broker listening on cfg.Listen and creates
// cfg.Topics. ctx bounds only the startup; the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid embedded kafka config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	cfg = cfg.withDefaults()

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for embedded kafka on %s: %w", cfg.Listen, err)
	}
	adv, err := advertisedAddr(cfg.Advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	// kfake insists on choosing the listen address itself (always
	// 127.0.0.1:port); hand it our listener instead. It advertises
	// whatever the listener's Addr returns.
	var handed bool
	listenFn := func(string, string) (net.Listener, error) {
		if handed {
			return nil, errors.New("embedded kafka runs a single broker")
		}
		handed = true
		return advertisingListener{Listener: ln, addr: adv}, nil
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenFn),
		kfake.ClusterID("cockpit-embedded"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.DefaultPartitions),
		kfake.WithLogger(slogAdapter{cfg.Logger}),
		kfake.BrokerConfigs(map[string]string{
			"log.segment.bytes":   strconv.FormatInt(cfg.SegmentBytes, 10),
			"log.retention.bytes": strconv.FormatInt(max(cfg.RetentionBytes, -1), 10),
			"log.retention.ms":    strconv.FormatInt(retentionMs(cfg.RetentionTime), 10),
		}),
	}
	for _, t := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(int32(t.Partitions), t.Name))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close() // kfake closes it only once the cluster exists
		return nil, fmt.Errorf("cannot start embedded kafka on %s: %w", cfg.Listen, err)
	}

	b := &Broker{
		cluster: cluster,
		addr:    adv.String(),
		logger:  cfg.Logger,
		stop:    make(chan struct{}),
	}
	// Seed topics are skipped when state was reloaded from DataDir; make
	// sure every configured topic exists either way.
	if err := b.ensureTopics(cfg.Topics); err != nil {
		cluster.Close()
		return nil, err
	}
	if cfg.RetentionBytes >= 0 || cfg.RetentionTime >= 0 {
		b.wg.Add(1)
		go b.retentionLoop(cfg.RetentionCheckInterval)
	}
	cfg.Logger.Info("embedded kafka started",
		"addr", b.addr, "listen", ln.Addr().String(), "data_dir", cfg.DataDir,
		"topics", len(cfg.Topics), "retention_bytes", cfg.RetentionBytes,
		"retention", cfg.RetentionTime.String())
	return b, nil
}

// Addr returns the host:port clients should use as their bootstrap server.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, closing client connections; with a DataDir it
// saves state first. It is safe to call more than once.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		// The retention loop talks to the cluster's event loop, which stops
		// answering once the cluster is closed: stop the loop first.
		close(b.stop)
		b.wg.Wait()
		b.cluster.Close()
		b.logger.Info("embedded kafka stopped", "addr", b.addr)
	})
}

func (b *Broker) ensureTopics(topics []Topic) error {
	for _, t := range topics {
		if b.cluster.TopicInfo(t.Name) != nil {
			if n := len(b.cluster.PartitionInfos(t.Name)); n != t.Partitions {
				b.logger.Warn("embedded kafka topic has a different partition count than configured; keeping it",
					"topic", t.Name, "partitions", n, "configured", t.Partitions)
			}
			continue
		}
		err := b.cluster.CreateTopic(t.Name, int32(t.Partitions), nil)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s with %d partitions: %w", t.Name, t.Partitions, err)
		}
	}
	return nil
}

// retentionLoop applies retention itself: kfake runs its cleaner only for
// topics that carry their own retention configs, which auto-created topics
// and topics seeded at start do not.
func (b *Broker) retentionLoop(every time.Duration) {
	defer b.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.cluster.ApplyRetention()
		}
	}
}

func retentionMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// advertisedAddr returns the address announced in metadata: adv if set,
// else the listener's address with an unspecified host made loopback.
func advertisedAddr(adv string, listen net.Addr) (net.Addr, error) {
	if adv == "" {
		tcp, ok := listen.(*net.TCPAddr)
		if !ok {
			return listen, nil
		}
		if tcp.IP == nil || tcp.IP.IsUnspecified() {
			return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tcp.Port}, nil
		}
		return tcp, nil
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return nil, fmt.Errorf("advertise %q: %w", adv, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("advertise %q: bad port: %w", adv, err)
	}
	return hostPortAddr{host: host, port: p}, nil
}

// advertisingListener makes kfake announce addr instead of the socket's
// own address.
type advertisingListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisingListener) Addr() net.Addr { return l.addr }

// hostPortAddr is a net.Addr for an advertised name that may not be an IP.
type hostPortAddr struct {
	host string
	port int
}

func (a hostPortAddr) Network() string { return "tcp" }
func (a hostPortAddr) String() string  { return net.JoinHostPort(a.host, strconv.Itoa(a.port)) }

// slogAdapter forwards kfake's log lines to slog. kfake logs every request
// at info, so its info and debug lines go to Debug.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, lvl) {
		return
	}
	a.l.Log(ctx, lvl, "embedded kafka: "+fmt.Sprintf(format, args...))
}
