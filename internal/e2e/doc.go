// Package e2e holds end-to-end tests of the cockpit binary's serve command
// against the real Apache Kafka broker of `make test` and the real
// ClickHouse engine. It has no code of its own.
package e2e
