package ingest

import (
	"context"
	"errors"
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

// TestGroupWatchMissingTopic: while the broker does not know the topic
// (one that came back empty), the member has nothing to read and the
// watch nothing to watch, yet it is not caught up: behind since it last
// saw the topic, or since it began; current again once the topic exists
// and holds nothing unstored. A member that reads every partition counts
// a topic gone from under it the same way.
func TestGroupWatchMissingTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	topic := fmt.Sprintf("cockpit-missing-%d", time.Now().UnixNano())
	ctx := context.Background()
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	g := newGroupWatch(strings.Split(brokers, ","), topic, "watch-missing", at(0))
	if err := g.poll(ctx, at(1)); !errors.Is(err, errTopicMissing) {
		t.Fatalf("poll of a topic the broker does not know: %v, want errTopicMissing", err)
	}
	if d := g.behind(at(4)); d != 4*time.Second {
		t.Fatalf("topic missing: behind %s at 4 s, want 4 s (since the watch began)", d)
	}
	res, err := g.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	t.Cleanup(func() {
		_, _ = g.client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	// The topic exists and holds nothing: caught up as of the poll that
	// found it (a new group has no coordinator for a moment: ask again).
	s := 5
	for err = g.poll(ctx, at(s)); err != nil && s < 60; err = g.poll(ctx, at(s)) {
		time.Sleep(200 * time.Millisecond)
		s++
	}
	if err != nil {
		t.Fatalf("poll once the topic exists: %v", err)
	}
	if d := g.behind(at(s)); d != 0 {
		t.Fatalf("topic created, nothing in it: behind %s, want 0", d)
	}
	// This member reads its one partition; the topic goes away.
	g.assign([]int{0})
	if err := g.poll(ctx, at(s+1)); err != nil {
		t.Fatal(err)
	}
	last := s + 1
	if d := g.behind(at(s + 2)); d != 0 {
		t.Fatalf("a member reading every partition: behind %s, want 0", d)
	}
	if _, err := g.client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		t.Fatal(err)
	}
	// The next metadata read (every 30 s while the topic is there) finds
	// it gone once the deletion has gone through.
	s = last
	for {
		s += 31
		err = g.poll(ctx, at(s))
		if errors.Is(err, errTopicMissing) || s > 2000 {
			break
		}
		if err == nil {
			last = s
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !errors.Is(err, errTopicMissing) {
		t.Fatalf("poll after the topic was deleted: %v", err)
	}
	if d, want := g.behind(at(s+1)), time.Duration(s+1-last)*time.Second; d != want {
		t.Fatalf("topic deleted: behind %s, want %s (since it was last seen)", d, want)
	}
}
