package schemas

import (
	"time"
)

// Version is the schema_version every v1 event carries.
const Version = 1

// MaxEventBytes is the largest encoded event the contract accepts (64 KiB).
const MaxEventBytes = 64 << 10

// EventType names what happened in a conversation.
type EventType string

// The event types of contract v1.
const (
	ConversationStarted   EventType = "conversation.started"
	MessageSent           EventType = "message.sent"
	TransferRequested     EventType = "transfer.requested"
	AgentAssigned         EventType = "agent.assigned"
	ConversationAbandoned EventType = "conversation.abandoned"
	ConversationClosed    EventType = "conversation.closed"
	ComplaintFiled        EventType = "complaint.filed"
	CSATSubmitted         EventType = "csat.submitted"
)

// EventTypes lists every type of contract v1 in a stable order.
var EventTypes = []EventType{
	ConversationStarted, MessageSent, TransferRequested, AgentAssigned,
	ConversationAbandoned, ConversationClosed, ComplaintFiled, CSATSubmitted,
}

// Enumerated field values of contract v1.
var (
	Channels    = []string{"voice", "chat", "app", "web", "wechat", "email", "sms", "other"}
	Roles       = []string{"customer", "bot", "agent", "system"}
	Entries     = []string{"bot", "agent"}
	Reasons     = []string{"customer_request", "bot_unable", "policy", "negative_sentiment"}
	Resolutions = []string{"resolved", "unresolved"}
	Severities  = []string{"low", "medium", "high"}
)

// Actor is who sent a message or joined a conversation.
type Actor struct {
	Role string `json:"role"`
	ID   string `json:"id"`
}

// Event is one conversation event of contract v1. Optional fields that are
// absent decode to their zero value (pointers for the optional numbers whose
// zero is meaningful).
type Event struct {
	EventID        string    `json:"event_id"`
	SchemaVersion  int       `json:"schema_version"`
	Type           EventType `json:"type"`
	OccurredAt     time.Time `json:"occurred_at"`
	ConversationID string    `json:"conversation_id"`

	Channel      string `json:"channel,omitempty"`
	Region       string `json:"region,omitempty"`
	Queue        string `json:"queue,omitempty"`
	BusinessLine string `json:"business_line,omitempty"`
	Actor        *Actor `json:"actor,omitempty"`

	// conversation.started
	Entry      string `json:"entry,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	// message.sent
	Sentiment *float64 `json:"sentiment,omitempty"`
	Abusive   *bool    `json:"abusive,omitempty"`
	Text      string   `json:"text,omitempty"`
	// transfer.requested
	Reason string `json:"reason,omitempty"`
	// conversation.closed
	Resolution string `json:"resolution,omitempty"`
	// complaint.filed
	Category string `json:"category,omitempty"`
	Severity string `json:"severity,omitempty"`
	// csat.submitted
	Score int `json:"score,omitempty"`
}

// ActorRole returns the actor's role, or "" when the event has no actor.
func (e *Event) ActorRole() string {
	if e.Actor == nil {
		return ""
	}
	return e.Actor.Role
}

// ActorID returns the actor's id, or "" when the event has no actor.
func (e *Event) ActorID() string {
	if e.Actor == nil {
		return ""
	}
	return e.Actor.ID
}
