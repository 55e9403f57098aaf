package simulate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/schemas"
)

// dayEvents is one simulated weekday at a low rate, shared by the tests
// that measure shares over a day (generating it once keeps -race fast).
var dayEvents = sync.OnceValue(func() []schemas.Event {
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, Zone) // a Monday
	cfg := testConfig(from.Add(13*time.Hour), 2)
	cfg.Incidents = []IncidentSpec{} // shares without incidents
	s, err := New(cfg, nil)
	if err != nil {
		panic(err)
	}
	var out []schemas.Event
	if err := s.Generate(from, from.Add(24*time.Hour), func(e schemas.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		panic(err)
	}
	return out
})

func TestGenerateEventsAreValidAndUnique(t *testing.T) {
	// Across the anchor, so incident traffic is checked too.
	from := monday10.Add(-20 * time.Minute)
	to := monday10.Add(40 * time.Minute)
	events := generate(t, testConfig(monday10, 5), from, to)
	if len(events) < 100000 {
		t.Fatalf("only %d events in an hour at 5 conversations/s", len(events))
	}
	seen := make(map[string]bool, len(events))
	var last time.Time
	for i := range events {
		e := &events[i]
		if err := schemas.Validate(e, to, schemas.DefaultLimits()); err != nil {
			t.Fatalf("event %d %+v: %v", i, e, err)
		}
		if seen[e.EventID] {
			t.Fatalf("duplicate event_id %s", e.EventID)
		}
		seen[e.EventID] = true
		if e.OccurredAt.Before(last) {
			t.Fatalf("event %d at %s before the previous one at %s", i, e.OccurredAt, last)
		}
		last = e.OccurredAt
		if !within(from, to, e.OccurredAt) {
			t.Fatalf("event %d at %s outside [%s, %s)", i, e.OccurredAt, from, to)
		}
	}
	// The day's events too, which include the night.
	day := dayEvents()
	end := day[len(day)-1].OccurredAt.Add(time.Second)
	for i := range day {
		if err := schemas.Validate(&day[i], end, schemas.DefaultLimits()); err != nil {
			t.Fatalf("day event %d %+v: %v", i, day[i], err)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	from, to := monday10, monday10.Add(20*time.Minute)
	a := generate(t, testConfig(monday10, 5), from, to)
	b := generate(t, testConfig(monday10, 5), from, to)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different events")
	}
	cfg := testConfig(monday10, 5)
	cfg.Seed = 2
	c := generate(t, cfg, from, to)
	if len(c) > 0 && len(a) > 0 && c[0].EventID == a[0].EventID {
		t.Fatal("different seeds, same first event_id")
	}
	// A run starting a millisecond later must not reuse ids: the ingest
	// would drop them as duplicates after a demo restart.
	d := generate(t, testConfig(monday10, 5), from.Add(time.Millisecond), to)
	ids := map[string]bool{}
	for _, e := range a {
		ids[e.EventID] = true
	}
	for _, e := range d {
		if ids[e.EventID] {
			t.Fatalf("event_id %s reused by a run with another start", e.EventID)
		}
	}
}

func TestSharesOverADay(t *testing.T) {
	events := dayEvents()
	convs, order := group(events)
	end := events[len(events)-1].OccurredAt
	var (
		started, botFirst, transferred, botEnded    float64
		closed, resolved, abandoned, contained      float64
		complaints, csatN, csatSum, negMsgs, custMs float64
		slOK, slDone                                float64
		waits, firstResp                            []float64
		byChannel                                   = map[string]float64{}
		byRegion                                    = map[string]float64{}
		byLine                                      = map[string]float64{}
	)
	for _, id := range order {
		c := convs[id]
		if c.start == nil {
			t.Fatalf("conversation %s has no conversation.started", id)
		}
		// Shares of ended conversations only over those that had time to
		// end, so the cut at the end of the day does not bias them.
		mature := c.start.OccurredAt.Before(end.Add(-4 * time.Hour))
		started++
		byChannel[c.start.Channel]++
		byRegion[c.start.Region]++
		byLine[c.start.BusinessLine]++
		tr := c.has(schemas.TransferRequested)
		cl := c.has(schemas.ConversationClosed)
		ab := c.has(schemas.ConversationAbandoned)
		if c.start.Entry == "bot" {
			botFirst++
			if mature && (cl != nil || ab != nil) {
				botEnded++
				if tr != nil {
					transferred++
				} else if cl != nil && cl.Resolution == "resolved" && c.has(schemas.AgentAssigned) == nil {
					contained++
				}
			}
		}
		if cl != nil {
			closed++
			if cl.Resolution == "resolved" {
				resolved++
			}
		}
		if ab != nil {
			abandoned++
		}
		var firstReply *schemas.Event
		for _, e := range c.events {
			switch e.Type {
			case schemas.ComplaintFiled:
				complaints++
			case schemas.CSATSubmitted:
				csatN++
				csatSum += float64(e.Score)
			case schemas.MessageSent:
				if e.Actor.Role == "customer" {
					custMs++
					if *e.Sentiment < -0.3 {
						negMsgs++
					}
				} else if firstReply == nil {
					firstReply = e
				}
			}
		}
		if firstReply != nil {
			firstResp = append(firstResp, firstReply.OccurredAt.Sub(c.start.OccurredAt).Seconds())
		}
		if tr != nil {
			if as := c.has(schemas.AgentAssigned); as != nil {
				w := as.OccurredAt.Sub(tr.OccurredAt).Seconds()
				waits = append(waits, w)
				slDone++
				if w <= 20 {
					slOK++
				}
			} else if ab != nil {
				slDone++
			}
		}
	}
	share := func(m map[string]float64, k string) float64 { return m[k] / started }
	got := map[string]float64{
		"bot_first_share":         botFirst / started,
		"transfer_rate":           transferred / botEnded,
		"bot_containment_rate":    contained / botEnded,
		"resolution_rate":         resolved / closed,
		"abandon_rate":            abandoned / (closed + abandoned),
		"complaints_per_conv":     complaints / started,
		"csat_share":              csatN / closed,
		"csat_avg":                csatSum / csatN,
		"negative_sentiment_rate": negMsgs / custMs,
		"service_level_20s":       slOK / slDone,
		"human_wait_p50":          median(waits),
		"human_wait_p90":          quantile(waits, 0.9),
		"first_response_p50":      median(firstResp),
		"voice_share":             share(byChannel, "voice"),
		"wechat_share":            share(byChannel, "wechat"),
		"email_share":             share(byChannel, "email"),
		"shanghai_share":          share(byRegion, "上海"),
		"xiamen_share":            share(byRegion, "厦门"),
		"mobile_share":            share(byLine, "mobile"),
		"events_per_conv":         float64(len(events)) / started,
	}
	t.Logf("one weekday at peak 2/s: %d conversations, %d events", int(started), len(events))
	for _, k := range []string{"bot_first_share", "transfer_rate", "bot_containment_rate", "resolution_rate",
		"abandon_rate", "complaints_per_conv", "csat_share", "csat_avg", "negative_sentiment_rate",
		"service_level_20s", "human_wait_p50", "human_wait_p90", "first_response_p50", "voice_share",
		"wechat_share", "email_share", "shanghai_share", "xiamen_share", "mobile_share", "events_per_conv"} {
		t.Logf("  %-24s %.4f", k, got[k])
	}

	var regionWeight float64
	for _, r := range regions {
		regionWeight += r.weight
	}
	// Tolerances are several standard errors at ~90k conversations (a
	// share's SE is at most 0.0017) yet well under any mistake in the model
	// (a lost normalisation moves a share by several points).
	tests := []struct {
		name      string
		want, tol float64
	}{
		{"bot_first_share", 0.75, 0.01},
		{"transfer_rate", 0.20, 0.01},
		{"voice_share", 0.34, 0.01},
		{"wechat_share", 0.22, 0.01},
		{"email_share", 0.03, 0.004},
		{"shanghai_share", 10 / regionWeight, 0.006},
		{"xiamen_share", 2.5 / regionWeight, 0.003},
		{"mobile_share", 0.35, 0.01},
		// Emergent KPIs: plausible contact-centre ranges.
		{"bot_containment_rate", 0.62, 0.03},
		{"resolution_rate", 0.79, 0.03},
		// Of all ended conversations, bot-contained ones included: about
		// 2% of those who wait for a human give up.
		{"abandon_rate", 0.0065, 0.003},
		{"csat_avg", 3.8, 0.15},
		{"service_level_20s", 0.91, 0.03},
		{"negative_sentiment_rate", 0.18, 0.03},
		{"complaints_per_conv", 0.019, 0.005},
	}
	for _, tc := range tests {
		if g := got[tc.name]; math.Abs(g-tc.want) > tc.tol {
			t.Errorf("%s = %.4f, want %.4f ± %.4f", tc.name, g, tc.want, tc.tol)
		}
	}
}

func TestDiurnalShape(t *testing.T) {
	var perHour [24]float64
	for _, e := range dayEvents() {
		if e.Type == schemas.ConversationStarted {
			perHour[e.OccurredAt.In(Zone).Hour()]++
		}
	}
	t.Logf("conversations per Shanghai hour: %v", perHour)
	night := (perHour[2] + perHour[3] + perHour[4]) / 3
	morning := (perHour[10] + perHour[11]) / 2
	evening := (perHour[20] + perHour[21]) / 2
	afternoon := (perHour[15] + perHour[16]) / 2
	if night > 0.1*morning {
		t.Errorf("night %.0f/h is not quiet next to late morning %.0f/h", night, morning)
	}
	if morning <= afternoon || evening <= perHour[18] {
		t.Errorf("no late-morning and evening peaks: morning %.0f, afternoon %.0f, 18h %.0f, evening %.0f",
			morning, afternoon, perHour[18], evening)
	}
	// The rate at 11:00 should match PeakRate 2/s within Poisson noise.
	if want := 2 * 3600 * (hourly[10] + hourly[11]) / 2; math.Abs(perHour[11]-want) > 0.05*want {
		t.Errorf("11:00 hour has %.0f conversations, want about %.0f", perHour[11], want)
	}
	// The curve itself: weekend and floor.
	sat := time.Date(2026, 3, 7, 11, 30, 0, 0, Zone).UnixMilli()
	mon := time.Date(2026, 3, 2, 11, 30, 0, 0, Zone).UnixMilli()
	if got := level(sat, 0.85, 0); math.Abs(got-0.85*level(mon, 0.85, 0)) > 1e-9 {
		t.Errorf("Saturday level %v, want 0.85 × Monday's %v", got, level(mon, 0.85, 0))
	}
	night4 := time.Date(2026, 3, 2, 4, 30, 0, 0, Zone).UnixMilli()
	if got := level(night4, 0.85, 0.5); got != 0.5 {
		t.Errorf("level at 04:30 with floor 0.5 = %v", got)
	}
}

func TestCausalOrderPerConversation(t *testing.T) {
	convs, order := group(generate(t, testConfig(monday10, 5), monday10.Add(-30*time.Minute), monday10.Add(40*time.Minute)))
	for _, id := range order {
		c := convs[id]
		evs := c.events
		if evs[0].Type != schemas.ConversationStarted {
			t.Fatalf("%s: first event is %s", id, evs[0].Type)
		}
		ended := -1
		var transfer, assigned int = -1, -1
		for i, e := range evs {
			if i > 0 && e.OccurredAt.Before(evs[i-1].OccurredAt) {
				t.Fatalf("%s: event %d goes back in time", id, i)
			}
			switch e.Type {
			case schemas.ConversationStarted:
				if i != 0 {
					t.Fatalf("%s: second conversation.started", id)
				}
			case schemas.ConversationClosed, schemas.ConversationAbandoned:
				if ended >= 0 {
					t.Fatalf("%s: ended twice", id)
				}
				ended = i
			case schemas.CSATSubmitted:
				// The survey is answered after the close, and only then.
				if ended < 0 || evs[ended].Type != schemas.ConversationClosed || i != len(evs)-1 {
					t.Fatalf("%s: csat.submitted at %d, closed at %d", id, i, ended)
				}
				continue
			case schemas.TransferRequested:
				transfer = i
			case schemas.AgentAssigned:
				assigned = i
			case schemas.MessageSent:
				if e.Actor.Role == "agent" && assigned < 0 {
					t.Fatalf("%s: agent message before agent.assigned", id)
				}
			}
			if ended >= 0 && i > ended {
				t.Fatalf("%s: %s after the conversation ended", id, e.Type)
			}
		}
		if c.start.Entry == "bot" && assigned >= 0 && (transfer < 0 || transfer > assigned) {
			t.Fatalf("%s: bot-first conversation assigned without a transfer before", id)
		}
	}
}

// incidentWindow finds the first scheduled occurrence of kind.
func incidentWindow(t *testing.T, s *Simulator, kind IncidentKind) Incident {
	t.Helper()
	for _, in := range s.Schedule(s.Anchor(), s.Anchor().Add(2*time.Hour)) {
		if in.Kind == kind {
			return in
		}
	}
	t.Fatalf("no %s scheduled", kind)
	return Incident{}
}

func TestIncidentsShowInTheData(t *testing.T) {
	cfg := testConfig(monday10, 12)
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	from, to := monday10.Add(-70*time.Minute), monday10.Add(50*time.Minute)
	var events []schemas.Event
	if err := s.Generate(from, to, func(e schemas.Event) error { events = append(events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	convs, _ := group(events)
	for _, in := range s.Schedule(from, to) {
		t.Logf("incident: %s", in)
	}

	t.Run("complaint spike", func(t *testing.T) {
		in := incidentWindow(t, s, ComplaintSpike)
		count := func(from, to time.Time) float64 {
			n := 0.0
			for _, e := range events {
				if e.Type == schemas.ComplaintFiled && e.Region == in.Target && within(from, to, e.OccurredAt) {
					n++
				}
			}
			return n
		}
		d := in.End.Sub(in.Start)
		// Usual: the mean of the four windows of the same length before the
		// anchor (and so before every incident).
		var usual float64
		for k := 1; k <= 4; k++ {
			usual += count(monday10.Add(-time.Duration(k)*d), monday10.Add(-time.Duration(k-1)*d)) / 4
		}
		got := count(in.Start, in.End)
		t.Logf("%s complaints: %.0f in the spike, %.1f usually", in.Target, got, usual)
		if usual < 5 || got < 4*usual {
			t.Errorf("%s: %.0f complaints in the spike window, usual %.1f: want ≥ 4× and usual ≥ 5", in.Target, got, usual)
		}
	})

	t.Run("queue slowdown", func(t *testing.T) {
		in := incidentWindow(t, s, QueueSlowdown)
		waits := func(from, to time.Time) []float64 {
			var w []float64
			for _, c := range convs {
				tr, as := c.has(schemas.TransferRequested), c.has(schemas.AgentAssigned)
				if c.start.Queue == in.Target && tr != nil && as != nil && within(from, to, tr.OccurredAt) &&
					(c.start.Channel != "email" && c.start.Channel != "sms") {
					w = append(w, as.OccurredAt.Sub(tr.OccurredAt).Seconds())
				}
			}
			return w
		}
		replies := func(from, to time.Time) []float64 {
			var r []float64
			for _, c := range convs {
				if c.start.Queue != in.Target || c.start.Channel != "wechat" {
					continue
				}
				for i := 1; i < len(c.events); i++ {
					e, p := c.events[i], c.events[i-1]
					if e.Type == schemas.MessageSent && e.Actor.Role == "agent" && p.Type == schemas.MessageSent &&
						p.Actor.Role == "customer" && within(from, to, p.OccurredAt) {
						r = append(r, e.OccurredAt.Sub(p.OccurredAt).Seconds())
					}
				}
			}
			return r
		}
		before := waits(monday10.Add(-time.Hour), monday10)
		// The first 5 minutes of the window are left out: waits drawn then
		// are slowed, but the queue's load has not built up yet.
		during := waits(in.Start.Add(5*time.Minute), in.End)
		rb, rd := replies(monday10.Add(-time.Hour), monday10), replies(in.Start.Add(5*time.Minute), in.End)
		t.Logf("%s human wait p50: %.1fs before, %.1fs during (n=%d, %d); wechat agent reply p50 %.1fs → %.1fs",
			in.Target, median(before), median(during), len(before), len(during), median(rb), median(rd))
		if len(before) < 50 || len(during) < 50 || median(during) < 3.5*median(before) {
			t.Errorf("human wait p50 %.1fs → %.1fs: want ≥ 3.5×", median(before), median(during))
		}
		if len(rd) < 50 || median(rd) < 3*median(rb) {
			t.Errorf("agent reply p50 %.1fs → %.1fs (n=%d): want ≥ 3×", median(rb), median(rd), len(rd))
		}
	})

	t.Run("resolution slide", func(t *testing.T) {
		in := incidentWindow(t, s, ResolutionSlide)
		rate := func(from, to time.Time) float64 {
			var n, ok float64
			for _, e := range events {
				if e.Type == schemas.ConversationClosed && within(from, to, e.OccurredAt) &&
					convs[e.ConversationID].start.BusinessLine == in.Target {
					n++
					if e.Resolution == "resolved" {
						ok++
					}
				}
			}
			return ok / n
		}
		base := rate(monday10.Add(-time.Hour), monday10)
		step := in.End.Sub(in.Start) / 6
		var rates []float64
		for k := range 6 {
			rates = append(rates, rate(in.Start.Add(time.Duration(k)*step), in.Start.Add(time.Duration(k+1)*step)))
		}
		t.Logf("%s resolution rate %.3f before, per step %.3f", in.Target, base, rates)
		for k := 1; k < len(rates); k++ {
			if rates[k] > rates[k-1]+0.01 {
				t.Errorf("step %d rate %.3f above step %d's %.3f: not sliding", k, rates[k], k-1, rates[k-1])
			}
		}
		if last := rates[len(rates)-1]; last > 0.55*base {
			t.Errorf("last step rate %.3f, want ≤ 0.55 × usual %.3f", last, base)
		}
		after := rate(in.End.Add(2*time.Minute), to)
		if after < 0.9*base {
			t.Errorf("rate %.3f after the slide, want back near %.3f", after, base)
		}
	})
}

func TestScheduleListsRecurringIncidents(t *testing.T) {
	s, err := New(testConfig(monday10, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Schedule(monday10.Add(-time.Hour), monday10.Add(2*time.Hour))
	want := []struct {
		kind   IncidentKind
		target string
		start  time.Duration
	}{
		{QueueSlowdown, "broadband-l1", 3 * time.Minute},
		{ComplaintSpike, "广州", 5 * time.Minute},
		{ResolutionSlide, "mobile", 8 * time.Minute},
		{QueueSlowdown, "billing-l1", 63 * time.Minute},
		{ComplaintSpike, "成都", 65 * time.Minute},
		{ResolutionSlide, "billing", 68 * time.Minute},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d incidents %v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Target != w.target || !got[i].Start.Equal(monday10.Add(w.start)) {
			t.Errorf("incident %d = %s, want %s %s at +%s", i, got[i], w.kind, w.target, w.start)
		}
	}
	// A window that starts inside an occurrence still lists it.
	if in := s.Schedule(monday10.Add(10*time.Minute), monday10.Add(11*time.Minute)); len(in) != 3 {
		t.Errorf("at +10m, %d incidents running, want 3: %v", len(in), in)
	}
	if in := s.Schedule(monday10.Add(-time.Hour), monday10); len(in) != 0 {
		t.Errorf("incidents before the anchor: %v", in)
	}
}

func TestFaults(t *testing.T) {
	cfg := testConfig(monday10, 5)
	cfg.Faults = Faults{LateShare: 0.05, MaxLateness: time.Minute, DuplicateShare: 0.02, InvalidShare: 0.01, InFastForward: true}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	from, to := monday10, monday10.Add(30*time.Minute)
	var events []schemas.Event
	if err := s.Generate(from, to, func(e schemas.Event) error { events = append(events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	clean := generate(t, testConfig(monday10, 5), from, to)

	var invalid, dups, late float64
	seen := map[string]schemas.Event{}
	var latest time.Time
	for i := range events {
		e := &events[i]
		if err := schemas.Validate(e, to, schemas.DefaultLimits()); err != nil {
			invalid++
			continue
		}
		if prev, ok := seen[e.EventID]; ok {
			if !reflect.DeepEqual(prev, *e) {
				t.Fatalf("duplicate %s differs from its original", e.EventID)
			}
			dups++
			continue
		}
		seen[e.EventID] = *e
		if e.OccurredAt.Before(latest.Add(-time.Millisecond)) {
			late++
		}
		latest = later(latest, e.OccurredAt)
	}
	n := float64(len(clean))
	t.Logf("%d clean events; with faults: %.0f invalid, %.0f duplicates, %.0f delivered out of order", len(clean), invalid, dups, late)
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"invalid", invalid, 0.01}, {"duplicate", dups, 0.02}} {
		if math.Abs(c.got/n-c.want) > c.want/4 {
			t.Errorf("%s share %.4f, want %.4f", c.name, c.got/n, c.want)
		}
	}
	if late < 0.02*n {
		t.Errorf("only %.0f events out of order with 5%% late", late)
	}
	st := s.Stats()
	// Stats count the invalid copies made; a copy of an event due at the
	// very end of the range may fall after it and not be emitted.
	if st.Invalid < uint64(invalid) || st.Invalid > uint64(invalid)+2 {
		t.Errorf("Stats.Invalid = %d, %0.f events failed validation", st.Invalid, invalid)
	}
	// Faults do not change the traffic: the valid events are the clean run's
	// events, give or take those whose late delivery fell after the end.
	missing := 0
	for _, e := range clean {
		if got, ok := seen[e.EventID]; !ok {
			missing++
		} else if !reflect.DeepEqual(got, e) {
			t.Fatalf("event %s differs with faults on", e.EventID)
		}
	}
	if len(seen) > len(clean) || missing > int(0.05*n*0.1) {
		t.Errorf("%d valid events with faults, %d clean, %d clean ones missing", len(seen), len(clean), missing)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// collector is a Sink that keeps what it receives with the arrival time.
type collector struct {
	mu     sync.Mutex
	events []schemas.Event
	at     []time.Time
}

func (c *collector) Write(_ context.Context, events []schemas.Event) error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range events {
		c.events = append(c.events, e)
		c.at = append(c.at, now)
	}
	return nil
}

func TestRunEmitsInRealTime(t *testing.T) {
	cfg := testConfig(time.Time{}, 200)
	cfg.Floor = 1 // the test must not depend on the hour it runs at
	cfg.FlushInterval = 20 * time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var sink collector
	start := time.Now()
	if err := s.Run(ctx, &sink); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(sink.events) < 100 {
		t.Fatalf("only %d events in 1.5 s at 200 conversations/s", len(sink.events))
	}
	var worst time.Duration
	for i, e := range sink.events {
		if err := schemas.Validate(&e, sink.at[i], schemas.DefaultLimits()); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if e.OccurredAt.Before(start.Truncate(time.Millisecond)) {
			t.Fatalf("event %d occurred at %s, before Run started at %s", i, e.OccurredAt, start)
		}
		lag := sink.at[i].Sub(e.OccurredAt)
		if lag < -time.Millisecond {
			t.Fatalf("event %d delivered %s before it occurred", i, -lag)
		}
		worst = max(worst, lag)
	}
	t.Logf("%d events in 1.5 s, worst delivery lag %s", len(sink.events), worst)
	// The flush interval plus generous scheduling slack under -race.
	if worst > 500*time.Millisecond {
		t.Errorf("an event reached the sink %s after it occurred", worst)
	}
}

func TestRunRetriesAFailingSink(t *testing.T) {
	cfg := testConfig(time.Time{}, 500)
	cfg.Floor = 1
	cfg.FlushInterval = 10 * time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var calls, delivered int
	sink := SinkFunc(func(_ context.Context, events []schemas.Event) error {
		calls++
		if calls <= 2 {
			return errors.New("broker unavailable")
		}
		delivered += len(events)
		return nil
	})
	if err := s.Run(ctx, sink); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if delivered == 0 || uint64(delivered) > s.Stats().Events {
		t.Errorf("delivered %d events after two failures, stats say %d", delivered, s.Stats().Events)
	}
}

// runBackfill runs a simulator with a 10-minute backfill until its first
// live event, and returns it, the events written and when Run started.
func runBackfill(t *testing.T, logger *slog.Logger) (*Simulator, []schemas.Event, time.Time) {
	t.Helper()
	cfg := testConfig(time.Time{}, 20)
	cfg.Floor = 1
	cfg.Backfill = 10 * time.Minute
	s, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	// The run stops at its first live event, once the history is written;
	// the timeout only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sink collector
	start := time.Now()
	live := SinkFunc(func(ctx context.Context, events []schemas.Event) error {
		if err := sink.Write(ctx, events); err != nil {
			return err
		}
		if !events[len(events)-1].OccurredAt.Before(start) {
			cancel()
		}
		return nil
	})
	if err := s.Run(ctx, live); err != nil {
		t.Fatal(err)
	}
	return s, sink.events, start
}

func TestRunBackfillCatchesUp(t *testing.T) {
	var logs bytes.Buffer
	s, events, start := runBackfill(t, slog.New(slog.NewTextHandler(&logs, nil)))
	if len(events) < 20*600*5 || events[0].OccurredAt.After(start.Add(-9*time.Minute)) {
		t.Fatalf("%d events, first at %s: no 10 minutes of history", len(events), events[0].OccurredAt)
	}
	if incidents := s.Schedule(start.Add(-10*time.Minute), start); len(incidents) != 0 {
		t.Errorf("incidents in the backfill: %v", incidents)
	}
	if !strings.Contains(logs.String(), `msg="simulator backfill done"`) {
		t.Errorf("no backfill done line in the log:\n%s", logs.String())
	}
}

// TestRunProduced: while Run writes its backfill, Produced says how far
// the history handed to the sink by a moment reaches, from before Run
// starts (the demo wires it in first) until the history is written; from
// then on the producer is current.
func TestRunProduced(t *testing.T) {
	cfg := testConfig(time.Time{}, 20)
	cfg.Floor = 1
	cfg.Backfill = 10 * time.Minute
	// Many corrupted copies, among them events two hours ahead (a
	// producer's wrong clock): no event's own time says how far the
	// history has come.
	cfg.Faults.InvalidShare = 0.3
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if lag := now.Sub(s.Produced(now)); lag < cfg.Backfill-time.Minute || lag > cfg.Backfill+time.Minute {
		t.Fatalf("before Run, the producer is %s behind with a %s backfill to write", lag, cfg.Backfill)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	// At each write of history: when, and the newest sound event the
	// sink had taken before it.
	var at, taken []time.Time
	var newest time.Time
	sink := SinkFunc(func(_ context.Context, events []schemas.Event) error {
		var last time.Time // the newest sound event of the write
		for _, ev := range events {
			if !strings.HasSuffix(ev.EventID, "-bad") && ev.OccurredAt.After(last) {
				last = ev.OccurredAt
			}
		}
		if !last.Before(start) {
			cancel() // the first live write: the history is written
			return nil
		}
		at, taken = append(at, time.Now()), append(taken, newest)
		if last.After(newest) {
			newest = last
		}
		return nil
	})
	if err := s.Run(ctx, sink); err != nil {
		t.Fatal(err)
	}
	if len(at) < 3 {
		t.Fatalf("%d writes of history", len(at))
	}
	var violations []string
	for i := range at {
		p := s.Produced(at[i])
		// Never further than the sink held then (the warm-up hands over
		// events older than the history's start, which counts
		// meanwhile; a step's events may be stamped a few milliseconds
		// past the step).
		if taken[i].After(start.Add(-cfg.Backfill)) && p.After(taken[i].Add(time.Second)) {
			violations = append(violations, fmt.Sprintf("write %d: produced up to %s, the sink held up to %s", i, p, taken[i]))
		}
		if !p.Before(at[i]) {
			violations = append(violations, fmt.Sprintf("write %d: produced up to %s at %s, while history is written", i, p, at[i]))
		}
	}
	if len(violations) > 0 {
		t.Fatalf("%d of %d writes of history:\n%s", len(violations), len(at), strings.Join(violations, "\n"))
	}
	// It followed the history up to the present, not stuck at its start.
	last := len(at) - 1
	if lag := at[last].Sub(s.Produced(at[last])); lag > time.Minute {
		t.Errorf("at the last write of history the producer was %s behind", lag)
	}
	if now := time.Now(); !s.Produced(now).Equal(now) {
		t.Errorf("after the history, produced up to %s at %s", s.Produced(now), now)
	}
	t.Logf("%d writes of history; %s behind at the last", len(at), at[last].Sub(s.Produced(at[last])))
}

// TestRunWarmUp: a backfill starts busy rather than empty (WarmUp), and
// no event in it lacks its conversation's start: the conversations open
// when the history begins come with their earlier events, those that
// ended before it not at all.
func TestRunWarmUp(t *testing.T) {
	_, events, start := runBackfill(t, nil)
	from := start.Add(-10 * time.Minute)
	started := map[string]bool{}
	var early, first, last int
	for _, ev := range events {
		if ev.Type == schemas.ConversationStarted {
			started[ev.ConversationID] = true
		}
		at := ev.OccurredAt
		switch {
		case at.Before(from.Add(-WarmUp)):
			t.Fatalf("an event at %s, before the warm-up began", at)
		case at.Before(from):
			early++
		case at.Before(from.Add(2 * time.Minute)):
			first++
		case !at.Before(start.Add(-2*time.Minute)) && at.Before(start):
			last++
		}
	}
	// A start delivered late (faults, up to MaxLateness) may not have
	// reached the sink when the run stopped, at its first live event: the
	// events of those conversations are not judged.
	inFlight := start.Add(-DefaultConfig().Faults.MaxLateness)
	var orphans int
	for _, ev := range events {
		if !started[ev.ConversationID] && ev.OccurredAt.Before(inFlight) {
			orphans++
		}
	}
	if orphans > 0 {
		t.Errorf("%d events of conversations whose start was not emitted", orphans)
	}
	if early == 0 {
		t.Error("no event before the history's start: the conversations open then came without their starts")
	}
	// Started empty, the first two minutes held a small fraction of the
	// last two.
	if first < last*3/4 {
		t.Errorf("%d events in the history's first 2 minutes against %d in its last 2: it starts empty", first, last)
	}
	t.Logf("%d events before the history, %d in its first 2 minutes, %d in its last 2", early, first, last)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"zero peak rate", func(c *Config) { c.PeakRate = 0 }},
		{"NaN peak rate", func(c *Config) { c.PeakRate = math.NaN() }},
		{"share above one", func(c *Config) { c.TransferShare = 1.2 }},
		{"negative floor", func(c *Config) { c.Floor = -0.1 }},
		{"weekend zero", func(c *Config) { c.WeekendFactor = 0 }},
		{"backfill beyond max age", func(c *Config) { c.Backfill = 31 * 24 * time.Hour }},
		{"no flush interval", func(c *Config) { c.FlushInterval = 0 }},
		{"no batch", func(c *Config) { c.MaxBatch = 0 }},
		{"late without lateness", func(c *Config) { c.Faults = Faults{LateShare: 0.1} }},
		{"unknown incident kind", func(c *Config) { c.Incidents[0].Kind = "meteor" }},
		{"unknown region", func(c *Config) { c.Incidents[1].Targets = []string{"Atlantis"} }},
		{"unknown queue", func(c *Config) { c.Incidents[0].Targets = []string{"billing"} }},
		{"every shorter than duration", func(c *Config) { c.Incidents[2].Every = time.Minute }},
		{"slide factor above one", func(c *Config) { c.Incidents[2].Factor = 2 }},
		{"slide without steps", func(c *Config) { c.Incidents[2].Steps = 0 }},
		{"no targets", func(c *Config) { c.Incidents[1].Targets = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
			if s, err := New(cfg, nil); err == nil || s != nil {
				t.Fatal("New accepted it")
			}
		})
	}
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	cfg.Faults = DemoFaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DemoFaults: %v", err)
	}
}

func TestGenerateStopsOnEmitError(t *testing.T) {
	s, err := New(testConfig(monday10, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	n := 0
	err = s.Generate(monday10, monday10.Add(time.Hour), func(schemas.Event) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 10 {
		t.Fatalf("Generate = %v after %d events, want boom after 10", err, n)
	}
	if err := s.Generate(monday10, monday10, func(schemas.Event) error { return nil }); err == nil {
		t.Error("empty range accepted")
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := testConfig(monday10, 1000)
	s, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	from := monday10
	for b.Loop() {
		if err := s.Generate(from, from.Add(time.Minute), func(schemas.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
