package rules_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// fiftyRules is a rule set of 50 rules as a large centre might run: every
// watchable metric over several windows and scopes, trends, and a spike.
func fiftyRules() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	n := 0
	add := func(format string, args ...any) {
		n++
		fmt.Fprintf(&b, "  - {name: r%02d, severity: warning, "+format+"}\n", append([]any{n}, args...)...)
	}
	type m struct{ name, stat, op, value string }
	metrics := []m{
		{"first_response_seconds", "p90", ">", "30"}, {"human_first_response_seconds", "p90", ">", "60"},
		{"response_seconds", "p90", ">", "45"}, {"human_wait_seconds", "p90", ">", "60"},
		{"service_level", "", "<", "0.8"}, {"abandon_rate", "", ">", "0.08"}, {"transfer_rate", "", ">", "0.35"},
		{"resolution_rate", "", "<", "0.6"}, {"csat_avg", "", "<", "3.5"}, {"negative_sentiment_rate", "", ">", "0.3"},
	}
	scopes := []string{"", "queue", "region", "business_line"}
	windows := []string{"5m", "15m"}
	for _, mt := range metrics {
		for i, by := range scopes {
			if n >= 44 {
				break
			}
			stat := ""
			if mt.stat != "" {
				stat = "stat: " + mt.stat + ", "
			}
			byS := ""
			if by != "" {
				byS = "by: " + by + ", "
			}
			add("kind: threshold, metric: %s, %s%swindow: %s, op: '%s', value: %s, min_volume: 10", mt.name, stat, byS, windows[i%2], mt.op, mt.value)
		}
	}
	add("kind: threshold, metric: complaints, by: region, window: 15m, op: '>', value: 20")
	add("kind: threshold, metric: conversations_started, window: 5m, op: '<', value: 10")
	add("kind: threshold, metric: csat_satisfied_rate, by: queue, window: 30m, op: '<', value: 0.6, min_volume: 20")
	add("kind: threshold, metric: bot_containment_rate, by: channel, window: 15m, op: '<', value: 0.4, min_volume: 30")
	for _, mt := range []string{"resolution_rate", "transfer_rate", "service_level", "csat_satisfied_rate", "bot_containment_rate"} {
		add("kind: trend, metric: %s, by: business_line, window: 10m, windows: 3, min_drop: 0.05, min_volume: 30", mt)
	}
	add("kind: spike, spike_windows: [5m, 15m, 30m]")
	return b.String()
}

// BenchmarkRuleTick measures one evaluation of 50 rules over 30 days of
// simulated history that ends now (COCKPIT_BENCH_PEAK conversations/s at
// peak, default 0.5), as the product evaluates every tick: through the
// KPI store's live view (every rule window is within its horizon) and the
// ClickHouse complaint history, one tick a second. The view is loaded by
// a first tick before the timing, as a running process has it loaded; no
// events arrive meanwhile (BenchmarkFreshness counts the product's ticks
// while 50k events/s do). events-30m says how busy the longest window
// was: the history follows the day, and ends at the hour the benchmark
// runs.
func BenchmarkRuleTick(b *testing.B) {
	peak := 0.5
	if v, err := strconv.ParseFloat(os.Getenv("COCKPIT_BENCH_PEAK"), 64); err == nil && v > 0 {
		peak = v
	}
	to := time.Now().UTC()
	from := to.Add(-30 * 24 * time.Hour)
	conn, n := simulated(b, from, to, peak)
	b.Logf("stored %d events over 30 days in %s", n, time.Since(to).Round(time.Second))
	var recent uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events WHERE occurred_at >= now64(3) - INTERVAL 30 MINUTE").Scan(&recent); err != nil {
		b.Fatal(err)
	}
	rs, err := rules.ParseRules([]byte(fiftyRules()))
	if err != nil {
		b.Fatal(err)
	}
	if len(rs.Rules) != 50 {
		b.Fatalf("%d rules, want 50", len(rs.Rules))
	}
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := rules.NewEvaluator(rules.NewKPIRuleSource(kpis.Live()), rules.NewSpikeRules(rules.NewClickHouseSpikeHistory(conn)), rs, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	tick := func() (time.Duration, int) {
		t0 := time.Now()
		ev := e.EvaluateAll(context.Background(), t0)
		if len(ev.Failed) > 0 {
			b.Fatalf("rules failed: %v", ev.Failed)
		}
		return time.Since(t0), len(ev.Candidates)
	}
	// The history was stored a moment ago. The ticks of a running product
	// share the engine neither with the merges of a month's bulk insert
	// nor with a live view that finds that insert's last rows new.
	chtest.Settle(b, conn)
	first, _ := tick()
	b.Logf("first tick (loads the live view): %s", first.Round(time.Millisecond))
	var lat []time.Duration
	candidates := 0
	for b.Loop() {
		b.StopTimer()
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		b.StartTimer()
		d, c := tick()
		lat = append(lat, d)
		candidates = c
	}
	b.Logf("ticks: %v", lat) // the dearer ones ask the store
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms/tick")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms/tick")
	b.ReportMetric(float64(candidates), "candidates")
	b.ReportMetric(float64(recent), "events-30m")
}
