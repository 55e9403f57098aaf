// Package tmpl renders notifications for people, in Simplified Chinese or
// English as Notification.Lang asks: a one-line title, robot markdown, plain
// text and HTML.
//
// Everything that comes from events or rules (label values, explanations,
// summaries) is treated as untrusted. Robot markdown dialects differ in
// whether a backslash escape works (DingTalk shows the backslash), so
// markdown control characters in such text are replaced by their
// full-width forms (* → ＊, [ → ［, < → ＜ …) and line breaks by spaces: the
// text stays readable and cannot open emphasis, links, headings, quotes or
// HTML tags. HTML goes through html/template. Drill-down links are kept
// only when they are absolute http(s) URLs and are percent-encoded so they
// cannot end a markdown link early.
package tmpl
