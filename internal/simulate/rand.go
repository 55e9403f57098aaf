package simulate

import (
	"math"
	"math/rand/v2"
)

// splitmix64 is a bijective 64-bit mixer (Steele et al., SplitMix). Mixing a
// per-run key plus a counter gives ids that look random, never repeat
// within a run and are the same for the same seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// sample draws a delay in milliseconds, at least 100 ms so that two events
// of a conversation never share a millisecond by accident of rounding.
func (d lognorm) sample(r *rand.Rand, factor float64) int64 {
	s := d.median * math.Exp(d.sigma*r.NormFloat64())
	if d.max > 0 && s > d.max {
		s = d.max
	}
	s *= factor
	return max(int64(s*1000), 100)
}

// mean is the mean of the untruncated distribution, in seconds.
func (d lognorm) mean() float64 {
	return d.median * math.Exp(d.sigma*d.sigma/2)
}

// cumulative turns weights into a cumulative table for pick.
func cumulative(w []float64) []float64 {
	c := make([]float64, len(w))
	var sum float64
	for i, v := range w {
		sum += v
		c[i] = sum
	}
	for i := range c {
		c[i] /= sum
	}
	return c
}

// pick draws an index from a cumulative table.
func pick(r *rand.Rand, cum []float64) int {
	u := r.Float64()
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

func between(r *rand.Rand, lo, hi int) int {
	return lo + r.IntN(hi-lo+1)
}

func oneOf(r *rand.Rand, s []string) string {
	return s[r.IntN(len(s))]
}

func clamp(v, lo, hi float64) float64 {
	return min(max(v, lo), hi)
}
