// Package spike finds regional complaint spikes: counts of complaints in
// short windows that are improbable under each region's own history, and
// rises across the whole country (spike.go; the tail probabilities are in
// stats.go). A History gives the counts; MemoryHistory holds complaints
// in memory (history.go), and Preload reads once what a backtest over a
// span can reach (preload.go). Backtest runs the detector alone over a
// span (backtest.go).
//
// It knows nothing of rules or metrics and imports no other package of
// the cockpit; the spike rules of package rules use it.
package spike
