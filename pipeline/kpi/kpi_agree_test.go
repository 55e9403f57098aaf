package kpi_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// TestRollupAgreesWithRawEvents computes the metrics that come from the
// conversations rollup again from the raw events alone (de-duplicated by
// event_id) on simulated traffic with duplicates and late events, and
// requires the same numbers, over an hour and over the wall's 15 minutes:
// counts and averages exactly, p50 and p90 (from histograms) within 1% of
// the exact quantiles.
func TestRollupAgreesWithRawEvents(t *testing.T) {
	from := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // 09:00 Shanghai
	to := from.Add(2 * time.Hour)
	conn, n := simulated(t, from, to, 5)
	if n < 10_000 {
		t.Fatalf("only %d simulated events", n)
	}
	st, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hour := kpi.Window{From: from.Add(30 * time.Minute), To: from.Add(90 * time.Minute)}
	quarter := kpi.Window{From: from.Add(70 * time.Minute), To: from.Add(85 * time.Minute)}
	for _, w := range []kpi.Window{hour, quarter} {
		for _, f := range []kpi.Filters{{}, {Region: "广州"}, {Channel: "chat"}} {
			checkAgainstRaw(t, conn, st, w, f)
		}
	}
}

// checkAgainstRaw compares the store's numbers for w and f with the raw
// computation.
func checkAgainstRaw(t *testing.T, conn driver.Conn, st *kpi.KPIStore, w kpi.Window, f kpi.Filters) {
	t.Helper()
	ctx := context.Background()
	got, err := st.KPIs(ctx, w, f)
	if err != nil {
		t.Fatal(err)
	}
	const raw = `SELECT
    countIf(entry = 'bot' AND ended >= {from:DateTime64(3, 'UTC')} AND ended < {to:DateTime64(3, 'UTC')}) AS bot_ended,
    countIf(entry = 'bot' AND ended >= {from:DateTime64(3, 'UTC')} AND ended < {to:DateTime64(3, 'UTC')} AND transfers > 0) AS transferred,
    countIf(started >= {from:DateTime64(3, 'UTC')} AND started < {to:DateTime64(3, 'UTC')} AND reply IS NOT NULL) AS fr_n,
    sumIf(toUnixTimestamp64Milli(reply) - toUnixTimestamp64Milli(started), started >= {from:DateTime64(3, 'UTC')} AND started < {to:DateTime64(3, 'UTC')} AND reply IS NOT NULL) AS fr_sum,
    quantilesExactInclusiveIf(0.5, 0.9)(toUnixTimestamp64Milli(reply) - toUnixTimestamp64Milli(started), started >= {from:DateTime64(3, 'UTC')} AND started < {to:DateTime64(3, 'UTC')} AND reply IS NOT NULL) AS fr_q
FROM (
    SELECT conversation_id,
        anyIf(entry, type = 'conversation.started') AS entry,
        anyIf(region, type = 'conversation.started') AS region,
        anyIf(channel, type = 'conversation.started') AS channel,
        minIf(occurred_at, type = 'conversation.started') AS started,
        minIf(toNullable(occurred_at), type IN ('conversation.closed', 'conversation.abandoned')) AS ended,
        countIf(type = 'transfer.requested') AS transfers,
        minIf(toNullable(occurred_at), type = 'message.sent' AND actor_role IN ('bot', 'agent')) AS reply
    FROM (SELECT * FROM events LIMIT 1 BY conversation_id, event_id)
    GROUP BY conversation_id
    HAVING countIf(type = 'conversation.started') > 0
)
WHERE ({region:String} = '' OR region = {region:String}) AND ({channel:String} = '' OR channel = {channel:String})`
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"from": w.From.Format("2006-01-02 15:04:05.000"), "to": w.To.Format("2006-01-02 15:04:05.000"),
		"region": f.Region, "channel": f.Channel,
	}))
	var botEnded, transferred, frN uint64
	var frSum int64
	var frQ []float64
	if err := conn.QueryRow(pctx, raw).Scan(&botEnded, &transferred, &frN, &frSum, &frQ); err != nil {
		t.Fatal(err)
	}
	if botEnded == 0 || frN == 0 {
		t.Fatalf("%+v: empty raw numbers, the simulation is too small", f)
	}
	if got.TransferRate == nil || !near(*got.TransferRate, float64(transferred)/float64(botEnded), 1e-12) {
		t.Errorf("%+v: transfer_rate %v, raw %d/%d", f, got.TransferRate, transferred, botEnded)
	}
	if got.FirstResponseSeconds.Count != frN || !near(*got.FirstResponseSeconds.Avg, float64(frSum)/float64(frN)/1000, 1e-12) {
		t.Errorf("%+v: first_response %d avg %v, raw %d avg %v", f, got.FirstResponseSeconds.Count, *got.FirstResponseSeconds.Avg, frN, float64(frSum)/float64(frN)/1000)
	}
	if q := got.FirstResponseSeconds; q.P50 == nil || q.P90 == nil || !near(*q.P50, frQ[0]/1000, 0.01) || !near(*q.P90, frQ[1]/1000, 0.01) {
		t.Errorf("%+v over %s: first_response p50/p90 %v/%v, exact %v/%v (1%% allowed)", f, w.To.Sub(w.From), q.P50, q.P90, frQ[0]/1000, frQ[1]/1000)
	}
}
