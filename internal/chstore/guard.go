package chstore

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// The engine runs as clickhouse-local, where every query may read and write
// any file the process can, fetch URLs and reach other hosts: file(), url(),
// s3(), remote(), executable(), a path given as a table name ('/etc/passwd'
// or `x.csv`, served by the default database's Filesystem overlay), INTO
// OUTFILE, FROM INFILE, disks defined in a query, File/URL/... table and
// dictionary sources. The engine's own switch does not cover them: measured
// on 26.5, readonly = 1 in a query's SETTINGS refuses the table functions
// but not the file() function nor INTO OUTFILE, and readonly set for a
// session does not bind at all. So each query's text is checked here,
// scanned the way the engine's lexer reads it (nested comments, heredoc
// strings, backslash escapes), before it reaches the engine. What the scan
// cannot read with certainty is refused.

// deniedCalls are names that reach files, URLs, other hosts or programs
// when called: table functions, functions, table and database engines,
// dictionary sources, dynamic disks. Compared in lower case.
var deniedCalls = map[string]bool{
	"file": true, "filecluster": true, "url": true, "urlcluster": true,
	"remote": true, "remotesecure": true, "cluster": true, "clusterallreplicas": true,
	"executable": true, "executablepool": true, "jdbc": true, "odbc": true,
	"mysql": true, "postgresql": true, "materializedpostgresql": true, "materializedmysql": true,
	"sqlite": true, "mongodb": true, "mongo": true, "redis": true, "kafka": true, "rabbitmq": true,
	"nats": true, "filelog": true, "gcs": true, "cosn": true, "oss": true, "hive": true,
	"distributed": true, "disk": true, "http": true, "clickhouse": true, "ytsaurus": true,
	"arrowflight": true, "arrowflightsql": true, "filesystem": true, "replicated": true,
	"ftp": true, "sftp": true, "ssh": true, "dictionarysource": true, "library": true,
	"overlay": true, "backup": true,
}

// deniedCallPrefixes catch families of such names, present and future.
var deniedCallPrefixes = []string{"s3", "azure", "hdfs", "iceberg", "deltalake", "hudi", "paimon", "datalake", "object"}

// deniedWords are refused wherever they appear as a word: clauses that read
// or write files, engines usable without arguments, and settings that name
// files.
var deniedWords = map[string]bool{
	"outfile": true, "infile": true, "filesystem": true,
	"format_schema": true, "format_schema_path": true, "output_format_schema": true,
	"format_template_row": true, "format_template_resultset": true,
	"format_schema_source": true, "user_files_path": true, "user_scripts_path": true,
	"schema_inference_cache": true,
}

// deniedStatements are statements refused whatever follows: they reach
// files (BACKUP, RESTORE, ATTACH ... FROM 'path') or the process (SYSTEM).
var deniedStatements = map[string]bool{"SYSTEM": true, "BACKUP": true, "RESTORE": true, "ATTACH": true, "INSTALL": true}

// systemAllowed are the SYSTEM statements the product's account may run,
// by their second and third words: pausing and resuming background work
// on a table (tests hold merges this way) and flushing. SHUTDOWN, KILL,
// RELOAD and the rest stay refused.
func systemAllowed(toks []token) bool {
	if len(toks) < 3 || toks[1].kind != tokWord || toks[2].kind != tokWord {
		return false
	}
	switch toks[1].text {
	case "stop", "start":
		switch toks[2].text {
		case "merges", "ttl", "moves", "fetches", "sends", "replication", "replicated", "distributed":
			return true
		}
	case "flush":
		return toks[2].text == "logs" || toks[2].text == "distributed"
	case "sync":
		return toks[2].text == "replica"
	}
	return false
}

// readOnlyStatements are what the read-only account may run.
var readOnlyStatements = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXISTS": true, "EXPLAIN": true,
}

// tablePosition are the words after which a table name comes.
var tablePosition = map[string]bool{"from": true, "join": true, "into": true, "table": true, "describe": true, "desc": true}

// clauseEnds end a FROM list: after one of them a comma separates
// expressions, not tables.
var clauseEnds = map[string]bool{
	"where": true, "prewhere": true, "group": true, "order": true, "limit": true, "having": true,
	"settings": true, "format": true, "union": true, "except": true, "intersect": true, "window": true,
	"qualify": true, "select": true, "array": true, "values": true, "like": true, "ilike": true, "offset": true,
}

// refused is a query the guard will not pass to the engine; syntax marks
// one refused as a server refuses it (SYNTAX_ERROR), not for access.
type refused struct {
	msg    string
	syntax bool
}

func (e *refused) Error() string { return e.msg }

func refusef(format string, args ...any) error {
	return &refused{msg: fmt.Sprintf(format, args...)}
}

// token kinds of the guard's lexer.
const (
	tokEnd = iota
	tokWord
	tokQuotedIdent
	tokString
	tokPunct
	tokParam // a {name:Type} query parameter
)

type token struct {
	kind  int
	text  string // lower-cased word, identifier or string content, or the punctuation byte
	start int
}

type lexer struct {
	q   []byte
	i   int
	err error
}

func isGuardWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// skip passes whitespace and comments as the engine's lexer does: "--" and
// "# " or "#!" to the end of the line, nested /* */.
func (l *lexer) skip() {
	for l.i < len(l.q) {
		c := l.q[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.i++
		case c == '-' && l.i+1 < len(l.q) && l.q[l.i+1] == '-',
			c == '#' && l.i+1 < len(l.q) && (l.q[l.i+1] == ' ' || l.q[l.i+1] == '!'):
			for l.i < len(l.q) && l.q[l.i] != '\n' {
				l.i++
			}
		case c == '/' && l.i+1 < len(l.q) && l.q[l.i+1] == '*':
			depth := 0
			for l.i < len(l.q) {
				if l.i+1 < len(l.q) && l.q[l.i] == '/' && l.q[l.i+1] == '*' {
					depth++
					l.i += 2
				} else if l.i+1 < len(l.q) && l.q[l.i] == '*' && l.q[l.i+1] == '/' {
					depth--
					l.i += 2
					if depth == 0 {
						break
					}
				} else {
					l.i++
				}
			}
			if depth != 0 {
				l.err = refusef("Unterminated comment")
				l.i = len(l.q)
			}
		default:
			return
		}
	}
}

// next returns the next token.
func (l *lexer) next() token {
	l.skip()
	if l.err != nil || l.i >= len(l.q) {
		return token{kind: tokEnd, start: len(l.q)}
	}
	start := l.i
	c := l.q[l.i]
	switch {
	case c == '\'' || c == '"' || c == '`':
		content, ok := l.quoted(c)
		if !ok {
			l.err = refusef("Unterminated quoted text at position %d", start)
			return token{kind: tokEnd, start: start}
		}
		kind := tokQuotedIdent
		if c == '\'' {
			kind = tokString
		}
		return token{kind: kind, text: strings.ToLower(content), start: start}
	case c == '$':
		// A heredoc string $tag$...$tag$; anything else starting with '$'
		// is not read with certainty.
		j := l.i + 1
		for j < len(l.q) && (l.q[j] == '_' || l.q[j] >= 'a' && l.q[j] <= 'z' || l.q[j] >= 'A' && l.q[j] <= 'Z' || l.q[j] >= '0' && l.q[j] <= '9') {
			j++
		}
		if j >= len(l.q) || l.q[j] != '$' {
			l.err = refusef("Unexpected '$' at position %d", start)
			return token{kind: tokEnd, start: start}
		}
		tag := l.q[l.i : j+1]
		end := bytes.Index(l.q[j+1:], tag)
		if end < 0 {
			l.err = refusef("Unterminated heredoc at position %d", start)
			return token{kind: tokEnd, start: start}
		}
		content := l.q[j+1 : j+1+end]
		l.i = j + 1 + end + len(tag)
		return token{kind: tokString, text: strings.ToLower(string(content)), start: start}
	case c == '{':
		if name, typ, typeAt, ok := placeholder(l.q, l.i); ok {
			if strings.EqualFold(strings.TrimSpace(typ), "identifier") {
				// An Identifier parameter stands for a name the query
				// text does not show: a table name, which may be a file.
				l.err = refusef("The query parameter {%s:Identifier} is not allowed on this endpoint: the name it stands for is not in the query", name)
				return token{kind: tokEnd, start: start}
			}
			// The name is no keyword of the query ({from:DateTime64(3,
			// 'UTC')} is a value); its type is read on as query text.
			l.i = typeAt
			return token{kind: tokParam, text: name, start: start}
		}
		l.i++
		return token{kind: tokPunct, text: "{", start: start}
	case isGuardWordByte(c):
		j := l.i
		for j < len(l.q) && isGuardWordByte(l.q[j]) {
			j++
		}
		l.i = j
		return token{kind: tokWord, text: strings.ToLower(string(l.q[start:j])), start: start}
	default:
		l.i++
		return token{kind: tokPunct, text: string(c), start: start}
	}
}

// placeholder reads a query parameter {name:Type} at q[i] (q[i] is '{'):
// its name, its type and the offset where the type begins. The type may
// hold parentheses and quoted text (DateTime64(3, 'UTC')).
func placeholder(q []byte, i int) (name, typ string, typeAt int, ok bool) {
	j := i + 1
	for j < len(q) && (q[j] == ' ' || q[j] == '\t' || q[j] == '\n' || q[j] == '\r') {
		j++
	}
	n := j
	for j < len(q) && (q[j] == '_' || q[j] >= 'a' && q[j] <= 'z' || q[j] >= 'A' && q[j] <= 'Z' || q[j] >= '0' && q[j] <= '9') {
		j++
	}
	name = string(q[n:j])
	for j < len(q) && (q[j] == ' ' || q[j] == '\t' || q[j] == '\n' || q[j] == '\r') {
		j++
	}
	if name == "" || j >= len(q) || q[j] != ':' {
		return "", "", 0, false
	}
	t := j + 1
	for k := t; k < len(q); k++ {
		switch q[k] {
		case '\'', '"', '`':
			quote := q[k]
			for k++; k < len(q) && q[k] != quote; k++ {
				if q[k] == '\\' {
					k++
				}
			}
		case '}':
			return name, string(q[t:k]), t, true
		case '{', ';':
			return "", "", 0, false
		}
	}
	return "", "", 0, false
}

// quoted reads a literal or quoted identifier: a backslash escapes the next
// byte, a doubled quote is one quote.
func (l *lexer) quoted(quote byte) (string, bool) {
	var b strings.Builder
	l.i++
	for l.i < len(l.q) {
		c := l.q[l.i]
		switch {
		case c == '\\':
			if l.i+1 >= len(l.q) {
				return "", false
			}
			b.WriteByte(l.q[l.i+1])
			l.i += 2
		case c == quote:
			if l.i+1 < len(l.q) && l.q[l.i+1] == quote {
				b.WriteByte(quote)
				l.i += 2
				continue
			}
			l.i++
			return b.String(), true
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return "", false
}

func deniedCall(name string) bool {
	if deniedCalls[name] {
		return true
	}
	for _, p := range deniedCallPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checkQuery refuses a statement that would reach files, URLs, other hosts
// or programs, or, for the read-only account, change anything. text is the
// whole statement as the engine will read it; for an INSERT with inline
// data the scan stops where the data starts, which must be where the
// request parser (chdb.Inspect) put it too.
func checkQuery(text []byte, readOnly bool) error {
	shape := chdb.Inspect(text)
	l := &lexer{q: text}
	toks := make([]token, 0, 64)
	first := ""
	depth := 0
	formatAt := -1
scan:
	for {
		t := l.next()
		if l.err != nil {
			return l.err
		}
		switch t.kind {
		case tokEnd:
			break scan
		case tokWord:
			if first == "" {
				first = strings.ToUpper(t.text)
			}
		case tokPunct:
			switch t.text {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			case ";":
				if rest := l.next(); rest.kind != tokEnd || l.err != nil {
					return &refused{msg: "Multi-statements are not allowed", syntax: true}
				}
				break scan
			}
		}
		toks = append(toks, t)
		// Inline data of INSERT ... FORMAT <name> is not SQL (Values aside,
		// whose expressions the engine evaluates).
		if first == "INSERT" && depth == 0 && t.kind == tokWord && t.text == "format" {
			save := l.i
			name := l.next()
			if name.kind == tokWord && name.text != "values" {
				toks = append(toks, name)
				formatAt = t.start
				break scan
			}
			l.i = save
		}
	}
	if inspected := shape.Format != "" && !strings.EqualFold(shape.Format, "Values"); first == "INSERT" &&
		(formatAt >= 0 != inspected || formatAt >= 0 && formatAt != shape.FormatOffset) {
		return refusef("The query's inline data cannot be told from its text")
	}
	if deniedStatements[first] && !(first == "SYSTEM" && !readOnly && systemAllowed(toks)) {
		return refusef("%s statements are not allowed on this endpoint", first)
	}
	if readOnly && !readOnlyStatements[first] {
		return refusef("The read-only account may run SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN only, not %s", first)
	}

	// fromList[d] reports whether depth d is inside a FROM list, where a
	// comma introduces another table.
	fromList := map[int]bool{}
	depth = 0
	expectTable := false
	for i, t := range toks {
		switch t.kind {
		case tokWord:
			if deniedWords[t.text] {
				return refusef("%s is not allowed on this endpoint", strings.ToUpper(t.text))
			}
			if readOnly && t.text == "settings" {
				return refusef("The read-only account cannot change settings in the query")
			}
			if i+1 < len(toks) && toks[i+1].kind == tokPunct && toks[i+1].text == "(" && deniedCall(t.text) {
				return refusef("%s(...) reaches files, URLs, other hosts or programs and is not allowed on this endpoint", t.text)
			}
		case tokQuotedIdent:
			if strings.ContainsAny(t.text, `/\`) || expectTable && strings.ContainsAny(t.text, ".~") {
				return refusef("A file path as a table name is not allowed on this endpoint")
			}
			if i+1 < len(toks) && toks[i+1].kind == tokPunct && toks[i+1].text == "(" && deniedCall(t.text) {
				return refusef("%s(...) reaches files, URLs, other hosts or programs and is not allowed on this endpoint", t.text)
			}
		case tokString:
			if expectTable {
				return refusef("A file path as a table name is not allowed on this endpoint")
			}
		case tokPunct:
			switch t.text {
			case "(", "[":
				depth++
				fromList[depth] = false
			case ")", "]":
				fromList[depth] = false
				depth--
			}
		}
		expectTable = false
		switch {
		case t.kind == tokWord && t.text == "from":
			fromList[depth] = true
			expectTable = true
		case t.kind == tokWord && tablePosition[t.text]:
			expectTable = true
		case t.kind == tokWord && clauseEnds[t.text]:
			fromList[depth] = false
		case t.kind == tokPunct && t.text == "." && i > 0 && toks[i-1].kind != tokPunct:
			// db.<table>: the name after the dot is in the same position.
			expectTable = i >= 2 && tableAt(toks, i-2)
		case t.kind == tokPunct && t.text == ",":
			expectTable = fromList[depth]
		}
	}
	return nil
}

// tableAt reports whether toks[i] is a word after which a table name comes.
func tableAt(toks []token, i int) bool {
	if i < 0 {
		return false
	}
	t := toks[i]
	if t.kind == tokWord && (t.text == "from" || tablePosition[t.text]) {
		return true
	}
	return t.kind == tokPunct && t.text == ","
}
