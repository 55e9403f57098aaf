package kpi

import (
	"cmp"
	"slices"
)

// The live view's memory. At a busy hour it holds tens of thousands of
// conversations and a hundred thousand cells, and the Go collector traces
// every pointer in them on every cycle: kept as maps of cells of maps it
// was most of the process's CPU. So what the view keeps has as few
// pointers as it can: keys are small integers, a bucket's cells live in
// one slice, a cell's histogram is one sorted slice of plain numbers, and
// a conversation's pieces are one slice of integers.

// histEntry is a count of a combined histogram key (hist.go). A count is
// of one cell of one 10-second bucket, far below 2^32 at any rate the
// product ingests.
type histEntry struct {
	k int32
	n uint32
}

// lcell is what a bucket holds for one key: the window sums, the combined
// histogram sorted by key, and how many pieces are in it.
type lcell struct {
	sums   [len(windowSums)]int64
	hist   []histEntry
	pieces int32
}

// addHist adds n to the count of key k (n < 0 takes it out; a count that
// reaches zero leaves the histogram).
func (c *lcell) addHist(k int32, n int64) {
	i, ok := slices.BinarySearchFunc(c.hist, k, func(e histEntry, k int32) int { return int(e.k) - int(k) })
	switch {
	case ok && n < 0 && int64(c.hist[i].n) <= -n:
		c.hist = slices.Delete(c.hist, i, i+1)
	case ok:
		c.hist[i].n = uint32(int64(c.hist[i].n) + n)
	case n > 0:
		c.hist = slices.Insert(c.hist, i, histEntry{k, uint32(n)})
	}
}

// histSpan bounds the bucket of any Int64 value (hist.go: histExact + 1
// + log(2^63 / histExact) / log(histGamma) is under 4,030).
const histSpan = 4096

// histSum adds up the histograms of many live cells for one answer cell.
// A window of the wall or of a rule adds up the same few hundred keys of
// each of its buckets (90 for 15 minutes) and keys: added into the answer
// cell's maps one entry at a time, they were most of the Go time of a
// demo's rule evaluations (map inserts and rehashes). Here an entry is
// added to a counter by key, and each key goes into the maps once, with
// the maps made at their size.
type histSum struct {
	n       [distCount][2*histSpan + 1]uint64
	touched [distCount][]int32 // buckets with a count, in no order
}

// add adds the histogram of c.
func (h *histSum) add(c *lcell) {
	for _, e := range c.hist {
		d, b, ok := splitHistKey(e.k)
		if !ok || b < -histSpan || b > histSpan {
			continue
		}
		i := b + histSpan
		if h.n[d][i] == 0 {
			h.touched[d] = append(h.touched[d], b)
		}
		h.n[d][i] += uint64(e.n)
	}
}

// flush adds what was added since the last flush to o and starts again.
func (h *histSum) flush(o *cell) {
	for d := range h.touched {
		if len(h.touched[d]) == 0 {
			continue
		}
		m := o.dists[d]
		if m == nil {
			m = make(hist, len(h.touched[d]))
			o.dists[d] = m
		}
		for _, b := range h.touched[d] {
			m[b] += h.n[d][b+histSpan]
			h.n[d][b+histSpan] = 0
		}
		h.touched[d] = h.touched[d][:0]
	}
}

// cellSet is the cells of one bucket by key, in one slice; a freed slot
// is reused by the next new key.
type cellSet[K comparable] struct {
	at    map[K]int32
	keys  []K
	cells []lcell
	free  []int32
}

// get returns the cell of k, a new empty one if there is none. The
// pointer is good until the next get.
func (s *cellSet[K]) get(k K) *lcell {
	if i, ok := s.at[k]; ok {
		return &s.cells[i]
	}
	if s.at == nil {
		s.at = map[K]int32{}
	}
	var i int32
	if n := len(s.free); n > 0 {
		i, s.free = s.free[n-1], s.free[:n-1]
		s.keys[i], s.cells[i] = k, lcell{}
	} else {
		i = int32(len(s.cells))
		s.keys, s.cells = append(s.keys, k), append(s.cells, lcell{})
	}
	s.at[k] = i
	return &s.cells[i]
}

// find returns the cell of k, nil if there is none.
func (s *cellSet[K]) find(k K) *lcell {
	if i, ok := s.at[k]; ok {
		return &s.cells[i]
	}
	return nil
}

// drop forgets the cell of k.
func (s *cellSet[K]) drop(k K) {
	i, ok := s.at[k]
	if !ok {
		return
	}
	delete(s.at, k)
	s.cells[i] = lcell{}
	s.free = append(s.free, i)
}

// each calls f with every cell and its key.
func (s *cellSet[K]) each(f func(K, *lcell)) {
	for i := range s.cells {
		if s.cells[i].pieces > 0 {
			f(s.keys[i], &s.cells[i])
		}
	}
}

// lbucket is one bucket of the view: its cells at full grain (by key id,
// liveView.keyList) and the same added up over every key (total) and by
// each attribute of rollDims. The windows asked most (no filter, no
// breakdown or one by an attribute, as the wall and the rules ask) add up
// the rolled cells instead of every full-grain key of the bucket. They
// change with the full-grain cells, piece by piece, so they always agree.
type lbucket struct {
	full  cellSet[uint32]
	total lcell
	by    [len(rollDims)]cellSet[string]
}

// rollDims are the breakdowns lbucket keeps rolled up.
var rollDims = [...]Dimension{DimRegion, DimQueue, DimChannel, DimBusinessLine}

// A conversation's pieces (what it adds to one bucket and key each) are
// one []int64. A piece is its bucket (unix ms), then its key id, number
// of sums and number of histogram entries in one word, then each sum
// that is not zero as one word (index in the top 8 bits, value in the 56
// below) and each histogram entry as one word (combined key in the top 32
// bits, count in the 32 below). A value or count too large for its bits
// is written as several words of the same index or key that add up to
// it: apply adds them all.
const pieceHeader = 2

const (
	pieceValueBits = 56
	pieceValueMax  = 1<<(pieceValueBits-1) - 1
	pieceCountMax  = 1<<32 - 1
	pieceWordsMax  = 1<<16 - 1 // of each kind in one piece
)

// appendPiece encodes a piece onto ps. A piece of more words than its
// header counts goes as several pieces of the same bucket and key.
func appendPiece(ps []int64, bucket int64, key uint32, sums []int64, histKeys []int32, histCounts []uint64) []int64 {
	head := len(ps)
	var ns, nh int64
	open := func() {
		ps = append(ps, bucket, 0)
		head, ns, nh = len(ps)-pieceHeader, 0, 0
	}
	closeHead := func() { ps[head+1] = int64(key)<<32 | ns<<16 | nh }
	open()
	for i, v := range sums {
		for v != 0 {
			if ns == pieceWordsMax {
				closeHead()
				open()
			}
			part := max(min(v, pieceValueMax), -pieceValueMax)
			ps = append(ps, int64(i)<<pieceValueBits|part&(1<<pieceValueBits-1))
			v -= part
			ns++
		}
	}
	for i := range min(len(histKeys), len(histCounts)) {
		for n := histCounts[i]; n > 0; {
			if nh == pieceWordsMax {
				closeHead()
				open()
			}
			part := min(n, pieceCountMax)
			ps = append(ps, int64(histKeys[i])<<32|int64(part))
			n -= part
			nh++
		}
	}
	closeHead()
	return ps
}

// livePiece is one decoded piece; sums and hist are its words within the
// encoding.
type livePiece struct {
	bucket     int64
	key        uint32
	sums, hist []int64
}

// nextPiece decodes the piece at the start of ps and returns the rest.
func nextPiece(ps []int64) (livePiece, []int64) {
	ns, nh := int(ps[1]>>16&0xffff), int(ps[1]&0xffff)
	p := livePiece{bucket: ps[0], key: uint32(uint64(ps[1]) >> 32)}
	body := ps[pieceHeader:]
	p.sums, p.hist = body[:ns], body[ns:ns+nh]
	return p, body[ns+nh:]
}

// apply adds the piece to c (sign 1) or takes it out (sign -1) and
// reports whether c holds no piece any more.
func (p livePiece) apply(c *lcell, sign int64) bool {
	for _, w := range p.sums {
		// The value's 56 bits, sign-extended.
		c.sums[uint64(w)>>pieceValueBits] += sign * (w << (64 - pieceValueBits) >> (64 - pieceValueBits))
	}
	for _, w := range p.hist {
		c.addHist(int32(w>>32), sign*int64(uint32(w)))
	}
	c.pieces += int32(sign)
	return c.pieces <= 0
}

// prunePieces drops the pieces of buckets before horizonMs; it returns ps
// itself when none is dropped.
func prunePieces(ps []int64, horizonMs int64) []int64 {
	var out []int64
	kept := true
	for rest := ps; len(rest) > 0; {
		start := len(ps) - len(rest)
		p, next := nextPiece(rest)
		end := len(ps) - len(next)
		if p.bucket < horizonMs {
			if kept {
				out, kept = append([]int64(nil), ps[:start]...), false
			}
		} else if !kept {
			out = append(out, ps[start:end]...)
		}
		rest = next
	}
	if kept {
		return ps
	}
	return out
}

// seenRows are the rows refreshes took in, kept until no later refresh
// can find them new (liveView.update): one sorted slice per refresh, the
// store's clock when it took them in beside it. A map of them held 47 MB
// at a busy demo's start-up (it took its 1.08M backfilled events in within
// about 15 s); these take 16 bytes a row, and the oldest go a refresh at a
// time.
type seenRows struct {
	gens []seenGen
	n    int
}

type seenGen struct {
	at   int64 // unix ms, store clock
	rows []storedRow
}

func cmpStoredRow(a, b storedRow) int {
	if c := cmp.Compare(a.conv, b.conv); c != 0 {
		return c
	}
	return cmp.Compare(a.event, b.event)
}

// has reports whether a refresh took r in.
func (s *seenRows) has(r storedRow) bool {
	for _, g := range s.gens {
		if _, ok := slices.BinarySearchFunc(g.rows, r, cmpStoredRow); ok {
			return true
		}
	}
	return false
}

// add keeps rows as taken in at at; it sorts them in place and holds the
// slice.
func (s *seenRows) add(at int64, rows []storedRow) {
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, cmpStoredRow)
	s.gens = append(s.gens, seenGen{at, rows})
	s.n += len(rows)
}

// forget drops the rows taken in before cut (unix ms, store clock).
func (s *seenRows) forget(cut int64) {
	s.gens = slices.DeleteFunc(s.gens, func(g seenGen) bool {
		if g.at < cut {
			s.n -= len(g.rows)
			return true
		}
		return false
	})
}

// len is how many rows are held.
func (s *seenRows) len() int { return s.n }
