package kpi

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// exactInclusive is quantilesExactInclusive: linear interpolation at rank
// p·(n−1) of the sorted values.
func exactInclusive(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	pos := p * float64(len(s)-1)
	r := int(pos)
	if r >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[r] + (pos-float64(r))*(s[r+1]-s[r])
}

// TestHistQuantilesWithinOnePercent draws samples of many shapes and
// sizes (one value, two values far apart, heavy tails, ties) and requires
// the histogram's p50 and p90 within 1% of the exact ones.
func TestHistQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() int64{
		"lognormal": func() int64 { return int64(math.Exp(rng.NormFloat64()*1.5 + 9)) },
		"uniform":   func() int64 { return rng.Int64N(600000) },
		"small":     func() int64 { return rng.Int64N(300) },
		"ties":      func() int64 { return []int64{15000, 30000, 30000, 86399999}[rng.IntN(4)] },
		"bimodal":   func() int64 { return []int64{1000, 3_600_000}[rng.IntN(2)] + rng.Int64N(50) },
	}
	for name, gen := range gens {
		for _, n := range []int{1, 2, 3, 10, 101, 5000} {
			var vals []float64
			h := hist{}
			for range n {
				v := gen()
				vals = append(vals, float64(v))
				h[histBucket(v)]++
			}
			got := h.quantiles(0.5, 0.9)
			for i, p := range []float64{0.5, 0.9} {
				want := exactInclusive(vals, p)
				if d := math.Abs(got[i] - want); d > 0.01*math.Abs(want) && d > 1e-9 {
					t.Errorf("%s n=%d p%v: %v, exact %v (%.3f%%)", name, n, p*100, got[i], want, 100*d/want)
				}
			}
		}
	}
	if (hist{}).quantiles(0.5) != nil {
		t.Error("empty histogram has quantiles")
	}
}

// TestSQLPlaceholdersFilled renders every query variant the store and the
// builder send and finds no placeholder left, and every query over the
// items with the settings they need.
func TestSQLPlaceholdersFilled(t *testing.T) {
	for _, q := range []string{windowSQL, eventCountsSQL, conversationsSQL, pairsSQL, gaugesSQL, rollupSQL, rollupWholeSQL, rollupPartsSQL, rollupPartsSumSQL} {
		for _, dim := range append([]Dimension{DimNone}, Dimensions...) {
			for _, agents := range []bool{false, true} {
				s := render(q, dim, agents, agents)
				if strings.Contains(s, "{{") {
					t.Fatalf("placeholder left in %.200s", s[strings.Index(s, "{{"):])
				}
				if strings.Contains(s, windowItemsWithSQL) && !strings.Contains(s, itemsSettings) {
					t.Fatalf("a query over the items without itemsSettings: %.200s", s)
				}
			}
		}
	}
}
