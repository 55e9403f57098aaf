package app

import (
	"context"
	"fmt"
	"log/slog"
)

// runGroup is the one owner of the long-running parts of a process. It
// starts each in a goroutine of its own, reports the first that fails,
// and stops them in the order the caller chooses, waiting for each
// goroutine it started until the one shutdown deadline has passed.
// The parts do not stop when the process's context ends: the caller
// decides the order (ingest before the server that reports its health).
type runGroup struct {
	base    context.Context
	logger  *slog.Logger
	errc    chan error
	members map[string]*runMember
}

type runMember struct {
	stop func(ctx context.Context)
	done chan struct{}
}

func newRunGroup(ctx context.Context, logger *slog.Logger) *runGroup {
	return &runGroup{base: context.WithoutCancel(ctx), logger: logger, errc: make(chan error, 8), members: map[string]*runMember{}}
}

// start runs fn until the member is stopped, which cancels its context.
func (g *runGroup) start(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(g.base)
	g.add(name, func() error { return fn(ctx) }, func(context.Context) { cancel() })
}

// add runs fn until stop, given the shutdown deadline, makes it return.
// An error fn returns is reported by failed, as "name: err".
func (g *runGroup) add(name string, fn func() error, stop func(ctx context.Context)) {
	m := &runMember{stop: stop, done: make(chan struct{})}
	g.members[name] = m
	go func() {
		defer close(m.done)
		if err := fn(); err != nil {
			select {
			case g.errc <- fmt.Errorf("%s: %w", name, err):
			default: // the first failures are enough
			}
		}
	}()
}

// failed delivers the errors of members that stopped by themselves.
func (g *runGroup) failed() <-chan error { return g.errc }

// stop stops the member and waits until it has returned or ctx (the
// shutdown deadline) ends.
func (g *runGroup) stop(ctx context.Context, name string) {
	m := g.members[name]
	m.stop(ctx)
	select {
	case <-m.done:
	case <-ctx.Done():
		g.logger.Error(name + " did not stop in time")
	}
}
