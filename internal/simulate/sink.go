package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/schemas"
)

// Sink receives the events Run emits. Write is called from one goroutine
// at a time; it must not keep events after it returns, because Run reuses
// the slice. An error makes Run retry the same batch.
type Sink interface {
	Write(ctx context.Context, events []schemas.Event) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, events []schemas.Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, events []schemas.Event) error { return f(ctx, events) }

// messageWriter is the part of *kafka.Writer the sink uses, so tests can
// look at the messages without a broker.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

type kafkaSink struct {
	w messageWriter
}

// NewKafkaSink returns a Sink that produces each event as one message:
// key = conversation_id, value = the event as JSON (encoding/json of
// schemas.Event, the contract-v1 shape). One Write is one WriteMessages
// call, so the writer batches a whole flush.
//
// The writer is the caller's to configure; for the contract and the live
// demo it should have Balancer &kafka.Hash{} (or another key-based
// balancer: the default round-robin ignores keys, and the events of one
// conversation would spread over partitions) and a small BatchTimeout such
// as 10ms (the default of 1s holds every synchronous write back a second).
func NewKafkaSink(w *kafka.Writer) Sink {
	if w == nil {
		return &kafkaSink{}
	}
	return &kafkaSink{w: w}
}

func (k *kafkaSink) Write(ctx context.Context, events []schemas.Event) error {
	if k.w == nil {
		return errors.New("kafka sink: nil writer")
	}
	if len(events) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(events))
	for i := range events {
		v, err := json.Marshal(&events[i])
		if err != nil {
			return fmt.Errorf("encode event %s: %w", events[i].EventID, err)
		}
		msgs[i] = kafka.Message{Key: []byte(events[i].ConversationID), Value: v}
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("produce %d events: %w", len(msgs), err)
	}
	return nil
}
