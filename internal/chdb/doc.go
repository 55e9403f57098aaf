// Package chdb embeds the ClickHouse engine in the process: it loads
// libchdb.so (chDB) at run time with dlopen, so the binary builds and vets
// without the 559 MB library and needs it only when an Engine is opened.
//
// An Engine is one engine on one data directory with a small pool of
// connections; each connection is a ClickHouse session running one statement
// at a time. Statements carry their own parameters, settings and database;
// the pool scopes settings and database to the statement, because a pooled
// session outlives the request that borrowed it. A statement's settings are
// set before it, and changed by the next statement on the session only
// where that one's differ: no statement runs with settings it did not ask
// for, and one with the previous one's settings needs no SET.
//
// Locate and Ensure find the library (COCKPIT_CHDB_LIB, else the user cache)
// and fetch the pinned release with npm when it is missing.
//
// Engine facts this package depends on, measured on 26.5.3:
//   - the first chdb_connect installs crash handlers for SIGSEGV and
//     friends; Open puts the Go runtime's handlers back (see capi.go);
//   - query-level settings in the connect argv do not reach the session,
//     hence Config.Settings applied with SET;
//   - parameter values are TSV-escaped text (EscapeParam);
//   - a SELECT with no rows in Native format produces no bytes at all;
//   - a running statement cannot be cancelled through the C API.
package chdb
