// Package ingest moves conversation events from Kafka into ClickHouse with
// an exactly-once effect.
//
// A consumer-group member reads each assigned partition on its own, decodes
// and validates every record with the schemas package, and cuts batches by
// rows, bytes or time. A batch holds records of one partition only, so it is
// described by its offset range. Before a batch is inserted its range is
// written to the ingest_batches intent log; the rows are then inserted with
// an insert deduplication token derived from (topic, partition, range); only
// then is the offset committed to Kafka. After a crash at any point the new
// owner of the partition finds the last intent at or beyond the committed
// offset and replays exactly that range with the same token: ClickHouse
// drops the parts it already has and stores the ones it lacks. The effect is
// that each produced record is stored once, whatever was killed when.
//
// A repeated event_id counts once and its first stored version wins: before
// a batch is inserted its event_ids are looked up in the event_ids table,
// and rows already stored (or earlier in the batch, or being inserted by
// another partition of this process) are dropped, counted and sent to the
// dead-letter topic (dedup.go). A replayed batch's own stored rows are
// recognised by their source offsets and are not repeats.
//
// Records that fail validation go to the dead-letter topic with the reason
// in headers and are counted by reason; they never stop a partition. A
// store outage stops the partition's progress (nothing is committed) and is
// retried with back-off until the store answers again.
package ingest
