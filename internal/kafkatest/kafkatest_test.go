package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantAddr  string
		wantFatal bool
		wantMsg   string
	}{
		{name: "set", env: map[string]string{EnvBroker: "127.0.0.1:19092"}, wantAddr: "127.0.0.1:19092"},
		{name: "set and required", env: map[string]string{EnvBroker: " 127.0.0.1:1 ", EnvRequire: "1"}, wantAddr: "127.0.0.1:1"},
		{name: "unset skips", env: map[string]string{}, wantMsg: "skipping"},
		{name: "unset, not required", env: map[string]string{EnvRequire: "0"}, wantMsg: "skipping"},
		{name: "unset, required", env: map[string]string{EnvRequire: "1"}, wantFatal: true, wantMsg: "make test"},
		{name: "unset, required true", env: map[string]string{EnvRequire: "true"}, wantFatal: true, wantMsg: EnvBroker},
		{name: "bad require value", env: map[string]string{EnvRequire: "yes please"}, wantFatal: true, wantMsg: "not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, reason, fatal := lookup(func(k string) string { return tt.env[k] })
			if addr != tt.wantAddr || fatal != tt.wantFatal {
				t.Fatalf("lookup = %q, fatal %v; want %q, fatal %v (reason %q)", addr, fatal, tt.wantAddr, tt.wantFatal, reason)
			}
			if !strings.Contains(reason, tt.wantMsg) {
				t.Errorf("reason %q does not mention %q", reason, tt.wantMsg)
			}
		})
	}
}

func TestTopicName(t *testing.T) {
	seen := map[string]bool{}
	for _, in := range []string{"TestX", "TestX/sub_case.1", strings.Repeat("x", 400), "TestÜnicode/ü"} {
		name, err := topicName(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(name) > 249 {
			t.Errorf("topicName(%q) is %d characters", in, len(name))
		}
		for _, r := range name {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
				t.Errorf("topicName(%q) = %q has %q", in, name, r)
			}
		}
		if seen[name] {
			t.Errorf("duplicate name %q", name)
		}
		seen[name] = true
	}
}

func TestTopicProduceConsume(t *testing.T) {
	brokers := Broker(t)
	topic := Topic(t, brokers, 3)

	const n = 300
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	Produce(t, brokers, topic, msgs...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("topic %s has %d partitions, want 3", topic, len(parts))
	}
	got := map[string]string{}
	for _, p := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", brokers, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		batch := pc.ReadBatch(1, 10<<20)
		for off := int64(0); off < last; off++ {
			m, err := batch.ReadMessage()
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p.ID, off, err)
			}
			got[string(m.Key)] = string(m.Value)
		}
		batch.Close()
		pc.Close()
	}
	if len(got) != n {
		t.Fatalf("read %d distinct messages, want %d", len(got), n)
	}
	for i := range n {
		if v := got[fmt.Sprintf("k%d", i)]; v != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d = %q", i, v)
		}
	}
}

func TestTopicDeletedAtCleanup(t *testing.T) {
	brokers := Broker(t)
	var topic string
	t.Run("create", func(t *testing.T) {
		topic = Topic(t, brokers, 1)
	})
	client := &kafka.Client{Addr: kafka.TCP(brokers)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Topics) == 1 && errors.Is(md.Topics[0].Error, kafka.UnknownTopicOrPartition) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s still exists after its test ended: %+v", topic, md.Topics)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRestart checks that Restart brings the broker back with its data
// and that it takes new records afterwards. (How the product's consumer
// group rides through a restart is ingest's TestBrokerRestart.)
func TestRestart(t *testing.T) {
	brokers := Broker(t)
	topic := Topic(t, brokers, 2)
	// readAll reads both partitions from the start until want records
	// came; a broker still starting up is retried until the deadline.
	// Each call has its own deadline: Restart may first wait minutes for
	// other tests to release the broker.
	readAll := func(want int) map[string]bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		seen := map[string]bool{}
		for p := 0; p < 2; p++ {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: p,
				MaxWait: 100 * time.Millisecond, ReadBackoffMax: 500 * time.Millisecond})
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				t.Fatal(err)
			}
			for {
				lag, err := r.ReadLag(ctx)
				if err == nil && lag == 0 {
					break
				}
				if err != nil {
					if ctx.Err() != nil {
						t.Fatalf("partition %d: %v", p, err)
					}
					time.Sleep(200 * time.Millisecond)
					continue
				}
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						t.Fatalf("read partition %d (%d of %d so far): %v", p, len(seen), want, err)
					}
					continue
				}
				seen[string(m.Value)] = true
			}
			r.Close()
		}
		if len(seen) != want {
			t.Fatalf("read %d distinct records, want %d: %v", len(seen), want, seen)
		}
		return seen
	}
	batch := func(tag string) []kafka.Message {
		msgs := make([]kafka.Message, 20)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%d", tag, i))}
		}
		return msgs
	}

	Produce(t, brokers, topic, batch("before")...)
	readAll(20)
	Restart(t)
	Produce(t, brokers, topic, batch("after")...)
	seen := readAll(40)
	for i := range 20 {
		if !seen[fmt.Sprintf("before-%d", i)] || !seen[fmt.Sprintf("after-%d", i)] {
			t.Fatalf("record %d missing before or after the restart: %v", i, seen)
		}
	}
}
