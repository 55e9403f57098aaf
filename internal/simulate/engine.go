package simulate

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cockpit-cs/cockpit/schemas"
)

// state is the next thing a conversation does.
type state uint8

const (
	sOpening    state = iota // customer's first message
	sBotReply                // bot answers
	sCustomer                // customer writes again
	sTransfer                // bot hands over to a human
	sAssigned                // an agent picks the conversation up
	sAbandon                 // the customer gives up waiting
	sAgentGreet              // the agent's first message
	sAgentReply              // the agent answers
	sComplaint               // a complaint is registered
	sClose                   // the conversation is closed
	sCSAT                    // the customer answers the survey
)

// conv is one open conversation: its attributes, its progress through the
// state machine and what it needs to remember for later decisions.
type conv struct {
	id                      string
	n                       int // index of the next event, part of its event_id
	region, ch, line, queue int
	botFirst, transfer      bool
	reason                  int // index in transferReasons when transfer
	customer                string
	mood                    float64 // drives sentiment, -1..1
	next                    state
	turns                   int // exchanges left in the current phase
	waitStart, waited       int64
	agent                   int // index in its queue's agents, -1 before assignment
	resolved, abusive       bool
	busy                    bool // counted in its queue's busy agents
}

type queueState struct {
	busy    int     // sync conversations an agent is working on
	waiting int     // conversations waiting for a human
	load    []int32 // open conversations per agent
}

// engine is one run of the discrete-event simulation from a start time. It
// is single-threaded; Generate and Run each own one.
type engine struct {
	m      *model
	stats  *counters
	r      *rand.Rand // the conversations
	fr     *rand.Rand // the faults, apart so faults do not change the traffic
	faults Faults
	key    uint64

	nconv   uint64
	arrival float64 // unix ms of the next arrival
	// clock is the unix ms the simulation has reached: every event due
	// before it was handed to emit (an event's own time may be far from
	// when it is due: late, or a wrong clock, by the faults).
	clock   int64
	seq     uint64
	steps   minHeap[*conv]
	pending minHeap[schemas.Event] // with faults: events by delivery time
	queues  []queueState
	emit    func(schemas.Event) error
}

func newEngine(m *model, stats *counters, start time.Time, faults bool) *engine {
	startMs := start.UnixMilli()
	// The run's key mixes the seed with the start time, so two runs with
	// the same seed but different starts (a restarted demo) never reuse an
	// event_id, which the ingest would drop as a duplicate.
	key := splitmix64(m.seed ^ splitmix64(uint64(startMs)))
	e := &engine{
		m:       m,
		stats:   stats,
		r:       rand.New(rand.NewPCG(m.seed, uint64(startMs))),
		fr:      rand.New(rand.NewPCG(^m.seed, uint64(startMs))),
		key:     key,
		arrival: float64(startMs),
		queues:  make([]queueState, len(queues)),
	}
	if faults {
		e.faults = m.faults
	}
	for q := range e.queues {
		e.queues[q].load = make([]int32, len(m.agents[q]))
	}
	e.nextArrival()
	return e
}

func (e *engine) hasFaults() bool {
	f := e.faults
	return f.LateShare > 0 || f.DuplicateShare > 0 || f.InvalidShare > 0
}

// advance runs the simulation up to and including unix millisecond until,
// handing every event due by then to e.emit in delivery order.
func (e *engine) advance(until int64) error {
	faults := e.hasFaults()
	for {
		t, isArrival := int64(e.arrival), true
		if len(e.steps) > 0 && e.steps[0].at < t {
			t, isArrival = e.steps[0].at, false
		}
		if faults {
			if err := e.deliver(min(t, until)); err != nil {
				return err
			}
		}
		if t > until {
			return nil
		}
		var err error
		e.clock = t
		if isArrival {
			err = e.arrive(t)
			e.nextArrival()
		} else {
			it := e.steps.pop()
			err = e.step(it.v, it.at)
		}
		if err != nil {
			return err
		}
	}
}

// nextArrival draws the next arrival of the non-homogeneous Poisson process
// by thinning (Lewis and Shedler): candidates at the peak rate, each kept
// with probability level/1.
func (e *engine) nextArrival() {
	for {
		e.arrival += -math.Log(1-e.r.Float64()) / e.m.peak * 1000
		if e.r.Float64() < level(int64(e.arrival), e.m.weekend, e.m.floor) {
			return
		}
	}
}

func (e *engine) schedule(c *conv, at int64, s state) {
	c.next = s
	e.seq++
	e.steps.push(item[*conv]{at: at, seq: e.seq, v: c})
}

func (e *engine) arrive(t int64) error {
	m, r := e.m, e.r
	e.nconv++
	c := &conv{
		id:     convID(splitmix64(e.key + e.nconv)),
		region: pick(r, m.regionCum),
		ch:     pick(r, m.channelCum),
		line:   pick(r, m.lineCum),
		agent:  -1,
		mood:   clamp(0.15+0.35*r.NormFloat64(), -1, 1),
	}
	c.queue = m.lineQueue[c.line]
	switch u := r.Float64(); {
	case u < vipShare:
		c.queue = queueVIP
	case u < vipShare+retentionShare && lines[c.line].name != "enterprise":
		c.queue = queueRetention
	}
	if r.Float64() < 0.85 { // unknown callers and anonymous web chats have no id
		c.customer = "cu" + strconv.Itoa(10000000+r.IntN(5000000))
	}
	ch := &channels[c.ch]
	c.botFirst = r.Float64() < m.pBot[c.ch]
	if c.botFirst {
		c.transfer = r.Float64() < m.pTransfer[c.ch]
		if c.transfer {
			c.reason = pick(r, m.reasonCum)
			if transferReasons[c.reason].name == "negative_sentiment" {
				// An angry customer: the bot hands over because of the
				// mood, so the mood must show in the messages before.
				c.mood = min(c.mood, -0.5-0.3*r.Float64())
			}
		}
		c.turns = between(r, ch.botTurns[0], ch.botTurns[1])
	}
	e.stats.conversations.Add(1)

	ev := e.event(c, schemas.ConversationStarted, t)
	ev.Channel, ev.Region, ev.Queue, ev.BusinessLine = ch.name, regions[c.region].name, queues[c.queue], lines[c.line].name
	ev.Entry = "agent"
	if c.botFirst {
		ev.Entry = "bot"
	}
	ev.CustomerID = c.customer
	if err := e.out(ev); err != nil {
		return err
	}
	if !c.botFirst && ch.name == "voice" {
		// A caller routed straight to a human says nothing until answered.
		e.beginWait(c, t)
		return nil
	}
	// Everyone else opens with their question, about as fast as a bot
	// would answer on that channel.
	e.schedule(c, t+ch.botReply.sample(r, 2), sOpening)
	return nil
}

// step performs the conversation's next state at t.
func (e *engine) step(c *conv, t int64) error {
	r, ch := e.r, &channels[c.ch]
	slow := e.m.sched.factor(QueueSlowdown, c.queue, t)
	switch c.next {
	case sOpening:
		text := oneOf(r, openingTexts[c.line])
		if c.queue == queueRetention {
			text = oneOf(r, retentionTexts)
		}
		if err := e.customerMessage(c, t, text); err != nil {
			return err
		}
		if c.botFirst {
			e.schedule(c, t+ch.botReply.sample(r, 1), sBotReply)
		} else {
			e.beginWait(c, t)
		}
	case sCustomer:
		if err := e.customerMessage(c, t, ""); err != nil {
			return err
		}
		if c.agent >= 0 {
			e.schedule(c, t+ch.agentReply.sample(r, slow), sAgentReply)
		} else {
			e.schedule(c, t+ch.botReply.sample(r, 1), sBotReply)
		}
	case sBotReply:
		c.turns--
		text := oneOf(r, botTexts)
		if c.turns <= 0 && c.transfer {
			text = handoverText
		}
		if err := e.message(c, t, "bot", botID, text, nil); err != nil {
			return err
		}
		switch {
		case c.turns > 0:
			e.schedule(c, t+ch.custThink.sample(r, 1), sCustomer)
		case c.transfer:
			e.schedule(c, t+500+r.Int64N(1500), sTransfer)
		default:
			e.finish(c, t)
		}
	case sTransfer:
		ev := e.event(c, schemas.TransferRequested, t)
		ev.Reason = transferReasons[c.reason].name
		ev.Actor = &schemas.Actor{Role: "bot", ID: botID}
		if err := e.out(ev); err != nil {
			return err
		}
		e.beginWait(c, t)
	case sAssigned:
		q := &e.queues[c.queue]
		q.waiting--
		c.waited = t - c.waitStart
		c.agent = e.assignAgent(c, t)
		if c.waited > 60_000 {
			c.mood = clamp(c.mood-0.2, -1, 1)
		}
		ev := e.event(c, schemas.AgentAssigned, t)
		ev.Actor = &schemas.Actor{Role: "agent", ID: e.m.agents[c.queue][c.agent]}
		if err := e.out(ev); err != nil {
			return err
		}
		c.turns = between(r, ch.humanTurns[0], ch.humanTurns[1])
		e.schedule(c, t+ch.agentGreet.sample(r, slow), sAgentGreet)
	case sAbandon:
		e.queues[c.queue].waiting--
		return e.out(e.event(c, schemas.ConversationAbandoned, t))
	case sAgentGreet:
		if err := e.agentMessage(c, t, agentGreeting); err != nil {
			return err
		}
		e.schedule(c, t+ch.custThink.sample(r, 1), sCustomer)
	case sAgentReply:
		c.turns--
		if err := e.agentMessage(c, t, oneOf(r, agentTexts)); err != nil {
			return err
		}
		if c.turns > 0 {
			e.schedule(c, t+ch.custThink.sample(r, 1), sCustomer)
		} else {
			e.finish(c, t)
		}
	case sComplaint:
		ev := e.event(c, schemas.ComplaintFiled, t)
		ev.Region, ev.Queue, ev.BusinessLine = regions[c.region].name, queues[c.queue], lines[c.line].name
		spike := e.m.sched.factor(ComplaintSpike, c.region, t) > 1
		ev.Category, ev.Severity = e.m.complaintOf(c, spike, r)
		if err := e.out(ev); err != nil {
			return err
		}
		e.schedule(c, t+ch.wrap.sample(r, 1), sClose)
	case sClose:
		ev := e.event(c, schemas.ConversationClosed, t)
		ev.Resolution = "unresolved"
		if c.resolved {
			ev.Resolution = "resolved"
		}
		switch {
		case c.agent >= 0:
			ev.Actor = &schemas.Actor{Role: "agent", ID: e.m.agents[c.queue][c.agent]}
			e.releaseAgent(c)
		case c.resolved:
			ev.Actor = &schemas.Actor{Role: "bot", ID: botID}
		default:
			// The customer stopped answering the bot: closed on timeout.
			ev.Actor = &schemas.Actor{Role: "system", ID: "idle-timeout"}
		}
		if err := e.out(ev); err != nil {
			return err
		}
		if r.Float64() < ch.csat {
			e.schedule(c, t+lognorm{60, 1, 3600}.sample(r, 1), sCSAT)
		}
	case sCSAT:
		ev := e.event(c, schemas.CSATSubmitted, t)
		ev.Score = e.m.scoreOf(c, r)
		return e.out(ev)
	}
	return nil
}

// beginWait puts the conversation in its queue: it is assigned after a
// wait that grows with the queue's occupancy, or abandoned when the wait
// outlasts the customer's patience.
func (e *engine) beginWait(c *conv, t int64) {
	r, ch := e.r, &channels[c.ch]
	q := &e.queues[c.queue]
	q.waiting++
	c.waitStart = t
	f := e.congestion(c.queue, t) * e.m.sched.factor(QueueSlowdown, c.queue, t)
	wait := ch.wait.sample(r, f)
	patience := ch.patience.sample(r, 1)
	if wait > patience {
		e.schedule(c, t+patience, sAbandon)
		return
	}
	e.schedule(c, t+wait, sAssigned)
}

// congestion scales a queue's waits with its occupancy ρ (busy agents over
// agents on shift): √(0.2/(1-ρ)), which is 1 at the target occupancy of
// 0.8 and reaches its cap of 2 at ρ = 0.95, so that a slowed queue degrades
// by about its incident factor rather than without bound. The mean wait of
// a single server, ρ/(1-ρ), would double the waits of a queue at 0.9; a
// pool of many agents hardly waits until it is nearly full (Halfin and
// Whitt 1981: what matters is the spare capacity in units of √busy), and
// the busy count of a queue of 100 agents at 0.8 wanders above 0.9 for
// minutes at a time on its own. The square root keeps those excursions
// to a somewhat longer wait instead of a doubled one.
func (e *engine) congestion(q int, t int64) float64 {
	rho := float64(e.queues[q].busy) / float64(e.m.onShift(q, t))
	return math.Sqrt(0.2 / (1 - min(rho, 0.95)))
}

// assignAgent picks the less loaded of two random agents on shift (the
// power of two choices), which spreads work like a skills router without
// scanning every agent.
func (e *engine) assignAgent(c *conv, t int64) int {
	n := min(e.m.onShift(c.queue, t), len(e.m.agents[c.queue]))
	load := e.queues[c.queue].load
	a, b := e.r.IntN(n), e.r.IntN(n)
	if load[b] < load[a] {
		a = b
	}
	load[a]++
	if channels[c.ch].sync {
		c.busy = true
		e.queues[c.queue].busy++
	}
	return a
}

func (e *engine) releaseAgent(c *conv) {
	e.queues[c.queue].load[c.agent]--
	if c.busy {
		c.busy = false
		e.queues[c.queue].busy--
	}
}

// finish decides how the conversation ends once its last exchange is
// done: resolved or not (the business line's resolution slide applies
// here), and whether a complaint is registered first (the region's
// complaint spike applies here).
func (e *engine) finish(c *conv, t int64) {
	r, ch, m := e.r, &channels[c.ch], e.m
	p := botResolved
	if c.agent >= 0 {
		p = humanResolved
	}
	p *= lines[c.line].resolved * m.sched.factor(ResolutionSlide, c.line, t)
	if c.mood < -0.4 {
		p *= 0.8
	}
	if c.waited > 120_000 {
		p *= 0.9
	}
	c.resolved = r.Float64() < min(p, 0.99)

	pc := complaintResolved
	if !c.resolved {
		pc = complaintUnresolved
	}
	if c.abusive {
		pc *= 2
	}
	if c.waited > 120_000 {
		pc *= 1.5
	}
	pc *= m.sched.factor(ComplaintSpike, c.region, t)
	if r.Float64() < min(pc, 0.95) {
		e.schedule(c, t+lognorm{20, 0.8, 300}.sample(r, 1), sComplaint)
		return
	}
	e.schedule(c, t+ch.wrap.sample(r, 1), sClose)
}

func (e *engine) customerMessage(c *conv, t int64, text string) error {
	r := e.r
	s := clamp(c.mood+0.25*r.NormFloat64(), -1, 1)
	abusive := r.Float64() < 0.003 || (c.mood < -0.4 && r.Float64() < 0.04)
	switch {
	case abusive:
		s = min(s, -0.8-0.2*r.Float64())
		text = oneOf(r, abusiveTexts)
		c.abusive = true
	case text != "":
	case s < -0.3:
		text = oneOf(r, negativeTexts)
	default:
		text = oneOf(r, customerTexts)
	}
	s = math.Round(s*100) / 100
	ev := e.event(c, schemas.MessageSent, t)
	ev.Actor = &schemas.Actor{Role: "customer", ID: c.customer}
	ev.Sentiment = &s
	if abusive {
		ev.Abusive = &abusive
	}
	ev.Text = text
	return e.out(ev)
}

func (e *engine) agentMessage(c *conv, t int64, text string) error {
	var s *float64
	if e.r.Float64() < 0.5 { // speech analytics scores about half the agent turns
		v := math.Round(clamp(0.35+0.2*e.r.NormFloat64(), -1, 1)*100) / 100
		s = &v
	}
	return e.message(c, t, "agent", e.m.agents[c.queue][c.agent], text, s)
}

func (e *engine) message(c *conv, t int64, role, id, text string, sentiment *float64) error {
	ev := e.event(c, schemas.MessageSent, t)
	ev.Actor = &schemas.Actor{Role: role, ID: id}
	ev.Sentiment = sentiment
	ev.Text = text
	return e.out(ev)
}

// event starts the conversation's next event. Event ids are the
// conversation id and the event's index in it: unique, deterministic and
// readable next to each other in a dead-letter topic.
func (e *engine) event(c *conv, typ schemas.EventType, t int64) schemas.Event {
	ev := schemas.Event{
		EventID:        c.id + "-" + strconv.Itoa(c.n),
		SchemaVersion:  schemas.Version,
		Type:           typ,
		OccurredAt:     time.UnixMilli(t).In(Zone),
		ConversationID: c.id,
	}
	c.n++
	return ev
}

// out counts a generated event and delivers it, through the faults when
// they are on.
func (e *engine) out(ev schemas.Event) error {
	e.stats.countType(ev.Type)
	if !e.hasFaults() {
		e.stats.events.Add(1)
		return e.emit(ev)
	}
	f, r := &e.faults, e.fr
	at := ev.OccurredAt.UnixMilli()
	if r.Float64() < f.LateShare {
		at += 1 + r.Int64N(f.MaxLateness.Milliseconds())
		e.stats.late.Add(1)
	}
	e.enqueue(at, ev)
	if r.Float64() < f.DuplicateShare {
		e.enqueue(at+r.Int64N(5000), ev)
		e.stats.duplicates.Add(1)
	}
	if r.Float64() < f.InvalidShare {
		bad := corrupt(ev, r)
		e.enqueue(at, bad)
		e.stats.invalid.Add(1)
	}
	return nil
}

func (e *engine) enqueue(at int64, ev schemas.Event) {
	e.seq++
	e.pending.push(item[schemas.Event]{at: at, seq: e.seq, v: ev})
}

// deliver emits the pending events due by until.
func (e *engine) deliver(until int64) error {
	for len(e.pending) > 0 && e.pending[0].at <= until {
		it := e.pending.pop()
		e.clock = it.at
		e.stats.events.Add(1)
		if err := e.emit(it.v); err != nil {
			return err
		}
	}
	return nil
}

// corrupt returns a copy of ev with a fresh event_id that breaks one rule
// of the contract, the kind of mistake a real producer makes.
func corrupt(ev schemas.Event, r *rand.Rand) schemas.Event {
	bad := ev
	bad.EventID = ev.EventID + "-bad"
	switch {
	case ev.Type == schemas.ConversationStarted && r.IntN(2) == 0:
		bad.Region = "" // missing region
	case ev.Type == schemas.ConversationStarted:
		bad.Channel = "fax"
	case ev.Type == schemas.MessageSent && r.IntN(2) == 0:
		v := 1.7
		bad.Sentiment = &v
	case ev.Type == schemas.MessageSent:
		bad.Actor = nil
	case ev.Type == schemas.CSATSubmitted:
		bad.Score = 7
	default:
		// A producer with a wrong clock.
		bad.OccurredAt = ev.OccurredAt.Add(2 * time.Hour)
	}
	return bad
}

const hexDigits = "0123456789abcdef"

// convID formats a conversation id: "c" and 16 hex digits.
func convID(x uint64) string {
	var b [17]byte
	b[0] = 'c'
	for i := 16; i > 0; i-- {
		b[i] = hexDigits[x&15]
		x >>= 4
	}
	return string(b[:])
}
