// Package chstore is the embedded ClickHouse store: an http.Handler that
// speaks ClickHouse's HTTP interface on top of the in-process engine of
// package chdb, so the product has one client path — clickhouse-go/v2 with
// Protocol: clickhouse.HTTP here, native TCP against real servers.
//
// What it does for each request:
//   - a request carrying a browser's Origin or Sec-Fetch-* headers is
//     refused, and every query authenticates (Basic, X-ClickHouse-User/Key
//     or user/password parameters) as the product's account or a read-only
//     one, kept in the data directory's credentials.json (credentials.go);
//   - the query text is checked before the engine sees it, so that nothing
//     reaches a file, a URL, another host or a program (guard.go);
//   - the query comes from the body, or from the query URL parameter with
//     the body (e.g. Native insert data) appended after a newline;
//   - param_<name> URL parameters bind {name:Type} placeholders through the
//     engine's parameter API, never by interpolation;
//   - every other URL parameter that is not part of the HTTP interface
//     (query, database, default_format, client_protocol_version, compress,
//     decompress, user, password, query_id, session_*, ...) is a setting
//     for this query only, if it is on the short list the endpoint allows;
//   - Native results, which the engine writes at protocol revision 0, are
//     re-encoded for the client_protocol_version the client sent;
//   - engine exceptions become HTTP 500 with X-ClickHouse-Exception-Code
//     and a "Code: N. DB::Exception: ..." body.
//
// Results are buffered whole by the engine, so an exception is always known
// before the status line is written: there are no mid-stream exceptions.
// Run serves it as its own process (`cockpit store`).
package chstore
