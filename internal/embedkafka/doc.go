// Package embedkafka runs an in-process Kafka broker for `cockpit demo`, so a
// fresh machine needs no JVM and no other process to see the whole product
// working. It wraps github.com/twmb/franz-go/pkg/kfake, which speaks the
// Kafka wire protocol: segmentio/kafka-go writers and consumer groups, kcat
// and any other real client can use the address it listens on.
//
// The broker is a single node: it creates the product's topics on start,
// auto-creates others on first use ([Config.DefaultPartitions] partitions)
// and keeps committed group offsets like a real broker.
//
// # Memory and retention
//
// kfake stores every produced batch in segment files and never deletes them
// on its own: with no topic-level retention configs it has no cleaner, so a
// long-running demo would grow without bound. Where those segments live
// depends on [Config.DataDir]:
//
//   - DataDir empty (tests): segments live in an in-memory file system, so
//     the retained log is in the Go heap (measured: 255 MiB retained, 315 MiB
//     heap in use).
//   - DataDir set (the demo): segments are files on disk and only a small
//     per-batch index stays in memory (measured: 591 MiB retained, 2 MiB
//     heap in use); topics and committed offsets survive a restart.
//
// Either way this package bounds the log with broker-wide retention
// ([Config.RetentionBytes] per partition, [Config.RetentionTime]) which it
// applies every [Config.RetentionCheckInterval]. Space is released a whole
// segment ([Config.SegmentBytes]) at a time, so a partition holds at most
// about RetentionBytes+SegmentBytes. As on a real broker, retention deletes
// records whether or not a consumer has read them: a consumer that falls
// further behind than the retention window loses the oldest records.
package embedkafka
