package kpi

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

// decodePieces applies every piece of ps to a cell of its own, in order.
func decodePieces(ps []int64) (bucketKeys [][2]int64, cells []lcell) {
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		var c lcell
		p.apply(&c, 1)
		bucketKeys, cells = append(bucketKeys, [2]int64{p.bucket, int64(p.key)}), append(cells, c)
	}
	return bucketKeys, cells
}

func TestLivePiecesEncoding(t *testing.T) {
	sums := make([]int64, len(windowSums))
	sums[sStarted], sums[sFRSum], sums[sRespSum] = 1, -7_000_000_000_000, math.MaxInt64 // any int64 survives
	var ps []int64
	ps = appendPiece(ps, 10_000, math.MaxUint32, sums, []int32{100_050, 300_120, -200_001}, []uint64{2, 0, 5_000_000_003})
	ps = appendPiece(ps, 20_000, 4, make([]int64, len(windowSums)), nil, nil)
	ps = appendPiece(ps, 30_000, 5, sums[:1], []int32{100_001}, []uint64{1})

	keys, cells := decodePieces(ps)
	if want := [][2]int64{{10_000, math.MaxUint32}, {20_000, 4}, {30_000, 5}}; !slices.Equal(keys, want) {
		t.Fatalf("decoded buckets and keys %v, want %v", keys, want)
	}
	if c := cells[0]; c.sums[sStarted] != 1 || c.sums[sFRSum] != -7_000_000_000_000 || c.sums[sRespSum] != math.MaxInt64 {
		t.Errorf("first piece's sums %v", c.sums)
	}
	// 5,000,000,003 does not fit a count's 32 bits: it is carried as
	// several words that add up to it (a cell's own count is 32 bits, far
	// beyond any bucket's).
	if want := []histEntry{{-200_001, 5_000_000_003 % (1 << 32)}, {100_050, 2}}; !slices.Equal(cells[0].hist, want) {
		t.Errorf("first piece's histogram %v, want %v (zero counts left out)", cells[0].hist, want)
	}
	first, _ := nextPiece(ps)
	var words int
	var total uint64
	for _, w := range first.hist {
		if int32(w>>32) == -200_001 {
			words++
			total += uint64(uint32(w))
		}
	}
	if words < 2 || total != 5_000_000_003 {
		t.Errorf("a count of 5,000,000,003 went as %d words adding up to %d", words, total)
	}
	if c := cells[1]; c.sums != ([len(windowSums)]int64{}) || len(c.hist) != 0 || c.pieces != 1 {
		t.Errorf("second piece %+v: nothing but its bucket and key", c)
	}
	if c := cells[2]; c.sums[sStarted] != 1 || !slices.Equal(c.hist, []histEntry{{100_001, 1}}) {
		t.Errorf("third piece %+v", c)
	}
	if p, _ := nextPiece(ps); len(p.sums) <= 3 {
		t.Errorf("the largest sum must take more than one word, the piece has %d", len(p.sums))
	}

	if kept := prunePieces(ps, 10_000); &kept[0] != &ps[0] || len(kept) != len(ps) {
		t.Error("a prune that drops nothing must return the pieces as they are")
	}
	if keys, _ := decodePieces(prunePieces(ps, 20_000)); !slices.Equal(keys, [][2]int64{{20_000, 4}, {30_000, 5}}) {
		t.Errorf("prune at 20000 kept %v", keys)
	}
	if p, _ := nextPiece(ps); p.bucket != 10_000 {
		t.Error("prune changed the pieces it was given")
	}
	if kept := prunePieces(ps, 40_000); len(kept) != 0 {
		t.Errorf("prune past every piece kept %v", kept)
	}
}

// TestLivePieceSplit: a conversation with more histogram entries in one
// bucket than a piece's header counts (a flood of messages) goes as
// several pieces that add up to the same cell and come out again.
func TestLivePieceSplit(t *testing.T) {
	n := pieceWordsMax + 10
	hk, hc := make([]int32, n), make([]uint64, n)
	for i := range hk {
		hk[i], hc[i] = int32(300_000+i), 1
	}
	sums := make([]int64, len(windowSums))
	sums[sRespN] = int64(n)
	ps := appendPiece(nil, 0, 1, sums, hk, hc)
	keys, _ := decodePieces(ps)
	if len(keys) != 2 {
		t.Fatalf("%d entries went as %d pieces, want 2", n, len(keys))
	}
	var c lcell
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		p.apply(&c, 1)
	}
	if c.sums[sRespN] != int64(n) || len(c.hist) != n || c.pieces != 2 {
		t.Fatalf("cell after the pieces: %d responses, %d histogram entries, %d pieces", c.sums[sRespN], len(c.hist), c.pieces)
	}
	empty := false
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		empty = p.apply(&c, -1)
	}
	if !empty || len(c.hist) != 0 || c.sums[sRespN] != 0 {
		t.Errorf("taking the pieces out left %d responses, %d histogram entries", c.sums[sRespN], len(c.hist))
	}
}

func TestLiveCellInAndOut(t *testing.T) {
	piece := func(sums map[int]int64, hist map[int32]uint64) livePiece {
		s := make([]int64, len(windowSums))
		for i, v := range sums {
			s[i] = v
		}
		var hk []int32
		var hc []uint64
		for _, k := range slices.Sorted(maps.Keys(hist)) {
			hk, hc = append(hk, k), append(hc, hist[k])
		}
		p, _ := nextPiece(appendPiece(nil, 0, 0, s, hk, hc))
		return p
	}
	a := piece(map[int]int64{sStarted: 1, sFRN: 2, sFRSum: 900}, map[int32]uint64{100_400: 1, 100_020: 1})
	b := piece(map[int]int64{sFRN: 1, sFRSum: 300}, map[int32]uint64{100_400: 2, 100_300: 1})
	var c lcell
	a.apply(&c, 1)
	b.apply(&c, 1)
	if c.pieces != 2 || c.sums[sFRN] != 3 || c.sums[sFRSum] != 1200 || c.sums[sStarted] != 1 {
		t.Fatalf("after two pieces: %+v", c)
	}
	if want := []histEntry{{100_020, 1}, {100_300, 1}, {100_400, 3}}; !slices.Equal(c.hist, want) {
		t.Fatalf("histogram %v, want %v (sorted, counts added)", c.hist, want)
	}
	var (
		o cell
		h histSum
	)
	h.add(&c)
	h.add(&c)
	h.flush(&o)
	if d := o.dists[distFirstResponse-1]; len(d) != 3 || d[400] != 6 || d[20] != 2 || d[300] != 2 {
		t.Errorf("added twice into an answer cell: first response %v", d)
	}
	// A flush starts the next answer cell from nothing; the widest
	// buckets of any Int64 value count, a key of no distribution does not.
	widest := int32(histExact + 1 + math.Floor(math.Log(math.MaxInt64/histExact)/math.Log(histGamma)))
	far := lcell{hist: []histEntry{{2*histDistStride - widest, 1}, {2*histDistStride + widest, 4}, {9 * histDistStride, 7}}}
	var o2 cell
	h.add(&far)
	h.flush(&o2)
	if d := o2.dists[distHumanFirstResponse-1]; len(d) != 2 || d[-widest] != 1 || d[widest] != 4 || o2.dists[distFirstResponse-1] != nil {
		t.Errorf("second answer cell: %v", o2.dists)
	}
	if a.apply(&c, -1) {
		t.Error("a cell with a piece left reported empty")
	}
	if want := []histEntry{{100_300, 1}, {100_400, 2}}; !slices.Equal(c.hist, want) {
		t.Errorf("after taking a out: histogram %v, want %v", c.hist, want)
	}
	if !b.apply(&c, -1) {
		t.Error("a cell with no piece left did not report empty")
	}
	if c.sums != ([len(windowSums)]int64{}) || len(c.hist) != 0 {
		t.Errorf("every piece taken out left %+v", c)
	}
}

func TestLiveCellSet(t *testing.T) {
	var s cellSet[string]
	s.get("a").pieces = 1
	s.get("b").pieces = 1
	s.get("a").sums[0] = 5
	s.drop("a")
	if s.find("a") != nil {
		t.Fatal("a dropped key is still found")
	}
	c := s.get("c")
	if c.sums[0] != 0 || len(s.cells) != 2 {
		t.Errorf("a new key must reuse the freed slot empty: %+v, %d slots", *c, len(s.cells))
	}
	c.pieces = 1
	var keys []string
	s.each(func(k string, _ *lcell) { keys = append(keys, k) })
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"b", "c"}) {
		t.Errorf("each visited %v, want [b c]", keys)
	}
	s.drop("missing")
}

// TestSeenRows: a row is seen once a refresh took it in, in whatever
// order the store returned it, until the refreshes that took it in are
// older than the cut; the rows of later refreshes stay.
func TestSeenRows(t *testing.T) {
	var s seenRows
	for gen := range 10 {
		var rows []storedRow
		for i := 999; i >= 0; i-- { // out of order
			rows = append(rows, storedRow{uint64(i % 7), uint64(gen*1_000 + i)})
		}
		s.add(int64(gen), rows)
	}
	s.add(10, nil)
	if s.len() != 10_000 || len(s.gens) != 10 {
		t.Fatalf("%d rows in %d refreshes, want 10,000 in 10", s.len(), len(s.gens))
	}
	for cut := int64(0); cut <= 10; cut++ {
		s.forget(cut)
		if want := int(10-cut) * 1_000; s.len() != want {
			t.Fatalf("after the cut at %d: %d rows, want %d", cut, s.len(), want)
		}
		for i := range 10_000 {
			r := storedRow{uint64(i % 1_000 % 7), uint64(i)}
			if got, want := s.has(r), int64(i/1_000) >= cut; got != want {
				t.Fatalf("after the cut at %d: row %d seen %v, want %v", cut, i, got, want)
			}
			if s.has(storedRow{uint64(i%1_000%7) + 1, uint64(i)}) {
				t.Fatalf("row %d of another conversation seen", i)
			}
		}
	}
}

// TestLiveGaugesCached: an answer with the "now" gauges is computed once
// while the buckets and the gauges stay as they are, and anew when the
// gauges change though no bucket did (a conversation leaving the day);
// the gauges are counted again only when open changes or a start leaves
// the day.
func TestLiveGaugesCached(t *testing.T) {
	l := newLiveView(nil, DefaultLiveConfig())
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l.loaded, l.version, l.asOf, l.refreshed = true, 1, now, time.Now() // as load leaves it
	gz := liveKey{region: "广州"}
	l.open = map[string]openConv{
		"c1": {key: gz, startMs: now.Add(-time.Hour).UnixMilli()},
		"c2": {key: gz, startMs: now.Add(-24*time.Hour + 3*time.Millisecond).UnixMilli()},
		"c3": {key: liveKey{region: "成都"}, startMs: now.Add(-time.Minute).UnixMilli(), transferMs: now.Add(-time.Second).UnixMilli()},
	}
	w := Window{From: now.Add(-15 * time.Minute), To: now}
	first, _, _ := l.compute(w, Filters{}, DimRegion, 0, true)
	if c := first[cellKey{key: "广州"}]; c == nil || c.active != 2 {
		t.Fatalf("广州: %+v, want 2 active", c)
	}
	if c := first[cellKey{key: "成都"}]; c == nil || c.active != 1 || c.waiting != 1 {
		t.Fatalf("成都: %+v, want 1 active and 1 waiting", c)
	}
	// A refresh that changes nothing: the same answer, not a copy.
	l.refreshed = time.Now().Add(time.Second)
	again, _, _ := l.compute(w, Filters{}, DimRegion, 0, true)
	if again[cellKey{key: "广州"}] != first[cellKey{key: "广州"}] {
		t.Error("an unchanged view computed its gauges again")
	}
	// 1 ms on, before any start leaves the day, the gauges are not
	// counted again: a conversation put in behind the view's back (no
	// refresh changed open) is not seen; once a refresh changes open, it is.
	l.asOf = now.Add(time.Millisecond)
	l.open["c4"] = openConv{key: gz, startMs: now.Add(-time.Minute).UnixMilli()}
	l.mu.RLock()
	g, _ := l.gaugesLocked()
	l.mu.RUnlock()
	if g[gz].active != 2 {
		t.Fatalf("gauges counted again with open unchanged and no start crossed: 广州 %+v", g[gz])
	}
	l.openGen++
	l.mu.RLock()
	g, _ = l.gaugesLocked()
	l.mu.RUnlock()
	if g[gz].active != 3 {
		t.Fatalf("gauges not counted again after open changed: 广州 %+v, want 3 active", g[gz])
	}
	delete(l.open, "c4")
	l.openGen++
	// 5 ms on, in the same bucket, c2 started more than a day ago: the
	// buckets and the window are the same, the gauges not.
	l.asOf, l.refreshed = now.Add(5*time.Millisecond), time.Now().Add(2*time.Second)
	later, _, _ := l.compute(w, Filters{}, DimRegion, 0, true)
	if c := later[cellKey{key: "广州"}]; c == nil || c.active != 1 {
		t.Fatalf("广州 5 ms on: %+v, want 1 active", c)
	}
	if c := first[cellKey{key: "广州"}]; c.active != 2 {
		t.Errorf("the earlier answer changed: %+v", c)
	}
}
