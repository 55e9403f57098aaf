-- Raw conversation events, one row per accepted event, kept for drill-down
-- and as the source of every rollup. A repeated event_id is folded by the
-- ReplacingMergeTree key; queries that must count it once say so.
-- source_partition/source_offset record where in Kafka the row came from.
--
-- The key is time first: every KPI query reads a window of event time
-- (the wall asks for the last 15 minutes every second), and the hour then
-- the type let it skip everything else. A delivered-again event is the
-- same record, so it has the same hour, type, conversation and event_id
-- and the key still folds it. Drill-down by conversation uses the bloom
-- filter instead of the key.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "events"}}{{onCluster}}
(
    event_id         String,
    type             LowCardinality(String),
    occurred_at      DateTime64(3, 'UTC'),
    conversation_id  String,
    channel          LowCardinality(String),
    region           LowCardinality(String),
    queue            LowCardinality(String),
    business_line    LowCardinality(String),
    actor_role       LowCardinality(String),
    actor_id         String,
    entry            LowCardinality(String),
    customer_id      String,
    sentiment        Nullable(Float32),
    abusive          Nullable(Bool),
    text             String,
    reason           LowCardinality(String),
    resolution       LowCardinality(String),
    category         LowCardinality(String),
    severity         LowCardinality(String),
    score            UInt8,
    schema_version   UInt8,
    source_partition Int32,
    source_offset    Int64,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_occurred_at occurred_at TYPE minmax GRANULARITY 1,
    INDEX idx_type type TYPE set(16) GRANULARITY 1,
    INDEX idx_conversation_id conversation_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" "events"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), type, conversation_id, event_id)
SETTINGS {{dedupWindow}} = 10000;

{{distributed "events" "cityHash64(conversation_id)"}}
