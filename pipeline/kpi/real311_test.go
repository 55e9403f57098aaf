package kpi_test

import (
	"context"
	"encoding/csv"
	"os"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// la311Channels maps MyLA311 request sources to channels.
var la311Channels = map[string]string{
	"Call": "voice", "Voicemail": "voice", "Mobile App": "app", "Self Service": "web", "Email": "email",
}

// la311Region is the region of a request: its planning area.
func la311Region(apc string) string {
	if apc == "" {
		return "unknown"
	}
	return apc
}

// la311Events turns five days of Los Angeles 311 service requests into
// events. The mapping, per request (conversation "la-" + SRNumber):
//   - conversation.started at CreatedDate, entry "agent", region the
//     planning area (APC; "unknown" when blank), queue the request type, business line the
//     owning department (Owner), channel from RequestSource (Call and
//     Voicemail voice, Mobile App app, Self Service web, Email email, any
//     other source other);
//   - conversation.closed at ClosedDate when there is one, resolved when
//     the status is Closed, else (Cancelled, Referred Out) unresolved.
//
// Times (Los Angeles local clock, read as UTC) move by shift.
func la311Events(t *testing.T, shift time.Duration) ([]schemas.Event, [][]string, map[string]int) {
	t.Helper()
	f, err := os.Open(realData(t, "la311_2017.csv"))
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
	var evs []schemas.Event
	for _, r := range recs[1:] {
		at := func(name string) time.Time {
			v, err := time.Parse("01/02/2006 03:04:05 PM", r[col[name]])
			if err != nil {
				t.Fatalf("request %s %s: %v", r[col["SRNumber"]], name, err)
			}
			return v.Add(shift)
		}
		conv := "la-" + r[col["SRNumber"]]
		channel, ok := la311Channels[r[col["RequestSource"]]]
		if !ok {
			channel = "other"
		}
		evs = append(evs, schemas.Event{EventID: conv + "-s", SchemaVersion: 1, Type: schemas.ConversationStarted,
			ConversationID: conv, OccurredAt: at("CreatedDate"), Entry: "agent", Channel: channel,
			Region: la311Region(r[col["APC"]]), Queue: r[col["RequestType"]], BusinessLine: r[col["Owner"]]})
		if r[col["ClosedDate"]] != "" {
			res := "unresolved"
			if r[col["Status"]] == "Closed" {
				res = "resolved"
			}
			evs = append(evs, schemas.Event{EventID: conv + "-c", SchemaVersion: 1, Type: schemas.ConversationClosed,
				ConversationID: conv, OccurredAt: at("ClosedDate"), Resolution: res})
		}
	}
	for i := range evs {
		if err := schemas.Validate(&evs[i], time.Now(), schemas.Limits{}); err != nil {
			t.Fatalf("event %s: %v", evs[i].EventID, err)
		}
	}
	return evs, recs[1:], col
}

// TestRealServiceRequests loads the Los Angeles 311 sample as events
// (la311Events) and checks the counts and rates it exercises, in all and
// by region and channel, against values computed here from the CSV.
func TestRealServiceRequests(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT now64(3)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	now = now.UTC()
	// The requests were made 27–31 Dec 2017; the last closed in 2018. Move
	// the first day to 300 days ago (the last closes about 290 days later).
	first := time.Date(2017, 12, 27, 0, 0, 0, 0, time.UTC)
	from := now.Truncate(24 * time.Hour).Add(-300 * 24 * time.Hour)
	evs, rows, col := la311Events(t, from.Sub(first))
	insertEvents(t, conn, evs)

	var to time.Time
	for _, e := range evs {
		if e.OccurredAt.After(to) {
			to = e.OccurredAt
		}
	}
	if !to.Before(now) {
		t.Fatalf("the sample ends at %s, in the future", to)
	}
	to = to.Truncate(time.Hour).Add(time.Hour)
	started, closed, resolved := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	for _, r := range rows {
		ch, ok := la311Channels[r[col["RequestSource"]]]
		if !ok {
			ch = "other"
		}
		for _, k := range []string{"", "region=" + la311Region(r[col["APC"]]), "channel=" + ch} {
			started[k]++
			if r[col["ClosedDate"]] != "" {
				closed[k]++
				if r[col["Status"]] == "Closed" {
					resolved[k]++
				}
			}
		}
	}
	t.Logf("%d requests, %d closed, %d resolved", started[""], closed[""], resolved[""])

	// Read raw only: building the rollup over the ten months the closes
	// span takes minutes; TestRealTwitterSupport and TestRealCallCentre
	// check the rollup path on real data.
	raw, err := kpi.NewKPIStore(conn, kpi.KPIConfig{Now: func() time.Time { return now }, Rollup: kpi.RollupConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	w := kpi.Window{From: from, To: to}
	for _, c := range []struct {
		name string
		st   *kpi.KPIStore
	}{{"raw", raw}} {
		t.Run(c.name, func(t *testing.T) {
			check := func(k string, s kpi.Snapshot) {
				t.Helper()
				if s.ConversationsStarted != started[k] || s.ConversationsClosed != closed[k] {
					t.Errorf("%q: started, closed = %d, %d; want %d, %d", k, s.ConversationsStarted, s.ConversationsClosed, started[k], closed[k])
				}
				want := float64(resolved[k]) / float64(closed[k])
				checkRatio(t, k+" resolution_rate", s.ResolutionRate, &want)
			}
			snap, err := c.st.KPIs(ctx, w, kpi.Filters{})
			if err != nil {
				t.Fatal(err)
			}
			check("", snap)
			for _, dim := range []kpi.Dimension{kpi.DimRegion, kpi.DimChannel} {
				by, err := c.st.KPIsBy(ctx, w, kpi.Filters{}, dim)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, k := range by {
					check(string(dim)+"="+k.Key, k.Snapshot)
					n++
				}
				keys := 0
				for k := range started {
					if len(k) > len(dim) && k[:len(dim)+1] == string(dim)+"=" {
						keys++
					}
				}
				if n != keys {
					t.Errorf("by %s: %d keys, want %d", dim, n, keys)
				}
			}
		})
	}
}
