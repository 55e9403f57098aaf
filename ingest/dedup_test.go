package ingest_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/ingest"
	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// complaint is a complaint.filed record: complaints are counted per event,
// so a repeat that is stored shows in the KPI at once.
func complaint(id, conv string, at time.Time) kafka.Message {
	e := schemas.Event{
		EventID: id, SchemaVersion: 1, Type: schemas.ComplaintFiled, OccurredAt: at, ConversationID: conv,
		Region: "广州", Category: "billing", Severity: "high",
	}
	v, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(conv), Value: v, Time: time.Now()}
}

// produceTo writes msgs, in order, to one partition of topic.
func produceTo(t *testing.T, brokers, topic string, partition int, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetRequiredAcks(-1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteMessages(msgs...); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

// storedVersion is what events holds for one event_id.
type storedVersion struct {
	conv      string
	at        time.Time
	partition int32
	offset    int64
}

func storedVersions(t *testing.T, conn driver.Conn, id string) []storedVersion {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT conversation_id, occurred_at, source_partition, source_offset FROM events WHERE event_id = '"+id+"' ORDER BY source_partition, source_offset")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedVersion
	for rows.Next() {
		var v storedVersion
		if err := rows.Scan(&v.conv, &v.at, &v.partition, &v.offset); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// deadLetter is one record of the dead-letter topic.
type deadLetter struct {
	key     string
	value   []byte
	headers map[string]string
}

func readAllDeadLetters(t *testing.T, brokers, topic string, n int) []deadLetter {
	t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []deadLetter
	for len(out) < n {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters (%d of %d): %v", len(out), n, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		out = append(out, deadLetter{key: string(m.Key), value: m.Value, headers: h})
	}
	return out
}

// TestIngestDuplicateEventID sends repeats of event_ids that carry another
// conversation, another occurred_at (in another window), that sit in the
// same batch as the first version, on other partitions, on every partition
// at once, and after a restart of the consumer: each event_id is stored
// once, as its first stored version, the KPIs count it once, and every
// repeat is counted and sent to the dead-letter topic with its source.
func TestIngestDuplicateEventID(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	_, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 4)
	dlq := kafkatest.Topic(t, brokers, 1)
	cfg := testConfig(brokers, topic, dlq)
	ctx := context.Background()

	// Window A is one closed hour, window B the next one.
	hourA := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	hourB := hourA.Add(time.Hour)
	at := func(m int) time.Time { return hourA.Add(time.Duration(m) * time.Minute) }

	r1 := start(t, cfg, conn)
	// First versions. dup-batch is repeated right behind its first version,
	// in the same fetch and batch, with another conversation and hour.
	produceTo(t, brokers, topic, 0,
		complaint("dup-conv", "conv-a", at(10)),
		complaint("dup-time", "conv-t", at(20)))
	produceTo(t, brokers, topic, 2,
		complaint("dup-batch", "conv-b1", at(30)),
		complaint("dup-batch", "conv-b2", at(90)))
	waitFor(t, time.Minute, func() bool {
		return count(t, conn, "SELECT uniqExact(event_id) FROM events") >= 3 && r1.c.Stats().Consumed.Load() >= 4
	})
	// Repeats of stored events: on another partition with another
	// conversation, and on the same partition in the next hour.
	produceTo(t, brokers, topic, 1, complaint("dup-conv", "conv-x", at(10)))
	produceTo(t, brokers, topic, 0, complaint("dup-time", "conv-t", at(80)))
	// The same new event_id on every partition at once: the partitions
	// are stored concurrently and exactly one copy may pass.
	for p := range 4 {
		produceTo(t, brokers, topic, p, complaint("dup-race", "conv-r"+strconv.Itoa(p), at(40)))
	}
	waitFor(t, time.Minute, func() bool { return r1.c.Stats().Consumed.Load() >= 10 })
	waitFor(t, 30*time.Second, func() bool {
		return r1.metric(t, "cockpit_ingest_duplicates_total", "", "") >= 6
	})
	r1.stop()
	if got := r1.metric(t, "cockpit_ingest_duplicates_total", "", ""); got != 6 {
		t.Errorf("first run: duplicates_total = %v, want 6", got)
	}

	// A new process on the same store: repeats of events stored by the
	// first one are still repeats.
	r2 := start(t, cfg, conn)
	produceTo(t, brokers, topic, 3,
		complaint("dup-conv", "conv-y", at(95)),
		complaint("dup-time", "conv-z", at(5)),
		complaint("after-restart", "conv-n", at(150)))
	waitFor(t, time.Minute, func() bool {
		return count(t, conn, "SELECT count() FROM events WHERE event_id = 'after-restart'") == 1
	})
	waitFor(t, 30*time.Second, func() bool {
		return r2.metric(t, "cockpit_ingest_duplicates_total", "", "") >= 2
	})
	r2.stop()
	if got := r2.metric(t, "cockpit_ingest_duplicates_total", "", ""); got != 2 {
		t.Errorf("second run: duplicates_total = %v, want 2", got)
	}

	// Stored once, physically (merges are stopped), as the first version.
	if n := count(t, conn, "SELECT count() FROM events"); n != 5 {
		t.Errorf("events holds %d rows, want 5 (one per event_id)", n)
	}
	want := map[string]storedVersion{
		"dup-conv":  {conv: "conv-a", at: at(10), partition: 0, offset: 0},
		"dup-time":  {conv: "conv-t", at: at(20), partition: 0, offset: 1},
		"dup-batch": {conv: "conv-b1", at: at(30), partition: 2, offset: 0},
	}
	for id, w := range want {
		got := storedVersions(t, conn, id)
		if len(got) != 1 || got[0].conv != w.conv || !got[0].at.Equal(w.at) || got[0].partition != w.partition || got[0].offset != w.offset {
			t.Errorf("%s stored as %+v, want only %+v", id, got, w)
		}
	}
	race := storedVersions(t, conn, "dup-race")
	if len(race) != 1 {
		t.Errorf("dup-race stored %d times, want once: %+v", len(race), race)
	}

	// The KPIs count every event once, in the window of its first version.
	kpis, err := kpi.NewKPIStore(conn, kpi.KPIConfig{
		Rollup: kpi.RollupConfig{Disabled: true}, Live: kpi.LiveConfig{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name     string
		from, to time.Time
		want     uint64
	}{
		{"A", hourA, hourB, 4},
		{"B", hourB, hourB.Add(time.Hour), 0},
		{"A+B", hourA, hourB.Add(time.Hour), 4},
	} {
		snap, err := kpis.KPIs(ctx, kpi.Window{From: w.from, To: w.to}, kpi.Filters{})
		if err != nil {
			t.Fatal(err)
		}
		if snap.Complaints != w.want {
			t.Errorf("window %s: complaints = %d, want %d", w.name, snap.Complaints, w.want)
		}
	}
	// The repeats' conversations were never stored.
	if n := count(t, conn, "SELECT count() FROM conversations WHERE conversation_id IN ('conv-x', 'conv-y', 'conv-z', 'conv-b2')"); n != 0 {
		t.Errorf("conversations of repeats: %d rows, want 0", n)
	}
	var last time.Time
	if err := conn.QueryRow(ctx, "SELECT max(last_event_at) FROM conversations WHERE conversation_id = 'conv-t'").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if !last.Equal(at(20)) {
		t.Errorf("conv-t last event at %v, want %v (the repeat's time must not count)", last, at(20))
	}

	// Every repeat is in the dead-letter topic with its source and the
	// first version's.
	dls := readAllDeadLetters(t, brokers, dlq, 8)
	byID := map[string][]deadLetter{}
	for _, d := range dls {
		if d.headers[ingest.HeaderReason] != string(ingest.ReasonDuplicateEventID) {
			t.Errorf("dead letter %s: reason %q, want %s", d.key, d.headers[ingest.HeaderReason], ingest.ReasonDuplicateEventID)
		}
		if d.headers[ingest.HeaderSourceTopic] != topic || d.headers[ingest.HeaderSourcePartition] == "" || d.headers[ingest.HeaderSourceOffset] == "" {
			t.Errorf("dead letter %s without its source: %v", d.key, d.headers)
		}
		var e schemas.Event
		if err := json.Unmarshal(d.value, &e); err != nil {
			t.Errorf("dead letter %s: value is not the original record: %v", d.key, err)
		}
		byID[e.EventID] = append(byID[e.EventID], d)
	}
	for id, n := range map[string]int{"dup-conv": 2, "dup-time": 2, "dup-batch": 1, "dup-race": 3} {
		if len(byID[id]) != n {
			t.Errorf("%s: %d dead letters, want %d", id, len(byID[id]), n)
		}
	}
	for id, w := range want {
		for _, d := range byID[id] {
			if d.headers[ingest.HeaderFirstPartition] != strconv.Itoa(int(w.partition)) || d.headers[ingest.HeaderFirstOffset] != strconv.FormatInt(w.offset, 10) {
				t.Errorf("dead letter of %s from %s/%s names the first version %s/%s, want %d/%d", id,
					d.headers[ingest.HeaderSourcePartition], d.headers[ingest.HeaderSourceOffset],
					d.headers[ingest.HeaderFirstPartition], d.headers[ingest.HeaderFirstOffset], w.partition, w.offset)
			}
		}
	}
	if len(race) == 1 {
		for _, d := range byID["dup-race"] {
			if d.headers[ingest.HeaderSourcePartition] == strconv.Itoa(int(race[0].partition)) {
				t.Errorf("dup-race: the stored copy (partition %d) is also a dead letter", race[0].partition)
			}
		}
	}
}

// TestIngestReplayIsNotARepeat leaves the store as a crash between insert
// and commit leaves it: the intent of a batch recorded, half of its rows
// stored, nothing committed. The consumer replays the batch: the stored
// rows are recognised by their source offsets (the same records, not
// repeats), the others are stored, and only the genuine repeat inside the
// batch is counted.
func TestIngestReplayIsNotARepeat(t *testing.T) {
	brokers := kafkatest.Broker(t)
	store := chtest.Start(t)
	_, conn := store.Database(t)
	stopMerges(t, conn)
	topic := kafkatest.Topic(t, brokers, 1)
	dlq := kafkatest.Topic(t, brokers, 1)
	ctx := context.Background()

	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	var events []schemas.Event
	var msgs []kafka.Message
	for i := range 11 {
		id, conv := "rp-"+strconv.Itoa(i), "rp-c"+strconv.Itoa(i)
		if i == 10 {
			id = "rp-0" // a repeat of the first, with another conversation
		}
		m := complaint(id, conv, base.Add(time.Duration(i)*time.Minute))
		var e schemas.Event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		events, msgs = append(events, e), append(msgs, m)
	}
	produceTo(t, brokers, topic, 0, msgs...)
	// The interrupted attempt: intent for offsets 0..10, rows 0..4 stored
	// (ingest.Insert numbers offsets from 0 on partition 0, as the
	// consumer would have) under the batch's deduplication token, as the
	// first block of an insert cut off by a kill is.
	if err := conn.Exec(ctx, "INSERT INTO ingest_batches (topic, partition, first_offset, last_offset, rows) VALUES ('"+topic+"', 0, 0, 10, 11)"); err != nil {
		t.Fatal(err)
	}
	digest := xxhash.New()
	for _, m := range msgs {
		_, _ = digest.Write(m.Value)
	}
	token := topic + "/0/0-10/" + strconv.FormatUint(digest.Sum64(), 16)
	if err := ingest.Insert(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplicate": 1, "insert_deduplication_token": token,
	})), conn, events[:5]); err != nil {
		t.Fatal(err)
	}

	r := start(t, testConfig(brokers, topic, dlq), conn)
	waitFor(t, time.Minute, func() bool {
		return count(t, conn, "SELECT count() FROM events") >= 10 && r.c.Stats().Duplicates.Load() >= 1
	})
	waitFor(t, 30*time.Second, func() bool { return committedTotal(t, brokers, "g-"+topic, topic, 1) == 11 })
	r.stop()

	if n := count(t, conn, "SELECT count() FROM events"); n != 10 {
		t.Errorf("events holds %d rows, want 10", n)
	}
	if n := count(t, conn, "SELECT uniqExact(source_offset) FROM events WHERE source_partition = 0 AND source_offset BETWEEN 0 AND 9"); n != 10 {
		t.Errorf("%d of offsets 0..9 stored, want 10", n)
	}
	if got := storedVersions(t, conn, "rp-0"); len(got) != 1 || got[0].conv != "rp-c0" || got[0].offset != 0 {
		t.Errorf("rp-0 stored as %+v, want only the version of offset 0", got)
	}
	if got := r.metric(t, "cockpit_ingest_replays_total", "", ""); got != 1 {
		t.Errorf("replays_total = %v, want 1", got)
	}
	if got := r.metric(t, "cockpit_ingest_duplicates_total", "", ""); got != 1 {
		t.Errorf("duplicates_total = %v, want 1 (the stored half of the replay is not a repeat)", got)
	}
	dls := readAllDeadLetters(t, brokers, dlq, 1)
	if h := dls[0].headers; h[ingest.HeaderSourceOffset] != "10" || h[ingest.HeaderFirstOffset] != "0" || h[ingest.HeaderFirstPartition] != "0" {
		t.Errorf("dead letter of the repeat: %v", h)
	}
}
