package ingest

import (
	"testing"
	"time"
)

// TestProgress: a partition is caught up when its fetch leaves less than
// it brought (or nothing); a backlog keeps Behind growing until then; an
// unregistered partition no longer counts.
func TestProgress(t *testing.T) {
	var p progress
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	if d := p.behind(at(0)); d != 0 {
		t.Fatalf("no partition read: behind %s", d)
	}
	stop0 := p.start(0, at(0))
	p.start(1, at(0))
	p.fetched(0, 0, -1, at(1))            // nothing there to read
	p.fetched(1, 27000, 3_000_000, at(1)) // a backlog
	if d := p.behind(at(2)); d != 2*time.Second {
		t.Fatalf("behind %s, want 2s (partition 1 never caught up since its start)", d)
	}
	p.fetched(1, 27000, 27000, at(5)) // still as much left as it brought
	p.fetched(0, 10, 0, at(5))
	if d := p.behind(at(6)); d != 6*time.Second {
		t.Fatalf("behind %s, want 6s", d)
	}
	p.fetched(1, 27000, 1200, at(7)) // the rest comes with the next fetch
	if d := p.behind(at(8)); d != 3*time.Second {
		t.Fatalf("behind %s, want 3s (partition 0, last caught up at 5 s)", d)
	}
	stop0()
	if d := p.behind(at(8)); d != time.Second {
		t.Fatalf("behind %s after partition 0 left, want 1s", d)
	}
}

// TestProgressBetweenGenerations: a member that has not joined its group
// yet, or whose generation ended (the broker unreachable), stays as far behind as its partitions were, and
// more every second, until a new generation's partitions catch up; a
// generation that gives it no partition leaves it not behind.
func TestProgressBetweenGenerations(t *testing.T) {
	var p progress
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// Started, the group not joined yet (the broker not up).
	p.begin(at(0))
	if d := p.behind(at(5)); d != 5*time.Second {
		t.Fatalf("5 s after the start, no generation yet: behind %s, want 5s", d)
	}
	p.assigned(2)
	stop0, stop1 := p.start(0, at(6)), p.start(1, at(6))
	if d := p.behind(at(7)); d != 7*time.Second {
		t.Fatalf("first generation, nothing fetched yet: behind %s, want 7s", d)
	}
	p.fetched(0, 5, 0, at(10))
	p.fetched(1, 5, 0, at(9))
	// The broker goes away: the generation ends.
	stop0()
	stop1()
	if d := p.behind(at(40)); d != 31*time.Second {
		t.Fatalf("30 s after the generation ended: behind %s, want 31s (caught up at 9 s)", d)
	}
	// It is back: the new generation's partitions start where the old
	// ones were, and catch up.
	p.assigned(2)
	stop0 = p.start(0, at(60))
	stop1 = p.start(1, at(60))
	if d := p.behind(at(61)); d != 52*time.Second {
		t.Fatalf("new generation, nothing fetched yet: behind %s, want 52s", d)
	}
	p.fetched(0, 100, 0, at(62))
	p.fetched(1, 100, 0, at(62))
	if d := p.behind(at(63)); d != time.Second {
		t.Fatalf("caught up again: behind %s, want 1s", d)
	}
	// A rebalance gives the partitions to another member.
	stop0()
	stop1()
	p.assigned(0)
	if d := p.behind(at(100)); d != 0 {
		t.Fatalf("no partition read here: behind %s, want 0", d)
	}
}
