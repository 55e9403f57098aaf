-- Alert state: one row per alert episode and version; the newest version
-- wins (ReplacingMergeTree). Active alerts are reloaded from here after a
-- restart, and the quality team audits alerts here.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "alerts"}}{{onCluster}}
(
    id           String,
    fingerprint  String,
    rule         LowCardinality(String),
    severity     LowCardinality(String),
    state        LowCardinality(String),
    labels       Map(String, String),
    value        Float64,
    expected     Float64,
    explanation  String,
    summary      String,
    active_at    DateTime64(3, 'UTC'),
    started_at   Nullable(DateTime64(3, 'UTC')),
    last_seen    DateTime64(3, 'UTC'),
    resolved_at  Nullable(DateTime64(3, 'UTC')),
    acked_by     String,
    acked_at     Nullable(DateTime64(3, 'UTC')),
    ack_note     String,
    version      UInt64
)
ENGINE = {{engine "ReplacingMergeTree(version)" "alerts"}}
ORDER BY (fingerprint, id);

{{distributed "alerts" "cityHash64(fingerprint)"}};

-- Every transition and acknowledgement, append-only: the audit trail.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "alert_history"}}{{onCluster}}
(
    at          DateTime64(3, 'UTC'),
    alert_id    String,
    fingerprint String,
    rule        LowCardinality(String),
    from_state  LowCardinality(String),
    to_state    LowCardinality(String),
    actor       String,
    note        String,
    value       Float64,
    explanation String
)
ENGINE = {{engine "MergeTree" "alert_history"}}
PARTITION BY toYYYYMM(at)
ORDER BY (at, fingerprint);

{{distributed "alert_history" "cityHash64(fingerprint)"}};

-- Silences, newest version wins; expiring one writes a new version.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "silences"}}{{onCluster}}
(
    id         String,
    matchers   String,
    starts_at  DateTime64(3, 'UTC'),
    ends_at    DateTime64(3, 'UTC'),
    created_by String,
    comment    String,
    created_at DateTime64(3, 'UTC'),
    version    UInt64
)
ENGINE = {{engine "ReplacingMergeTree(version)" "silences"}}
ORDER BY id;

{{distributed "silences" "cityHash64(id)"}};

-- The notification outbox and log: a notification is written here before
-- any delivery is tried; its state moves pending -> sent (or failed) in
-- new versions. After a restart every pending one is delivered again with
-- the same id, which receivers use as an idempotency key.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "notification_outbox"}}{{onCluster}}
(
    id              String,
    receiver        LowCardinality(String),
    payload         String,
    state           LowCardinality(String),
    attempts        UInt32,
    next_attempt_at DateTime64(3, 'UTC'),
    last_error      String,
    created_at      DateTime64(3, 'UTC'),
    updated_at      DateTime64(3, 'UTC'),
    version         UInt64
)
ENGINE = {{engine "ReplacingMergeTree(version)" "notification_outbox"}}
ORDER BY id
TTL toDateTime(created_at) + INTERVAL 30 DAY;

{{distributed "notification_outbox" "cityHash64(id)"}}
