package embedkafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Defaults applied by [Start] to zero fields of [Config].
const (
	DefaultListen                 = "127.0.0.1:9092"
	DefaultPartitions             = 4
	DefaultRetentionBytesDisk     = 1 << 30  // per partition, with DataDir
	DefaultRetentionBytesMemory   = 64 << 20 // per partition, without DataDir
	DefaultRetentionTime          = 24 * time.Hour
	DefaultSegmentBytes           = 8 << 20
	DefaultRetentionCheckInterval = 30 * time.Second
)

// maxPartitions guards against typos such as 40000 partitions, each of which
// kfake would allocate state for.
const maxPartitions = 1024

// Topic is a topic created when the broker starts.
type Topic struct {
	// Name is the topic name: at most 249 characters of [a-zA-Z0-9._-].
	Name string
	// Partitions is the partition count. Default: Config.DefaultPartitions.
	Partitions int
}

// Config configures the embedded broker. The zero value is usable: it
// listens on 127.0.0.1:9092 with the defaults below and creates no topics.
type Config struct {
	// Listen is the TCP address to listen on. A port of 0 picks a free port
	// (see Broker.Addr). Default: "127.0.0.1:9092".
	Listen string
	// Advertise is the host:port the broker tells clients to connect to in
	// metadata responses. Default: the listening address, with an
	// unspecified host (":9092", "0.0.0.0:9092") replaced by 127.0.0.1, so
	// set it when remote clients must reach a wildcard listener.
	Advertise string
	// Topics are created on start unless they already exist (DataDir).
	Topics []Topic
	// DefaultPartitions is the partition count of auto-created topics and
	// of Topics without one. Default: 4.
	DefaultPartitions int
	// DataDir, if set, keeps segments, topics and committed offsets on disk
	// in this directory (created if needed) and reloads them on the next
	// start; memory then holds only a per-batch index. Empty keeps
	// everything in memory. Default: "" (in memory).
	DataDir string
	// RetentionBytes is how many bytes each partition keeps before the
	// oldest segments are deleted; negative means no size limit.
	// Default: 1 GiB with a DataDir (disk), 64 MiB without (Go heap: about
	// 1.2 bytes of heap per retained byte).
	RetentionBytes int64
	// RetentionTime is how long records are kept; negative means forever.
	// Default: 24h.
	RetentionTime time.Duration
	// SegmentBytes is the segment size; retention frees space one segment
	// at a time. Default: 8 MiB.
	SegmentBytes int64
	// RetentionCheckInterval is how often retention runs. Default: 30s.
	RetentionCheckInterval time.Duration
	// Logger receives the broker's warnings and errors (kfake's info and
	// debug messages at Debug). Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = DefaultPartitions
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = DefaultRetentionBytesMemory
		if c.DataDir != "" {
			c.RetentionBytes = DefaultRetentionBytesDisk
		}
	}
	if c.RetentionTime == 0 {
		c.RetentionTime = DefaultRetentionTime
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Topics = append([]Topic(nil), c.Topics...)
	for i := range c.Topics {
		if c.Topics[i].Partitions == 0 {
			c.Topics[i].Partitions = c.DefaultPartitions
		}
	}
	return c
}

// Validate reports every problem in c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validHostPort(c.Listen, true); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.Advertise != "" {
		if err := validHostPort(c.Advertise, false); err != nil {
			errs = append(errs, fmt.Errorf("advertise %q: %w", c.Advertise, err))
		}
	}
	if c.DefaultPartitions < 1 || c.DefaultPartitions > maxPartitions {
		errs = append(errs, fmt.Errorf("default partitions %d: must be in [1, %d]", c.DefaultPartitions, maxPartitions))
	}
	if c.SegmentBytes < 1<<10 || c.SegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("segment bytes %d: must be in [1 KiB, 1 GiB]", c.SegmentBytes))
	}
	if c.RetentionCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("retention check interval %s: must be positive", c.RetentionCheckInterval))
	}
	if c.RetentionTime > 0 && c.RetentionTime < time.Millisecond {
		errs = append(errs, fmt.Errorf("retention time %s: must be at least 1ms", c.RetentionTime))
	}
	seen := make(map[string]bool, len(c.Topics))
	for _, t := range c.Topics {
		if err := validTopicName(t.Name); err != nil {
			errs = append(errs, fmt.Errorf("topic %q: %w", t.Name, err))
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("topic %q: listed twice", t.Name))
		}
		seen[t.Name] = true
		if t.Partitions < 1 || t.Partitions > maxPartitions {
			errs = append(errs, fmt.Errorf("topic %q: partitions %d: must be in [1, %d]", t.Name, t.Partitions, maxPartitions))
		}
	}
	return errors.Join(errs...)
}

func validHostPort(s string, allowAnyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" && !allowAnyHost {
		return errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if n == 0 && !allowAnyHost {
		return errors.New("port 0 cannot be advertised")
	}
	return nil
}

// validTopicName applies Kafka's own rules for topic names.
func validTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not allowed`)
	case len(name) > 249:
		return fmt.Errorf("name is %d characters, at most 249 are allowed", len(name))
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q is not allowed (only [a-zA-Z0-9._-])", r)
		}
	}
	return nil
}
