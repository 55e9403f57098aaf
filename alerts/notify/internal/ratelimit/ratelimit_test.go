package ratelimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBurstThenRate(t *testing.T) {
	b := New(60, 3) // one a second after a burst of 3
	now := time.Now()
	b.now = func() time.Time { return now }
	bg := context.Background()
	for i := range 3 {
		if err := b.Wait(bg); err != nil {
			t.Fatalf("burst %d: %v", i, err)
		}
	}
	// The next token is 1s away, beyond this deadline: fail at once.
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 40*time.Millisecond {
		t.Fatalf("4th = %v after %s, want deadline error at once", err, time.Since(start))
	}
	now = now.Add(time.Second)
	if err := b.Wait(bg); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	now = now.Add(time.Hour) // refill caps at burst
	for i := range 3 {
		if err := b.Wait(bg); err != nil {
			t.Fatalf("refilled burst %d: %v", i, err)
		}
	}
	ctx2, cancel2 := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel2()
	if err := b.Wait(ctx2); err == nil {
		t.Fatal("bucket exceeded its burst")
	}
}

func TestConcurrentWaitersAreSpaced(t *testing.T) {
	b := New(1200, 1) // one every 50ms
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Wait(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 waiters at 20/s done in %s, want ≥ 200ms", d)
	}
}

func TestCancelGivesTokenBack(t *testing.T) {
	b := New(60, 1)
	_ = b.Wait(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < -0.01 {
		t.Errorf("reservation not returned: tokens %v", b.tokens)
	}
}
