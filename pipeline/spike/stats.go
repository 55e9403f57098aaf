package spike

import (
	"cmp"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
)

// Numerical helpers for the spike detector: upper-tail probabilities of the
// Poisson, negative-binomial, binomial and beta-binomial distributions,
// computed through the regularized incomplete gamma and beta functions
// (gonum's mathext) so that tiny p-values (1e-12 and below) keep their
// relative precision instead of being lost in 1 − (something close to 1).
// The Survival methods of gonum's distuv compute 1 − CDF, which is that
// loss, so the tails are written here from the incomplete functions
// (Abramowitz & Stegun 6.5 and 26.5).

// spikeEps is the relative size below which a term of a sum no longer
// matters.
const spikeEps = 1e-15

// spikeGammaP is the regularized lower incomplete gamma function P(a, x)
// for a > 0, x ≥ 0. Invalid arguments yield NaN.
func spikeGammaP(a, x float64) float64 {
	switch {
	case math.IsNaN(a) || math.IsNaN(x) || a <= 0 || x < 0:
		return math.NaN()
	case x == 0:
		return 0
	case math.IsInf(x, 1):
		return 1
	}
	return mathext.GammaIncReg(a, x)
}

// spikeBetaI is the regularized incomplete beta function I_x(a, b) for
// a, b > 0 and 0 ≤ x ≤ 1. Invalid arguments yield NaN.
func spikeBetaI(x, a, b float64) float64 {
	switch {
	case math.IsNaN(x) || math.IsNaN(a) || math.IsNaN(b) || a <= 0 || b <= 0 || x < 0 || x > 1:
		return math.NaN()
	case x == 0:
		return 0
	case x == 1:
		return 1
	}
	return mathext.RegIncBeta(a, b, x)
}

// spikePoissonUpper returns P(X ≥ k) for X ~ Poisson(mean).
// P(X ≥ k) = P(k, mean), the regularized lower incomplete gamma function.
func spikePoissonUpper(k, mean float64) float64 {
	switch {
	case math.IsNaN(k) || math.IsNaN(mean) || mean < 0:
		return math.NaN()
	case k <= 0:
		return 1
	case mean == 0:
		return 0
	}
	return spikeGammaP(k, mean)
}

// spikeNegBinUpper returns P(X ≥ k) for a negative-binomial X with the given
// mean and size r (Var X = mean + mean²/r; r → ∞ is the Poisson limit).
// With success probability p = r/(r+mean), P(X ≤ k−1) = I_p(r, k), so
// P(X ≥ k) = I_{1−p}(k, r).
func spikeNegBinUpper(k, mean, size float64) float64 {
	switch {
	case math.IsNaN(k) || math.IsNaN(mean) || math.IsNaN(size) || mean < 0 || size <= 0:
		return math.NaN()
	case k <= 0:
		return 1
	case mean == 0:
		return 0
	case math.IsInf(size, 1):
		return spikePoissonUpper(k, mean)
	}
	return spikeBetaI(mean/(size+mean), k, size)
}

// spikeBinomUpper returns P(X ≥ k) for X ~ Binomial(n, p), which equals
// I_p(k, n−k+1).
func spikeBinomUpper(k, n, p float64) float64 {
	switch {
	case math.IsNaN(k) || math.IsNaN(n) || math.IsNaN(p) || n < 0 || p < 0 || p > 1:
		return math.NaN()
	case k <= 0:
		return 1
	case k > n:
		return 0
	}
	return spikeBetaI(p, k, n-k+1)
}

// spikeBetaBinomUpper returns P(X ≥ k) for X ~ BetaBinomial(n, α, β): a
// binomial whose success probability is itself Beta(α, β) distributed. The
// probability mass function is summed with the term ratio
// f(j+1)/f(j) = (n−j)(j+α) / ((j+1)(n−j−1+β)), walking away from the mode
// so the sum stops as soon as terms no longer matter. k and n are whole.
func spikeBetaBinomUpper(k, n int, alpha, beta float64) float64 {
	switch {
	case math.IsNaN(alpha) || math.IsNaN(beta) || alpha <= 0 || beta <= 0 || n < 0:
		return math.NaN()
	case k <= 0:
		return 1
	case k > n:
		return 0
	}
	logPMF := func(j int) float64 {
		fn, fj := float64(n), float64(j)
		l1, _ := math.Lgamma(fn + 1)
		l2, _ := math.Lgamma(fj + 1)
		l3, _ := math.Lgamma(fn - fj + 1)
		return l1 - l2 - l3 + spikeLogBeta(fj+alpha, fn-fj+beta) - spikeLogBeta(alpha, beta)
	}
	mean := float64(n) * alpha / (alpha + beta)
	if float64(k) > mean {
		// Upper side: terms decrease from k on.
		t := math.Exp(logPMF(k))
		sum := t
		for j := k; j < n; j++ {
			fj, fn := float64(j), float64(n)
			t *= (fn - fj) * (fj + alpha) / ((fj + 1) * (fn - fj - 1 + beta))
			sum += t
			if t < sum*spikeEps {
				break
			}
		}
		return math.Min(sum, 1)
	}
	// Lower side: 1 − P(X ≤ k−1), summing downwards from k−1.
	t := math.Exp(logPMF(k - 1))
	sum := t
	for j := k - 1; j > 0; j-- {
		fj, fn := float64(j), float64(n)
		// f(j−1)/f(j) is the inverse of the upward ratio at j−1.
		t *= fj * (fn - fj + beta) / ((fn - fj + 1) * (fj - 1 + alpha))
		sum += t
		if t < sum*spikeEps {
			break
		}
	}
	return math.Max(0, 1-sum)
}

// spikeLogBeta is log B(a, b).
func spikeLogBeta(a, b float64) float64 { return mathext.Lbeta(a, b) }

// spikeHolm applies Holm's step-down procedure to the p-values ps and writes
// the Holm-adjusted p-values to adj: with the p-values sorted ascending,
// adj_(i) = max over j ≤ i of min(1, (m−j)·p_(j)). A hypothesis is rejected at
// family-wise level α when its adjusted p-value is ≤ α. NaN counts as 1.
// order is scratch space of at least len(ps) elements.
func spikeHolm(ps, adj []float64, order []int) {
	m := len(ps)
	clean := func(v float64) float64 {
		switch {
		case math.IsNaN(v) || v > 1:
			return 1
		case v < 0:
			return 0
		}
		return v
	}
	idx := order[:m]
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Compare(clean(ps[a]), clean(ps[b]))
	})
	running := 0.0
	for rank, i := range idx {
		if v := math.Min(1, float64(m-rank)*clean(ps[i])); v > running {
			running = v
		}
		adj[i] = running
	}
}
