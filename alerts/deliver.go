package alerts

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// DeliveryStore is what the deliverer needs of the outbox.
type DeliveryStore interface {
	// Due returns the oldest pending notifications of each receiver, at
	// most limit of each, oldest first, due at now or not.
	Due(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	UpdateOutbox(ctx context.Context, it OutboxItem) error
}

// DeliveryConfig tunes retries.
type DeliveryConfig struct {
	// RetryMin and RetryMax bound the exponential back-off between
	// attempts (with jitter). Defaults 1s and 2m.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// GiveUpAfter stops retrying a notification this long after it was
	// created; it is then marked failed. Default 24h.
	GiveUpAfter time.Duration `yaml:"give_up_after"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultDeliveryConfig returns the defaults of DeliveryConfig.
func DefaultDeliveryConfig() DeliveryConfig {
	return DeliveryConfig{RetryMin: time.Second, RetryMax: 2 * time.Minute, GiveUpAfter: 24 * time.Hour, Timeout: 10 * time.Second}
}

// WithDefaults returns a copy of c with zero-valued fields set to their
// defaults; a RetryMax below RetryMin becomes the larger of its default
// and RetryMin.
func (c DeliveryConfig) WithDefaults() DeliveryConfig {
	d := DefaultDeliveryConfig()
	if c.RetryMin <= 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(d.RetryMax, c.RetryMin)
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = d.GiveUpAfter
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	return c
}

// Deliverer sends the outbox's due notifications to their receivers. Each
// receiver's notifications go out in order, one at a time; a receiver that
// is down delays only its own. Delivery is at least once: a crash between a
// receiver's acceptance and the outbox update resends the notification
// with the same id, which receivers use to drop the repeat.
//
// Several instances never send one notification twice: before sending,
// the deliverer claims the notification (state sending, until the attempt
// timeout has passed) and then checks, through Fence, that its
// leadership term is still the newest. A new leader opens its term before
// it reads the outbox and leaves claimed notifications alone until their
// claim expires, so of two members that both believe they lead, only one
// sends; a claim expires only when its deliverer died mid-attempt, and the
// notification is then sent again (at least once). A notification the
// leader's store writes already claimed (Store.ClaimEnqueued) is sent
// without a claim write (Store.DeliverWith): that write was its claim,
// and Fence is still asked after it.
type Deliverer struct {
	cfg       DeliveryConfig
	store     DeliveryStore
	notifiers map[string]Notifier
	logger    *slog.Logger
	// OnDelivered, if set, is told of every delivered notification.
	OnDelivered func(n *Notification, at time.Time)
	// Fence, if set, is asked after a notification is claimed and before
	// it is sent; an error (ErrFenced: another member leads) stops the
	// attempt. Nil: this deliverer is the only one.
	Fence func(ctx context.Context) error
	// Metrics, if set, count attempts and their outcomes.
	Metrics *DeliveryMetrics

	// What the last outbox read (Once) and the deliveries since tell of
	// the outbox, for handed: the receivers with nothing undelivered
	// (clear; nil when unknown) and the notifications that read found.
	clear map[string]bool
	seen  map[string]bool

	// queued holds the notifications written since Run last looked
	// (Enqueued); kick wakes it. own holds the claims written with them
	// (Store.ClaimEnqueued), by notification id: when each expires. Until
	// then no other member can have claimed the notification (a new
	// leader leaves it alone), so it is this deliverer's to send, without
	// claiming it again while the claim still covers an attempt; after
	// that it is any notification of the outbox, however it was claimed
	// meanwhile.
	queuedMu sync.Mutex
	queued   []OutboxItem
	own      map[string]time.Time
	kick     chan struct{}
}

// claimMargin is added to the attempt timeout for a claim's lifetime:
// the store write of the outcome after a slow attempt.
const claimMargin = 5 * time.Second

// NewDeliverer returns a deliverer for the named notifiers, with cfg's
// defaults applied.
func NewDeliverer(cfg DeliveryConfig, store DeliveryStore, notifiers map[string]Notifier, logger *slog.Logger) *Deliverer {
	return &Deliverer{cfg: cfg.WithDefaults(), store: store, notifiers: notifiers, logger: logger.With("component", "delivery"),
		kick: make(chan struct{}, 1)}
}

// enqueueClaim is how long the store claims each notification it writes
// for this deliverer (Store.DeliverWith): an attempt's timeout and two
// margins, so that a notification handed over at once is still claimed
// for a whole attempt when it is sent.
func (d *Deliverer) enqueueClaim() time.Duration { return d.cfg.Timeout + 2*claimMargin }

// Enqueued tells Run of a notification just written to the outbox
// (Store.OnEnqueue) and wakes it.
func (d *Deliverer) Enqueued(it OutboxItem) {
	d.queuedMu.Lock()
	d.queued = append(d.queued, it)
	if it.State == "sending" {
		if d.own == nil {
			d.own = map[string]time.Time{}
		}
		now := time.Now()
		for id, exp := range d.own {
			if !now.Before(exp) {
				delete(d.own, id) // never sent here: a fenced-off term's
			}
		}
		d.own[it.Notification.ID] = it.NextAttempt
	}
	d.queuedMu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. It reads the outbox at once (for what an
// earlier leader left), when a retry or an expiring claim falls due
// (Once) and every poll; a notification told of by Enqueued goes out as
// soon as it comes, without a read of the outbox when the deliverer knows
// its receiver has nothing older waiting (handed). Whatever was told of
// before Run starts is in its first read.
func (d *Deliverer) Run(ctx context.Context, poll time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	read := true
	for {
		// An iteration that reads the outbox drops what it was told of:
		// each was written before it was told, so the read finds it.
		its := d.takeQueued()
		if read || !d.handed(ctx, time.Now(), its) {
			wait := poll
			if next := d.Once(ctx, time.Now()); !next.IsZero() {
				wait = min(wait, max(time.Until(next), 50*time.Millisecond))
			}
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read = true
		case <-d.kick:
			read = false
		}
	}
}

// ownClaimLeft returns how long after at the claim written with
// notification id (Enqueued) still holds: zero or less when this
// deliverer holds none, or it has expired.
func (d *Deliverer) ownClaimLeft(id string, at time.Time) time.Duration {
	d.queuedMu.Lock()
	defer d.queuedMu.Unlock()
	exp, ok := d.own[id]
	if !ok {
		return 0
	}
	return exp.Sub(at)
}

func (d *Deliverer) dropClaim(id string) {
	d.queuedMu.Lock()
	delete(d.own, id)
	d.queuedMu.Unlock()
}

func (d *Deliverer) takeQueued() []OutboxItem {
	d.queuedMu.Lock()
	defer d.queuedMu.Unlock()
	its := d.queued
	d.queued = nil
	return its
}

// Once delivers every notification due at now, in order per receiver: a
// notification waiting for its next attempt holds back the later ones of
// its receiver, so a receiver that was down never hears an alert resolve
// before it hears it fire. It returns when the outbox next has something
// due (a next attempt, a claim that expires, a failed attempt's retry, a
// read of the outbox that failed), or the zero time when nothing is
// pending: new notifications are announced by Enqueued.
func (d *Deliverer) Once(ctx context.Context, now time.Time) (next time.Time) {
	d.clear, d.seen = nil, nil
	items, err := d.store.Due(ctx, now, dueLimit)
	if err != nil {
		if ctx.Err() == nil {
			d.logger.Warn("cannot read the outbox", "err", err)
		}
		return now.Add(d.cfg.RetryMin)
	}
	seen := make(map[string]bool, len(items))
	empty := make(map[string]bool, len(d.notifiers))
	for recv := range d.notifiers {
		empty[recv] = true // nothing found for it
	}
	count := map[string]int{}
	for _, it := range items {
		seen[it.Notification.ID] = true
		count[it.Notification.Receiver]++
	}
	next, accepted := d.send(ctx, now, items)
	for recv, n := range count {
		// A receiver with a full read's worth may have more waiting.
		empty[recv] = accepted[recv] && n < dueLimit
	}
	d.clear, d.seen = empty, seen
	return next
}

// dueLimit is the most notifications of one receiver an outbox read
// returns.
const dueLimit = 200

// handed delivers notifications this process has just written to the
// outbox (Enqueued) without reading the outbox again, when the
// last read and the deliveries since say their receivers have nothing
// older undelivered: they go out in the order a read would return them.
// It reports false, having sent nothing, when it cannot tell (no read
// yet, a receiver with notifications waiting for a retry, an attempt that
// failed since): Once must run, and delivers them. It also reports false
// when one of them was not accepted, so that Once says when to try again.
// A notification the last read already found is not sent again. Once and
// handed are called from one goroutine.
func (d *Deliverer) handed(ctx context.Context, now time.Time, items []OutboxItem) bool {
	if d.clear == nil {
		return false
	}
	var todo []OutboxItem
	for _, it := range items {
		if d.seen[it.Notification.ID] {
			continue
		}
		if !d.clear[it.Notification.Receiver] {
			return false
		}
		todo = append(todo, it)
	}
	slices.SortStableFunc(todo, func(a, b OutboxItem) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Notification.ID, b.Notification.ID))
	})
	_, accepted := d.send(ctx, now, todo)
	ok := true
	for _, it := range todo {
		recv := it.Notification.Receiver
		d.clear[recv] = accepted[recv]
		ok = ok && accepted[recv]
	}
	return ok
}

// send delivers items (per receiver in their order). It returns when
// something is next due, as Once does, and the receivers that accepted
// every item of theirs.
func (d *Deliverer) send(ctx context.Context, now time.Time, items []OutboxItem) (next time.Time, accepted map[string]bool) {
	var mu sync.Mutex
	later := func(t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	byReceiver := map[string][]OutboxItem{}
	for _, it := range items {
		byReceiver[it.Notification.Receiver] = append(byReceiver[it.Notification.Receiver], it)
	}
	accepted = map[string]bool{}
	var wg sync.WaitGroup
	for recv, its := range byReceiver {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range its {
				if it.NextAttempt.After(now) && !(it.State == "sending" && d.ownClaimLeft(it.Notification.ID, now) > 0) {
					later(it.NextAttempt)
					return // keep this receiver's order: later ones wait
				}
				if !d.deliver(ctx, recv, it) {
					// Its next attempt is in the store; look again soon.
					later(time.Now().Add(d.cfg.RetryMin))
					return
				}
			}
			mu.Lock()
			accepted[recv] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	return next, accepted
}

// deliver tries one notification and records the outcome; it reports
// whether the receiver accepted it.
func (d *Deliverer) deliver(ctx context.Context, recv string, it OutboxItem) bool {
	n := &it.Notification
	notifier, ok := d.notifiers[recv]
	var retry bool
	var err error
	if !ok {
		err = errors.New("no such receiver configured")
	} else {
		// A claim written with the notification (Store.ClaimEnqueued)
		// serves while it still covers an attempt; else it is claimed
		// again, as one from the outbox is.
		defer d.dropClaim(n.ID)
		if d.ownClaimLeft(n.ID, time.Now()) < d.cfg.Timeout+claimMargin {
			claim := it
			claim.State, claim.NextAttempt = "sending", time.Now().Add(d.cfg.Timeout+claimMargin)
			if cerr := d.store.UpdateOutbox(ctx, claim); cerr != nil {
				if ctx.Err() == nil {
					d.logger.Warn("cannot claim a notification; will retry", "notification", n.ID, "err", cerr)
				}
				return false
			}
		}
		if d.Fence != nil {
			if ferr := d.Fence(ctx); ferr != nil {
				// The claim stays: the new leader sends it when it
				// expires, and this member never does.
				if ctx.Err() == nil {
					d.logger.Warn("not sending: this member no longer leads", "notification", n.ID, "err", ferr)
				}
				return false
			}
		}
		actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		began := time.Now()
		retry, err = notifier.Notify(actx, n)
		cancel()
		d.Metrics.observe(recv, time.Since(began), err)
	}
	if ctx.Err() != nil && err != nil {
		return false // stopping: the claim expires and the item is tried again
	}
	// The outcome is recorded even when stopping: a notification the
	// receiver accepted must not be sent again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimMargin)
	defer cancel()
	now := time.Now()
	it.Attempts++
	switch {
	case err == nil:
		it.State, it.LastError = "sent", ""
		d.Metrics.sent(recv, now.Sub(it.CreatedAt))
		if d.OnDelivered != nil {
			d.OnDelivered(n, now)
		}
	case retry && now.Sub(it.CreatedAt) < d.cfg.GiveUpAfter:
		d.Metrics.retried(recv)
		wait := min(d.cfg.RetryMin<<min(it.Attempts-1, 20), d.cfg.RetryMax)
		wait = wait/2 + rand.N(wait/2+1)
		it.NextAttempt, it.LastError = now.Add(wait), err.Error()
		if it.Attempts == 1 || it.Attempts%10 == 0 {
			d.logger.Warn("delivery failed, will retry", "receiver", recv, "notification", n.ID, "attempts", it.Attempts, "next_in", wait.Round(time.Millisecond), "err", err)
		}
	default:
		d.Metrics.failed(recv)
		it.State, it.LastError = "failed", err.Error()
		d.logger.Error("delivery failed for good", "receiver", recv, "notification", n.ID, "attempts", it.Attempts, "err", err)
	}
	if it.State == "sending" {
		it.State = "pending" // a retry after an expired claim
	}
	if uerr := d.store.UpdateOutbox(ctx, it); uerr != nil {
		d.logger.Warn("cannot record a delivery outcome; it will be retried", "notification", n.ID, "err", uerr)
		return false
	}
	return err == nil
}
