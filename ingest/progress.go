package ingest

import (
	"sync"
	"time"
)

// progress is what the partition workers of this member last learnt of
// how far behind their partitions they read: the rules hold their
// evaluation while the events of their windows are still arriving
// (Consumer.Behind).
type progress struct {
	mu sync.Mutex
	// caughtUp is, per partition read here, when a fetch last left it
	// caught up (its worker's start until one does, or the time it
	// inherits).
	caughtUp map[int32]*time.Time
	// held is, once this member's partitions stopped (their generation
	// ended), when they were all last caught up; inherit is what the
	// partitions of the next generation start from. A member whose
	// generation ended because the broker cannot be reached reads
	// nothing until it is back: it is as far behind as when it stopped,
	// and further every second, not caught up. A generation that gives
	// it no partition (another member reads them) ends that.
	held, inherit *time.Time
}

// start registers partition id as read by this member from now on (or
// from the time the generation inherited, if earlier); the returned func
// unregisters it.
func (p *progress) start(id int32, now time.Time) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caughtUp == nil {
		p.caughtUp = map[int32]*time.Time{}
	}
	if p.inherit != nil && p.inherit.Before(now) {
		now = *p.inherit
	}
	at := &now
	p.caughtUp[id] = at
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.caughtUp[id] == at {
			delete(p.caughtUp, id)
			if p.held == nil || at.Before(*p.held) {
				t := *at
				p.held = &t
			}
		}
	}
}

// begin records that the member starts to read at now: until its first
// generation gives it partitions it has read nothing, and is behind since.
func (p *progress) begin(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.caughtUp) == 0 && p.held == nil {
		p.held = &now
	}
}

// assigned records that a generation began and gave this member n
// partitions.
func (p *progress) assigned(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inherit, p.held = p.held, nil
	if n == 0 {
		p.inherit = nil
	}
}

// fetched records a fetch of partition id that took read records and left
// lag between the high watermark and the next offset to read (negative:
// the broker said nothing was there). The partition is caught up when
// what is left would come with the next fetch: nothing, or less than
// this one brought. A backlog leaves it behind fetch after fetch; a worker
// stuck storing a batch (the store down) fetches nothing meanwhile.
func (p *progress) fetched(id int32, read, lag int64, now time.Time) {
	if lag > 0 && lag >= read {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if at := p.caughtUp[id]; at != nil {
		*at = now
	}
}

// behind is how long ago the least recent of this member's partitions was
// last caught up: about a second when the ingest keeps up (an idle
// partition is fetched every second); between two generations, since its
// partitions were (held); zero when none is read here.
func (p *progress) behind(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, at := range p.caughtUp {
		d = max(d, now.Sub(*at))
	}
	if len(p.caughtUp) == 0 && p.held != nil {
		d = max(d, now.Sub(*p.held))
	}
	return d
}
