package spike

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSpikeEvaluate: one Evaluate, 20 regions × 3 windows, 4 weeks of
// history (hour-of-week baseline), in-memory history. The history's own
// cost (binary searches, result maps) is included; over ClickHouse it is
// replaced by one query.
func BenchmarkSpikeEvaluate(b *testing.B) {
	regions := spikeSimRegions(20)
	now := spikeTestStart.Add(28*24*time.Hour + 15*time.Hour + 2*time.Minute)
	h := NewMemoryHistory(spikeSimulate(7, regions, spikeTestStart, now), spikeTestStart)
	d := spikeMustDetector(b, Config{})
	if m := d.Mode(now, spikeTestStart); m != BaselineWeekly {
		b.Fatalf("mode %q", m)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Evaluate(ctx, now, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpikeEvaluateStatsOnly is BenchmarkSpikeEvaluate without the
// in-memory history's work: the counts are precomputed.
func BenchmarkSpikeEvaluateStatsOnly(b *testing.B) {
	regions := spikeSimRegions(20)
	now := spikeTestStart.Add(28*24*time.Hour + 15*time.Hour + 2*time.Minute)
	mem := NewMemoryHistory(spikeSimulate(7, regions, spikeTestStart, now), spikeTestStart)
	d := spikeMustDetector(b, Config{})
	ctx := context.Background()
	p := d.plan(now, spikeTestStart)
	counts, err := mem.SpikeCounts(ctx, p.ranges)
	if err != nil {
		b.Fatal(err)
	}
	h := spikeCannedHistory{counts: counts, start: spikeTestStart}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Evaluate(ctx, now, h); err != nil {
			b.Fatal(err)
		}
	}
}

// spikeCannedHistory returns fixed results.
type spikeCannedHistory struct {
	counts []map[string]float64
	start  time.Time
}

func (c spikeCannedHistory) SpikeCounts(context.Context, []Range) ([]map[string]float64, error) {
	return c.counts, nil
}

func (c spikeCannedHistory) SpikeDataStart(context.Context) (time.Time, error) { return c.start, nil }
