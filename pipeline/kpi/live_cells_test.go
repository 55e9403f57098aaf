package kpi

import (
	"slices"
	"testing"
)

func TestLivePiecesEncoding(t *testing.T) {
	sums := make([]int64, len(windowSums))
	sums[sStarted], sums[sFRSum] = 1, -7_000_000_000_000 // any int64 survives
	var ps []int64
	ps = appendPiece(ps, 10_000, 3, sums, []int32{100_050, 300_120, 200_001}, []uint64{2, 0, 1 << 40})
	ps = appendPiece(ps, 20_000, 4, make([]int64, len(windowSums)), nil, nil)
	ps = appendPiece(ps, 30_000, 5, sums[:1], []int32{100_001}, []uint64{1})

	var got []livePiece
	for rest := ps; len(rest) > 0; {
		var p livePiece
		p, rest = nextPiece(rest)
		got = append(got, p)
	}
	if len(got) != 3 {
		t.Fatalf("decoded %d pieces, want 3", len(got))
	}
	if p := got[0]; p.bucket != 10_000 || p.key != 3 ||
		!slices.Equal(p.sums, []int64{sStarted, 1, sFRSum, -7_000_000_000_000}) ||
		!slices.Equal(p.hist, []int64{100_050, 2, 200_001, 1 << 40}) {
		t.Errorf("first piece %+v: zero sums and counts must be left out, the rest kept", p)
	}
	if p := got[1]; p.bucket != 20_000 || p.key != 4 || len(p.sums)+len(p.hist) != 0 {
		t.Errorf("second piece %+v: nothing but its bucket and key", p)
	}
	if p := got[2]; p.bucket != 30_000 || p.key != 5 || !slices.Equal(p.sums, []int64{sStarted, 1}) || !slices.Equal(p.hist, []int64{100_001, 1}) {
		t.Errorf("third piece %+v", p)
	}

	if kept := prunePieces(ps, 10_000); &kept[0] != &ps[0] || len(kept) != len(ps) {
		t.Error("a prune that drops nothing must return the pieces as they are")
	}
	kept := prunePieces(ps, 20_000)
	if p, rest := nextPiece(kept); p.bucket != 20_000 || len(rest) == 0 {
		t.Errorf("prune at 20000 kept %v", kept)
	}
	if p, _ := nextPiece(ps); p.bucket != 10_000 {
		t.Error("prune changed the pieces it was given")
	}
	if kept := prunePieces(ps, 40_000); len(kept) != 0 {
		t.Errorf("prune past every piece kept %v", kept)
	}
}

func TestLiveCellInAndOut(t *testing.T) {
	a := livePiece{sums: []int64{sStarted, 1, sFRN, 2, sFRSum, 900}, hist: []int64{100_400, 1, 100_020, 1}}
	b := livePiece{sums: []int64{sFRN, 1, sFRSum, 300}, hist: []int64{100_400, 2, 100_300, 1}}
	var c lcell
	a.apply(&c, 1)
	b.apply(&c, 1)
	if c.pieces != 2 || c.sums[sFRN] != 3 || c.sums[sFRSum] != 1200 || c.sums[sStarted] != 1 {
		t.Fatalf("after two pieces: %+v", c)
	}
	if want := []histEntry{{100_020, 1}, {100_300, 1}, {100_400, 3}}; !slices.Equal(c.hist, want) {
		t.Fatalf("histogram %v, want %v (sorted, counts added)", c.hist, want)
	}
	var o cell
	c.mergeInto(&o)
	c.mergeInto(&o)
	if o.sums[sFRN] != 6 || o.dists[distFirstResponse-1][400] != 6 || o.dists[distFirstResponse-1][20] != 2 {
		t.Errorf("merged twice into an answer cell: sums %v, first response %v", o.sums[:len(windowSums)], o.dists[distFirstResponse-1])
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
