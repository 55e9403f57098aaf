package kpi

import (
	"strconv"
	"strings"
)

// The SQL of the hourly rollup (schemas/migrations/0004). The rollup holds
// what windowSQL returns, per closed hour: it is built by windowItemsSQL,
// windowInSQL and windowAggSQL (store_sql.go) over the hours, so the
// formulas have one owner and a built hour holds exactly the items the raw
// queries would count in it.
//
// Parameters besides the window ones (store_sql.go):
//   sl_ms  Int64   the service-level threshold the rows were built with
//   build  UInt64  the build's version (buildVersion: its as_of, then random bits)
//   as_of  DateTime64(3,'UTC')  when the build started reading

// rollupFullMask is the grouping set of all four attributes: the rows a
// build computes from the events; the other grouping sets are added up
// from them (rollupCubeSQL).
const rollupFullMask = 15

// rollupBuildSQL builds the hours of [from, to) (whole hours of one
// month) at full grain from {{rows}}, the rows of each hour grouped by its
// four attributes, plus a zero row for every key an earlier build of these
// hours wrote and this one does not, so that under FINAL this build
// replaces the earlier one key for key. {{rows}} is rollupItemRowsSQL, the
// items read from the events, or rollupPartRowsSQL, the parts of an hour
// too large for one statement, built before.
var rollupBuildSQL = `INSERT INTO kpi_hourly (hour, sl_ms, mask, region, queue, channel, business_line, build, sums, hist)
SELECT hour, {sl_ms:Int64}, ` + strconv.Itoa(rollupFullMask) + `, region, queue, channel, business_line, {build:UInt64},
    sumForEach(sums), sumMap(hist)
FROM (
    {{rows}}
    UNION ALL
    SELECT DISTINCT hour, toString(region), toString(queue), toString(channel), toString(business_line),
        CAST([], 'Array(Int64)'), CAST(([], []), 'Tuple(Array(Int32), Array(UInt64))')
    FROM kpi_hourly
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
        AND mask = ` + strconv.Itoa(rollupFullMask) + `
)
GROUP BY hour, region, queue, channel, business_line
SETTINGS ` + rollupReadSettings

// rollupItemRowsSQL is the items of the hours of [from, to) added up per
// hour and full-grain key, from the events: every formula is
// windowAggSQL's.
//
// Its memory grows with the events it reads: over the 705k events of the
// demo's busiest hour it took the process 455 MB more at its peak, over
// three hours of 1.19M events 865 MB. An aggregation state over 150 MB
// goes to disk (the engine's tmp directory, in the data directory): the
// busiest hour then took 262 MB more, in 1.1 s instead of 0.75. Read in
// parts (rollupPartSQL) a 667k-event hour took 249 and 293 MB more whole,
// 165 and 173 a half, 140 and 143 a third (0.5 s each). The builder gives
// a statement at most buildEvents events.
var rollupItemRowsSQL = sumItems(`toDateTime(intDiv(assumeNotNull(t_ms), 3600000) * 3600, 'UTC') AS hour,
        toString(f_region) AS region, toString(f_queue) AS queue, toString(f_channel) AS channel,
        toString(f_business_line) AS business_line,
        `+windowAggSQL, "", "hour, region, queue, channel, business_line")

// rollupReadSettings are the settings of the statements that read events
// into the rollup.
const rollupReadSettings = itemsSettings + `, distributed_foreground_insert = 1, max_bytes_before_external_group_by = 150000000`

// rollupPartMask is the mask of the first part of an hour built in parts:
// part {part} of {parts} holds the items of its conversations
// (withConversationPart) at full grain, under the mask rollupPartMask +
// {part} and the build's version. rollupPartRowsSQL reads a build's parts
// back; no reader of the rollup asks for these masks, and a later build of
// the hour writes the same keys with a higher version, so they take no
// more room than one build's.
const rollupPartMask = 32

// rollupMaxParts is the most parts an hour is built in.
const rollupMaxParts = 16

// rollupPartSQL builds part {part} of {parts} of the hours of [from, to).
var rollupPartSQL = `INSERT INTO kpi_hourly (hour, sl_ms, mask, region, queue, channel, business_line, build, sums, hist)
SELECT hour, {sl_ms:Int64}, ` + strconv.Itoa(rollupPartMask) + ` + {part:UInt8}, region, queue, channel, business_line, {build:UInt64}, sums, hist
FROM (` + rollupItemRowsSQL + `)
SETTINGS ` + rollupReadSettings

// rollupPartRowsSQL is the rows the parts of build {build} stored.
var rollupPartRowsSQL = `SELECT hour, toString(region) AS region, toString(queue) AS queue, toString(channel) AS channel,
        toString(business_line) AS business_line, sums, hist
    FROM kpi_hourly
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
        AND mask >= ` + strconv.Itoa(rollupPartMask) + ` AND build = {build:UInt64}`

// The build statements, rendered once: rollupWholeSQL reads the events
// of its hours in one statement; an hour built in parts runs
// rollupPartsSQL once per part (parameters {parts} and {part}), then
// rollupPartsSumSQL over their rows.
var (
	rollupWholeSQL    = render(strings.ReplaceAll(rollupBuildSQL, "{{rows}}", rollupItemRowsSQL), DimNone, false, false)
	rollupPartsSQL    = render(withConversationPart(rollupPartSQL), DimNone, false, false)
	rollupPartsSumSQL = strings.ReplaceAll(rollupBuildSQL, "{{rows}}", rollupPartRowsSQL)
)

// rollupCubeSQL adds up the full-grain rows of build {build} into the
// other grouping sets (bit 0 region, 1 queue, 2 channel, 3 business_line:
// an attribute whose bit is clear is ”), again with zero rows for the keys
// of earlier builds. Histograms are added as (key, count) rows: sumMap
// over many rows is slow on this engine.
var rollupCubeSQL = `INSERT INTO kpi_hourly (hour, sl_ms, mask, region, queue, channel, business_line, build, sums, hist)
SELECT hour, {sl_ms:Int64}, set_mask, region, queue, channel, business_line, {build:UInt64}, s.sums, (h.keys, h.counts)
FROM (
    SELECT hour, set_mask, region, queue, channel, business_line, sumForEach(sums) AS sums
    FROM (
        -- (set_mask, not mask: an alias would shadow the column in WHERE)
        SELECT hour, set_mask,
            if(bitTest(set_mask, 0), toString(region), '') AS region, if(bitTest(set_mask, 1), toString(queue), '') AS queue,
            if(bitTest(set_mask, 2), toString(channel), '') AS channel, if(bitTest(set_mask, 3), toString(business_line), '') AS business_line,
            sums
        FROM kpi_hourly
        ARRAY JOIN range(` + strconv.Itoa(rollupFullMask) + `) AS set_mask
        WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
            AND mask = ` + strconv.Itoa(rollupFullMask) + ` AND build = {build:UInt64}
        UNION ALL
        SELECT DISTINCT hour, mask AS set_mask, toString(region), toString(queue), toString(channel), toString(business_line), CAST([], 'Array(Int64)')
        FROM kpi_hourly
        WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64} AND mask < ` + strconv.Itoa(rollupFullMask) + `
    )
    GROUP BY hour, set_mask, region, queue, channel, business_line
) AS s
LEFT JOIN (
    SELECT hour, set_mask, region, queue, channel, business_line, groupArray(k) AS keys, groupArray(c) AS counts
    FROM (
        SELECT hour, set_mask,
            if(bitTest(set_mask, 0), toString(region), '') AS region, if(bitTest(set_mask, 1), toString(queue), '') AS queue,
            if(bitTest(set_mask, 2), toString(channel), '') AS channel, if(bitTest(set_mask, 3), toString(business_line), '') AS business_line,
            k, sum(c) AS c
        FROM (
            SELECT hour, region, queue, channel, business_line, k, c
            FROM kpi_hourly
            ARRAY JOIN hist.keys AS k, hist.counts AS c
            WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
                AND mask = ` + strconv.Itoa(rollupFullMask) + ` AND build = {build:UInt64}
        )
        ARRAY JOIN range(` + strconv.Itoa(rollupFullMask) + `) AS set_mask
        GROUP BY hour, set_mask, region, queue, channel, business_line, k
    )
    GROUP BY hour, set_mask, region, queue, channel, business_line
) AS h USING (hour, set_mask, region, queue, channel, business_line)
SETTINGS enable_analyzer = 0, distributed_foreground_insert = 1`

// rollupDayMask is the mask bit of a day's rows.
const rollupDayMask = 16

// rollupDaySQL adds up the hours of the day [from, to) (newest build of
// each, FINAL) into day rows (mask + rollupDayMask), with zero rows for
// the keys of an earlier build of the day.
var rollupDaySQL = `INSERT INTO kpi_hourly (hour, sl_ms, mask, region, queue, channel, business_line, build, sums, hist)
SELECT day, {sl_ms:Int64}, hour_mask + ` + strconv.Itoa(rollupDayMask) + `, region, queue, channel, business_line, {build:UInt64}, s.sums, (h.keys, h.counts)
FROM (
    SELECT day, hour_mask, region, queue, channel, business_line, sumForEach(sums) AS sums
    FROM (
        SELECT toStartOfDay(hour) AS day, mask AS hour_mask, toString(region) AS region, toString(queue) AS queue,
            toString(channel) AS channel, toString(business_line) AS business_line, sums
        FROM kpi_hourly FINAL
        WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
            AND mask < ` + strconv.Itoa(rollupDayMask) + `
        UNION ALL
        SELECT DISTINCT hour, mask - ` + strconv.Itoa(rollupDayMask) + `, toString(region), toString(queue), toString(channel),
            toString(business_line), CAST([], 'Array(Int64)')
        FROM kpi_hourly
        WHERE hour = {from:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64} AND mask >= ` + strconv.Itoa(rollupDayMask) + `
            AND mask < ` + strconv.Itoa(rollupPartMask) + `
    )
    GROUP BY day, hour_mask, region, queue, channel, business_line
) AS s
LEFT JOIN (
    SELECT day, hour_mask, region, queue, channel, business_line, groupArray(k) AS keys, groupArray(c) AS counts
    FROM (
        SELECT toStartOfDay(hour) AS day, mask AS hour_mask, toString(region) AS region, toString(queue) AS queue,
            toString(channel) AS channel, toString(business_line) AS business_line, k, sum(n) AS c
        FROM kpi_hourly FINAL
        ARRAY JOIN hist.keys AS k, hist.counts AS n
        WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
            AND mask < ` + strconv.Itoa(rollupDayMask) + `
        GROUP BY day, hour_mask, region, queue, channel, business_line, k
    )
    GROUP BY day, hour_mask, region, queue, channel, business_line
) AS h USING (day, hour_mask, region, queue, channel, business_line)
SETTINGS enable_analyzer = 0, distributed_foreground_insert = 1`

// rollupRecordSQL records a finished build of the hours {hours}, after
// its rows are stored.
var rollupRecordSQL = `INSERT INTO kpi_hourly_builds (hour, sl_ms, span, build, as_of, rows)
SELECT h.hour, {sl_ms:Int64}, {span:UInt8}, {build:UInt64}, {as_of:DateTime64(3, 'UTC')}, n.rows
FROM (SELECT arrayJoin({hours:Array(DateTime('UTC'))}) AS hour) AS h
LEFT JOIN (
    SELECT hour, count() AS rows FROM kpi_hourly
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64} AND build = {build:UInt64}
        AND mask < ` + strconv.Itoa(rollupPartMask) + `
    GROUP BY hour
) AS n ON h.hour = n.hour
SETTINGS distributed_foreground_insert = 1`

// rollupBusySQL lists the hours of [from, to) with events or rollup rows,
// with the events stored in each (duplicates not yet merged away
// included): what a build of the hour reads.
const rollupBusySQL = `SELECT hour, sum(n) AS events FROM (
    SELECT toStartOfHour(occurred_at) AS hour, count() AS n FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
    GROUP BY hour
    UNION ALL
    SELECT DISTINCT hour, toUInt64(0) FROM kpi_hourly
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')}
)
GROUP BY hour`

// rollupRecordEmptySQL records builds of hours or days without items.
const rollupRecordEmptySQL = `INSERT INTO kpi_hourly_builds (hour, sl_ms, span, build, as_of, rows)`

// rollupStateSQL is the newest build (as_of, 0 when none) of each hour
// (span 1) and day (span 24) of [from, to) with the rows it stored, and
// the newest change (changed_at, 0 when none) of each hour.
const rollupStateSQL = `SELECT hour, span, max(built_as_of) AS as_of, max(changed_at) AS changed_at, argMax(rows, built_as_of) AS rows
FROM (
    SELECT hour, span, as_of AS built_as_of, toDateTime64(0, 3, 'UTC') AS changed_at, rows FROM kpi_hourly_builds
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')} AND sl_ms = {sl_ms:Int64}
    UNION ALL
    SELECT hour, toUInt8(1), toDateTime64(0, 3, 'UTC'), changed_at, toUInt64(0) FROM kpi_hourly_dirty
    WHERE hour >= {from:DateTime64(3, 'UTC')} AND hour < {to:DateTime64(3, 'UTC')}
)
GROUP BY hour, span`

// rollupSQL reads the rollup over the hours {hours} and the days {days}
// in the window query shape (store_sql.go): the rows of the grouping set
// {mask} that match the filters, newest build of each key (FINAL). The
// zero rows of a rebuild have empty sums.
var rollupSQL = `SELECT intDiv(toInt64(toUnixTimestamp(hour)) * 1000 - {origin_ms:Int64}, {step_ms:Int64}) AS bucket, {{key}} AS key,
    sumForEach(sums) AS sums, sumMap(hist) AS hist
FROM (
    SELECT hour, region AS f_region, queue AS f_queue, channel AS f_channel, business_line AS f_business_line,
        CAST([], 'Array(String)') AS f_agents, sums, hist
    FROM kpi_hourly FINAL
    WHERE sl_ms = {sl_ms:Int64} AND ((mask = {mask:UInt8} AND hour IN {hours:Array(DateTime('UTC'))})
        OR (mask = {mask:UInt8} + ` + strconv.Itoa(rollupDayMask) + ` AND hour IN {days:Array(DateTime('UTC'))}))
)
WHERE ` + filterSQL + `
GROUP BY bucket, key
-- A key that only zero rows of a rebuild hold had no items.
HAVING length(sums) > 0
SETTINGS enable_analyzer = 0`

// rollupChangedSQL returns the hours that events stored in [since,
// until) may have changed, with the newest ingested_at among them: every
// hour from the first to the last event of their conversations (a reply
// changes the hour of the message, a start the attributes of every event
// of its conversation), within [oldest, newest].
const rollupChangedSQL = `SELECT toDateTime(h, 'UTC') AS hour, max(changed) AS changed_at
FROM (
    SELECT n.changed AS changed,
        toUInt32(toStartOfHour(if(c.conversation_id = '', n.lo, least(n.lo, c.c_first)))) AS h0,
        toUInt32(toStartOfHour(if(c.conversation_id = '', n.hi, greatest(n.hi, c.c_last)))) AS h1
    FROM (
        SELECT conversation_id, max(ingested_at) AS changed, min(occurred_at) AS lo, max(occurred_at) AS hi
        FROM events
        WHERE ingested_at >= {since:DateTime64(3, 'UTC')} AND ingested_at < {until:DateTime64(3, 'UTC')}
        GROUP BY conversation_id
    ) AS n
    LEFT JOIN (
        SELECT conversation_id, min(first_event_at) AS c_first, max(last_event_at) AS c_last
        FROM conversations
        WHERE conversation_id IN (
            SELECT conversation_id FROM events
            WHERE ingested_at >= {since:DateTime64(3, 'UTC')} AND ingested_at < {until:DateTime64(3, 'UTC')})
        GROUP BY conversation_id
    ) AS c ON n.conversation_id = c.conversation_id
)
ARRAY JOIN range(greatest(h0, toUInt32({oldest:DateTime('UTC')})), least(h1, toUInt32({newest:DateTime('UTC')})) + 1, 3600) AS h
GROUP BY h
ORDER BY h
SETTINGS enable_analyzer = 0`

// rollupStoredSQL counts the events stored in each second of [since,
// until) (ingested_at; since a whole second, the last one counted in part
// when until is not).
const rollupStoredSQL = `SELECT toUInt32(toUnixTimestamp(ingested_at)) AS s, count()
FROM events
WHERE ingested_at >= {since:DateTime64(3, 'UTC')} AND ingested_at < {until:DateTime64(3, 'UTC')}
GROUP BY s
SETTINGS enable_analyzer = 0`

const (
	// rollupMarkSQL is the insert of the marks rollupChangedSQL found.
	rollupMarkSQL = `INSERT INTO kpi_hourly_dirty (hour, changed_at)`
	// rollupScannedSQL is how far earlier scans have marked.
	rollupScannedSQL = `SELECT max(scanned_to), count() FROM kpi_hourly_scans`
	// rollupScanSQL records a scan.
	rollupScanSQL = `INSERT INTO kpi_hourly_scans (scanned_to) SETTINGS distributed_foreground_insert = 1 VALUES ({until:DateTime64(3, 'UTC')})`
)
