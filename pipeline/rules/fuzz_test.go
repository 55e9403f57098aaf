package rules

import "testing"

// FuzzParseRules: any YAML sent to PUT /api/v1/rules is parsed or refused
// without a panic, and an accepted set is within the size limits.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte("rules: []\n"))
	f.Add([]byte("rules:\n  - {name: r, kind: threshold, severity: warning, metric: aht, stat: avg, window: 5m, op: '>', value: 1}\n"))
	f.Add([]byte("rules:\n  - {name: s, kind: spike, severity: critical, metric: complaints, by: region, spike_windows: [5m, 15m]}\n"))
	f.Add([]byte("rules: [{name: x, labels: {a: b}}]"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := ParseRules(src)
		if err != nil {
			return
		}
		if len(rs.Rules) > MaxRules {
			t.Fatalf("accepted %d rules, the limit is %d", len(rs.Rules), MaxRules)
		}
		for _, r := range rs.Rules {
			if len(r.Labels) > maxRuleLabels || len(r.Summary) > maxRuleSummary || len(r.SpikeWindows) > maxRuleSpikeWindow {
				t.Fatalf("accepted rule %s beyond the limits", r.Name)
			}
		}
	})
}
