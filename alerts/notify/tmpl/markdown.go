package tmpl

import (
	"strings"
	"unicode"
)

// fullWidth maps markdown (and HTML) control characters to look-alikes
// that no robot dialect interprets.
var fullWidth = map[rune]rune{
	'\\': '＼', '*': '＊', '`': '｀', '~': '～',
	'[': '［', ']': '］', '(': '（', ')': '）',
	'<': '＜', '>': '＞', '#': '＃', '|': '｜', '!': '！',
	'&': '＆', '@': '＠', '$': '＄', '{': '｛', '}': '｝',
}

// EscapeMarkdown makes untrusted text inert in robot markdown: control
// characters become full-width look-alikes and line breaks become spaces,
// so the text can open neither emphasis, links, images, code, headings,
// quotes, tables, HTML tags, entities nor @-mentions. An underscore is
// replaced only at a word boundary, where it could delimit emphasis, so
// that names like complaint_spike stay as they are; '-', '+' and '=' only
// at the start, where they could make a list item or a heading underline.
func EscapeMarkdown(s string) string {
	rs := []rune(oneLine(s))
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		if fw, ok := fullWidth[r]; ok {
			b.WriteRune(fw)
			continue
		}
		switch r {
		case '_':
			if i == 0 || i == len(rs)-1 || !isWord(rs[i-1]) || !isWord(rs[i+1]) {
				b.WriteRune('＿')
				continue
			}
		case '-', '+', '=':
			if strings.TrimSpace(string(rs[:i])) == "" {
				b.WriteRune(r - '!' + '！') // the full-width form
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// MarkdownTitle is Title with its event-derived parts escaped for robot
// markdown.
func (m *Message) MarkdownTitle() string { return m.mdTitle }

// Markdown renders the message for a chat robot. lineBreak ends each line:
// "\n" for WeCom and Feishu, "\n\n" for DingTalk, whose markdown joins
// lines separated by a single newline.
func (m *Message) Markdown(lineBreak string) string {
	return m.markdown(lineBreak, true)
}

// MarkdownBody is Markdown without the title heading, for formats that
// carry the title elsewhere (a Feishu card header).
func (m *Message) MarkdownBody(lineBreak string) string {
	return m.markdown(lineBreak, false)
}

func (m *Message) markdown(lineBreak string, heading bool) string {
	w := m.w
	gap := ""
	if lineBreak == "\n" {
		gap = "\n"
	}
	var b strings.Builder
	line := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteString(lineBreak)
	}
	if heading {
		line("### ", m.mdTitle)
	}
	if m.AllResolved {
		if heading {
			b.WriteString(gap)
		}
		line(w.AllResolved)
	}
	for i, a := range m.Alerts {
		if heading || m.AllResolved || i > 0 {
			b.WriteString(gap)
		}
		line("**", EscapeMarkdown(a.Severity), "** ", EscapeMarkdown(a.Rule), " · ", a.Status)
		if a.Summary != "" {
			line(EscapeMarkdown(a.Summary))
		}
		if a.Explanation != "" {
			line(EscapeMarkdown(a.Explanation))
		}
		for _, l := range m.detailLines(a, EscapeMarkdown) {
			line(l)
		}
		if a.URL != "" {
			line("[", w.Details, "](", a.URL, ")")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// detailLines are the value, time and label lines of a, with the
// event-derived parts passed through esc.
func (m *Message) detailLines(a Alert, esc func(string) string) []string {
	w := m.w
	lines := []string{
		w.Value + " " + a.Value + w.valueSep + w.Expected + " " + a.Expected,
		w.StartedAt + " " + a.StartsAt,
	}
	if !a.Firing && a.EndsAt != "" {
		lines = append(lines, w.ResolvedAt+" "+a.EndsAt)
	}
	if len(a.Labels) > 0 {
		pairs := make([]string, len(a.Labels))
		for i, l := range a.Labels {
			pairs[i] = esc(l.Name) + "=" + esc(l.Value)
		}
		lines = append(lines, w.Labels+" "+strings.Join(pairs, " "))
	}
	return lines
}

// TextLines renders a as plain lines (severity and rule, summary,
// explanation, values, times, labels, link), each without line breaks.
func (m *Message) TextLines(a Alert) []string {
	lines := []string{oneLine(a.Severity + " " + a.Rule + " · " + a.Status)}
	if a.Summary != "" {
		lines = append(lines, oneLine(a.Summary))
	}
	if a.Explanation != "" {
		lines = append(lines, oneLine(a.Explanation))
	}
	lines = append(lines, m.detailLines(a, oneLine)...)
	if a.URL != "" {
		lines = append(lines, m.w.Details+": "+a.URL)
	}
	return lines
}

// Text renders the message as plain text.
func (m *Message) Text() string {
	var b strings.Builder
	b.WriteString(m.title)
	b.WriteString("\n")
	if m.AllResolved {
		b.WriteString("\n")
		b.WriteString(m.w.AllResolved)
		b.WriteString("\n")
	}
	for _, a := range m.Alerts {
		b.WriteString("\n")
		for _, l := range m.TextLines(a) {
			b.WriteString(l)
			b.WriteString("\n")
		}
	}
	return b.String()
}
