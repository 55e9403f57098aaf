package tmpl

import (
	"strings"
	"time"
)

// Lang is a message language.
type Lang int

// Languages messages are written in.
const (
	English Lang = iota
	Chinese
)

// ParseLang maps a Notification.Lang value to a language: any zh variant
// ("zh", "zh-CN", "zh_CN", "zh-Hans") is Chinese, everything else English.
func ParseLang(s string) Lang {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "zh" || strings.HasPrefix(s, "zh-") || strings.HasPrefix(s, "zh_") {
		return Chinese
	}
	return English
}

// words is the vocabulary of one language.
type words struct {
	Firing, Resolved      string // title status words
	StatusFiring          string // per-alert status
	StatusResolved        string
	Severity              string
	Value, Expected       string
	StartedAt, ResolvedAt string
	Labels                string
	Details               string
	AllResolved           string
	titleOpen, titleClose string
	countSep              string
	valueSep              string
	severityNames         map[string]string
	location              *time.Location
}

var shanghai = loadShanghai()

// loadShanghai falls back to a fixed UTC+8 zone where no tz database is
// installed: China has had no daylight saving time since 1991.
func loadShanghai() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("CST", 8*60*60)
}

var vocab = map[Lang]*words{
	English: {
		Firing: "FIRING", Resolved: "RESOLVED",
		StatusFiring: "firing", StatusResolved: "resolved",
		Severity: "Severity", Value: "Value", Expected: "expected",
		StartedAt: "Started", ResolvedAt: "Resolved",
		Labels: "Labels", Details: "Details",
		AllResolved: "All alerts of this group are resolved.",
		titleOpen:   "[", titleClose: "] ", countSep: ":", valueSep: ", ",
		location: time.UTC,
	},
	Chinese: {
		Firing: "告警", Resolved: "已恢复",
		StatusFiring: "告警中", StatusResolved: "已恢复",
		Severity: "级别", Value: "当前值", Expected: "预期值",
		StartedAt: "开始时间", ResolvedAt: "恢复时间",
		Labels: "标签", Details: "查看详情",
		AllResolved: "该组告警已全部恢复。",
		titleOpen:   "【", titleClose: "】", countSep: ":", valueSep: "，",
		severityNames: map[string]string{
			"critical": "严重", "error": "错误", "warning": "警告", "info": "提示",
		},
		location: shanghai,
	},
}

func (w *words) severity(s string) string {
	if n, ok := w.severityNames[strings.ToLower(s)]; ok {
		return n
	}
	return s
}
