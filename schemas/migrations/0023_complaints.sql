-- Every stored complaint, by time (SPEC §6: the regional spike rule). The
-- spike detector counts complaints per region over weeks of history every
-- ten seconds; the events table answers that badly: its key starts with
-- the hour, and an hour of a quiet centre's events fits in a granule or
-- two, so "complaints in these weeks" reads every event of those weeks
-- (the rule ticks that judged spikes took 62-106 ms over a month of
-- ~8M events, the others under 20). Here the same question reads the
-- complaints alone.
--
-- Filled by the view below in the same insert as events, like event_ids:
-- a replayed insert dropped by deduplication adds nothing. region is the
-- complaint's own, as filed ('' when it names none). A repeated event_id
-- may still have more than one row (events stored twice before
-- deduplication existed): readers count an event_id once, as they did
-- over events. No TTL, like events.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "complaints"}}{{onCluster}}
(
    occurred_at     DateTime64(3, 'UTC'),
    region          LowCardinality(String),
    event_id        String,
    conversation_id String
)
ENGINE = {{engine "ReplacingMergeTree" "complaints"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (occurred_at, event_id);

{{distributed "complaints" "cityHash64(conversation_id)"}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{{table "complaints_mv"}}{{onCluster}}
TO {{db}}.{{table "complaints"}}
AS SELECT occurred_at, region, event_id, conversation_id
FROM {{db}}.{{table "events"}}
WHERE type = 'complaint.filed';

-- The complaints stored before this migration.
INSERT INTO {{db}}.{{table "complaints"}} (occurred_at, region, event_id, conversation_id)
SELECT occurred_at, region, event_id, conversation_id
FROM {{db}}.{{table "events"}}
WHERE type = 'complaint.filed';
