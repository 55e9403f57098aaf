// Package rules judges the numbers of package kpi: the rule set (SPEC §6,
// YAML, rules.default.yaml built in; rules.go), its evaluation every tick
// and its backtests (eval.go), the numbers it reads (source.go), spike
// rules over the detector of package spike and the complaint history in
// ClickHouse (spike.go), the stored versions of the rule set
// (versions.go) and the evaluation metrics (metrics.go).
//
// It imports kpi and spike; neither imports it. What an evaluation finds
// (Candidate, Evaluation) is handed to the alerts package, which owns
// alert state and delivery.
package rules
