package kpi

import (
	"context"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestLateFollowersCount: a reply, an assignment days after the message
// or the transfer still counts (SPEC §5: no cut-off on "followed by"), the
// same on the combined raw query, the three narrower raw queries and the
// hourly rollup; and a reply delivered days later re-marks and rebuilds
// the hour of its message.
func TestLateFollowersCount(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	base := now.Truncate(time.Hour).Add(-5 * 24 * time.Hour)
	var evs []schemas.Event
	add := func(conv, id string, typ schemas.EventType, at time.Duration, role string) {
		e := schemas.Event{EventID: id, SchemaVersion: 1, Type: typ, ConversationID: conv, OccurredAt: base.Add(at)}
		switch typ {
		case schemas.ConversationStarted:
			e.Entry, e.Region, e.Channel = "bot", "R", "chat"
		case schemas.MessageSent, schemas.AgentAssigned:
			e.Actor = &schemas.Actor{Role: role, ID: role + "1"}
		case schemas.TransferRequested:
			e.Reason = "customer_request"
		}
		evs = append(evs, e)
	}
	day := 24 * time.Hour
	// L: answered three days later, assigned two days later.
	add("L", "L0", schemas.ConversationStarted, 10*time.Minute, "")
	add("L", "L1", schemas.MessageSent, 20*time.Minute, "customer")
	add("L", "L2", schemas.MessageSent, 20*time.Minute+3*day, "agent")
	add("L", "L3", schemas.TransferRequested, 30*time.Minute, "")
	add("L", "L4", schemas.AgentAssigned, 30*time.Minute+2*day, "agent")
	// N: answered and assigned at once.
	add("N", "N0", schemas.ConversationStarted, 35*time.Minute, "")
	add("N", "N1", schemas.MessageSent, 40*time.Minute, "customer")
	add("N", "N2", schemas.MessageSent, 40*time.Minute+30*time.Second, "bot")
	add("N", "N3", schemas.TransferRequested, 45*time.Minute, "")
	add("N", "N4", schemas.AgentAssigned, 45*time.Minute+10*time.Second, "agent")
	// W: a customer message whose reply comes later still (below).
	add("W", "W0", schemas.ConversationStarted, 48*time.Minute, "")
	add("W", "W1", schemas.MessageSent, 50*time.Minute, "customer")
	insertChunks(t, conn, evs, len(evs))

	cfg := KPIConfig{Now: func() time.Time { return now }, Rollup: RollupConfig{Settle: time.Second, Horizon: 6 * day}}
	st, err := NewKPIStore(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rawCfg := cfg
	rawCfg.Rollup.Disabled = true
	raw, err := NewKPIStore(conn, rawCfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Rollup.Settle)
	if _, err := b.Pass(ctx, nil); err != nil {
		t.Fatal(err)
	}

	hour := Window{From: base, To: base.Add(time.Hour)}
	check := func(stage string, respN uint64, respAvg float64) {
		t.Helper()
		for _, c := range []struct {
			name   string
			st     *KPIStore
			w      Window
			rollup bool
		}{
			{"raw, combined", raw, hour, false},
			{"raw, three queries", raw, Window{From: base.Add(-3 * time.Hour), To: base.Add(5 * time.Hour)}, false},
			{"rollup", st, Window{From: base.Add(-time.Hour), To: base.Add(2 * time.Hour)}, true},
		} {
			if c.rollup {
				hs, ds, _, _, err := c.st.split(ctx, c.w, Filters{}, DimNone, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(hs)+len(ds) == 0 {
					t.Errorf("%s, %s: the window read no rollup hour", stage, c.name)
				}
			}
			snap, err := c.st.KPIs(ctx, c.w, Filters{Region: "R"})
			if err != nil {
				t.Fatal(err)
			}
			r, w := snap.ResponseSeconds, snap.HumanWaitSeconds
			if r.Count != respN || r.Avg == nil || *r.Avg != respAvg {
				t.Errorf("%s, %s: response_seconds = %d, %v; want %d, %v", stage, c.name, r.Count, r.Avg, respN, respAvg)
			}
			if wantAvg := (2*86400 + 10) / 2.0; w.Count != 2 || w.Avg == nil || *w.Avg != wantAvg {
				t.Errorf("%s, %s: human_wait_seconds = %d, %v; want 2, %v", stage, c.name, w.Count, w.Avg, wantAvg)
			}
			if snap.ServiceLevel == nil || *snap.ServiceLevel != 0.5 {
				t.Errorf("%s, %s: service_level = %v, want 0.5", stage, c.name, snap.ServiceLevel)
			}
		}
	}
	check("stored", 2, (3*86400+30)/2.0)

	// W's reply arrives now, five days after its message: the hour of the
	// message is marked, read raw, rebuilt, and counts it.
	reply := schemas.Event{EventID: "W2", SchemaVersion: 1, Type: schemas.MessageSent, ConversationID: "W",
		OccurredAt: now.Add(-time.Minute).Truncate(time.Millisecond), Actor: &schemas.Actor{Role: "agent", ID: "agent1"}}
	insertChunks(t, conn, []schemas.Event{reply}, 1)
	wMs := reply.OccurredAt.Sub(base.Add(50 * time.Minute)).Milliseconds()
	want := (float64(3*86400*1000+30*1000) + float64(wMs)) / 3 / 1000
	if _, err := b.Pass(ctx, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Rollup.Settle)
	if res, err := b.Pass(ctx, nil); err != nil || res.Built == 0 {
		t.Fatalf("pass after the late reply: %+v, %v; want the hour rebuilt", res, err)
	}
	check("late reply", 3, want)
}

// TestEarliestStartWins: a conversation with several conversation.started
// takes every attribute from the earliest one (by occurred_at, then
// event_id), never a mix of columns from different starts.
func TestEarliestStartWins(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	base := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	st := func(id, conv string, at time.Duration, region, queue, channel, line string) schemas.Event {
		return schemas.Event{EventID: id, SchemaVersion: 1, Type: schemas.ConversationStarted, ConversationID: conv,
			OccurredAt: base.Add(at), Entry: "bot", Region: region, Queue: queue, Channel: channel, BusinessLine: line}
	}
	// M: the earlier start has the smaller region but the larger queue.
	// T: two starts at the same time; e1 comes first.
	insertChunks(t, conn, []schemas.Event{st("m2", "M", time.Minute, "B", "a", "voice", "x")}, 1)
	insertChunks(t, conn, []schemas.Event{
		st("m1", "M", 0, "A", "z", "chat", "y"),
		st("e2", "T", 0, "X", "b", "app", "y"),
		st("e1", "T", 0, "Y", "a", "web", "x"),
	}, 3)
	kpi, err := NewKPIStore(conn, KPIConfig{Now: func() time.Time { return base.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	w := Window{From: base.Add(-time.Hour), To: base.Add(time.Hour)}
	for _, c := range []struct {
		f    Filters
		want uint64
	}{
		{Filters{Region: "A", Queue: "z", Channel: "chat", BusinessLine: "y"}, 2},
		{Filters{Region: "B"}, 0},
		{Filters{Queue: "a", Region: "A"}, 0},
		{Filters{Region: "Y", Queue: "a", Channel: "web", BusinessLine: "x"}, 2},
		{Filters{Region: "Y", Queue: "b"}, 0},
		{Filters{Region: "X"}, 0},
	} {
		for _, win := range []Window{w, {From: base.Add(-10 * time.Hour), To: base.Add(time.Hour)}} {
			snap, err := kpi.KPIs(ctx, win, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if snap.ConversationsStarted != c.want {
				t.Errorf("window %s: %+v: conversations_started = %d, want %d", win.To.Sub(win.From), c.f, snap.ConversationsStarted, c.want)
			}
		}
	}
}
