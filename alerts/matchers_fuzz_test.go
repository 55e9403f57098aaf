package alerts

import (
	"strings"
	"testing"
)

// FuzzParseMatcher: any text a user sends as a matcher is parsed or
// refused without a panic, and what is accepted is within the size limits
// and matches labels without a panic.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{`region="广州"`, `rule=~"spike_.*"`, `queue!~a|b`, `x!=`, `=`, `a=~(`, `n=~` + strings.Repeat("(a|b)", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMatcher(s)
		if err != nil {
			return
		}
		if len(m.Name) > MaxMatcherNameBytes || len(m.Value) > MaxMatcherValueBytes {
			t.Fatalf("accepted a matcher beyond the limits: name %d, value %d bytes", len(m.Name), len(m.Value))
		}
		m.Matches(map[string]string{m.Name: m.Value, "region": "广州"})
		x := Silence{Matchers: Matchers{m}, CreatedBy: "f"}
		x.EndsAt = x.StartsAt.Add(1)
		if err := x.Validate(); err != nil {
			t.Fatalf("a parsed matcher fails validation: %v", err)
		}
	})
}
