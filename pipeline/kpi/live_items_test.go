package kpi

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestHistBucketAgreesWithSQL requires histBucket and histKeySQL to put
// the same values in the same buckets: every value up to 200,000 ms and
// the values around each bucket's lower bound up to about 4·10^10 ms
// (over a year), where a rounding of the logarithm could differ, both
// signs.
func TestHistBucketAgreesWithSQL(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	// Bucket i's lower bound is histExact·histGamma^i: 2,000 buckets reach
	// 4·10^10 ms.
	rows, err := conn.Query(context.Background(), `SELECT v, `+histKeySQL("v", 0)+` FROM (
		SELECT sg * u AS v FROM (
			SELECT toInt64(number) AS u FROM numbers(200001)
			UNION ALL
			SELECT toInt64(floor(`+strconv.Itoa(histExact)+` * pow(`+strconv.FormatFloat(histGamma, 'f', -1, 64)+`, i))) + d AS u
			FROM (SELECT arrayJoin(range(2000)) AS i) ARRAY JOIN [-2, -1, 0, 1, 2] AS d)
		ARRAY JOIN [1, -1] AS sg)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n, bad := 0, 0
	for rows.Next() {
		var (
			v int64
			k int32
		)
		if err := rows.Scan(&v, &k); err != nil {
			t.Fatal(err)
		}
		n++
		if got := histBucket(v); got != k && bad < 10 {
			bad++
			t.Errorf("value %d: bucket %d in Go, %d in SQL", v, got, k)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := 2 * (200_001 + 2000*5); n != want {
		t.Fatalf("%d values compared, want %d", n, want)
	}
}

// TestLivePiecesAgreeWithSQL requires a refresh's pieces, computed in Go
// (recompute, livePieces), to be those windowByConversationSQL computes
// for the same conversations (liveByIDsSQL), sum for sum and bucket for
// bucket: over an hour of simulated traffic with late and repeated
// deliveries, and over hand-built conversations that each exercise one
// edge of the definitions.
func TestLivePiecesAgreeWithSQL(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.Floor, cfg.LogEvery = now.Add(-2*time.Hour), 3, 1, 0
	cfg.Faults = simulate.Faults{LateShare: 0.05, MaxLateness: 90 * time.Second, DuplicateShare: 0.02, InFastForward: true}
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []schemas.Event
	if err := sim.Generate(now.Add(-70*time.Minute), now.Add(2*time.Minute), func(e schemas.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hand := liveEdgeEvents(now)
	evs = append(evs, hand...)
	insertChunks(t, conn, evs, 5000)
	// Some deliveries again, in another insert: the store holds them
	// twice, until a merge it does not get here.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	insertChunks(t, conn, append(evs[:200:200], hand...), 1000)
	var repeated int64
	if err := conn.QueryRow(ctx, "SELECT count() - uniqExact(event_id) FROM events").Scan(&repeated); err != nil {
		t.Fatal(err)
	}
	if repeated < 200 {
		t.Fatalf("%d repeated rows stored, want at least 200", repeated)
	}

	st, err := NewKPIStore(conn, KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l := st.live
	var ids []string
	if err := conn.QueryRow(ctx, `SELECT groupUniqArray(conversation_id) FROM events`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	from := l.floor(now.Add(-l.cfg.Horizon).UnixMilli())
	to := l.floor(now.Add(liveAhead).UnixMilli())
	for _, c := range []struct {
		name     string
		from, to int64
	}{
		{"horizon", from, to},
		// A load's piece: conversations cut by both edges.
		{"cut", l.floor(now.Add(-40 * time.Minute).UnixMilli()), l.floor(now.Add(-20 * time.Minute).UnixMilli())},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, got := map[string][]int64{}, map[string][]int64{}
			attrs := map[string]convAttrs{}
			for chunk := range slices.Chunk(ids, liveIDsPerQuery) {
				if err := l.read(ctx, c.from, c.to, chunk, want); err != nil {
					t.Fatal(err)
				}
				o, err := l.readOpen(ctx, liveOpenChangedSQL, clickhouse.Parameters{"ids": schemas.StringsParam(chunk)}, false)
				if err != nil {
					t.Fatal(err)
				}
				for id, a := range o {
					attrs[id] = a
				}
				if err := l.recompute(ctx, c.from, c.to, chunk, attrs, got); err != nil {
					t.Fatal(err)
				}
			}
			pieces, bad := 0, 0
			for _, id := range ids {
				w, g := sumPieces(want[id]), sumPieces(got[id])
				pieces += len(w)
				if !reflect.DeepEqual(w, g) && bad < 10 {
					bad++
					t.Errorf("conversation %s: Go %v, SQL %v", id, g, w)
				}
			}
			t.Logf("%d conversations, %d pieces compared", len(ids), pieces)
			if pieces < 1000 {
				t.Fatalf("%d pieces, too few to compare", pieces)
			}
			for _, id := range []string{"E-late-start", "E-hour-reply", "E-complaint", "E-tie", "E-abandon", "E-before"} {
				if len(want[id]) == 0 && c.name == "horizon" {
					t.Errorf("hand-built conversation %s has no pieces", id)
				}
			}
		})
	}
}

// decodedPiece is what a piece adds to its bucket and key.
type decodedPiece struct {
	sums   [nSums]int64
	hist   map[int32]int64
	pieces int
}

// sumPieces adds up a conversation's pieces by bucket and key id.
func sumPieces(ps []int64) map[[2]int64]decodedPiece {
	out := map[[2]int64]decodedPiece{}
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		k := [2]int64{p.bucket, int64(p.key)}
		d := out[k]
		for _, w := range p.sums {
			d.sums[uint64(w)>>pieceValueBits] += w << (64 - pieceValueBits) >> (64 - pieceValueBits)
		}
		for _, w := range p.hist {
			if d.hist == nil {
				d.hist = map[int32]int64{}
			}
			d.hist[int32(w>>32)] += int64(uint32(w))
		}
		d.pieces++
		out[k] = d
	}
	return out
}

func (d decodedPiece) String() string {
	return fmt.Sprintf("{sums %v hist %v}", d.sums, d.hist)
}

// liveEdgeEvents are hand-built conversations around now, each on one
// edge of the definitions (SPEC §5).
func liveEdgeEvents(now time.Time) []schemas.Event {
	at := now.Truncate(time.Second)
	var out []schemas.Event
	n := 0
	add := func(conv string, typ schemas.EventType, off time.Duration, set func(*schemas.Event)) {
		n++
		e := schemas.Event{EventID: fmt.Sprintf("%s-%d", conv, n), SchemaVersion: 1, Type: typ, OccurredAt: at.Add(off), ConversationID: conv}
		if set != nil {
			set(&e)
		}
		out = append(out, e)
	}
	started := func(entry, region string) func(*schemas.Event) {
		return func(e *schemas.Event) {
			e.Entry, e.Region, e.Channel, e.Queue, e.BusinessLine, e.CustomerID = entry, region, "chat", "q1", "billing", "cu"
		}
	}
	said := func(role string, sentiment *float64) func(*schemas.Event) {
		return func(e *schemas.Event) {
			e.Actor, e.Sentiment = &schemas.Actor{Role: role, ID: role + "-1"}, sentiment
		}
	}
	f := func(v float64) *float64 { return &v }
	m, s := time.Minute, time.Second
	// Messages before the conversation's start, which comes later.
	add("E-late-start", schemas.MessageSent, -10*m, said("customer", f(-0.5)))
	add("E-late-start", schemas.MessageSent, -10*m+3*s, said("bot", nil))
	add("E-late-start", schemas.ConversationStarted, -9*m, started("bot", "广州"))
	add("E-late-start", schemas.ConversationClosed, -8*m, func(e *schemas.Event) { e.Resolution = "resolved" })
	// A reply an hour after the message; two starts, the earlier wins.
	add("E-hour-reply", schemas.ConversationStarted, -62*m, started("bot", "北京"))
	add("E-hour-reply", schemas.ConversationStarted, -61*m, started("agent", "上海"))
	add("E-hour-reply", schemas.MessageSent, -60*m, said("customer", f(-0.3)))
	add("E-hour-reply", schemas.MessageSent, -30*s, said("agent", nil))
	add("E-hour-reply", schemas.CSATSubmitted, -20*s, func(e *schemas.Event) { e.Score = 4 })
	add("E-hour-reply", schemas.CSATSubmitted, -10*s, func(e *schemas.Event) { e.Score = 3 })
	// A complaint with its own region and no queue of its own.
	add("E-complaint", schemas.ConversationStarted, -5*m, started("bot", "深圳"))
	add("E-complaint", schemas.ComplaintFiled, -4*m, func(e *schemas.Event) {
		e.Region, e.Category, e.Severity = "成都", "billing", "high"
	})
	add("E-complaint", schemas.MessageSent, -4*m, said("customer", nil))
	// A customer message and its reply at the same millisecond.
	add("E-tie", schemas.ConversationStarted, -3*m, started("bot", "广州"))
	// (The reply is built first: in event_id order it comes before.)
	add("E-tie", schemas.MessageSent, -2*m, said("bot", nil))
	add("E-tie", schemas.MessageSent, -2*m, said("customer", f(0.1)))
	add("E-tie", schemas.TransferRequested, -90*s, func(e *schemas.Event) { e.Reason = "customer_request" })
	add("E-tie", schemas.AgentAssigned, -90*s, said("agent", nil))
	add("E-tie", schemas.ConversationClosed, -60*s, func(e *schemas.Event) { e.Resolution = "unresolved" })
	// A transfer abandoned before the agent came, and one assigned.
	add("E-abandon", schemas.ConversationStarted, -7*m, started("bot", "杭州"))
	add("E-abandon", schemas.TransferRequested, -6*m, func(e *schemas.Event) { e.Reason = "bot_failure" })
	add("E-abandon", schemas.ConversationAbandoned, -5*m, nil)
	add("E-abandon", schemas.AgentAssigned, -4*m, said("agent", nil))
	add("E-abandon", schemas.TransferRequested, -3*m, func(e *schemas.Event) { e.Reason = "bot_failure" })
	add("E-abandon", schemas.AgentAssigned, -3*m+10*s, said("agent", nil))
	// Started before the horizon, ended in it.
	add("E-before", schemas.ConversationStarted, -80*m, started("bot", "武汉"))
	add("E-before", schemas.MessageSent, -79*m, said("bot", nil))
	add("E-before", schemas.MessageSent, -20*m, said("customer", f(-0.9)))
	add("E-before", schemas.ConversationClosed, -19*m, func(e *schemas.Event) { e.Resolution = "resolved" })
	return out
}

// BenchmarkLivePieces measures livePieces alone (no store) on a
// conversation of the demo's usual shape: a bot-entry start, six
// messages, a transfer, an assignment, a close and a CSAT, one delivery
// repeated.
func BenchmarkLivePieces(b *testing.B) {
	l := newLiveView(nil, DefaultLiveConfig())
	const from = int64(1_800_000_000_000)
	key := liveKey{"广州", "q1", "chat", "billing"}
	f := float32(-0.5)
	evs := []liveEvent{
		{id: "e1", typ: "conversation.started", ms: from + 1000},
		{id: "e2", typ: "message.sent", role: "customer", ms: from + 2000, sentiment: &f},
		{id: "e3", typ: "message.sent", role: "bot", ms: from + 3000},
		{id: "e4", typ: "message.sent", role: "customer", ms: from + 9000, sentiment: &f},
		{id: "e5", typ: "transfer.requested", ms: from + 10000},
		{id: "e6", typ: "agent.assigned", role: "agent", ms: from + 25000},
		{id: "e7", typ: "message.sent", role: "agent", ms: from + 26000},
		{id: "e8", typ: "message.sent", role: "customer", ms: from + 40000},
		{id: "e9", typ: "message.sent", role: "agent", ms: from + 45000},
		{id: "e10", typ: "conversation.closed", resolution: "resolved", ms: from + 60000},
		{id: "e11", typ: "csat.submitted", score: 4, ms: from + 61000},
		{id: "e4", typ: "message.sent", role: "customer", ms: from + 9000, sentiment: &f},
	}
	a := convAttrs{openConv: openConv{key: key, startMs: from + 1000}, entry: "bot",
		endMs: from + 60000, frMs: 2000, hfrMs: 25000, hasFR: true, hasHFR: true, hasTransfer: true}
	in := make([]liveEvent, len(evs))
	b.ReportAllocs()
	for b.Loop() {
		copy(in, evs)
		if _, err := livePieces(in, a, from, from+3_600_000, 10_000, 20_000, l.internLiveKey); err != nil {
			b.Fatal(err)
		}
	}
}
