-- Every stored event_id with where it came from (SPEC §4: a repeated
-- event_id counts once). The events table cannot answer "is this event_id
-- stored?" cheaply: its key starts with the hour, and a repeat may carry
-- another hour or another conversation. Before a batch is inserted the
-- consumer looks its event_ids up here and drops those already stored, so
-- the first stored version wins (ingest/dedup.go).
--
-- Filled by the view below in the same insert as events, so a row is here
-- as soon as its event is, whoever inserted it (the consumer, a backfill),
-- and a replayed insert dropped by deduplication adds nothing. An event_id
-- may have more than one row (events stored twice before this table
-- existed, a backfill that ran twice): readers take the earliest stored.
-- No TTL, like events: a repeat is judged against every stored event. If
-- events ever get a retention, this table needs the same one.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "event_ids"}}{{onCluster}}
(
    event_id         String,
    conversation_id  String,
    occurred_at      DateTime64(3, 'UTC'),
    source_partition Int32,
    source_offset    Int64,
    ingested_at      DateTime64(3, 'UTC')
)
ENGINE = {{engine "MergeTree" "event_ids"}}
ORDER BY event_id
-- Small granules: each batch looks up many scattered ids.
SETTINGS index_granularity = 1024;

{{distributed "event_ids" "cityHash64(conversation_id)"}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{{table "event_ids_mv"}}{{onCluster}}
TO {{db}}.{{table "event_ids"}}
AS SELECT event_id, conversation_id, occurred_at, source_partition, source_offset, ingested_at
FROM {{db}}.{{table "events"}};

-- The events stored before this migration.
INSERT INTO {{db}}.{{table "event_ids"}} (event_id, conversation_id, occurred_at, source_partition, source_offset, ingested_at)
SELECT event_id, conversation_id, occurred_at, source_partition, source_offset, ingested_at
FROM {{db}}.{{table "events"}};
