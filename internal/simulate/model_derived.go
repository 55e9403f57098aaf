package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/cockpit-cs/cockpit/schemas"
)

// model is what New derives from a Config and the catalogue: cumulative
// tables for the draws, per-channel probabilities that meet the configured
// shares, the staffing plan and the compiled incident schedule. It is
// read-only once built, so concurrent Generate and Run calls share it.
type model struct {
	seed                  uint64
	peak, weekend, floor  float64
	regionCum, channelCum []float64
	lineCum, reasonCum    []float64
	pBot, pTransfer       []float64 // by channel
	lineQueue             []int     // first-line queue of each business line
	peakBusy              []float64 // by queue: agents busy at the peak, expected
	agents                [][]string
	categoryCum           [][]float64
	sched                 schedule
	faults                Faults
}

func newModel(cfg *Config, anchorMs int64) *model {
	m := &model{
		seed: cfg.Seed, peak: cfg.PeakRate, weekend: cfg.WeekendFactor, floor: cfg.Floor,
		faults: cfg.Faults,
	}
	var w []float64
	for _, r := range regions {
		w = append(w, r.weight)
	}
	m.regionCum = cumulative(w)
	w = w[:0]
	for _, c := range channels {
		w = append(w, c.share)
	}
	m.channelCum = cumulative(w)
	w = w[:0]
	for _, l := range lines {
		w = append(w, l.share)
		m.lineQueue = append(m.lineQueue, queueIndex(l.queue))
	}
	m.lineCum = cumulative(w)
	w = w[:0]
	for _, r := range transferReasons {
		w = append(w, r.weight)
	}
	m.reasonCum = cumulative(w)
	for _, cats := range complaintCategories {
		w = w[:0]
		for _, c := range cats {
			w = append(w, c.weight)
		}
		m.categoryCum = append(m.categoryCum, cumulative(w))
	}

	m.pBot = spread(cfg.BotFirstShare, func(c *channel) float64 { return c.botEntry }, nil)
	m.pTransfer = spread(cfg.TransferShare, func(c *channel) float64 { return c.transfer }, m.pBot)

	// Staffing plan: the agents each queue needs at the peak (see
	// agentsFor), from the expected human-handled arrivals times the
	// expected handle time of the synchronous channels.
	var busyPerArrival float64 // agent-seconds per arriving conversation
	for i, c := range channels {
		if !c.sync {
			continue
		}
		pHuman := 1 - m.pBot[i] + m.pBot[i]*m.pTransfer[i]
		turns := float64(c.humanTurns[0]+c.humanTurns[1]) / 2
		handle := c.agentGreet.mean() + turns*(c.custThink.mean()+c.agentReply.mean()) + c.wrap.mean()
		busyPerArrival += c.share * pHuman * handle
	}
	queueShare := make([]float64, len(queues))
	for i, l := range lines {
		rest := 1 - vipShare
		if l.name != "enterprise" {
			rest -= retentionShare
			queueShare[queueRetention] += l.share * retentionShare
		}
		queueShare[m.lineQueue[i]] += l.share * rest
		queueShare[queueVIP] += l.share * vipShare
	}
	for q, name := range queues {
		busy := cfg.PeakRate * queueShare[q] * busyPerArrival
		m.peakBusy = append(m.peakBusy, busy)
		n := agentsFor(busy)
		ids := make([]string, n)
		for a := range ids {
			ids[a] = fmt.Sprintf("%s-%03d", name, a+1)
		}
		m.agents = append(m.agents, ids)
	}
	m.sched = compileSchedule(anchorMs, cfg.Incidents)
	return m
}

// spread turns an overall share into per-channel probabilities that keep
// the channels' relative weights and average to share over the channel mix
// (weighted by given, the probability of reaching the decision, when not
// nil). If a weight would push a channel above 1 it falls back to the same
// probability everywhere, so the overall share stays exact.
func spread(share float64, weight func(*channel) float64, given []float64) []float64 {
	var norm, mass float64
	for i := range channels {
		g := 1.0
		if given != nil {
			g = given[i]
		}
		norm += channels[i].share * g * weight(&channels[i])
		mass += channels[i].share * g
	}
	p := make([]float64, len(channels))
	for i := range channels {
		if norm == 0 {
			p[i] = share
			continue
		}
		p[i] = share * mass * weight(&channels[i]) / norm
	}
	for _, v := range p {
		if v > 1 {
			for i := range p {
				p[i] = share
			}
			break
		}
	}
	return p
}

// agentsFor is the staffing plan for an expected load of busy agents: the
// agents that run it at the target occupancy, or, when that is more, the
// square-root safety staffing rule busy + safetyStaffing·√busy (Halfin and
// Whitt 1981; Borst, Mandelbaum and Reiman, "Dimensioning large call
// centers", Operations Research 2004). The number of conversations in
// service wanders by about √busy around its mean, so a queue of a dozen
// busy agents planned at 0.8 would spend a third of its time above 0.9;
// the square-root term gives the small queues the slack planners give
// them and leaves the large ones at the target occupancy.
func agentsFor(busy float64) int {
	n := max(busy/targetOccupancy, busy+safetyStaffing*math.Sqrt(busy))
	return max(minAgents, int(math.Ceil(n)))
}

// onShift is the number of agents of queue q on shift at t: the plan for
// the expected load at t, less the share away at lunch or at the shift
// change.
func (m *model) onShift(q int, t int64) int {
	n := int(math.Ceil(float64(agentsFor(m.peakBusy[q]*level(t, m.weekend, m.floor))) * staffing(t)))
	return max(n, minAgents)
}

// complaintOf draws a complaint's category and severity. During a regional
// spike most complaints are about the outage behind it, and severe.
func (m *model) complaintOf(c *conv, spike bool, r *rand.Rand) (category, severity string) {
	if spike && r.Float64() < 0.7 {
		category = "network_outage"
	} else {
		category = complaintCategories[c.line][pick(r, m.categoryCum[c.line])].name
	}
	sev := []float64{0.5, 0.85} // cumulative: low, medium, high
	if spike {
		sev = []float64{0.2, 0.6}
	}
	switch u := r.Float64(); {
	case u >= sev[1]:
		return category, "high"
	case u >= sev[0] || c.abusive:
		return category, "medium"
	}
	return category, "low"
}

// Score distributions by outcome, cumulative over 1..5: resolved customers
// mostly give 4-5, unresolved ones 1-3, the J-shape survey data shows.
var (
	scoreResolved   = []float64{0.02, 0.05, 0.15, 0.50, 1}
	scoreUnresolved = []float64{0.35, 0.60, 0.82, 0.95, 1}
)

// scoreOf draws a CSAT score correlated with the outcome, a long wait and
// the customer's mood.
func (m *model) scoreOf(c *conv, r *rand.Rand) int {
	cum := scoreUnresolved
	if c.resolved {
		cum = scoreResolved
	}
	s := pick(r, cum) + 1
	if (c.waited > 60_000 && r.Float64() < 0.4) || c.mood < -0.5 {
		s--
	}
	return max(s, 1)
}

// counters are the running totals behind Stats, shared by every engine of
// a Simulator and read concurrently by progress logs.
type counters struct {
	events, conversations     atomic.Uint64
	late, duplicates, invalid atomic.Uint64
	byType                    []atomic.Uint64 // indexed like schemas.EventTypes
}

func newCounters() *counters {
	return &counters{byType: make([]atomic.Uint64, len(schemas.EventTypes))}
}

func (c *counters) countType(t schemas.EventType) {
	for i, et := range schemas.EventTypes {
		if et == t {
			c.byType[i].Add(1)
			return
		}
	}
}
