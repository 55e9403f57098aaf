// Package schemas is the event contract of Cockpit: the Go types of the
// conversation events of contract v1, their validation (the one place that
// decides whether an event is acceptable, used by ingest and by the HTTP
// event API alike), the same contract as a JSON Schema document, and the
// versioned ClickHouse DDL that stores the events.
//
// It imports nothing else of the project, so every other package can depend
// on it.
package schemas
