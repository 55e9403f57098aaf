package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/schemas"
)

// partition is the worker that owns one assigned partition for the life of
// a generation. It is single-goroutine: nothing in it is shared.
type partition struct {
	c     *Consumer
	gen   *kafka.Generation
	id    int32
	attrs []any
	conn  *kafka.Conn
	next  int64 // next offset to read

	// The batch being built: records [first, last] of this partition.
	// msgs are the records of rows, row for row, for the dead letters of
	// repeated event_ids; dups are those repeats (found when the batch is
	// stored) and keep the look-up's scratch.
	rows    rows
	msgs    []kafka.Message
	rejects []rejected
	dups    []rejected
	keep    []bool
	// resumed counts the rows the look-up found stored by an earlier
	// attempt at this batch (a replay that resumes a cut-off insert).
	resumed int
	first   int64
	last    int64
	bytes   int
	started time.Time
	// flushed is when the previous flush began (small batches wait for
	// smallBatchGap after it).
	flushed time.Time
	digest  *xxhash.Digest
	// forced is the unfinished batch found in the intent log at start: the
	// first batch must cover exactly its range, so that it gets the same
	// deduplication token as the attempt that was interrupted.
	forced *intent
}

func (c *Consumer) runPartition(gctx context.Context, gen *kafka.Generation, pa kafka.PartitionAssignment) {
	p := &partition{
		c: c, gen: gen, id: int32(pa.ID), digest: xxhash.New(),
		attrs: []any{"partition", pa.ID},
	}
	defer p.closeConn()
	if pa.ID == 0 {
		c.leaderGen.Store(int64(gen.ID))
		c.leader.Store(true)
		defer c.leader.Store(false)
	}
	// Storing a batch is not abandoned the moment the generation ends: a
	// flush under way, and the final one, get ShutdownTimeout to finish
	// (the intent log covers whatever does not).
	fctx, cancel := context.WithCancel(context.WithoutCancel(gctx))
	defer cancel()
	stopTimer := context.AfterFunc(gctx, func() { time.AfterFunc(c.cfg.ShutdownTimeout, cancel) })
	defer stopTimer()
	lag := c.m.lag.WithLabelValues(strconv.Itoa(pa.ID))
	defer c.progress.start(p.id, time.Now())()
	if err := p.start(gctx, pa.Offset); err != nil {
		return
	}
	for gctx.Err() == nil {
		before := p.next
		hwm, err := p.fetch(gctx, fctx)
		if err != nil {
			if gctx.Err() != nil {
				break
			}
			p.closeConn()
			c.logger.Warn("fetch failed, reconnecting", append(p.attrs, "offset", p.next, "err", err)...)
			select {
			case <-gctx.Done():
			case <-time.After(c.cfg.RetryMin):
			}
			continue
		}
		left := int64(-1) // nothing to read
		if hwm >= 0 {
			left = max(hwm-p.next, 0)
			lag.Set(float64(left))
		}
		read := p.next - before
		if before < 0 { // the first fetch resolved where to start
			read = 0
		}
		c.progress.fetched(p.id, read, left, time.Now())
		if p.due() {
			if err := p.flush(fctx); err != nil {
				return // the generation ended: the next owner replays the intent
			}
		}
	}
	// Stopping: store and commit what was read, within the shutdown budget.
	if err := p.flush(fctx); err != nil {
		c.logger.Warn("final flush incomplete; the intent log will replay it", append(p.attrs, "err", err)...)
	}
}

// start finds where to read from: the committed offset, or the start of the
// last recorded batch if that batch was not committed.
func (p *partition) start(ctx context.Context, committed int64) error {
	c := p.c
	var in intent
	var found bool
	err := c.retry(ctx, "read_intent", p.attrs, func(ctx context.Context) error {
		var err error
		in, found, err = c.store.lastIntent(ctx, c.cfg.Topic, p.id)
		return err
	})
	if err != nil {
		return err
	}
	// A negative committed offset (no commit yet) is kafka.FirstOffset or
	// LastOffset, resolved when the partition is connected.
	p.next = committed
	if found && (committed < 0 || in.Last >= committed) {
		p.forced = &in
		p.next = in.First
		c.m.replays.Inc()
		c.logger.Info("replaying an uncommitted batch", append(p.attrs, "first_offset", in.First, "last_offset", in.Last, "committed", committed)...)
	}
	return nil
}

// idleFetchWait is the longest a fetch waits for records when the
// partition holds none; a generation that ends is noticed within it.
const idleFetchWait = time.Second

func (p *partition) closeConn() {
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}

func (p *partition) connect(ctx context.Context) error {
	c := p.c
	var lastErr error
	for _, broker := range c.cfg.Brokers {
		conn, err := c.dialer.DialLeader(ctx, "tcp", broker, c.cfg.Topic, int(p.id))
		if err != nil {
			lastErr = err
			continue
		}
		if err := p.seek(conn); err != nil {
			_ = conn.Close()
			return err
		}
		p.conn = conn
		return nil
	}
	return fmt.Errorf("cannot reach the leader of %s/%d: %w", c.cfg.Topic, p.id, lastErr)
}

// seek positions conn at p.next, resolving a symbolic start and an offset
// that the broker no longer (or not yet) has.
func (p *partition) seek(conn *kafka.Conn) error {
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return fmt.Errorf("cannot read the offsets of %s/%d: %w", p.c.cfg.Topic, p.id, err)
	}
	switch {
	case p.next == kafka.LastOffset:
		p.next = last
	case p.next < 0:
		p.next = first
	case p.next < first:
		p.c.logger.Error("records were deleted by retention before they were ingested", append(p.attrs, "wanted", p.next, "first_available", first)...)
		p.next = first
		p.forced = nil
	case p.next > last:
		// The topic was recreated or truncated: what is there now is new.
		p.c.logger.Error("committed offset is beyond the end of the partition; reading from its start", append(p.attrs, "committed", p.next, "first", first, "last", last)...)
		p.next = first
		p.forced = nil
	}
	if _, err := conn.Seek(p.next, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("cannot seek %s/%d to %d: %w", p.c.cfg.Topic, p.id, p.next, err)
	}
	return nil
}

// fetch reads one fetch response worth of records into the batch and
// returns the partition's high watermark (-1 if unknown). A forced batch
// completed by the fetch is flushed with flushCtx.
func (p *partition) fetch(ctx, flushCtx context.Context) (int64, error) {
	c := p.c
	if p.conn == nil {
		if err := p.connect(ctx); err != nil {
			return -1, err
		}
	}
	// With nothing held, the fetch waits up to idleFetchWait for the
	// first record (the broker answers as soon as one arrives): an idle
	// partition asks once a second, not five times. With a batch under
	// way, it waits no longer than the batch has left.
	wait := idleFetchWait
	if p.count() > 0 {
		wait = min(max(time.Until(p.dueAt()), time.Millisecond), 250*time.Millisecond)
	}
	if err := p.conn.SetReadDeadline(time.Now().Add(wait + 15*time.Second)); err != nil {
		return -1, err
	}
	b := p.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: c.cfg.FetchMaxBytes, MaxWait: wait})
	for {
		msg, err := b.ReadMessage()
		if err != nil {
			break
		}
		if err := p.add(flushCtx, msg); err != nil {
			_ = b.Close()
			return -1, err
		}
		// A fetch may bring more than a batch holds: cut as soon as due.
		if p.due() {
			if err := p.flush(flushCtx); err != nil {
				_ = b.Close()
				return -1, err
			}
			// The deadline was set for reading, not for storing: a slow
			// insert must not make the rest of this response time out
			// (which would drop the connection and fetch it all again).
			if err := p.conn.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
				_ = b.Close()
				return -1, err
			}
		}
	}
	hwm := b.HighWaterMark()
	if err := b.Close(); err != nil {
		// Some brokers (the embedded one among them) answer a fetch that
		// found nothing within MaxWait with this code instead of an empty
		// batch: nothing to read is not a failure.
		if errors.Is(err, kafka.RequestTimedOut) {
			return -1, nil
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			p.closeConn() // reconnecting re-resolves the offset
		}
		return -1, err
	}
	return hwm, nil
}

func (p *partition) count() int { return p.rows.len() + len(p.rejects) + len(p.dups) }

// add decodes one record into the batch. A forced batch is flushed as soon
// as its range is complete.
func (p *partition) add(ctx context.Context, msg kafka.Message) error {
	c := p.c
	if msg.Offset < p.next {
		return nil // a fetch may start before the requested offset
	}
	if p.forced != nil && msg.Offset > p.forced.Last {
		// Records of the forced range are gone (retention): close it with
		// what exists.
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	if p.count() == 0 {
		p.first = msg.Offset
		p.started = time.Now()
		p.bytes = 0
		p.digest.Reset()
	}
	p.last = msg.Offset
	p.next = msg.Offset + 1
	p.bytes += len(msg.Value)
	_, _ = p.digest.Write(msg.Value)
	c.m.consumed.Inc()
	c.stats.Consumed.Add(1)
	// Future and age are judged against the record's timestamp and the
	// receiving clock both: a producer's clock alone is not trusted.
	received := time.Now()
	produced := msg.Time
	if produced.IsZero() {
		produced = received
	}
	ev, err := schemas.DecodeAt(msg.Value, produced, received, c.cfg.Limits)
	if err != nil {
		var verr *schemas.Error
		if !errors.As(err, &verr) {
			verr = &schemas.Error{Reason: schemas.ReasonMalformedJSON, Rule: err.Error()}
		}
		p.rejects = append(p.rejects, rejected{msg: msg, err: verr})
	} else {
		p.rows.add(&ev, p.id, msg.Offset)
		p.msgs = append(p.msgs, msg)
	}
	if p.forced != nil && msg.Offset == p.forced.Last {
		return p.flush(ctx)
	}
	return nil
}

// due says whether the batch should be cut now. A forced batch is cut only
// by its range.
func (p *partition) due() bool {
	n := p.count()
	if n == 0 || p.forced != nil {
		return false
	}
	cfg := p.c.cfg
	return n >= cfg.BatchRows || p.bytes >= cfg.BatchBytes || !time.Now().Before(p.dueAt())
}

// Small batches: every insert costs the engine about the same whatever
// its size (a part in events and in each table its views fill, an intent,
// a look-up, and the merges of all those parts later), so a trickle of
// records cut every batch_interval costs far more than its rows. A batch
// of fewer than smallBatchRows rows waits until smallBatchGap after the
// previous flush began: a lone record is stored after batch_interval, a
// steady trickle (the demo's 200 events/s) once a second rather than five
// times, and heavy traffic is cut by batch_interval as before. A second
// is what the wall's tiles promise; each flush wakes the live view and
// the stream (internal/app), so what it stored is on the wall within the
// refresh that follows it.
const (
	smallBatchRows = 1000
	smallBatchGap  = time.Second
)

// dueAt is when the batch under way is to be cut by time.
func (p *partition) dueAt() time.Time {
	at := p.started.Add(p.c.cfg.BatchInterval)
	if p.count() < smallBatchRows {
		if gap := p.flushed.Add(smallBatchGap); gap.After(at) {
			at = gap
		}
	}
	return at
}

// flush stores the batch and commits its offsets: intent, look-up of the
// stored event_ids (dedup.go), rows, dead letters, commit. It returns an
// error only when ctx ended (or the generation did) before the commit; the
// intent log then lets the next owner finish the job.
func (p *partition) flush(ctx context.Context) error {
	if p.count() == 0 {
		return nil
	}
	c := p.c
	begin := time.Now()
	p.flushed = begin
	in := intent{First: p.first, Last: p.last, Rows: uint32(p.rows.len())}
	// The content digest keeps a token from matching a batch of an earlier
	// topic of the same name (a recreated topic starts again at offset 0).
	token := in.token(c.cfg.Topic, p.id) + "/" + strconv.FormatUint(p.digest.Sum64(), 16)
	attrs := append(p.attrs, "first_offset", in.First, "last_offset", in.Last)
	replay := p.forced != nil && p.forced.First == in.First && p.forced.Last == in.Last
	if p.rows.len() > 0 {
		if !replay {
			if err := c.retry(ctx, "write_intent", attrs, func(ctx context.Context) error {
				return c.store.writeIntent(ctx, c.cfg.Topic, p.id, in)
			}); err != nil {
				return err
			}
		}
		var claimed []string
		if err := c.retry(ctx, "dedup", attrs, func(ctx context.Context) error {
			var err error
			claimed, err = p.dedup(ctx)
			return err
		}); err != nil {
			return err
		}
		if p.resumed > 0 {
			token += "/rest-" + restDigest(p.rows.offset)
		}
		err := c.retry(ctx, "insert", attrs, func(ctx context.Context) error {
			if p.rows.len() == 0 {
				return nil // every row was stored already
			}
			return c.store.insert(ctx, &p.rows, token)
		})
		c.claims.release(claimed, p.id)
		if err != nil {
			return err
		}
	}
	if len(p.dups) > 0 {
		if err := c.retry(ctx, "dead_letter", attrs, func(ctx context.Context) error {
			return c.dlq.write(ctx, p.dups)
		}); err != nil {
			return err
		}
		// Debug, as the rejects below: a producer that repeats deliveries
		// would otherwise log a line every batch, for as long as it runs.
		// The progress report carries the counts.
		c.logger.Debug("repeated event_ids sent to the dead-letter topic; the first stored versions stand",
			append(attrs, "count", len(p.dups), "repeats", duplicatesSummary(p.dups))...)
	}
	if len(p.rejects) > 0 {
		if err := c.retry(ctx, "dead_letter", attrs, func(ctx context.Context) error {
			return c.dlq.write(ctx, p.rejects)
		}); err != nil {
			return err
		}
		for _, r := range p.rejects {
			c.m.rejected.WithLabelValues(string(r.err.Reason)).Inc()
		}
		// Debug only: the progress report carries the totals, and a flood
		// of bad records must not flood the log too.
		c.logger.Debug("records sent to the dead-letter topic", append(attrs, "count", len(p.rejects), "first_reason", p.rejects[0].err.Error())...)
	}
	if err := p.commit(ctx, in.Last+1); err != nil {
		return err
	}
	c.m.inserted.Add(float64(p.rows.len()))
	c.m.duplicates.Add(float64(len(p.dups)))
	c.stats.Inserted.Add(int64(p.rows.len()))
	c.stats.Rejected.Add(int64(len(p.rejects)))
	c.stats.Duplicates.Add(int64(len(p.dups)))
	if p.rows.len() > 0 {
		c.stats.noteStored()
	}
	c.m.batchRows.Observe(float64(p.count()))
	c.m.batchSeconds.Observe(time.Since(begin).Seconds())
	p.rows.reset()
	clear(p.msgs)
	p.msgs = p.msgs[:0]
	clear(p.rejects)
	p.rejects = p.rejects[:0]
	clear(p.dups)
	p.dups = p.dups[:0]
	p.forced = nil
	return nil
}

// commit commits offset for the partition through the generation. A
// generation that has ended cannot commit: that is final for this worker.
func (p *partition) commit(ctx context.Context, offset int64) error {
	c := p.c
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = p.gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: {int(p.id): offset}})
		if err == nil {
			return nil
		}
		c.m.retries.WithLabelValues("commit").Inc()
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot commit offset %d: %w", offset, err)
		case <-time.After(c.cfg.RetryMin << attempt):
		}
	}
	return fmt.Errorf("cannot commit offset %d: %w", offset, err)
}
