-- The ingest intent log: before a batch of one Kafka partition is inserted
-- into events, its offset range is written here. After a crash the consumer
-- replays exactly the last recorded range with the same insert
-- deduplication token, so a batch that was (partly) stored is not stored
-- twice and one that was not is stored once.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "ingest_batches"}}{{onCluster}}
(
    topic        String,
    partition    Int32,
    first_offset Int64,
    last_offset  Int64,
    rows         UInt32,
    created_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{engine "ReplacingMergeTree" "ingest_batches"}}
ORDER BY (topic, partition, last_offset)
TTL toDateTime(created_at) + INTERVAL 7 DAY;

{{distributed "ingest_batches" "partition"}}
