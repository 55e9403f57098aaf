-- Conversation facts, one logical row per conversation_id, folded by
-- AggregatingMergeTree from every event of the conversation (see
-- pipeline/doc.go for how the KPIs use it). Every column is an idempotent
-- aggregate (min, max, union of arrays), so a repeated event_id, a replayed
-- insert or events in any order give the same row: a message.sent stored
-- before its conversation.started still gets the start's attributes once
-- the start arrives. Rows of one conversation may stay unmerged in several
-- parts; readers GROUP BY conversation_id (or use FINAL).
-- Attributes are '' until the conversation.started is stored; max() keeps
-- the start's non-empty value.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "conversations"}}{{onCluster}}
(
    conversation_id    String,
    started_at         SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    channel            SimpleAggregateFunction(max, LowCardinality(String)),
    region             SimpleAggregateFunction(max, LowCardinality(String)),
    queue              SimpleAggregateFunction(max, LowCardinality(String)),
    business_line      SimpleAggregateFunction(max, LowCardinality(String)),
    entry              SimpleAggregateFunction(max, LowCardinality(String)),
    customer_id        SimpleAggregateFunction(max, String),
    first_event_at     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_event_at      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    first_reply_at     SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    first_agent_msg_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    first_transfer_at  SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    last_transfer_at   SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    last_assigned_at   SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    closed_at          SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    abandoned_at       SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    resolved           SimpleAggregateFunction(max, UInt8),
    agent_seen         SimpleAggregateFunction(max, UInt8),
    agents             SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = {{engine "AggregatingMergeTree" "conversations"}}
ORDER BY conversation_id;

{{distributed "conversations" "cityHash64(conversation_id)"}};

-- One row per (insert block, conversation): the block's events folded.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{{table "conversations_mv"}}{{onCluster}}
TO {{db}}.{{table "conversations"}}
AS SELECT
    conversation_id,
    minIf(toNullable(occurred_at), type = 'conversation.started') AS started_at,
    maxIf(channel, type = 'conversation.started') AS channel,
    maxIf(region, type = 'conversation.started') AS region,
    maxIf(queue, type = 'conversation.started') AS queue,
    maxIf(business_line, type = 'conversation.started') AS business_line,
    maxIf(entry, type = 'conversation.started') AS entry,
    maxIf(customer_id, type = 'conversation.started') AS customer_id,
    min(occurred_at) AS first_event_at,
    max(occurred_at) AS last_event_at,
    minIf(toNullable(occurred_at), type = 'message.sent' AND actor_role IN ('bot', 'agent')) AS first_reply_at,
    minIf(toNullable(occurred_at), type = 'message.sent' AND actor_role = 'agent') AS first_agent_msg_at,
    minIf(toNullable(occurred_at), type = 'transfer.requested') AS first_transfer_at,
    maxIf(toNullable(occurred_at), type = 'transfer.requested') AS last_transfer_at,
    maxIf(toNullable(occurred_at), type = 'agent.assigned') AS last_assigned_at,
    minIf(toNullable(occurred_at), type = 'conversation.closed') AS closed_at,
    minIf(toNullable(occurred_at), type = 'conversation.abandoned') AS abandoned_at,
    max(type = 'conversation.closed' AND resolution = 'resolved') AS resolved,
    max(type = 'agent.assigned' OR (type = 'message.sent' AND actor_role = 'agent')) AS agent_seen,
    groupUniqArrayIf(actor_id, actor_id != '' AND (type = 'agent.assigned' OR (type = 'message.sent' AND actor_role = 'agent'))) AS agents
FROM {{db}}.{{table "events"}}
GROUP BY conversation_id;
