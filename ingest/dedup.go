package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cespare/xxhash/v2"

	"github.com/cockpit-cs/cockpit/schemas"
)

// A repeated event_id counts once (SPEC §4), and the first stored version
// wins whatever the repeat says: another conversation, another occurred_at
// (so another hour, which the events table's key cannot fold), other
// fields. Before a batch is inserted its event_ids are looked up in the
// event_ids table (schemas/migrations/0021), which the events insert
// itself fills through a materialized view. A row whose event_id is
// stored, is being inserted by another partition of this process, or came
// earlier in the same batch is dropped from the batch, counted in
// cockpit_ingest_duplicates_total and sent to the dead-letter topic with
// reason duplicate_event_id, its own source and the first version's.
//
// A replay of a batch after a crash finds its own rows stored with the
// same partition and offset: those are the same records, not repeats, and
// are dropped from the insert without a word. The rest of the batch is
// inserted under a token of its own (the batch's, plus a digest of the
// offsets left): an insert cut off by a kill may have stored its first
// blocks, and the rest under the batch's token would be taken for those
// blocks and dropped by the store.
//
// Partitions are stored in parallel, and so are their look-ups. A batch
// claims the event_ids it lets through until its insert has returned; a
// released claim is kept while any look-up that began before the release
// is still running (that look-up may not have seen the rows). Deciding
// against the look-up, the held claims and those recent releases happens
// under one lock per process, so two partitions of one process never both
// store an event_id. Two processes of the group (each
// owning other partitions) can still race: both may look an event_id up
// before either has stored it, and then both versions are stored. Closing
// that would need one writer per event_id (e.g. partitioning the topic by
// event_id) or a lock shared by the processes; SPEC §4's producers key by
// conversation, so a repeat on another partition is rare, and one owned by
// another process at the same moment rarer still.

// source is where a stored event came from in the events topic.
type source struct {
	partition int32
	offset    int64
}

// claims are the event_ids of this process's batches between their
// look-up and the end of their insert (held), and those released since the
// oldest look-up still running began (recent).
type claims struct {
	mu   sync.Mutex
	held map[string]source
	// seq counts releases; a look-up notes it when it begins, and misses
	// at most the rows of releases numbered above it.
	seq    uint64
	recent map[string]released
	// order holds the releases still in recent, oldest first.
	order []releasedBatch
	// running counts the look-ups in flight by the seq they began at.
	running map[uint64]int
}

type released struct {
	src source
	seq uint64
}

type releasedBatch struct {
	seq uint64
	ids []string
}

func newClaims() *claims {
	return &claims{held: map[string]source{}, recent: map[string]released{}, running: map[uint64]int{}}
}

// begin registers a look-up about to run and returns its start.
func (c *claims) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running[c.seq]++
	return c.seq
}

// end unregisters a look-up (c.mu held) and forgets the releases every
// running look-up began after.
func (c *claims) end(start uint64) {
	if c.running[start]--; c.running[start] <= 0 {
		delete(c.running, start)
	}
	oldest := c.seq
	for s := range c.running {
		oldest = min(oldest, s)
	}
	n := 0
	for _, b := range c.order {
		if b.seq > oldest {
			break
		}
		for _, id := range b.ids {
			if r, ok := c.recent[id]; ok && r.seq == b.seq {
				delete(c.recent, id)
			}
		}
		n++
	}
	clear(c.order[:n])
	c.order = c.order[n:]
}

// release ends the claims of one batch. Its insert returned, or gave up
// (the generation ended): then the rows are stored by the replay of the
// next owner of the partition, so they still count as the first version.
func (c *claims) release(ids []string, partition int32) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	for _, id := range ids {
		if s, ok := c.held[id]; ok && s.partition == partition {
			delete(c.held, id)
			c.recent[id] = released{src: s, seq: c.seq}
		}
	}
	if len(c.running) > 0 {
		c.order = append(c.order, releasedBatch{seq: c.seq, ids: ids})
	} else {
		// No look-up is running: every later one sees these rows stored.
		clear(c.recent)
		clear(c.order)
		c.order = c.order[:0]
	}
}

// lookup returns where a version of id is stored or being stored, as a
// look-up that began at start and found stored sees it (c.mu held).
func (c *claims) lookup(id string, start uint64, stored map[string]source) (source, bool) {
	if s, ok := stored[id]; ok {
		return s, true
	}
	if s, ok := c.held[id]; ok {
		return s, true
	}
	if r, ok := c.recent[id]; ok && r.seq > start {
		return r.src, true
	}
	return source{}, false
}

// dedup drops from the batch every row whose event_id is stored, claimed
// by another batch in flight, or earlier in the batch; repeats become dead
// letters in p.dups. It claims the event_ids it keeps and returns them, to
// be released once the insert has returned. On error the batch is left as
// it was.
func (p *partition) dedup(ctx context.Context) ([]string, error) {
	c := p.c
	n := p.rows.len()
	ids := make([]string, 0, n)
	batch := make(map[string]struct{}, n)
	for _, id := range p.rows.eventID {
		if _, ok := batch[id]; !ok {
			batch[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	start := c.claims.begin()
	stored, err := c.store.storedVersions(ctx, ids)
	c.claims.mu.Lock()
	defer c.claims.mu.Unlock()
	defer c.claims.end(start)
	if err != nil {
		return nil, err
	}
	p.resumed = 0
	keep := p.keep[:0]
	seen := make(map[string]source, n)
	var claimed []string
	dropped := 0
	for i, id := range p.rows.eventID {
		here := source{partition: p.id, offset: p.rows.offset[i]}
		first, dup := seen[id]
		if !dup {
			first, dup = c.claims.lookup(id, start, stored)
			if dup && first == here {
				// Stored by an earlier attempt at this batch.
				seen[id] = first
				keep = append(keep, false)
				dropped++
				p.resumed++
				continue
			}
		}
		if dup {
			f := first
			p.dups = append(p.dups, rejected{msg: p.msgs[i], first: &f, err: &schemas.Error{
				Reason: ReasonDuplicateEventID, Field: "event_id",
				Rule: fmt.Sprintf("%q was first stored from partition %d offset %d", id, first.partition, first.offset),
			}})
			keep = append(keep, false)
			dropped++
			continue
		}
		seen[id] = here
		c.claims.held[id] = here
		claimed = append(claimed, id)
		keep = append(keep, true)
	}
	p.keep = keep
	if dropped > 0 {
		p.rows.filter(keep)
		p.msgs = filterSlice(p.msgs, keep)
	}
	return claimed, nil
}

// maxLookupQuery bounds the text of one look-up query, and
// lookupQuerySize is the max_query_size the query asks for: the default
// (256 KiB) would split a batch of 50,000 ids into a dozen queries, and
// each reads most of the key column of event_ids (random ids touch most
// granules), so one query a batch is several times cheaper than many.
const (
	maxLookupQuery   = 8 << 20
	lookupQuerySize  = maxLookupQuery + 64<<10
	lookupSeparator  = "\x00"
	lookupSplitQuery = "splitByChar('\\x00', "
)

// storedVersions returns, for each of ids that is stored, where its first
// stored version came from. It asks one query per maxLookupQuery of ids
// (one for any batch of ordinary ids). The ids go in as one string
// literal, split by the engine at a zero byte: the engine parses one long
// literal several times faster than as many short ones (5,000 ids: 9 ms
// against 17-21 ms). A query whose ids contain a zero byte lists them as
// an array of literals instead. The set built from either still selects
// granules by the table's key.
func (s store) storedVersions(ctx context.Context, ids []string) (map[string]source, error) {
	out := make(map[string]source)
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_query_size": lookupQuerySize}))
	var b strings.Builder
	for len(ids) > 0 {
		n, size := 0, 0
		for n < len(ids) && (n == 0 || size+4*len(ids[n])+8 < maxLookupQuery) {
			size += 4*len(ids[n]) + 8
			n++
		}
		chunk := ids[:n]
		ids = ids[n:]
		b.Reset()
		b.WriteString(`SELECT event_id,
			argMin(source_partition, (ingested_at, source_partition, source_offset)),
			argMin(source_offset, (ingested_at, source_partition, source_offset))
		FROM event_ids WHERE event_id IN (SELECT arrayJoin(`)
		writeLookupIDs(&b, chunk)
		b.WriteString(")) GROUP BY event_id")
		rows, err := s.conn.Query(ctx, b.String())
		if err != nil {
			return nil, fmt.Errorf("cannot look up stored event_ids: %w", err)
		}
		for rows.Next() {
			var id string
			var src source
			if err := rows.Scan(&id, &src.partition, &src.offset); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot look up stored event_ids: %w", err)
			}
			out[id] = src
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cannot look up stored event_ids: %w", err)
		}
	}
	return out, nil
}

// writeLookupIDs writes ids as an Array(String) expression: one literal
// split at zero bytes, or, when an id holds one, an array of literals.
func writeLookupIDs(b *strings.Builder, ids []string) {
	for _, id := range ids {
		if strings.Contains(id, lookupSeparator) {
			b.WriteByte('[')
			for i, id := range ids {
				if i > 0 {
					b.WriteByte(',')
				}
				schemas.WriteQuoted(b, id)
			}
			b.WriteByte(']')
			return
		}
	}
	b.WriteString(lookupSplitQuery)
	schemas.WriteQuoted(b, strings.Join(ids, lookupSeparator))
	b.WriteByte(')')
}

// duplicatesSummary is a short log value naming the first repeats of a
// batch with their sources.
func duplicatesSummary(dups []rejected) string {
	var b strings.Builder
	for i, d := range dups {
		if i == 3 {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d.msg.Partition) + "/" + strconv.FormatInt(d.msg.Offset, 10))
		if d.first != nil {
			b.WriteString(" repeats " + strconv.Itoa(int(d.first.partition)) + "/" + strconv.FormatInt(d.first.offset, 10))
		}
	}
	return b.String()
}

// restDigest names the rows a resumed replay still inserts by their
// offsets, for its deduplication token.
func restDigest(offsets []int64) string {
	d := xxhash.New()
	var b [8]byte
	for _, o := range offsets {
		binary.LittleEndian.PutUint64(b[:], uint64(o))
		_, _ = d.Write(b[:])
	}
	return strconv.FormatUint(d.Sum64(), 16)
}
