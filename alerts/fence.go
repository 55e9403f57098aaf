package alerts

import "context"

type fenceKey struct{}

// WithFence returns a context under which the leader's writes (alert
// states, their history, queued notifications) call fence before they
// write, and fail with its error: a leader's tick that did not check its
// term at its start (an idle one, most ticks) checks it only if it has
// something to write. fence is called before each such write; it is the
// caller's to make a second call cheap. Writes any instance makes (acks,
// silences) do not call it.
//
// A sync under such a context (Manager.Observe) takes the silences and
// acks as the last term check and sync left them: the tick before or
// the next one reads them, so what another instance stored is in force
// within two ticks.
func WithFence(ctx context.Context, fence func(context.Context) error) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence)
}

// fenced calls the fence of ctx, if any (WithFence).
func fenced(ctx context.Context) error {
	if f, ok := ctx.Value(fenceKey{}).(func(context.Context) error); ok {
		return f(ctx)
	}
	return nil
}

// fenceChecked returns ctx for writes whose term check ctx's fence has
// just made: they do not call it again, so they may run side by side.
func fenceChecked(ctx context.Context) context.Context {
	return context.WithValue(ctx, fenceKey{}, nil)
}

// deferred reports whether ctx checks the term only before a write.
func deferred(ctx context.Context) bool {
	_, ok := ctx.Value(fenceKey{}).(func(context.Context) error)
	return ok
}
