package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopics creates the events topic (with partitions partitions) and
// the dead-letter topic (one partition) when they do not exist yet, so a
// fresh cluster works without a manual step and the consumer group has
// partitions to share from its first join. Existing topics are left as
// they are. The metadata lookup does not ask the broker to auto-create
// topics, which would give them the broker's default partition count.
//
// A broker that is restarting (a connection closed, a request timed out,
// a controller not elected yet) is retried with back-off until ctx ends;
// an error the broker means (an invalid replication factor, a policy) is
// returned at once.
func EnsureTopics(ctx context.Context, cfg Config, partitions, replication int) error {
	cfg = cfg.WithDefaults()
	if partitions < 1 || replication < 1 {
		return fmt.Errorf("ingest: topic partitions and replication must be positive (got %d, %d)", partitions, replication)
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	want := []kafka.TopicConfig{
		{Topic: cfg.Topic, NumPartitions: partitions, ReplicationFactor: replication},
		{Topic: cfg.DeadLetterTopic, NumPartitions: 1, ReplicationFactor: replication},
	}
	wait := 250 * time.Millisecond
	for {
		err := ensureTopics(ctx, client, cfg, want)
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// transient reports whether err may go away by itself: anything but an
// error code the broker answered with, unless that code says so.
func transient(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	return true
}

func ensureTopics(ctx context.Context, client *kafka.Client, cfg Config, want []kafka.TopicConfig) error {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic, cfg.DeadLetterTopic}})
	if err != nil {
		return fmt.Errorf("ingest: cannot read topic metadata: %w", err)
	}
	exists := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			exists[t.Name] = true
		}
	}
	var missing []kafka.TopicConfig
	for _, t := range want {
		if !exists[t.Topic] {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
	if err != nil {
		return fmt.Errorf("ingest: cannot create topics: %w", err)
	}
	for name, terr := range res.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("ingest: cannot create topic %s: %w", name, terr)
		}
	}
	return nil
}
