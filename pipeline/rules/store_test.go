package rules_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
	"github.com/cockpit-cs/cockpit/pipeline/spike"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestClickHouseSpikeHistoryAgrees checks the store-backed complaint
// history against the in-memory one on the same complaints, with repeated
// event_ids (which must count once) and ranges that overlap.
func TestClickHouseSpikeHistoryAgrees(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	regions := []string{"广州", "北京", "上海", "成都", "杭州"}
	var events []schemas.Event
	var recs []spike.Record
	for i := 0; i < 600; i++ {
		at := base.Add(time.Duration(rng.IntN(72*3600)) * time.Second)
		region := regions[rng.IntN(len(regions))]
		e := schemas.Event{EventID: fmt.Sprintf("cp-%d", i), SchemaVersion: 1, Type: schemas.ComplaintFiled,
			OccurredAt: at, ConversationID: fmt.Sprintf("c-%d", i), Region: region}
		events = append(events, e)
		recs = append(recs, spike.Record{Region: region, At: at})
	}
	// A second delivery of 40 complaints, and unrelated events.
	events = append(events, events[:40]...)
	events = append(events, schemas.Event{EventID: "other", SchemaVersion: 1, Type: schemas.ConversationAbandoned,
		OccurredAt: base.Add(time.Hour), ConversationID: "x", Region: "广州"})
	insertEvents(t, conn, events)

	ch := rules.NewClickHouseSpikeHistory(conn)
	mem := spike.NewMemoryHistory(recs, base)
	ranges := []spike.Range{
		{From: base, To: base.Add(72 * time.Hour)},
		{From: base.Add(5 * time.Hour), To: base.Add(6 * time.Hour)},
		{From: base.Add(5*time.Hour + 30*time.Minute), To: base.Add(7 * time.Hour)},
		{From: base.Add(100 * time.Hour), To: base.Add(101 * time.Hour)},
	}
	ctx := context.Background()
	got, err := ch.SpikeCounts(ctx, ranges)
	if err != nil {
		t.Fatal(err)
	}
	want, err := mem.SpikeCounts(ctx, ranges)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ranges {
		for _, r := range regions {
			if got[i][r] != want[i][r] {
				t.Errorf("range %d region %s: store %v, memory %v", i, r, got[i][r], want[i][r])
			}
		}
	}
	var total float64
	for _, c := range got[0] {
		total += c
	}
	if total != 600 {
		t.Errorf("complaints in the whole range = %v, want 600 (duplicates once, other types none)", total)
	}
	start, err := ch.SpikeDataStart(ctx)
	if err != nil || start.IsZero() || start.Before(base) {
		t.Errorf("data start = %v, %v", start, err)
	}
}

// TestRulesOverKPIStore evaluates threshold rules against the real store:
// the numbers rules judge are the KPI store's.
func TestRulesOverKPIStore(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	now := time.Now().UTC().Truncate(time.Second)
	var events []schemas.Event
	for i := 0; i < 6; i++ {
		events = append(events, schemas.Event{EventID: fmt.Sprintf("gz-%d", i), SchemaVersion: 1, Type: schemas.ComplaintFiled,
			OccurredAt: now.Add(-time.Duration(i+1) * time.Minute), ConversationID: fmt.Sprintf("g%d", i), Region: "广州"})
	}
	events = append(events, schemas.Event{EventID: "bj-1", SchemaVersion: 1, Type: schemas.ComplaintFiled,
		OccurredAt: now.Add(-2 * time.Minute), ConversationID: "b1", Region: "北京"})
	// An old complaint outside the window.
	events = append(events, schemas.Event{EventID: "bj-old", SchemaVersion: 1, Type: schemas.ComplaintFiled,
		OccurredAt: now.Add(-3 * time.Hour), ConversationID: "b2", Region: "北京"})
	insertEvents(t, conn, events)
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.ParseRules([]byte(`rules:
  - {name: many_complaints, kind: threshold, metric: complaints, window: 15m, by: region, op: ">=", value: 5, severity: warning}
  - {name: any_complaint, kind: threshold, metric: complaints, window: 15m, op: ">", value: 0, severity: info}
`))
	if err != nil {
		t.Fatal(err)
	}
	src := rules.NewKPIRuleSource(kpis)
	e, err := rules.NewEvaluator(src, rules.NewSpikeRules(rules.NewClickHouseSpikeHistory(conn)), rs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.Evaluate(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("candidates = %+v", cs)
	}
	byRule := map[string]rules.Candidate{}
	for _, c := range cs {
		byRule[c.Rule] = c
	}
	if c := byRule["many_complaints"]; c.Labels["region"] != "广州" || c.Value != 6 {
		t.Errorf("many_complaints = %+v", c)
	}
	if c := byRule["any_complaint"]; c.Value != 7 {
		t.Errorf("any_complaint = %+v (7 complaints in the last 15 min)", c)
	}
}
