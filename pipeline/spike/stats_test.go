package spike

import (
	"math"
	"testing"
)

// Brute-force references: sum probability mass functions term by term in
// log space. Slow but obviously right.

func spikeRefPoissonUpper(k int, mean float64) float64 {
	// 1 − P(X ≤ k−1) loses precision for tiny tails, so sum the upper tail
	// directly until terms vanish.
	sum := 0.0
	for j := k; j < k+10000; j++ {
		lj, _ := math.Lgamma(float64(j) + 1)
		t := math.Exp(float64(j)*math.Log(mean) - mean - lj)
		sum += t
		if t < 1e-300 || (float64(j) > mean && t < sum*1e-18) {
			break
		}
	}
	return sum
}

func spikeRefNegBinUpper(k int, mean, size float64) float64 {
	p := size / (size + mean)
	lr, _ := math.Lgamma(size)
	sum := 0.0
	for j := k; j < k+200000; j++ {
		a, _ := math.Lgamma(float64(j) + size)
		b, _ := math.Lgamma(float64(j) + 1)
		t := math.Exp(a - b - lr + size*math.Log(p) + float64(j)*math.Log1p(-p))
		sum += t
		if float64(j) > mean && t < sum*1e-18 {
			break
		}
	}
	return sum
}

func spikeRefBinomUpper(k, n int, p float64) float64 {
	sum := 0.0
	for j := k; j <= n; j++ {
		a, _ := math.Lgamma(float64(n) + 1)
		b, _ := math.Lgamma(float64(j) + 1)
		c, _ := math.Lgamma(float64(n-j) + 1)
		sum += math.Exp(a - b - c + float64(j)*math.Log(p) + float64(n-j)*math.Log1p(-p))
	}
	return sum
}

func spikeRefBetaBinomUpper(k, n int, alpha, beta float64) float64 {
	sum := 0.0
	for j := k; j <= n; j++ {
		a, _ := math.Lgamma(float64(n) + 1)
		b, _ := math.Lgamma(float64(j) + 1)
		c, _ := math.Lgamma(float64(n-j) + 1)
		sum += math.Exp(a - b - c + spikeLogBeta(float64(j)+alpha, float64(n-j)+beta) - spikeLogBeta(alpha, beta))
	}
	return sum
}

func spikeClose(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Abs(want)
}

func TestSpikePoissonUpper(t *testing.T) {
	// P(X ≥ 10 | λ = 3) = 1 − Σ_{j<10} e^{-3} 3^j / j! ≈ 0.0011025.
	if got := spikePoissonUpper(10, 3); !spikeClose(got, 0.001102488, 1e-6) {
		t.Errorf("P(X≥10|3) = %.10g, want 0.001102488", got)
	}
	for _, tc := range []struct {
		k    int
		mean float64
	}{
		{1, 0.01}, {1, 5}, {3, 0.5}, {5, 0.2}, {10, 3}, {10, 12}, {20, 3}, {42, 9}, {60, 1},
		{150, 100}, {130, 100}, {90, 100}, {300, 100}, {1000, 950},
	} {
		want := spikeRefPoissonUpper(tc.k, tc.mean)
		got := spikePoissonUpper(float64(tc.k), tc.mean)
		if !spikeClose(got, want, 1e-9) {
			t.Errorf("P(X≥%d|%g) = %.12g, brute force %.12g", tc.k, tc.mean, got, want)
		}
	}
	if got := spikePoissonUpper(0, 3); got != 1 {
		t.Errorf("P(X≥0) = %v, want 1", got)
	}
	if got := spikePoissonUpper(3, 0); got != 0 {
		t.Errorf("P(X≥3|0) = %v, want 0", got)
	}
	if got := spikePoissonUpper(3, math.NaN()); !math.IsNaN(got) {
		t.Errorf("NaN mean gave %v", got)
	}
	if got := spikePoissonUpper(3, -1); !math.IsNaN(got) {
		t.Errorf("negative mean gave %v", got)
	}
}

func TestSpikeNegBinUpper(t *testing.T) {
	for _, tc := range []struct {
		k          int
		mean, size float64
	}{
		{10, 3, 1}, {10, 3, 20}, {10, 3, 1e6}, {5, 0.02, 0.5}, {42, 9, 5}, {42, 9, 0.7},
		{3, 4, 2}, {1, 1, 1}, {200, 50, 10}, {25, 6, 3.3},
	} {
		want := spikeRefNegBinUpper(tc.k, tc.mean, tc.size)
		got := spikeNegBinUpper(float64(tc.k), tc.mean, tc.size)
		if !spikeClose(got, want, 1e-8) {
			t.Errorf("NB P(X≥%d|μ=%g,r=%g) = %.12g, brute force %.12g", tc.k, tc.mean, tc.size, got, want)
		}
	}
	// The Poisson is the r → ∞ limit.
	if nb, po := spikeNegBinUpper(10, 3, 1e9), spikePoissonUpper(10, 3); !spikeClose(nb, po, 1e-6) {
		t.Errorf("NB with huge size %.10g, Poisson %.10g", nb, po)
	}
	// Over-dispersion fattens the tail.
	if nb, po := spikeNegBinUpper(10, 3, 2), spikePoissonUpper(10, 3); nb <= po {
		t.Errorf("NB tail %.4g not above Poisson %.4g", nb, po)
	}
	for _, bad := range [][3]float64{{3, math.NaN(), 1}, {3, 1, 0}, {3, -1, 1}, {3, 1, math.NaN()}} {
		if got := spikeNegBinUpper(bad[0], bad[1], bad[2]); !math.IsNaN(got) {
			t.Errorf("NB%v = %v, want NaN", bad, got)
		}
	}
}

func TestSpikeBinomAndBetaBinomUpper(t *testing.T) {
	for _, tc := range []struct {
		k, n int
		p    float64
	}{
		{5, 10, 0.2}, {1, 1, 0.5}, {30, 100, 0.1}, {50, 400, 0.05}, {3, 400, 0.05}, {400, 400, 0.9}, {12, 30, 0.4},
	} {
		want := spikeRefBinomUpper(tc.k, tc.n, tc.p)
		if got := spikeBinomUpper(float64(tc.k), float64(tc.n), tc.p); !spikeClose(got, want, 1e-9) {
			t.Errorf("Bin P(X≥%d|%d,%g) = %.12g, brute force %.12g", tc.k, tc.n, tc.p, got, want)
		}
	}
	for _, tc := range []struct {
		k, n        int
		alpha, beta float64
	}{
		{5, 10, 2, 8}, {30, 100, 10, 90}, {50, 400, 5, 95}, {3, 400, 5, 95}, {1, 1, 1, 1},
		{10, 20, 0.5, 0.5}, {200, 2000, 20, 380}, {60, 2000, 20, 380}, {2000, 2000, 3, 1},
	} {
		want := spikeRefBetaBinomUpper(tc.k, tc.n, tc.alpha, tc.beta)
		got := spikeBetaBinomUpper(tc.k, tc.n, tc.alpha, tc.beta)
		if !spikeClose(got, want, 1e-9) && math.Abs(got-want) > 1e-14 {
			t.Errorf("BetaBin P(X≥%d|%d,%g,%g) = %.12g, brute force %.12g", tc.k, tc.n, tc.alpha, tc.beta, got, want)
		}
	}
	// A very concentrated beta-binomial is the binomial.
	if bb, b := spikeBetaBinomUpper(30, 100, 0.1e7, 0.9e7), spikeBinomUpper(30, 100, 0.1); !spikeClose(bb, b, 1e-3) {
		t.Errorf("beta-binomial limit %.10g, binomial %.10g", bb, b)
	}
	if got := spikeBetaBinomUpper(3, 10, math.NaN(), 1); !math.IsNaN(got) {
		t.Errorf("NaN alpha gave %v", got)
	}
	if got := spikeBinomUpper(11, 10, 0.5); got != 0 {
		t.Errorf("k > n gave %v", got)
	}
}

func TestSpikeIncompleteFunctions(t *testing.T) {
	// Closed forms: P(1, x) = 1 − e^{−x}; I_x(1, b) = 1 − (1−x)^b;
	// I_x(a, 1) = x^a.
	for _, x := range []float64{1e-8, 0.1, 1, 2.5, 10, 40} {
		if got, want := spikeGammaP(1, x), -math.Expm1(-x); !spikeClose(got, want, 1e-12) {
			t.Errorf("P(1,%g) = %.15g, want %.15g", x, got, want)
		}
	}
	for _, x := range []float64{1e-6, 0.2, 0.5, 0.9, 0.999} {
		for _, b := range []float64{0.5, 1, 3, 50} {
			if got, want := spikeBetaI(x, 1, b), -math.Expm1(b*math.Log1p(-x)); !spikeClose(got, want, 1e-11) {
				t.Errorf("I_%g(1,%g) = %.15g, want %.15g", x, b, got, want)
			}
			if got, want := spikeBetaI(x, b, 1), math.Pow(x, b); !spikeClose(got, want, 1e-11) {
				t.Errorf("I_%g(%g,1) = %.15g, want %.15g", x, b, got, want)
			}
		}
	}
}

func TestSpikeHolm(t *testing.T) {
	ps := []float64{0.01, 0.04, 0.03, 0.005, math.NaN()}
	adj := make([]float64, len(ps))
	spikeHolm(ps, adj, make([]int, len(ps)))
	// Sorted: 0.005×5 = 0.025, 0.01×4 = 0.04, 0.03×3 = 0.09, 0.04×2 = 0.08
	// → 0.09 (monotone), NaN→1.
	want := []float64{0.04, 0.09, 0.09, 0.025, 1}
	for i := range want {
		if !spikeClose(adj[i], want[i], 1e-12) {
			t.Errorf("adj[%d] = %v, want %v", i, adj[i], want[i])
		}
	}
}
