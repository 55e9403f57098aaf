package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/schemas"
)

// workload is a known set of events and the order a producer sends them
// in: every event once, plus exact duplicates re-sent later, conversations
// whose events arrive out of order, late events (event time long before
// the records around them) sent at the very end, and records that are not
// events at all. Its counts are what the store and /api/v1/kpis must show,
// exactly, whatever happens to the processes in between.
type workload struct {
	region string
	from   time.Time // every event's time is in [from, to)
	to     time.Time
	msgs   []kafka.Message // production order

	ids        map[string]bool // distinct valid event ids
	bad        int             // records that must go to the dead-letter topic
	duplicates int             // records sent a second time
	late       int             // late events
	want       kpiWant         // for region over [from, to)
	mu         sync.Mutex
}

// kpiWant are the numbers /api/v1/kpis must return for the workload.
type kpiWant struct {
	Started, Closed, Resolved, Abandoned, Complaints int
}

// newWorkload returns conversations of region, spread over the hour
// before now.
func newWorkload(prefix, region string, conversations int, seed uint64) *workload {
	now := time.Now().UTC().Truncate(time.Second)
	w := &workload{region: region, from: now.Add(-2 * time.Hour), to: now, ids: map[string]bool{}}
	rng := rand.New(rand.NewPCG(seed, 99))
	var main, late []kafka.Message
	// Starts spread over the 50 minutes from an hour ago: every event is
	// in the past, so none is refused as timed in the future.
	step := 50 * time.Minute / time.Duration(max(conversations, 1))
	for i := range conversations {
		conv := fmt.Sprintf("%s-c%05d", prefix, i)
		at := now.Add(-time.Hour).Add(time.Duration(i) * step)
		isLate := i%10 == 3
		if isLate {
			// Ninety minutes old, and sent after everything else.
			at = now.Add(-90 * time.Minute).Add(time.Duration(i) * time.Millisecond)
		}
		evs := w.conversation(conv, i, at)
		if i%9 == 4 {
			// Out of order: the end first, the start last.
			for l, r := 0, len(evs)-1; l < r; l, r = l+1, r-1 {
				evs[l], evs[r] = evs[r], evs[l]
			}
		}
		if isLate {
			late = append(late, evs...)
			w.late += len(evs)
		} else {
			main = append(main, evs...)
		}
	}
	for i, m := range main {
		w.msgs = append(w.msgs, m)
		if i%40 == 39 {
			// An exact duplicate of an earlier record, as a producer that
			// retried would send it.
			w.msgs = append(w.msgs, main[rng.IntN(i+1)])
			w.duplicates++
		}
		if i%400 == 199 {
			w.msgs = append(w.msgs, kafka.Message{Key: fmt.Appendf(nil, "bad-%s-%d", prefix, w.bad),
				Value: []byte(`{"event_id":"` + prefix + `-bad","schema_version":1,"type":"conversation.started"`)})
			w.bad++
		}
	}
	w.msgs = append(w.msgs, late...)
	// Late ones are duplicated too, right after themselves.
	if len(late) > 0 {
		w.msgs = append(w.msgs, late[0], late[len(late)-1])
		w.duplicates += 2
	}
	return w
}

// conversation returns the events of one conversation and counts them.
func (w *workload) conversation(conv string, i int, at time.Time) []kafka.Message {
	ev := func(n int, typ schemas.EventType, d time.Duration) schemas.Event {
		return schemas.Event{EventID: fmt.Sprintf("%s-%d", conv, n), SchemaVersion: 1, Type: typ,
			OccurredAt: at.Add(d), ConversationID: conv}
	}
	start := ev(0, schemas.ConversationStarted, 0)
	start.Channel, start.Region, start.Entry, start.Queue, start.BusinessLine = "chat", w.region, "bot", "故障-q1", "billing"
	cust := ev(1, schemas.MessageSent, 2*time.Second)
	s := -0.6
	if i%2 == 1 {
		s = 0.4
	}
	cust.Actor, cust.Sentiment, cust.Text = &schemas.Actor{Role: "customer", ID: "u-" + conv}, &s, "我的账单不对 \"quoted\" <b>"
	bot := ev(2, schemas.MessageSent, 5*time.Second)
	bot.Actor, bot.Text = &schemas.Actor{Role: "bot", ID: "bot-1"}, "正在为您查询"
	evs := []schemas.Event{start, cust, bot}
	w.want.Started++
	if i%7 == 0 {
		evs = append(evs, ev(3, schemas.ConversationAbandoned, 40*time.Second))
		w.want.Abandoned++
	} else {
		end := ev(3, schemas.ConversationClosed, 40*time.Second)
		end.Resolution = "resolved"
		if i%3 == 0 {
			end.Resolution = "unresolved"
		} else {
			w.want.Resolved++
		}
		evs = append(evs, end)
		w.want.Closed++
	}
	if i%5 == 0 {
		c := ev(4, schemas.ComplaintFiled, 50*time.Second)
		c.Region, c.Severity, c.Category = w.region, "high", "billing"
		evs = append(evs, c)
		w.want.Complaints++
	}
	out := make([]kafka.Message, len(evs))
	for k, e := range evs {
		v, err := json.Marshal(e)
		if err != nil {
			panic(err)
		}
		w.ids[e.EventID] = true
		out[k] = kafka.Message{Key: []byte(conv), Value: v}
	}
	return out
}

// add counts events produced outside the prepared order (an alert flood),
// which the exact checks include.
func (w *workload) add(evs []schemas.Event) []kafka.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]kafka.Message, len(evs))
	for i, e := range evs {
		v, err := json.Marshal(e)
		if err != nil {
			panic(err)
		}
		w.ids[e.EventID] = true
		out[i] = kafka.Message{Key: []byte(e.ConversationID), Value: v}
	}
	return out
}

func (w *workload) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// producer sends records to the topic, paced, and retries a chunk the
// broker did not acknowledge until it is (a broker restart makes it resend
// records it may already have: more duplicates, which must fold too).
type producer struct {
	w    *kafka.Writer
	done chan struct{} // closed when the producer stops
	err  error         // valid after done
}

func newWriter(brokers, topic string) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 200,
		WriteTimeout: 10 * time.Second, MaxAttempts: 3}
}

// produce sends msgs in chunks spread evenly over d, in the background.
func produce(t *testing.T, brokers, topic string, msgs []kafka.Message, d time.Duration) *producer {
	p := &producer{w: newWriter(brokers, topic), done: make(chan struct{})}
	// Chunks of at most 100 records, one at least every quarter second, so
	// that records flow steadily rather than in bursts seconds apart.
	chunk := min(100, max(1, len(msgs)*int(250*time.Millisecond)/int(max(d, time.Millisecond))))
	chunks := (len(msgs) + chunk - 1) / chunk
	pause := d / time.Duration(max(chunks, 1))
	go func() {
		defer close(p.done)
		defer p.w.Close()
		deadline := time.Now().Add(d + 5*time.Minute)
		for i := 0; i < len(msgs); i += chunk {
			part := msgs[i:min(i+chunk, len(msgs))]
			if err := sendRetrying(p.w, part, deadline); err != nil {
				p.err = err
				return
			}
			time.Sleep(pause)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		case <-time.After(6 * time.Minute):
		}
	})
	return p
}

func sendRetrying(w *kafka.Writer, msgs []kafka.Message, deadline time.Time) error {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := w.WriteMessages(ctx, msgs...)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("produce %d records: %w", len(msgs), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// finished reports whether the producer has sent everything (or failed).
func (p *producer) finished() bool { return closed(p.done) }

// wait waits for the producer to finish sending.
func (p *producer) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatal(p.err)
		}
	case <-time.After(10 * time.Minute):
		t.Fatal("producer did not finish")
	}
}

// sendNow produces msgs synchronously.
func sendNow(t *testing.T, brokers, topic string, msgs []kafka.Message) {
	t.Helper()
	w := newWriter(brokers, topic)
	defer w.Close()
	if err := sendRetrying(w, msgs, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// topicEnd sums the high watermarks of the topic's partitions: every
// record ever written to it.
func topicEnd(t *testing.T, brokers, topic string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 10 * time.Second}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range md.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.LastOffsetOf(p.ID))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("list offsets of %s/%d: %v", topic, p.Partition, p.Error)
		}
		sum += p.LastOffset
	}
	return sum
}

// committed sums the group's committed offsets over the topic.
func committed(t *testing.T, brokers, group, topic string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 10 * time.Second}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3}}})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

// waitIngested waits until the group has committed every record of the
// topic, which it does only after they are stored.
func waitIngested(t *testing.T, d *deployment, within time.Duration) int64 {
	t.Helper()
	var end int64
	waitUntil(t, within, "every record is stored and committed", func() bool {
		end = topicEnd(t, d.brokers, d.topic)
		return committed(t, d.brokers, d.group, d.topic) == end
	})
	return end
}

// checkExact asserts that the store and the API count the workload's
// events exactly once: no loss, no double count. records is the number of
// records in the topic (duplicates and bad ones included).
func checkExact(t *testing.T, w *workload, conn driver.Conn, api string, records int64) {
	t.Helper()
	distinct := uint64(w.distinct())
	n := count(t, conn, "SELECT uniqExact(event_id) FROM events")
	final := count(t, conn, "SELECT count() FROM events FINAL")
	rows := count(t, conn, "SELECT count() FROM events")
	offsets := count(t, conn, "SELECT uniqExact(source_partition, source_offset) FROM events")
	t.Logf("produced %d distinct events (%d duplicate sends, %d late, %d bad records) in %d records; "+
		"stored: %d distinct ids, %d rows FINAL, %d physical rows from %d distinct offsets",
		distinct, w.duplicates, w.late, w.bad, records, n, final, rows, offsets)
	if n != distinct {
		t.Errorf("distinct event ids = %d, want %d", n, distinct)
	}
	if final != distinct {
		t.Errorf("count() FINAL = %d, want %d", final, distinct)
	}
	// A record stored twice (a replay that was not recognised) shows as a
	// source offset with two rows; merges are stopped, so nothing folds
	// them away (duplicates within one insert block fold at insert).
	if rows != offsets {
		t.Errorf("%d physical rows from %d distinct source offsets: some record was stored twice", rows, offsets)
	}
	if int64(offsets) > records-int64(w.bad) {
		t.Errorf("%d distinct source offsets stored, but the topic has only %d valid records", offsets, records-int64(w.bad))
	}
	if t.Failed() {
		logPartitions(t, conn)
	}
	checkKPIs(t, w, api)
}

// checkKPIs compares /api/v1/kpis for the workload's region with its
// counts.
func checkKPIs(t *testing.T, w *workload, api string) {
	t.Helper()
	q := url.Values{"region": {w.region}, "from": {w.from.Format(time.RFC3339)}, "to": {w.to.Format(time.RFC3339)}}
	var k map[string]any
	if err := getJSON(api, "/api/v1/kpis?"+q.Encode(), &k); err != nil {
		t.Fatal(err)
	}
	num := func(name string) float64 {
		v, ok := k[name].(float64)
		if !ok {
			t.Errorf("kpis: %s = %v, want a number", name, k[name])
		}
		return v
	}
	want := w.want
	for _, c := range []struct {
		name string
		want float64
	}{
		{"conversations_started", float64(want.Started)},
		{"conversations_closed", float64(want.Closed)},
		{"complaints", float64(want.Complaints)},
		{"resolution_rate", float64(want.Resolved) / float64(want.Closed)},
		{"abandon_rate", float64(want.Abandoned) / float64(want.Closed+want.Abandoned)},
	} {
		if got := num(c.name); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("kpis %s for %s = %v, want %v", c.name, w.region, got, c.want)
		}
	}
	t.Logf("kpis for %s: started %d, closed %d, resolved %d, abandoned %d, complaints %d: as produced",
		w.region, want.Started, want.Closed, want.Resolved, want.Abandoned, want.Complaints)
}

// deadLetterKeys reads the dead-letter topic and returns the distinct
// record keys in it.
func deadLetterKeys(t *testing.T, brokers, topic string) map[string]int {
	t.Helper()
	end := topicEnd(t, brokers, topic)
	out := map[string]int{}
	if end == 0 {
		return out
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for read := int64(0); read < end; read++ {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("read %d of %d dead letters", read, end)
			}
			t.Fatal(err)
		}
		out[string(m.Key)]++
	}
	return out
}

// checkDeadLetters asserts that every bad record reached the dead-letter
// topic (at least once: a replayed batch sends its dead letters again).
func checkDeadLetters(t *testing.T, w *workload, brokers, dlq string) {
	t.Helper()
	keys := deadLetterKeys(t, brokers, dlq)
	n := 0
	for k := range keys {
		if strings.HasPrefix(k, "bad-") {
			n++
		}
	}
	if n != w.bad {
		t.Errorf("dead-letter topic holds %d distinct bad records, want %d", n, w.bad)
	}
}

// logPartitions shows what the store holds of each partition, to tell a
// lost range from a lost partition.
func logPartitions(t *testing.T, conn driver.Conn) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT source_partition, count(), min(source_offset), max(source_offset)
		FROM events GROUP BY source_partition ORDER BY source_partition`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var p int32
		var n uint64
		var lo, hi int64
		if err := rows.Scan(&p, &n, &lo, &hi); err == nil {
			t.Logf("partition %d: %d rows, offsets %d..%d", p, n, lo, hi)
		}
	}
}
