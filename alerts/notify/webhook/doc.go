// Package webhook delivers notifications as JSON to any HTTP endpoint,
// signed per Standard Webhooks (https://www.standardwebhooks.com, spec
// 1.0.0): headers webhook-id (the notification ID, stable across retries,
// for the receiver to deduplicate on), webhook-timestamp (Unix seconds of
// the attempt) and webhook-signature, "v1," followed by the base64
// HMAC-SHA256 of "<id>.<timestamp>.<body>" under the key that the
// configured whsec_ secret encodes. Receivers can verify with any Standard
// Webhooks library.
//
// The body is the alerts.Notification as JSON with a "version" field.
// 2xx is success; 408, 429, 5xx and transport errors are worth a retry;
// redirects and other statuses are not.
package webhook
