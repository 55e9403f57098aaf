package kpi

import "slices"

// The live view's memory. At a busy hour it holds tens of thousands of
// conversations and a hundred thousand cells, and the Go collector traces
// every pointer in them on every cycle: kept as maps of cells of maps it
// was most of the process's CPU. So what the view keeps has as few
// pointers as it can: keys are small integers, a bucket's cells live in
// one slice, a cell's histogram is one sorted slice of plain numbers, and
// a conversation's pieces are one slice of integers.

// histEntry is a count of a combined histogram key (hist.go).
type histEntry struct {
	k int32
	n uint64
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
	case ok && n < 0 && c.hist[i].n <= uint64(-n):
		c.hist = slices.Delete(c.hist, i, i+1)
	case ok && n < 0:
		c.hist[i].n -= uint64(-n)
	case ok:
		c.hist[i].n += uint64(n)
	case n > 0:
		c.hist = slices.Insert(c.hist, i, histEntry{k, uint64(n)})
	}
}

// mergeInto adds c to the answer cell o.
func (c *lcell) mergeInto(o *cell) {
	for i, v := range c.sums {
		o.sums[i] += v
	}
	for _, e := range c.hist {
		d := (int64(e.k) + histDistStride/2) / histDistStride
		if d < 1 || d > distCount {
			continue
		}
		h := o.dists[d-1]
		if h == nil {
			h = hist{}
			o.dists[d-1] = h
		}
		h[int32(int64(e.k)-d*histDistStride)] += e.n
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
// one []int64: for each piece its bucket (unix ms), its key id, the number
// of its sums and of its histogram entries, then each sum as (index,
// value) and each histogram entry as (combined key, count). Only sums that
// are not zero are kept.
const pieceHeader = 4

// appendPiece encodes a piece onto ps.
func appendPiece(ps []int64, bucket int64, key uint32, sums []int64, histKeys []int32, histCounts []uint64) []int64 {
	head := len(ps)
	ps = append(ps, bucket, int64(key), 0, 0)
	for i, v := range sums {
		if v != 0 {
			ps = append(ps, int64(i), v)
			ps[head+2]++
		}
	}
	for i := range min(len(histKeys), len(histCounts)) {
		if histCounts[i] > 0 {
			ps = append(ps, int64(histKeys[i]), int64(histCounts[i]))
			ps[head+3]++
		}
	}
	return ps
}

// livePiece is one decoded piece; sums and hist are (index or key, value)
// pairs within the encoding.
type livePiece struct {
	bucket     int64
	key        uint32
	sums, hist []int64
}

// nextPiece decodes the piece at the start of ps and returns the rest.
func nextPiece(ps []int64) (livePiece, []int64) {
	ns, nh := int(ps[2]), int(ps[3])
	p := livePiece{bucket: ps[0], key: uint32(ps[1])}
	body := ps[pieceHeader:]
	p.sums, p.hist = body[:2*ns], body[2*ns:2*ns+2*nh]
	return p, body[2*ns+2*nh:]
}

// apply adds the piece to c (sign 1) or takes it out (sign -1) and
// reports whether c holds no piece any more.
func (p livePiece) apply(c *lcell, sign int64) bool {
	for j := 0; j < len(p.sums); j += 2 {
		c.sums[p.sums[j]] += sign * p.sums[j+1]
	}
	for j := 0; j < len(p.hist); j += 2 {
		c.addHist(int32(p.hist[j]), sign*p.hist[j+1])
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
