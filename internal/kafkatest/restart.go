package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

const (
	// restartWait bounds how long Restart waits for other tests to release
	// the broker.
	restartWait = 5 * time.Minute
	// restartTimeout bounds scripts/kafka.sh restart itself.
	restartTimeout = 3 * time.Minute
)

// Restart stops the broker named by COCKPIT_TEST_KAFKA and starts it again
// with its data (scripts/kafka.sh restart), for tests of how clients ride
// out a broker restart. Like Broker, it skips or fails when no broker is
// configured. It returns once every partition of every topic has a leader
// again: a broker that answers metadata requests may still be loading its
// logs, and produce requests fail with "no leader" until it has.
//
// Only tests that serialize themselves against every other user of the
// broker may call it, because other tests would see the outage. Restart
// enforces that across packages and processes: every test that called
// Broker holds a shared lock on the broker until it ends, and Restart takes
// it exclusively, waiting up to five minutes for the others to finish. So a
// restart test must not run in parallel with, or wait on, another test of
// its own package that uses the broker (call t.Parallel nowhere near it),
// or it fails after that wait; nor may its parent test hold a claim (call
// Restart from a top-level test). Run restart tests in their own
// `go test -p 1 -run` invocation to avoid waiting at all.
func Restart(t testing.TB) {
	t.Helper()
	addr := Broker(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil || strings.Contains(addr, ",") {
		t.Fatalf("kafkatest: Restart needs the single loopback broker that scripts/kafka.sh runs, %s=%q", EnvBroker, addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("kafkatest: Restart needs a loopback broker started by scripts/kafka.sh, got %s", addr)
	}
	script, err := findScript()
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}

	release, err := claimExclusive(t, restartWait)
	if err != nil {
		t.Fatalf("kafkatest: restart broker %s: %v", addr, err)
	}
	defer release()

	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "restart")
	// The script starts a daemon; should it ever keep the output pipe
	// open, give up on the pipe rather than hang.
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = os.Environ()
	if os.Getenv("KAFKA_PORT") == "" {
		cmd.Env = append(cmd.Env, "KAFKA_PORT="+port)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kafkatest: bash %s restart: %v\n%s", script, err, out)
	}
	if err := waitAllLeaders(ctx, addr); err != nil {
		t.Fatalf("kafkatest: broker %s restarted but %v", addr, err)
	}
	t.Logf("kafkatest: broker %s restarted in %s", addr, time.Since(start).Round(time.Millisecond))
}

// waitAllLeaders polls the broker's metadata until every partition of every
// topic has a leader.
func waitAllLeaders(ctx context.Context, brokers string) error {
	client := &kafka.Client{Addr: kafka.TCP(splitBrokers(brokers)...)}
	var last error
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		last = err
		if err == nil {
		topics:
			for _, tp := range md.Topics {
				if tp.Error != nil {
					last = fmt.Errorf("topic %s: %w", tp.Name, tp.Error)
					break
				}
				for _, p := range tp.Partitions {
					if p.Error != nil || p.Leader.Host == "" {
						last = fmt.Errorf("topic %s partition %d has no leader yet", tp.Name, p.ID)
						break topics
					}
				}
			}
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("partitions without a leader: %w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findScript locates scripts/kafka.sh in the module root above the working
// directory, which `go test` sets to the package's directory.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find scripts/kafka.sh: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			script := filepath.Join(dir, "scripts", "kafka.sh")
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("module root %s has no scripts/kafka.sh: %w", dir, err)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find scripts/kafka.sh: no go.mod above the working directory")
		}
		dir = parent
	}
}

// claims maps each test holding a shared claim to its lock file.
var (
	claimsMu sync.Mutex
	claims   = map[testing.TB]*os.File{}
)

// lockPath is shared by every test process that uses the broker at addr.
func lockPath(addr string) string {
	safe := strings.Map(func(r rune) rune {
		if r == ':' || r == '/' || r == ',' {
			return '_'
		}
		return r
	}, addr)
	return filepath.Join(os.TempDir(), "cockpit-kafkatest-"+safe+".lock")
}

// claimShared takes a shared lock on addr's lock file for the rest of the
// test, blocking while a Restart holds it exclusively. A test process that
// holds no claim yet also waits while a Restart is pending (see
// waitForRestarts), so that tests which claim the broker one after another
// cannot keep a Restart waiting for ever.
func claimShared(t testing.TB, addr string) {
	t.Helper()
	claimsMu.Lock()
	_, held := claims[t]
	others := len(claims)
	claimsMu.Unlock()
	if held {
		return
	}
	if others == 0 {
		// With a claim of its own process outstanding (a parent test, a
		// parallel sibling) the test must not wait: the Restart may be
		// waiting for that very claim.
		if err := waitForRestarts(addr); err != nil {
			t.Fatalf("kafkatest: %v", err)
		}
	}
	f, err := os.OpenFile(lockPath(addr), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("kafkatest: open broker lock: %v", err)
	}
	if err := lockShared(f); err != nil {
		f.Close()
		t.Fatalf("kafkatest: lock broker %s: %v", addr, err)
	}
	claimsMu.Lock()
	claims[t] = f
	claimsMu.Unlock()
	t.Cleanup(func() {
		claimsMu.Lock()
		delete(claims, t)
		claimsMu.Unlock()
		unlock(f)
		f.Close()
	})
}

// gatePath is locked exclusively by a Restart that waits for the broker,
// and briefly shared by a process that takes its first claim: a pending
// restart goes before new claims, as a writer before readers.
func gatePath(addr string) string { return lockPath(addr) + ".gate" }

// waitForRestarts returns once no Restart of the broker at addr is pending.
func waitForRestarts(addr string) error {
	g, err := os.OpenFile(gatePath(addr), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("open broker gate: %w", err)
	}
	defer g.Close()
	if err := lockShared(g); err != nil {
		return fmt.Errorf("wait at broker gate: %w", err)
	}
	unlock(g)
	return nil
}

// claimExclusive turns t's shared claim into an exclusive one, polling until
// wait has passed; release turns it back into a shared claim. While it
// waits it holds the gate (when no other Restart does), so that processes
// taking their first claim wait for it instead of overtaking it.
func claimExclusive(t testing.TB, wait time.Duration) (release func(), err error) {
	claimsMu.Lock()
	f := claims[t]
	claimsMu.Unlock()
	if f == nil {
		return nil, errors.New("test holds no claim on the broker (call Broker first)")
	}
	gate, err := os.OpenFile(f.Name()+".gate", os.O_RDWR|os.O_CREATE, 0o666) // gatePath
	if err != nil {
		return nil, fmt.Errorf("open broker gate: %w", err)
	}
	haveGate := false
	closeGate := func() {
		if haveGate {
			unlock(gate)
		}
		gate.Close()
	}
	deadline := time.Now().Add(wait)
	for {
		if !haveGate {
			// Never block on the gate: another Restart holding it may be
			// waiting for this test's own claim.
			if haveGate, err = tryLockExclusive(gate); err != nil {
				closeGate()
				return nil, fmt.Errorf("lock %s: %w", gate.Name(), err)
			}
		}
		ok, err := tryLockExclusive(f)
		if err != nil {
			closeGate()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if ok {
			return func() {
				if err := lockShared(f); err != nil {
					t.Errorf("kafkatest: re-take shared broker lock: %v", err)
				}
				closeGate()
			}, nil
		}
		if time.Now().After(deadline) {
			closeGate()
			return nil, fmt.Errorf("other tests still use the broker after %s; restart tests must not run "+
				"alongside tests of their own package that use Kafka (lock file %s)", wait, f.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
