package embedkafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/internal/kafkatest"
)

// startTest starts a broker on a free loopback port and closes it at the
// end of the test.
func startTest(t testing.TB, cfg Config) *Broker {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "topics", cfg: Config{Topics: []Topic{{Name: "cs.conversation-events", Partitions: 8}, {Name: "cs.dead_letter"}}}},
		{name: "wildcard listen", cfg: Config{Listen: ":9092"}},
		{name: "advertise", cfg: Config{Listen: "0.0.0.0:9092", Advertise: "demo.example:9092"}},
		{name: "no port", cfg: Config{Listen: "127.0.0.1"}, wantErr: "listen"},
		{name: "bad port", cfg: Config{Listen: "127.0.0.1:99999"}, wantErr: "bad port"},
		{name: "advertise port 0", cfg: Config{Advertise: "h:0"}, wantErr: "cannot be advertised"},
		{name: "advertise no host", cfg: Config{Advertise: ":9092"}, wantErr: "missing host"},
		{name: "empty topic", cfg: Config{Topics: []Topic{{Name: ""}}}, wantErr: "empty name"},
		{name: "bad topic char", cfg: Config{Topics: []Topic{{Name: "a/b"}}}, wantErr: "not allowed"},
		{name: "dot topic", cfg: Config{Topics: []Topic{{Name: ".."}}}, wantErr: "not allowed"},
		{name: "long topic", cfg: Config{Topics: []Topic{{Name: strings.Repeat("x", 250)}}}, wantErr: "at most 249"},
		{name: "duplicate topic", cfg: Config{Topics: []Topic{{Name: "a"}, {Name: "a"}}}, wantErr: "listed twice"},
		{name: "negative partitions", cfg: Config{Topics: []Topic{{Name: "a", Partitions: -1}}}, wantErr: "partitions -1"},
		{name: "too many partitions", cfg: Config{DefaultPartitions: 5000}, wantErr: "default partitions"},
		{name: "tiny segment", cfg: Config{SegmentBytes: 10}, wantErr: "segment bytes"},
		{name: "negative interval", cfg: Config{RetentionCheckInterval: -time.Second}, wantErr: "interval"},
		{name: "sub-ms retention", cfg: Config{RetentionTime: time.Microsecond}, wantErr: "at least 1ms"},
		{name: "unlimited retention", cfg: Config{RetentionBytes: -1, RetentionTime: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	b, err := Start(context.Background(), Config{Listen: "nonsense"})
	if err == nil {
		b.Close()
		t.Fatal("Start accepted an invalid listen address")
	}
}

func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := Start(context.Background(), Config{Listen: ln.Addr().String()})
	if err == nil {
		b.Close()
		t.Fatal("Start succeeded on a port that is in use")
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
}

func TestCloseTwice(t *testing.T) {
	b := startTest(t, Config{})
	b.Close()
	b.Close()
	if _, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		t.Error("broker still accepts connections after Close")
	}
}

func TestWildcardListenAdvertisesLoopback(t *testing.T) {
	b := startTest(t, Config{Listen: ":0", Topics: []Topic{{Name: "t1", Partitions: 2}}})
	host, _, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", b.Addr())
	}
	parts := readPartitions(t, b.Addr(), "t1")
	for _, p := range parts {
		if got := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)); got != b.Addr() {
			t.Errorf("partition %d leader %s, want %s", p.ID, got, b.Addr())
		}
	}
}

func TestTopicsCreatedOnStart(t *testing.T) {
	b := startTest(t, Config{
		DefaultPartitions: 3,
		Topics:            []Topic{{Name: "cs.conversation-events", Partitions: 8}, {Name: "cs.dead-letter"}},
	})
	for topic, want := range map[string]int{"cs.conversation-events": 8, "cs.dead-letter": 3} {
		if got := len(readPartitions(t, b.Addr(), topic)); got != want {
			t.Errorf("topic %s has %d partitions, want %d", topic, got, want)
		}
	}
}

func readPartitions(t testing.TB, addr, topic string) []kafka.Partition {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("metadata for %s: %+v", topic, md.Topics)
	}
	return md.Topics[0].Partitions
}

func TestGroupRoundTripEmbedded(t *testing.T) {
	const topic = "roundtrip"
	b := startTest(t, Config{Topics: []Topic{{Name: topic, Partitions: 4}}})
	roundTrip(t, b.Addr(), topic, 4, 50_000)
}

// TestKafkatestHelpersOnEmbedded runs kafkatest's topic helper (CreateTopics
// via the controller, delete at cleanup) against the embedded broker.
func TestKafkatestHelpersOnEmbedded(t *testing.T) {
	b := startTest(t, Config{})
	topic := kafkatest.Topic(t, b.Addr(), 4)
	roundTrip(t, b.Addr(), topic, 4, 5_000)
}

// TestGroupRoundTripRealBroker runs the same producer and consumer group
// code against the real broker, so the embedded one is held to its
// behaviour.
func TestGroupRoundTripRealBroker(t *testing.T) {
	brokers := kafkatest.Broker(t)
	topic := kafkatest.Topic(t, brokers, 4)
	roundTrip(t, brokers, topic, 4, 50_000)
}

// roundTrip produces n keyed messages to topic while a consumer-group reader
// consumes them with explicit commits, then checks every message arrived
// exactly once and the group's committed offsets cover the whole topic.
func roundTrip(t *testing.T, brokers, topic string, partitions, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	group := fmt.Sprintf("%s-group-%d", topic, time.Now().UnixNano())

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{brokers},
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		MinBytes:          1,
		MaxBytes:          4 << 20,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
	})
	defer r.Close()

	var (
		wg       sync.WaitGroup
		writeErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeErr = produce(ctx, brokers, topic, n)
	}()

	seen := make([]bool, n)
	var pending []kafka.Message
	var got int
	for got < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("fetch after %d of %d messages: %v (producer: %v)", got, n, err, writeErr)
		}
		i, err := strconv.Atoi(string(m.Key))
		if err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected key %q", m.Key)
		}
		if seen[i] {
			t.Fatalf("message %d delivered twice", i)
		}
		if want := value(i); string(m.Value) != want {
			t.Fatalf("message %d: value %q, want %q", i, m.Value, want)
		}
		seen[i] = true
		got++
		pending = append(pending, m)
		if len(pending) == 1000 || got == n {
			if err := r.CommitMessages(ctx, pending...); err != nil {
				t.Fatalf("commit after %d messages: %v", got, err)
			}
			pending = pending[:0]
		}
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("produce: %v", writeErr)
	}

	committed, err := committedTotal(ctx, brokers, group, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	if committed != int64(n) {
		t.Fatalf("group %s committed offsets sum to %d, want %d", group, committed, n)
	}
}

func value(i int) string { return "event-" + strconv.Itoa(i) + "-" + strings.Repeat("x", 64) }

func produce(ctx context.Context, brokers, topic string, n int) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   4 << 20,
		BatchTimeout: 5 * time.Millisecond,
	}
	const chunk = 5000
	msgs := make([]kafka.Message, 0, chunk)
	var err error
	for start := 0; start < n && err == nil; start += chunk {
		msgs = msgs[:0]
		for i := start; i < min(start+chunk, n); i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(value(i))})
		}
		err = w.WriteMessages(ctx, msgs...)
	}
	return errors.Join(err, w.Close())
}

func committedTotal(ctx context.Context, brokers, group, topic string, partitions int) (int64, error) {
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers)}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return 0, fmt.Errorf("fetch committed offsets of %s: %w", group, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("fetch committed offsets of %s: %w", group, resp.Error)
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		sum += max(p.CommittedOffset, 0)
	}
	return sum, nil
}
