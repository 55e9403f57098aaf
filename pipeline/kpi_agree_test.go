package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cockpit-cs/cockpit/pipeline"
)

// TestRollupAgreesWithRawEvents computes the metrics that come from the
// conversations rollup again from the raw events alone (de-duplicated by
// event_id) on simulated traffic with duplicates and late events, and
// requires the same numbers.
func TestRollupAgreesWithRawEvents(t *testing.T) {
	from := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // 09:00 Shanghai
	to := from.Add(2 * time.Hour)
	conn, n := simulated(t, from, to, 5)
	if n < 10_000 {
		t.Fatalf("only %d simulated events", n)
	}
	st, err := pipeline.NewKPIStore(conn, pipeline.KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := pipeline.Window{From: from.Add(30 * time.Minute), To: from.Add(90 * time.Minute)}
	for _, f := range []pipeline.Filters{{}, {Region: "广州"}, {Channel: "chat"}} {
		got, err := st.KPIs(ctx, w, f)
		if err != nil {
			t.Fatal(err)
		}
		const raw = `SELECT
    countIf(entry = 'bot' AND ended >= {from:DateTime64(3, 'UTC')} AND ended < {to:DateTime64(3, 'UTC')}) AS bot_ended,
    countIf(entry = 'bot' AND ended >= {from:DateTime64(3, 'UTC')} AND ended < {to:DateTime64(3, 'UTC')} AND transfers > 0) AS transferred,
    countIf(started >= {from:DateTime64(3, 'UTC')} AND started < {to:DateTime64(3, 'UTC')} AND reply IS NOT NULL) AS fr_n,
    sumIf(toUnixTimestamp64Milli(reply) - toUnixTimestamp64Milli(started), started >= {from:DateTime64(3, 'UTC')} AND started < {to:DateTime64(3, 'UTC')} AND reply IS NOT NULL) AS fr_sum
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
		if err := conn.QueryRow(pctx, raw).Scan(&botEnded, &transferred, &frN, &frSum); err != nil {
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
	}
}
