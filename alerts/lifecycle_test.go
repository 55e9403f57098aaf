package alerts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func cand(rule string, labels map[string]string, value float64, forDur, keep time.Duration) rules.Candidate {
	return rules.Candidate{Rule: rule, Kind: rules.KindThreshold, Severity: "warning", Labels: labels,
		Value: value, Expected: 30, Explanation: fmt.Sprintf("%s %v", rule, value), For: forDur, KeepFiring: keep}
}

func evalAt(at time.Time, names []string, cs ...rules.Candidate) rules.Evaluation {
	ev := rules.Evaluation{At: at, Candidates: cs, Evaluated: map[string]bool{}}
	for _, r := range names {
		ev.Evaluated[r] = true
	}
	return ev
}

func transitions(chs []Change) string {
	var parts []string
	for _, c := range chs {
		parts = append(parts, fmt.Sprintf("%s:%s->%s", c.Alert.Rule, c.From, c.To))
	}
	return strings.Join(parts, ",")
}

func TestLifecycle(t *testing.T) {
	tr := NewTracker(nil)
	q := map[string]string{"queue": "vip"}
	names := []string{"slow"}
	step := func(sec int, cs ...rules.Candidate) string {
		return transitions(tr.Observe(evalAt(t0.Add(time.Duration(sec)*time.Second), names, cs...)))
	}
	c := cand("slow", q, 42, 2*time.Minute, time.Minute)
	if got := step(0, c); got != "slow:inactive->pending" {
		t.Fatalf("t=0: %s", got)
	}
	if got := step(60, c); got != "" {
		t.Fatalf("t=60 (still pending): %s", got)
	}
	if got := step(120, c); got != "slow:pending->firing" {
		t.Fatalf("t=120: %s", got)
	}
	id := tr.Active()[0].ID
	// The condition clears; keep_firing_for holds the alert for a minute.
	if got := step(150); got != "" {
		t.Fatalf("t=150 (keep firing): %s", got)
	}
	// It comes back within keep_firing_for: the same alert, not a new one.
	if got := step(170, c); got != "" || tr.Active()[0].ID != id {
		t.Fatalf("t=170: %s, id %s vs %s", got, tr.Active()[0].ID, id)
	}
	if got := step(200); got != "" {
		t.Fatalf("t=200: %s", got)
	}
	if got := step(230); got != "slow:firing->resolved" {
		t.Fatalf("t=230 (60s after last seen at 170): %s", got)
	}
	if len(tr.Active()) != 0 {
		t.Fatal("resolved alert still active")
	}
	// A pending alert that clears is forgotten without firing.
	step(300, c)
	if got := step(310); got != "slow:pending->inactive" {
		t.Fatalf("pending cleared: %s", got)
	}
}

func TestLifecycleForZeroFiresAtOnce(t *testing.T) {
	tr := NewTracker(nil)
	got := transitions(tr.Observe(evalAt(t0, []string{"x"}, cand("x", nil, 1, 0, 0))))
	if got != "x:pending->firing" {
		t.Fatalf("got %s", got)
	}
}

func TestFailedRuleKeepsItsAlerts(t *testing.T) {
	tr := NewTracker(nil)
	c := cand("slow", map[string]string{"queue": "vip"}, 42, 0, 0)
	tr.Observe(evalAt(t0, []string{"slow"}, c))
	// The rule failed to evaluate (store down): no candidate, but also not
	// evaluated, so nothing resolves.
	if got := transitions(tr.Observe(evalAt(t0.Add(time.Minute), nil))); got != "" {
		t.Fatalf("a failed evaluation changed alerts: %s", got)
	}
	if len(tr.Active()) != 1 {
		t.Fatal("alert lost")
	}
}

func TestFingerprintAndRestart(t *testing.T) {
	a := Fingerprint("r", map[string]string{"a": "1", "b": "2"})
	b := Fingerprint("r", map[string]string{"b": "2", "a": "1"})
	if a != b || a == Fingerprint("r", map[string]string{"a": "1", "b": "3"}) || a == Fingerprint("s", map[string]string{"a": "1", "b": "2"}) {
		t.Fatal("fingerprint not a function of rule and labels")
	}
	// Labels "a=1,b=" and "a=1\x00b" must not collide.
	if Fingerprint("r", map[string]string{"a": "1\x00b"}) == Fingerprint("r", map[string]string{"a": "1", "b": ""}) {
		t.Fatal("fingerprint collision")
	}
	tr := NewTracker(nil)
	c := cand("slow", map[string]string{"queue": "vip"}, 42, 0, time.Minute)
	tr.Observe(evalAt(t0, []string{"slow"}, c))
	saved := tr.Active()
	// A new process restores the alert and continues it: no new alert.
	tr2 := NewTracker(saved)
	if got := transitions(tr2.Observe(evalAt(t0.Add(time.Second), []string{"slow"}, c))); got != "" {
		t.Fatalf("restored tracker raised %s", got)
	}
	if tr2.Active()[0].ID != saved[0].ID {
		t.Fatal("alert id changed across restart")
	}
}

func TestMatchersAndSilences(t *testing.T) {
	cases := []struct {
		m    string
		want bool
	}{
		{`region="广州"`, true}, {`region!=广州`, false}, {`region=~"广.*"`, true}, {`region!~"北.*"`, true},
		{`queue=""`, true}, {`region=~"州"`, false}, // anchored
	}
	labels := map[string]string{"region": "广州"}
	for _, c := range cases {
		m, err := ParseMatcher(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Matches(labels) != c.want {
			t.Errorf("%s on %v = %v", c.m, labels, !c.want)
		}
	}
	for _, bad := range []string{`region`, `=x`, `region=~"("`, `region=="x"`} {
		if _, err := ParseMatcher(bad); err == nil && bad != `region=="x"` {
			t.Errorf("%s accepted", bad)
		}
	}
	ss, _ := NewSilences(nil)
	m, _ := ParseMatcher(`region="广州"`)
	s, err := ss.Add(Silence{Matchers: Matchers{m}, EndsAt: t0.Add(time.Hour), CreatedBy: "lin", Comment: "network work"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss.Silenced(labels, t0.Add(time.Minute))) != 1 || len(ss.Silenced(map[string]string{"region": "北京"}, t0)) != 0 {
		t.Fatal("silence does not match as it should")
	}
	if len(ss.Silenced(labels, t0.Add(2*time.Hour))) != 0 {
		t.Fatal("silence active after its end")
	}
	ss.Expire(s.ID, t0.Add(10*time.Minute))
	if len(ss.Silenced(labels, t0.Add(11*time.Minute))) != 0 {
		t.Fatal("expired silence still active")
	}
	if _, err := ss.Add(Silence{Matchers: Matchers{m}, EndsAt: t0, CreatedBy: "lin"}, t0); err == nil {
		t.Fatal("silence ending at its start accepted")
	}
	if _, err := ss.Add(Silence{EndsAt: t0.Add(time.Hour), CreatedBy: "lin"}, t0); err == nil {
		t.Fatal("silence without matchers accepted")
	}
}

func TestInhibition(t *testing.T) {
	national := Record{Fingerprint: "n", Rule: "complaint_spike", State: StateFiring, Labels: map[string]string{"scope": "national"}}
	regional := Record{Fingerprint: "r", Rule: "complaint_spike", State: StateFiring, Labels: map[string]string{"scope": "region", "region": "广州"}}
	other := Record{Fingerprint: "o", Rule: "other_spike", State: StateFiring, Labels: map[string]string{"scope": "region", "region": "广州"}}
	rules := DefaultInhibitRules()
	if !Inhibited(regional, []Record{national, regional}, rules) {
		t.Error("national spike does not mute the regional one")
	}
	if Inhibited(national, []Record{national, regional}, rules) {
		t.Error("the national alert muted itself")
	}
	if Inhibited(other, []Record{national}, rules) {
		t.Error("equal: [rule] ignored")
	}
	if Inhibited(regional, []Record{{Fingerprint: "n", Rule: "complaint_spike", State: StateResolved, Labels: national.Labels}}, rules) {
		t.Error("a resolved source inhibits")
	}
}

// memOutbox records notifications (a fake of the small Outbox interface).
type memOutbox struct {
	mu  sync.Mutex
	got []*Notification
	err error
}

func (o *memOutbox) Enqueue(_ context.Context, n *Notification) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	o.got = append(o.got, n)
	return nil
}

func newTestDispatcher(t *testing.T, ss *Silences, routes ...Route) (*Dispatcher, *memOutbox) {
	t.Helper()
	cfg := DispatchConfig{ExternalURL: "http://cockpit.test", Routes: routes}
	if err := cfg.WithDefaults().Validate([]string{"ops", "dingtalk"}); err != nil {
		t.Fatal(err)
	}
	if ss == nil {
		ss, _ = NewSilences(nil)
	}
	ob := &memOutbox{}
	d, err := NewDispatcher(cfg, ss, ob)
	if err != nil {
		t.Fatal(err)
	}
	return d, ob
}

func firingChange(rule, region string, at time.Time) Change {
	labels := map[string]string{"region": region, "scope": "region"}
	fp := Fingerprint(rule, labels)
	return Change{From: StatePending, To: StateFiring, Alert: Record{ID: recordID(fp, at), Fingerprint: fp, Rule: rule,
		Severity: "critical", State: StateFiring, Labels: labels, StartedAt: at, ActiveAt: at, Explanation: region + " spike"}}
}

func TestGroupingWaitIntervalRepeat(t *testing.T) {
	d, ob := newTestDispatcher(t, nil, Route{Receiver: "ops", GroupBy: []string{"rule"},
		GroupWait: Duration(10 * time.Second), GroupInterval: Duration(time.Minute), RepeatInterval: Duration(time.Hour)})
	ctx := context.Background()
	a := firingChange("complaint_spike", "广州", t0)
	b := firingChange("complaint_spike", "成都", t0.Add(5*time.Second))
	d.Update([]Change{a}, t0)
	_ = d.Flush(ctx, t0.Add(5*time.Second), nil)
	d.Update([]Change{b}, t0.Add(5*time.Second))
	_ = d.Flush(ctx, t0.Add(9*time.Second), nil)
	if len(ob.got) != 0 {
		t.Fatal("sent before group_wait")
	}
	_ = d.Flush(ctx, t0.Add(10*time.Second), nil)
	if len(ob.got) != 1 || len(ob.got[0].Alerts) != 2 || ob.got[0].Status != StatusFiring {
		t.Fatalf("want one grouped notification of 2 alerts, got %+v", ob.got)
	}
	if !strings.HasPrefix(ob.got[0].Alerts[0].URL, "http://cockpit.test/quality?") || !strings.Contains(ob.got[0].Alerts[0].URL, "region=") {
		t.Errorf("drill-down link = %s", ob.got[0].Alerts[0].URL)
	}
	// Nothing changed: no repeat before repeat_interval.
	_ = d.Flush(ctx, t0.Add(30*time.Minute), nil)
	if len(ob.got) != 1 {
		t.Fatal("repeated before repeat_interval")
	}
	_ = d.Flush(ctx, t0.Add(70*time.Minute), nil)
	if len(ob.got) != 2 || ob.got[1].ID == ob.got[0].ID {
		t.Fatalf("no repeat after repeat_interval (or same id): %d", len(ob.got))
	}
	// One resolves: told after group_interval, then dropped from the group.
	res := a
	res.From, res.To = StateFiring, StateResolved
	res.Alert.State, res.Alert.ResolvedAt = StateResolved, t0.Add(70*time.Minute+30*time.Second)
	d.Update([]Change{res}, t0.Add(70*time.Minute+30*time.Second))
	_ = d.Flush(ctx, t0.Add(70*time.Minute+30*time.Second), nil)
	if len(ob.got) != 2 {
		t.Fatal("change sent before group_interval")
	}
	_ = d.Flush(ctx, t0.Add(72*time.Minute), nil)
	if len(ob.got) != 3 {
		t.Fatal("resolved notice not sent")
	}
	last := ob.got[2]
	if len(last.Alerts) != 2 || last.Alerts[0].Status == last.Alerts[1].Status {
		t.Fatalf("want one resolved and one firing alert: %+v", last.Alerts)
	}
	_ = d.Flush(ctx, t0.Add(80*time.Minute), nil)
	if len(ob.got) != 3 {
		t.Fatal("resolved alert told twice")
	}
}

func TestRoutingSilenceAckInhibit(t *testing.T) {
	ss, _ := NewSilences(nil)
	crit, _ := ParseMatcher(`severity="critical"`)
	d, ob := newTestDispatcher(t, ss,
		Route{Receiver: "dingtalk", Matchers: []string{crit.String()}, Continue: true, GroupWait: Duration(time.Second)},
		Route{Receiver: "ops", GroupWait: Duration(time.Second)})
	ctx := context.Background()
	a := firingChange("complaint_spike", "广州", t0)
	d.Update([]Change{a}, t0)
	_ = d.Flush(ctx, t0.Add(time.Second), nil)
	if len(ob.got) != 2 || ob.got[0].Receiver == ob.got[1].Receiver {
		t.Fatalf("continue: want one notification per receiver, got %d", len(ob.got))
	}

	// A silenced alert is not sent.
	m, _ := ParseMatcher(`region="成都"`)
	if _, err := ss.Add(Silence{Matchers: Matchers{m}, EndsAt: t0.Add(24 * time.Hour), CreatedBy: "lin"}, t0); err != nil {
		t.Fatal(err)
	}
	b := firingChange("other_rule", "成都", t0)
	d.Update([]Change{b}, t0)
	_ = d.Flush(ctx, t0.Add(10*time.Second), nil)
	if len(ob.got) != 2 {
		t.Fatalf("silenced alert sent: %d", len(ob.got))
	}

	// An acknowledged alert is not repeated.
	acked := a.Alert
	acked.AckedBy = "lin"
	d.Refresh([]Record{acked})
	_ = d.Flush(ctx, t0.Add(5*time.Hour), nil)
	if len(ob.got) != 2 {
		for _, n := range ob.got[2:] {
			t.Logf("%s %s %+v", n.Receiver, n.Status, n.Alerts)
		}
		t.Fatalf("acknowledged alert repeated: %d", len(ob.got))
	}

	// A regional spike under a national one is inhibited.
	d2, ob2 := newTestDispatcher(t, nil, Route{Receiver: "ops", GroupBy: []string{"region"}, GroupWait: Duration(time.Second)})
	national := Record{ID: "n1", Fingerprint: "n", Rule: "complaint_spike", State: StateFiring, Labels: map[string]string{"scope": "national"}}
	c := firingChange("complaint_spike", "武汉", t0)
	d2.Update([]Change{c, {From: StatePending, To: StateFiring, Alert: national}}, t0)
	_ = d2.Flush(ctx, t0.Add(2*time.Second), []Record{national, c.Alert})
	if len(ob2.got) != 1 || ob2.got[0].Alerts[0].ID != "n1" {
		t.Fatalf("want only the national notification, got %+v", ob2.got)
	}
}

func TestDispatchConfigValidate(t *testing.T) {
	bad := []DispatchConfig{
		{Routes: []Route{{Receiver: "nobody"}}},
		{Routes: []Route{{Receiver: "ops", Matchers: []string{"x=~("}}}},
		{Lang: "fr", Routes: []Route{{Receiver: "ops"}}},
		{ExternalURL: "ftp://x", Routes: []Route{{Receiver: "ops"}}},
		{Routes: []Route{{Receiver: "ops", GroupInterval: Duration(time.Hour), RepeatInterval: Duration(time.Minute)}}},
		{Routes: []Route{{Receiver: "ops", GroupWait: Duration(-time.Second)}}},
		{Routes: []Route{{Receiver: "ops"}}, InhibitRules: []InhibitRule{{SourceMatchers: Matchers{{Name: "a", Op: "=~", Value: "("}}}}},
	}
	for i, c := range bad {
		before := fmt.Sprintf("%+v", c)
		if err := c.WithDefaults().Validate([]string{"ops"}); err == nil {
			t.Errorf("config %d accepted", i)
		}
		// The dispatcher refuses it too, unless only the receiver is
		// unknown (it does not know the receivers).
		ss, _ := NewSilences(nil)
		if _, err := NewDispatcher(c, ss, &memOutbox{}); (err == nil) != (i == 0) {
			t.Errorf("config %d: NewDispatcher = %v", i, err)
		}
		if after := fmt.Sprintf("%+v", c); after != before {
			t.Errorf("config %d changed: %s", i, after)
		}
	}
	if err := (DispatchConfig{}).Validate(nil); err == nil {
		t.Error("a config without its defaults validated")
	}
	if err := DefaultDispatchConfig().Validate([]string{LogReceiver}); err != nil {
		t.Error(err)
	}
	ob := &memOutbox{err: errors.New("store down")}
	cfg := DispatchConfig{Routes: []Route{{Receiver: "ops", GroupWait: Duration(time.Second)}}}
	_ = cfg.WithDefaults().Validate([]string{"ops"})
	ss, _ := NewSilences(nil)
	d, _ := NewDispatcher(cfg, ss, ob)
	d.Update([]Change{firingChange("r", "x", t0)}, t0)
	if err := d.Flush(context.Background(), t0.Add(time.Minute), nil); err == nil {
		t.Fatal("outbox failure not reported")
	}
	// The group is kept: once the outbox works, the notification goes out.
	ob.err = nil
	if err := d.Flush(context.Background(), t0.Add(2*time.Minute), nil); err != nil || len(ob.got) != 1 {
		t.Fatalf("not retried after outbox recovery: %v %d", err, len(ob.got))
	}
}
