package chtest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Traffic describes synthetic history that Generate writes inside the
// engine (INSERT … SELECT from numbers()), for benchmarks far larger than
// a Go-side generator could feed in reasonable time.
type Traffic struct {
	From, To time.Time
	// Conversations spread evenly over [From, To); each has about 8.3
	// events: a start (70% bot first), customer messages with a sentiment,
	// bot or agent replies, a transfer and an assignment for 30%, a close
	// (resolved 70%) or an abandon (12%), csat for 30% of the closed, a
	// complaint for 3%. Ids are random hex, as real ids are.
	Conversations int
	// DuplicateShare of conversations get one customer message stored
	// again in a later insert (a redelivery).
	DuplicateShare float64
}

// generateSQL writes the events of conversations [first, first+count) of
// {convs}; with {dups} = 1 only the redelivered messages. 20 regions, 7
// queues, 4 channels and 3 business lines, as a large centre has.
const generateSQL = `INSERT INTO events (event_id, type, occurred_at, conversation_id, channel, region, queue, business_line,
    actor_role, actor_id, entry, customer_id, sentiment, reason, resolution, category, severity, score, schema_version, source_partition, source_offset)
SELECT
    concat(cid, '-', toString(k)) AS event_id,
    multiIf(k = 0, 'conversation.started',
        k = 4, if(xfer, 'transfer.requested', 'message.sent'),
        k = 5, if(xfer, 'agent.assigned', 'message.sent'),
        k = 7, if(aband, 'conversation.abandoned', 'conversation.closed'),
        k = 8, 'csat.submitted',
        k = 9, 'complaint.filed',
        'message.sent') AS type,
    t0 + toIntervalMillisecond(k * gap_ms + (cityHash64(n, k) % 5000)) AS occurred_at,
    cid AS conversation_id,
    if(k = 0, channel, '') AS channel,
    if(k IN (0, 9), region, '') AS region,
    if(k IN (0, 9), queue, '') AS queue,
    if(k IN (0, 9), line, '') AS business_line,
    multiIf(k IN (1, 3), 'customer', k = 2, if(bot, 'bot', 'agent'), k = 4, if(xfer, '', 'bot'),
        k = 5, if(xfer, 'agent', 'customer'), k = 6, if(xfer, 'agent', 'bot'), '') AS actor_role,
    multiIf(k IN (1, 3), customer, k IN (2, 4, 6) AND NOT (xfer AND k >= 5) AND bot, 'bot',
        k IN (2, 5, 6), concat('ag', toString(cityHash64(n, 'agent') % 300)), '') AS actor_id,
    if(k = 0, if(bot, 'bot', 'agent'), '') AS entry,
    customer AS customer_id,
    if(k IN (1, 3) AND cityHash64(n, k, 1) % 10 < 8, toFloat32((cityHash64(n, k, 2) % 2001) / 1000 - 1), NULL) AS sentiment,
    if(k = 4 AND xfer, 'bot_unable', '') AS reason,
    if(k = 7 AND NOT aband, if(cityHash64(n, 7) % 10 < 7, 'resolved', 'unresolved'), '') AS resolution,
    if(k = 9, 'billing', '') AS category,
    if(k = 9, 'high', '') AS severity,
    if(k = 8, toUInt8(1 + cityHash64(n, 8) % 5), 0) AS score,
    1 AS schema_version, toInt32(n % 8) AS source_partition, toInt64(n) AS source_offset
FROM (
    SELECT *, if(j = 10, 1, j) AS k FROM (
        SELECT number AS n, concat('c', lower(hex(cityHash64(number, 'conversation')))) AS cid,
            concat('cu', toString(cityHash64(number, 'customer') % 500000)) AS customer,
            toDateTime64({from:DateTime64(3, 'UTC')}, 3, 'UTC') + toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {convs:UInt64})) AS t0,
            5000 + cityHash64(number, 'gap') % 115000 AS gap_ms,
            ['北京','上海','广州','深圳','杭州','成都','武汉','西安','南京','重庆','天津','苏州','长沙','郑州','青岛','沈阳','宁波','厦门','合肥','昆明'][1 + cityHash64(number, 'r') % 20] AS region,
            ['general','billing','tech','vip','sales','returns','night'][1 + cityHash64(number, 'q') % 7] AS queue,
            ['chat','voice','app','wechat'][1 + cityHash64(number, 'c') % 4] AS channel,
            ['broadband','mobile','retail'][1 + cityHash64(number, 'l') % 3] AS line,
            cityHash64(number, 'b') % 10 < 7 AS bot,
            cityHash64(number, 'x') % 10 < 3 AS xfer,
            cityHash64(number, 'a') % 100 < 12 AS aband
        FROM numbers({first:UInt64}, {count:UInt64})
    )
    ARRAY JOIN range(11) AS j
    WHERE if({dups:UInt8} = 1, j = 10 AND cityHash64(n, 'dup') % 10000 < {dup_bp:UInt64},
        j < 8 OR (j = 8 AND NOT aband AND cityHash64(n, 'csat') % 10 < 3) OR (j = 9 AND cityHash64(n, 'cp') % 100 < 3))
)`

// LargeConversations is how many conversations the large benchmarks
// generate (30 days of at least 50M events): 6.1M, or
// COCKPIT_BENCH_CONVERSATIONS. It skips tb unless COCKPIT_BENCH_LARGE=1:
// generating them takes minutes.
func LargeConversations(tb testing.TB) int {
	tb.Helper()
	if os.Getenv("COCKPIT_BENCH_LARGE") != "1" {
		tb.Skip("set COCKPIT_BENCH_LARGE=1 to generate 50M events")
	}
	if v, err := strconv.Atoi(os.Getenv("COCKPIT_BENCH_CONVERSATIONS")); err == nil && v > 0 {
		return v
	}
	return 6_100_000
}

// Generate writes tr into the events table of conn's database (and so
// the conversations rollup) in inserts of at most 500,000 conversations,
// redeliveries last, and returns the number of events stored.
func Generate(tb testing.TB, conn driver.Conn, tr Traffic) uint64 {
	tb.Helper()
	ctx := context.Background()
	const chunk = 500_000
	for _, dups := range []int{0, 1} {
		for first := 0; first < tr.Conversations; first += chunk {
			n := min(chunk, tr.Conversations-first)
			p := clickhouse.Parameters{
				"from":    tr.From.UTC().Format("2006-01-02 15:04:05.000"),
				"span_ms": strconv.FormatInt(tr.To.Sub(tr.From).Milliseconds(), 10),
				"convs":   strconv.Itoa(tr.Conversations),
				"first":   strconv.Itoa(first),
				"count":   strconv.Itoa(n),
				"dups":    strconv.Itoa(dups),
				"dup_bp":  strconv.Itoa(int(tr.DuplicateShare * 10000)),
			}
			if err := conn.Exec(clickhouse.Context(ctx, clickhouse.WithParameters(p)), generateSQL); err != nil {
				tb.Fatalf("generate conversations %d to %d: %v", first, first+n, err)
			}
		}
	}
	var total uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&total); err != nil {
		tb.Fatal(fmt.Errorf("count generated events: %w", err))
	}
	return total
}

// Settle waits until a bulk insert just made through conn is no longer
// at work in the engine, as a running product's history is not: at least
// 10 s after it (a live view looks 5 s back for rows stored late, and
// would find the insert's last rows new), and until no merge runs. It
// fails tb after 3 minutes. Benchmarks call it before their timing.
func Settle(tb testing.TB, conn driver.Conn) {
	tb.Helper()
	start := time.Now()
	time.Sleep(10 * time.Second)
	for deadline := start.Add(3 * time.Minute); ; time.Sleep(time.Second) {
		var merges uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.merges").Scan(&merges); err != nil {
			tb.Fatal(err)
		}
		if merges == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d merges still running 3 min after the insert", merges)
		}
	}
	tb.Logf("the insert settled in %s", time.Since(start).Round(time.Second))
}
