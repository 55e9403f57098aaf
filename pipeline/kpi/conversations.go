package kpi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/schemas"
)

// Conversation is one row of the drill-down: a conversation's attributes
// (from its conversation.started) and how it went.
type Conversation struct {
	ID           string     `json:"id"`
	StartedAt    *time.Time `json:"started_at"`
	FirstEventAt time.Time  `json:"first_event_at"`
	LastEventAt  time.Time  `json:"last_event_at"`
	Channel      string     `json:"channel"`
	Region       string     `json:"region"`
	Queue        string     `json:"queue"`
	BusinessLine string     `json:"business_line"`
	Entry        string     `json:"entry"`
	CustomerID   string     `json:"customer_id"`
	Agents       []string   `json:"agents"`
	Transferred  bool       `json:"transferred"`
	ClosedAt     *time.Time `json:"closed_at"`
	AbandonedAt  *time.Time `json:"abandoned_at"`
	Resolved     bool       `json:"resolved"`
}

// ConversationStore reads the drill-down from ClickHouse: the events
// table and the conversations rollup of schemas/migrations.
type ConversationStore struct {
	conn driver.Conn
}

// NewConversationStore returns a reader over conn, which must be bound to
// the product's database.
func NewConversationStore(conn driver.Conn) (*ConversationStore, error) {
	if conn == nil {
		return nil, errors.New("conversation store: conn must not be nil")
	}
	return &ConversationStore{conn: conn}, nil
}

// maxConversationEvents bounds the events returned for one conversation.
const maxConversationEvents = 10_000

// ErrNoConversation is the error for a conversation id no event carries.
var ErrNoConversation = errors.New("no such conversation")

// ConversationQuery selects conversations for the drill-down list and the
// CSV export: those with an event in Window (of Type, when set) whose
// attributes match Filters, newest first, after After.
type ConversationQuery struct {
	Window  Window
	Filters Filters
	Type    schemas.EventType
	After   *ConversationCursor
	Limit   int
}

// ConversationCursor is a position in the conversations list: the sort
// key of the last row of the previous page.
type ConversationCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"id"`
}

// The queries are fixed text; every value is a {name:Type} parameter.
// The rollup may hold several unmerged rows per conversation, so it is
// folded with GROUP BY, as store_sql.go does; the attributes come
// from the earliest start, whole (min(start)).
const conversationColumns = `conversation_id,
        min(started_at) AS c_started_at, min(first_event_at) AS c_first_event_at, max(last_event_at) AS c_last_event_at,
        tupleElement(min(start), 5) AS c_channel, tupleElement(min(start), 3) AS c_region, tupleElement(min(start), 4) AS c_queue,
        tupleElement(min(start), 6) AS c_business_line, tupleElement(min(start), 7) AS c_entry, tupleElement(min(start), 8) AS c_customer_id,
        arraySort(groupUniqArrayArray(agents)) AS c_agents, min(first_transfer_at) IS NOT NULL AS c_transferred,
        min(closed_at) AS c_closed_at, min(abandoned_at) AS c_abandoned_at, max(resolved) AS c_resolved`

const listConversationsSQL = `WITH ids AS (
    SELECT DISTINCT conversation_id FROM events
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
        AND ({type:String} = '' OR type = {type:String})
)
SELECT ` + conversationColumns + `
FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM ids)
GROUP BY conversation_id
HAVING ({region:String} = '' OR c_region = {region:String})
    AND ({queue:String} = '' OR c_queue = {queue:String})
    AND ({channel:String} = '' OR c_channel = {channel:String})
    AND ({business_line:String} = '' OR c_business_line = {business_line:String})
    AND ({agent:String} = '' OR has(c_agents, {agent:String}))
    AND ({has_cursor:UInt8} = 0 OR (c_first_event_at, conversation_id) < ({after_t:DateTime64(3, 'UTC')}, {after_id:String}))
ORDER BY c_first_event_at DESC, conversation_id DESC
LIMIT {limit:UInt64}`

const oneConversationSQL = `SELECT ` + conversationColumns + `
FROM conversations WHERE conversation_id = {id:String}
GROUP BY conversation_id`

const conversationEventsSQL = `SELECT event_id, type, occurred_at, channel, region, queue, business_line,
        actor_role, actor_id, entry, customer_id, sentiment, abusive, text, reason, resolution,
        category, severity, score, schema_version
    FROM events WHERE conversation_id = {id:String}
    ORDER BY occurred_at, event_id
    LIMIT 1 BY event_id
    LIMIT {limit:UInt64}`

func scanConversation(rows driver.Rows) (Conversation, error) {
	var c Conversation
	var transferred bool
	var resolved uint8
	err := rows.Scan(&c.ID, &c.StartedAt, &c.FirstEventAt, &c.LastEventAt, &c.Channel, &c.Region, &c.Queue,
		&c.BusinessLine, &c.Entry, &c.CustomerID, &c.Agents, &transferred, &c.ClosedAt, &c.AbandonedAt, &resolved)
	c.Transferred, c.Resolved = transferred, resolved > 0
	if c.Agents == nil {
		c.Agents = []string{}
	}
	return c, err
}

// Conversations calls fn for each conversation matching q, newest first,
// at most q.Limit when it is positive.
func (s *ConversationStore) Conversations(ctx context.Context, q ConversationQuery, fn func(Conversation) error) error {
	limit := uint64(q.Limit)
	if q.Limit <= 0 {
		limit = 1 << 62
	}
	p := clickhouse.Parameters{
		"from":          q.Window.From.UTC().Format(chTime),
		"to":            q.Window.To.UTC().Format(chTime),
		"type":          schemas.StringParam(string(q.Type)),
		"region":        schemas.StringParam(q.Filters.Region),
		"queue":         schemas.StringParam(q.Filters.Queue),
		"channel":       schemas.StringParam(q.Filters.Channel),
		"business_line": schemas.StringParam(q.Filters.BusinessLine),
		"agent":         schemas.StringParam(q.Filters.Agent),
		"has_cursor":    "0",
		"after_t":       time.Unix(0, 0).UTC().Format(chTime),
		"after_id":      "",
		"limit":         strconv.FormatUint(limit, 10),
	}
	if q.After != nil {
		p["has_cursor"], p["after_t"], p["after_id"] = "1", q.After.At.UTC().Format(chTime), schemas.StringParam(q.After.ID)
	}
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), listConversationsSQL)
	if err != nil {
		return fmt.Errorf("cannot list conversations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return fmt.Errorf("cannot read conversations: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read conversations: %w", err)
	}
	return nil
}

// Conversation returns one conversation and its events in event-time
// order; an unknown id is ErrNoConversation.
func (s *ConversationStore) Conversation(ctx context.Context, id string) (Conversation, []schemas.Event, error) {
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"id": schemas.StringParam(id), "limit": strconv.Itoa(maxConversationEvents),
	}))
	rows, err := s.conn.Query(qctx, oneConversationSQL)
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("cannot read conversation: %w", err)
	}
	var conv Conversation
	found := false
	for rows.Next() {
		if conv, err = scanConversation(rows); err != nil {
			rows.Close()
			return Conversation{}, nil, fmt.Errorf("cannot read conversation: %w", err)
		}
		found = true
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("cannot read conversation: %w", err)
	}
	if !found {
		return Conversation{}, nil, ErrNoConversation
	}
	rows, err = s.conn.Query(qctx, conversationEventsSQL)
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("cannot read conversation events: %w", err)
	}
	defer rows.Close()
	events := []schemas.Event{}
	for rows.Next() {
		var (
			e                  schemas.Event
			typ, role, actorID string
			sentiment          *float32
			score, version     uint8
		)
		if err := rows.Scan(&e.EventID, &typ, &e.OccurredAt, &e.Channel, &e.Region, &e.Queue, &e.BusinessLine,
			&role, &actorID, &e.Entry, &e.CustomerID, &sentiment, &e.Abusive, &e.Text, &e.Reason, &e.Resolution,
			&e.Category, &e.Severity, &score, &version); err != nil {
			return Conversation{}, nil, fmt.Errorf("cannot read conversation events: %w", err)
		}
		e.Type, e.ConversationID, e.Score, e.SchemaVersion = schemas.EventType(typ), id, int(score), int(version)
		if role != "" || actorID != "" {
			e.Actor = &schemas.Actor{Role: role, ID: actorID}
		}
		if sentiment != nil {
			// Float32 in the store: round away the widening noise
			// (0.3 would read back as 0.30000001192092896).
			v := math.Round(float64(*sentiment)*1e6) / 1e6
			e.Sentiment = &v
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return Conversation{}, nil, fmt.Errorf("cannot read conversation events: %w", err)
	}
	return conv, events, nil
}
