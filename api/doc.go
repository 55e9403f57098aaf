// Package api is Cockpit's HTTP interface, served with gin: liveness,
// readiness and Prometheus metrics now; the KPI, drill-down, alert, rule,
// stream and event-ingest endpoints of the API contract build on it.
package api
