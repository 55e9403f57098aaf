// Package api is Cockpit's HTTP interface (SPEC §7), served with gin: KPI
// snapshots and breakdowns, time series, the conversations behind a number
// and their timelines, CSV export, alerts with ack and silences, the rule
// set with backtests, HTTP event ingest into Kafka, the live SSE stream
// (one KPI computation per tick shared by every viewer), the OpenAPI
// document, and liveness, readiness and Prometheus metrics.
//
// Every parameter is checked in params.go and every error is mapped to a
// status in errors.go; filter values reach ClickHouse only as query
// parameters. Bearer tokens carry roles (viewer, analyst, supervisor,
// admin); without tokens the server refuses to listen beyond loopback.
package api
