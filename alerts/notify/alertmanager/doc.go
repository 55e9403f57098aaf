// Package alertmanager forwards alerts to a Prometheus Alertmanager through
// its API v2, POST /api/v2/alerts, for shops that route alerts there.
//
// Each alert becomes {labels, annotations, startsAt, endsAt,
// generatorURL}: labels are the alert's labels plus alertname (the rule)
// and severity, with names outside [a-zA-Z_][a-zA-Z0-9_]* rewritten to
// underscores; annotations carry summary, description, explanation, value
// and expected; generatorURL is the drill-down link.
//
// Resolved alerts carry their endsAt. Firing alerts carry none, so
// Alertmanager applies its resolve_timeout (default 5m): the alert stays
// active as long as it is re-sent within that time, which the route's
// repeat interval must ensure (keep it below resolve_timeout), and it
// resolves on its own if the cockpit goes away. A fixed future endsAt
// would instead have to be guessed per rule.
//
// 2xx is success; 408, 429, 5xx and transport errors are retried; 400
// (invalid alerts), 401, 403 and the rest are not.
package alertmanager
