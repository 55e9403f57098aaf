package tmpl

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
)

// Options adjust rendering.
type Options struct {
	// Location is the time zone of rendered times. Nil means Asia/Shanghai
	// for Chinese and UTC for English.
	Location *time.Location
}

// LoadOptions builds Options from a configured IANA time zone name; ""
// keeps the per-language default.
func LoadOptions(timeZone string) (Options, error) {
	if timeZone == "" {
		return Options{}, nil
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return Options{}, fmt.Errorf("load time zone %q: %w", timeZone, err)
	}
	return Options{Location: loc}, nil
}

// Label is one label of an alert.
type Label struct {
	Name, Value string
}

// Alert is one alert, formatted for people. Its strings are raw: escape
// them for the target format (or use the Message renderers).
type Alert struct {
	Rule        string
	Severity    string // localised severity name
	Firing      bool
	Status      string // localised status
	Summary     string
	Explanation string
	Value       string
	Expected    string
	StartsAt    string
	EndsAt      string // empty while firing
	// URL is the drill-down link, kept only when it is an absolute http(s)
	// URL, and percent-encoded so that it can sit in markdown or HTML.
	URL    string
	Labels []Label
}

// Message is a notification prepared for rendering.
type Message struct {
	Lang     Lang
	Firing   int
	Resolved int
	// AllResolved is true when the notification reports only resolved
	// alerts.
	AllResolved bool
	// Alerts lists firing alerts first, then resolved ones, each group by
	// start time.
	Alerts  []Alert
	title   string
	mdTitle string
	w       *words
}

// New prepares n for rendering.
func New(n *alerts.Notification, opts Options) *Message {
	lang := ParseLang(n.Lang)
	w := vocab[lang]
	loc := opts.Location
	if loc == nil {
		loc = w.location
	}
	m := &Message{Lang: lang, w: w}
	sorted := slices.Clone(n.Alerts)
	sort.SliceStable(sorted, func(i, j int) bool {
		fi, fj := sorted[i].Status != alerts.StatusResolved, sorted[j].Status != alerts.StatusResolved
		if fi != fj {
			return fi
		}
		return sorted[i].StartsAt.Before(sorted[j].StartsAt)
	})
	for _, a := range sorted {
		firing := a.Status != alerts.StatusResolved
		if firing {
			m.Firing++
		} else {
			m.Resolved++
		}
		v := Alert{
			Rule:        a.Rule,
			Severity:    w.severity(a.Severity),
			Firing:      firing,
			Status:      w.StatusFiring,
			Summary:     a.Summary,
			Explanation: a.Explanation,
			Value:       FormatNumber(a.Value),
			Expected:    FormatNumber(a.Expected),
			StartsAt:    formatTime(a.StartsAt, loc),
			URL:         SafeURL(a.URL),
		}
		if !firing {
			v.Status = w.StatusResolved
			v.EndsAt = formatTime(a.EndsAt, loc)
		}
		names := make([]string, 0, len(a.Labels))
		for k := range a.Labels {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			v.Labels = append(v.Labels, Label{Name: k, Value: a.Labels[k]})
		}
		m.Alerts = append(m.Alerts, v)
	}
	m.AllResolved = m.Firing == 0
	m.title = buildTitle(n, m, w, oneLine)
	m.mdTitle = buildTitle(n, m, w, EscapeMarkdown)
	return m
}

// DetailsText is the localised caption of drill-down links.
func (m *Message) DetailsText() string { return m.w.Details }

// AllResolvedText is the localised sentence saying that every alert of the
// group is resolved.
func (m *Message) AllResolvedText() string { return m.w.AllResolved }

// Title is the one-line subject, e.g. "[FIRING:2] complaint_spike 广州" or
// "【告警:2】complaint_spike 广州". It is plain text without line breaks;
// escape it for markdown with EscapeMarkdown.
func (m *Message) Title() string { return m.title }

// buildTitle passes the rule names and group label values through esc.
func buildTitle(n *alerts.Notification, m *Message, w *words, esc func(string) string) string {
	var b strings.Builder
	b.WriteString(w.titleOpen)
	if m.Firing > 0 {
		b.WriteString(w.Firing)
		b.WriteString(w.countSep)
		b.WriteString(strconv.Itoa(m.Firing))
	} else {
		b.WriteString(w.Resolved)
	}
	b.WriteString(w.titleClose)

	var rules []string
	for _, a := range n.Alerts {
		if !slices.Contains(rules, a.Rule) {
			rules = append(rules, a.Rule)
		}
	}
	sort.Strings(rules)
	if len(rules) > 3 {
		rules = append(rules[:3], "…")
	}
	parts := []string{esc(strings.Join(rules, ","))}
	keys := make([]string, 0, len(n.GroupLabels))
	for k := range n.GroupLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := n.GroupLabels[k]
		if k == "alertname" || k == "rule" || v == "" || slices.Contains(rules, v) {
			continue
		}
		parts = append(parts, esc(v))
	}
	b.WriteString(strings.Join(parts, " "))
	return strings.TrimSpace(b.String())
}

// FormatNumber prints v without exponent and with at most two decimals.
func FormatNumber(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// oneLine replaces line breaks and other control characters by spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// SafeURL returns raw when it is an absolute http or https URL, with the
// bytes that could end a markdown link or an HTML attribute
// percent-encoded; otherwise "".
func SafeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	s := u.String()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("()<>\"'`[]{}|^\\", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Truncate cuts s to at most maxBytes bytes at a rune boundary, preferring
// a line boundary near the end, and marks the cut with "…".
func Truncate(s string, maxBytes int) string {
	const mark = "\n…"
	if len(s) <= maxBytes {
		return s
	}
	if maxBytes < len(mark) {
		return ""
	}
	cut := maxBytes - len(mark)
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	if nl := strings.LastIndexByte(s[:cut], '\n'); nl >= cut*3/4 {
		cut = nl
	}
	return s[:cut] + mark
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
