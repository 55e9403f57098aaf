package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// groupWatch follows the partitions of the events topic that this member
// does not read: how far the group has stored them, from the broker's
// high watermarks and the group's committed offsets (a member commits a
// batch's offsets only once its rows are stored). A member that reads
// some of the partitions, or none (more instances than partitions),
// otherwise knows nothing of the others' backlog, and its wall would
// call itself current while another member is minutes behind.
//
// Each poll asks for the high watermarks first and the committed offsets
// after: when the committed offsets of every watched partition reach the
// watermarks a poll saw, every event produced before that poll is
// stored. The watch is behind since the newest such poll (or since it
// began, before one). A member that reads every partition watches none
// and asks the broker nothing but the topic's partitions, every
// groupMetadataEvery. A broker that does not know the topic (one that came
// back empty) leaves the group nothing to read and nothing to watch: the
// watch is behind since it last saw the topic, and asks for it every poll
// until it exists again.
type groupWatch struct {
	client       *kafka.Client
	topic, group string

	mu sync.Mutex
	// mine are the partitions this member reads (the last generation's
	// assignment); assigned is false before the first.
	mine     map[int]bool
	assigned bool
	// partitions are the topic's, as of metadataAt.
	partitions []int
	metadataAt time.Time
	// polls are the watermarks seen since the newest poll all stored, by
	// the watched partitions at the time.
	polls []groupPoll
	// storedAt is the newest poll whose watermarks the group had all
	// committed; zero before one. since is when the watch began.
	storedAt, since time.Time
	watching        bool // the last poll found partitions to watch
	watched         bool // one ever did
	// missing is set while the broker does not know the topic (a broker
	// that came back empty); existedAt is when a metadata read last
	// found it, zero before one did.
	missing   bool
	existedAt time.Time
}

// errTopicMissing: the broker does not know the events topic.
var errTopicMissing = errors.New("the broker does not know the topic: nothing is ingested until it exists again")

type groupPoll struct {
	at  time.Time
	hwm map[int]int64
}

// groupMetadataEvery is how often the watch reads the topic's partitions.
const groupMetadataEvery = 30 * time.Second

// groupPollEvery is how often it polls offsets while it watches.
const groupPollEvery = time.Second

// groupPollsKept bounds the polls kept through a long backlog: the
// oldest go, which makes the watch no more than more cautious.
const groupPollsKept = 3600

func newGroupWatch(brokers []string, topic, group string, now time.Time) *groupWatch {
	return &groupWatch{client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second},
		topic: topic, group: group, since: now}
}

// assign records the partitions a generation gave this member.
func (g *groupWatch) assign(ids []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A rebalance may follow new partitions: read them again.
	g.mine, g.assigned, g.metadataAt = map[int]bool{}, true, time.Time{}
	for _, id := range ids {
		g.mine[id] = true
	}
}

// behind is how long ago the partitions this member does not read were
// last all stored: zero when it reads every one.
func (g *groupWatch) behind(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.missing {
		// No partition to read, none to watch: not caught up, since the
		// topic was last seen (or the watch began).
		if g.existedAt.IsZero() {
			return max(now.Sub(g.since), 0)
		}
		return max(now.Sub(g.existedAt), 0)
	}
	if !g.watching {
		return 0
	}
	if g.storedAt.IsZero() {
		return max(now.Sub(g.since), 0)
	}
	return max(now.Sub(g.storedAt), 0)
}

// others are the partitions to watch: the topic's that this member does
// not read (all of them before its first generation).
func (g *groupWatch) others() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for _, p := range g.partitions {
		if !g.assigned || !g.mine[p] {
			out = append(out, p)
		}
	}
	return out
}

// poll reads the topic's partitions when due and, if this member does not
// read them all, the watched partitions' watermarks and committed
// offsets.
func (g *groupWatch) poll(ctx context.Context, now time.Time) error {
	g.mu.Lock()
	due := g.metadataAt.IsZero() || g.missing || now.Sub(g.metadataAt) >= groupMetadataEvery
	g.mu.Unlock()
	if due {
		parts, err := g.readPartitions(ctx)
		if err != nil {
			return err
		}
		g.mu.Lock()
		g.partitions, g.metadataAt, g.missing = parts, now, len(parts) == 0
		if !g.missing {
			g.existedAt = now
		}
		g.mu.Unlock()
		if len(parts) == 0 {
			return fmt.Errorf("%s: %w", g.topic, errTopicMissing)
		}
	}
	others := g.others()
	if len(others) == 0 {
		g.mu.Lock()
		g.watching, g.polls, g.storedAt = false, nil, time.Time{}
		g.mu.Unlock()
		return nil
	}
	hwm, first, err := g.readWatermarks(ctx, others)
	if err != nil {
		return err
	}
	committed, err := g.readCommitted(ctx, others)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.watching {
		// Watching anew (the assignment changed): only polls from now on
		// say anything of these partitions. The first time, the member
		// has known nothing of them since it began.
		if g.watched {
			g.since = now
		}
		g.watching, g.watched, g.polls, g.storedAt = true, true, nil, time.Time{}
	}
	g.polls = append(g.polls, groupPoll{at: now, hwm: hwm})
	if len(g.polls) > groupPollsKept {
		g.polls = slices.Delete(g.polls, 0, len(g.polls)-groupPollsKept)
	}
	stored := func(p groupPoll) bool {
		for _, id := range others {
			w, ok := p.hwm[id]
			if !ok {
				return false
			}
			// Offsets below the log's start are gone: nothing there
			// can still be stored.
			if max(committed[id], first[id]) < w {
				return false
			}
		}
		return true
	}
	for i := len(g.polls) - 1; i >= 0; i-- {
		if stored(g.polls[i]) {
			g.storedAt = g.polls[i].at
			g.polls = slices.Delete(g.polls, 0, i+1)
			break
		}
	}
	return nil
}

func (g *groupWatch) readPartitions(ctx context.Context) ([]int, error) {
	md, err := g.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{g.topic}})
	if err != nil {
		return nil, fmt.Errorf("cannot read the partitions of %s: %w", g.topic, err)
	}
	var out []int
	for _, t := range md.Topics {
		if t.Name != g.topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil, nil
			}
			return nil, fmt.Errorf("cannot read the partitions of %s: %w", g.topic, t.Error)
		}
		for _, p := range t.Partitions {
			out = append(out, p.ID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// readWatermarks returns the high watermarks (the next offset to be
// written) and the log start offsets of partitions ids.
func (g *groupWatch) readWatermarks(ctx context.Context, ids []int) (hwm, first map[int]int64, err error) {
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	res, err := g.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{g.topic: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the offsets of %s: %w", g.topic, err)
	}
	hwm, first = map[int]int64{}, map[int]int64{}
	for _, p := range res.Topics[g.topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("cannot read the offsets of %s partition %d: %w", g.topic, p.Partition, p.Error)
		}
		hwm[p.Partition], first[p.Partition] = p.LastOffset, p.FirstOffset
	}
	for _, id := range ids {
		if _, ok := hwm[id]; !ok {
			return nil, nil, fmt.Errorf("no offsets for %s partition %d", g.topic, id)
		}
	}
	return hwm, first, nil
}

// readCommitted returns the group's committed offsets of partitions ids
// (-1: none committed).
func (g *groupWatch) readCommitted(ctx context.Context, ids []int) (map[int]int64, error) {
	res, err := g.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g.group, Topics: map[string][]int{g.topic: ids}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the committed offsets of group %s: %w", g.group, err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[g.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("cannot read the committed offset of %s partition %d: %w", g.topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = -1
		}
	}
	return out, nil
}

// run polls every groupPollEvery until ctx ends. A poll that fails leaves
// the watch as it was, behind since the newest poll all stored: an
// unreachable broker is not a caught-up group. Failures are logged, the
// first and then one a minute while they last.
func (g *groupWatch) run(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(groupPollEvery)
	defer t.Stop()
	failures := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, groupPollEvery*5)
		err := g.poll(pctx, time.Now())
		cancel()
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() == nil:
			if failures++; failures == 1 || failures%60 == 0 {
				if errors.Is(err, errTopicMissing) {
					logger.Warn("the events topic is missing on the broker: nothing is ingested, and the ingest counts as behind until it exists", "topic", g.topic)
				} else {
					logger.Warn("cannot tell how far the other members have stored", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
