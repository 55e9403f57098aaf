// Package notify holds what the receiver integrations in its subpackages
// share: secret-carrying config types that never print their content.
//
// Each integration is a small subpackage (webhook, dingtalk, wecom, feishu,
// email, alertmanager) with a Config, a New constructor and a Notifier
// whose Notify method reports whether a failed delivery is worth retrying,
// in the manner of prometheus/alertmanager's notify package. Message texts
// for people come from the tmpl subpackage; receiver builds any of them
// from one tagged config. Retries themselves (back-off, the persisted
// outbox) are the caller's business: a Notifier makes exactly one attempt.
package notify
