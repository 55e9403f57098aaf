package spike

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// A simulated complaint world for measuring the spike detector without a
// store: per-minute counts per region, drawn directly (no event records),
// with a daily and weekly shape and over-dispersion, and a History
// over their prefix sums, so one evaluation costs a few hundred additions.
//
// The true rate of region r in minute m is
//
//	λ = base_r · diurnal(m) · weekly(m) · N_day · D_{r,day} · H_{r,hour}
//
// with N_day (the whole country's day), D (the region's day) and H (the
// region's hour) independent Gamma factors of mean 1. Counts are Poisson
// given λ, so a window's count is a Poisson-gamma (negative-binomial)
// mixture: over a quarter hour its variance is μ + φ·μ² with φ ≈
// CV²(N)+CV²(D)+CV²(H), the over-dispersion of real complaint streams.

// spikeWorldNoise is the squared coefficients of variation of the three
// Gamma factors.
type spikeWorldNoise struct {
	National, Day, Hour float64
}

// spikeDefaultNoise: rates wander ±10 % from day to day nationally, ±14 %
// per region and day, ±17 % per region and hour (φ ≈ 0.06 in all).
var spikeDefaultNoise = spikeWorldNoise{National: 0.01, Day: 0.02, Hour: 0.03}

// spikeWeekly is the relative level of a day of the week (mean 1).
func spikeWeekly(t time.Time) float64 {
	switch t.Weekday() {
	case time.Saturday:
		return 0.8
	case time.Sunday:
		return 0.7
	}
	return 1.1
}

// spikeWorld holds per-minute counts from start.
type spikeWorld struct {
	start   time.Time
	minutes int
	names   []string
	base    []float64   // mean complaints per hour over a week
	lambda  [][]float32 // true rate per minute, noise included
	counts  [][]int32
	cum     [][]int64 // prefix sums of counts: cum[r][m] = Σ counts[r][:m]
}

// spikeWorldRegions returns n mean hourly rates spread geometrically from lo
// to hi.
func spikeWorldRegions(n int, lo, hi float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo * math.Pow(hi/lo, float64(i)/float64(max(n-1, 1)))
	}
	return out
}

// spikeNewWorld draws weeks of counts for regions with the given mean
// hourly rates.
func spikeNewWorld(seed uint64, rates []float64, weeks int, noise spikeWorldNoise) *spikeWorld {
	rng := rand.New(rand.NewPCG(seed, 0xc0c0))
	n := weeks * 7 * 24 * 60
	w := &spikeWorld{start: spikeTestStart, minutes: n, base: rates}
	days := weeks * 7
	nat := make([]float64, days)
	for d := range nat {
		nat[d] = spikeGammaMean1(rng, noise.National)
	}
	for r, rate := range rates {
		w.names = append(w.names, fmt.Sprintf("r%02d-%.1f/h", r, rate))
		lam := make([]float32, n)
		cnt := make([]int32, n)
		var dayF, hourF float64
		for m := range n {
			if m%(24*60) == 0 {
				dayF = nat[m/(24*60)] * spikeGammaMean1(rng, noise.Day)
			}
			if m%60 == 0 {
				hourF = spikeGammaMean1(rng, noise.Hour)
			}
			t := w.start.Add(time.Duration(m)*time.Minute + 30*time.Second)
			l := rate / 60 * spikeDiurnal(t) * spikeWeekly(t) * dayF * hourF
			lam[m] = float32(l)
			cnt[m] = int32(spikePoisson(rng, l))
		}
		w.lambda = append(w.lambda, lam)
		w.counts = append(w.counts, cnt)
		w.cum = append(w.cum, nil)
		w.recount(r, 0)
	}
	return w
}

// recount rebuilds region r's prefix sums from minute m on.
func (w *spikeWorld) recount(r, from int) {
	if w.cum[r] == nil {
		w.cum[r] = make([]int64, w.minutes+1)
		from = 0
	}
	c := w.cum[r]
	for m := from; m < w.minutes; m++ {
		c[m+1] = c[m] + int64(w.counts[r][m])
	}
}

// at is the start of minute m.
func (w *spikeWorld) at(m int) time.Time { return w.start.Add(time.Duration(m) * time.Minute) }

// usual is region r's expected hourly rate at minute m without the random
// factors: what a supervisor would call its usual level at that time.
func (w *spikeWorld) usual(r, m int) float64 {
	t := w.at(m).Add(30 * time.Second)
	return w.base[r] * spikeDiurnal(t) * spikeWeekly(t)
}

// index is the first minute starting at or after t, clamped to the world.
func (w *spikeWorld) index(t time.Time) int {
	d := t.Sub(w.start)
	if d <= 0 {
		return 0
	}
	m := int((d + time.Minute - 1) / time.Minute)
	return min(m, w.minutes)
}

// SpikeCounts implements History: every complaint of a minute is
// taken to happen at the minute's start.
func (w *spikeWorld) SpikeCounts(ctx context.Context, ranges []Range) ([]map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]map[string]float64, len(ranges))
	for i, rg := range ranges {
		lo, hi := w.index(rg.From), w.index(rg.To)
		m := make(map[string]float64, len(w.names))
		if hi > lo {
			for r, c := range w.cum {
				if v := c[hi] - c[lo]; v > 0 {
					m[w.names[r]] = float64(v)
				}
			}
		}
		out[i] = m
	}
	return out, nil
}

// SpikeDataStart implements History.
func (w *spikeWorld) SpikeDataStart(context.Context) (time.Time, error) { return w.start, nil }

// spikeUpTo is a History that refuses to read at or after now: an
// evaluation at now must only see the past, as it would live.
type spikeUpTo struct {
	h   History
	now time.Time
}

func (u spikeUpTo) SpikeCounts(ctx context.Context, ranges []Range) ([]map[string]float64, error) {
	for _, r := range ranges {
		if r.To.After(u.now) {
			return nil, fmt.Errorf("range [%s, %s) reads past the evaluation time %s",
				r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), u.now.Format(time.RFC3339))
		}
	}
	return u.h.SpikeCounts(ctx, ranges)
}

func (u spikeUpTo) SpikeDataStart(ctx context.Context) (time.Time, error) {
	return u.h.SpikeDataStart(ctx)
}

// spikeGammaMean1 draws a Gamma variable of mean 1 and variance cv2
// (Marsaglia and Tsang); cv2 = 0 gives 1.
func spikeGammaMean1(rng *rand.Rand, cv2 float64) float64 {
	if cv2 <= 0 {
		return 1
	}
	shape := 1 / cv2
	return spikeGamma(rng, shape) / shape
}

func spikeGamma(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		return spikeGamma(rng, shape+1) * math.Pow(rng.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// spikePoisson draws a Poisson variable (by multiplication for small means,
// by splitting larger ones).
func spikePoisson(rng *rand.Rand, mean float64) int {
	n := 0
	for mean > 20 {
		n += spikePoisson(rng, 20)
		mean -= 20
	}
	l := math.Exp(-mean)
	p := rng.Float64()
	for p > l {
		n++
		p *= rng.Float64()
	}
	return n
}
