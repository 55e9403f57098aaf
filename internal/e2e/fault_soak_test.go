//go:build soak

package e2e

import (
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/kafkatest"
)

// TestFaultBrokerRestart restarts the real broker (keeping its data) twice
// while serve ingests and a producer writes: the consumer and the producer
// ride out each restart, and the events are counted exactly once.
// It runs under `make soak` only: a broker restart stalls every other
// test that uses the broker, which `make test` runs in parallel.
func TestFaultBrokerRestart(t *testing.T) {
	began := time.Now()
	d, _, conn := setup(t, "")
	w := newWorkload("br", "重启市", 6000, uint64(time.Now().UnixNano()))
	s := d.startServe("serve")
	prod := produce(t, d.brokers, d.topic, w.msgs, 90*time.Second)
	const restarts = 2
	for i := range restarts {
		time.Sleep(20 * time.Second)
		kafkatest.Restart(t)
		t.Logf("broker restart %d done", i+1)
	}
	prod.wait(t)
	records := waitIngested(t, d, 5*time.Minute)
	if s.exited() {
		t.Fatalf("serve exited during the broker restarts: %v", s.err)
	}
	checkExact(t, w, conn, s.base, records)
	checkDeadLetters(t, w, d.brokers, d.dlq)
	t.Logf("restarted the broker %d times; %s in all", restarts, time.Since(began).Round(time.Second))
	s.waitReady()
}
