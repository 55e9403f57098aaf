package simulate

import (
	"slices"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/schemas"
)

// monday10 is a weekday at 10:00 Shanghai time, when traffic is high.
var monday10 = time.Date(2026, 3, 2, 10, 0, 0, 0, Zone)

// testConfig is the default config with a fixed anchor, so tests do not
// depend on the wall clock.
func testConfig(anchor time.Time, peak float64) Config {
	cfg := DefaultConfig()
	cfg.Anchor = anchor
	cfg.PeakRate = peak
	cfg.LogEvery = 0
	return cfg
}

func generate(t testing.TB, cfg Config, from, to time.Time) []schemas.Event {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []schemas.Event
	if err := s.Generate(from, to, func(e schemas.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// conversation is a conversation's events and its start, as a consumer
// would reassemble them.
type conversation struct {
	start  *schemas.Event
	events []*schemas.Event
}

func (c *conversation) has(t schemas.EventType) *schemas.Event {
	for _, e := range c.events {
		if e.Type == t {
			return e
		}
	}
	return nil
}

func group(events []schemas.Event) (map[string]*conversation, []string) {
	m := map[string]*conversation{}
	var order []string
	for i := range events {
		e := &events[i]
		c := m[e.ConversationID]
		if c == nil {
			c = &conversation{}
			m[e.ConversationID] = c
			order = append(order, e.ConversationID)
		}
		if e.Type == schemas.ConversationStarted {
			c.start = e
		}
		c.events = append(c.events, e)
	}
	return m, order
}

// quantile returns the q-quantile of xs (sorted in place).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[int(q*float64(len(xs)-1))]
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func within(from, to time.Time, t time.Time) bool {
	return !t.Before(from) && t.Before(to)
}
