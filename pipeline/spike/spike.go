package spike

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Spike models, the values of Config.Model.
const (
	ModelPoisson = "poisson"
	ModelNegBin  = "negbin"
)

// Corrections for the number of tests, the values of
// Config.Correction.
const (
	// CorrectionScan: a region's windows all end now and are nested,
	// so they are one scan, not independent tests; its smallest p-value is
	// multiplied by the effective number of windows, 1 + log2(longest /
	// shortest), and Holm's procedure runs over the regions.
	CorrectionScan = "scan"
	// CorrectionHolm: Holm's procedure over every region × window
	// test, as if they were independent (stricter, less power).
	CorrectionHolm = "holm"
)

// Scope says whether a finding is about one region or the whole country.
type Scope string

// Finding scopes.
const (
	ScopeRegion   Scope = "region"
	ScopeNational Scope = "national"
)

// Baseline names how the expected count was estimated.
type Baseline string

// Baseline kinds, from the best to the weakest.
const (
	// BaselineWeekly: the same hour of the week over past weeks.
	BaselineWeekly Baseline = "hour_of_week"
	// BaselineDaily: an EWMA over previous days at the same time of
	// day, while fewer than MinHistoryWeeks weeks of history exist.
	BaselineDaily Baseline = "daily_ewma"
	// BaselineTrailing: an EWMA over the trailing hours, while less
	// than one day of history exists.
	BaselineTrailing Baseline = "trailing_ewma"
	// BaselineNone: not enough history to evaluate anything.
	BaselineNone Baseline = ""
)

// ErrConfig is wrapped by every Config validation error.
var ErrConfig = errors.New("invalid spike config")

// ErrHistory is wrapped when a History returns unusable data
// (wrong number of results, negative or non-finite counts).
var ErrHistory = errors.New("invalid spike history data")

const (
	spikeWeek = 7 * 24 * time.Hour
	spikeDay  = 24 * time.Hour
	// spikeTrailingBuckets is how many trailing buckets the trailing EWMA
	// looks at (it is only used during the first day).
	spikeTrailingBuckets = 24
	// spikePrior is the Gamma/Beta prior pseudo-count (Jeffreys-like) that
	// keeps expected counts and shares away from exactly zero.
	spikePrior = 0.5
)

// Config configures a Detector. The zero value of every field
// means "use the default" (see DefaultConfig); NewDetector fills
// the defaults in and validates.
type Config struct {
	// Windows are the lengths of the trailing count windows tested at each
	// evaluation. Each must be in (0, 24h]. Default 5m, 10m, 15m, 30m.
	Windows []time.Duration `yaml:"windows,omitempty" json:"windows,omitempty"`
	// MinCount is the smallest complaint count in a window that can fire.
	// Default 5.
	MinCount int `yaml:"min_count,omitempty" json:"min_count,omitempty"`
	// MinRatio is the smallest count/expected ratio that can fire. Must be
	// ≥ 1. Default 1.5.
	MinRatio float64 `yaml:"min_ratio,omitempty" json:"min_ratio,omitempty"`
	// Alpha is the family-wise false-alarm probability per evaluation and
	// per test family (region counts, region shares, national total).
	// Must be in (0, 0.5]. Default 0.0007.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha,omitempty"`
	// NationalAlpha is Alpha for the national test, which pages everyone
	// and is one test where the regions are many: in (0, 0.5], default
	// Alpha/10.
	NationalAlpha float64 `yaml:"national_alpha,omitempty" json:"national_alpha,omitempty"`
	// Model is the count distribution: "negbin" (default) or "poisson".
	Model string `yaml:"model,omitempty" json:"model,omitempty"`
	// Correction is how an evaluation's tests are corrected for their
	// number: "scan" (default) or "holm" (see the constants).
	Correction string `yaml:"correction,omitempty" json:"correction,omitempty"`
	// Dispersion is the extra-Poisson variance of the negbin model, as the
	// squared coefficient of variation of the true rate around its
	// baseline (Var = μ + Dispersion·μ²); it also widens the share test.
	// Ignored by the poisson model. Default 0.05 (rates wander ±22%).
	Dispersion float64 `yaml:"dispersion,omitempty" json:"dispersion,omitempty"`
	// HistoryWeeks is how many past weeks the hour-of-week baseline
	// averages. Default 4.
	HistoryWeeks int `yaml:"history_weeks,omitempty" json:"history_weeks,omitempty"`
	// MinHistoryWeeks is how many full past weeks must exist before the
	// hour-of-week baseline replaces the daily EWMA. 1..HistoryWeeks,
	// default 2.
	MinHistoryWeeks int `yaml:"min_history_weeks,omitempty" json:"min_history_weeks,omitempty"`
	// BaselineSpan is the width of each past slice the baseline reads,
	// centred on the same time of week/day as the current window (a window
	// longer than the span uses its own length). Wider is less noisy but
	// blurs the daily shape. In (0, 24h], default 1h.
	BaselineSpan time.Duration `yaml:"baseline_span,omitempty" json:"baseline_span,omitempty"`
	// DailyHalfLife is the half-life of the weights of previous days in the
	// daily EWMA baseline. Default 72h.
	DailyHalfLife time.Duration `yaml:"daily_half_life,omitempty" json:"daily_half_life,omitempty"`
	// EWMAHalfLife is the half-life of the trailing EWMA over the last
	// hours, used during the first day of history. Default 1h.
	EWMAHalfLife time.Duration `yaml:"ewma_half_life,omitempty" json:"ewma_half_life,omitempty"`
	// PooledPrior is the weight, in pseudo-complaints, of the pooled prior
	// for a region's expected count: the region's long-run share of all
	// complaints times the national baseline for the same slot. It steadies
	// small regions' baselines (their own hour-of-week slots hold few
	// complaints) without hiding their own shape. Default 25; a negative
	// value disables pooling.
	PooledPrior float64 `yaml:"pooled_prior,omitempty" json:"pooled_prior,omitempty"`
	// LevelWindow, in the hour-of-week mode, is how much of the region's
	// recent past (ending where the longest window starts) is compared
	// with the same span of the past weeks to learn how busy today is: half
	// of Dispersion is taken to be such slow day-to-day wandering, which
	// the recent complaints then pin down (a Gamma prior of 2/Dispersion
	// pseudo-complaints updated by the recent count). Used only when it is
	// at least twice the longest window. Default 6h; negative: off.
	LevelWindow time.Duration `yaml:"level_window,omitempty" json:"level_window,omitempty"`
}

// DefaultConfig returns the defaults of Config.
func DefaultConfig() Config {
	return Config{
		Windows:         []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute},
		MinCount:        5,
		MinRatio:        1.5,
		Alpha:           0.0007,
		NationalAlpha:   0.00007,
		Model:           ModelNegBin,
		Correction:      CorrectionScan,
		Dispersion:      0.05,
		HistoryWeeks:    4,
		MinHistoryWeeks: 2,
		BaselineSpan:    time.Hour,
		DailyHalfLife:   72 * time.Hour,
		EWMAHalfLife:    time.Hour,
		PooledPrior:     25,
		LevelWindow:     6 * time.Hour,
	}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults. The Windows slice is copied.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if len(c.Windows) == 0 {
		c.Windows = d.Windows
	} else {
		c.Windows = slices.Clone(c.Windows)
	}
	if c.MinCount == 0 {
		c.MinCount = d.MinCount
	}
	if c.MinRatio == 0 {
		c.MinRatio = d.MinRatio
	}
	if c.Alpha == 0 {
		c.Alpha = d.Alpha
	}
	if c.NationalAlpha == 0 {
		c.NationalAlpha = c.Alpha / 10
	}
	if c.Model == "" {
		c.Model = d.Model
	}
	if c.Correction == "" {
		c.Correction = d.Correction
	}
	if c.Dispersion == 0 {
		c.Dispersion = d.Dispersion
	}
	if c.HistoryWeeks == 0 {
		c.HistoryWeeks = d.HistoryWeeks
	}
	if c.MinHistoryWeeks == 0 {
		c.MinHistoryWeeks = min(d.MinHistoryWeeks, c.HistoryWeeks)
	}
	if c.BaselineSpan == 0 {
		c.BaselineSpan = d.BaselineSpan
	}
	if c.DailyHalfLife == 0 {
		c.DailyHalfLife = d.DailyHalfLife
	}
	if c.EWMAHalfLife == 0 {
		c.EWMAHalfLife = d.EWMAHalfLife
	}
	if c.PooledPrior == 0 {
		c.PooledPrior = d.PooledPrior
	}
	if c.LevelWindow == 0 {
		c.LevelWindow = d.LevelWindow
	}
	return c
}

// Validate reports the first problem with c, wrapping ErrConfig. It
// does not fill defaults: validate c.WithDefaults() for a partial config.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Windows) == 0 {
		return bad("windows: at least one window is required")
	}
	for i, w := range c.Windows {
		if w <= 0 || w > spikeDay {
			return bad("windows[%d] = %s: must be in (0, 24h]", i, w)
		}
		if slices.Contains(c.Windows[:i], w) {
			return bad("windows[%d] = %s: duplicate", i, w)
		}
	}
	switch {
	case c.MinCount < 1:
		return bad("min_count = %d: must be ≥ 1", c.MinCount)
	case math.IsNaN(c.MinRatio) || math.IsInf(c.MinRatio, 0) || c.MinRatio < 1:
		return bad("min_ratio = %v: must be a finite number ≥ 1", c.MinRatio)
	case math.IsNaN(c.Alpha) || c.Alpha <= 0 || c.Alpha > 0.5:
		return bad("alpha = %v: must be in (0, 0.5]", c.Alpha)
	case math.IsNaN(c.NationalAlpha) || c.NationalAlpha <= 0 || c.NationalAlpha > 0.5:
		return bad("national_alpha = %v: must be in (0, 0.5]", c.NationalAlpha)
	case c.Model != ModelPoisson && c.Model != ModelNegBin:
		return bad("model = %q: must be %q or %q", c.Model, ModelPoisson, ModelNegBin)
	case c.Correction != CorrectionScan && c.Correction != CorrectionHolm:
		return bad("correction = %q: must be %q or %q", c.Correction, CorrectionScan, CorrectionHolm)
	case math.IsNaN(c.Dispersion) || math.IsInf(c.Dispersion, 0) || c.Dispersion < 0:
		return bad("dispersion = %v: must be a finite number ≥ 0", c.Dispersion)
	case c.HistoryWeeks < 1 || c.HistoryWeeks > 52:
		return bad("history_weeks = %d: must be in [1, 52]", c.HistoryWeeks)
	case c.MinHistoryWeeks < 1 || c.MinHistoryWeeks > c.HistoryWeeks:
		return bad("min_history_weeks = %d: must be in [1, history_weeks=%d]", c.MinHistoryWeeks, c.HistoryWeeks)
	case c.BaselineSpan <= 0 || c.BaselineSpan > spikeDay:
		return bad("baseline_span = %s: must be in (0, 24h]", c.BaselineSpan)
	case c.DailyHalfLife <= 0:
		return bad("daily_half_life = %s: must be > 0", c.DailyHalfLife)
	case c.EWMAHalfLife <= 0:
		return bad("ewma_half_life = %s: must be > 0", c.EWMAHalfLife)
	case math.IsNaN(c.PooledPrior) || math.IsInf(c.PooledPrior, 0):
		return bad("pooled_prior = %v: must be finite", c.PooledPrior)
	}
	return nil
}

// Finding is one spike raised by an evaluation.
type Finding struct {
	// Scope is "region" or "national".
	Scope Scope `json:"scope"`
	// Region is the region's name; empty for a national finding.
	Region string `json:"region,omitempty"`
	// At is the evaluation time (the end of the window).
	At time.Time `json:"at"`
	// Window is the length of the window that fired (the most significant
	// one when several did).
	Window time.Duration `json:"window"`
	// Count is the number of complaints in the window (for a national
	// finding: in the regions not reported separately).
	Count float64 `json:"count"`
	// Expected is the baseline's expected count for the window.
	Expected float64 `json:"expected"`
	// Ratio is Count / Expected.
	Ratio float64 `json:"ratio"`
	// PValue is the upper-tail probability of Count under the model,
	// before correction for multiple tests.
	PValue float64 `json:"p_value"`
	// AdjustedPValue is PValue corrected for the number of tests (see
	// Config.Correction for regions; Bonferroni over windows for the
	// national total); the finding fired because it is ≤ Alpha.
	AdjustedPValue float64 `json:"adjusted_p_value"`
	// Share is the region's share of all complaints in the window (0 for
	// national findings).
	Share float64 `json:"share"`
	// ExpectedShare is the region's historical share (0 for national).
	ExpectedShare float64 `json:"expected_share"`
	// SharePValue is the upper-tail probability of the region's count among
	// the national total under its historical share (1 for national).
	SharePValue float64 `json:"share_p_value"`
	// Baseline says how Expected was estimated.
	Baseline Baseline `json:"baseline"`
	// BaselineCounts are the complaints (of the region, or of the whole
	// country for a national finding) in each past slice the baseline
	// read, the most recent first: the same time of each previous week,
	// of each previous day, or the preceding slices (see Baseline).
	BaselineCounts []float64 `json:"baseline_counts,omitempty"`
	// BaselineSlice is the length of each of those slices.
	BaselineSlice time.Duration `json:"baseline_slice,omitempty"`
	// Level is how busy the region has been today against the same hours
	// of the past weeks (see Config.LevelWindow); the count test
	// expects Expected × Level. 0 when not estimated.
	Level float64 `json:"level,omitempty"`
	// Explanation is one sentence a supervisor can check, e.g.
	// "广州: 42 complaints in the last 15m against 9.0 expected from the
	// same 1h of the previous 4 weeks (40, 35, 31, 38 complaints); share
	// 31% of all complaints vs usual 9%; by chance about 1 in 33 trillion
	// (p=3e-14)".
	Explanation string `json:"explanation"`
}

// Detector finds regional complaint spikes (SPEC §6, rule kind
// "spike"). It is stateless between evaluations and safe for concurrent use.
//
// # Method
//
// At each evaluation time t and for each window w (default 5, 10, 15, 30
// min),
// every region's count c in [t−w, t) is compared with an expected count μ
// from that region's own history:
//
//   - hour-of-week baseline (once MinHistoryWeeks full weeks exist): the
//     mean count over the same time of the week in the last HistoryWeeks
//     weeks, read over a BaselineSpan-wide slice (default 1 h) centred on
//     the window and scaled to the window's length, so a 5-minute window
//     is compared with 4 × 12 past 5-minute slots, not 4 noisy ones;
//   - daily EWMA (shorter history): the same slices on previous days,
//     weighted by DailyHalfLife, which keeps the daily shape;
//   - trailing EWMA (first day): the preceding hours, weighted by
//     EWMAHalfLife.
//
// Expected counts are Gamma posteriors: with S complaints observed over an
// exposure of E window-lengths, μ = (S + ½) / E, so a region that was
// silent has a small positive μ rather than zero. Small regions' own slots
// hold few complaints, so their posterior also gets PooledPrior (default
// 25) pseudo-complaints centred on "national baseline for this slot × the
// region's long-run share": shape A = S + ½ + 25, rate B = E + 25/m,
// μ = A/B.
//
// Today's level (hour-of-week mode, LevelWindow ≥ twice the longest
// window): the region's complaints over the LevelWindow before the longest
// window, c, against their mean over the same span of the past weeks, b,
// give its level today L = (c + κ)/(b + κ), κ = 2/Dispersion: half of the
// extra-Poisson variance is taken to be slow wandering from day to day,
// which recent complaints reveal. The count test then expects μ·L with
// dispersion Dispersion/2 + 1/(c + κ) in place of Dispersion, so a busy
// day does not read as a spike and a quiet one does not hide one. Shares
// are unaffected.
//
// Three families of one-sided tests are run:
//
//  1. Count. p = P(X ≥ c | μ). Model "poisson": X ~ Poisson(μ). Model
//     "negbin" (default): X ~ NegBin(mean μ, size r) with 1/r =
//     Dispersion + 1/A: the negative binomial is the Poisson–Gamma
//     mixture, so it carries both the day-to-day wandering of real rates
//     (Dispersion) and the uncertainty of μ itself (a baseline built from
//     few complaints is trusted less). Tails use the regularized incomplete
//     gamma (Poisson) and beta (negative binomial) functions.
//  2. Share. Given the national total N in the window, a region's count is
//     Binomial(N, s) under its historical share s = (S_r + ½)/(S + ½·R)
//     (for "negbin": beta-binomial with concentration
//     1/(Dispersion·s/(1−s) + 1/(S+½·R)), i.e. the share's relative variance
//     is Dispersion plus the uncertainty of s). A nationwide rise leaves
//     shares unchanged, so this test separates "this region" from
//     "everyone".
//  3. National. The national total against the sum of the baselines, same
//     model as 1.
//
// Correction for multiple tests: a region's windows all end now and are
// nested (the 5-minute window is the end of the 15-minute one), so they
// are one scan over start times, not independent tests. With Correction
// "scan" (the default) a region's smallest p-value over its windows is
// multiplied by the effective number of windows, 1 + log2(longest /
// shortest) (each doubling of the window adds about one independent test),
// and Holm's step-down procedure runs over the regions; the share tests
// likewise. A scan over dense windows is the stateless form of a CUSUM:
// the maximum evidence over every start point, recomputed from the history
// at each evaluation, so a backtest sees exactly what a live evaluation
// saw. Correction "holm" treats every region × window as its own test
// (stricter: at equal Alpha it finds less). The national test is
// Bonferroni-corrected over the windows. Each family holds its
// false-alarm probability near Alpha per evaluation; the operating point
// over a week of one-minute evaluations is measured, not derived (see
// BenchmarkSpikeOperatingPoint).
//
// Decision: a region fires in a window when its count test rejects, c ≥
// MinCount, c/μ ≥ MinRatio, and either its share test rejects (its share
// rose) or the national test, at Alpha, rejects in none of the windows
// (the country is calm, so the region's rise is its own). A national
// finding fires when the national total without the regions that fired is
// still improbable at NationalAlpha (default Alpha/10: one test that pages
// everyone) and meets MinCount and MinRatio: with no regional finding this
// is "the country rose while no region's share did", reported once instead
// of once per region. Each
// region (and the nation) yields at most one finding per evaluation, from
// its most significant window.
//
// Counts returned by the history are rounded to whole complaints; NaN,
// infinite or negative counts are rejected with ErrHistory.
type Detector struct {
	cfg Config
}

// NewDetector returns a detector for cfg with defaults filled in.
func NewDetector(cfg Config) (*Detector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	slices.Sort(cfg.Windows)
	return &Detector{cfg: cfg}, nil
}

// Config returns the detector's effective configuration.
func (d *Detector) Config() Config {
	c := d.cfg
	c.Windows = slices.Clone(c.Windows)
	return c
}

// spikePlan is the set of ranges one evaluation reads and how to combine
// them.
type spikePlan struct {
	mode    Baseline
	ranges  []Range
	windows []spikeWindowPlan
	level   int // index of the long range giving regions' shares; −1 if none
	// recent is the index of the range giving regions' recent level, and
	// recentBase the same span in past weeks; −1 / nil if not used.
	recent     int
	recentBase []int
}

type spikeWindowPlan struct {
	w       time.Duration
	cur     int       // index of the current window's range
	base    []int     // indices of the baseline ranges
	weights []float64 // weight of each baseline range
	scale   float64   // window length / baseline slice length
	expo    float64   // effective exposure, in window lengths
}

// spikeSpan is the baseline slice length for window w.
func (d *Detector) spikeSpan(w time.Duration) time.Duration {
	return max(d.cfg.BaselineSpan, w)
}

// Mode returns which baseline an evaluation at now would use given that the
// history starts at start.
func (d *Detector) Mode(now, start time.Time) Baseline {
	weeks, days, hours := d.available(now, start)
	switch {
	case start.IsZero() || now.IsZero():
		return BaselineNone
	case weeks >= d.cfg.MinHistoryWeeks:
		return BaselineWeekly
	case days >= 1:
		return BaselineDaily
	case hours >= 1:
		return BaselineTrailing
	}
	return BaselineNone
}

// available counts the whole past weeks, days and trailing buckets whose
// baseline slices, for every window, lie after start.
func (d *Detector) available(now, start time.Time) (weeks, days, buckets int) {
	if start.IsZero() || now.IsZero() {
		return 0, 0, 0
	}
	// Earliest instant a slice for offset k·period reaches back to, over
	// all windows: the centre now − w/2 minus half the span.
	reach := time.Duration(0)
	for _, w := range d.cfg.Windows {
		reach = max(reach, w/2+d.spikeSpan(w)/2)
	}
	avail := now.Sub(start)
	if avail < 0 {
		return 0, 0, 0
	}
	for k := 1; k <= d.cfg.HistoryWeeks && reach+time.Duration(k)*spikeWeek <= avail; k++ {
		weeks = k
	}
	for k := 1; k <= 7*d.cfg.MinHistoryWeeks && reach+time.Duration(k)*spikeDay <= avail; k++ {
		days = k
	}
	for k := 1; k <= spikeTrailingBuckets; k++ {
		// Bucket k−1 of the largest window ends at now − w − (k−1)·span.
		need := time.Duration(0)
		for _, w := range d.cfg.Windows {
			need = max(need, w+time.Duration(k)*d.spikeSpan(w))
		}
		if need > avail {
			break
		}
		buckets = k
	}
	return weeks, days, buckets
}

// plan lists the ranges for an evaluation at now.
func (d *Detector) plan(now, start time.Time) spikePlan {
	p := spikePlan{mode: d.Mode(now, start)}
	if p.mode == BaselineNone {
		return p
	}
	weeks, days, buckets := d.available(now, start)
	n := weeks
	switch p.mode {
	case BaselineDaily:
		n = days
	case BaselineTrailing:
		n = buckets
	}
	p.ranges = make([]Range, 0, len(d.cfg.Windows)*(n+1)+1)
	p.windows = make([]spikeWindowPlan, len(d.cfg.Windows))
	idx := make([]int, len(d.cfg.Windows)*n)
	wts := make([]float64, len(d.cfg.Windows)*n)
	for i, w := range d.cfg.Windows {
		span := d.spikeSpan(w)
		wp := spikeWindowPlan{
			w:       w,
			cur:     len(p.ranges),
			base:    idx[i*n : (i+1)*n],
			weights: wts[i*n : (i+1)*n],
			scale:   float64(w) / float64(span),
		}
		p.ranges = append(p.ranges, Range{From: now.Add(-w), To: now})
		centre := now.Add(-w / 2)
		for k := 1; k <= n; k++ {
			var from time.Time
			weight := 1.0
			switch p.mode {
			case BaselineWeekly:
				from = centre.Add(-time.Duration(k)*spikeWeek - span/2)
			case BaselineDaily:
				from = centre.Add(-time.Duration(k)*spikeDay - span/2)
				weight = math.Exp2(-float64(time.Duration(k-1)*spikeDay) / float64(d.cfg.DailyHalfLife))
			case BaselineTrailing:
				from = now.Add(-w - time.Duration(k)*span)
				weight = math.Exp2(-float64(time.Duration(k-1)*span) / float64(d.cfg.EWMAHalfLife))
			}
			wp.base[k-1] = len(p.ranges)
			wp.weights[k-1] = weight
			p.ranges = append(p.ranges, Range{From: from, To: from.Add(span)})
		}
		// Effective number of slices of a weighted mean, (Σw)²/Σw², times
		// the window lengths per slice.
		var sw, sw2 float64
		for _, x := range wp.weights {
			sw += x
			sw2 += x * x
		}
		wp.expo = sw * sw / sw2 / wp.scale
		p.windows[i] = wp
	}
	// Regions' long-run shares, for the pooled prior: everything from the
	// start of the history (at most HistoryWeeks back) to the start of the
	// longest current window.
	p.recent = -1
	if lw := d.cfg.LevelWindow; lw >= 2*d.cfg.Windows[len(d.cfg.Windows)-1] && p.mode == BaselineWeekly {
		to := now.Add(-d.cfg.Windows[len(d.cfg.Windows)-1])
		from := to.Add(-lw)
		if !from.Add(-time.Duration(n) * spikeWeek).Before(start) {
			p.recent = len(p.ranges)
			p.ranges = append(p.ranges, Range{From: from, To: to})
			for k := 1; k <= n; k++ {
				p.recentBase = append(p.recentBase, len(p.ranges))
				back := time.Duration(k) * spikeWeek
				p.ranges = append(p.ranges, Range{From: from.Add(-back), To: to.Add(-back)})
			}
		}
	}
	p.level = -1
	from := now.Add(-time.Duration(d.cfg.HistoryWeeks) * spikeWeek)
	if from.Before(start) {
		from = start
	}
	if to := now.Add(-d.cfg.Windows[len(d.cfg.Windows)-1]); from.Before(to) {
		p.level = len(p.ranges)
		p.ranges = append(p.ranges, Range{From: from, To: to})
	}
	return p
}

// spikeRegionStat holds one region's numbers for one window.
type spikeRegionStat struct {
	count    float64
	expected float64
	shape    float64 // Gamma posterior shape of the rate: complaints behind expected
	pCount   float64
	share    float64
	expShare float64
	pShare   float64
	level    float64 // today's level against the past weeks (1 if unknown)
}

// Evaluate runs the spike tests at time now against history h and returns
// the findings, national first, then regions by significance. It makes one
// SpikeDataStart and at most one SpikeCounts call. With too little history
// it returns no findings and no error.
func (d *Detector) Evaluate(ctx context.Context, now time.Time, h History) ([]Finding, error) {
	if h == nil {
		return nil, errors.New("spike evaluate: nil history")
	}
	if now.IsZero() {
		return nil, errors.New("spike evaluate: zero evaluation time")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start, err := h.SpikeDataStart(ctx)
	if err != nil {
		return nil, fmt.Errorf("spike evaluate: read data start: %w", err)
	}
	p := d.plan(now, start)
	if p.mode == BaselineNone {
		return nil, nil
	}
	counts, err := h.SpikeCounts(ctx, p.ranges)
	if err != nil {
		return nil, fmt.Errorf("spike evaluate: read %d count ranges: %w", len(p.ranges), err)
	}
	if len(counts) != len(p.ranges) {
		return nil, fmt.Errorf("%w: %d results for %d ranges", ErrHistory, len(counts), len(p.ranges))
	}

	// The region universe: every region seen in any range, sorted so that
	// results are deterministic.
	seen := make(map[string]int)
	var regions []string
	for i, m := range counts {
		for r, v := range m {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return nil, fmt.Errorf("%w: range %d [%s, %s) region %q count %v",
					ErrHistory, i, p.ranges[i].From.Format(time.RFC3339), p.ranges[i].To.Format(time.RFC3339), r, v)
			}
			if _, ok := seen[r]; !ok {
				seen[r] = 0
				regions = append(regions, r)
			}
		}
	}
	if len(regions) == 0 {
		return nil, nil
	}
	slices.Sort(regions)
	nr, nw := len(regions), len(p.windows)
	cfg := d.cfg

	// Long-run counts per region for the pooled prior.
	var level map[string]float64
	var levelTotal float64
	if p.level >= 0 && cfg.PooledPrior > 0 {
		level = counts[p.level]
		for _, v := range level {
			levelTotal += math.Round(v)
		}
	}

	stats := make([]spikeRegionStat, nr*nw) // [window][region]
	natCount := make([]float64, nw)
	natExp := make([]float64, nw)
	natShape := make([]float64, nw)
	for wi, wp := range p.windows {
		var sw float64
		for _, x := range wp.weights {
			sw += x
		}
		cur := counts[wp.cur]
		// First pass: S, the baseline complaints per region behind its
		// weighted mean rate over an effective exposure of E windows.
		var totS float64
		for ri, r := range regions {
			st := &stats[wi*nr+ri]
			st.count = math.Round(cur[r])
			var acc float64
			for k, bi := range wp.base {
				acc += wp.weights[k] * math.Round(counts[bi][r])
			}
			st.shape = acc / sw * wp.scale * wp.expo
			natCount[wi] += st.count
			totS += st.shape
		}
		natShape[wi] = totS + spikePrior
		natExp[wi] = natShape[wi] / wp.expo
		// Second pass: Gamma posterior of each region's rate. Prior ½
		// pseudo-complaint, plus (pooling) PooledPrior pseudo-complaints
		// centred on m = national baseline × long-run share. μ = A/B.
		var sumMu, sumShape float64
		for ri, r := range regions {
			st := &stats[wi*nr+ri]
			a, b := st.shape+spikePrior, wp.expo
			if levelTotal > 0 && totS > 0 {
				m := totS / wp.expo * (math.Round(level[r]) + spikePrior) / (levelTotal + spikePrior*float64(nr))
				a += cfg.PooledPrior
				b += cfg.PooledPrior / m
			}
			st.shape, st.expected = a, a/b
			sumMu += st.expected
			sumShape += a
		}
		for ri, r := range regions {
			st := &stats[wi*nr+ri]
			st.level = 1
			if p.recent < 0 {
				st.pCount = d.countUpper(st.count, st.expected, st.shape)
			} else {
				// Today's level: Gamma(κ, κ) prior, κ = 2/Dispersion,
				// updated by the recent count c against its past-weeks
				// mean b.
				var b float64
				for _, bi := range p.recentBase {
					b += math.Round(counts[bi][r])
				}
				b /= float64(len(p.recentBase))
				c := math.Round(counts[p.recent][r])
				kappa := 2 / math.Max(cfg.Dispersion, 1e-6)
				st.level = (c + kappa) / (b + kappa)
				size := 1 / (cfg.Dispersion/2 + 1/st.shape + 1/(c+kappa))
				mu := st.expected * st.level
				if cfg.Model == ModelPoisson {
					st.pCount = spikePoissonUpper(st.count, mu)
				} else {
					st.pCount = spikeNegBinUpper(st.count, mu, size)
				}
			}
			st.expShare = st.expected / sumMu
			if natCount[wi] > 0 {
				st.share = st.count / natCount[wi]
			}
			st.pShare = d.shareUpper(st.count, natCount[wi], st.expShare, sumShape)
		}
	}

	// Correction for the number of tests, separately for counts and
	// shares.
	adjCount := d.correct(stats, nr, func(s *spikeRegionStat) float64 { return s.pCount })
	adjShare := d.correct(stats, nr, func(s *spikeRegionStat) float64 { return s.pShare })

	var findings []Finding
	best := make([]int, nr) // per region: index+1 into findings, 0 = none
	var national *Finding
	// Is the country rising, in any window, at the regional Alpha? Then a
	// region fires only if its share rose too. A national alert itself
	// needs NationalAlpha.
	natRising := make([]bool, nw)
	rising := false
	for wi := range p.windows {
		natP := d.countUpper(natCount[wi], natExp[wi], natShape[wi])
		natRising[wi] = math.Min(1, natP*float64(nw)) <= cfg.Alpha && d.bigEnough(natCount[wi], natExp[wi])
		rising = rising || natRising[wi]
	}
	for wi, wp := range p.windows {
		restCount, restExp, restShape := natCount[wi], natExp[wi], natShape[wi]
		for ri, r := range regions {
			i := wi*nr + ri
			st := stats[i]
			if adjCount[i] > cfg.Alpha || !d.bigEnough(st.count, st.expected) {
				continue
			}
			shareRose := adjShare[i] <= cfg.Alpha && st.share > st.expShare
			if rising && !shareRose {
				continue
			}
			restCount -= st.count
			restExp -= st.expected
			restShape -= st.shape
			f := Finding{
				Scope: ScopeRegion, Region: r, At: now, Window: wp.w,
				Count: st.count, Expected: st.expected, Ratio: st.count / st.expected,
				PValue: st.pCount, AdjustedPValue: adjCount[i],
				Share: st.share, ExpectedShare: st.expShare, SharePValue: st.pShare,
				Baseline: p.mode, BaselineSlice: d.spikeSpan(wp.w),
				BaselineCounts: spikeSliceCounts(counts, wp.base, r),
			}
			if p.recent >= 0 {
				f.Level = st.level
			}
			if b := best[ri]; b == 0 {
				findings = append(findings, f)
				best[ri] = len(findings)
			} else if spikeBetter(f, findings[b-1]) {
				findings[b-1] = f
			}
		}
		if !natRising[wi] {
			continue
		}
		restExp = math.Max(restExp, spikePrior/wp.expo)
		restShape = math.Max(restShape, spikePrior)
		restP := d.countUpper(restCount, restExp, restShape)
		restAdj := math.Min(1, restP*float64(nw))
		if restAdj > cfg.NationalAlpha || !d.bigEnough(restCount, restExp) {
			continue
		}
		f := Finding{
			Scope: ScopeNational, At: now, Window: wp.w,
			Count: restCount, Expected: restExp, Ratio: restCount / restExp,
			PValue: restP, AdjustedPValue: restAdj, SharePValue: 1,
			Baseline: p.mode, BaselineSlice: d.spikeSpan(wp.w),
			BaselineCounts: spikeSliceCounts(counts, wp.base, ""),
		}
		if national == nil || spikeBetter(f, *national) {
			national = &f
		}
	}
	slices.SortStableFunc(findings, func(a, b Finding) int {
		if c := cmp.Compare(a.AdjustedPValue, b.AdjustedPValue); c != 0 {
			return c
		}
		return cmp.Compare(a.Region, b.Region)
	})
	if national != nil {
		findings = append([]Finding{*national}, findings...)
	}
	for i := range findings {
		findings[i].Explanation = findings[i].explain()
	}
	return findings, nil
}

// correct returns the adjusted p-values of the tests in stats
// ([window][region], nr regions), read by p, under the configured
// correction.
func (d *Detector) correct(stats []spikeRegionStat, nr int, p func(*spikeRegionStat) float64) []float64 {
	m := len(stats)
	adj := make([]float64, m)
	if d.cfg.Correction == CorrectionHolm {
		ps := make([]float64, m)
		for i := range stats {
			ps[i] = p(&stats[i])
		}
		spikeHolm(ps, adj, make([]int, m))
		return adj
	}
	// Scan: per region, the smallest p over its windows times the
	// effective number of windows; Holm over the regions; each window's
	// adjusted value keeps its ratio to the region's smallest.
	nw := m / nr
	eff := 1.0
	if ws := d.cfg.Windows; len(ws) > 1 {
		eff = math.Min(float64(nw), 1+math.Log2(float64(ws[len(ws)-1])/float64(ws[0])))
	}
	best := make([]float64, nr)
	for ri := range best {
		best[ri] = 1
		for wi := range nw {
			best[ri] = math.Min(best[ri], spikeCleanP(p(&stats[wi*nr+ri])))
		}
	}
	q := make([]float64, nr)
	for ri, b := range best {
		q[ri] = math.Min(1, b*eff)
	}
	regionAdj := make([]float64, nr)
	spikeHolm(q, regionAdj, make([]int, nr))
	for wi := range nw {
		for ri := range nr {
			v := regionAdj[ri]
			switch pw := spikeCleanP(p(&stats[wi*nr+ri])); {
			case pw <= best[ri]:
			case best[ri] == 0:
				v = math.Min(1, pw*eff)
			default:
				v = math.Min(1, v*pw/best[ri])
			}
			adj[wi*nr+ri] = v
		}
	}
	return adj
}

// spikeCleanP maps NaN and out-of-range p-values into [0, 1].
func spikeCleanP(v float64) float64 {
	switch {
	case math.IsNaN(v) || v > 1:
		return 1
	case v < 0:
		return 0
	}
	return v
}

// spikeBetter reports whether a is a more significant finding than b: lower
// adjusted p-value, then lower raw p-value, then shorter window.
func spikeBetter(a, b Finding) bool {
	if a.AdjustedPValue != b.AdjustedPValue {
		return a.AdjustedPValue < b.AdjustedPValue
	}
	if a.PValue != b.PValue {
		return a.PValue < b.PValue
	}
	return a.Window < b.Window
}

// bigEnough applies MinCount and MinRatio.
func (d *Detector) bigEnough(count, expected float64) bool {
	return count >= float64(d.cfg.MinCount) && count >= d.cfg.MinRatio*expected
}

// countUpper is P(X ≥ count) under the configured model for expected mean
// μ whose Gamma posterior has the given shape (the complaints behind it).
func (d *Detector) countUpper(count, mu, shape float64) float64 {
	if d.cfg.Model == ModelPoisson {
		return spikePoissonUpper(count, mu)
	}
	size := 1 / (d.cfg.Dispersion + 1/shape)
	return spikeNegBinUpper(count, mu, size)
}

// shareUpper is P(X ≥ count) for a region's count among total national
// complaints with historical share s backed by denom baseline complaints.
func (d *Detector) shareUpper(count, total, s, denom float64) float64 {
	if count <= 0 || total <= 0 {
		return 1
	}
	if d.cfg.Model == ModelPoisson {
		return spikeBinomUpper(count, total, s)
	}
	// The share's relative variance is Dispersion (rates wander, so shares
	// do) plus the estimation variance of a Beta(S_r+½, …) posterior.
	conc := 1 / (d.cfg.Dispersion*s/(1-s) + 1/denom)
	return spikeBetaBinomUpper(int(count), int(total), s*conc, (1-s)*conc)
}

// spikeSliceCounts returns the complaints of region (all regions when
// region is "") in the baseline ranges idx.
func spikeSliceCounts(counts []map[string]float64, idx []int, region string) []float64 {
	out := make([]float64, len(idx))
	for k, bi := range idx {
		if region != "" {
			out[k] = math.Round(counts[bi][region])
			continue
		}
		for _, v := range counts[bi] {
			out[k] += math.Round(v)
		}
	}
	return out
}

// explain renders the finding as one sentence a supervisor can check
// against the numbers: the count, the expected count and the past slices
// it came from, the share, and how unusual the count is.
func (f Finding) explain() string {
	var b strings.Builder
	if f.Scope == ScopeNational {
		b.WriteString("national")
	} else {
		b.WriteString(f.Region)
	}
	fmt.Fprintf(&b, ": %s complaints in the last %s against %.1f expected",
		strconv.FormatFloat(f.Count, 'f', -1, 64), FormatWindow(f.Window), f.Expected)
	if n := len(f.BaselineCounts); n > 0 {
		slice := FormatWindow(f.BaselineSlice)
		switch f.Baseline {
		case BaselineWeekly:
			fmt.Fprintf(&b, " from the same %s of the previous %d week%s", slice, n, spikePlural(n))
		case BaselineDaily:
			fmt.Fprintf(&b, " from the same %s of the previous %d day%s", slice, n, spikePlural(n))
		case BaselineTrailing:
			fmt.Fprintf(&b, " from the preceding %d slice%s of %s", n, spikePlural(n), slice)
		}
		parts := make([]string, n)
		for i, v := range f.BaselineCounts {
			parts[i] = strconv.FormatFloat(v, 'f', -1, 64)
		}
		fmt.Fprintf(&b, " (%s complaints)", strings.Join(parts, ", "))
	}
	if f.Level > 0 && math.Abs(f.Level-1) >= 0.1 {
		fmt.Fprintf(&b, ", x%.1f for today's level", f.Level)
	}
	if f.Scope == ScopeNational {
		b.WriteString("; every region rose, none stands out")
	} else {
		fmt.Fprintf(&b, "; share %.0f%% of all complaints vs usual %.0f%%", 100*f.Share, 100*f.ExpectedShare)
	}
	fmt.Fprintf(&b, "; by chance %s (p=%.2g)", spikeOdds(f.PValue), f.PValue)
	return b.String()
}

func spikePlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// spikeOdds renders a tail probability as odds a reader can weigh:
// "about 1 in 250", "about 1 in 12 thousand", "about 1 in 3.4 million".
func spikeOdds(p float64) string {
	if !(p > 0) {
		return "never"
	}
	n := 1 / p
	for _, u := range []struct {
		v    float64
		name string
	}{{1e12, "trillion"}, {1e9, "billion"}, {1e6, "million"}, {1e3, "thousand"}} {
		if n >= u.v {
			if n >= 1e15 {
				return "less than 1 in a thousand trillion"
			}
			x := n / u.v
			if x < 10 {
				return fmt.Sprintf("about 1 in %s %s", strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64), u.name)
			}
			return fmt.Sprintf("about 1 in %.0f %s", x, u.name)
		}
	}
	return fmt.Sprintf("about 1 in %.0f", math.Max(1, n))
}

// FormatWindow formats a window length compactly: 5m, 1h, 1h30m, 24h.
func FormatWindow(w time.Duration) string {
	s := w.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
