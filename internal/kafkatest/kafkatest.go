package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Environment variables read by this package.
const (
	// EnvBroker holds the real broker's bootstrap address (host:port, or a
	// comma-separated list).
	EnvBroker = "COCKPIT_TEST_KAFKA"
	// EnvRequire, when true, turns a missing EnvBroker into a test failure.
	EnvRequire = "COCKPIT_REQUIRE_KAFKA"
)

// opTimeout bounds each admin or produce call made by the helpers.
const opTimeout = 30 * time.Second

// Broker returns the address of the real Kafka broker named by
// COCKPIT_TEST_KAFKA. Without it the test is skipped, or fails when
// COCKPIT_REQUIRE_KAFKA=1. The test also takes a shared claim on the broker
// until it ends, which [Restart] waits for.
func Broker(t testing.TB) string {
	t.Helper()
	addr, reason, fatal := lookup(os.Getenv)
	if addr == "" {
		if fatal {
			t.Fatalf("kafkatest: %s", reason)
		}
		t.Skipf("kafkatest: %s", reason)
	}
	claimShared(t, addr)
	return addr
}

// lookup applies the environment rule of Broker: the address, or why there
// is none and whether that must fail the test.
func lookup(getenv func(string) string) (addr, reason string, fatal bool) {
	addr = strings.TrimSpace(getenv(EnvBroker))
	if addr != "" {
		return addr, "", false
	}
	req := strings.TrimSpace(getenv(EnvRequire))
	if req == "" {
		return "", fmt.Sprintf("%s is not set; skipping a test that needs a real Kafka broker "+
			"(start one with: eval \"$(scripts/kafka.sh start)\"; export %s=$KAFKA)", EnvBroker, EnvBroker), false
	}
	required, err := strconv.ParseBool(req)
	if err != nil {
		return "", fmt.Sprintf("%s=%q is not a boolean", EnvRequire, req), true
	}
	if required {
		return "", fmt.Sprintf("%s is not set but %s=%s: this test needs the real Kafka broker "+
			"that `make test` starts (scripts/kafka.sh start)", EnvBroker, EnvRequire, req), true
	}
	return "", fmt.Sprintf("%s is not set; skipping a test that needs a real Kafka broker", EnvBroker), false
}

// Topic creates a topic with a unique name derived from the test's name and
// the given number of partitions, waits until every partition has a leader,
// and deletes the topic when the test ends. brokers is a bootstrap address
// (or comma-separated list); Topic works against any Kafka-compatible broker.
func Topic(t testing.TB, brokers string, partitions int) string {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("kafkatest: topic needs at least one partition, got %d", partitions)
	}
	name, err := topicName(t.Name())
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := createTopic(ctx, brokers, name, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := deleteTopic(ctx, brokers, name); err != nil {
			t.Errorf("kafkatest: %v", err)
		}
	})
	return name
}

// Produce writes msgs to topic and fails the test unless every message is
// acknowledged by all in-sync replicas. Messages with a key go to the
// partition kafka-go's Hash balancer picks; messages without one are spread
// round-robin. Message.Topic and Message.Partition must be left empty.
func Produce(t testing.TB, brokers, topic string, msgs ...kafka.Message) {
	t.Helper()
	if len(msgs) == 0 {
		return
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(splitBrokers(brokers)...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchSize:              min(len(msgs), 1000),
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: false,
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("kafkatest: produce %d messages to %s: %v", len(msgs), topic, err)
	}
}

func splitBrokers(brokers string) []string {
	var out []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// topicName turns a test name into a legal, unique Kafka topic name.
func topicName(testName string) (string, error) {
	var sb strings.Builder
	sb.WriteString("cockpit-test-")
	for _, r := range testName {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-':
			sb.WriteRune(r)
		default:
			// '.' and '_' collide in Kafka's metric names; avoid both.
			sb.WriteByte('-')
		}
	}
	base := sb.String()
	if len(base) > 200 {
		base = base[:200]
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("random topic suffix: %w", err)
	}
	return base + "-" + hex.EncodeToString(suffix[:]), nil
}

// dialController connects to the cluster's controller, which is the broker
// that accepts CreateTopics and DeleteTopics.
func dialController(ctx context.Context, brokers string) (*kafka.Conn, error) {
	addrs := splitBrokers(brokers)
	if len(addrs) == 0 {
		return nil, errors.New("no broker address given")
	}
	var errs []error
	for _, addr := range addrs {
		conn, err := kafka.DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ctrl, err := conn.Controller()
		conn.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("find controller via %s: %w", addr, err))
			continue
		}
		cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
		if err != nil {
			errs = append(errs, fmt.Errorf("dial controller: %w", err))
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = cc.SetDeadline(dl) // a connection that refuses it fails its next read
		}
		return cc, nil
	}
	return nil, fmt.Errorf("cannot reach a controller via %s: %w", brokers, errors.Join(errs...))
}

func createTopic(ctx context.Context, brokers, name string, partitions int) error {
	// Retry what a broker that has just restarted (another test's Restart)
	// does for a moment: close the connection, time out.
	for attempt := 1; ; attempt++ {
		err := createOnce(ctx, brokers, name, partitions)
		var kerr kafka.Error
		switch {
		case err == nil:
		case attempt > 1 && errors.Is(err, kafka.TopicAlreadyExists):
			// An earlier attempt created it before its connection died.
		case errors.As(err, &kerr) && !kerr.Temporary():
			return err
		default:
			select {
			case <-ctx.Done():
				return err
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		break
	}
	// CreateTopics returns once the controller has the topic; the broker
	// may not serve it yet, and an early acks=0 produce would be dropped.
	return waitLeaders(ctx, brokers, name, partitions)
}

func createOnce(ctx context.Context, brokers, name string, partitions int) error {
	cc, err := dialController(ctx, brokers)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		return fmt.Errorf("create topic %s with %d partitions: %w", name, partitions, err)
	}
	return nil
}

func waitLeaders(ctx context.Context, brokers, name string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(splitBrokers(brokers)...)}
	var last error
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		switch {
		case err != nil:
			last = err
		case len(md.Topics) != 1:
			last = fmt.Errorf("metadata returned %d topics", len(md.Topics))
		case md.Topics[0].Error != nil:
			last = md.Topics[0].Error
		case len(md.Topics[0].Partitions) != partitions:
			last = fmt.Errorf("%d of %d partitions visible", len(md.Topics[0].Partitions), partitions)
		default:
			last = nil
			for _, p := range md.Topics[0].Partitions {
				if p.Error != nil || p.Leader.Host == "" {
					last = fmt.Errorf("partition %d has no leader yet", p.ID)
					break
				}
			}
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %w (last: %v)", name, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func deleteTopic(ctx context.Context, brokers, name string) error {
	// Retry: the broker may be coming back from a Restart.
	var last error
	for {
		cc, err := dialController(ctx, brokers)
		if err == nil {
			err = cc.DeleteTopics(name)
			cc.Close()
			if err == nil || errors.Is(err, kafka.UnknownTopicOrPartition) {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete topic %s: %w", name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
