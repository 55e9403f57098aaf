package pipeline

import "strings"

// The SQL of every SPEC §5 formula lives in this file, next to the
// definition it implements. Only fixed fragments are put together here:
// every filter value, time and threshold is a query parameter
// ({name:Type}); the one varying piece of text, the breakdown key, is
// chosen from a closed list (keyExpr).
//
// Parameters common to the window queries:
//   from, to        DateTime64(3,'UTC')   the window W = [from, to)
//   from_ms, step_ms Int64                 bucket = intDiv(t_ms - from_ms, step_ms)
//   region, queue, channel, business_line, agent String ('' = any)
//
// Every query reads events de-duplicated by (conversation_id, event_id)
// within a window of event time (the events key starts with the hour and
// the type, so only the window's granules are read) and takes
// conversation attributes from the conversations rollup, folded with
// GROUP BY conversation_id so unmerged parts never count twice.

// attrsSQL folds the conversations rollup into one row per conversation
// of the ids subquery: the attributes of its conversation.started and the
// agents who handled it.
const attrsSQL = `SELECT conversation_id,
        max(region) AS c_region, max(queue) AS c_queue, max(channel) AS c_channel,
        max(business_line) AS c_business_line, groupUniqArrayArray(agents) AS c_agents
    FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM ids)
    GROUP BY conversation_id`

// filterSQL keeps the rows whose effective attributes (f_*) match the
// filters; an empty filter matches everything.
const filterSQL = `({region:String} = '' OR f_region = {region:String})
    AND ({queue:String} = '' OR f_queue = {queue:String})
    AND ({channel:String} = '' OR f_channel = {channel:String})
    AND ({business_line:String} = '' OR f_business_line = {business_line:String})
    AND ({agent:String} = '' OR has(f_agents, {agent:String}))`

// keyExpr is the breakdown key of a dimension. An agent breakdown puts a
// conversation under every agent who handled it, and none under "".
func keyExpr(dim Dimension) string {
	switch dim {
	case DimRegion:
		return "f_region"
	case DimQueue:
		return "f_queue"
	case DimChannel:
		return "f_channel"
	case DimBusinessLine:
		return "f_business_line"
	case DimAgent:
		return "arrayJoin(f_agents)"
	}
	return "''"
}

const bucketSQL = `intDiv(t_ms - {from_ms:Int64}, {step_ms:Int64})`

// eventCountsSQL: the metrics that count events of W (each event_id once):
//
//	conversations_started   = count(type = 'conversation.started')
//	conversations_closed    = count(type = 'conversation.closed')
//	resolution_rate         = count(closed AND resolution = 'resolved') / conversations_closed
//	abandon_rate            = count(abandoned) / (conversations_closed + count(abandoned))
//	complaints              = count(type = 'complaint.filed'), by the complaint's own region
//	csat_avg                = sum(score) / count(csat.submitted)
//	csat_satisfied_rate     = count(csat AND score >= 4) / count(csat.submitted)
//	negative_sentiment_rate = count(customer message AND sentiment < -0.3) / count(customer message with sentiment)
//
// (sentiment is Float32, so the bound is compared as Float32: -0.3 itself
// is not below -0.3.)
const eventCountsSQL = `WITH ev AS (
    SELECT conversation_id, event_id,
        any(type) AS e_type, toUnixTimestamp64Milli(any(occurred_at)) AS t_ms,
        any(sentiment) AS e_sentiment, any(score) AS e_score, any(resolution) AS e_resolution,
        any(region) AS own_region, any(queue) AS own_queue, any(business_line) AS own_business_line
    FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND (type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned', 'complaint.filed', 'csat.submitted')
            OR (type = 'message.sent' AND actor_role = 'customer' AND sentiment IS NOT NULL))
    GROUP BY conversation_id, event_id
), ids AS (
    -- The same rows as ev without its GROUP BY: a CTE is inlined where it
    -- is used, so reading ev here would de-duplicate the window twice.
    SELECT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND (type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned', 'complaint.filed', 'csat.submitted')
            OR (type = 'message.sent' AND actor_role = 'customer' AND sentiment IS NOT NULL))
), attrs AS (` + attrsSQL + `)
SELECT ` + bucketSQL + ` AS bucket, {{key}} AS key,
    countIf(type = 'conversation.started') AS started,
    countIf(type = 'conversation.closed') AS closed,
    countIf(type = 'conversation.closed' AND resolution = 'resolved') AS resolved,
    countIf(type = 'conversation.abandoned') AS abandoned,
    countIf(type = 'complaint.filed') AS complaints,
    countIf(type = 'csat.submitted') AS csat_n,
    sumIf(toUInt64(score), type = 'csat.submitted') AS csat_sum,
    countIf(type = 'csat.submitted' AND score >= 4) AS csat_ok,
    countIf(type = 'message.sent') AS sent_n,
    countIf(type = 'message.sent' AND sentiment < toFloat32(-0.3)) AS sent_neg
FROM (
    SELECT ev.e_type AS type, ev.t_ms AS t_ms, ev.e_sentiment AS sentiment, ev.e_score AS score, ev.e_resolution AS resolution,
        if(ev.e_type = 'complaint.filed' AND ev.own_region != '', ev.own_region, a.c_region) AS f_region,
        if(ev.e_type = 'complaint.filed' AND ev.own_queue != '', ev.own_queue, a.c_queue) AS f_queue,
        a.c_channel AS f_channel,
        if(ev.e_type = 'complaint.filed' AND ev.own_business_line != '', ev.own_business_line, a.c_business_line) AS f_business_line,
        a.c_agents AS f_agents
    FROM ev LEFT JOIN attrs AS a ON ev.conversation_id = a.conversation_id
)
WHERE ` + filterSQL + `
GROUP BY bucket, key`

// conversationsSQL: the metrics of whole conversations, from the
// conversations rollup. Each conversation counts once per role:
//
//	role 1, t = started_at (conversations started in W):
//	  first_response_seconds       = first_reply_at − started_at        (first bot/agent message)
//	  human_first_response_seconds = first_agent_msg_at − started_at    (first agent message)
//	role 2, t = ended_at = earliest of closed_at, abandoned_at, and entry = 'bot':
//	  transfer_rate        = count(first_transfer_at IS NOT NULL) / count()
//	  bot_containment_rate = count(closed resolved AND no transfer AND no agent) / count()
//
// Differences are in milliseconds: sums are exact integers, the averages
// are sum/count; p50/p90 are quantilesExactInclusive (linear
// interpolation between order statistics).
const conversationsSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned')
), c AS (
    SELECT conversation_id,
        min(started_at) AS started_at, max(entry) AS entry,
        max(region) AS f_region, max(queue) AS f_queue, max(channel) AS f_channel,
        max(business_line) AS f_business_line, groupUniqArrayArray(agents) AS f_agents,
        min(first_reply_at) AS first_reply_at, min(first_agent_msg_at) AS first_agent_msg_at,
        min(first_transfer_at) AS first_transfer_at, min(closed_at) AS closed_at,
        min(abandoned_at) AS abandoned_at, max(resolved) AS resolved, max(agent_seen) AS agent_seen
    FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM ids)
    GROUP BY conversation_id
), r AS (
    SELECT *, arrayJoin([1, 2]) AS role,
        toUnixTimestamp64Milli(started_at) AS start_ms,
        if(closed_at IS NULL, abandoned_at, if(abandoned_at IS NULL, closed_at, least(closed_at, abandoned_at))) AS ended_at,
        toUnixTimestamp64Milli(if(role = 1, started_at, ended_at)) AS t_ms,
        assumeNotNull(toUnixTimestamp64Milli(first_reply_at) - start_ms) AS fr_ms,
        assumeNotNull(toUnixTimestamp64Milli(first_agent_msg_at) - start_ms) AS hfr_ms
    FROM c
)
SELECT ` + bucketSQL + ` AS bucket, {{key}} AS key,
    countIf(role = 1 AND first_reply_at IS NOT NULL) AS fr_n,
    sumIf(fr_ms, role = 1 AND first_reply_at IS NOT NULL) AS fr_sum,
    quantilesExactInclusiveIf(0.5, 0.9)(fr_ms, role = 1 AND first_reply_at IS NOT NULL) AS fr_q,
    countIf(role = 1 AND first_agent_msg_at IS NOT NULL) AS hfr_n,
    sumIf(hfr_ms, role = 1 AND first_agent_msg_at IS NOT NULL) AS hfr_sum,
    quantilesExactInclusiveIf(0.5, 0.9)(hfr_ms, role = 1 AND first_agent_msg_at IS NOT NULL) AS hfr_q,
    countIf(role = 2) AS bot_ended,
    countIf(role = 2 AND first_transfer_at IS NOT NULL) AS transferred,
    countIf(role = 2 AND closed_at IS NOT NULL AND resolved = 1 AND first_transfer_at IS NULL AND agent_seen = 0) AS contained
FROM r
WHERE t_ms >= toUnixTimestamp64Milli({from:DateTime64(3, 'UTC')}) AND t_ms < toUnixTimestamp64Milli({to:DateTime64(3, 'UTC')})
    AND (role = 1 OR entry = 'bot')
    AND ` + filterSQL + `
GROUP BY bucket, key`

// pairsSQL: the metrics that pair an event of W with the next event of
// another kind in its conversation, from the raw events (de-duplicated).
// The follower may come after W (up to a day later).
//
//	response_seconds   : each customer message m in W, r = first bot/agent message with r ≥ m: r − m
//	human_wait_seconds : each transfer.requested q in W, a = first agent.assigned with a ≥ q: a − q
//	service_level      : the same q, b = first conversation.abandoned with b ≥ q; finished when a or b
//	                     exists; met when a exists, a ≤ b (or no b) and a − q ≤ {sl_ms}
//	                     service_level = met / finished
const pairsSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND ((type = 'message.sent' AND actor_role = 'customer') OR type = 'transfer.requested')
), ev AS (
    SELECT conversation_id, event_id, any(type) AS e_type, any(actor_role) AS role,
        toUnixTimestamp64Milli(any(occurred_at)) AS ms
    FROM events
    WHERE conversation_id IN (SELECT conversation_id FROM ids)
        AND occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')} + INTERVAL 1 DAY
        AND type IN ('message.sent', 'transfer.requested', 'agent.assigned', 'conversation.abandoned')
    GROUP BY conversation_id, event_id
), per AS (
    SELECT conversation_id,
        groupArrayIf(ms, e_type = 'message.sent' AND role = 'customer' AND ms < {to_ms:Int64}) AS msgs,
        arraySort(groupArrayIf(ms, e_type = 'message.sent' AND role IN ('bot', 'agent'))) AS replies,
        groupArrayIf(ms, e_type = 'transfer.requested' AND ms < {to_ms:Int64}) AS transfers,
        arraySort(groupArrayIf(ms, e_type = 'agent.assigned')) AS assigns,
        arraySort(groupArrayIf(ms, e_type = 'conversation.abandoned')) AS abandons
    FROM ev GROUP BY conversation_id
), m AS (
    SELECT conversation_id, arrayJoin(arrayConcat(
            arrayMap(x -> (toUInt8(1), x, arrayFirst(y -> y >= x, replies), toInt64(0)), msgs),
            arrayMap(x -> (toUInt8(2), x, arrayFirst(y -> y >= x, assigns), arrayFirst(y -> y >= x, abandons)), transfers)
        )) AS p,
        p.1 AS kind, p.2 AS t_ms, p.3 AS next_ms, p.4 AS alt_ms
    FROM per
), attrs AS (` + attrsSQL + `)
SELECT ` + bucketSQL + ` AS bucket, {{key}} AS key,
    countIf(kind = 1 AND next_ms > 0) AS resp_n,
    sumIf(next_ms - t_ms, kind = 1 AND next_ms > 0) AS resp_sum,
    quantilesExactInclusiveIf(0.5, 0.9)(next_ms - t_ms, kind = 1 AND next_ms > 0) AS resp_q,
    countIf(kind = 2 AND next_ms > 0) AS wait_n,
    sumIf(next_ms - t_ms, kind = 2 AND next_ms > 0) AS wait_sum,
    quantilesExactInclusiveIf(0.5, 0.9)(next_ms - t_ms, kind = 2 AND next_ms > 0) AS wait_q,
    countIf(kind = 2 AND (next_ms > 0 OR alt_ms > 0)) AS sl_finished,
    countIf(kind = 2 AND next_ms > 0 AND (alt_ms = 0 OR next_ms <= alt_ms) AND next_ms - t_ms <= {sl_ms:Int64}) AS sl_met
FROM (
    SELECT m.kind AS kind, m.t_ms AS t_ms, m.next_ms AS next_ms, m.alt_ms AS alt_ms,
        a.c_region AS f_region, a.c_queue AS f_queue, a.c_channel AS f_channel,
        a.c_business_line AS f_business_line, a.c_agents AS f_agents
    FROM m LEFT JOIN attrs AS a ON m.conversation_id = a.conversation_id
)
WHERE ` + filterSQL + `
GROUP BY bucket, key`

// gaugesSQL: the "now" gauges, over conversations with a start or a
// transfer in the 24 hours before {now}:
//
//	active_conversations = count(started_at in (now − 24 h, now] AND no close AND no abandon)
//	waiting_for_human    = count(last transfer in (now − 24 h, now] AND no agent.assigned at or after it
//	                             AND no close AND no abandon)
const gaugesSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at > {now:DateTime64(3, 'UTC')} - INTERVAL 1 DAY AND occurred_at <= {now:DateTime64(3, 'UTC')}
        AND type IN ('conversation.started', 'transfer.requested')
), c AS (
    SELECT conversation_id,
        min(started_at) AS started_at,
        max(region) AS f_region, max(queue) AS f_queue, max(channel) AS f_channel,
        max(business_line) AS f_business_line, groupUniqArrayArray(agents) AS f_agents,
        max(last_transfer_at) AS last_transfer_at, max(last_assigned_at) AS last_assigned_at,
        min(closed_at) AS closed_at, min(abandoned_at) AS abandoned_at
    FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM ids)
    GROUP BY conversation_id
)
SELECT {{key}} AS key,
    countIf(started_at > {now:DateTime64(3, 'UTC')} - INTERVAL 1 DAY AND started_at <= {now:DateTime64(3, 'UTC')}
        AND closed_at IS NULL AND abandoned_at IS NULL) AS active,
    countIf(last_transfer_at > {now:DateTime64(3, 'UTC')} - INTERVAL 1 DAY AND last_transfer_at <= {now:DateTime64(3, 'UTC')}
        AND (last_assigned_at IS NULL OR last_assigned_at < last_transfer_at)
        AND closed_at IS NULL AND abandoned_at IS NULL) AS waiting
FROM c
WHERE ` + filterSQL + `
GROUP BY key`

// withKey puts the breakdown key expression into a query.
func withKey(query string, dim Dimension) string {
	return strings.ReplaceAll(query, "{{key}}", keyExpr(dim))
}
