package simulate

import (
	"fmt"
	"slices"
	"time"
)

// Incident is one scheduled occurrence of an incident, for logs and for
// the person presenting the demo.
type Incident struct {
	Kind   IncidentKind
	Target string // region, queue or business line
	Start  time.Time
	End    time.Time
	// Factor is the multiplier of the kind (see IncidentKind); for a
	// ResolutionSlide, the factor reached in its last step.
	Factor float64
}

func (i Incident) String() string {
	return fmt.Sprintf("%s %s %s–%s ×%g", i.Kind, i.Target,
		i.Start.In(Zone).Format("2006-01-02 15:04"), i.End.In(Zone).Format("15:04"), i.Factor)
}

// schedule is the compiled form of the incident specs: integer
// milliseconds and target indexes, so that the per-event lookups on the hot
// path are a few integer operations.
type schedule struct {
	anchor int64
	specs  []compiledSpec
}

type compiledSpec struct {
	kind                    IncidentKind
	targets                 []int
	names                   []string
	offset, duration, every int64
	factor                  float64
	steps                   int
}

func compileSchedule(anchorMs int64, specs []IncidentSpec) schedule {
	s := schedule{anchor: anchorMs}
	for _, in := range specs {
		c := compiledSpec{
			kind: in.Kind, names: slices.Clone(in.Targets),
			offset: in.Offset.Milliseconds(), duration: in.Duration.Milliseconds(), every: in.Every.Milliseconds(),
			factor: in.Factor, steps: in.Steps,
		}
		for _, t := range in.Targets {
			switch in.Kind {
			case ComplaintSpike:
				c.targets = append(c.targets, regionIndex(t))
			case QueueSlowdown:
				c.targets = append(c.targets, queueIndex(t))
			case ResolutionSlide:
				c.targets = append(c.targets, lineIndex(t))
			}
		}
		s.specs = append(s.specs, c)
	}
	return s
}

// occurrence returns which occurrence of c covers ms and how far into it ms
// is, or ok=false when none does.
func (c *compiledSpec) occurrence(anchor, ms int64) (k, into int64, ok bool) {
	rel := ms - anchor - c.offset
	if rel < 0 {
		return 0, 0, false
	}
	if c.every > 0 {
		k = rel / c.every
		rel -= k * c.every
	}
	if rel >= c.duration {
		return 0, 0, false
	}
	return k, rel, true
}

// factor returns the product of the factors of the incidents of kind that
// are active at ms on target (1 when none is). For a ResolutionSlide it is
// the factor of the current step.
func (s *schedule) factor(kind IncidentKind, target int, ms int64) float64 {
	f := 1.0
	for i := range s.specs {
		c := &s.specs[i]
		if c.kind != kind {
			continue
		}
		k, into, ok := c.occurrence(s.anchor, ms)
		if !ok || c.targets[k%int64(len(c.targets))] != target {
			continue
		}
		if kind == ResolutionSlide {
			step := into*int64(c.steps)/c.duration + 1
			f *= 1 - (1-c.factor)*float64(step)/float64(c.steps)
			continue
		}
		f *= c.factor
	}
	return f
}

// list returns the occurrences that overlap [from, to), ordered by start.
func (s *schedule) list(from, to time.Time) []Incident {
	f, t := from.UnixMilli(), to.UnixMilli()
	var out []Incident
	for _, c := range s.specs {
		first := int64(0)
		if c.every > 0 {
			// The first occurrence that may still be running at from.
			if rel := f - s.anchor - c.offset - c.duration; rel > 0 {
				first = rel / c.every
			}
		}
		for k := first; ; k++ {
			start := s.anchor + c.offset + k*c.every
			if start >= t {
				break
			}
			if end := start + c.duration; end > f {
				out = append(out, Incident{
					Kind: c.kind, Target: c.names[k%int64(len(c.names))],
					Start: time.UnixMilli(start).In(Zone), End: time.UnixMilli(end).In(Zone),
					Factor: c.factor,
				})
			}
			if c.every == 0 {
				break
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Incident) int { return a.Start.Compare(b.Start) })
	return out
}
