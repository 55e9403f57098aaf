package ingest

import (
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/schemas"
)

// eventColumns is the column list of every insert into events, in the
// order rows.appendTo fills them. ingested_at is left to its default.
var eventColumns = []string{
	"event_id", "type", "occurred_at", "conversation_id", "channel", "region",
	"queue", "business_line", "actor_role", "actor_id", "entry", "customer_id",
	"sentiment", "abusive", "text", "reason", "resolution", "category",
	"severity", "score", "schema_version", "source_partition", "source_offset",
}

var insertEvents = "INSERT INTO events (" + strings.Join(eventColumns, ", ") + ")"

// rows buffers a batch column by column: appending whole columns to the
// driver is several times cheaper than appending row by row.
type rows struct {
	eventID, typ, conversationID, channel, region, queue, businessLine []string
	actorRole, actorID, entry, customerID, text, reason, resolution    []string
	category, severity                                                 []string
	occurredAt                                                         []time.Time
	sentiment                                                          []*float32
	abusive                                                            []*bool
	score, version                                                     []uint8
	partition                                                          []int32
	offset                                                             []int64
}

func (r *rows) len() int { return len(r.eventID) }

func (r *rows) add(e *schemas.Event, partition int32, offset int64) {
	r.eventID = append(r.eventID, e.EventID)
	r.typ = append(r.typ, string(e.Type))
	r.occurredAt = append(r.occurredAt, e.OccurredAt)
	r.conversationID = append(r.conversationID, e.ConversationID)
	r.channel = append(r.channel, e.Channel)
	r.region = append(r.region, e.Region)
	r.queue = append(r.queue, e.Queue)
	r.businessLine = append(r.businessLine, e.BusinessLine)
	r.actorRole = append(r.actorRole, e.ActorRole())
	r.actorID = append(r.actorID, e.ActorID())
	r.entry = append(r.entry, e.Entry)
	r.customerID = append(r.customerID, e.CustomerID)
	var s *float32
	if e.Sentiment != nil {
		v := float32(*e.Sentiment)
		s = &v
	}
	r.sentiment = append(r.sentiment, s)
	r.abusive = append(r.abusive, e.Abusive)
	r.text = append(r.text, e.Text)
	r.reason = append(r.reason, e.Reason)
	r.resolution = append(r.resolution, e.Resolution)
	r.category = append(r.category, e.Category)
	r.severity = append(r.severity, e.Severity)
	r.score = append(r.score, uint8(e.Score))
	r.version = append(r.version, uint8(e.SchemaVersion))
	r.partition = append(r.partition, partition)
	r.offset = append(r.offset, offset)
}

// reset empties the buffer and keeps its capacity for the next batch.
func (r *rows) reset() {
	*r = rows{
		eventID: r.eventID[:0], typ: r.typ[:0], conversationID: r.conversationID[:0],
		channel: r.channel[:0], region: r.region[:0], queue: r.queue[:0],
		businessLine: r.businessLine[:0], actorRole: r.actorRole[:0], actorID: r.actorID[:0],
		entry: r.entry[:0], customerID: r.customerID[:0], text: r.text[:0],
		reason: r.reason[:0], resolution: r.resolution[:0], category: r.category[:0],
		severity: r.severity[:0], occurredAt: r.occurredAt[:0], sentiment: r.sentiment[:0],
		abusive: r.abusive[:0], score: r.score[:0], version: r.version[:0],
		partition: r.partition[:0], offset: r.offset[:0],
	}
}

// appendTo hands every column to a prepared batch of insertEvents.
func (r *rows) appendTo(b driver.Batch) error {
	cols := []any{
		r.eventID, r.typ, r.occurredAt, r.conversationID, r.channel, r.region,
		r.queue, r.businessLine, r.actorRole, r.actorID, r.entry, r.customerID,
		r.sentiment, r.abusive, r.text, r.reason, r.resolution, r.category,
		r.severity, r.score, r.version, r.partition, r.offset,
	}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("cannot append column %s: %w", eventColumns[i], err)
		}
	}
	return nil
}

// filter keeps the rows whose keep entry is true, in order.
func (r *rows) filter(keep []bool) {
	r.eventID, r.typ, r.conversationID = filterSlice(r.eventID, keep), filterSlice(r.typ, keep), filterSlice(r.conversationID, keep)
	r.channel, r.region, r.queue = filterSlice(r.channel, keep), filterSlice(r.region, keep), filterSlice(r.queue, keep)
	r.businessLine, r.actorRole, r.actorID = filterSlice(r.businessLine, keep), filterSlice(r.actorRole, keep), filterSlice(r.actorID, keep)
	r.entry, r.customerID, r.text = filterSlice(r.entry, keep), filterSlice(r.customerID, keep), filterSlice(r.text, keep)
	r.reason, r.resolution, r.category = filterSlice(r.reason, keep), filterSlice(r.resolution, keep), filterSlice(r.category, keep)
	r.severity, r.occurredAt = filterSlice(r.severity, keep), filterSlice(r.occurredAt, keep)
	r.sentiment, r.abusive = filterSlice(r.sentiment, keep), filterSlice(r.abusive, keep)
	r.score, r.version = filterSlice(r.score, keep), filterSlice(r.version, keep)
	r.partition, r.offset = filterSlice(r.partition, keep), filterSlice(r.offset, keep)
}

// filterSlice keeps s[i] where keep[i], in place; the tail is zeroed so
// that it holds no references.
func filterSlice[T any](s []T, keep []bool) []T {
	n := 0
	for i, k := range keep {
		if k {
			s[n] = s[i]
			n++
		}
	}
	clear(s[n:])
	return s[:n]
}
