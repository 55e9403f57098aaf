// Package app wires Cockpit's parts into the commands of the cockpit
// binary: serve (against real Kafka and ClickHouse), demo (everything
// embedded), store (the embedded ClickHouse endpoint on its own), migrate,
// simulate and version. It is the only package that knows every concrete
// type; the parts themselves depend only on what they consume.
package app
