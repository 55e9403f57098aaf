package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/procstat"
)

// BenchmarkFreshness's load generator runs in a process of its own, the
// test binary again: TestMain turns it into the generator when
// envFreshLoad holds the broker addresses and the topic ("brokers
// topic"). Its CPU is then its own, not the product's.
const envFreshLoad = "COCKPIT_FRESH_LOAD"

// runFreshLoad is the generator's process: freshLoad until SIGINT or
// SIGTERM, or until its stdin closes (the benchmark that started it has
// ended), with the number of events the broker took printed to stdout
// every 100 ms and at the end ("sent N"). It returns the exit code.
func runFreshLoad(spec string) int {
	brokers, topic, ok := strings.Cut(spec, " ")
	if !ok || brokers == "" || topic == "" {
		fmt.Fprintf(os.Stderr, "%s=%q: want \"brokers topic\"\n", envFreshLoad, spec)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() { done <- freshLoad(ctx, brokers, topic, &sent) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			fmt.Printf("sent %d\n", sent.Load())
			if err != nil {
				fmt.Fprintln(os.Stderr, "load generator:", err)
				return 1
			}
			return 0
		case <-tick.C:
			fmt.Printf("sent %d\n", sent.Load())
		}
	}
}

// loadProc is a running generator process and the count it last
// reported.
type loadProc struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr bytes.Buffer
	sent   atomic.Int64
	done   chan error
}

// startFreshLoad starts a generator producing to topic on brokers; it is
// stopped when b ends if not before.
func startFreshLoad(b *testing.B, brokers, topic string) *loadProc {
	b.Helper()
	p := &loadProc{done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	p.cmd.Env = append(os.Environ(), envFreshLoad+"="+brokers+" "+topic)
	p.cmd.Stderr = &p.stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("cannot start the load generator: %v", err)
	}
	p.stdin = stdin
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "sent "); ok {
				if v, err := strconv.ParseInt(n, 10, 64); err == nil {
					p.sent.Store(v)
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	b.Cleanup(func() { _ = p.stop() })
	return p
}

// stop interrupts the generator and waits for it; it reports how the
// generator failed if it did, before or on stopping.
func (p *loadProc) stop() error {
	if p.done == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	err := <-p.done
	p.done = nil
	_ = p.stdin.Close()
	if err != nil {
		return fmt.Errorf("load generator: %v: %s", err, strings.TrimSpace(p.stderr.String()))
	}
	return nil
}

// cpuSample is the CPU time used so far by this process, by the load
// generator, and by the local Kafka brokers (brokers lists their pids, ""
// when none runs here).
type cpuSample struct {
	self, load, broker time.Duration
	brokers            string
}

// spanCPU samples the CPU time of this process, of the generator's
// process (pid) and of the local brokers' processes.
func spanCPU(pid int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.self, err = procstat.CPU(os.Getpid()); err != nil {
		return s, err
	}
	if s.load, err = procstat.CPU(pid); err != nil {
		return s, err
	}
	pids := brokerPIDs()
	for _, b := range pids {
		t, err := procstat.CPU(b)
		if err != nil {
			return s, err
		}
		s.broker += t
	}
	if len(pids) > 0 {
		s.brokers = fmt.Sprint(pids)
	}
	return s, nil
}

// brokerPIDs are the processes of this machine running a Kafka broker
// (a JVM whose main class is kafka.Kafka), in /proc's order.
func brokerPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmd, []byte{0}) {
			if string(arg) == "kafka.Kafka" {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
