package kpi

import (
	"math"
	"slices"
	"strconv"
)

// Distributions are kept as histograms of log-spaced buckets, so that
// they can be stored per hour, added up over any set of hours and answer
// p50 and p90 within the SPEC's 1%: every query (raw events or the hourly
// rollup) returns the same histogram for the same items, so p50 and p90
// do not depend on which path answered.
//
// A value v (milliseconds) falls in bucket histKey(v):
//
//	|v| ≤ histExact                    : v itself (exact)
//	histExact < |v|                    : ±(histExact + 1 + ⌊log(|v|/histExact) / log(histGamma)⌋)
//
// A log bucket i covers [histExact·γ^i, histExact·γ^(i+1)) and stands for
// the value 2ab/(a+b) of its bounds a, b: within (γ−1)/(γ+1) ≈ 0.5% of
// every value in it. Quantiles interpolate between the bucket values of
// the order statistics exactly as quantilesExactInclusive does between the
// values, so they are within 0.5% (plus rounding) of the exact ones.
const (
	histExact = 100
	histGamma = 1.01
)

// The four distributions share one histogram column; a key is
// dist·histDistStride + bucket.
const histDistStride = 100000

// Distribution ids in the combined histogram.
const (
	distFirstResponse = iota + 1
	distHumanFirstResponse
	distResponse
	distHumanWait
	distCount = distHumanWait
)

// histKeySQL is the SQL of histKey(v) for distribution dist; v is an
// Int64 expression in milliseconds. It is the only place the bucket of a
// value is computed.
func histKeySQL(v string, dist int) string {
	return `toInt32(` + strconv.Itoa(dist*histDistStride) + ` + if(abs(` + v + `) <= ` + strconv.Itoa(histExact) + `, ` + v +
		`, toInt64(sign(` + v + `) * (` + strconv.Itoa(histExact+1) + ` + floor(log(abs(` + v + `) / ` + strconv.Itoa(histExact) + `) / log(` +
		strconv.FormatFloat(histGamma, 'f', -1, 64) + `))))))`
}

// histBucket is the bucket of the value v (ms): histKeySQL's formula
// in Go, for the live view's refresh (livePieces).
// TestHistBucketAgreesWithSQL holds the two to the same buckets.
func histBucket(v int64) int32 {
	if v >= -histExact && v <= histExact {
		return int32(v)
	}
	sign := int64(1)
	if v < 0 {
		sign, v = -1, -v
	}
	return int32(sign * (histExact + 1 + int64(math.Floor(math.Log(float64(v)/histExact)/math.Log(histGamma)))))
}

// histValue is the value a bucket stands for, in milliseconds.
func histValue(bucket int32) float64 {
	b := int64(bucket)
	if b >= -histExact && b <= histExact {
		return float64(b)
	}
	sign := 1.0
	if b < 0 {
		sign, b = -1, -b
	}
	i := float64(b - histExact - 1)
	lo := histExact * math.Pow(histGamma, i)
	hi := lo * histGamma
	return sign * 2 * lo * hi / (lo + hi)
}

// hist is one distribution: bucket → count.
type hist map[int32]uint64

// add merges o into h.
func (h hist) add(o hist) {
	for k, n := range o {
		h[k] += n
	}
}

// quantiles returns the p-quantiles of h in milliseconds, interpolated as
// quantilesExactInclusive does: at rank p·(n−1) between the order
// statistics around it. It returns nil when h is empty.
func (h hist) quantiles(ps ...float64) []float64 {
	var n uint64
	keys := make([]int32, 0, len(h))
	for k, c := range h {
		if c > 0 {
			keys = append(keys, k)
			n += c
		}
	}
	if n == 0 {
		return nil
	}
	slices.Sort(keys)
	// at returns the value of the order statistic of rank r (0-based).
	at := func(r uint64) float64 {
		var seen uint64
		for _, k := range keys {
			seen += h[k]
			if r < seen {
				return histValue(k)
			}
		}
		return histValue(keys[len(keys)-1])
	}
	out := make([]float64, len(ps))
	for i, p := range ps {
		pos := p * float64(n-1)
		r := uint64(pos)
		if r >= n-1 {
			out[i] = at(n - 1)
			continue
		}
		lo, hi := at(r), at(r+1)
		out[i] = lo + (pos-float64(r))*(hi-lo)
	}
	return out
}

// addHist spreads a combined histogram (keys dist·histDistStride +
// bucket) over the distributions of c.
func (c *cell) addHist(keys []int32, counts []uint64) {
	for i, k := range keys[:min(len(keys), len(counts))] {
		c.addHistKey(k, counts[i])
	}
}

// addHistKey adds n to combined histogram key k of c; a key of no
// distribution is left out.
func (c *cell) addHistKey(k int32, n uint64) {
	d, b, ok := splitHistKey(k)
	if !ok {
		return
	}
	h := c.dists[d]
	if h == nil {
		h = hist{}
		c.dists[d] = h
	}
	h[b] += n
}

// splitHistKey returns the distribution (0-based index of cell.dists)
// and the bucket of combined histogram key k; ok is false for a key of
// no distribution.
func splitHistKey(k int32) (dist int, bucket int32, ok bool) {
	d := (int64(k) + histDistStride/2) / histDistStride
	if d < 1 || d > distCount {
		return 0, 0, false
	}
	return int(d - 1), int32(int64(k) - d*histDistStride), true
}
