package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockpit-cs/cockpit/schemas"
)

// Config tunes the consumer. Zero values take the defaults named in the
// field comments (see Default).
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string `yaml:"brokers"`
	// Topic carries the events. Default "cs.conversation-events".
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives the records that fail validation. Default
	// Topic + ".dlq".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// GroupID is the consumer group; every cockpit serving one topic into
	// one database shares it. Default "cockpit-ingest".
	GroupID string `yaml:"group_id"`

	// BatchRows cuts a batch at this many records. Default 50000.
	BatchRows int `yaml:"batch_rows"`
	// BatchBytes cuts a batch at this many bytes of record values.
	// Default 32 MiB.
	BatchBytes int `yaml:"batch_bytes"`
	// BatchInterval cuts a batch this long after its first record, so
	// that quiet traffic still reaches the store quickly; a batch of
	// fewer than 1,000 records also waits until 1s after the previous
	// flush began (partition.go, small batches). Default 200ms. Longer is
	// not faster on two cores: a backlog cut at 1s (batches of 50,000)
	// went in at 83-84k events/s against 101-103k at 200ms (batches of about
	// 18,000), and 100ms at 81-86k.
	BatchInterval time.Duration `yaml:"batch_interval"`
	// FetchMaxBytes bounds one fetch from a partition. Default 8 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`

	// Limits bound the event times accepted (see schemas.Limits); they are
	// measured against each record's Kafka timestamp, so a replay decides
	// exactly as the first attempt did.
	Limits schemas.Limits `yaml:"limits"`

	// RetryMin and RetryMax bound the back-off between attempts when the
	// store or the broker fails. Defaults 100ms and 5s.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// SessionTimeout is how long the group waits for a silent member before
	// its partitions move to another. Default 10s (brokers refuse less
	// than their group.min.session.timeout.ms, 6s by default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ShutdownTimeout bounds the final flush on stop. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Default returns the defaults, with no brokers.
func Default() Config {
	return Config{
		Topic:           "cs.conversation-events",
		GroupID:         "cockpit-ingest",
		BatchRows:       50000,
		BatchBytes:      32 << 20,
		BatchInterval:   200 * time.Millisecond,
		FetchMaxBytes:   8 << 20,
		Limits:          schemas.DefaultLimits(),
		RetryMin:        100 * time.Millisecond,
		RetryMax:        5 * time.Second,
		SessionTimeout:  10 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults (Default; an empty DeadLetterTopic is Topic + ".dlq").
func (c Config) WithDefaults() Config {
	d := Default()
	if c.Topic == "" {
		c.Topic = d.Topic
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dlq"
	}
	if c.GroupID == "" {
		c.GroupID = d.GroupID
	}
	if c.BatchRows == 0 {
		c.BatchRows = d.BatchRows
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = d.BatchBytes
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = d.BatchInterval
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = d.FetchMaxBytes
	}
	if c.Limits == (schemas.Limits{}) {
		c.Limits = d.Limits
	}
	if c.RetryMin == 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = d.RetryMax
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	return c
}

// Validate reports the first setting that cannot work. It does not fill
// defaults: validate c.WithDefaults() for a partial config.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("ingest: brokers: at least one Kafka broker is required")
	case c.Topic == c.DeadLetterTopic:
		return errors.New("ingest: dead_letter_topic must differ from topic")
	case c.BatchRows < 1:
		return fmt.Errorf("ingest: batch_rows must be positive, got %d", c.BatchRows)
	case c.BatchBytes < schemas.MaxEventBytes:
		return fmt.Errorf("ingest: batch_bytes must be at least %d, got %d", schemas.MaxEventBytes, c.BatchBytes)
	case c.BatchInterval < time.Millisecond:
		return fmt.Errorf("ingest: batch_interval must be at least 1ms, got %s", c.BatchInterval)
	case c.FetchMaxBytes < schemas.MaxEventBytes:
		return fmt.Errorf("ingest: fetch_max_bytes must be at least %d, got %d", schemas.MaxEventBytes, c.FetchMaxBytes)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("ingest: retry_min (%s) must be positive and at most retry_max (%s)", c.RetryMin, c.RetryMax)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("ingest: limits: %w", err)
	}
	return nil
}
