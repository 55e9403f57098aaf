// Package alerts turns rule candidates into alerts people can act on: the
// lifecycle (pending, firing, resolved, with for and keep_firing_for),
// acknowledgements, silences, inhibition, grouping and routing, and
// reliable delivery through a persisted outbox to the notifiers in its
// subpackages (webhook, DingTalk, WeCom, Feishu, e-mail, Alertmanager).
package alerts
