package kpi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// The hand-built day: W = [10:00, 11:00) UTC on 2026-11-22.
var (
	t10 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	w10 = kpi.Window{From: t10, To: t10.Add(time.Hour)}
)

// ev builds one event at t10+off.
func ev(id, conv string, typ schemas.EventType, off time.Duration) schemas.Event {
	return schemas.Event{EventID: id, SchemaVersion: 1, Type: typ, OccurredAt: t10.Add(off), ConversationID: conv}
}

func start(id, conv string, off time.Duration, entry, region, channel, queue, line string) schemas.Event {
	e := ev(id, conv, schemas.ConversationStarted, off)
	e.Entry, e.Region, e.Channel, e.Queue, e.BusinessLine = entry, region, channel, queue, line
	return e
}

func msg(id, conv string, off time.Duration, role, actor string, sentiment *float64) schemas.Event {
	e := ev(id, conv, schemas.MessageSent, off)
	e.Actor = &schemas.Actor{Role: role, ID: actor}
	e.Sentiment = sentiment
	return e
}

func assigned(id, conv string, off time.Duration, agent string) schemas.Event {
	e := ev(id, conv, schemas.AgentAssigned, off)
	e.Actor = &schemas.Actor{Role: "agent", ID: agent}
	return e
}

func closed(id, conv string, off time.Duration, resolution string) schemas.Event {
	e := ev(id, conv, schemas.ConversationClosed, off)
	e.Resolution = resolution
	return e
}

func csat(id, conv string, off time.Duration, score int) schemas.Event {
	e := ev(id, conv, schemas.CSATSubmitted, off)
	e.Score = score
	return e
}

func complaint(id, conv string, off time.Duration, region string) schemas.Event {
	e := ev(id, conv, schemas.ComplaintFiled, off)
	e.Region, e.Category, e.Severity = region, "billing", "high"
	return e
}

const s, m = time.Second, time.Minute

// groundTruth is the hand-built data set; see the comments of
// TestKPIsGroundTruth for what each conversation exercises.
func groundTruth() (early, main, late []schemas.Event) {
	early = []schemas.Event{
		// B's customer message arrives before B's conversation.started.
		msg("b2", "B", 10*m+5*s, "customer", "cuB", f64(0.2)),
	}
	main = []schemas.Event{
		// A: 广州 chat q1 billing, bot first, transferred, agent a1.
		start("a1", "A", 0, "bot", "广州", "chat", "q1", "billing"), // at from: inside
		msg("a2", "A", 1*s, "customer", "cuA", f64(-0.5)),
		msg("a3", "A", 3*s, "bot", "bot", nil),
		msg("a4", "A", 10*s, "customer", "cuA", f64(-0.3)), // not below -0.3
		{EventID: "a5", SchemaVersion: 1, Type: schemas.TransferRequested, OccurredAt: t10.Add(12 * s), ConversationID: "A", Reason: "customer_request"},
		assigned("a6", "A", 27*s, "a1"), // waited 15 s
		msg("a7", "A", 30*s, "agent", "a1", nil),
		closed("a8", "A", 5*m, "unresolved"),
		csat("a9", "A", 6*m, 5),
		// B: 北京 voice q2 broadband, bot first, contained.
		start("b1", "B", 10*m, "bot", "北京", "voice", "q2", "broadband"),
		msg("b3", "B", 10*m+8*s, "bot", "bot", nil),
		closed("b4", "B", 12*m, "resolved"),
		complaint("b5", "B", 12*m+30*s, "上海"), // the complaint's own region
		csat("b6", "B", 13*m, 3),
		// C: 广州 chat q1 billing, agent first; closed exactly at to.
		start("c1", "C", 20*m, "agent", "广州", "chat", "q1", "billing"),
		msg("c2", "C", 20*m+2*s, "customer", "cuC", nil),
		assigned("c3", "C", 20*m+40*s, "a2"),
		msg("c4", "C", 20*m+50*s, "agent", "a2", nil),
		closed("c5", "C", 60*m, "unresolved"), // at to: outside
		// D: 广州 app q1 billing, started before W, abandoned after transfer.
		start("d1", "D", -10*m, "bot", "广州", "app", "q1", "billing"),
		msg("d2", "D", -5*m, "customer", "cuD", f64(-0.9)),
		{EventID: "d3", SchemaVersion: 1, Type: schemas.TransferRequested, OccurredAt: t10.Add(30 * m), ConversationID: "D", Reason: "bot_unable"},
		ev("d4", "D", schemas.ConversationAbandoned, 31*m),
		// E: 北京 web q2 broadband, bot first, transferred, agent a1, open.
		start("e1", "E", 40*m, "bot", "北京", "web", "q2", "broadband"),
		{EventID: "e2", SchemaVersion: 1, Type: schemas.TransferRequested, OccurredAt: t10.Add(41 * m), ConversationID: "E", Reason: "policy"},
		assigned("e3", "E", 41*m+30*s, "a1"), // waited 30 s
		msg("e4", "E", 41*m+40*s, "agent", "a1", nil),
		msg("e5", "E", 42*m, "customer", "cuE", f64(-0.8)),
		msg("e6", "E", 42*m+5*s, "agent", "a1", nil),
		complaint("e7", "E", 45*m, "北京"),
		// F: 广州 chat q1 billing, started 1 ms before to, replied after.
		start("f1", "F", 60*m-time.Millisecond, "bot", "广州", "chat", "q1", "billing"),
		msg("f2", "F", 60*m, "customer", "cuF", f64(-1)), // at to: outside
		msg("f3", "F", 60*m+1*s, "bot", "bot", nil),
		// H: 上海 wechat q3 retail, bot first, transferred, waiting.
		start("h1", "H", 50*m, "bot", "上海", "wechat", "q3", "retail"),
		{EventID: "h2", SchemaVersion: 1, Type: schemas.TransferRequested, OccurredAt: t10.Add(51 * m), ConversationID: "H", Reason: "policy"},
	}
	// Repeated event ids, delivered again in a later insert.
	late = []schemas.Event{main[1], main[7], main[12]}
	return early, main, late
}

func newGroundTruthStore(t *testing.T) *kpi.KPIStore {
	t.Helper()
	_, conn := chtest.Start(t).Database(t)
	early, main, late := groundTruth()
	insertEvents(t, conn, early)
	insertEvents(t, conn, main)
	insertEvents(t, conn, late)
	st, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: func() time.Time { return t10.Add(90 * m) }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// want is a hand-computed snapshot.
type want struct {
	started, closed, complaints, active, waiting   uint64
	resolution, transfer, containment, abandon, sl *float64
	csatAvg, csatOK, negative                      *float64
	firstResponse, humanFirst, response, humanWait wantQ
}

func check(t *testing.T, got kpi.Snapshot, w want) {
	t.Helper()
	counts := []struct {
		name      string
		got, want uint64
	}{
		{"conversations_started", got.ConversationsStarted, w.started},
		{"conversations_closed", got.ConversationsClosed, w.closed},
		{"complaints", got.Complaints, w.complaints},
		{"active_conversations", got.ActiveConversations, w.active},
		{"waiting_for_human", got.WaitingForHuman, w.waiting},
	}
	for _, c := range counts {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	checkRatio(t, "resolution_rate", got.ResolutionRate, w.resolution)
	checkRatio(t, "transfer_rate", got.TransferRate, w.transfer)
	checkRatio(t, "bot_containment_rate", got.BotContainmentRate, w.containment)
	checkRatio(t, "abandon_rate", got.AbandonRate, w.abandon)
	checkRatio(t, "service_level", got.ServiceLevel, w.sl)
	checkRatio(t, "csat_avg", got.CSATAvg, w.csatAvg)
	checkRatio(t, "csat_satisfied_rate", got.CSATSatisfiedRate, w.csatOK)
	checkRatio(t, "negative_sentiment_rate", got.NegativeSentimentRate, w.negative)
	checkQuantile(t, "first_response_seconds", got.FirstResponseSeconds, w.firstResponse)
	checkQuantile(t, "human_first_response_seconds", got.HumanFirstResponseSeconds, w.humanFirst)
	checkQuantile(t, "response_seconds", got.ResponseSeconds, w.response)
	checkQuantile(t, "human_wait_seconds", got.HumanWaitSeconds, w.humanWait)
}

func TestKPIsGroundTruth(t *testing.T) {
	st := newGroundTruthStore(t)
	ctx := context.Background()
	cases := []struct {
		name string
		f    kpi.Filters
		want want
	}{
		{
			name: "all",
			want: want{
				// started in W: A (at from), B, C, E, F (1 ms before to), H; D started before W.
				started: 6,
				// closed in W: A, B (A's close delivered twice); C's close is at to.
				closed: 2,
				// B's (上海) and E's complaints.
				complaints: 2,
				// at 11:30: E, F, H open (C closed at 11:00, D abandoned); H waits.
				active: 3, waiting: 1,
				// closes: A unresolved, B resolved.
				resolution: f64(1.0 / 2),
				// bot-first conversations ended in W: A (transfer), B (none), D (transfer, abandoned).
				transfer: f64(2.0 / 3),
				// B alone is closed resolved with no transfer or agent.
				containment: f64(1.0 / 3),
				// D abandoned / (2 closed + 1 abandoned).
				abandon: f64(1.0 / 3),
				// transfers in W that finished: A (15 s, met), D (abandoned), E (30 s): 1/3. H unfinished.
				sl: f64(1.0 / 3),
				// scores 5 (A), 3 (B).
				csatAvg: f64(4), csatOK: f64(0.5),
				// customer messages in W with sentiment: -0.5 (A, delivered twice), -0.3 (A), 0.2 (B, before its start), -0.8 (E).
				negative: f64(2.0 / 4),
				// A 3, B 8, C 50, E 100 (agent), F 1.001: sorted 1.001 3 8 50 100.
				// avg 162.001/5; p50 = 8; p90 at rank 3.6: 50 + 0.6·50 = 80.
				firstResponse: wantQ{5, 32.4002, 8, 80},
				// A 30, C 50, E 100: avg 60, p50 50, p90 at rank 1.8: 50 + 0.8·50 = 90.
				humanFirst: wantQ{3, 60, 50, 90},
				// A 2 and 20, B 3, C 48, E 5: sorted 2 3 5 20 48; avg 78/5; p50 5; p90 20 + 0.6·28 = 36.8.
				response: wantQ{5, 15.6, 5, 36.8},
				// A 15, E 30: avg 22.5; p50 22.5; p90 15 + 0.9·15 = 28.5.
				humanWait: wantQ{2, 22.5, 22.5, 28.5},
			},
		},
		{
			name: "region 广州",
			f:    kpi.Filters{Region: "广州"},
			want: want{
				started: 3, closed: 1, complaints: 0, active: 1, waiting: 0, // A C F; A; none; F
				resolution: f64(0), transfer: f64(1), containment: f64(0), abandon: f64(1.0 / 2),
				sl: f64(1.0 / 2), csatAvg: f64(5), csatOK: f64(1), negative: f64(1.0 / 2),
				firstResponse: wantQ{3, (3 + 50 + 1.001) / 3.0, 3, 3 + 0.8*47}, // 1.001 3 50
				humanFirst:    wantQ{2, 40, 40, 30 + 0.9*20},                   // 30 50
				response:      wantQ{3, 70 / 3.0, 20, 20 + 0.8*28},             // 2 20 48
				humanWait:     wantQ{1, 15, 15, 15},
			},
		},
		{
			name: "region 上海: the complaint's own region",
			f:    kpi.Filters{Region: "上海"},
			want: want{started: 1, complaints: 1, active: 1, waiting: 1}, // H; B's complaint
		},
		{
			name: "channel voice: a message before its start inherits the start's channel",
			f:    kpi.Filters{Channel: "voice"},
			want: want{
				started: 1, closed: 1, complaints: 1, // B, B's complaint (conversation channel)
				resolution: f64(1), transfer: f64(0), containment: f64(1), abandon: f64(0),
				csatAvg: f64(3), csatOK: f64(0), negative: f64(0),
				firstResponse: wantQ{1, 8, 8, 8},
				response:      wantQ{1, 3, 3, 3},
			},
		},
		{
			name: "queue q2",
			f:    kpi.Filters{Queue: "q2"},
			want: want{
				started: 2, closed: 1, complaints: 2, active: 1, // B E; B; B's and E's; E
				resolution: f64(1), transfer: f64(0), containment: f64(1), abandon: f64(0),
				sl: f64(0), csatAvg: f64(3), csatOK: f64(0), negative: f64(1.0 / 2),
				firstResponse: wantQ{2, 54, 54, 8 + 0.9*92}, // 8 100
				humanFirst:    wantQ{1, 100, 100, 100},
				response:      wantQ{2, 4, 4, 3 + 0.9*2}, // 3 5
				humanWait:     wantQ{1, 30, 30, 30},
			},
		},
		{
			name: "business line retail",
			f:    kpi.Filters{BusinessLine: "retail"},
			want: want{started: 1, active: 1, waiting: 1}, // H
		},
		{
			name: "agent a1: conversations the agent handled",
			f:    kpi.Filters{Agent: "a1"},
			want: want{
				started: 2, closed: 1, complaints: 1, active: 1, // A E; A; E's; E
				resolution: f64(0), transfer: f64(1), containment: f64(0), abandon: f64(0),
				sl: f64(1.0 / 2), csatAvg: f64(5), csatOK: f64(1), negative: f64(2.0 / 3),
				firstResponse: wantQ{2, 51.5, 51.5, 3 + 0.9*97},  // 3 100
				humanFirst:    wantQ{2, 65, 65, 30 + 0.9*70},     // 30 100
				response:      wantQ{3, 9, 5, 5 + 0.8*15},        // 2 5 20
				humanWait:     wantQ{2, 22.5, 22.5, 15 + 0.9*15}, // 15 30
			},
		},
		{
			name: "nothing matches: every ratio null",
			f:    kpi.Filters{Region: "广州", Channel: "voice"},
			want: want{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := st.KPIs(ctx, w10, c.f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, got, c.want)
			if got.Filters != c.f || !got.From.Equal(w10.From) || !got.To.Equal(w10.To) {
				t.Errorf("snapshot echoes %v %v %+v", got.From, got.To, got.Filters)
			}
		})
	}
}

func TestKPIsByAndTimeseries(t *testing.T) {
	st := newGroundTruthStore(t)
	ctx := context.Background()
	rows, err := st.KPIsBy(ctx, w10, kpi.Filters{}, kpi.DimRegion)
	if err != nil {
		t.Fatal(err)
	}
	// started: 北京 B E; 上海 H; 广州 A C F. complaints: 北京 E's; 上海 B's.
	wantStarted := map[string]uint64{"北京": 2, "上海": 1, "广州": 3}
	wantComplaints := map[string]uint64{"北京": 1, "上海": 1, "广州": 0}
	if len(rows) != 3 {
		t.Fatalf("got %d regions, want 3: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.ConversationsStarted != wantStarted[r.Key] || r.Complaints != wantComplaints[r.Key] {
			t.Errorf("region %s: started %d complaints %d, want %d %d", r.Key, r.ConversationsStarted, r.Complaints, wantStarted[r.Key], wantComplaints[r.Key])
		}
	}
	agents, err := st.KPIsBy(ctx, w10, kpi.Filters{}, kpi.DimAgent)
	if err != nil {
		t.Fatal(err)
	}
	// a1 handled A and E (A's transfer met, E's not); a2 handled C.
	if len(agents) != 2 || agents[0].Key != "a1" || agents[1].Key != "a2" {
		t.Fatalf("agents = %+v", agents)
	}
	checkRatio(t, "a1 service_level", agents[0].ServiceLevel, f64(0.5))
	checkQuantile(t, "a2 human_first_response_seconds", agents[1].HumanFirstResponseSeconds, wantQ{1, 50, 50, 50})
	if _, err := st.KPIsBy(ctx, w10, kpi.Filters{}, "city"); err == nil {
		t.Error("unknown dimension accepted")
	}

	series, err := st.Timeseries(ctx, "conversations_started", 30*m, w10, kpi.Filters{}, kpi.DimNone)
	if err != nil {
		t.Fatal(err)
	}
	// [10:00,10:30): A B C; [10:30,11:00): E H F.
	if len(series) != 1 || len(series[0].Points) != 2 || *series[0].Points[0].Value != 3 || *series[0].Points[1].Value != 3 {
		t.Fatalf("started series = %+v", series)
	}
	series, err = st.Timeseries(ctx, "human_wait_seconds.avg", 30*m, w10, kpi.Filters{}, kpi.DimNone)
	if err != nil {
		t.Fatal(err)
	}
	// A 15 s in the first half hour; E 30 s in the second.
	if v := series[0].Points; v[0].Value == nil || *v[0].Value != 15 || v[1].Value == nil || *v[1].Value != 30 {
		t.Fatalf("human wait series = %+v", series)
	}
	series, err = st.Timeseries(ctx, "transfer_rate", 30*m, w10, kpi.Filters{}, kpi.DimRegion)
	if err != nil {
		t.Fatal(err)
	}
	// 广州: A transferred (ended 10:05), D transferred (ended 10:31): 1, 1. 北京: B (10:12) not: 0, then null.
	got := map[string][2]*float64{}
	for _, se := range series {
		got[se.Key] = [2]*float64{se.Points[0].Value, se.Points[1].Value}
	}
	if g := got["广州"]; g[0] == nil || *g[0] != 1 || g[1] == nil || *g[1] != 1 {
		t.Errorf("广州 transfer series = %v", g)
	}
	if g := got["北京"]; g[0] == nil || *g[0] != 0 || g[1] != nil {
		t.Errorf("北京 transfer series = %v", g)
	}
	if _, err := st.Timeseries(ctx, "active_conversations", m, w10, kpi.Filters{}, kpi.DimNone); err == nil {
		t.Error("gauge time series accepted")
	}
	// Trends: several metrics from one computation, point for point what
	// Timeseries gives for each.
	names := []string{"conversations_started", "human_wait_seconds.avg", "first_response_seconds", "transfer_rate", "service_level"}
	trends, _, err := st.Trends(ctx, names, 10*m, w10, kpi.Filters{Region: "广州"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		one, err := st.Timeseries(ctx, name, 10*m, w10, kpi.Filters{Region: "广州"}, kpi.DimNone)
		if err != nil {
			t.Fatal(err)
		}
		if len(one) != 1 || !reflect.DeepEqual(one[0].Points, trends[name]) {
			t.Errorf("Trends[%s] = %v, Timeseries = %+v", name, trends[name], one)
		}
	}
	if _, _, err := st.Trends(ctx, []string{"service_level", "waiting_for_human"}, m, w10, kpi.Filters{}); err == nil {
		t.Error("gauge trend accepted")
	}
	active, waiting, err := st.Now(ctx, kpi.Filters{Region: "上海"})
	if err != nil || active != 1 || waiting != 1 {
		t.Errorf("Now(上海) = %d, %d, %v; want 1, 1 (H)", active, waiting, err)
	}
}

func TestSnapshotJSONNames(t *testing.T) {
	b, err := json.Marshal(kpi.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, metric := range kpi.Metrics {
		if _, ok := m[metric.Name]; !ok {
			t.Errorf("snapshot JSON lacks %s", metric.Name)
		}
	}
	for _, k := range []string{"from", "to", "filters"} {
		if _, ok := m[k]; !ok {
			t.Errorf("snapshot JSON lacks %s", k)
		}
	}
	if v := m["resolution_rate"]; v != nil {
		t.Errorf("empty resolution_rate = %v, want null", v)
	}
}
