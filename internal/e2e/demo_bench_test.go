package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/procstat"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/internal/testaddr"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// The spans of BenchmarkDemo. SPEC §9 judges the demo over ten minutes
// after start-up; shorter spans are for trying the benchmark out.
var (
	demoMeasure = flag.Duration("demo-measure", 10*time.Minute, "BenchmarkDemo: how long the running demo's CPU is measured, after its start-up")
	idleSettle  = flag.Duration("idle-settle", kpi.DefaultRollupConfig().Settle+time.Minute, "BenchmarkDemo: span after the idle restart before its idle CPU is measured (the rollup's catch-up)")
	idleMeasure = flag.Duration("idle-measure", 2*time.Minute, "BenchmarkDemo: how long the idle process's CPU is measured")
	demoFloor   = flag.Float64("demo-floor", 0.85, "BenchmarkDemo: the simulator's floor (share of its peak rate kept at every hour), so that the demo carries a busy hour's traffic whenever the benchmark runs")
)

// backfillLagDone is the ingest lag (records behind the brokers' high
// watermarks) at which the demo's backfill counts as taken in: a few
// seconds of its live traffic.
const backfillLagDone = 1000

// BenchmarkDemo measures the product as `make run` starts it, the cockpit
// binary's `demo` command on a fresh data directory (embedded broker and
// engine, simulator at its default rate, the default backfill), as a
// child process whose CPU and memory are read from /proc:
//
//   - startup-s: from the start to the first `kpi` frame of the wall's
//     stream, /api/v1/stream, with its tiles filled (a snapshot that
//     counts conversations) and current (its as_of within its
//     stale_after_seconds: the wall does not grey it);
//   - backfill-s: from the start to the simulator's "backfill done";
//     ingested-s: to the ingest lag falling under backfillLagDone
//     records, the backfill taken in (start-up ends there);
//   - demo-cores: CPU time over wall time for -demo-measure after that,
//     with one viewer reading the stream throughout; demo-events/s the
//     events it stored meanwhile, and demo-shanghai-hour the hour its
//     simulator's daily curve was at when the span began. The demo's
//     default rate follows the time of day (about 200 events/s at the
//     busiest hours, a third of that at night, its floor of 0.3); the
//     benchmark raises the floor to -demo-floor, 0.85, the level of a
//     busy weekday afternoon, so that the figure is a busy hour's
//     whenever it runs (at the busiest hours the floor changes nothing);
//   - idle-cores: the same data directory restarted with no simulator
//     and no viewer, measured for -idle-measure after -idle-settle;
//     idle-catchup-cores is its CPU during -idle-settle: the rollup
//     builds the hours the demo's last events touched once those have
//     settled (kpi rollup settle, 3 min), a second or two of work that
//     belongs to the events, not to idling;
//   - peak-RSS-MiB: the larger of the two processes' VmHWM, the first's
//     covering its start-up and backfill.
//
// Each run lasts the spans above whatever b.N.
func BenchmarkDemo(b *testing.B) {
	dir := b.TempDir()
	httpAddr, kafkaAddr, chAddr := testaddr.Free(b), testaddr.Free(b), testaddr.Free(b)
	args := []string{"demo", "--data-dir", dir, "--http", httpAddr, "--kafka-listen", kafkaAddr, "--clickhouse-listen", chAddr}
	demoArgs := append(slices.Clone(args), "--simulate-floor", strconv.FormatFloat(*demoFloor, 'f', -1, 64))
	cockpitBinary(b) // built before the clock starts
	base := "http://" + httpAddr

	b.ResetTimer()
	t0 := time.Now()
	demo := startProc(b, "demo", nil, demoArgs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var filled atomic.Int64 // nanoseconds since t0 of the first filled kpi frame
	var frames atomic.Int64
	viewer := make(chan error, 1)
	go func() { viewer <- watchStream(ctx, base, t0, &filled, &frames) }()

	waitUntil(b, 5*time.Minute, "the demo's tiles are filled", func() bool {
		if demo.exited() {
			b.Fatalf("demo exited: %v\n%s", demo.err, demo.tail(30))
		}
		return filled.Load() > 0
	})
	startup := time.Duration(filled.Load())
	waitUntil(b, 10*time.Minute, "the demo's backfill is done", func() bool {
		if demo.exited() {
			b.Fatalf("demo exited: %v\n%s", demo.err, demo.tail(30))
		}
		return demo.countLog("simulator backfill done") > 0
	})
	backfill := time.Since(t0)
	// The simulator hands its history to the broker in seconds; start-up
	// ends when the product has taken it in (the first 30 s after the
	// hand-over of a busy hour's backfill cost 1.2 cores, the minutes
	// after it a fifth of that).
	waitUntil(b, 10*time.Minute, "the demo's backfill is ingested", func() bool {
		if demo.exited() {
			b.Fatalf("demo exited: %v\n%s", demo.err, demo.tail(30))
		}
		lag := metricAt(base, "cockpit_ingest_lag_records")
		return lag >= 0 && lag < backfillLagDone
	})
	ingested := time.Since(t0)
	// The simulator follows the time of day in Shanghai (quiet at night,
	// busiest late morning and evening), so a figure says what it carried.
	hour := time.Now().In(simulate.Zone).Hour()
	inserted0 := metricAt(base, "cockpit_ingest_inserted_total")
	demoCores, err := measureCPU(demo, *demoMeasure)
	if err != nil {
		b.Fatal(err)
	}
	inserted1 := metricAt(base, "cockpit_ingest_inserted_total")
	if inserted0 < 0 || inserted1 < inserted0 {
		b.Fatalf("cockpit_ingest_inserted_total: %v before the measured span, %v after", inserted0, inserted1)
	}
	framesSeen := frames.Load()
	demoPeak, err := peakRSS(demo)
	if err != nil {
		b.Fatal(err)
	}
	cancel()
	if err := <-viewer; err != nil {
		b.Fatalf("stream viewer: %v", err)
	}
	if err := demo.stop(time.Minute); err != nil {
		b.Fatal(err)
	}

	idle := startProc(b, "idle", nil, append(args, "--simulate=false")...)
	waitUntil(b, 2*time.Minute, "the idle demo answers", func() bool {
		if idle.exited() {
			b.Fatalf("idle demo exited: %v\n%s", idle.err, idle.tail(30))
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	catchupCores, err := measureCPU(idle, *idleSettle)
	if err != nil {
		b.Fatal(err)
	}
	idleCores, err := measureCPU(idle, *idleMeasure)
	if err != nil {
		b.Fatal(err)
	}
	idlePeak, err := peakRSS(idle)
	if err != nil {
		b.Fatal(err)
	}
	if err := idle.stop(time.Minute); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(backfill.Seconds(), "backfill-s")
	b.ReportMetric(ingested.Seconds(), "ingested-s")
	b.ReportMetric(demoCores, "demo-cores")
	b.ReportMetric(demoMeasure.Seconds(), "demo-measured-s")
	b.ReportMetric((inserted1-inserted0)/demoMeasure.Seconds(), "demo-events/s")
	b.ReportMetric(float64(hour), "demo-shanghai-hour")
	b.ReportMetric(*demoFloor, "demo-floor")
	b.ReportMetric(float64(framesSeen), "viewer-frames")
	b.ReportMetric(catchupCores, "idle-catchup-cores")
	b.ReportMetric(idleCores, "idle-cores")
	b.ReportMetric(idleMeasure.Seconds(), "idle-measured-s")
	b.ReportMetric(float64(max(demoPeak, idlePeak))/(1<<20), "peak-RSS-MiB")
}

// watchStream reads the wall's stream as one viewer does until ctx ends,
// counting frames and noting when the first kpi frame with filled tiles
// arrived (nanoseconds since t0). It reconnects while the server is not
// up yet or drops the stream.
func watchStream(ctx context.Context, base string, t0 time.Time, filled, frames *atomic.Int64) error {
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
				continue
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			frames.Add(1)
			if event != "kpi" || filled.Load() > 0 {
				continue
			}
			var f struct {
				OK         bool       `json:"ok"`
				Started    *uint64    `json:"conversations_started"`
				ComputedAt time.Time  `json:"computed_at"`
				AsOf       *time.Time `json:"as_of"`
				StaleAfter int        `json:"stale_after_seconds"`
			}
			if err := json.Unmarshal([]byte(data), &f); err != nil {
				resp.Body.Close()
				return fmt.Errorf("kpi frame: %w", err)
			}
			// Filled: numbers the wall shows as current, not greyed as
			// older than their limit (the start-up's backfill is being
			// stored, or the live view has not taken it in yet).
			current := f.AsOf != nil && f.ComputedAt.Sub(*f.AsOf) <= time.Duration(f.StaleAfter)*time.Second
			if f.OK && f.Started != nil && *f.Started > 0 && current {
				filled.CompareAndSwap(0, int64(time.Since(t0)))
			}
		}
		resp.Body.Close()
	}
	return nil
}

// measureCPU is p's CPU time (user and system, every thread) over span,
// in cores.
func measureCPU(p *proc, span time.Duration) (float64, error) {
	c0, err := procstat.CPU(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-p.done:
		return 0, fmt.Errorf("%s exited while measured: %v\n%s", p.name, p.err, p.tail(30))
	case <-time.After(span):
	}
	c1, err := procstat.CPU(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

// peakRSS is p's VmHWM in bytes.
func peakRSS(p *proc) (int64, error) { return procstat.PeakRSS(p.cmd.Process.Pid) }
