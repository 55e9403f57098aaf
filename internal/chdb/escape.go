package chdb

import "strings"

// paramEscaper is TSV's escaping, which is how the engine reads a parameter
// value (deserializeTextEscaped): a raw tab or newline would end the field and
// fail with BAD_QUERY_PARAMETER, and a lone backslash would start an escape.
var paramEscaper = strings.NewReplacer(
	`\`, `\\`,
	"\t", `\t`,
	"\n", `\n`,
	"\r", `\r`,
	"\x00", `\0`,
)

// EscapeParam encodes a plain string as the text of a query parameter, so
// that {name:String} receives exactly s. Query and the HTTP interface pass
// parameter values through unchanged, as ClickHouse's own HTTP interface
// does (clickhouse-go escapes Named values itself), so callers holding raw
// strings use this.
func EscapeParam(s string) string {
	return paramEscaper.Replace(s)
}
