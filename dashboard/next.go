package dashboard

import (
	"net/url"
	"strings"
)

// defaultNext is where sign-in leads when the page asked for nowhere safe.
const defaultNext = "/wall"

// SafeNext returns raw, the page to return to after sign-in, when it is a
// path on this server, and "/wall" otherwise. Browsers drop tabs and line
// breaks from a URL and read a backslash as a slash, so "/\t/evil.example",
// "/\\evil.example" and "//evil.example" all lead to another host: any
// control character or backslash, a scheme, a host, or a path that does not
// start with exactly one slash is refused.
func SafeNext(raw string) string {
	if raw == "" || len(raw) > 2048 || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
		return defaultNext
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || r == '\\' || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			return defaultNext
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return defaultNext
	}
	// The path as the browser will see it: once decoded, it must still not
	// start with two slashes or a slash and a backslash.
	if strings.HasPrefix(u.Path, "//") || strings.HasPrefix(u.Path, "/\\") {
		return defaultNext
	}
	return raw
}
