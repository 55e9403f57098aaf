// Package notifytest holds notification fixtures for the notifiers' tests.
package notifytest

import (
	"time"

	"github.com/cockpit-cs/cockpit/alerts"
)

// Start is the fixtures' alert start: 2024-05-01 10:00:00 in Shanghai.
var Start = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

// Hostile is label text that tries to break markdown and HTML.
const Hostile = "</script><img src=x onerror=alert(1)> **bold** [link](http://x) `code` # h\n> quote @all"

// Firing is a Chinese notification with two firing alerts of one rule.
func Firing() *alerts.Notification {
	return &alerts.Notification{
		ID:          "ntf_01HZX3",
		Receiver:    "ops",
		GroupKey:    `{}:{region="广州"}`,
		GroupLabels: map[string]string{"region": "广州"},
		Status:      alerts.StatusFiring,
		Lang:        "zh-CN",
		ExternalURL: "https://cockpit.example.com",
		CreatedAt:   Start.Add(2 * time.Minute),
		Alerts: []alerts.Alert{
			{
				ID: "a1", Fingerprint: "fp1", Rule: "complaint_spike", Severity: "critical",
				Status: alerts.StatusFiring, Labels: map[string]string{"region": "广州", "queue": "vip"},
				Value: 42, Expected: 9, Explanation: "广州: 15 分钟内投诉 42 起，预期 9 起",
				Summary: "区域投诉激增", StartsAt: Start,
				URL: "https://cockpit.example.com/drill?rule=complaint_spike&region=%E5%B9%BF%E5%B7%9E",
			},
			{
				ID: "a2", Fingerprint: "fp2", Rule: "complaint_spike", Severity: "warning",
				Status: alerts.StatusFiring, Labels: map[string]string{"region": "广州", "queue": "normal"},
				Value: 18.456, Expected: 7, Explanation: "广州: 15 分钟内投诉 18 起，预期 7 起",
				StartsAt: Start.Add(time.Minute),
				URL:      "https://cockpit.example.com/drill?rule=complaint_spike&queue=normal",
			},
		},
	}
}

// Resolved is an English notification whose only alert is resolved.
func Resolved() *alerts.Notification {
	return &alerts.Notification{
		ID:          "ntf_01HZX4",
		Receiver:    "ops",
		GroupKey:    `{}:{region="Guangzhou"}`,
		GroupLabels: map[string]string{"region": "Guangzhou"},
		Status:      alerts.StatusResolved,
		Lang:        "en",
		ExternalURL: "https://cockpit.example.com",
		CreatedAt:   Start.Add(30 * time.Minute),
		Alerts: []alerts.Alert{{
			ID: "a1", Fingerprint: "fp1", Rule: "complaint_spike", Severity: "critical",
			Status: alerts.StatusResolved, Labels: map[string]string{"region": "Guangzhou"},
			Value: 8, Expected: 9, Explanation: "Guangzhou: 8 complaints in 15 min, expected 9",
			StartsAt: Start, EndsAt: Start.Add(25 * time.Minute),
			URL: "https://cockpit.example.com/drill?rule=complaint_spike",
		}},
	}
}

// Injected is a firing notification whose label values, explanation and
// summary carry Hostile text, and whose link is a javascript: URL.
func Injected(lang string) *alerts.Notification {
	return &alerts.Notification{
		ID:          "ntf_evil",
		Receiver:    "ops",
		GroupLabels: map[string]string{"region": Hostile},
		Status:      alerts.StatusFiring,
		Lang:        lang,
		CreatedAt:   Start,
		Alerts: []alerts.Alert{{
			ID: "e1", Rule: "complaint_spike", Severity: "critical", Status: alerts.StatusFiring,
			Labels:      map[string]string{"region": Hostile},
			Explanation: Hostile, Summary: Hostile, Value: 1, Expected: 0, StartsAt: Start,
			URL: "javascript:alert(1)",
		}},
	}
}
