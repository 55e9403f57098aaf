// Package kpi turns stored conversation events into the numbers the
// cockpit shows and judges: the SPEC §5 metrics (this file's neighbours
// metrics.go, kpi.go, store*.go), their hourly rollup, the live view, and
// the drill-down to single conversations and their events
// (conversations.go).
// The rules over them are package rules, which imports this one; kpi
// imports neither rules nor spike.
//
// # Metrics
//
// Metrics is the registry of metric names, kinds, units and labels;
// KPIStore computes them over a window and filters from ClickHouse. Every
// formula's SQL is in store_sql.go beside its definition, and the API,
// the wall and the rules all read it through KPIStore.
//
// Storage: the raw events table (one row per delivered event, repeated
// event_ids folded by its key) and the conversations rollup
// (schemas/migrations/0003; 0024 keeps it in granules of 256 rows, as its
// readers name conversations spread over the whole table), an
// AggregatingMergeTree fed by a
// materialized view with one logical row per conversation: start time and
// attributes of its conversation.started, first reply, first agent
// message, transfers, agents, close and abandon times, resolution. Its
// columns are idempotent aggregates (min, max, union), so duplicates,
// replays and any arrival order give the same facts, and an event stored
// before its conversation.started gets the start's attributes once it
// arrives. The attributes are read from its start column (0005): the
// earliest conversation.started as one tuple, so with several starts every
// attribute comes from the same one. Readers fold it with GROUP BY
// conversation_id.
//
// Which metric comes from where:
//   - conversation facts (rollup): transfer_rate, bot_containment_rate,
//     first_response_seconds, human_first_response_seconds, the gauges,
//     and the attributes (filters, breakdowns) of every metric;
//   - events of W de-duplicated by event_id (raw): conversations_started,
//     conversations_closed, resolution_rate, abandon_rate, complaints,
//     csat_avg, csat_satisfied_rate, negative_sentiment_rate;
//   - pairs of events (raw, per conversation): response_seconds,
//     human_wait_seconds, service_level.
//
// # Long windows
//
// Each of those metrics is a sum over items with one time each, so the
// window queries return sums and histograms (hist.go) that add up over
// any partition of the window. The hourly rollup (rollup.go,
// schemas/migrations/0004) stores them per closed hour and subset of the
// filter attributes, built from the same SQL fragments as the raw
// queries; KPIStore answers a window from its clean whole hours plus the
// raw queries for the rest, and RollupBuilder (run by the rules leader)
// builds hours and rebuilds the ones late events change.
package kpi
