package schemas

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// encoding/json matches object keys to fields without regard to case and
// lets a repeated key overwrite the earlier one, so {"Region": …} and
// {"region": "a", "region": "b"} decode without complaint. Contract v1
// names its fields exactly (the JSON Schema refuses "Region"), and a
// repeated field is ambiguous (another reader may keep the first value),
// so checkKeys refuses both after a successful decode.

var (
	eventKeys = jsonKeys(reflect.TypeFor[wire]())
	actorKeys = jsonKeys(reflect.TypeFor[Actor]())
)

func jsonKeys(t reflect.Type) []string {
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return keys
}

// checkKeys walks the keys of data, an event that decoded without error:
// one object whose values are scalars, null, or (for actor) an object of
// scalars. It returns the first key that is not spelt as in the contract
// or appears twice.
func checkKeys(data []byte) *Error {
	s := keyScanner{data: data}
	s.skipSpace()
	if !s.consume('{') {
		return nil // not an object: Decode has refused it already
	}
	return s.object(eventKeys, "")
}

type keyScanner struct {
	data []byte
	pos  int
}

func (s *keyScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *keyScanner) consume(c byte) bool {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// object checks the keys of the object whose '{' was just consumed.
func (s *keyScanner) object(known []string, path string) *Error {
	var seen uint64 // bit i: known[i] was seen; the contract has < 64 fields
	if s.consume('}') {
		return nil
	}
	for {
		s.skipSpace()
		key, ok := s.str()
		if !ok {
			return nil // cannot happen for decoded JSON; Decode decides
		}
		field := path + key
		i := indexOf(known, key)
		switch {
		case i < 0:
			return reject(ReasonUnknownField, field, "is not a field of contract v1 (field names are case-sensitive)")
		case seen&(1<<i) != 0:
			return reject(ReasonMalformedJSON, field, "appears twice")
		}
		seen |= 1 << i
		if !s.consume(':') {
			return nil
		}
		s.skipSpace()
		if s.pos < len(s.data) && s.data[s.pos] == '{' {
			s.pos++
			if key != "actor" || path != "" {
				return nil // decoding would have failed
			}
			if err := s.object(actorKeys, "actor."); err != nil {
				return err
			}
		} else {
			s.scalar()
		}
		if s.consume(',') {
			continue
		}
		return nil // '}' or the end
	}
}

// str reads a JSON string at pos and returns its value.
func (s *keyScanner) str() (string, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return "", false
	}
	start := s.pos
	escaped := false
	for i := start + 1; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			s.pos = i + 1
			raw := s.data[start+1 : i]
			if !escaped {
				return string(raw), true
			}
			var v string
			if json.Unmarshal(s.data[start:i+1], &v) != nil {
				return "", false
			}
			return v, true
		}
	}
	return "", false
}

// scalar skips a string, number, true, false or null.
func (s *keyScanner) scalar() {
	if s.pos < len(s.data) && s.data[s.pos] == '"' {
		s.str()
		return
	}
	if n := bytes.IndexAny(s.data[s.pos:], ",} \t\r\n"); n >= 0 {
		s.pos += n
	} else {
		s.pos = len(s.data)
	}
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}
