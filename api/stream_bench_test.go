package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/simulate"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// BenchmarkStream measures the wall's live stream, /api/v1/stream, with 1
// and 10,000 concurrent viewers over HTTP, served as the product serves
// it (NewHTTPServer, with its connection cap): the update lag (from the
// instant a snapshot is taken, its "to", to each viewer reading the
// frame) and the store statements per tick interval, counted at the
// engine's endpoint, which must not grow with the viewers (frames/tick
// below 1 means some ticks' queries overran the tick). The KPI store runs over
// the last two hours of simulated traffic on the real engine, with the
// real clock. Each run lasts streamTicks ticks whatever b.N.
func BenchmarkStream(b *testing.B) {
	ch := chtest.Start(b)
	_, conn := ch.Database(b)
	now := time.Now().UTC()
	cfg := simulate.DefaultConfig()
	cfg.Anchor, cfg.PeakRate, cfg.LogEvery = now.Add(-2*time.Hour), 5, 0
	sim, err := simulate.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	var batch []schemas.Event
	if err := sim.Generate(now.Add(-2*time.Hour), now, func(e schemas.Event) error {
		batch = append(batch, e)
		if len(batch) == 100_000 {
			store(b, conn, batch)
			batch = batch[:0]
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	store(b, conn, batch)
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for _, viewers := range []int{1, 10_000} {
		b.Run("viewers="+strconv.Itoa(viewers), func(b *testing.B) {
			benchStream(b, ch, kpis, viewers)
		})
	}
}

// streamTicks is how many ticks one run of BenchmarkStream observes.
const streamTicks = 15

// localViewers is how many viewers benchStream runs in its own process;
// more run in a child process (TestStreamViewers), so that neither
// process needs two descriptors a viewer past the usual open-file limit.
const localViewers = 1000

func benchStream(b *testing.B, ch *chtest.Store, kpi KPISource, viewers int) {
	s, err := New(Deps{Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}), KPIs: kpi},
		slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	local, remote := viewers, 0
	if viewers > localViewers {
		local, remote = 1, viewers-1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv, lln := NewHTTPServer(ln, s.Handler(), HTTPLimits{}, slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(lln) }()
	defer srv.Close()
	streamURL := "http://" + ln.Addr().String() + "/api/v1/stream"
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); s.Hub().Run(ctx) }()
	defer func() { cancel(); <-hubDone }()

	var (
		mu        sync.Mutex
		lags      []time.Duration
		recording atomic.Bool
		frames    atomic.Int64 // kpi frames read while recording, over all viewers
		connected sync.WaitGroup
		readers   sync.WaitGroup
		// arrived hears of viewer 0's kpi frames: the instant after a
		// broadcast is between two ticks' queries, where counting starts
		// and stops.
		arrived = make(chan struct{}, 1)
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: local, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	connected.Add(local)
	for v := range local {
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := watchKPIFrames(ctx, client, streamURL, connected.Done, func(lag time.Duration) {
				if recording.Load() {
					frames.Add(1)
					mu.Lock()
					lags = append(lags, lag)
					mu.Unlock()
				}
				if v == 0 {
					select {
					case arrived <- struct{}{}:
					default:
					}
				}
			})
			if err != nil && ctx.Err() == nil {
				b.Error(err)
			}
		}()
	}
	connected.Wait()
	var others *viewerProc
	if remote > 0 {
		if others, err = startViewers(streamURL, remote); err != nil {
			b.Fatal(err)
		}
		defer others.kill()
	}
	// Let the viewers' first frames and the connection burst pass.
	time.Sleep(2 * s.cfg.StreamTick)
	betweenTicks := func() {
		select {
		case <-arrived: // a stale one
		default:
		}
		select {
		case <-arrived:
		case <-time.After(10 * s.cfg.StreamTick):
			b.Fatal("viewer 0 received no kpi frame in 10 ticks")
		}
	}
	betweenTicks()
	statements0, seq0, t0 := ch.Statements(), hubSeq(s.Hub()), time.Now()
	recording.Store(true)
	if others != nil {
		others.command("start")
	}
	b.ResetTimer()
	time.Sleep(streamTicks * s.cfg.StreamTick)
	betweenTicks()
	statements, ticks := ch.Statements()-statements0, hubSeq(s.Hub())-seq0
	// Per tick interval, not per frame: a tick whose query overran its
	// deadline sends no frame but did query the store.
	intervals := time.Since(t0).Seconds() / s.cfg.StreamTick.Seconds()
	recording.Store(false)
	b.StopTimer()
	if others != nil {
		got, err := others.stop()
		if err != nil {
			b.Fatal(err)
		}
		frames.Add(int64(len(got)))
		lags = append(lags, got...)
	}
	cancel()
	readers.Wait()
	if ticks == 0 || len(lags) == 0 {
		b.Fatalf("no kpi frames in %d ticks", streamTicks)
	}
	if got, want := frames.Load(), int64(ticks)*int64(viewers); got < want*9/10 {
		b.Fatalf("viewers read %d kpi frames, want about %d (%d ticks × %d viewers)", got, want, ticks, viewers)
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag-p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag-max-ms")
	b.ReportMetric(float64(statements)/intervals, "queries/tick")
	b.ReportMetric(float64(ticks)/intervals, "frames/tick")
	b.ReportMetric(float64(viewers), "viewers")
}

// watchKPIFrames is one viewer of the stream at u: it calls connected
// once its request was answered (or failed), then onFrame with the lag
// of each kpi frame (from the instant the snapshot describes, its "to",
// to reading it) until ctx ends or the stream does.
func watchKPIFrames(ctx context.Context, client *http.Client, u string, connected func(), onFrame func(time.Duration)) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := client.Do(req)
	connected()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 32<<10)
	var kpiEvent bool
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) && !kpiEvent {
			continue // a long wall frame, not read here
		}
		if err != nil {
			return nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			kpiEvent = bytes.Equal(bytes.TrimSpace(line[7:]), []byte("kpi"))
		case kpiEvent && bytes.HasPrefix(line, []byte("data: ")):
			at := time.Now()
			var snap struct {
				To time.Time `json:"to"`
			}
			if err := json.Unmarshal(line[6:], &snap); err != nil {
				return err
			}
			onFrame(at.Sub(snap.To))
		}
	}
}

// viewerProc is a child process of viewers: this test binary running
// TestStreamViewers.
type viewerProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	wait  chan error
	lines chan string
}

// startViewers starts n viewers of u in a child process and waits until
// they are connected.
func startViewers(u string, n int) (*viewerProc, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamViewers$", "-test.count=1")
	cmd.Env = append(os.Environ(), "COCKPIT_STREAM_VIEWERS="+strconv.Itoa(n)+" "+u)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &viewerProc{cmd: cmd, in: in, out: bufio.NewScanner(out), wait: make(chan error, 1), lines: make(chan string, 16)}
	p.out.Buffer(make([]byte, 64<<10), 64<<20)
	go func() {
		for p.out.Scan() {
			p.lines <- p.out.Text()
		}
		close(p.lines)
		p.wait <- cmd.Wait()
	}()
	if line, err := p.next(5 * time.Minute); err != nil || line != "connected" {
		p.kill()
		return nil, fmt.Errorf("viewer process: %q, %v", line, err)
	}
	return p, nil
}

// next is the child's next line that is not go test's own.
func (p *viewerProc) next(within time.Duration) (string, error) {
	deadline := time.After(within)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("exited: %v", <-p.wait)
			}
			if line == "connected" || strings.HasPrefix(line, "lags ") {
				return line, nil
			}
		case <-deadline:
			return "", fmt.Errorf("no answer within %s", within)
		}
	}
}

func (p *viewerProc) command(c string) { _, _ = io.WriteString(p.in, c+"\n") }

// stop ends the recording and returns the lags of the kpi frames the
// child's viewers read since "start".
func (p *viewerProc) stop() ([]time.Duration, error) {
	p.command("stop")
	line, err := p.next(time.Minute)
	if err != nil {
		return nil, err
	}
	var us []int64
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "lags ")), &us); err != nil {
		return nil, err
	}
	lags := make([]time.Duration, len(us))
	for i, v := range us {
		lags[i] = time.Duration(v) * time.Microsecond
	}
	p.in.Close()
	return lags, nil
}

func (p *viewerProc) kill() { _ = p.cmd.Process.Kill() }

// TestStreamViewers is BenchmarkStream's child process of viewers; it does
// nothing unless COCKPIT_STREAM_VIEWERS ("<n> <url>") is set. It prints
// "connected" once its n viewers are, records the kpi frames' lags between
// "start" and "stop" on its standard input, then prints them as "lags
// [µs, …]" and ends.
func TestStreamViewers(t *testing.T) {
	spec := os.Getenv("COCKPIT_STREAM_VIEWERS")
	if spec == "" {
		return
	}
	ns, u, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(ns)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	var (
		mu        sync.Mutex
		lags      []int64
		recording atomic.Bool
		connected sync.WaitGroup
	)
	connected.Add(n)
	for range n {
		go func() {
			_ = watchKPIFrames(ctx, client, u, connected.Done, func(lag time.Duration) {
				if recording.Load() {
					mu.Lock()
					lags = append(lags, lag.Microseconds())
					mu.Unlock()
				}
			})
		}()
	}
	connected.Wait()
	fmt.Println("connected")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "start":
			recording.Store(true)
		case "stop":
			recording.Store(false)
			mu.Lock()
			out, _ := json.Marshal(lags)
			mu.Unlock()
			fmt.Printf("lags %s\n", out)
			return
		}
	}
}

// hubSeq is the number of frames the hub has broadcast (kpi frames only
// here: no alerts are published).
func hubSeq(h *Hub) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}
