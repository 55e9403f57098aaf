-- State that several instances share (issue 15): whatever instance an
-- operator talks to, the leader reads it from here.

-- Acknowledgements, one row per alert episode (newest wins). Kept apart
-- from the alerts table so an ack taken by any instance never races with
-- the leader's writes of the alert's state.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "alert_acks"}}{{onCluster}}
(
    alert_id  String,
    acked_by  String,
    note      String,
    acked_at  DateTime64(3, 'UTC'),
    version   UInt64
)
ENGINE = {{engine "ReplacingMergeTree(version)" "alert_acks"}}
ORDER BY alert_id;

{{distributed "alert_acks" "cityHash64(alert_id)"}};

-- Every version of the rule set put through the API (or read from
-- rules.file), with who, when and the diff from the version before. The
-- newest is the rule set in force.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "rule_sets"}}{{onCluster}}
(
    version    UInt64,
    source     LowCardinality(String),
    author     String,
    created_at DateTime64(3, 'UTC'),
    rules      UInt32,
    yaml       String,
    diff       String
)
ENGINE = {{engine "ReplacingMergeTree" "rule_sets"}}
ORDER BY version;

{{distributed "rule_sets" "cityHash64(version)"}};

-- Leadership terms: an instance that becomes leader of the ingest group
-- (owner of partition 0, generation `generation`) opens a term one above
-- the newest. The newest term (by term, then generation) is the only one
-- allowed to change alerts or send notifications: a member that still
-- believes it leads after a rebalance is fenced off.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "leader_terms"}}{{onCluster}}
(
    term       UInt64,
    generation Int64,
    member     String,
    started_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{engine "MergeTree" "leader_terms"}}
ORDER BY (term, generation);

{{distributed "leader_terms" "cityHash64(term)"}};

-- The term that wrote each alert state and each outbox version: an
-- outbox row in state `sending` is claimed by its term until
-- next_attempt_at.
ALTER TABLE {{db}}.{{table "alerts"}}{{onCluster}} ADD COLUMN IF NOT EXISTS term UInt64;

{{alterDistributed "alerts" "ADD COLUMN IF NOT EXISTS term UInt64"}};

ALTER TABLE {{db}}.{{table "notification_outbox"}}{{onCluster}} ADD COLUMN IF NOT EXISTS term UInt64;

{{alterDistributed "notification_outbox" "ADD COLUMN IF NOT EXISTS term UInt64"}}
