package schemas

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanWire is Decode's fast path: a hand-written reader for the plain
// shape almost every producer sends — one flat object of contract fields,
// exact key names, each at most once, values of the right JSON type, an
// optional actor object. It fills w exactly as encoding/json would and
// reports true, or reports false as soon as anything is out of the
// ordinary (a syntax error, an unknown or repeated key, a key matched only
// case-insensitively, null, a number that is not a plain integer where an
// integer is due, a surrogate escape, trailing data, ...). Decode then
// decodes the event again with encoding/json, whose errors are the
// rejection reasons, so the reasons never depend on this reader.
//
// data must be valid UTF-8 (Decode checks that first).
func scanWire(data []byte, w *wire) bool {
	s := scanner{data: data}
	s.space()
	if !s.consume('{') {
		return false
	}
	var seen uint32
	s.space()
	if s.consume('}') {
		return s.end()
	}
	for {
		s.space()
		key, ok := s.rawString()
		if !ok {
			return false
		}
		s.space()
		if !s.consume(':') {
			return false
		}
		s.space()
		bit, ok := fieldBits[string(key)]
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if !s.field(bit, w) {
			return false
		}
		s.space()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return s.end()
		}
		return false
	}
}

// One bit per field of wire, to refuse repeated keys.
const (
	fEventID uint32 = 1 << iota
	fSchemaVersion
	fType
	fOccurredAt
	fConversationID
	fChannel
	fRegion
	fQueue
	fBusinessLine
	fActor
	fEntry
	fCustomerID
	fSentiment
	fAbusive
	fText
	fReason
	fResolution
	fCategory
	fSeverity
	fScore
)

var fieldBits = map[string]uint32{
	"event_id": fEventID, "schema_version": fSchemaVersion, "type": fType, "occurred_at": fOccurredAt,
	"conversation_id": fConversationID, "channel": fChannel, "region": fRegion, "queue": fQueue,
	"business_line": fBusinessLine, "actor": fActor, "entry": fEntry, "customer_id": fCustomerID,
	"sentiment": fSentiment, "abusive": fAbusive, "text": fText, "reason": fReason,
	"resolution": fResolution, "category": fCategory, "severity": fSeverity, "score": fScore,
}

// interned are the values of the enumerated fields: decoding one of them
// costs no allocation.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, list := range [][]string{Channels, Entries, Roles, Reasons, Resolutions, Severities} {
		for _, v := range list {
			m[v] = v
		}
	}
	for _, t := range EventTypes {
		m[string(t)] = string(t)
	}
	return m
}()

type scanner struct {
	data []byte
	pos  int
}

// field reads the value of the field bit into w.
func (s *scanner) field(bit uint32, w *wire) bool {
	switch bit {
	case fSchemaVersion:
		n, ok := s.integer()
		if !ok {
			return false
		}
		w.SchemaVersion = &n
	case fScore:
		n, ok := s.integer()
		if !ok {
			return false
		}
		w.Score = &n
	case fSentiment:
		f, ok := s.number()
		if !ok {
			return false
		}
		w.Sentiment = &f
	case fAbusive:
		b, ok := s.boolean()
		if !ok {
			return false
		}
		w.Abusive = &b
	case fActor:
		a, ok := s.actor()
		if !ok {
			return false
		}
		w.Actor = a
	case fOccurredAt:
		v, ok := s.str(false)
		if !ok {
			return false
		}
		w.OccurredAt = &v
	default:
		v, ok := s.str(bit&(fType|fChannel|fEntry|fReason|fResolution|fSeverity) != 0)
		if !ok {
			return false
		}
		switch bit {
		case fEventID:
			w.EventID = v
		case fType:
			w.Type = EventType(v)
		case fConversationID:
			w.ConversationID = v
		case fChannel:
			w.Channel = v
		case fRegion:
			w.Region = v
		case fQueue:
			w.Queue = v
		case fBusinessLine:
			w.BusinessLine = v
		case fEntry:
			w.Entry = v
		case fCustomerID:
			w.CustomerID = v
		case fText:
			w.Text = v
		case fReason:
			w.Reason = v
		case fResolution:
			w.Resolution = v
		case fCategory:
			w.Category = v
		case fSeverity:
			w.Severity = v
		}
	}
	return true
}

// actor reads {"role": "...", "id": "..."} with each key at most once.
func (s *scanner) actor() (*Actor, bool) {
	if !s.consume('{') {
		return nil, false
	}
	a := &Actor{}
	var role, id bool
	s.space()
	if s.consume('}') {
		return a, true
	}
	for {
		s.space()
		key, ok := s.rawString()
		if !ok {
			return nil, false
		}
		s.space()
		if !s.consume(':') {
			return nil, false
		}
		s.space()
		switch string(key) {
		case "role":
			if role {
				return nil, false
			}
			role = true
			if a.Role, ok = s.str(true); !ok {
				return nil, false
			}
		case "id":
			if id {
				return nil, false
			}
			id = true
			if a.ID, ok = s.str(false); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		s.space()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return a, true
		}
		return nil, false
	}
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// end accepts only whitespace after the object.
func (s *scanner) end() bool {
	s.space()
	return s.pos == len(s.data)
}

// rawString returns the bytes of a string without escapes (keys), or
// false for anything else.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.data[start : s.pos-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.pos++
	}
	return nil, false
}

// str reads a string value, decoding the escapes encoding/json decodes
// the same way; intern says the value is probably one of a small set.
func (s *scanner) str(intern bool) (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			if intern {
				if v, ok := interned[string(raw)]; ok {
					return v, true
				}
			}
			return string(raw), true
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return "", false
		}
		s.pos++
	}
	return "", false
}

// escaped finishes a string that has escapes, from its first one.
func (s *scanner) escaped(start int) (string, bool) {
	buf := make([]byte, 0, s.pos-start+16)
	buf = append(buf, s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			return "", false
		}
		e := s.data[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if s.pos+4 > len(s.data) {
				return "", false
			}
			r, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 16)
			if err != nil {
				return "", false
			}
			s.pos += 4
			// Surrogates (pairs and strays) are left to encoding/json.
			if utf16.IsSurrogate(rune(r)) {
				return "", false
			}
			buf = utf8.AppendRune(buf, rune(r))
		default:
			return "", false
		}
	}
	return "", false
}

// literal returns the bytes of a JSON number at the cursor, checked
// against JSON's grammar, or false.
func (s *scanner) literal() ([]byte, bool) {
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], true
}

// integer reads a plain integer literal (no fraction or exponent, which
// encoding/json refuses for an int) small enough for an int.
func (s *scanner) integer() (int, bool) {
	lit, ok := s.literal()
	if !ok || len(lit) > 18 {
		return 0, false
	}
	n, err := strconv.Atoi(string(lit))
	if err != nil {
		return 0, false
	}
	return n, true
}

// number reads a float64 as encoding/json does (strconv.ParseFloat of the
// literal).
func (s *scanner) number() (float64, bool) {
	lit, ok := s.literal()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func (s *scanner) boolean() (bool, bool) {
	d := s.data[s.pos:]
	switch {
	case len(d) >= 4 && string(d[:4]) == "true":
		s.pos += 4
		return true, true
	case len(d) >= 5 && string(d[:5]) == "false":
		s.pos += 5
		return false, true
	}
	return false, false
}
