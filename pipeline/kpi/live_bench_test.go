package kpi

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/schemas"
)

// BenchmarkLiveRefresh measures one refresh of the live view at the
// demo's peak rate (20 conversations a second, about 200 events a second,
// late and repeated deliveries included): the view holds the last hour,
// then each iteration stores the next 500 ms of traffic, as ingest would,
// and times the refresh that takes it in. Its cost should follow what
// arrived, not what the view holds.
func BenchmarkLiveRefresh(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	ctx := context.Background()
	now := storeNow(b, conn)
	const step = 500 * time.Millisecond
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.Floor, cfg.LogEvery = now.Add(-2*time.Hour), 20, 1, 0
	cfg.Faults = simulate.Faults{LateShare: 0.02, MaxLateness: 90 * time.Second, DuplicateShare: 0.01, InFastForward: true}
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	end := now.Add(time.Duration(b.N+20) * step)
	var past, future []schemas.Event
	if err := sim.Generate(now.Add(-66*time.Minute), end, func(e schemas.Event) error {
		if e.OccurredAt.Before(now) {
			past = append(past, e)
		} else {
			future = append(future, e)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	insertChunks(b, conn, past, 100_000)
	// The hour of history is merged before the clock starts: the engine's
	// merges would otherwise be counted as the refreshes' CPU.
	for _, table := range []string{"events", "conversations", "event_ids"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	st, err := NewKPIStore(conn, KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	l := st.live
	// The whole horizon is loaded before the clock starts: the refreshes
	// of a loading view read the older pieces too (10k conversations a
	// refresh here), which are not what this measures.
	liveLoaded(b, st)
	b.Logf("%d events stored before, %d arrive over %d refreshes", len(past), len(future), b.N)
	recomputed := int64(0)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// The next step of traffic arrives when its time comes.
		until := now.Add(time.Duration(i+1) * step)
		n := 0
		for n < len(future) && future[n].OccurredAt.Before(until) {
			n++
		}
		if n > 0 {
			insertChunks(b, conn, future[:n], n)
			future = future[n:]
		}
		time.Sleep(time.Until(until))
		before, cpu0 := l.recomputed.Load(), processCPU(b)
		b.StartTimer()
		if err := l.update(ctx, func() {}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += processCPU(b) - cpu0
		recomputed += l.recomputed.Load() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(recomputed)/float64(b.N), "convs/op")
	// The engine runs in this process: its CPU counts here, and on a busy
	// machine this is steadier than the time per refresh.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkLiveCompute measures the live view's answer to the windows its
// consumers ask most, over the last hour of the demo's peak traffic
// (BenchmarkLiveRefresh's): the wall's tiles (15 minutes, every filter,
// with the "now" gauges, asked every second), a rule's breakdown by region
// over 15 minutes, and the wall's hour of trends by minute. Each iteration
// computes anew, as after a change to the view, but tiles_15m_kept: the
// tiles asked again of an unchanged view, as the rules and the wall ask
// between two changes. It also times the view's load of that hour.
func BenchmarkLiveCompute(b *testing.B) {
	_, conn := chtest.Start(b).Database(b)
	ctx := context.Background()
	now := storeNow(b, conn)
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.Floor, cfg.LogEvery = now.Add(-2*time.Hour), 20, 1, 0
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	var past []schemas.Event
	if err := sim.Generate(now.Add(-66*time.Minute), now, func(e schemas.Event) error {
		past = append(past, e)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	insertChunks(b, conn, past, 100_000)
	st, err := NewKPIStore(conn, KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	l := st.live
	liveLoaded(b, st)
	// The view's first load of that hour (a start-up, a restart): what it
	// allocates is what the collector then works through.
	b.Run("load_1h", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := newLiveView(st, l.cfg).load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	quarter := Window{From: now.Add(-15 * time.Minute), To: now}
	hour := Window{From: time.UnixMilli(l.floor(now.Add(-time.Hour).UnixMilli())).UTC(), To: now}
	for _, c := range []struct {
		name       string
		w          Window
		dim        Dimension
		step       time.Duration
		withGauges bool
		kept       bool // asked again of an unchanged view
	}{
		{"tiles_15m", quarter, "", 0, true, false},
		{"tiles_15m_kept", quarter, "", 0, true, true},
		{"by_region_15m", quarter, DimRegion, 0, false, false},
		{"trends_1h_by_minute", hour, "", time.Minute, false, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			if !l.covers(c.w, Filters{}, c.dim, c.step) {
				b.Fatal("the live view does not cover the window")
			}
			b.ReportAllocs()
			for b.Loop() {
				if !c.kept {
					// As if the view had changed: a computation, not a kept answer.
					l.mu.Lock()
					l.version++
					l.mu.Unlock()
				}
				if cells, _, _ := l.compute(c.w, Filters{}, c.dim, c.step, c.withGauges); len(cells) == 0 {
					b.Fatal("no cells")
				}
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveRecomputeLarge measures what a refresh of the live view
// reads for the conversations it recomputes, their rows of the
// conversations rollup (liveOpenSQL) and their events over the horizon
// (liveEventsSQL), and computes their pieces, for 20, 100
// and 500 conversations of the last five minutes, over 30 days of history
// that ends now (chtest.Generate: 6.1M conversations, about 50M events;
// COCKPIT_BENCH_CONVERSATIONS overrides): what each conversation a
// refresh takes in costs in a store that has run for a month, where the
// conversations it names are spread over the whole conversations table.
// It needs COCKPIT_BENCH_LARGE=1 (minutes of setup).
func BenchmarkLiveRecomputeLarge(b *testing.B) {
	convs := chtest.LargeConversations(b)
	_, conn := chtest.Start(b).Database(b)
	ctx := context.Background()
	now := storeNow(b, conn)
	events := chtest.Generate(b, conn, chtest.Traffic{From: now.Add(-30 * 24 * time.Hour), To: now, Conversations: convs, DuplicateShare: 0.02})
	chtest.Settle(b, conn)
	var ids []string
	if err := conn.QueryRow(ctx, `SELECT groupArray(conversation_id) FROM (
		SELECT DISTINCT conversation_id FROM events WHERE occurred_at >= now64(3) - INTERVAL 5 MINUTE LIMIT 500)`).Scan(&ids); err != nil {
		b.Fatal(err)
	}
	if len(ids) < 500 {
		b.Fatalf("%d conversations in the last five minutes, want 500", len(ids))
	}
	st, err := NewKPIStore(conn, KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	l := st.live
	from := l.floor(now.Add(-l.cfg.Horizon).UnixMilli())
	to := l.floor(now.Add(liveAhead).UnixMilli())
	for _, n := range []int{20, 100, 500} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := clickhouse.Parameters{"ids": schemas.StringsParam(ids[:n])}
			for b.Loop() {
				attrs, err := l.readOpen(ctx, liveOpenChangedSQL, p, false)
				if err != nil {
					b.Fatal(err)
				}
				pieces := map[string][]int64{}
				if err := l.recompute(ctx, from, to, ids[:n], attrs, pieces); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events), "events")
		})
	}
}
