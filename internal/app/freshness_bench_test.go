package app

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/schemas"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(envFreshLoad); spec != "" {
		os.Exit(runFreshLoad(spec)) // BenchmarkFreshness's load generator
	}
	os.Exit(chtest.Main(m))
}

// Freshness workload.
const (
	freshLoadRate    = 50_000 // background events per second
	freshMarkerEvery = 100 * time.Millisecond
	freshWarmup      = 5 * time.Second
	// freshReadyMax bounds the wait, after freshWarmup, for the wall's
	// first tiles with numbers: a product that starts under this load
	// loads its live view meanwhile, and the figures are of the running
	// product, not of its start-up.
	freshReadyMax = 90 * time.Second
	freshMeasure  = 30 * time.Second
	freshRegion   = "基准"
	// freshPoll is the pause between two polls: each poll is a KPI query
	// on the engine, which a tighter loop would turn into a load of its
	// own. A marker is timed at the response that first counts it, so the
	// pause and the query's own time make the figures conservative.
	freshPoll = 50 * time.Millisecond
)

// BenchmarkFreshness measures how soon an event is visible in
// /api/v1/kpis: the product runs in this process as `cockpit serve` does
// (ingest, rules, alerting and the HTTP server) against real Kafka and
// the engine's HTTP endpoint, while a producer in a process of its own
// (freshload_test.go) keeps 50,000 events/s of 300-byte events flowing
// through the topic. Marker conversations start
// at a known rate in a region of their own; a client polls
// /api/v1/kpis?region=… and each marker's freshness is the time from
// handing it to the producer to the first response that counts it. The
// markers go to one partition, so they become visible in order. Each run
// lasts freshWarmup (at least; until the wall's tiles first show numbers,
// ready-s after the start) + freshMeasure whatever b.N. If ingest cannot keep up
// with the load, markers still unseen 30 s after the last one count with
// the time they waited (markers-unseen > 0: the percentiles are lower
// bounds). Over the measured span, product-cores is this process's CPU
// (the product with its engine, and the benchmark's own client),
// load-cores the generator's and broker-cores the broker's, when it runs
// on this machine: on two cores, what the product had to keep up with.
func BenchmarkFreshness(b *testing.B) {
	brokers := kafkatest.Broker(b)
	ch := chtest.Start(b)
	topic := kafkatest.Topic(b, brokers, 8)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	cfg := config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.ClickHouse.DSN = ch.DSN("")
	cfg.ClickHouse.Database = "fresh_" + hex.EncodeToString(rnd[:])
	cfg.Ingest.Brokers, cfg.Ingest.Topic, cfg.Ingest.GroupID = []string{brokers}, topic, "fresh-"+topic
	admin := ch.Conn(b, "")
	b.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.ClickHouse.Database) })
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := newProduct(ctx, cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- p.run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			b.Error(err)
		}
	}()
	kpiURL := "http://" + p.ln.Addr().String() + "/api/v1/kpis?region=" + url.QueryEscape(freshRegion)
	started := time.Now()
	// One wall viewer, from the start, recording when each frame arrives.
	base := "http://" + p.ln.Addr().String()
	cadence := &streamCadence{}
	streamCtx, stopStream := context.WithCancel(ctx)
	streamDone := make(chan error, 1)
	go func() { streamDone <- cadence.watch(streamCtx, base+"/api/v1/stream") }()

	// Background load, paced to freshLoadRate, from a process of its own
	// (SPEC §9: the load generator's CPU is reported apart).
	gen := startFreshLoad(b, brokers, topic)
	time.Sleep(freshWarmup)
	for !cadence.ready() && time.Since(started) < freshWarmup+freshReadyMax {
		time.Sleep(100 * time.Millisecond)
	}
	ready := time.Since(started)

	// Markers, all on partition 0.
	mw := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, BatchSize: 1, RequiredAcks: kafka.RequireAll,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })}
	defer mw.Close()
	var (
		mu      sync.Mutex
		sentAt  []time.Time
		lat     []time.Duration
		seen    int
		polls   int
		pollErr error
	)
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for pollCtx.Err() == nil {
			n, err := startedCount(pollCtx, kpiURL)
			at := time.Now()
			if err != nil {
				if pollCtx.Err() == nil {
					pollErr = err
				}
				return
			}
			mu.Lock()
			polls++
			for ; seen < n && seen < len(sentAt); seen++ {
				lat = append(lat, at.Sub(sentAt[seen]))
			}
			mu.Unlock()
			time.Sleep(freshPoll)
		}
	}()
	// The rule ticks' histogram before and after.
	ticks0, err := scrapeTicks(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	loaded0, inserted0, statements0, t0 := gen.sent.Load(), p.ingest.Stats().Inserted.Load(), ch.Statements(), time.Now()
	cpu0, err := spanCPU(gen.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(freshMarkerEvery)
	for i := 0; time.Since(t0) < freshMeasure; i++ {
		<-tick.C
		now := time.Now()
		mu.Lock()
		sentAt = append(sentAt, now)
		mu.Unlock()
		if err := mw.WriteMessages(ctx, freshMarker(i, now)); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	measured := time.Since(t0).Seconds()
	cpu1, err := spanCPU(gen.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	stopStream()
	if err := <-streamDone; err != nil {
		b.Fatalf("stream viewer: %v", err)
	}
	ticks1, err := scrapeTicks(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	loadRate := float64(gen.sent.Load()-loaded0) / measured
	ingestRate := float64(p.ingest.Stats().Inserted.Load()-inserted0) / measured
	// Everything the product asked of the store: inserts, intents, rule
	// evaluations, the polls.
	statementRate := float64(ch.Statements()-statements0) / measured
	// The last markers: wait for them (under load still) before stopping.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done, err := seen == len(sentAt), pollErr
		mu.Unlock()
		if done || err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	stopPoll()
	<-pollDone
	if err := gen.stop(); err != nil {
		b.Fatal(err)
	}
	if pollErr != nil {
		b.Fatal(pollErr)
	}
	// A marker still unseen counts with the time it has waited so far: the
	// percentiles are then lower bounds, and markers-unseen says so.
	unseen := len(sentAt) - len(lat)
	end := time.Now()
	for _, at := range sentAt[len(lat):] {
		lat = append(lat, end.Sub(at))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat)), "markers")
	b.ReportMetric(float64(unseen), "markers-unseen")
	b.ReportMetric(loadRate, "load-events/s")
	b.ReportMetric(ingestRate, "ingested-events/s")
	b.ReportMetric(statementRate, "store-statements/s")
	// Where the two cores went over the measured span: this process (the
	// product, with its engine, and the benchmark's client), the load
	// generator, and the broker when it runs on this machine.
	b.ReportMetric((cpu1.self-cpu0.self).Seconds()/measured, "product-cores")
	b.ReportMetric((cpu1.load-cpu0.load).Seconds()/measured, "load-cores")
	if cpu0.brokers != "" && cpu0.brokers == cpu1.brokers {
		b.ReportMetric((cpu1.broker-cpu0.broker).Seconds()/measured, "broker-cores")
	}
	b.ReportMetric(float64(p.ingest.Stats().Rejected.Load()), "rejected")
	b.ReportMetric(ready.Seconds(), "ready-s")
	kpiP99, kpiMax := cadence.intervals("kpi", t0)
	_, wallMax := cadence.intervals("wall", t0)
	b.ReportMetric(float64(kpiP99.Microseconds())/1000, "kpi-interval-p99-ms")
	b.ReportMetric(float64(kpiMax.Microseconds())/1000, "kpi-interval-max-ms")
	b.ReportMetric(float64(wallMax.Microseconds())/1000, "wall-interval-max-ms")
	n := ticks1.count - ticks0.count
	b.ReportMetric(n, "rule-ticks")
	share := 0.0 // no tick evaluated: none within 100 ms
	if n > 0 {
		share = 100 * (ticks1.within100ms - ticks0.within100ms) / n
	}
	b.ReportMetric(share, "rule-ticks-within-100ms-%")
	b.ReportMetric(ticks1.skipped-ticks0.skipped, "rule-ticks-skipped")
	b.ReportMetric(ticks1.held-ticks0.held, "rule-ticks-held")
}

// streamCadence records when each frame of the wall's stream arrived, by
// event name, and whether a kpi frame with numbers came.
type streamCadence struct {
	mu      sync.Mutex
	at      map[string][]time.Time
	tilesOK bool
}

// ready says whether a kpi frame came whose tiles could be read.
func (c *streamCadence) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tilesOK
}

// watch reads the stream at u until ctx ends.
func (c *streamCadence) watch(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			c.mu.Lock()
			if c.at == nil {
				c.at = map[string][]time.Time{}
			}
			c.at[e] = append(c.at[e], time.Now())
			c.mu.Unlock()
		} else if data, ok := strings.CutPrefix(line, "data: "); ok && event == "kpi" {
			var f struct {
				OK bool `json:"ok"`
			}
			if json.Unmarshal([]byte(data), &f) == nil && f.OK {
				c.mu.Lock()
				c.tilesOK = true
				c.mu.Unlock()
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("stream ended: %v", sc.Err())
}

// intervals are the p99 and the largest gap between two frames of event
// e from since on, the first of them counted from since. Without a frame
// both are the whole span watched, as nothing came in it.
func (c *streamCadence) intervals(e string, since time.Time) (p99, largest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gaps []time.Duration
	prev := since
	for _, at := range c.at[e] {
		if at.Before(since) {
			continue
		}
		gaps = append(gaps, at.Sub(prev))
		prev = at
	}
	if len(gaps) == 0 {
		return freshMeasure, freshMeasure
	}
	slices.Sort(gaps)
	return gaps[len(gaps)*99/100], gaps[len(gaps)-1]
}

// tickCounts are the rule-tick counters of the product's /metrics.
type tickCounts struct{ count, within100ms, skipped, held float64 }

func scrapeTicks(ctx context.Context, base string) (tickCounts, error) {
	var t tickCounts
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return t, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return t, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "cockpit_rule_tick_duration_seconds_count":
			dst = &t.count
		case `cockpit_rule_tick_duration_seconds_bucket{le="0.1"}`:
			dst = &t.within100ms
		case "cockpit_rule_ticks_skipped_total":
			dst = &t.skipped
		case "cockpit_rule_ticks_held_total":
			dst = &t.held
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(v, 64); err != nil {
			return t, fmt.Errorf("/metrics: %s: %w", name, err)
		}
		found++
	}
	if found != 4 {
		return t, fmt.Errorf("/metrics: %d of the 4 rule-tick series", found)
	}
	return t, sc.Err()
}

// startedCount reads conversations_started from one /api/v1/kpis answer.
func startedCount(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	var snap struct {
		Started int `json:"conversations_started"`
	}
	if err := json.Unmarshal(body, &snap); err != nil {
		return 0, err
	}
	return snap.Started, nil
}

// freshMarker is marker conversation i, started at.
func freshMarker(i int, at time.Time) kafka.Message {
	id := "marker-" + strconv.Itoa(i)
	v, _ := json.Marshal(schemas.Event{EventID: id, SchemaVersion: 1, Type: schemas.ConversationStarted,
		OccurredAt: at, ConversationID: id, Channel: "chat", Region: freshRegion, Entry: "bot"})
	return kafka.Message{Key: []byte(id), Value: v}
}

// freshLoad produces 300-byte events at freshLoadRate until ctx ends,
// counting them in sent. Events are built from templates by writing a
// counter into fixed-width slots, so that producing costs little CPU next
// to the product it loads.
func freshLoad(ctx context.Context, brokers, topic string, sent *atomic.Int64) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	tmpl := freshTemplates(time.Now().Add(-time.Minute))
	const chunk = 2500
	msgs := make([]kafka.Message, chunk)
	start := time.Now()
	n := 0
	for ctx.Err() == nil {
		due := int(time.Since(start).Seconds()*freshLoadRate) - n
		if due <= 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		k := min(due, chunk)
		for i := range k {
			msgs[i] = tmpl.message(n + i)
		}
		if err := w.WriteMessages(ctx, msgs[:k]...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n += k
		sent.Add(int64(k))
	}
	return nil
}

// loadTemplates are the five events of a background conversation, as
// JSON with 12-digit slots for the event and conversation numbers.
type loadTemplates struct {
	values          [5][]byte
	eventAt, convAt [5]int
}

const slot = "000000000000"

func freshTemplates(at time.Time) *loadTemplates {
	t := &loadTemplates{}
	types := [5]schemas.EventType{schemas.ConversationStarted, schemas.MessageSent, schemas.MessageSent, schemas.MessageSent, schemas.ConversationClosed}
	for j, typ := range types {
		e := schemas.Event{EventID: "load-e" + slot, SchemaVersion: 1, Type: typ,
			OccurredAt: at.Add(time.Duration(j) * time.Second), ConversationID: "load-c" + slot}
		switch typ {
		case schemas.ConversationStarted:
			e.Channel, e.Region, e.Entry, e.Queue, e.BusinessLine = "chat", "广州", "bot", "billing-l1", "billing"
		case schemas.MessageSent:
			e.Actor = &schemas.Actor{Role: "customer", ID: "u1"}
		case schemas.ConversationClosed:
			e.Resolution = "resolved"
		}
		v, _ := json.Marshal(e)
		if pad := 300 - len(v) - 10; pad > 0 {
			e.Text = strings.Repeat("x", pad)
			v, _ = json.Marshal(e)
		}
		t.values[j] = v
		t.eventAt[j] = strings.Index(string(v), "load-e") + len("load-e")
		t.convAt[j] = strings.Index(string(v), "load-c") + len("load-c")
	}
	return t
}

// message is background event i: event number i of conversation i/5.
func (t *loadTemplates) message(i int) kafka.Message {
	v := slices.Clone(t.values[i%5])
	putDigits(v[t.eventAt[i%5]:t.eventAt[i%5]+len(slot)], i)
	conv := v[t.convAt[i%5] : t.convAt[i%5]+len(slot)]
	putDigits(conv, i/5)
	return kafka.Message{Key: slices.Clone(conv), Value: v}
}

// putDigits writes n into dst as zero-padded decimal.
func putDigits(dst []byte, n int) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + n%10)
		n /= 10
	}
}
