package ingest

import (
	"testing"
	"time"
)

// TestClaimsRace plays two partitions that look the same event_id up at
// the same time: whichever decides second sees the other's version, held
// or already released, and the memory of releases is dropped once no
// look-up that could have missed them is running.
func TestClaimsRace(t *testing.T) {
	c := newClaims()
	a, b := source{partition: 0, offset: 7}, source{partition: 1, offset: 3}
	decide := func(start uint64, here source) (source, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		defer c.end(start)
		first, dup := c.lookup("x", start, nil)
		if !dup {
			c.held["x"] = here
		}
		return first, dup
	}

	// B decides while A's claim is held.
	sa, sb := c.begin(), c.begin()
	if _, dup := decide(sa, a); dup {
		t.Fatal("A: a repeat of nothing")
	}
	if first, dup := decide(sb, b); !dup || first != a {
		t.Fatalf("B while A holds the claim: %v %v, want a repeat of %v", first, dup, a)
	}

	// B decides after A's insert returned, its look-up having begun before.
	c = newClaims()
	sa, sb = c.begin(), c.begin()
	decide(sa, a)
	c.release([]string{"x"}, a.partition)
	if first, dup := decide(sb, b); !dup || first != a {
		t.Fatalf("B after A released: %v %v, want a repeat of %v", first, dup, a)
	}
	if len(c.recent) != 0 || len(c.order) != 0 || len(c.running) != 0 {
		t.Errorf("after every look-up ended: recent %v, order %v, running %v", c.recent, c.order, c.running)
	}

	// A look-up that begins after the release finds the row in the store
	// (not played here): the release is not needed and not kept.
	c = newClaims()
	sa = c.begin()
	decide(sa, a)
	c.release([]string{"x"}, a.partition)
	if len(c.recent) != 0 || len(c.held) != 0 {
		t.Errorf("release with no look-up running kept %v %v", c.recent, c.held)
	}
	sb = c.begin()
	if _, dup := decide(sb, b); dup {
		t.Error("a release older than the look-up counted (the look-up itself sees stored rows)")
	}
}

// A small batch waits smallBatchGap after the previous flush began; a lone
// record after a quiet spell, and a large batch, are cut after
// batch_interval as ever.
func TestBatchDue(t *testing.T) {
	now := time.Now()
	p := &partition{c: &Consumer{cfg: Config{BatchRows: 50000, BatchBytes: 1 << 30, BatchInterval: 200 * time.Millisecond}}}
	for _, c := range []struct {
		name             string
		rows             int
		started, flushed time.Duration // before now
		due              bool
	}{
		{"lone record after a quiet spell", 1, 250 * time.Millisecond, time.Minute, true},
		{"lone record, interval not over", 1, 100 * time.Millisecond, time.Minute, false},
		{"trickle just after a flush", 40, 250 * time.Millisecond, 300 * time.Millisecond, false},
		{"trickle half a gap after a flush", 40, 250 * time.Millisecond, smallBatchGap / 2, false},
		{"trickle past the gap", 40, 250 * time.Millisecond, smallBatchGap, true},
		{"large batch just after a flush", smallBatchRows, 250 * time.Millisecond, 300 * time.Millisecond, true},
	} {
		p.rejects = make([]rejected, c.rows)
		p.started, p.flushed = now.Add(-c.started), now.Add(-c.flushed)
		if got := p.due(); got != c.due {
			t.Errorf("%s: due %v, want %v", c.name, got, c.due)
		}
	}
}
