package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/schemas"
)

// intent is the offset range of one batch of one partition, written to the
// intent log before the batch's rows are inserted.
type intent struct {
	First, Last int64
	Rows        uint32
}

// token is the insert deduplication token of the batch: the same range
// always gets the same token, so a replay is recognised by the store.
func (in intent) token(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(in.First, 10) + "-" + strconv.FormatInt(in.Last, 10)
}

// store is the consumer's access to ClickHouse.
type store struct {
	conn driver.Conn
}

// lastIntent returns the newest intent recorded for the partition.
func (s store) lastIntent(ctx context.Context, topic string, partition int32) (intent, bool, error) {
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"topic": topic, "partition": strconv.Itoa(int(partition)),
	}))
	var in intent
	err := s.conn.QueryRow(ctx, `SELECT first_offset, last_offset, rows FROM ingest_batches
		WHERE topic = {topic:String} AND partition = {partition:Int32}
		ORDER BY last_offset DESC LIMIT 1`).Scan(&in.First, &in.Last, &in.Rows)
	if errors.Is(err, sql.ErrNoRows) {
		return intent{}, false, nil
	}
	if err != nil {
		return intent{}, false, fmt.Errorf("cannot read the intent log of %s/%d: %w", topic, partition, err)
	}
	return in, true, nil
}

// writeIntent records a batch's range before its rows are inserted.
func (s store) writeIntent(ctx context.Context, topic string, partition int32, in intent) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"topic": topic, "partition": strconv.Itoa(int(partition)),
		"first": strconv.FormatInt(in.First, 10), "last": strconv.FormatInt(in.Last, 10),
		"rows": strconv.FormatUint(uint64(in.Rows), 10),
	}))
	err := s.conn.Exec(ctx, `INSERT INTO ingest_batches (topic, partition, first_offset, last_offset, rows)
		SELECT {topic:String}, {partition:Int32}, {first:Int64}, {last:Int64}, {rows:UInt32}`)
	if err != nil {
		return fmt.Errorf("cannot record the intent %s: %w", in.token(topic, partition), err)
	}
	return nil
}

// insert stores a batch's rows under the batch's deduplication token.
func (s store) insert(ctx context.Context, r *rows, token string) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplicate":         1,
		"insert_deduplication_token": token,
		// Rollups fed by materialized views must drop a replayed block too.
		"deduplicate_blocks_in_dependent_materialized_views": 1,
	}))
	batch, err := s.conn.PrepareBatch(ctx, insertEvents)
	if err != nil {
		return fmt.Errorf("cannot prepare the insert of %d rows: %w", r.len(), err)
	}
	if err := r.appendTo(batch); err != nil {
		_ = batch.Abort()
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d rows: %w", r.len(), err)
	}
	return nil
}

// Insert stores events directly, without Kafka, in the layout the consumer
// writes (partition 0, offsets numbered in order): for backfills and for
// tests that need stored events, so the column list has one owner.
func Insert(ctx context.Context, conn driver.Conn, events []schemas.Event) error {
	var r rows
	for i := range events {
		r.add(&events[i], 0, int64(i))
	}
	batch, err := conn.PrepareBatch(ctx, insertEvents)
	if err != nil {
		return fmt.Errorf("cannot prepare the insert of %d events: %w", len(events), err)
	}
	if err := r.appendTo(batch); err != nil {
		_ = batch.Abort()
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d events: %w", len(events), err)
	}
	return nil
}
