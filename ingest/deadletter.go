package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/schemas"
)

// Headers set on every dead-letter record, beside the original key and
// value, so an operator can see why and find the source.
const (
	HeaderReason          = "cockpit-reject-reason"
	HeaderError           = "cockpit-reject-error"
	HeaderSourceTopic     = "cockpit-source-topic"
	HeaderSourcePartition = "cockpit-source-partition"
	HeaderSourceOffset    = "cockpit-source-offset"
	// HeaderFirstPartition and HeaderFirstOffset name the stored version
	// of a record rejected as ReasonDuplicateEventID.
	HeaderFirstPartition = "cockpit-first-partition"
	HeaderFirstOffset    = "cockpit-first-offset"
)

// ReasonDuplicateEventID is the reason header of a record whose event_id
// was stored before (from another record, or earlier in the same batch):
// the first stored version wins (SPEC §4), whatever the repeat says.
const ReasonDuplicateEventID schemas.Reason = "duplicate_event_id"

// rejected is a record that failed validation or repeats a stored
// event_id (then first says where the stored version came from).
type rejected struct {
	msg   kafka.Message
	err   *schemas.Error
	first *source
}

// deadLetter writes rejected records, and repeated event_ids, to the
// dead-letter topic. Writes are
// synchronous and acknowledged by all in-sync replicas before the batch's
// offset is committed, so no rejected record is lost; a replay after a
// crash may write a record twice (the source headers identify it).
type deadLetter struct {
	w *kafka.Writer
}

func newDeadLetter(cfg Config) *deadLetter {
	return &deadLetter{w: &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.DeadLetterTopic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		// The whole batch's records arrive in one call; keep the original
		// values, which may be up to the broker's message limit.
		BatchBytes:             int64(cfg.FetchMaxBytes),
		AllowAutoTopicCreation: true,
	}}
}

func (d *deadLetter) write(ctx context.Context, recs []rejected) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		value := r.msg.Value
		// An oversize record would be refused by the broker too: keep its head.
		if len(value) > 2*schemas.MaxEventBytes {
			value = value[:2*schemas.MaxEventBytes]
		}
		headers := []kafka.Header{
			{Key: HeaderReason, Value: []byte(r.err.Reason)},
			{Key: HeaderError, Value: []byte(r.err.Error())},
			{Key: HeaderSourceTopic, Value: []byte(r.msg.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(r.msg.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.msg.Offset, 10))},
		}
		if r.first != nil {
			headers = append(headers,
				kafka.Header{Key: HeaderFirstPartition, Value: []byte(strconv.Itoa(int(r.first.partition)))},
				kafka.Header{Key: HeaderFirstOffset, Value: []byte(strconv.FormatInt(r.first.offset, 10))})
		}
		msgs[i] = kafka.Message{Key: r.msg.Key, Value: value, Headers: headers}
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d records to the dead-letter topic %s: %w", len(msgs), d.w.Topic, err)
	}
	return nil
}

func (d *deadLetter) close() error { return d.w.Close() }
