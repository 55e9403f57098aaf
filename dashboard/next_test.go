package dashboard

import (
	"net/url"
	"strings"
	"testing"
)

// browserTarget resolves next against the sign-in page the way a browser
// does: tabs and line breaks dropped, backslashes read as slashes.
func browserTarget(t testing.TB, next string) *url.URL {
	t.Helper()
	clean := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, next)
	base, _ := url.Parse("http://cockpit.local/login")
	u, err := base.Parse(clean)
	if err != nil {
		return base
	}
	return u
}

func TestSafeNext(t *testing.T) {
	for _, hostile := range []string{
		"/\t/evil.example/path", "/\n/evil.example", "/\r/evil.example", "//evil.example", "/\\evil.example",
		"\\/evil.example", "https://evil.example/", "javascript:alert(1)", "http:/evil.example", "evil.example",
		"/%2F/evil.example", "/%5Cevil.example", " //evil.example", "/\x00/x", "/" + strings.Repeat("a", 3000),
	} {
		if got := SafeNext(hostile); got != "/wall" {
			t.Errorf("SafeNext(%q) = %q, want /wall", hostile, got)
		}
	}
	for _, ok := range []string{"/wall", "/quality?region=%E5%B9%BF%E5%B7%9E&lang=zh-CN", "/alerts#firing", "/quality?next=//x"} {
		if got := SafeNext(ok); got != ok {
			t.Errorf("SafeNext(%q) = %q", ok, got)
		}
	}
}

// TestLoginPageNext: the sign-in page hands its script only a checked
// place to return to; /login?next=/%09/host sent the browser away before.
func TestLoginPageNext(t *testing.T) {
	e := newEngine(t, Deps{})
	for raw, want := range map[string]string{
		"/%09/evil.example/path": "/wall",
		"/%0a/evil.example":      "/wall",
		"/%0d/evil.example":      "/wall",
		"%2F%2Fevil.example":     "/wall",
		"%2Fquality%3Flang%3Den": "/quality?lang=en",
	} {
		_, body := get(t, e, "/login?next="+raw, nil)
		if got := pageConfigOf(t, body).Next; got != want {
			t.Errorf("next=%s: config next = %q, want %q", raw, got, want)
		}
	}
}

// FuzzSafeNext: whatever the login page is given, where the browser goes
// after sign-in is a page of this server.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/wall", "/\t/evil.example", "//x", "/\\x", "https://x", "/quality?a=b#c", "/%2e%2e/x", "/ /x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		next := SafeNext(raw)
		if next != raw && next != "/wall" {
			t.Fatalf("SafeNext(%q) = %q: neither the input nor the default", raw, next)
		}
		if u := browserTarget(t, next); u.Scheme != "http" || u.Host != "cockpit.local" {
			t.Fatalf("SafeNext(%q) = %q leads the browser to %s", raw, next, u)
		}
	})
}
