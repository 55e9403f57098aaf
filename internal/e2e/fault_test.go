package e2e

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/kafkatest"
	"github.com/cockpit-cs/cockpit/internal/testaddr"
)

// SPEC §10 as processes: the cockpit binary killed with SIGKILL, its store
// killed under it, the broker restarted, a notification receiver down for
// a long while, and the alert leader of three instances killed. Each test
// ends by counting: the produced events exactly once in the store and in
// /api/v1/kpis, every alert transition told exactly once.
//
// The variants here fit `make test`; `make soak` (-tags soak) runs the
// long ones (see soak_on_test.go and scripts/soak.sh).

// setup starts a store process over a fresh data directory, creates the
// test's topics and database, and stops merges of the events table, so
// that a record stored twice stays visible as two rows.
func setup(t testing.TB, config string) (*deployment, *storeProc, driver.Conn) {
	t.Helper()
	brokers := kafkatest.Broker(t)
	st := startStore(t, testaddr.Free(t), filepath.Join(t.TempDir(), "clickhouse"))
	topic := kafkatest.Topic(t, brokers, 4)
	d := &deployment{t: t, brokers: brokers, store: st.url(), db: uniqueName("fault"),
		topic: topic, dlq: kafkatest.Topic(t, brokers, 1), group: "g-" + topic, config: config}
	d.migrate()
	conn := chConn(t, st.url(), d.db)
	stopMerges(t, conn)
	return d, st, conn
}

// stopMerges keeps the events table's parts unmerged (until the store
// process restarts, so it is said again after each restart).
func stopMerges(t testing.TB, conn driver.Conn) {
	t.Helper()
	execCH(t, conn, "SYSTEM STOP MERGES events")
}

func pick(short, long int) int {
	if soak {
		return long
	}
	return short
}

func pickDuration(short, long time.Duration) time.Duration {
	if soak {
		return long
	}
	return short
}

// between returns a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// TestFaultServeKill9 kills `cockpit serve` with SIGKILL over and over, at
// a random moment 1–3 s after it was given its partitions, while a producer
// writes the workload (duplicates, out-of-order and late events, bad
// records); a last serve finishes. The store and /api/v1/kpis must hold
// exactly the produced events.
func TestFaultServeKill9(t *testing.T) {
	began := time.Now()
	d, _, conn := setup(t, "")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	w := newWorkload("k9", "故障测试市", pick(1500, 15000), seed)
	kills := pick(4, 20)
	prod := produce(t, d.brokers, d.topic, w.msgs, pickDuration(40*time.Second, 4*time.Minute))

	// The serves to be killed reach the store through a proxy that holds
	// each insert of events for half a second; the last one goes direct.
	slow := *d
	slow.store = slowInserts(t, d.store, 500*time.Millisecond)
	replays := 0
	for k := 0; k < kills || (replays == 0 && k < kills+12 && !prod.finished()); k++ {
		s := slow.startServeNoWait("serve")
		waitUntil(t, 2*time.Minute, s.name+" gets partitions", func() bool {
			if s.exited() {
				t.Fatalf("%s exited: %v\n%s", s.name, s.err, s.tail(30))
			}
			return s.assigned()
		})
		time.Sleep(between(rng, time.Second, 3*time.Second))
		s.kill()
		replays += s.countLog("replaying an uncommitted batch")
		if k+1 >= kills && replays == 0 {
			t.Logf("kill %d: no kill has landed inside a batch yet; killing again", k+1)
		}
	}
	prod.wait(t)
	last := d.startServe("serve")
	records := waitIngested(t, d, 3*time.Minute)
	replays += last.countLog("replaying an uncommitted batch")
	checkExact(t, w, conn, last.base, records)
	checkDeadLetters(t, w, d.brokers, d.dlq)
	t.Logf("killed serve %d times (seed %d); %d uncommitted batches replayed by the next owner; %s in all",
		kills, seed, replays, time.Since(began).Round(time.Second))
	if replays == 0 {
		t.Error("no kill landed between a batch's intent and its commit: the replay path was not exercised")
	}
	if err := last.stop(30 * time.Second); err != nil {
		t.Errorf("serve did not stop cleanly: %v", err)
	}
}

// TestFaultStoreKill9 kills `cockpit store` with SIGKILL while serve
// ingests, and restarts it on the same data directory after an outage of
// 1–3 s: the engine must open its own files again, and serve must ride it
// out and count every event once.
func TestFaultStoreKill9(t *testing.T) {
	began := time.Now()
	d, st, conn := setup(t, "")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	w := newWorkload("sk", "存储故障市", pick(1500, 6000), seed)
	s := d.startServe("serve")
	prod := produce(t, d.brokers, d.topic, w.msgs, pickDuration(30*time.Second, 2*time.Minute))
	kills := pick(2, 6)
	for k := range kills {
		n0 := count(t, conn, "SELECT count() FROM events")
		waitUntil(t, time.Minute, "ingest stores rows", func() bool {
			return count(t, conn, "SELECT count() FROM events") > n0
		})
		time.Sleep(between(rng, 200*time.Millisecond, 2*time.Second))
		st.kill()
		time.Sleep(between(rng, time.Second, 3*time.Second))
		restarted := time.Now()
		st = startStore(t, st.addr, st.dir)
		stopMerges(t, conn)
		t.Logf("store kill %d: back on its data directory in %s", k+1, time.Since(restarted).Round(time.Millisecond))
	}
	prod.wait(t)
	records := waitIngested(t, d, 3*time.Minute)
	if s.exited() {
		t.Fatalf("serve exited during the store outages: %v", s.err)
	}
	checkExact(t, w, conn, s.base, records)
	checkDeadLetters(t, w, d.brokers, d.dlq)
	retried := s.countLog("step failed, retrying")
	t.Logf("killed the store %d times (seed %d); serve logged %d failed steps it retried; %s in all",
		kills, seed, retried, time.Since(began).Round(time.Second))
	if retried == 0 {
		t.Error("serve never saw the store fail: the kills missed")
	}
	s.waitReady()
}

// TestFaultWebhookDown takes the notification receiver down before an
// alert fires and keeps it down while the alert fires and resolves; the
// cockpit is killed (SIGKILL) and restarted in the middle of it. Once the
// receiver is back it gets exactly one notification per transition, in
// order, none twice.
func TestFaultWebhookDown(t *testing.T) {
	began := time.Now()
	hk := newHook(t)
	hk.down.Store(true)
	window := pickDuration(45*time.Second, 90*time.Second)
	downFor := pickDuration(50*time.Second, 3*time.Minute)
	cfg := alertConfig(t, hk.url(), window)
	d, _, conn := setup(t, cfg)
	s := d.startServe("serve")
	waitUntil(t, time.Minute, "serve leads", func() bool { return s.metric("cockpit_ingest_leader") == 1 })

	const region = "告警市"
	w := &workload{ids: map[string]bool{}}
	downSince := time.Now()
	sendNow(t, d.brokers, d.topic, w.add(flood("wh", region, 30)))
	var alert apiAlert
	waitUntil(t, time.Minute, "the alert fires", func() bool {
		as := alertsOf(t, s.base, "complaint_flood", region)
		if len(as) == 1 && as[0].State == "firing" {
			alert = as[0]
			return true
		}
		return false
	})
	// The firing notice is in the outbox and the receiver refused it.
	waitUntil(t, time.Minute, "a delivery was refused", func() bool { return hk.refused.Load() > 0 })
	s.kill()
	t.Logf("alert %s fired; serve killed while the receiver is down", alert.ID)
	s = d.startServe("serve")
	waitUntil(t, window+time.Minute, "the alert resolves", func() bool {
		as := alertsOf(t, s.base, "complaint_flood", region)
		return len(as) == 1 && as[0].State == "resolved"
	})
	waitUntil(t, time.Minute, "the new leader tries the receiver", func() bool {
		return s.countLog("delivery failed, will retry") > 0
	})
	if rest := downFor - time.Since(downSince); rest > 0 {
		time.Sleep(rest)
	}
	if got := hk.deliveries(); len(got) != 0 {
		t.Fatalf("%d deliveries accepted while the receiver was down", len(got))
	}
	hk.down.Store(false)
	t.Logf("receiver back after %s down (%d deliveries refused meanwhile)", time.Since(downSince).Round(time.Second), hk.refused.Load())
	waitUntil(t, time.Minute, "both notices arrive", func() bool {
		got, _ := hk.transitions()
		return got[alert.ID+" firing"] > 0 && got[alert.ID+" resolved"] > 0
	})
	time.Sleep(5 * time.Second) // a repeat would arrive by now
	got, raw := hk.transitions()
	ds := hk.deliveries()
	t.Logf("receiver got %d deliveries: %v", raw, got)
	if got[alert.ID+" firing"] != 1 || got[alert.ID+" resolved"] != 1 || len(got) != 2 {
		t.Errorf("notices per transition = %v, want exactly one firing and one resolved notice of %s", got, alert.ID)
	}
	if raw != 2 {
		t.Errorf("receiver accepted %d deliveries, want 2 (no repeats)", raw)
	}
	if len(ds) >= 2 && ds[0].n.Status != "firing" {
		t.Errorf("first notice is %s, want firing first", ds[0].n.Status)
	}
	if n := count(t, conn, "SELECT uniqExact(id) FROM alerts WHERE fingerprint = '"+alert.Fingerprint+"'"); n != 1 {
		t.Errorf("alerts table has %d alerts for the fingerprint, want 1", n)
	}
	if n := count(t, conn, "SELECT count() FROM events FINAL"); n != uint64(w.distinct()) {
		t.Errorf("events FINAL = %d, want %d", n, w.distinct())
	}
	t.Logf("%s in all", time.Since(began).Round(time.Second))
}

// TestFaultLeaderKill runs three serve instances in one group with a rule
// that a flood of complaints trips, and kills the alert leader (the owner
// of partition 0) with SIGKILL the moment the alert is firing: leadership
// moves, the events are counted once, the alert exists once and the
// receiver hears it fire exactly once.
func TestFaultLeaderKill(t *testing.T) {
	began := time.Now()
	hk := newHook(t)
	cfg := alertConfig(t, hk.url(), 10*time.Minute)
	d, _, conn := setup(t, cfg)
	seed := uint64(time.Now().UnixNano())
	w := newWorkload("lk", "三实例市", pick(1000, 4000), seed)

	var servers []*serveProc
	for i := range 3 {
		servers = append(servers, d.startServeNoWait([]string{"serve-a", "serve-b", "serve-c"}[i]))
	}
	for _, s := range servers {
		s.waitReady()
	}
	leader := func(among []*serveProc) *serveProc {
		var l *serveProc
		for _, s := range among {
			if s.metric("cockpit_ingest_leader") == 1 {
				if l != nil {
					return nil // two claim it: a rebalance is under way
				}
				l = s
			}
		}
		return l
	}
	waitUntil(t, 2*time.Minute, "the group settles with one leader", func() bool {
		for _, s := range servers {
			if !s.assigned() {
				return false
			}
		}
		return leader(servers) != nil
	})
	prod := produce(t, d.brokers, d.topic, w.msgs, pickDuration(30*time.Second, 90*time.Second))
	time.Sleep(3 * time.Second)

	const region = "洪峰市"
	sendNow(t, d.brokers, d.topic, w.add(flood("lk", region, 30)))
	var alert apiAlert
	waitUntil(t, time.Minute, "the alert fires", func() bool {
		as := alertsOf(t, servers[0].base, "complaint_flood", region)
		if len(as) > 0 && as[0].State == "firing" {
			alert = as[0]
			return true
		}
		return false
	})
	killLeader := func() *serveProc {
		var l *serveProc
		waitUntil(t, 2*time.Minute, "one instance leads", func() bool { l = leader(servers); return l != nil })
		l.kill()
		var rest []*serveProc
		for _, s := range servers {
			if s != l {
				rest = append(rest, s)
			}
		}
		servers = rest
		t.Logf("killed the leader %s; %d instances left", l.name, len(servers))
		return l
	}
	killLeader()
	var next *serveProc
	waitUntil(t, 2*time.Minute, "another instance takes the lead", func() bool { next = leader(servers); return next != nil })
	waitUntil(t, time.Minute, "the receiver hears the alert fire", func() bool {
		got, _ := hk.transitions()
		return got[alert.ID+" firing"] > 0
	})
	t.Logf("%s leads now; the firing notice arrived", next.name)
	if soak {
		// The new leader goes too, after it has told the receiver: the
		// last one must not tell it again.
		killLeader()
		waitUntil(t, 2*time.Minute, "the last instance leads", func() bool { return leader(servers) != nil })
	}
	prod.wait(t)
	records := waitIngested(t, d, 3*time.Minute)
	time.Sleep(5 * time.Second) // a repeated notice would arrive by now
	checkExact(t, w, conn, servers[0].base, records)

	got, raw := hk.transitions()
	t.Logf("receiver got %d deliveries: %v", raw, got)
	if got[alert.ID+" firing"] != 1 || len(got) != 1 {
		t.Errorf("notices = %v, want exactly one firing notice of %s", got, alert.ID)
	}
	if as := alertsOf(t, servers[0].base, "complaint_flood", region); len(as) != 1 || as[0].ID != alert.ID || as[0].State != "firing" {
		t.Errorf("/api/v1/alerts lists %+v for %s, want the one alert %s, firing", as, region, alert.ID)
	}
	fp := "'" + alert.Fingerprint + "'"
	if n := count(t, conn, "SELECT uniqExact(id) FROM alerts WHERE fingerprint = "+fp); n != 1 {
		t.Errorf("alerts table has %d alerts for the fingerprint, want 1", n)
	}
	if n := count(t, conn, "SELECT count() FROM alert_history WHERE to_state = 'firing' AND fingerprint = "+fp); n != 1 {
		t.Errorf("alert history has %d firing transitions for the fingerprint, want 1", n)
		rows, err := conn.Query(context.Background(), "SELECT toString(at), alert_id, fingerprint, from_state, to_state FROM alert_history")
		if err == nil {
			for rows.Next() {
				var at, id, f, from, to string
				_ = rows.Scan(&at, &id, &f, &from, &to)
				t.Logf("history: %s %s %s %s -> %s", at, id, f, from, to)
			}
			rows.Close()
		}
	}
	t.Logf("%s in all", time.Since(began).Round(time.Second))
}
