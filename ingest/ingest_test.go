package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// Environment of the child process of TestIngestSurvivesKill9.
const (
	envChild   = "COCKPIT_INGEST_CHILD"
	envChildCH = "COCKPIT_INGEST_CHILD_CLICKHOUSE"
	envChildKf = "COCKPIT_INGEST_CHILD_BROKERS"
	envChildTp = "COCKPIT_INGEST_CHILD_TOPIC"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(runChild())
	}
	os.Exit(chtest.Main(m))
}

// runChild is a consumer in its own process, reached through the parent's
// store endpoint, to be killed with SIGKILL.
func runChild() int {
	opts, err := clickhouse.ParseDSN(os.Getenv(envChildCH))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	topic := os.Getenv(envChildTp)
	cfg := testConfig(os.Getenv(envChildKf), topic, topic+".dlq")
	// Small batches, so that a kill lands inside one more often.
	cfg.BatchRows = 200
	cfg.BatchInterval = 20 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := ingest.New(cfg, conn, prometheus.NewRegistry(), logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestIngestEndToEnd(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	_, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 4)
	dlq := kafkatest.Topic(t, brokers, 1)

	valid := conversationEvents("ok", 3000, 0)
	now := time.Now()
	// Out of order: a conversation whose close arrives before its start.
	ooo := []kafka.Message{
		event("ooo-close", "ooo-c", schemas.ConversationClosed, now.Add(-time.Minute), 0),
		event("ooo-start", "ooo-c", schemas.ConversationStarted, now.Add(-2*time.Minute), 0),
	}
	// Late: three hours old, produced after everything else.
	lateAt := now.Add(-3 * time.Hour).Truncate(time.Millisecond)
	late := event("late-1", "late-c", schemas.ConversationStarted, lateAt, 0)
	// Duplicates: ten valid records sent again, byte for byte.
	dups := append([]kafka.Message(nil), valid[100:110]...)

	bad := []struct {
		value  string
		reason schemas.Reason
		stamp  time.Time // the record's timestamp, when not now
	}{
		{`{"event_id":`, schemas.ReasonMalformedJSON, time.Time{}},
		{`{"event_id":"b2","schema_version":1,"type":"conversation.exploded","occurred_at":"2026-01-01T00:00:00Z","conversation_id":"x"}`, schemas.ReasonUnknownType, time.Time{}},
		{`{"event_id":"b3","schema_version":1,"type":"conversation.started","occurred_at":"` + now.Format(time.RFC3339) + `","conversation_id":"x","channel":"chat","entry":"bot"}`, schemas.ReasonMissingField, time.Time{}},
		{`{"event_id":"b4","schema_version":1,"type":"conversation.abandoned","occurred_at":"` + now.Add(2*time.Hour).Format(time.RFC3339) + `","conversation_id":"x"}`, schemas.ReasonFutureTimestamp, time.Time{}},
		{`{"event_id":"b5","schema_version":1,"type":"conversation.abandoned","occurred_at":"2015-06-23T10:00:00Z","conversation_id":"x"}`, schemas.ReasonAncientTimestamp, time.Time{}},
		{`{"event_id":"b6","schema_version":"1","type":"conversation.abandoned","occurred_at":"` + now.Format(time.RFC3339) + `","conversation_id":"x"}`, schemas.ReasonWrongType, time.Time{}},
		{`{"event_id":"b7","schema_version":1,"type":"message.sent","occurred_at":"` + now.Format(time.RFC3339) + `","conversation_id":"x","actor":{"role":"customer"},"text":"` + strings.Repeat("y", 70<<10) + `"}`, schemas.ReasonOversize, time.Time{}},
		{"\xff\xfe not utf-8", schemas.ReasonInvalidUTF8, time.Time{}},
		// A producer stamping its records with occurred_at: the future and
		// the age are judged against the receiving clock too. (The broker
		// itself refuses record timestamps more than an hour ahead.)
		{`{"event_id":"b8","schema_version":1,"type":"conversation.abandoned","occurred_at":"` + now.Add(50*time.Minute).Format(time.RFC3339) + `","conversation_id":"x"}`,
			schemas.ReasonFutureTimestamp, now.Add(50 * time.Minute)},
		{`{"event_id":"b9","schema_version":1,"type":"conversation.abandoned","occurred_at":"` + now.Add(-40*24*time.Hour).Format(time.RFC3339) + `","conversation_id":"x"}`,
			schemas.ReasonAncientTimestamp, now.Add(-40 * 24 * time.Hour)},
		// Control characters in names a filter must reach.
		{`{"event_id":"b10","schema_version":1,"type":"complaint.filed","occurred_at":"` + now.Format(time.RFC3339) + `","conversation_id":"x","region":"a\u0000b"}`, schemas.ReasonInvalidValue, time.Time{}},
		{`{"event_id":"b11","schema_version":1,"type":"conversation.abandoned","occurred_at":"` + now.Format(time.RFC3339) + `","conversation_id":"x","queue":"q\t1"}`, schemas.ReasonInvalidValue, time.Time{}},
	}
	var badMsgs []kafka.Message
	for i, b := range bad {
		stamp := now
		if !b.stamp.IsZero() {
			stamp = b.stamp
		}
		badMsgs = append(badMsgs, kafka.Message{Key: []byte("bad" + strconv.Itoa(i)), Value: []byte(b.value), Time: stamp})
	}

	// Bad records sit between good ones on every partition.
	kafkatest.Produce(t, brokers, topic, valid[:1500]...)
	kafkatest.Produce(t, brokers, topic, badMsgs...)
	kafkatest.Produce(t, brokers, topic, ooo...)
	kafkatest.Produce(t, brokers, topic, valid[1500:]...)
	kafkatest.Produce(t, brokers, topic, dups...)
	kafkatest.Produce(t, brokers, topic, late)

	r := start(t, testConfig(brokers, topic, dlq), conn)
	unique := uint64(len(valid) + len(ooo) + 1)
	total := len(valid) + len(ooo) + 1 + len(dups) + len(badMsgs)
	waitFor(t, time.Minute, func() bool { return r.c.Stats().Consumed.Load() >= int64(total) })
	waitFor(t, time.Minute, func() bool { return count(t, conn, "SELECT uniqExact(event_id) FROM events") >= unique })
	r.stop()

	// Every event once, physically: a repeated event_id is not stored.
	if n := count(t, conn, "SELECT uniqExact(event_id) FROM events"); n != unique {
		t.Errorf("distinct event ids = %d, want %d", n, unique)
	}
	if n := count(t, conn, "SELECT count() FROM events"); n != unique {
		t.Errorf("physical rows = %d, want %d (duplicates stored once)", n, unique)
	}
	if got := r.c.Stats().Inserted.Load(); got != int64(unique) {
		t.Errorf("inserted %d records, want %d", got, unique)
	}
	if got := r.c.Stats().Duplicates.Load(); got != int64(len(dups)) {
		t.Errorf("%d duplicates, want %d", got, len(dups))
	}
	// The stored batches left their notice for the live stream.
	select {
	case <-r.c.Stats().Stored():
	default:
		t.Error("no notice on Stats().Stored after batches were stored")
	}
	if got := r.metric(t, "cockpit_ingest_duplicates_total", "", ""); got != float64(len(dups)) {
		t.Errorf("duplicates_total = %v, want %d", got, len(dups))
	}
	// Late and out-of-order events are stored by event time.
	var at time.Time
	if err := conn.QueryRow(context.Background(), "SELECT occurred_at FROM events WHERE event_id = 'late-1'").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(lateAt) {
		t.Errorf("late event stored at %v, want %v", at, lateAt)
	}
	if n := count(t, conn, "SELECT count() FROM events WHERE conversation_id = 'ooo-c'"); n != 2 {
		t.Errorf("out-of-order conversation has %d events, want 2", n)
	}
	// Attributes survive the trip.
	var region, queue, channel string
	if err := conn.QueryRow(context.Background(), "SELECT region, queue, channel FROM events WHERE event_id = 'ok-e0000000'").Scan(&region, &queue, &channel); err != nil {
		t.Fatal(err)
	}
	if region != "广州" || queue != "billing-l1" || channel != "chat" {
		t.Errorf("attributes = %q %q %q", region, queue, channel)
	}

	// Each bad record is in the dead-letter topic with its reason, and so
	// is each repeat.
	got, repeats := readDeadLetters(t, brokers, dlq, len(bad)+len(dups))
	if repeats != len(dups) {
		t.Errorf("%d dead letters for repeated event_ids, want %d", repeats, len(dups))
	}
	for i, b := range bad {
		key := "bad" + strconv.Itoa(i)
		if got[key] != string(b.reason) {
			t.Errorf("dead letter %s: reason %q, want %q", key, got[key], b.reason)
		}
		if v := r.metric(t, "cockpit_ingest_rejected_total", "reason", string(b.reason)); v < 1 {
			t.Errorf("rejected_total{reason=%s} = %v", b.reason, v)
		}
	}
	// The graceful stop committed everything it stored.
	if committed := committedTotal(t, brokers, "g-"+topic, topic, 4); committed != int64(total) {
		t.Errorf("committed offsets sum to %d, want %d", committed, total)
	}
}

// readDeadLetters reads n records from the dead-letter topic and returns
// reason by record key for the invalid records, and the number of repeated
// event_ids.
func readDeadLetters(t *testing.T, brokers, topic string, n int) (map[string]string, int) {
	t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]string{}
	repeats := 0
	for i := 0; i < n; i++ {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters (%d of %d): %v", i, n, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[ingest.HeaderSourceTopic] == "" || h[ingest.HeaderSourceOffset] == "" || h[ingest.HeaderError] == "" {
			t.Errorf("dead letter without source headers: %v", h)
		}
		if h[ingest.HeaderReason] == string(ingest.ReasonDuplicateEventID) {
			repeats++
			continue
		}
		out[string(m.Key)] = h[ingest.HeaderReason]
	}
	return out, repeats
}

// committedTotal sums the group's committed offsets over the partitions.
func committedTotal(t *testing.T, brokers, group, topic string, partitions int) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 10 * time.Second}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

func TestIngestStoreOutage(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	_, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 4)
	dlq := kafkatest.Topic(t, brokers, 1)
	msgs := conversationEvents("out", 12000, 0)

	r := start(t, testConfig(brokers, topic, dlq), conn)
	kafkatest.Produce(t, brokers, topic, msgs[:4000]...)
	waitRows(t, conn, 4000, time.Minute)
	// Caught up: every partition's last fetch left nothing it would not
	// bring next, about a second ago at most (an idle one is fetched
	// every second).
	caughtUp := func() bool { return r.c.Behind(time.Now()) < 3*time.Second }
	waitFor(t, 30*time.Second, caughtUp)

	store.SetDown(true)
	kafkatest.Produce(t, brokers, topic, msgs[4000:8000]...)
	time.Sleep(3 * time.Second) // the consumer fails and retries meanwhile
	kafkatest.Produce(t, brokers, topic, msgs[8000:]...)
	time.Sleep(2 * time.Second)
	// The partitions whose batches cannot be stored fetch nothing: the
	// ingest is behind, and says so (the rules hold on it).
	if d := r.c.Behind(time.Now()); d < 3*time.Second {
		t.Errorf("5 s into a store outage with events waiting, Behind = %s", d)
	}
	if s := r.metric(t, "cockpit_ingest_behind_seconds", "", ""); s < 3 {
		t.Errorf("5 s into a store outage, cockpit_ingest_behind_seconds = %.1f", s)
	}
	store.SetDown(false)

	waitRows(t, conn, uint64(len(msgs)), 2*time.Minute)
	waitFor(t, 30*time.Second, caughtUp)
	if s := r.metric(t, "cockpit_ingest_behind_seconds", "", ""); s >= 3 {
		t.Errorf("caught up again, cockpit_ingest_behind_seconds = %.1f", s)
	}
	if n := count(t, conn, "SELECT uniqExact(event_id) FROM events"); n != uint64(len(msgs)) {
		t.Fatalf("distinct ids = %d, want %d", n, len(msgs))
	}
	if retries := r.metric(t, "cockpit_ingest_retries_total", "", ""); retries == 0 {
		t.Error("the outage caused no retries: the store was never down for the consumer")
	}
	r.stop()
	if committed := committedTotal(t, brokers, "g-"+topic, topic, 4); committed != int64(len(msgs)) {
		t.Errorf("committed %d, want %d", committed, len(msgs))
	}
}

// TestIngestSurvivesKill9 runs the consumer as a child process and kills
// it with SIGKILL while events are being produced, then lets a last child
// finish: every event must be stored exactly once — physically, not after
// deduplication by key.
func TestIngestSurvivesKill9(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	db, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 4)
	msgs := conversationEvents("k9", 40000, 0)

	produced := make(chan error, 1)
	go func() {
		w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 500}
		defer w.Close()
		for i := 0; i < len(msgs); i += 500 {
			if err := w.WriteMessages(context.Background(), msgs[i:min(i+500, len(msgs))]...); err != nil {
				produced <- err
				return
			}
			time.Sleep(100 * time.Millisecond) // ~5k events/s for ~8 s
		}
		produced <- nil
	}()

	// Replays are counted from the children's logs: a kill that lands
	// between two batches proves less than one inside a batch, so the test
	// keeps killing until at least two landed inside one (or gives up).
	var replays atomic.Int64
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=1", envChildCH+"="+store.DSN(db), envChildKf+"="+brokers, envChildTp+"="+topic)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				line := sc.Text()
				if strings.Contains(line, "replaying an uncommitted batch") {
					replays.Add(1)
				} else if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
					t.Log("child: " + line)
				}
			}
		}()
		return cmd
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	var before []uint64
	for kills < 3 || (replays.Load() < 2 && kills < 8) {
		if kills >= 3 && count(t, conn, "SELECT count() FROM events") == uint64(len(msgs)) {
			break // nothing left to interrupt
		}
		cmd := spawn()
		// Let it join the group (after the dead member's session expires)
		// and start on the backlog that built up meanwhile, then kill it at
		// an arbitrary moment while it works through that backlog.
		deadline := time.Now().Add(20 * time.Second)
		n0 := count(t, conn, "SELECT count() FROM events")
		for time.Now().Before(deadline) && count(t, conn, "SELECT count() FROM events") == n0 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		before = append(before, count(t, conn, "SELECT count() FROM events"))
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	last := spawn()
	defer func() { _ = last.Process.Kill(); _ = last.Wait() }()
	waitRows(t, conn, uint64(len(msgs)), 2*time.Minute)
	time.Sleep(time.Second) // anything stored twice would show up by now
	_ = last.Process.Kill()
	_ = last.Wait()
	t.Logf("killed %d times; rows after each kill: %v; batches replayed on restart: %d", kills, before, replays.Load())
	if replays.Load() == 0 {
		t.Error("no kill landed inside a batch: the replay path was not exercised")
	}

	if n := count(t, conn, "SELECT count() FROM events"); n != uint64(len(msgs)) {
		t.Fatalf("events has %d rows, want exactly %d", n, len(msgs))
	}
	if n := count(t, conn, "SELECT uniqExact(event_id) FROM events"); n != uint64(len(msgs)) {
		t.Fatalf("distinct ids = %d, want %d", n, len(msgs))
	}
	if n := count(t, conn, "SELECT uniqExact(source_partition, source_offset) FROM events"); n != uint64(len(msgs)) {
		t.Fatalf("distinct source offsets = %d, want %d", n, len(msgs))
	}
	t.Logf("intent log holds %d batches", count(t, conn, "SELECT count() FROM ingest_batches"))
}

func TestConfigValidate(t *testing.T) {
	ok := ingest.Default()
	ok.Brokers = []string{"k:9092"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*ingest.Config){
		"no brokers":     func(c *ingest.Config) { c.Brokers = nil },
		"dlq is topic":   func(c *ingest.Config) { c.DeadLetterTopic = c.Topic },
		"negative rows":  func(c *ingest.Config) { c.BatchRows = -1 },
		"small bytes":    func(c *ingest.Config) { c.BatchBytes = 100 },
		"retry inverted": func(c *ingest.Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
		"negative age":   func(c *ingest.Config) { c.Limits.MaxAge = -time.Hour },
	}
	for name, mutate := range bad {
		c := ok
		mutate(&c)
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := ingest.New(c, nil, prometheus.NewRegistry(), testLogger(t)); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

// TestIngestBrokerRestart restarts the real broker under a running
// consumer: records produced before, during the consumer's reconnection and
// after are all stored exactly once.
func TestIngestBrokerRestart(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	_, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 4)
	dlq := kafkatest.Topic(t, brokers, 1)
	msgs := conversationEvents("br", 9000, 0)

	r := start(t, testConfig(brokers, topic, dlq), conn)
	kafkatest.Produce(t, brokers, topic, msgs[:3000]...)
	waitRows(t, conn, 3000, time.Minute)
	kafkatest.Produce(t, brokers, topic, msgs[3000:6000]...)
	kafkatest.Restart(t)
	kafkatest.Produce(t, brokers, topic, msgs[6000:]...)
	waitRows(t, conn, uint64(len(msgs)), 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	if n := count(t, conn, "SELECT count() FROM events"); n != uint64(len(msgs)) {
		t.Fatalf("events has %d rows after the restart, want exactly %d", n, len(msgs))
	}
	r.stop()
	if committed := committedTotal(t, brokers, "g-"+topic, topic, 4); committed != int64(len(msgs)) {
		t.Errorf("committed %d, want %d", committed, len(msgs))
	}
}

func TestEnsureTopics(t *testing.T) {
	brokers := kafkatest.Broker(t)
	cfg := ingest.Default()
	cfg.Brokers = []string{brokers}
	cfg.Topic = fmt.Sprintf("ensure-%d", time.Now().UnixNano())
	ctx := context.Background()
	if err := ingest.EnsureTopics(ctx, cfg, 3, 1); err != nil {
		t.Fatal(err)
	}
	conn, err := kafka.Dial("tcp", brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(cfg.Topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("events topic: %d partitions, %v", len(parts), err)
	}
	if parts, err := conn.ReadPartitions(cfg.Topic + ".dlq"); err != nil || len(parts) != 1 {
		t.Fatalf("dead-letter topic: %d partitions, %v", len(parts), err)
	}
	// Again: existing topics are left alone.
	if err := ingest.EnsureTopics(ctx, cfg, 5, 1); err != nil {
		t.Fatal(err)
	}
	if parts, _ := conn.ReadPartitions(cfg.Topic); len(parts) != 3 {
		t.Fatalf("existing topic changed to %d partitions", len(parts))
	}
	t.Cleanup(func() { _ = conn.DeleteTopics(cfg.Topic, cfg.Topic+".dlq") })

	// An error the broker means is returned at once, not retried.
	bad := cfg
	bad.Topic = cfg.Topic + "-rf3"
	bad.DeadLetterTopic = ""
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ingest.EnsureTopics(rctx, bad, 1, 3); err == nil || rctx.Err() != nil {
		t.Fatalf("replication 3 on one broker: %v (deadline reached: %v)", err, rctx.Err())
	}
	// A broker that does not answer is retried until the deadline.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	down := cfg
	down.Brokers = []string{gone}
	dctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if err := ingest.EnsureTopics(dctx, down, 1, 1); err == nil || dctx.Err() == nil {
		t.Fatalf("unreachable broker: %v, returned before the deadline", err)
	}
}
