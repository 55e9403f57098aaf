package chdb

import (
	"bytes"
	"strings"
)

// Shape is what a light scan of a query's text tells without parsing it.
type Shape struct {
	// Keyword is the statement's first word in upper case ("SELECT",
	// "INSERT", ...); "" for an empty query.
	Keyword string
	// Format is the name in a top-level FORMAT clause, "" when there is none.
	// For an INSERT it names the input format of the inline data.
	Format string
	// Multi reports a second statement after a top-level ';'. The engine
	// runs every statement of such a text, unlike a ClickHouse server's HTTP
	// interface, which refuses them.
	Multi bool
	// FormatOffset is where the FORMAT keyword of Format starts.
	FormatOffset int
	// DataOffset is where inline INSERT data starts (after FORMAT <name>
	// and the whitespace up to and including the first newline); 0 when the
	// statement carries none.
	DataOffset int
}

// Inspect scans query's text: strings, quoted identifiers and comments are
// skipped, so a ';' or FORMAT inside them does not count. Scanning stops at
// the inline data of INSERT ... FORMAT <name> (other than Values), which is
// not SQL.
func Inspect(query []byte) Shape {
	var s Shape
	sc := scanner{q: query}
	depth := 0
	for {
		sc.skipSpace()
		if sc.i >= len(sc.q) {
			return s
		}
		c := sc.q[sc.i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			sc.skipQuoted(c)
		case c == '(' || c == '[':
			depth++
			sc.i++
		case c == ')' || c == ']':
			depth--
			sc.i++
		case c == ';':
			sc.i++
			sc.skipSpace()
			if sc.i < len(sc.q) {
				s.Multi = true
			}
			return s
		case isWordByte(c):
			word := sc.word()
			if s.Keyword == "" {
				s.Keyword = strings.ToUpper(word)
			}
			if depth != 0 || !strings.EqualFold(word, "FORMAT") {
				continue
			}
			save := sc.i
			at := sc.i - len(word)
			sc.skipSpace()
			name := sc.word()
			if name == "" {
				sc.i = save
				continue
			}
			if s.Keyword == "INSERT" && !strings.EqualFold(name, "Values") {
				s.Format, s.FormatOffset = name, at
				s.DataOffset = dataStart(sc.q, sc.i)
				return s
			}
			// FORMAT as a clause ends the query or precedes SETTINGS;
			// anything else means "format" was a name, e.g. a column.
			after := sc.i
			sc.skipSpace()
			if next := sc.peekWord(); sc.i >= len(sc.q) || sc.q[sc.i] == ';' || strings.EqualFold(next, "SETTINGS") {
				s.Format, s.FormatOffset = name, at
			}
			sc.i = after
		default:
			sc.i++
		}
	}
}

// dataStart mirrors ClickHouse's rule for inline data: it starts after the
// first newline if the whitespace after the format name contains one, else
// after all of that whitespace.
func dataStart(q []byte, i int) int {
	j := i
	for j < len(q) && (q[j] == ' ' || q[j] == '\t' || q[j] == '\r' || q[j] == '\f') {
		j++
	}
	if j < len(q) && q[j] == '\n' {
		return j + 1
	}
	return j
}

type scanner struct {
	q []byte
	i int
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// skipSpace skips whitespace and comments.
func (s *scanner) skipSpace() {
	for s.i < len(s.q) {
		c := s.q[s.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			s.i++
		case c == '-' && s.i+1 < len(s.q) && s.q[s.i+1] == '-', c == '#':
			for s.i < len(s.q) && s.q[s.i] != '\n' {
				s.i++
			}
		case c == '/' && s.i+1 < len(s.q) && s.q[s.i+1] == '*':
			end := bytes.Index(s.q[s.i+2:], []byte("*/"))
			if end < 0 {
				s.i = len(s.q)
				return
			}
			s.i += end + 4
		default:
			return
		}
	}
}

// skipQuoted skips a literal or quoted identifier opened by quote: a
// backslash escapes the next byte and a doubled quote is one quote.
func (s *scanner) skipQuoted(quote byte) {
	s.i++
	for s.i < len(s.q) {
		switch s.q[s.i] {
		case '\\':
			s.i += 2
		case quote:
			if s.i+1 < len(s.q) && s.q[s.i+1] == quote {
				s.i += 2
				continue
			}
			s.i++
			return
		default:
			s.i++
		}
	}
}

func (s *scanner) word() string {
	j := s.i
	for j < len(s.q) && isWordByte(s.q[j]) {
		j++
	}
	w := string(s.q[s.i:j])
	s.i = j
	return w
}

func (s *scanner) peekWord() string {
	save := s.i
	w := s.word()
	s.i = save
	return w
}
