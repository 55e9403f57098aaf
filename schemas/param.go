package schemas

import "strings"

// paramEscaper is the escaping of ClickHouse's escaped (TSV) format.
var paramEscaper = strings.NewReplacer(
	`\`, `\\`,
	"\t", `\t`,
	"\n", `\n`,
	"\r", `\r`,
	"\x00", `\0`,
)

// StringParam is s as the text of a {name:String} query parameter.
//
// ClickHouse reads every query parameter in its escaped format, over HTTP
// (param_<name>) and the native protocol alike, and clickhouse-go passes
// the values of clickhouse.WithParameters through as they are: unescaped,
// `\N` would be read as NULL (an empty String), a lone
// backslash would fail the query and `a\0b` would match a NUL. Every
// String parameter that carries a value from outside (a filter, an id from
// a path) goes through here, so it reaches the engine byte for byte.
func StringParam(s string) string {
	return paramEscaper.Replace(s)
}

// StringsParam is ss as the text of a {name:Array(String)} query
// parameter: each element a literal of WriteQuoted, so any bytes reach the
// engine as they are.
func StringsParam(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		WriteQuoted(&b, s)
	}
	b.WriteByte(']')
	return b.String()
}

// WriteQuoted writes s as a ClickHouse string literal. Quote and backslash
// are escaped, and so is every control byte, so the literal is one line of
// printable text whatever s holds.
func WriteQuoted(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}
