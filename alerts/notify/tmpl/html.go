package tmpl

import (
	"fmt"
	"html/template"
	"strings"
)

// htmlTemplate is rendered with html/template, which escapes every value
// for its context (text, attribute, URL).
var htmlTemplate = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="{{.HTMLLang}}">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family:sans-serif;font-size:14px;color:#222">
<h2 style="color:{{if .M.AllResolved}}#2e7d32{{else}}#c62828{{end}}">{{.Title}}</h2>
{{- if .M.AllResolved}}
<p>{{.AllResolvedText}}</p>
{{- end}}
{{- range .M.Alerts}}
<table style="border-collapse:collapse;margin:12px 0;border-left:4px solid {{if .Firing}}#c62828{{else}}#2e7d32{{end}};padding-left:8px">
<tr><td colspan="2"><strong>{{.Severity}}</strong> {{.Rule}} · {{.Status}}</td></tr>
{{- if .Summary}}
<tr><td colspan="2">{{.Summary}}</td></tr>
{{- end}}
{{- if .Explanation}}
<tr><td colspan="2">{{.Explanation}}</td></tr>
{{- end}}
<tr><td>{{$.W.Value}}</td><td>{{.Value}} ({{$.W.Expected}} {{.Expected}})</td></tr>
<tr><td>{{$.W.StartedAt}}</td><td>{{.StartsAt}}</td></tr>
{{- if .EndsAt}}
<tr><td>{{$.W.ResolvedAt}}</td><td>{{.EndsAt}}</td></tr>
{{- end}}
{{- if .Labels}}
<tr><td>{{$.W.Labels}}</td><td>{{range .Labels}}<code>{{.Name}}={{.Value}}</code> {{end}}</td></tr>
{{- end}}
{{- if .URL}}
<tr><td colspan="2"><a href="{{.URL}}">{{$.W.Details}}</a></td></tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`))

// HTML renders the message as an HTML document for e-mail.
func (m *Message) HTML() (string, error) {
	lang := "en"
	if m.Lang == Chinese {
		lang = "zh-CN"
	}
	var b strings.Builder
	err := htmlTemplate.Execute(&b, struct {
		M               *Message
		W               *words
		Title           string
		HTMLLang        string
		AllResolvedText string
	}{m, m.w, m.title, lang, m.w.AllResolved})
	if err != nil {
		return "", fmt.Errorf("render HTML: %w", err)
	}
	return b.String(), nil
}
