package kpi

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestWindowQueryPathsAgree runs the same windows through the combined
// single-pass query (short windows) and the separate queries (long
// windows) and requires identical snapshots, overall and by region, on
// random traffic with duplicates and late starts.
func TestWindowQueryPathsAgree(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	rng := rand.New(rand.NewPCG(11, 12))
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	regions := []string{"广州", "北京", "上海"}
	queues := []string{"q1", "q2"}
	var evs []schemas.Event
	add := func(e schemas.Event) { e.SchemaVersion = 1; evs = append(evs, e) }
	for c := 0; c < 300; c++ {
		conv := fmt.Sprintf("c%03d", c)
		at := base.Add(time.Duration(rng.IntN(7200)) * time.Second)
		start := schemas.Event{EventID: conv + "-s", Type: schemas.ConversationStarted, OccurredAt: at, ConversationID: conv,
			Channel: "chat", Region: regions[rng.IntN(3)], Queue: queues[rng.IntN(2)], Entry: []string{"bot", "agent"}[rng.IntN(2)]}
		add(start)
		tt := at
		for m := 0; m < 1+rng.IntN(4); m++ {
			tt = tt.Add(time.Duration(1+rng.IntN(60)) * time.Second)
			role := []string{"customer", "bot", "agent"}[rng.IntN(3)]
			s := rng.Float64()*2 - 1
			add(schemas.Event{EventID: fmt.Sprintf("%s-m%d", conv, m), Type: schemas.MessageSent, OccurredAt: tt, ConversationID: conv,
				Actor: &schemas.Actor{Role: role, ID: "a" + fmt.Sprint(rng.IntN(3))}, Sentiment: &s})
		}
		if rng.IntN(3) == 0 {
			tt = tt.Add(time.Duration(rng.IntN(30)) * time.Second)
			add(schemas.Event{EventID: conv + "-t", Type: schemas.TransferRequested, OccurredAt: tt, ConversationID: conv, Reason: "bot_unable"})
			if rng.IntN(4) > 0 {
				tt = tt.Add(time.Duration(rng.IntN(90)) * time.Second)
				add(schemas.Event{EventID: conv + "-a", Type: schemas.AgentAssigned, OccurredAt: tt, ConversationID: conv, Actor: &schemas.Actor{Role: "agent", ID: "a1"}})
			}
		}
		tt = tt.Add(time.Duration(rng.IntN(300)) * time.Second)
		switch rng.IntN(4) {
		case 0:
			add(schemas.Event{EventID: conv + "-x", Type: schemas.ConversationAbandoned, OccurredAt: tt, ConversationID: conv})
		default:
			add(schemas.Event{EventID: conv + "-c", Type: schemas.ConversationClosed, OccurredAt: tt, ConversationID: conv, Resolution: []string{"resolved", "unresolved"}[rng.IntN(2)]})
			if rng.IntN(3) == 0 {
				add(schemas.Event{EventID: conv + "-q", Type: schemas.CSATSubmitted, OccurredAt: tt.Add(time.Minute), ConversationID: conv, Score: 1 + rng.IntN(5)})
			}
		}
		if rng.IntN(10) == 0 {
			add(schemas.Event{EventID: conv + "-p", Type: schemas.ComplaintFiled, OccurredAt: tt, ConversationID: conv, Region: regions[rng.IntN(3)]})
		}
	}
	evs = append(evs, evs[:40]...) // duplicates
	if err := ingest.Insert(context.Background(), conn, evs); err != nil {
		t.Fatal(err)
	}
	st, err := NewKPIStore(conn, KPIConfig{Now: func() time.Time { return base.Add(3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	saved := combinedWindowMax
	defer func() { combinedWindowMax = saved }()
	for _, w := range []Window{{From: base, To: base.Add(2 * time.Hour)}, {From: base.Add(30 * time.Minute), To: base.Add(45 * time.Minute)}} {
		snap := func(limit time.Duration) (string, string) {
			combinedWindowMax = limit
			a, err := st.KPIs(ctx, w, Filters{})
			if err != nil {
				t.Fatal(err)
			}
			by, err := st.KPIsBy(ctx, w, Filters{Queue: "q1"}, DimRegion)
			if err != nil {
				t.Fatal(err)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(by)
			return string(ja), string(jb)
		}
		combinedA, combinedB := snap(6 * time.Hour)
		if !strings.Contains(combinedA, `"conversations_started":`) || strings.Contains(combinedA, `"conversations_started":0`) || len(combinedB) < 50 {
			t.Fatalf("window %v: nothing to compare: %s %s", w, combinedA, combinedB)
		}
		separateA, separateB := snap(0)
		if combinedA != separateA {
			t.Errorf("window %v: KPIs differ\ncombined %s\nseparate %s", w, combinedA, separateA)
		}
		if combinedB != separateB {
			t.Errorf("window %v: KPIsBy differ\ncombined %s\nseparate %s", w, combinedB, separateB)
		}
	}
}
