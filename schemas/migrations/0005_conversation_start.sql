-- The attributes of a conversation come from its earliest
-- conversation.started (by occurred_at, then event_id; SPEC §5), whole:
-- with two starts, max() per column could mix the region of one with the
-- queue of the other. start holds the earliest start as one tuple, folded
-- by min() (tuples compare element by element); a row without a start
-- holds the sentinel, later than any start, whose attributes are ''.
-- Readers take every attribute from min(start) (pipeline/store_sql.go).
ALTER TABLE {{db}}.{{table "conversations"}}{{onCluster}} ADD COLUMN IF NOT EXISTS start
    SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), String, String, String, String, String, String, String))
    DEFAULT (toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC'), '', '', '', '', '', '', '');

-- The same column on the distributed table of a cluster (without one,
-- this is the table above and the statement does nothing).
ALTER TABLE {{db}}.conversations{{onCluster}} ADD COLUMN IF NOT EXISTS start
    SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), String, String, String, String, String, String, String))
    DEFAULT (toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC'), '', '', '', '', '', '', '');

-- (occurred_at, event_id, region, queue, channel, business_line, entry,
-- customer_id) of each block's earliest start, per conversation. The
-- other columns get values that leave their min/max unchanged.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{{table "conversations_start_mv"}}{{onCluster}}
TO {{db}}.{{table "conversations"}}
AS SELECT
    conversation_id,
    min(occurred_at) AS first_event_at,
    max(occurred_at) AS last_event_at,
    min((occurred_at, event_id, toString(region), toString(queue), toString(channel), toString(business_line),
        toString(entry), customer_id)) AS start
FROM {{db}}.{{table "events"}}
WHERE type = 'conversation.started'
GROUP BY conversation_id;

-- The starts stored before this migration.
INSERT INTO {{db}}.{{table "conversations"}} (conversation_id, first_event_at, last_event_at, start)
SELECT conversation_id, min(occurred_at), max(occurred_at),
    min((occurred_at, event_id, toString(region), toString(queue), toString(channel), toString(business_line),
        toString(entry), customer_id))
FROM {{db}}.{{table "events"}}
WHERE type = 'conversation.started'
GROUP BY conversation_id;
