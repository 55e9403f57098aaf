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
