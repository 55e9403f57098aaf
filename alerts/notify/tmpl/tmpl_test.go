package tmpl

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cockpit-cs/cockpit/alerts/notify/internal/notifytest"
)

func TestTitles(t *testing.T) {
	en := notifytest.Firing()
	en.Lang = "en"
	for _, tc := range []struct {
		name string
		m    *Message
		want string
	}{
		{"zh firing", New(notifytest.Firing(), Options{}), "【告警:2】complaint_spike 广州"},
		{"en firing", New(en, Options{}), "[FIRING:2] complaint_spike 广州"},
		{"en resolved", New(notifytest.Resolved(), Options{}), "[RESOLVED] complaint_spike Guangzhou"},
	} {
		if got := tc.m.Title(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	zr := notifytest.Resolved()
	zr.Lang = "zh_CN"
	if got := New(zr, Options{}).Title(); got != "【已恢复】complaint_spike Guangzhou" {
		t.Errorf("zh resolved: %q", got)
	}
}

func TestParseLang(t *testing.T) {
	for in, want := range map[string]Lang{"zh-CN": Chinese, "zh": Chinese, "ZH_cn": Chinese, "zh-Hans": Chinese, "en": English, "": English, "zhx": English, "fr": English} {
		if got := ParseLang(in); got != want {
			t.Errorf("ParseLang(%q) = %v", in, got)
		}
	}
}

func TestTimeZones(t *testing.T) {
	zh := New(notifytest.Firing(), Options{})
	if zh.Alerts[0].StartsAt != "2024-05-01 10:00:00 CST" {
		t.Errorf("zh default zone: %s", zh.Alerts[0].StartsAt)
	}
	en := New(notifytest.Resolved(), Options{})
	if en.Alerts[0].StartsAt != "2024-05-01 02:00:00 UTC" {
		t.Errorf("en default zone: %s", en.Alerts[0].StartsAt)
	}
	opts, err := LoadOptions("Europe/Berlin")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	if got := New(notifytest.Firing(), opts).Alerts[0].StartsAt; got != "2024-05-01 04:00:00 CEST" {
		t.Errorf("override: %s", got)
	}
	if _, err := LoadOptions("No/Such_Zone"); err == nil {
		t.Error("bad zone accepted")
	}
}

func TestEscapeMarkdown(t *testing.T) {
	for in, want := range map[string]string{
		"complaint_spike":      "complaint_spike",
		"_em_":                 "＿em＿",
		"**bold**":             "＊＊bold＊＊",
		"[link](http://x)":     "［link］（http://x）",
		"- item":               "－ item",
		"a - b = c + d":        "a - b = c + d",
		"# h":                  "＃ h",
		"line1\n> quote":       "line1 ＞ quote",
		"<font color=red>":     "＜font color=red＞",
		"&lt;":                 "＆lt;",
		"@all":                 "＠all",
		"`x`":                  "｀x｀",
		"广州":                   "广州",
		"![img](http://x.png)": "！［img］（http://x.png）",
	} {
		if got := EscapeMarkdown(in); got != want {
			t.Errorf("EscapeMarkdown(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzEscapeMarkdown(f *testing.F) {
	f.Add(notifytest.Hostile)
	f.Add("a_b_c")
	f.Fuzz(func(t *testing.T, s string) {
		out := EscapeMarkdown(s)
		if strings.ContainsAny(out, "*`[]()<>#|\\\n\r&@") {
			t.Errorf("control character survived: %q → %q", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Errorf("invalid UTF-8 from %q", s)
		}
	})
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://c.example.com/d?a=1&b=(2)": "https://c.example.com/d?a=1&b=%282%29",
		"javascript:alert(1)":               "",
		"//evil.example.com":                "",
		"/relative":                         "",
		"http://x/a b":                      "http://x/a%20b",
		"https://x/广州":                      "https://x/%E5%B9%BF%E5%B7%9E",
	} {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("广州投诉", 100)
	for _, n := range []int{10, 11, 12, 13, 100, 401} {
		got := Truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("Truncate(_, %d) = %q (%d bytes)", n, got, len(got))
		}
	}
	if Truncate("short", 100) != "short" {
		t.Error("short text changed")
	}
	lines := "line one\nline two\nline three"
	if got := Truncate(lines, 22); got != "line one\nline two\n…" {
		t.Errorf("line-boundary cut: %q", got)
	}
}

func TestFormatNumber(t *testing.T) {
	for in, want := range map[float64]string{42: "42", 18.456: "18.46", 0.1 + 0.2: "0.3", 1e9: "1000000000", -3.5: "-3.5"} {
		if got := FormatNumber(in); got != want {
			t.Errorf("FormatNumber(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLEscapes(t *testing.T) {
	h, err := New(notifytest.Injected("en"), Options{}).HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<img", "</script>", "javascript:"} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML contains %q", bad)
		}
	}
}
