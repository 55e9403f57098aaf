package alerts

import (
	"context"
	"time"
)

// Status is an alert's or a notification's state as receivers see it.
type Status string

// Statuses a notification can report.
const (
	StatusFiring   Status = "firing"
	StatusResolved Status = "resolved"
)

// Alert is one alert as it is told to a receiver.
type Alert struct {
	// ID is the alert's identity in the store (its lifecycle: one firing
	// episode of one fingerprint).
	ID string `json:"id"`
	// Fingerprint is the hash of the rule name and labels.
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	Status      Status            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	Expected    float64           `json:"expected"`
	// Explanation is one sentence on what was measured, e.g. "广州: 42
	// complaints in 15 min, expected 9".
	Explanation string `json:"explanation"`
	// Summary is the rule's own sentence for people.
	Summary  string    `json:"summary,omitempty"`
	StartsAt time.Time `json:"starts_at"`
	// EndsAt is zero while the alert fires.
	EndsAt time.Time `json:"ends_at,omitzero"`
	// URL links to the breakdown behind the alert (drill-down page).
	URL string `json:"url"`
}

// Notification is one message to one receiver: a group of alerts that
// share the route's group_by labels.
type Notification struct {
	// ID is unique per notification and stable across retries and
	// restarts: receivers use it as an idempotency key (webhook-id).
	ID string `json:"id"`
	// Receiver names the configured receiver.
	Receiver string `json:"receiver"`
	// GroupKey identifies the group (route and group_by label values).
	GroupKey string `json:"group_key"`
	// GroupLabels are the group_by labels and their values.
	GroupLabels map[string]string `json:"group_labels"`
	// Status is firing when any alert of the group fires, else resolved.
	Status Status  `json:"status"`
	Alerts []Alert `json:"alerts"`
	// Lang selects the template language: "zh-CN" or "en".
	Lang string `json:"lang"`
	// ExternalURL is the cockpit's base URL, for links.
	ExternalURL string `json:"external_url"`
	// CreatedAt is when the notification was first built.
	CreatedAt time.Time `json:"created_at"`
}

// Notifier delivers notifications to one kind of receiver. A failed
// delivery says whether trying again could help (a timeout, a 5xx, a
// robot's rate limit) or not (a 4xx, a bad signature, a disabled robot).
type Notifier interface {
	Notify(ctx context.Context, n *Notification) (retry bool, err error)
}
