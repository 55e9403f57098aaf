package kpi_test

import (
	"context"
	"encoding/csv"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// call is one row of technion_1day.csv that the test maps to events.
type call struct {
	entry, vruExit, qStart, qExit, serStart, serExit time.Time // zero: none
	queued, served, agentOutcome                     bool
}

// technionEvents turns a day of the Technion bank call centre into
// events. The mapping, per row (call), conversation "tq-<row>":
//   - conversation.started at vru_entry, entry "bot" (the voice menu),
//     channel voice, region "bank", queue the call type (PS, NW, ...);
//   - a call that queued (q_start set): transfer.requested
//     (customer_request) at q_start;
//   - a call served (ser_start set): agent.assigned at ser_start by the
//     server, conversation.closed at ser_exit, resolved when the outcome is
//     AGENT, else unresolved;
//   - a call that queued and was not served: conversation.abandoned at
//     q_exit;
//   - a call neither queued nor served: conversation.closed unresolved at
//     vru_exit (it ended in the menu);
//   - PHANTOM rows (no real call) are left out.
//
// Clock times before the call's entry are on the next day. The day is moved
// to day.
func technionEvents(t *testing.T, day time.Time) ([]schemas.Event, []call) {
	t.Helper()
	f, err := os.Open(realData(t, "technion_1day.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var (
		evs   []schemas.Event
		calls []call
	)
	for n, r := range recs[1:] {
		if r[col["outcome"]] == "PHANTOM" {
			continue
		}
		clock := func(name string, after time.Time) time.Time {
			v := r[col[name]]
			if v == "0:00:00" {
				return time.Time{}
			}
			d, err := time.Parse("15:04:05", v)
			if err != nil {
				t.Fatalf("row %d %s: %v", n+2, name, err)
			}
			at := day.Add(time.Duration(d.Hour())*time.Hour + time.Duration(d.Minute())*time.Minute + time.Duration(d.Second())*time.Second)
			if !after.IsZero() && at.Before(after.Add(-time.Hour)) {
				at = at.Add(24 * time.Hour)
			}
			return at
		}
		var c call
		c.entry = clock("vru_entry", time.Time{})
		c.vruExit, c.qStart, c.qExit = clock("vru_exit", c.entry), clock("q_start", c.entry), clock("q_exit", c.entry)
		c.serStart, c.serExit = clock("ser_start", c.entry), clock("ser_exit", c.entry)
		c.queued, c.served, c.agentOutcome = !c.qStart.IsZero(), !c.serStart.IsZero(), r[col["outcome"]] == "AGENT"
		calls = append(calls, c)
		conv := "tq-" + strconv.Itoa(n+2)
		ev := func(suffix string, typ schemas.EventType, at time.Time) schemas.Event {
			return schemas.Event{EventID: conv + suffix, SchemaVersion: 1, Type: typ, ConversationID: conv, OccurredAt: at}
		}
		s := ev("-s", schemas.ConversationStarted, c.entry)
		s.Entry, s.Channel, s.Region, s.Queue = "bot", "voice", "bank", r[col["type"]]
		evs = append(evs, s)
		if c.queued {
			q := ev("-q", schemas.TransferRequested, c.qStart)
			q.Reason = "customer_request"
			evs = append(evs, q)
		}
		switch {
		case c.served:
			a := ev("-a", schemas.AgentAssigned, c.serStart)
			a.Actor = &schemas.Actor{Role: "agent", ID: r[col["server"]]}
			cl := ev("-c", schemas.ConversationClosed, c.serExit)
			cl.Resolution = "unresolved"
			if c.agentOutcome {
				cl.Resolution = "resolved"
			}
			evs = append(evs, a, cl)
		case c.queued:
			evs = append(evs, ev("-x", schemas.ConversationAbandoned, c.qExit))
		default:
			cl := ev("-c", schemas.ConversationClosed, c.vruExit)
			cl.Resolution = "unresolved"
			evs = append(evs, cl)
		}
	}
	for i := range evs {
		if err := schemas.Validate(&evs[i], time.Now(), schemas.Limits{}); err != nil {
			t.Fatalf("event %s: %v", evs[i].EventID, err)
		}
	}
	return evs, calls
}

// TestRealCallCentre loads a day of the Technion bank call centre as
// events (technionEvents) and checks the metrics it exercises against
// values computed here from the CSV, read raw and through the rollup.
func TestRealCallCentre(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT now64(3)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	now = now.UTC()
	day := now.Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
	evs, calls := technionEvents(t, day)
	insertEvents(t, conn, evs)

	// The definitions (SPEC §5), from the calls. Every call starts and
	// ends on the day or the night after it: the window is two days.
	const sl = 20 * time.Second
	var closed, resolved, abandoned, transferred, finished, met uint64
	var waits []float64
	for _, c := range calls {
		switch {
		case c.served:
			closed++
			if c.agentOutcome {
				resolved++
			}
		case c.queued:
			abandoned++
		default:
			closed++
		}
		if !c.queued {
			continue
		}
		transferred++
		switch {
		case c.served && !c.serStart.Before(c.qStart):
			w := c.serStart.Sub(c.qStart)
			waits = append(waits, w.Seconds())
			finished++
			if w <= sl {
				met++
			}
		case !c.served:
			finished++
		}
	}
	t.Logf("%d calls: %d closed (%d resolved), %d abandoned, %d queued, %d waits", len(calls), closed, resolved, abandoned, transferred, len(waits))
	ended := closed + abandoned
	ratio := func(a, b uint64) *float64 { v := float64(a) / float64(b); return &v }

	cfg := kpi.KPIConfig{Now: func() time.Time { return now }, ServiceLevelThreshold: sl,
		Rollup: kpi.RollupConfig{Settle: time.Second, Horizon: 5 * 24 * time.Hour}}
	rawCfg := cfg
	rawCfg.Rollup.Disabled = true
	raw, err := kpi.NewKPIStore(conn, rawCfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kpi.NewKPIStore(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kpi.NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Rollup.Settle)
	if res, err := b.Pass(ctx, nil); err != nil || res.Built == 0 {
		t.Fatalf("rollup pass: %+v, %v", res, err)
	}
	w := kpi.Window{From: day, To: day.Add(48 * time.Hour)}
	for _, c := range []struct {
		name string
		st   *kpi.KPIStore
	}{{"raw", raw}, {"rollup", st}} {
		t.Run(c.name, func(t *testing.T) {
			snap, err := c.st.KPIs(ctx, w, kpi.Filters{Region: "bank"})
			if err != nil {
				t.Fatal(err)
			}
			if snap.ConversationsStarted != uint64(len(calls)) || snap.ConversationsClosed != closed {
				t.Errorf("started, closed = %d, %d; want %d, %d", snap.ConversationsStarted, snap.ConversationsClosed, len(calls), closed)
			}
			checkRatio(t, "resolution_rate", snap.ResolutionRate, ratio(resolved, closed))
			checkRatio(t, "abandon_rate", snap.AbandonRate, ratio(abandoned, ended))
			checkRatio(t, "transfer_rate", snap.TransferRate, ratio(transferred, ended))
			checkRatio(t, "bot_containment_rate", snap.BotContainmentRate, ratio(0, ended))
			checkRatio(t, "service_level", snap.ServiceLevel, ratio(met, finished))
			checkQuantile(t, "human_wait_seconds", snap.HumanWaitSeconds, distribution(waits))
			checkQuantile(t, "first_response_seconds", snap.FirstResponseSeconds, wantQ{})
		})
	}
}
