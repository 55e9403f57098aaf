package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/internal/kafkatest"
)

// TestGroupWatch, against the real broker: a member that reads partition 0
// of two is behind, for partition 1, from the first poll until the group
// has committed partition 1 up to the watermark a poll saw, then behind
// since that poll; what it reads itself does not count; a member that
// reads every partition watches none.
func TestGroupWatch(t *testing.T) {
	brokers := kafkatest.Broker(t)
	topic := kafkatest.Topic(t, brokers, 2)
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, "m%d", i)})
	}
	kafkatest.Produce(t, brokers, topic, msgs...)
	group := "watch-" + strings.ReplaceAll(t.Name(), "/", "-")
	ctx := context.Background()
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	g := newGroupWatch(strings.Split(brokers, ","), topic, group, at(0))
	g.assign([]int{0})
	poll := func(s int) {
		t.Helper()
		// A group the broker has not seen yet has no coordinator for a
		// moment (Not Coordinator For Group): ask again.
		var err error
		for range 50 {
			if err = g.poll(ctx, at(s)); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("poll at %d s: %v", s, err)
	}
	commit := func(partition int, offset int64) {
		t.Helper()
		res, err := g.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset}}}})
		if err == nil {
			for _, p := range res.Topics[topic] {
				err = p.Error
			}
		}
		if err != nil {
			t.Fatalf("commit partition %d at %d: %v", partition, offset, err)
		}
	}
	hwm, _, err := g.readWatermarks(ctx, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if hwm[0]+hwm[1] != 20 || hwm[1] == 0 {
		t.Fatalf("watermarks %v, want 20 records over both partitions", hwm)
	}

	poll(1)
	if d := g.behind(at(3)); d != 3*time.Second {
		t.Fatalf("nothing committed: behind %s at 3 s, want 3 s (since the watch began)", d)
	}
	// Partition 0 is this member's own: committing it changes nothing.
	commit(0, hwm[0])
	poll(4)
	if d := g.behind(at(5)); d != 5*time.Second {
		t.Fatalf("only this member's partition committed: behind %s at 5 s, want 5 s", d)
	}
	// Partially committed: still behind.
	commit(1, hwm[1]-1)
	poll(6)
	if d := g.behind(at(6)); d != 6*time.Second {
		t.Fatalf("partition 1 committed short of its watermark: behind %s, want 6 s", d)
	}
	// Committed up to what every poll saw: stored as of the newest poll.
	commit(1, hwm[1])
	poll(8)
	if d := g.behind(at(9)); d != time.Second {
		t.Fatalf("partition 1 committed: behind %s at 9 s, want 1 s (since the poll at 8 s)", d)
	}
	// New records on partition 1: behind since the last poll all stored
	// while they wait.
	var more []kafka.Message
	for i := range 10 {
		more = append(more, kafka.Message{Value: fmt.Appendf(nil, "n%d", i)})
	}
	kafkatest.Produce(t, brokers, topic, more...)
	poll(10)
	poll(12)
	if d := g.behind(at(13)); d != 5*time.Second {
		t.Fatalf("new records on partition 1 not committed: behind %s at 13 s, want 5 s (since 8 s)", d)
	}
	hwm, _, err = g.readWatermarks(ctx, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	commit(1, hwm[1])
	poll(14)
	if d := g.behind(at(14)); d != 0 {
		t.Fatalf("caught up again: behind %s at 14 s, want 0", d)
	}

	// A member that reads both partitions watches none.
	g.assign([]int{0, 1})
	kafkatest.Produce(t, brokers, topic, more...)
	poll(20)
	if d := g.behind(at(30)); d != 0 {
		t.Fatalf("a member reading every partition: behind %s, want 0", d)
	}
}
