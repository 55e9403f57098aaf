// Package email delivers notifications by SMTP as multipart/alternative
// mail: a plain-text part and an HTML part rendered with html/template, so
// that everything from events is escaped.
//
// Transport security is STARTTLS (default, port 587), implicit TLS
// ("tls", port 465) or none, which is allowed only for a relay on the
// loopback interface. With a username the notifier authenticates with
// AUTH PLAIN, or LOGIN when the server offers only that, and never over an
// unencrypted connection to another host.
//
// Headers: From, To, Subject (RFC 2047 encoded when not ASCII), Date,
// Message-ID derived from the notification ID (so a retried delivery
// carries the same ID and mail clients can deduplicate), MIME-Version and
// Auto-Submitted: auto-generated (RFC 3834).
//
// Retry decisions: connection and TLS transport errors, timeouts and
// temporary 4xx replies are retried; permanent 5xx replies (bad
// recipient, authentication failed, message refused), a server without
// STARTTLS when it is required and certificate verification failures are
// not.
package email
