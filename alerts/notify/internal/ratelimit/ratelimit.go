// Package ratelimit is a token bucket that makes a caller wait, within its
// context, instead of exceeding a robot's message quota.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Bucket holds up to burst tokens and gains rate tokens per second.
type Bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// New returns a full bucket that allows perMinute events a minute with
// bursts of up to burst events. perMinute and burst must be positive.
func New(perMinute, burst int) *Bucket {
	if perMinute < 1 {
		perMinute = 1
	}
	if burst < 1 {
		burst = 1
	}
	return &Bucket{
		rate:   float64(perMinute) / 60,
		burst:  float64(burst),
		tokens: float64(burst),
		now:    time.Now,
	}
}

// Wait takes one token, sleeping until one is available. It returns an
// error without taking a token when ctx ends first, or at once when ctx's
// deadline is sooner than the token would be ready.
func (b *Bucket) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	now := b.now()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.mu.Unlock()
		return nil
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	if d, ok := ctx.Deadline(); ok && d.Before(now.Add(wait)) {
		b.mu.Unlock()
		return fmt.Errorf("rate limit: next slot in %s, after the deadline: %w", wait.Round(time.Millisecond), context.DeadlineExceeded)
	}
	// Reserve the token now so concurrent callers queue behind us.
	b.tokens--
	b.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		b.tokens++ // give the reservation back
		b.mu.Unlock()
		return ctx.Err()
	}
}
