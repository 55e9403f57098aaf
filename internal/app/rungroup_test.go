package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRunGroup: a member that fails is reported with its name; members
// run until stopped, not until the parent context ends; stop waits for
// the member's goroutine, and gives up at the deadline with a log line.
func TestRunGroup(t *testing.T) {
	var logs bytes.Buffer
	parent, cancelParent := context.WithCancel(context.Background())
	g := newRunGroup(parent, slog.New(slog.NewTextHandler(&logs, nil)))
	boom := errors.New("boom")
	g.start("failing", func(context.Context) error { return boom })
	var stopped []string
	for _, name := range []string{"a", "b"} {
		g.start(name, func(ctx context.Context) error {
			<-ctx.Done()
			stopped = append(stopped, name)
			return nil
		})
	}
	release := make(chan struct{})
	g.add("stuck", func() error { <-release; return nil }, func(context.Context) {})

	select {
	case err := <-g.failed():
		if !errors.Is(err, boom) || err.Error() != "failing: boom" {
			t.Fatalf("failure = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("failure not reported")
	}
	cancelParent()
	time.Sleep(20 * time.Millisecond)
	if len(stopped) != 0 {
		t.Fatalf("members stopped with the parent: %v", stopped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	g.stop(ctx, "b")
	g.stop(ctx, "a")
	g.stop(ctx, "failing")
	if strings.Join(stopped, ",") != "b,a" {
		t.Fatalf("stop order = %v", stopped)
	}
	g.stop(ctx, "stuck")
	if !strings.Contains(logs.String(), "stuck did not stop in time") {
		t.Fatalf("logs: %s", logs.String())
	}
	close(release)
	<-g.members["stuck"].done
}
