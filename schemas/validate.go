package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reason classifies why an event was rejected. It is the label of the
// rejected-events counters and the reason header on the dead-letter topic, so
// the set is small and stable.
type Reason string

// Rejection reasons.
const (
	ReasonOversize           Reason = "oversize"
	ReasonInvalidUTF8        Reason = "invalid_utf8"
	ReasonMalformedJSON      Reason = "malformed_json"
	ReasonUnknownField       Reason = "unknown_field"
	ReasonWrongType          Reason = "wrong_type"
	ReasonMissingField       Reason = "missing_field"
	ReasonInvalidValue       Reason = "invalid_value"
	ReasonUnsupportedVersion Reason = "unsupported_version"
	ReasonUnknownType        Reason = "unknown_type"
	ReasonFutureTimestamp    Reason = "future_timestamp"
	ReasonAncientTimestamp   Reason = "ancient_timestamp"
)

// Error says why one event is not acceptable: the reason class, the field
// (JSON path, empty when the whole event is at fault) and the rule broken.
type Error struct {
	Reason Reason
	Field  string
	Rule   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Rule)
	}
	return fmt.Sprintf("%s: field %s: %s", e.Reason, e.Field, e.Rule)
}

func reject(reason Reason, field, format string, args ...any) *Error {
	return &Error{Reason: reason, Field: field, Rule: fmt.Sprintf(format, args...)}
}

// Limits bounds the event time an event may carry relative to the clock of
// the component that validates it.
type Limits struct {
	// MaxFuture is how far ahead of now occurred_at may be (clock skew of
	// producers). Default 5m.
	MaxFuture time.Duration `yaml:"max_future"`
	// MaxAge is how far in the past occurred_at may be; older events are
	// rejected as ancient. Zero disables the check (for backfills). Default 720h.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{MaxFuture: 5 * time.Minute, MaxAge: 30 * 24 * time.Hour}
}

// Validate checks the limits themselves.
func (l Limits) Validate() error {
	if l.MaxFuture < 0 {
		return errors.New("max_future must not be negative")
	}
	if l.MaxAge < 0 {
		return errors.New("max_age must not be negative")
	}
	return nil
}

// wire is the JSON shape of an event; fields whose absence must be told
// apart from their zero value are pointers, and occurred_at is parsed by hand
// so that its error names the field and the expected format.
type wire struct {
	EventID        string    `json:"event_id"`
	SchemaVersion  *int      `json:"schema_version"`
	Type           EventType `json:"type"`
	OccurredAt     *string   `json:"occurred_at"`
	ConversationID string    `json:"conversation_id"`
	Channel        string    `json:"channel"`
	Region         string    `json:"region"`
	Queue          string    `json:"queue"`
	BusinessLine   string    `json:"business_line"`
	Actor          *Actor    `json:"actor"`
	Entry          string    `json:"entry"`
	CustomerID     string    `json:"customer_id"`
	Sentiment      *float64  `json:"sentiment"`
	Abusive        *bool     `json:"abusive"`
	Text           string    `json:"text"`
	Reason         string    `json:"reason"`
	Resolution     string    `json:"resolution"`
	Category       string    `json:"category"`
	Severity       string    `json:"severity"`
	Score          *int      `json:"score"`
}

// Decode parses one encoded event and validates it against contract v1 at
// time now. Every failure is an *Error naming the reason and the field.
// Unknown fields are refused rather than dropped, so that a misspelt
// attribute is noticed by its producer instead of silently missing from
// every breakdown.
func Decode(data []byte, now time.Time, lim Limits) (Event, error) {
	return DecodeAt(data, now, now, lim)
}

// DecodeAt is Decode for an event produced (by the producer's clock, e.g.
// its Kafka record timestamp) and received at two times: occurred_at may be
// at most lim.MaxFuture ahead of the earlier of them and at most
// lim.MaxAge behind the later, so a producer whose clock is wrong, or that
// stamps its records with occurred_at, cannot carry an event from 2099 or
// 2001 past the limits.
func DecodeAt(data []byte, produced, received time.Time, lim Limits) (Event, error) {
	if len(data) > MaxEventBytes {
		return Event{}, reject(ReasonOversize, "", "event is %d bytes, the limit is %d", len(data), MaxEventBytes)
	}
	if !utf8.Valid(data) {
		return Event{}, reject(ReasonInvalidUTF8, "", "event is not valid UTF-8")
	}
	var w wire
	if !scanWire(data, &w) {
		// Anything the fast reader does not take is decoded by
		// encoding/json, whose errors name the reasons.
		w = wire{}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return Event{}, jsonError(err)
		}
		if dec.More() {
			return Event{}, reject(ReasonMalformedJSON, "", "trailing data after the event object")
		}
	}
	if kerr := checkKeys(data); kerr != nil {
		return Event{}, kerr
	}
	// A literal null decodes into a zero wire without error.
	if w.SchemaVersion == nil && w.Type == "" && w.EventID == "" && w.OccurredAt == nil {
		if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 || trimmed[0] != '{' {
			return Event{}, reject(ReasonMalformedJSON, "", "event must be a JSON object")
		}
	}
	e := Event{
		EventID: w.EventID, Type: w.Type, ConversationID: w.ConversationID,
		Channel: w.Channel, Region: w.Region, Queue: w.Queue, BusinessLine: w.BusinessLine,
		Actor: w.Actor, Entry: w.Entry, CustomerID: w.CustomerID, Sentiment: w.Sentiment,
		Abusive: w.Abusive, Text: w.Text, Reason: w.Reason, Resolution: w.Resolution,
		Category: w.Category, Severity: w.Severity,
	}
	if w.SchemaVersion == nil {
		return Event{}, reject(ReasonMissingField, "schema_version", "is required")
	}
	e.SchemaVersion = *w.SchemaVersion
	if w.OccurredAt == nil {
		return Event{}, reject(ReasonMissingField, "occurred_at", "is required")
	}
	t, err := ParseTime(*w.OccurredAt)
	if err != nil {
		return Event{}, reject(ReasonInvalidValue, "occurred_at", "%v", err)
	}
	if t.IsZero() {
		// Present, but the zero time, which Validate would call missing.
		return Event{}, reject(ReasonInvalidValue, "occurred_at", "0001-01-01T00:00:00Z is not the time of an event")
	}
	e.OccurredAt = t
	if w.Score != nil {
		e.Score = *w.Score
		if e.Score == 0 {
			return Event{}, reject(ReasonInvalidValue, "score", "must be an integer from 1 to 5")
		}
	}
	if err := validate(&e, produced, received, lim); err != nil {
		return Event{}, err
	}
	return e, nil
}

// ParseTime parses an RFC 3339 timestamp that carries an explicit offset
// (Z or ±hh:mm). Precision finer than a millisecond is truncated, because
// the store keeps milliseconds.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 timestamp with offset, e.g. 2026-01-02T15:04:05.123+08:00 (got %q)", truncate(s, 40))
	}
	return t.Truncate(time.Millisecond), nil
}

func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return reject(ReasonMalformedJSON, "", "event must be a JSON object, not %s", typeErr.Value)
		}
		return reject(ReasonWrongType, field, "must be %s, not %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return reject(ReasonMalformedJSON, "", "invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return reject(ReasonUnknownField, name, "is not a field of contract v1")
	default:
		return reject(ReasonMalformedJSON, "", "invalid JSON: %v", err)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int64":
		return "an integer"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "ptr", "struct":
		return "an object"
	}
	return kind
}

// Validate checks a decoded or constructed event against contract v1 at time
// now. It returns the first rule broken, as an *Error.
func Validate(e *Event, now time.Time, lim Limits) error {
	return validate(e, now, now, lim)
}

// validate is Validate with the clocks of DecodeAt.
func validate(e *Event, produced, received time.Time, lim Limits) error {
	futureRef, ageRef := produced, received
	if received.Before(produced) {
		futureRef, ageRef = received, produced
	}
	if e.SchemaVersion != Version {
		return reject(ReasonUnsupportedVersion, "schema_version", "must be %d, got %d", Version, e.SchemaVersion)
	}
	if err := checkString("event_id", e.EventID, 1, 64); err != nil {
		return err
	}
	if e.Type == "" {
		return reject(ReasonMissingField, "type", "is required")
	}
	if !slices.Contains(EventTypes, e.Type) {
		return reject(ReasonUnknownType, "type", "%q is not an event type of contract v1", truncate(string(e.Type), 40))
	}
	if e.OccurredAt.IsZero() {
		return reject(ReasonMissingField, "occurred_at", "is required")
	}
	if lim.MaxFuture > 0 && e.OccurredAt.After(futureRef.Add(lim.MaxFuture)) {
		return reject(ReasonFutureTimestamp, "occurred_at", "%s is more than %s ahead of the receiver's clock", e.OccurredAt.Format(time.RFC3339), lim.MaxFuture)
	}
	if lim.MaxAge > 0 && e.OccurredAt.Before(ageRef.Add(-lim.MaxAge)) {
		return reject(ReasonAncientTimestamp, "occurred_at", "%s is more than %s in the past", e.OccurredAt.Format(time.RFC3339), lim.MaxAge)
	}
	if err := checkName("conversation_id", e.ConversationID, 1, 128); err != nil {
		return err
	}
	if err := checkEnum("channel", e.Channel, Channels, e.Type == ConversationStarted); err != nil {
		return err
	}
	needRegion := e.Type == ConversationStarted || e.Type == ComplaintFiled
	if e.Region != "" || needRegion {
		if err := checkName("region", e.Region, 1, 64); err != nil {
			return err
		}
	}
	if err := checkName("queue", e.Queue, 0, 64); err != nil {
		return err
	}
	if err := checkName("business_line", e.BusinessLine, 0, 64); err != nil {
		return err
	}
	if err := checkActor(e); err != nil {
		return err
	}
	if err := checkString("customer_id", e.CustomerID, 0, 128); err != nil {
		return err
	}
	if err := checkString("category", e.Category, 0, 64); err != nil {
		return err
	}
	if err := checkString("text", e.Text, 0, 16384); err != nil {
		return err
	}
	if e.Sentiment != nil && !(*e.Sentiment >= -1 && *e.Sentiment <= 1) {
		return reject(ReasonInvalidValue, "sentiment", "must be a number from -1 to 1")
	}
	if err := checkEnum("entry", e.Entry, Entries, e.Type == ConversationStarted); err != nil {
		return err
	}
	if err := checkEnum("reason", e.Reason, Reasons, e.Type == TransferRequested); err != nil {
		return err
	}
	if err := checkEnum("resolution", e.Resolution, Resolutions, e.Type == ConversationClosed); err != nil {
		return err
	}
	if err := checkEnum("severity", e.Severity, Severities, false); err != nil {
		return err
	}
	if e.Type == CSATSubmitted && e.Score == 0 {
		return reject(ReasonMissingField, "score", "is required on %s", CSATSubmitted)
	}
	if e.Score != 0 && (e.Score < 1 || e.Score > 5) {
		return reject(ReasonInvalidValue, "score", "must be an integer from 1 to 5")
	}
	return nil
}

func checkActor(e *Event) error {
	required := e.Type == MessageSent || e.Type == AgentAssigned
	if e.Actor == nil {
		if required {
			return reject(ReasonMissingField, "actor", "is required on %s", e.Type)
		}
		return nil
	}
	if err := checkEnum("actor.role", e.Actor.Role, Roles, true); err != nil {
		return err
	}
	switch {
	case e.Type == MessageSent && e.Actor.Role == "system":
		return reject(ReasonInvalidValue, "actor.role", "must be customer, bot or agent on %s", e.Type)
	case e.Type == AgentAssigned && e.Actor.Role != "agent":
		return reject(ReasonInvalidValue, "actor.role", "must be agent on %s", e.Type)
	}
	minID := 0
	if e.Type == AgentAssigned {
		minID = 1
	}
	return checkName("actor.id", e.Actor.ID, minID, 128)
}

// checkName is checkString for the values the API filters and looks up
// by (conversation id, region, queue, business line, agent id): they may
// not hold control characters (C0, DEL, C1), which the API refuses in a
// filter, so a stored value is always one a filter can name.
func checkName(field, v string, minLen, maxLen int) error {
	if err := checkString(field, v, minLen, maxLen); err != nil {
		return err
	}
	if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		return reject(ReasonInvalidValue, field, "must not contain control characters, found U+%04X", r)
	}
	return nil
}

func checkString(field, v string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(v)
	if n == 0 && minLen > 0 {
		return reject(ReasonMissingField, field, "is required")
	}
	if n < minLen || n > maxLen {
		return reject(ReasonInvalidValue, field, "must be %d to %d characters, got %d", minLen, maxLen, n)
	}
	return nil
}

func checkEnum(field, v string, allowed []string, required bool) error {
	if v == "" {
		if required {
			return reject(ReasonMissingField, field, "is required, one of %s", strings.Join(allowed, ", "))
		}
		return nil
	}
	if !slices.Contains(allowed, v) {
		return reject(ReasonInvalidValue, field, "must be one of %s, got %q", strings.Join(allowed, ", "), truncate(v, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
