package kpi

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// rollupTraffic is generated traffic over [base, base+days): conversations
// that span hour boundaries, every event kind, and what a test can deliver
// late: for some conversations the start, for others the replies, and
// events with an old occurred_at for conversations long over.
type rollupTraffic struct {
	early, late []schemas.Event
}

func genRollupTraffic(seed uint64, base time.Time, hours, convs int) rollupTraffic {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	regions := []string{"广州", "北京", "上海", "成都"}
	queues := []string{"q1", "q2", "q3"}
	channels := []string{"chat", "voice", "app"}
	lines := []string{"billing", "broadband"}
	var tr rollupTraffic
	span := time.Duration(hours) * time.Hour
	for c := 0; c < convs; c++ {
		conv := fmt.Sprintf("r%05d", c)
		late := rng.IntN(10) // 0: late start, 1: late replies, 2: an old event long after
		var evs, lateEvs []schemas.Event
		add := func(e schemas.Event, isLate bool) {
			e.SchemaVersion, e.ConversationID = 1, conv
			if isLate {
				lateEvs = append(lateEvs, e)
			} else {
				evs = append(evs, e)
			}
		}
		// Starts cluster around hour ends so conversations cross them.
		at := base.Add(time.Duration(rng.Int64N(int64(span - 2*time.Hour))))
		if rng.IntN(3) == 0 {
			at = at.Truncate(time.Hour).Add(time.Hour - time.Duration(rng.IntN(300))*time.Second)
		}
		entry := []string{"bot", "bot", "agent"}[rng.IntN(3)]
		add(schemas.Event{EventID: conv + "-s", Type: schemas.ConversationStarted, OccurredAt: at, Entry: entry,
			Region: regions[rng.IntN(len(regions))], Queue: queues[rng.IntN(len(queues))],
			Channel: channels[rng.IntN(len(channels))], BusinessLine: lines[rng.IntN(len(lines))]}, late == 0)
		tt := at
		for m := 0; m < 1+rng.IntN(6); m++ {
			tt = tt.Add(time.Duration(1+rng.IntN(400)) * time.Second)
			s := rng.Float64()*2 - 1
			add(schemas.Event{EventID: fmt.Sprintf("%s-c%d", conv, m), Type: schemas.MessageSent, OccurredAt: tt,
				Actor: &schemas.Actor{Role: "customer", ID: "cu" + conv}, Sentiment: &s}, false)
			if rng.IntN(5) > 0 {
				role, id := "bot", "bot"
				if entry == "agent" || rng.IntN(3) == 0 {
					role, id = "agent", fmt.Sprintf("a%d", rng.IntN(4))
				}
				add(schemas.Event{EventID: fmt.Sprintf("%s-r%d", conv, m), Type: schemas.MessageSent,
					OccurredAt: tt.Add(time.Duration(rng.IntN(900000)) * time.Millisecond),
					Actor:      &schemas.Actor{Role: role, ID: id}}, late == 1)
			}
		}
		if rng.IntN(3) == 0 {
			tt = tt.Add(time.Duration(rng.IntN(60)) * time.Second)
			add(schemas.Event{EventID: conv + "-t", Type: schemas.TransferRequested, OccurredAt: tt, Reason: "bot_unable"}, false)
			if rng.IntN(4) > 0 {
				add(schemas.Event{EventID: conv + "-a", Type: schemas.AgentAssigned, OccurredAt: tt.Add(time.Duration(rng.IntN(60000)) * time.Millisecond),
					Actor: &schemas.Actor{Role: "agent", ID: fmt.Sprintf("a%d", rng.IntN(4))}}, late == 1)
			}
		}
		tt = tt.Add(time.Duration(rng.IntN(1800)) * time.Second)
		if rng.IntN(5) == 0 {
			add(schemas.Event{EventID: conv + "-x", Type: schemas.ConversationAbandoned, OccurredAt: tt}, false)
		} else {
			add(schemas.Event{EventID: conv + "-e", Type: schemas.ConversationClosed, OccurredAt: tt,
				Resolution: []string{"resolved", "unresolved"}[rng.IntN(2)]}, false)
			if rng.IntN(3) == 0 {
				add(schemas.Event{EventID: conv + "-q", Type: schemas.CSATSubmitted, OccurredAt: tt.Add(time.Minute), Score: 1 + rng.IntN(5)}, late == 2)
			}
		}
		if rng.IntN(8) == 0 {
			add(schemas.Event{EventID: conv + "-p", Type: schemas.ComplaintFiled, OccurredAt: tt, Region: regions[rng.IntN(len(regions))],
				Category: "billing", Severity: "high"}, late == 2)
		}
		// Out of order within a delivery.
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		tr.early = append(tr.early, evs...)
		tr.late = append(tr.late, lateEvs...)
	}
	return tr
}

// insertChunks stores events in several inserts, as ingest batches do.
func insertChunks(t testing.TB, conn driver.Conn, evs []schemas.Event, chunk int) {
	t.Helper()
	for i := 0; i < len(evs); i += chunk {
		if err := ingest.Insert(context.Background(), conn, evs[i:min(i+chunk, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
}

// storeNow is the store's clock (UTC), the one ingested_at is written
// with.
func storeNow(tb testing.TB, conn driver.Conn) time.Time {
	tb.Helper()
	var now time.Time
	if err := conn.QueryRow(context.Background(), "SELECT now64(3)").Scan(&now); err != nil {
		tb.Fatal(err)
	}
	return now.UTC()
}

// snapshots is everything a window answers, as JSON: KPIs for the
// filters, KPIsBy a dimension and an hourly time series.
func snapshots(t *testing.T, st *KPIStore, w Window, f Filters, dim Dimension) string {
	t.Helper()
	ctx := context.Background()
	a, err := st.KPIs(ctx, w, f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.KPIsBy(ctx, w, f, dim)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal([]any{a, b})
	return string(j)
}

// TestRollupAgreesWithRawPath builds the hourly rollup over generated
// days of traffic (duplicates, out-of-order deliveries, conversations
// across hour boundaries) and requires every number of random windows,
// filters and breakdowns to be identical with and without it: counts,
// sums, ratios and averages, and p50/p90 too, since both paths fill the
// same histograms. Then late events arrive (starts after their
// messages, replies hours late, events with an old occurred_at) and a
// batch is delivered twice; the changed hours must be read raw until the
// builder has rebuilt them, and agree again afterwards.
func TestRollupAgreesWithRawPath(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	// 50 hours hold at least one whole UTC day.
	const hours = 50
	base := now.UTC().Truncate(time.Hour).Add(-(hours + 2) * time.Hour)
	tr := genRollupTraffic(7, base, hours, 800)
	insertChunks(t, conn, tr.early, 2000)
	insertChunks(t, conn, tr.early[:300], 300) // delivered again
	t.Logf("%d events, %d held back as late", len(tr.early), len(tr.late))

	cfg := KPIConfig{Now: func() time.Time { return now }, Rollup: RollupConfig{Settle: time.Second, Horizon: 4 * 24 * time.Hour}}
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
	// Two builders, as two instances would have (one builder runs one
	// pass at a time).
	builders := make([]*RollupBuilder, 2)
	for i := range builders {
		if builders[i], err = NewRollupBuilder(conn, cfg, nil, nil); err != nil {
			t.Fatal(err)
		}
		// A budget of statements small enough that most hours are built
		// in parts (rollupPartSQL), the rest a few hours at a time.
		builders[i].budget = 120
	}
	b := builders[0]
	time.Sleep(cfg.Rollup.Settle)
	// Both at once: the builds are idempotent, and neither adds up the
	// other's rows.
	var wg sync.WaitGroup
	results := make([]PassResult, 2)
	errs := make([]error, 2)
	for i, ib := range builders {
		wg.Go(func() { results[i], errs[i] = ib.Pass(ctx, nil) })
	}
	wg.Wait()
	t.Logf("passes: %+v", results)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	// Whichever read the state first built every hour; the other built
	// what was not recorded yet when it looked.
	if built := results[0].Built + results[1].Built; built < hours {
		t.Fatalf("the first passes built %d hours, want at least %d", built, hours)
	}
	var parted, whole int64
	if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT toInt64(uniqExactIf(hour, mask >= %[1]d)), toInt64(uniqExactIf(hour, mask = %[2]d)) - uniqExactIf(hour, mask >= %[1]d) FROM kpi_hourly`, rollupPartMask, rollupFullMask)).Scan(&parted, &whole); err != nil {
		t.Fatal(err)
	}
	if parted == 0 || whole == 0 {
		t.Fatalf("%d hours built in parts, %d in one statement: want both", parted, whole)
	}

	rng := rand.New(rand.NewPCG(3, 4))
	filters := []Filters{{}, {Region: "广州"}, {Queue: "q2"}, {Channel: "voice", BusinessLine: "billing"},
		{Region: "北京", Queue: "q1", Channel: "chat", BusinessLine: "broadband"}, {Agent: "a1"}}
	dims := []Dimension{DimRegion, DimQueue, DimChannel, DimBusinessLine, DimAgent}
	type probe struct {
		w   Window
		f   Filters
		dim Dimension
	}
	var probes []probe
	for i := 0; i < 9; i++ {
		from := base.Add(time.Duration(rng.Int64N(int64(hours * time.Hour))))
		to := from.Add(time.Duration(rng.Int64N(int64(24*time.Hour))) + 2*time.Hour)
		probes = append(probes, probe{Window{From: from, To: to}, filters[i%len(filters)], dims[i%len(dims)]})
	}
	// Whole days and hours, and the whole data set.
	probes = append(probes,
		probe{Window{From: base, To: base.Add(hours * time.Hour)}, Filters{}, DimRegion},
		probe{Window{From: base.Add(-time.Hour), To: base.Add(hours * time.Hour)}, Filters{Queue: "q3", BusinessLine: "billing"}, DimQueue},
		probe{Window{From: base.Add(5 * time.Hour), To: base.Add(17 * time.Hour)}, Filters{Region: "上海"}, DimChannel})

	compare := func(stage string, wantRollup bool) {
		t.Helper()
		used, usedDays := 0, 0
		for _, p := range probes {
			hs, ds, _, _, err := st.split(ctx, p.w, p.f, p.dim, 0)
			if err != nil {
				t.Fatal(err)
			}
			used += len(hs) + 24*len(ds)
			usedDays += len(ds)
			got, want := snapshots(t, st, p.w, p.f, p.dim), snapshots(t, raw, p.w, p.f, p.dim)
			if got != want {
				t.Errorf("%s: window %s–%s %+v by %s:\nrollup %s\nraw    %s", stage, p.w.From.Format(time.RFC3339Nano), p.w.To.Format(time.RFC3339Nano), p.f, p.dim, got, want)
			}
		}
		if wantRollup && (used == 0 || usedDays == 0) {
			t.Fatalf("%s: windows used %d hours and %d days of the rollup", stage, used, usedDays)
		}
		// Hourly and 3-hourly series over the same data.
		w := Window{From: base.Add(90 * time.Minute), To: base.Add(20 * time.Hour)}
		for _, step := range []time.Duration{3 * time.Hour, 90 * time.Minute} {
			for _, metric := range []string{"response_seconds.p90", "transfer_rate"} {
				a, err := st.Timeseries(ctx, metric, step, w, Filters{}, DimQueue)
				if err != nil {
					t.Fatal(err)
				}
				b, err := raw.Timeseries(ctx, metric, step, w, Filters{}, DimQueue)
				if err != nil {
					t.Fatal(err)
				}
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				if string(ja) != string(jb) {
					t.Errorf("%s: %s every %s differs:\nrollup %s\nraw    %s", stage, metric, step, ja, jb)
				}
			}
		}
	}
	compare("built", true)

	// Late events: starts after their messages, late replies and
	// assignments, csat and complaints for conversations long over; and
	// a batch delivered again.
	insertChunks(t, conn, tr.late, 500)
	insertChunks(t, conn, tr.late[:100], 100)
	res, err := b.Pass(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Marked == 0 {
		t.Fatal("late events marked no hour")
	}
	// Marked and (unless the machine is slow) not settled yet: the
	// changed hours are read raw.
	compare("late, marked", false)
	time.Sleep(cfg.Rollup.Settle)
	res2, err := b.Pass(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Built+res2.Built == 0 {
		t.Fatal("no hour rebuilt after late events")
	}
	compare("rebuilt", true)
	// Rebuilt hours are whole under FINAL: no key of the hour twice.
	var dup uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM (SELECT hour, mask, region, queue, channel, business_line, count() AS n
		FROM kpi_hourly FINAL GROUP BY ALL HAVING n > 1)`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d keys appear more than once under FINAL", dup)
	}
}

// TestRollupSplit checks which hours a window takes from the rollup.
func TestRollupSplit(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	st, err := NewKPIStore(conn, KPIConfig{Rollup: RollupConfig{Settle: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	h0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	recordSpan := func(h time.Time, span uint8, asOf time.Time) {
		t.Helper()
		if err := conn.Exec(ctx, "INSERT INTO kpi_hourly_builds (hour, sl_ms, span, build, as_of, rows) VALUES (?, 20000, ?, ?, ?, 0)",
			h, span, uint64(asOf.UnixMicro()), asOf); err != nil {
			t.Fatal(err)
		}
	}
	record := func(h time.Time, asOf time.Time) { recordSpan(h, 1, asOf) }
	for i := 0; i < 6; i++ {
		record(h0.Add(time.Duration(i)*time.Hour), h0.Add(time.Duration(i+1)*time.Hour+2*time.Minute))
	}
	record(h0.Add(6*time.Hour), h0.Add(7*time.Hour+30*time.Second)) // built before it settled
	// Day 1 (hours 24–47) is built, its hours and then the day; day 2
	// (hours 48–71) too, but hour 50 was rebuilt after the day.
	for i := 24; i < 72; i++ {
		record(h0.Add(time.Duration(i)*time.Hour), h0.Add(72*time.Hour))
	}
	recordSpan(h0.Add(24*time.Hour), 24, h0.Add(73*time.Hour))
	recordSpan(h0.Add(48*time.Hour), 24, h0.Add(73*time.Hour))
	record(h0.Add(50*time.Hour), h0.Add(74*time.Hour))
	// Hour 3 changed after its build.
	if err := conn.Exec(ctx, "INSERT INTO kpi_hourly_dirty (hour, changed_at) VALUES (?, ?)", h0.Add(3*time.Hour), h0.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	hm := func(hs ...int) []time.Time {
		var out []time.Time
		for _, h := range hs {
			out = append(out, h0.Add(time.Duration(h)*time.Hour))
		}
		return out
	}
	at := func(h int, m int) time.Time { return h0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	cases := []struct {
		name      string
		w         Window
		f         Filters
		dim       Dimension
		step      time.Duration
		wantHours []time.Time
		wantRaw   []Window
	}{
		{name: "edges and a changed hour", w: Window{From: at(0, 30), To: at(7, 10)},
			wantHours: hm(1, 2, 4, 5), wantRaw: []Window{{at(0, 30), at(1, 0)}, {at(3, 0), at(4, 0)}, {at(6, 0), at(7, 10)}}},
		{name: "aligned", w: Window{From: at(1, 0), To: at(3, 0)}, wantHours: hm(1, 2)},
		{name: "inside one hour", w: Window{From: at(1, 5), To: at(1, 55)}, wantRaw: []Window{{at(1, 5), at(1, 55)}}},
		{name: "agent filter", w: Window{From: at(1, 0), To: at(3, 0)}, f: Filters{Agent: "a1"}, wantRaw: []Window{{at(1, 0), at(3, 0)}}},
		{name: "agent breakdown", w: Window{From: at(1, 0), To: at(3, 0)}, dim: DimAgent, wantRaw: []Window{{at(1, 0), at(3, 0)}}},
		{name: "steps under an hour", w: Window{From: at(1, 0), To: at(3, 0)}, step: 10 * time.Minute, wantRaw: []Window{{at(1, 0), at(3, 0)}}},
		{name: "steps of 90m", w: Window{From: at(0, 0), To: at(6, 0)}, step: 90 * time.Minute,
			wantHours: hm(0, 2, 5), wantRaw: []Window{{at(1, 0), at(2, 0)}, {at(3, 0), at(5, 0)}}},
	}
	days := []struct {
		name     string
		w        Window
		step     time.Duration
		wantDays []time.Time
	}{
		{name: "a clean day", w: Window{From: at(23, 30), To: at(48, 0)}, wantDays: hm(24)},
		{name: "a day with an hour rebuilt after it", w: Window{From: at(48, 0), To: at(72, 0)}},
		{name: "a day across steps", w: Window{From: at(12, 0), To: at(48, 0)}, step: 24 * time.Hour},
	}
	// Steps of 90 minutes over day 1: every third hour straddles a step,
	// eight raw stretches, read as at most four.
	hours, _, raw, _, err := st.split(ctx, Window{From: at(24, 0), To: at(48, 0)}, Filters{}, DimNone, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	covered := time.Duration(len(hours)) * time.Hour
	for i, r := range raw {
		covered += r.To.Sub(r.From)
		for _, h := range hours {
			if h.Before(r.To) && r.From.Before(h.Add(time.Hour)) {
				t.Errorf("hour %s overlaps raw %v", h, r)
			}
		}
		if i > 0 && r.From.Before(raw[i-1].To) {
			t.Errorf("raw stretches overlap: %v", raw)
		}
	}
	if len(raw) != maxRawStretches || covered != 24*time.Hour || len(hours) == 0 {
		t.Errorf("90m steps: hours %v, raw %v (cover %s)", hours, raw, covered)
	}
	for _, c := range days {
		t.Run(c.name, func(t *testing.T) {
			hours, days, raw, _, err := st.split(ctx, c.w, Filters{}, DimNone, c.step)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(days, c.wantDays, time.Time.Equal) {
				t.Errorf("days %v, want %v", days, c.wantDays)
			}
			// Whatever the day rows do not cover is hours or raw.
			covered := time.Duration(len(days))*24*time.Hour + time.Duration(len(hours))*time.Hour
			for _, r := range raw {
				covered += r.To.Sub(r.From)
			}
			if covered != c.w.To.Sub(c.w.From) {
				t.Errorf("days %v, hours %v and raw %v cover %s of %s", days, hours, raw, covered, c.w.To.Sub(c.w.From))
			}
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hours, _, raw, _, err := st.split(ctx, c.w, c.f, c.dim, c.step)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(hours, c.wantHours, time.Time.Equal) {
				t.Errorf("hours %v, want %v", hours, c.wantHours)
			}
			if !slices.EqualFunc(raw, c.wantRaw, func(a, b Window) bool { return a.From.Equal(b.From) && a.To.Equal(b.To) }) {
				t.Errorf("raw %v, want %v", raw, c.wantRaw)
			}
		})
	}
}

// TestBuildVersion: a later build has a higher version, and builds that
// start in the same millisecond get different ones.
func TestBuildVersion(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	if buildVersion(at.Add(time.Millisecond)) <= buildVersion(at) {
		t.Error("a build a millisecond later has no higher version")
	}
	seen := map[uint64]bool{}
	for range 100 {
		seen[buildVersion(at)] = true
	}
	// 100 draws of 20 random bits: a repeat is rare, two are rarer still.
	if len(seen) < 99 {
		t.Errorf("100 builds in one millisecond got %d versions", len(seen))
	}
}

// TestRollupEmptyDays: a day none of whose hours holds a row is recorded
// as built without a build query (a young deployment's horizon is mostly
// such days); a day with rows gets its day rows and is read from them.
func TestRollupEmptyDays(t *testing.T) {
	store := chtest.Start(t)
	_, conn := store.Database(t)
	ctx := context.Background()
	now := storeNow(t, conn)
	yesterday := now.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	tr := genRollupTraffic(11, yesterday.Add(3*time.Hour), 6, 60)
	insertChunks(t, conn, tr.early, 1000)
	cfg := KPIConfig{Now: func() time.Time { return now }, Rollup: RollupConfig{Settle: time.Second, Horizon: 30 * 24 * time.Hour}}
	b, err := NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Rollup.Settle)
	statements := store.Statements()
	if _, err := b.Pass(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The busy hours' and day's builds and the records of the rest, not
	// three statements for each of some 29 empty days.
	if n := store.Statements() - statements; n > 40 {
		t.Errorf("the first pass over 30 days with one busy day took %d statements", n)
	} else {
		t.Logf("the first pass took %d statements", n)
	}
	type day struct {
		day           time.Time
		rows, records uint64
	}
	rows, err := conn.Query(ctx, `SELECT b.hour, ifNull(r.n, 0), b.rows FROM (
            SELECT hour, argMax(rows, as_of) AS rows FROM kpi_hourly_builds WHERE span = 24 GROUP BY hour) AS b
        LEFT JOIN (SELECT hour, count() AS n FROM kpi_hourly WHERE mask >= 16 GROUP BY hour) AS r ON b.hour = r.hour
        ORDER BY b.hour`)
	if err != nil {
		t.Fatal(err)
	}
	var days []day
	for rows.Next() {
		var d day
		if err := rows.Scan(&d.day, &d.rows, &d.records); err != nil {
			t.Fatal(err)
		}
		days = append(days, d)
	}
	rows.Close()
	// The first whole day from the horizon's first hour: that hour's own
	// day when it is midnight (the first hour of each UTC day).
	first := now.Add(-cfg.Rollup.Horizon).Truncate(time.Hour)
	if day := first.Truncate(24 * time.Hour); !day.Equal(first) {
		first = day.Add(24 * time.Hour)
	}
	var want int
	for d := first; !d.Add(24 * time.Hour).After(now.Add(-cfg.Rollup.Settle).Truncate(time.Hour)); d = d.Add(24 * time.Hour) {
		want++
	}
	if len(days) != want || want < 4 {
		t.Fatalf("%d days recorded as built, want every whole day of the horizon (%d): %+v", len(days), want, days)
	}
	for _, d := range days {
		busy := d.day.UTC().Equal(yesterday)
		switch {
		case busy && (d.rows == 0 || d.records != d.rows):
			t.Errorf("the day with events %s: %d day rows stored, %d recorded", d.day.Format(time.DateOnly), d.rows, d.records)
		case !busy && (d.rows != 0 || d.records != 0):
			t.Errorf("an empty day %s: %d day rows stored, %d recorded", d.day.Format(time.DateOnly), d.rows, d.records)
		}
	}
	// A second pass finds every day clean and builds none again.
	var before uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM kpi_hourly_builds WHERE span = 24").Scan(&before); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pass(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var after uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM kpi_hourly_builds WHERE span = 24").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("a second pass recorded %d more day builds", after-before)
	}
}

// TestRollupWaitsForSettle: events stored for an hour already built leave
// it waiting for Settle; the builder's next pass is due when the first
// waiting hour has settled, not at every interval in between (after a
// burst of traffic that was a change scan and two inserts every 10 s for
// Settle, 3 minutes, of an otherwise idle process).
func TestRollupWaitsForSettle(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	cfg := KPIConfig{Rollup: RollupConfig{Settle: 3 * time.Second, Horizon: 48 * time.Hour}}
	b, err := NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pass(ctx, nil); err != nil {
		t.Fatal(err)
	}
	now := storeNow(t, conn)
	tr := genRollupTraffic(5, now.UTC().Truncate(time.Hour).Add(-5*time.Hour), 3, 20)
	insertChunks(t, conn, tr.early, 1000)

	res, err := b.Pass(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	if res.Pending == 0 || res.Next.IsZero() || res.Next.Before(last) || res.Next.After(last.Add(cfg.Rollup.Settle)) {
		t.Fatalf("after events for a built hour: pending %d, next %s (now %s, settle %s)", res.Pending, res.Next, last, cfg.Rollup.Settle)
	}
	sameHour := func() bool {
		return time.Now().Add(-cfg.Rollup.Settle).Truncate(time.Hour).Equal(last.Add(-cfg.Rollup.Settle).Truncate(time.Hour))
	}
	if b.due(last, res.Pending, res.Next) && sameHour() {
		t.Error("a pass is due while the only pending hour waits for its changes to settle")
	}
	time.Sleep(time.Until(res.Next))
	if !b.due(last, res.Pending, res.Next) {
		t.Error("no pass is due once the waiting hour has settled")
	}
	res, err = b.Pass(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pending != 0 || res.Built == 0 || !res.Next.IsZero() {
		t.Errorf("the pass after the hour settled: built %d, pending %d, next %s", res.Built, res.Pending, res.Next)
	}
}

// TestRollupChunks cuts the hours to build into statements: consecutive
// hours of one month, at most ChunkHours of them and at most buildEvents
// events, newest first; an hour holding more is read in parts of at most
// buildEvents, up to rollupMaxParts.
func TestRollupChunks(t *testing.T) {
	b := &RollupBuilder{cfg: RollupConfig{ChunkHours: 3}, budget: buildEvents}
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }
	hours := []time.Time{
		at(30, 17), at(30, 18), at(30, 19), at(30, 20), // 4 quiet hours: 3 + 1
		at(30, 22), // not after 20: a new run
		at(30, 23), // with 22; the next month begins after it
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), // over the budget alone: not with 00
		time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), // two of these fit, not three
		time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), // three parts
		time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), // no more than rollupMaxParts
	}
	events := map[time.Time]uint64{
		hours[7]:  buildEvents + 1,
		hours[8]:  buildEvents / 2,
		hours[9]:  buildEvents / 2,
		hours[10]: 1,
		hours[11]: 3 * buildEvents,
		hours[12]: 100 * buildEvents,
	}
	var got []string
	for _, c := range b.chunks(hours, events) {
		got = append(got, fmt.Sprintf("%s+%d/%d", c.hours[0].Format("02T15"), len(c.hours), c.parts))
	}
	want := []string{"01T06+1/16", "01T05+1/3", "01T04+1/1", "01T02+2/1", "01T01+1/2", "01T00+1/1", "30T22+2/1", "30T20+1/1", "30T17+3/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("chunks\n got %v\nwant %v", got, want)
	}
}

// TestRollupLateVisibleInsert: a builder's scan reads the events stored
// since the last scan, and from further back only when the count of
// events stored in a second of the overlap (Settle) changed since the
// last scan counted it. An insert that became visible after the last
// scan though its ingested_at is before that scan's end still marks its
// hours; a scan that finds no such second reads from the last one's end;
// a pass that counts nothing stored since then makes no scan. It fails
// when the overlap is not looked at (the late insert unmarked), when it is
// read whole every time, and when a pass scans with nothing to find.
func TestRollupLateVisibleInsert(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	cfg := KPIConfig{Rollup: RollupConfig{Settle: time.Minute, Horizon: 48 * time.Hour}}
	b, err := NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pass := func() {
		t.Helper()
		if _, err := b.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	marked := func(h time.Time) bool {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM kpi_hourly_dirty WHERE hour = {h:DateTime('UTC')}",
			clickhouse.Named("h", h.Format(time.DateTime))).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	pass() // the first scan: the position and the overlap's counts
	hour := storeNow(t, conn).Truncate(time.Hour)
	h1, h2, h3 := hour.Add(-5*time.Hour), hour.Add(-7*time.Hour), hour.Add(-9*time.Hour)
	insertChunks(t, conn, []schemas.Event{{EventID: "a", SchemaVersion: 1, Type: schemas.ConversationStarted,
		OccurredAt: h1.Add(10 * time.Minute), ConversationID: "ca", Channel: "chat", Entry: "bot"}}, 1)
	before := b.scannedTo
	pass()
	if !marked(h1) {
		t.Fatalf("an event stored since the last scan did not mark its hour %s", h1)
	}
	if want := before.Truncate(time.Second); !b.scanFrom.Equal(want) {
		t.Fatalf("the scan read from %s, want from the last scan's end %s", b.scanFrom, want)
	}

	// Visible only now, stored (by its ingested_at) 20 s before the last
	// scan ended: an insert that took that long.
	scanned := b.scannedTo
	late := scanned.Add(-20 * time.Second)
	if err := conn.Exec(ctx, `INSERT INTO events (event_id, type, occurred_at, conversation_id, channel, entry, schema_version, ingested_at)
		VALUES ('b', 'conversation.started', {at:DateTime64(3, 'UTC')}, 'cb', 'chat', 'bot', 1, {stored:DateTime64(3, 'UTC')})`,
		clickhouse.Named("at", h2.Add(10*time.Minute).Format(chTime)), clickhouse.Named("stored", late.Format(chTime))); err != nil {
		t.Fatal(err)
	}
	pass()
	if !marked(h2) {
		t.Fatalf("an insert visible after the scan that its ingested_at precedes did not mark its hour %s", h2)
	}
	if b.scanFrom.After(late) {
		t.Fatalf("the scan read from %s, after the late insert's ingested_at %s", b.scanFrom, late)
	}
	pass()
	if !b.scanFrom.IsZero() {
		t.Fatalf("with nothing stored since the last scan, a scan still read from %s", b.scanFrom)
	}
	insertChunks(t, conn, []schemas.Event{{EventID: "c", SchemaVersion: 1, Type: schemas.ConversationStarted,
		OccurredAt: h3.Add(10 * time.Minute), ConversationID: "cc", Channel: "chat", Entry: "bot"}}, 1)
	before = b.scannedTo
	pass()
	if want := before.Truncate(time.Second); !b.scanFrom.Equal(want) {
		t.Fatalf("with nothing late the scan read from %s, want from the last scan's end %s", b.scanFrom, want)
	}
	if !marked(h3) {
		t.Fatalf("an event stored after a pass that found nothing did not mark its hour %s", h3)
	}
}
