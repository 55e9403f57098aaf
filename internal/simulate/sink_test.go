package simulate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cockpit-cs/cockpit/schemas"
)

type fakeWriter struct {
	msgs []kafka.Message
	err  error
}

func (f *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, msgs...)
	return nil
}

func TestKafkaSinkEncodesContractEvents(t *testing.T) {
	events := generate(t, testConfig(monday10, 5), monday10, monday10.Add(2*time.Minute))
	w := &fakeWriter{}
	sink := &kafkaSink{w: w}
	if err := sink.Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if len(w.msgs) != len(events) {
		t.Fatalf("%d messages for %d events", len(w.msgs), len(events))
	}
	for i, m := range w.msgs {
		if string(m.Key) != events[i].ConversationID {
			t.Fatalf("message %d key %q, want conversation_id %q", i, m.Key, events[i].ConversationID)
		}
		// The value must pass the ingest's strict decoder (unknown fields
		// refused, occurred_at with offset).
		got, err := schemas.Decode(m.Value, monday10.Add(2*time.Minute), schemas.DefaultLimits())
		if err != nil {
			t.Fatalf("message %d %s: %v", i, m.Value, err)
		}
		if got.EventID != events[i].EventID || !got.OccurredAt.Equal(events[i].OccurredAt) {
			t.Fatalf("message %d decodes to %+v, want %+v", i, got, events[i])
		}
	}

	w.err = errors.New("leader not available")
	if err := sink.Write(context.Background(), events[:1]); !errors.Is(err, w.err) {
		t.Errorf("Write = %v, want the writer's error wrapped", err)
	}
	if err := NewKafkaSink(nil).Write(context.Background(), events[:1]); err == nil {
		t.Error("nil writer accepted")
	}
}

// TestKafkaSinkProducesToABroker runs the sink against kfake, an in-process
// broker that speaks the Kafka protocol, and reads the messages back with a
// kafka-go reader.
func TestKafkaSinkProducesToABroker(t *testing.T) {
	const topic = "cs.conversation-events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()

	events := generate(t, testConfig(monday10, 2), monday10, monday10.Add(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := NewKafkaSink(w).Write(ctx, events); err != nil {
		t.Fatal(err)
	}

	partitionOf := map[string]int{}
	got := 0
	for p := range 3 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		for {
			readCtx, readCancel := context.WithTimeout(ctx, 500*time.Millisecond)
			m, err := r.ReadMessage(readCtx)
			readCancel()
			if err != nil {
				break
			}
			e, err := schemas.Decode(m.Value, monday10.Add(time.Hour), schemas.DefaultLimits())
			if err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
			if string(m.Key) != e.ConversationID {
				t.Fatalf("key %q for conversation %q", m.Key, e.ConversationID)
			}
			if prev, ok := partitionOf[e.ConversationID]; ok && prev != p {
				t.Fatalf("conversation %s on partitions %d and %d", e.ConversationID, prev, p)
			}
			partitionOf[e.ConversationID] = p
			got++
		}
		r.Close()
	}
	if got != len(events) {
		t.Fatalf("read back %d of %d events", got, len(events))
	}
}
