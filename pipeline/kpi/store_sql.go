package kpi

import (
	"fmt"
	"strings"
)

// The SQL of every SPEC §5 formula lives in this file, next to the
// definition it implements. Only fixed fragments are put together here:
// every filter value, time and threshold is a query parameter
// ({name:Type}); the one varying piece of text, the breakdown key, is
// chosen from a closed list (keyExpr).
//
// Parameters common to the window queries:
//   from, to          DateTime64(3,'UTC')  the window W = [from, to) (or the part of it a query answers)
//   from_ms, to_ms    Int64                the same in milliseconds
//   origin_ms, step_ms Int64               bucket = intDiv(t_ms - origin_ms, step_ms)
//   region, queue, channel, business_line, agent String ('' = any)
//
// Every window query returns rows (bucket, key, sums, hist): sums is an
// Array(Int64) of the sums listed in windowSums (a query fills a
// contiguous run of them) and hist the combined histogram of the four
// distributions (hist.go), as Tuple(keys Array(Int32), counts Array(UInt64)).
// Each metric is a sum of its items over W and each item has one time t
// in W, so a window is the sum of any partition of it in time: the
// hourly rollup (rollup_sql.go) stores these rows per hour, and a window is
// answered from whole stored hours plus these queries over the rest.
//
// Every query reads events de-duplicated by (conversation_id, event_id)
// within a window of event time (the events key starts with the hour and
// the type, so only the window's granules are read) and takes
// conversation attributes from the conversations rollup, folded with
// GROUP BY conversation_id so unmerged parts never count twice.

// attrsSQL folds the conversations rollup into one row per conversation
// of the ids subquery: the attributes of its earliest conversation.started
// (the column start, schemas/migrations/0005: one tuple, so all come from
// the same start) and the agents who handled it.
const attrsSQL = `SELECT conversation_id,
        tupleElement(min(start), 3) AS c_region, tupleElement(min(start), 4) AS c_queue, tupleElement(min(start), 5) AS c_channel,
        tupleElement(min(start), 6) AS c_business_line, {{agents}} AS c_agents
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
	case dimFullGrain:
		return fullGrainKeySQL
	}
	return "''"
}

const bucketSQL = `intDiv(t_ms - {origin_ms:Int64}, {step_ms:Int64})`

// There is no cut-off on "followed by" (SPEC §5): a reply, an assignment
// or an abandon counts however late it comes. The follower of an event of
// W is searched among the later events of its own conversation only, up
// to followUntilSQL: the last event of any conversation with a customer
// message or a transfer in W, which the conversations rollup knows. So the
// search reads those conversations' lifetime, not all later history, and
// a window of the past reads no more than one of today.
const followUntilSQL = `greatest({to:DateTime64(3, 'UTC')}, (
        SELECT addMilliseconds(max(last_event_at), 1) FROM conversations
        WHERE conversation_id IN (
            SELECT conversation_id FROM events
            WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
                AND ((type = 'message.sent' AND actor_role = 'customer') OR type = 'transfer.requested'))))`

// windowSums names the sums of a window query's sums array, in order.
var windowSums = [...]string{
	"started", "closed", "resolved", "abandoned", "complaints", "csat_n", "csat_sum", "csat_ok", "sent_n", "sent_neg",
	"fr_n", "fr_sum", "hfr_n", "hfr_sum", "bot_ended", "transferred", "contained",
	"resp_n", "resp_sum", "wait_n", "wait_sum", "sl_finished", "sl_met",
}

// The first sum each query fills.
const (
	sumsEventCounts   = 0  // eventCountsSQL: started … sent_neg
	sumsConversations = 10 // conversationsSQL: fr_n … contained
	sumsPairs         = 17 // pairsSQL: resp_n … sl_met
)

// histItem is one value that goes into a distribution when cond holds.
type histItem struct {
	cond, value string
	dist        int
}

// histAggSQL is the aggregate that counts the items into the combined
// histogram (hist.go), as the column hist.
func histAggSQL(items ...histItem) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = "if(" + it.cond + ", [" + histKeySQL(it.value, it.dist) + "], [])"
	}
	return "sumMap(arrayConcat(" + strings.Join(parts, ", ") + ") AS hk, arrayWithConstant(length(hk), toUInt64(1))) AS hist"
}

// noHistSQL is the hist column of a query without distributions.
const noHistSQL = "CAST(([], []), 'Tuple(Array(Int32), Array(UInt64))') AS hist"

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
var eventCountsSQL = `WITH ev AS (
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
    sumForEach([
        toInt64(type = 'conversation.started'),                               -- started
        toInt64(type = 'conversation.closed'),                                -- closed
        toInt64(type = 'conversation.closed' AND resolution = 'resolved'),    -- resolved
        toInt64(type = 'conversation.abandoned'),                             -- abandoned
        toInt64(type = 'complaint.filed'),                                    -- complaints
        toInt64(type = 'csat.submitted'),                                     -- csat_n
        if(type = 'csat.submitted', toInt64(score), 0),                       -- csat_sum
        toInt64(type = 'csat.submitted' AND score >= 4),                      -- csat_ok
        toInt64(type = 'message.sent'),                                       -- sent_n
        toInt64(ifNull(type = 'message.sent' AND sentiment < toFloat32(-0.3), 0)) -- sent_neg
    ]) AS sums,
    ` + noHistSQL + `
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
// are sum/count; p50/p90 come from the histograms (hist.go).
var conversationsSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned')
), c AS (
    SELECT conversation_id,
        min(started_at) AS started_at, tupleElement(min(start), 7) AS entry,
        tupleElement(min(start), 3) AS f_region, tupleElement(min(start), 4) AS f_queue, tupleElement(min(start), 5) AS f_channel,
        tupleElement(min(start), 6) AS f_business_line, {{agents}} AS f_agents,
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
    sumForEach([
        toInt64(role = 1 AND first_reply_at IS NOT NULL),                     -- fr_n
        if(role = 1 AND first_reply_at IS NOT NULL, fr_ms, 0),                -- fr_sum
        toInt64(role = 1 AND first_agent_msg_at IS NOT NULL),                 -- hfr_n
        if(role = 1 AND first_agent_msg_at IS NOT NULL, hfr_ms, 0),           -- hfr_sum
        toInt64(role = 2),                                                    -- bot_ended
        toInt64(role = 2 AND first_transfer_at IS NOT NULL),                  -- transferred
        toInt64(role = 2 AND closed_at IS NOT NULL AND resolved = 1 AND first_transfer_at IS NULL AND agent_seen = 0) -- contained
    ]) AS sums,
    ` + histAggSQL(
	histItem{"role = 1 AND first_reply_at IS NOT NULL", "fr_ms", distFirstResponse},
	histItem{"role = 1 AND first_agent_msg_at IS NOT NULL", "hfr_ms", distHumanFirstResponse}) + `
FROM r
WHERE t_ms >= toUnixTimestamp64Milli({from:DateTime64(3, 'UTC')}) AND t_ms < toUnixTimestamp64Milli({to:DateTime64(3, 'UTC')})
    AND (role = 1 OR entry = 'bot')
    AND ` + filterSQL + `
GROUP BY bucket, key`

// pairsSQL: the metrics that pair an event of W with the next event of
// another kind in its conversation, from the raw events (de-duplicated).
// The follower may come after W, however late (followUntilSQL).
//
//	response_seconds   : each customer message m in W, r = first bot/agent message with m ≤ r: r − m
//	human_wait_seconds : each transfer.requested q in W, a = first agent.assigned with q ≤ a: a − q
//	service_level      : the same q, b = first conversation.abandoned with q ≤ b; finished when a or b
//	                     exists; met when a exists, a ≤ b (or no b) and a − q ≤ {sl_ms}
//	                     service_level = met / finished
var pairsSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND ((type = 'message.sent' AND actor_role = 'customer') OR type = 'transfer.requested')
), ev AS (
    SELECT conversation_id, event_id, any(type) AS e_type, any(actor_role) AS role,
        toUnixTimestamp64Milli(any(occurred_at)) AS ms
    FROM events
    WHERE conversation_id IN (SELECT conversation_id FROM ids)
        AND occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < ` + followUntilSQL + `
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
            arrayMap(x -> (toUInt8(2), x, arrayFirst(y -> y >= x, assigns),
                arrayFirst(y -> y >= x, abandons)), transfers)
        )) AS p,
        p.1 AS kind, p.2 AS t_ms, p.3 AS next_ms, p.4 AS alt_ms
    FROM per
), attrs AS (` + attrsSQL + `)
SELECT ` + bucketSQL + ` AS bucket, {{key}} AS key,
    sumForEach([
        toInt64(kind = 1 AND next_ms > 0),                                   -- resp_n
        if(kind = 1 AND next_ms > 0, next_ms - t_ms, 0),                     -- resp_sum
        toInt64(kind = 2 AND next_ms > 0),                                   -- wait_n
        if(kind = 2 AND next_ms > 0, next_ms - t_ms, 0),                     -- wait_sum
        toInt64(kind = 2 AND (next_ms > 0 OR alt_ms > 0)),                   -- sl_finished
        toInt64(kind = 2 AND next_ms > 0 AND (alt_ms = 0 OR next_ms <= alt_ms) AND next_ms - t_ms <= {sl_ms:Int64}) -- sl_met
    ]) AS sums,
    ` + histAggSQL(
	histItem{"kind = 1 AND next_ms > 0", "next_ms - t_ms", distResponse},
	histItem{"kind = 2 AND next_ms > 0", "next_ms - t_ms", distHumanWait}) + `
FROM (
    SELECT m.kind AS kind, m.t_ms AS t_ms, m.next_ms AS next_ms, m.alt_ms AS alt_ms,
        a.c_region AS f_region, a.c_queue AS f_queue, a.c_channel AS f_channel,
        a.c_business_line AS f_business_line, a.c_agents AS f_agents
    FROM m LEFT JOIN attrs AS a ON m.conversation_id = a.conversation_id
)
WHERE ` + filterSQL + `
GROUP BY bucket, key`

// windowItemsSQL is the one pass behind windowSQL and the hourly rollup
// build: the items of eventCountsSQL, conversationsSQL and pairsSQL (the
// definitions above) of W, with the attributes they are filtered and
// keyed by. Each de-duplicated event from from on (after to only
// those of conversations with a pair in W, up to followUntilSQL) is grouped by
// conversation into items (kind, p_ms, next_ms, alt_ms, event fields):
//
//	kind 0: a counted event of W (eventCountsSQL)
//	kind 1: a customer message of W and its reply (pairsSQL)
//	kind 2: a transfer of W, its assignment and abandon (pairsSQL)
//	kind 3, 4: role 1 and role 2 of a conversation with a start, close or
//	           abandon in W (conversationsSQL); t_ms comes from the rollup
//
// and every item takes its conversation's attributes from the rollup
// (a complaint keeps its own region, queue and business line); t_ms is
// the item's time, the one that places it in W and in a bucket. The next
// reply, assignment and abandon at or after an event come from window
// functions rather than array lambdas, and the sums from one sumForEach:
// on this engine planning, not reading, dominates a small window, and
// lambdas and many aggregate columns are what make planning slow. Kinds 3
// and 4 of conversations whose start (end) is not in W are still items
// here; windowInSQL keeps the items of W.
//
// It is a FROM clause, not a query: the items' columns are named by
// windowItemsWithSQL in the query that sums them. The old analyzer
// analyses a subquery again for every query around it (each SELECT * FROM
// (...) put around a live refresh added ~60 ms of planning to its ~110),
// so the items are computed in as few levels as the window functions
// allow: the events' de-duplication and the window functions in one, the
// items (ARRAY JOIN) and the conversations' attributes (JOIN) in the
// query that sums them. A live refresh of 177 conversations against a
// demo's store at rest: EXPLAIN PLAN 66 ms against 110, the whole refresh
// 125-131 ms against 171-179; a 15-minute window by region 0.85 s against
// 0.92-1.02 (same rows, same results).
var windowItemsSQL = `(
        SELECT conversation_id, event_id,
            toString(any(type)) AS e_type, toString(any(actor_role)) AS role,
            toUnixTimestamp64Milli(any(occurred_at)) AS ms,
            any(sentiment) AS e_sentiment, any(score) AS e_score, toString(any(resolution)) AS e_resolution,
            toString(any(region)) AS e_region, toString(any(queue)) AS e_queue, toString(any(business_line)) AS e_business_line,
            minIf(ms, e_type = 'message.sent' AND role IN ('bot', 'agent')) OVER w AS next_reply,
            minIf(ms, e_type = 'agent.assigned') OVER w AS next_assign,
            minIf(ms, e_type = 'conversation.abandoned') OVER w AS next_abandon,
            max(ms < {to_ms:Int64} AND e_type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned')) OVER c AS conv_seen,
            row_number() OVER c AS nth
        FROM events
        WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {{followUntil}}
            AND type IN ` + itemTypesSQL + `{{convs}}
            {{afterW}}
        GROUP BY conversation_id, event_id
        WINDOW w AS (PARTITION BY conversation_id ORDER BY ms RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
            c AS (PARTITION BY conversation_id)
    ) AS p
    ARRAY JOIN arrayConcat(
        if(ms < {to_ms:Int64} AND (e_type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned', 'complaint.filed', 'csat.submitted')
            OR (e_type = 'message.sent' AND role = 'customer' AND e_sentiment IS NOT NULL)), [0], []),
        if(ms < {to_ms:Int64} AND e_type = 'message.sent' AND role = 'customer', [1], []),
        if(ms < {to_ms:Int64} AND e_type = 'transfer.requested', [2], []),
        if(nth = 1 AND conv_seen, [3, 4], [])) AS kind
    LEFT JOIN (
        SELECT conversation_id, ` + conversationAttrsSQL + `, {{agents}} AS c_agents
        FROM conversations
        {{inW}}
        GROUP BY conversation_id
    ) AS a ON p.conversation_id = a.conversation_id`

// itemTypesSQL is the event types windowItemsSQL reads.
const itemTypesSQL = `('conversation.started', 'conversation.closed', 'conversation.abandoned', 'complaint.filed', 'csat.submitted',
                'message.sent', 'transfer.requested', 'agent.assigned')`

// conversationAttrsSQL is what an item of windowItemsSQL takes from its
// conversation's row of the conversations rollup (grouped by
// conversation_id): its attributes, its start and end, its first
// responses and whether it was contained. The live view's refresh reads
// the same columns (liveOpenSQL).
const conversationAttrsSQL = `tupleElement(min(start), 7) AS entry,
            tupleElement(min(start), 3) AS c_region, tupleElement(min(start), 4) AS c_queue, tupleElement(min(start), 5) AS c_channel,
            tupleElement(min(start), 6) AS c_business_line,
            toUnixTimestamp64Milli(min(started_at)) AS start_ms,
            toUnixTimestamp64Milli(if(min(closed_at) IS NULL, min(abandoned_at),
                if(min(abandoned_at) IS NULL, min(closed_at), least(min(closed_at), min(abandoned_at))))) AS end_ms,
            assumeNotNull(toUnixTimestamp64Milli(min(first_reply_at)) - start_ms) AS fr_ms,
            assumeNotNull(toUnixTimestamp64Milli(min(first_agent_msg_at)) - start_ms) AS hfr_ms,
            min(first_reply_at) IS NOT NULL AS has_fr,
            min(first_agent_msg_at) IS NOT NULL AS has_hfr,
            min(first_transfer_at) IS NOT NULL AS has_transfer,
            min(closed_at) IS NOT NULL AND max(resolved) = 1 AND min(first_transfer_at) IS NULL AND max(agent_seen) = 0 AS contained`

// windowItemsWithSQL names the columns of an item of windowItemsSQL that
// are not read as they are (kind, and the conversation's fr_ms, hfr_ms,
// has_fr, has_hfr, has_transfer, contained and entry are): a query over
// the items starts with it, selects FROM windowItemsSQL, and sets
// itemsSettings (the names would otherwise be pushed into the subqueries,
// where type, sentiment, score and resolution are the events' own).
const windowItemsWithSQL = `WITH p.conversation_id AS cid, p.ms AS p_ms,
        -- The first follower at or after the event (0: none yet).
        if(kind = 1, next_reply, if(kind = 2, next_assign, toInt64(0))) AS next_ms,
        if(kind = 2, next_abandon, toInt64(0)) AS alt_ms,
        e_type AS type, e_sentiment AS sentiment, e_score AS score, e_resolution AS resolution,
        if(kind = 3, a.start_ms, if(kind = 4, a.end_ms, toNullable(p_ms))) AS t_ms,
        if(kind = 0 AND type = 'complaint.filed' AND e_region != '', e_region, a.c_region) AS f_region,
        if(kind = 0 AND type = 'complaint.filed' AND e_queue != '', e_queue, a.c_queue) AS f_queue,
        a.c_channel AS f_channel,
        if(kind = 0 AND type = 'complaint.filed' AND e_business_line != '', e_business_line, a.c_business_line) AS f_business_line,
        a.c_agents AS f_agents`

// itemsSettings are the settings of every query over windowItemsSQL: the
// old analyzer, which plans them several times faster (EXPLAIN PLAN of a
// live refresh of 177 conversations, before the items were flattened:
// 668-689 ms with the new one, 110 with the old; gaugesSQL uses it too),
// the names of windowItemsWithSQL kept to the query that declares them,
// and no use of the tables' primary keys for a set of more than 1,000
// conversations from a subquery: the conversations a window names are
// spread over the whole conversations table (ordered by id), so a set of
// thousands touches most of its granules one range at a time, slower
// than reading it through (25M events, 3M conversations: an hour's
// window 748-882 ms against 647 without; 15 minutes, 1,568 of them,
// 471-518 against 411). The live view's sets of ids are literals and
// keep the index. The statement sets them: a query of sumItems may be a
// subquery.
const itemsSettings = `enable_analyzer = 0, enable_global_with_statement = 0, use_index_for_in_with_subqueries_max_values = 1000`

// sumItems is the query over the items of W (windowItemsSQL, named by
// windowItemsWithSQL, those of W kept by windowInSQL, and also filtered by
// and when it is not empty) that selects cols grouped by groupBy.
func sumItems(cols, and, groupBy string) string {
	if and != "" {
		and = `
    AND ` + and
	}
	return windowItemsWithSQL + `
SELECT ` + cols + `
FROM ` + windowItemsSQL + `
WHERE ` + windowInSQL + and + `
GROUP BY ` + groupBy
}

// windowInSQL keeps the items of windowItemsSQL that belong to W.
const windowInSQL = `(kind IN (0, 1, 2) OR (t_ms >= {from_ms:Int64} AND t_ms < {to_ms:Int64} AND (kind = 3 OR entry = 'bot')))`

// windowAggSQL sums the items of windowItemsSQL into the sums (in the
// order of windowSums) and the histogram of a window query.
var windowAggSQL = windowSumsSQL + ` AS sums,
    ` + windowHistSQL

// windowSumsSQL is the sums of windowAggSQL, an array in the order of
// windowSums.
const windowSumsSQL = `sumForEach([
        toInt64(ifNull(kind = 0 AND type = 'conversation.started', 0)),
        toInt64(ifNull(kind = 0 AND type = 'conversation.closed', 0)),
        toInt64(ifNull(kind = 0 AND type = 'conversation.closed' AND resolution = 'resolved', 0)),
        toInt64(ifNull(kind = 0 AND type = 'conversation.abandoned', 0)),
        toInt64(ifNull(kind = 0 AND type = 'complaint.filed', 0)),
        toInt64(ifNull(kind = 0 AND type = 'csat.submitted', 0)),
        if(kind = 0 AND type = 'csat.submitted', toInt64(toUInt64(score)), 0),
        toInt64(ifNull(kind = 0 AND type = 'csat.submitted' AND score >= 4, 0)),
        toInt64(ifNull(kind = 0 AND type = 'message.sent', 0)),
        toInt64(ifNull(kind = 0 AND type = 'message.sent' AND sentiment < toFloat32(-0.3), 0)),
        toInt64(ifNull(kind = 3 AND has_fr, 0)),
        if(kind = 3 AND has_fr, toInt64(fr_ms), 0),
        toInt64(ifNull(kind = 3 AND has_hfr, 0)),
        if(kind = 3 AND has_hfr, toInt64(hfr_ms), 0),
        toInt64(ifNull(kind = 4, 0)),
        toInt64(ifNull(kind = 4 AND has_transfer, 0)),
        toInt64(ifNull(kind = 4 AND contained, 0)),
        toInt64(ifNull(kind = 1 AND next_ms > 0, 0)),
        if(kind = 1 AND next_ms > 0, toInt64(next_ms - p_ms), 0),
        toInt64(ifNull(kind = 2 AND next_ms > 0, 0)),
        if(kind = 2 AND next_ms > 0, toInt64(next_ms - p_ms), 0),
        toInt64(ifNull(kind = 2 AND (next_ms > 0 OR alt_ms > 0), 0)),
        toInt64(ifNull(kind = 2 AND next_ms > 0 AND (alt_ms = 0 OR next_ms <= alt_ms) AND next_ms - p_ms <= {sl_ms:Int64}, 0))
    ])`

// windowHistSQL is the histogram of windowAggSQL, as the column hist.
var windowHistSQL = histAggSQL(
	histItem{"kind = 3 AND has_fr", "toInt64(fr_ms)", distFirstResponse},
	histItem{"kind = 3 AND has_hfr", "toInt64(hfr_ms)", distHumanFirstResponse},
	histItem{"kind = 1 AND next_ms > 0", "toInt64(next_ms - p_ms)", distResponse},
	histItem{"kind = 2 AND next_ms > 0", "toInt64(next_ms - p_ms)", distHumanWait})

// windowSQL computes eventCountsSQL, conversationsSQL and pairsSQL in one
// pass over windowItemsSQL, so the query is planned once, the window of
// events is de-duplicated once and the conversations rollup is read once.
// The queries above stay as the reference form of each definition; the
// store runs windowSQL for windows up to combinedWindowMax.
var windowSQL = sumItems(bucketSQL+` AS bucket, {{key}} AS key,
    `+windowAggSQL, filterSQL, "bucket, key") + `
SETTINGS ` + itemsSettings

// windowByConversationSQL is windowSQL per conversation, at full grain:
// the live view keeps what each conversation adds to each bucket, so that
// a conversation that changes is taken out and put back without touching
// the others. The sums of a window are additive over its conversations,
// the histograms too.
//
// Its sums come as one column each and its histogram as its keys and
// counts: the live view reads hundreds of thousands of its rows after a
// backfill, and the driver reads an array into Go an element at a time
// through reflection, boxing each (467 of the 732 MB the view's reads
// allocated in the 30 s after a busy backfill), while a scalar column is
// read straight into its variable. The columns are taken from the
// aggregates in the same SELECT rather than in a query around it: the
// engine analyses every query around windowItemsSQL anew, and that
// analysis, not the reading, is most of a live refresh's cost (see
// windowItemsSQL). Predicates are not
// pushed into the subqueries either: every filter is already where it
// applies, and looking for more to push cost ~5 ms a refresh.
//
// The sums come as one array instead ({{sums}}: sumArraySQL) where few
// rows are read, a refresh by ids: the engine's analysis of the 23
// columns taken from the array's alias cost ~30 of ~140 ms of planning
// (EXPLAIN PLAN of a refresh by 179 ids against a demo's store at rest,
// best of 6: 91-114 ms against 133-150), and a refresh reads hundreds of
// rows, not hundreds of thousands.
var windowByConversationSQL = sumItems(`cid, `+bucketSQL+` AS bucket, {{key}} AS key,
    {{sums}},
    tupleElement(`+windowHistSQL+`, 1), tupleElement(hist, 2)`, "", "cid, bucket, key") + `
SETTINGS ` + itemsSettings + `, enable_optimize_predicate_expression = 0`

// sumArraySQL selects windowSumsSQL as one array column.
const sumArraySQL = windowSumsSQL + ` AS sums`

// sumColumnsSQL selects each element of windowSumsSQL as a column of its
// own.
func sumColumnsSQL() string {
	cols := make([]string, len(windowSums))
	cols[0] = "(" + windowSumsSQL + " AS sums)[1]"
	for i := 1; i < len(cols); i++ {
		cols[i] = fmt.Sprintf("sums[%d]", i+1)
	}
	return strings.Join(cols, ", ")
}

// gaugesSQL: the "now" gauges, over conversations with a start or a
// transfer in the 24 hours before {now}:
//
//	active_conversations = count(started_at in (now − 24 h, now] AND no close AND no abandon)
//	waiting_for_human    = count(last transfer in (now − 24 h, now] AND no agent.assigned at or after it
//	                             AND no close AND no abandon)
//
// A conversation with a close or abandon stored for the last day or later
// is neither, so only the others are looked up in the conversations
// rollup (its ids are random: a look-up of every conversation of a day
// reads all of it).
const gaugesSQL = `WITH ids AS (
    SELECT conversation_id FROM events
    WHERE occurred_at > {now:DateTime64(3, 'UTC')} - INTERVAL 1 DAY AND occurred_at <= {now:DateTime64(3, 'UTC')}
        AND type IN ('conversation.started', 'transfer.requested')
        AND conversation_id NOT IN (
            SELECT conversation_id FROM events
            WHERE occurred_at > {now:DateTime64(3, 'UTC')} - INTERVAL 1 DAY
                AND type IN ('conversation.closed', 'conversation.abandoned'))
), c AS (
    SELECT conversation_id,
        min(started_at) AS started_at,
        tupleElement(min(start), 3) AS f_region, tupleElement(min(start), 4) AS f_queue, tupleElement(min(start), 5) AS f_channel,
        tupleElement(min(start), 6) AS f_business_line, {{agents}} AS f_agents,
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
GROUP BY key
SETTINGS enable_analyzer = 0`

// render fills every placeholder of a query: the breakdown key of dim,
// the agents when agents is set, and the restriction to the conversations
// of {ids} when convs is set. Every query goes through it.
func render(query string, dim Dimension, agents, convs bool) string {
	return withConversations(withAgents(withKey(query, dim), agents), convs)
}

// withConversations fills the placeholders of windowItemsSQL. For every
// conversation (restrict unset), the items are those of W's conversations:
// events up to followUntilSQL, after W only those of conversations with a
// pair in W (afterWSQL), attributes of the conversations with an item in W
// (inWSQL). Restricted to the conversations of the {ids} parameter (an
// Array(String), see schemas.StringsParam), they are read whole instead,
// and up to {to}: the caller's {to} must lie past every stored event of
// those conversations. The live view recomputes the conversations that
// changed with it, its {to} an hour past the store's clock, beyond what
// ingest accepts (max_future, 5 minutes by default); three subqueries
// fewer halve the cost of its refresh, planning being most of it.
func withConversations(query string, restrict bool) string {
	if restrict {
		return strings.NewReplacer(
			"{{followUntil}}", "{to:DateTime64(3, 'UTC')}",
			"{{afterW}}", "",
			"{{inW}}", "WHERE conversation_id IN {ids:Array(String)}",
			"{{convs}}", " AND conversation_id IN {ids:Array(String)}",
		).Replace(query)
	}
	return strings.NewReplacer(
		"{{followUntil}}", followUntilSQL,
		"{{afterW}}", afterWSQL,
		"{{inW}}", inWSQL,
		"{{convs}}", "",
	).Replace(query)
}

// withConversationPart keeps, in windowItemsSQL, the events and the
// attributes of the conversations of part {part} of {parts} (UInt8
// parameters): those whose cityHash64(conversation_id) % {parts} is
// {part}. Every item belongs to one conversation and is computed from
// that conversation's events and attributes alone, so the parts' items add
// up to the whole. Apply it before withConversations.
func withConversationPart(query string) string {
	const part = ` AND cityHash64(conversation_id) % {parts:UInt8} = {part:UInt8}`
	return strings.NewReplacer("{{convs}}", part, "{{inW}}", inWSQL+part).Replace(query)
}

// afterWSQL: after W, only the events of conversations with a pair in W
// (their followers) are read.
const afterWSQL = `AND (occurred_at < {to:DateTime64(3, 'UTC')} OR conversation_id IN (
                        SELECT conversation_id FROM events
                        WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
                            AND ((type = 'message.sent' AND actor_role = 'customer') OR type = 'transfer.requested')))`

// inWSQL: the attributes of the conversations with an item in W.
const inWSQL = `WHERE conversation_id IN (
            SELECT conversation_id FROM events
            WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
                AND (type IN ('conversation.started', 'conversation.closed', 'conversation.abandoned', 'complaint.filed', 'csat.submitted', 'transfer.requested')
                    OR (type = 'message.sent' AND actor_role = 'customer'))
        )`

// withKey puts the breakdown key expression into a query.
func withKey(query string, dim Dimension) string {
	return strings.ReplaceAll(query, "{{key}}", keyExpr(dim))
}

// withAgents puts the agents of a conversation into a query when an agent
// filter or breakdown needs them, else an empty list: reading the agents
// of every conversation of a window is a large part of a short window's
// cost.
func withAgents(query string, need bool) string {
	if need {
		return strings.ReplaceAll(query, "{{agents}}", "groupUniqArrayArray(agents)")
	}
	return strings.ReplaceAll(query, "{{agents}}", "CAST([], 'Array(String)')")
}
