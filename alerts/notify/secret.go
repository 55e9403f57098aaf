package notify

import (
	"encoding/json"
	"log/slog"
	"net/url"
)

const redacted = "<secret>"

// Secret is a string that must not appear in logs, errors or dumped
// configuration: formatting, logging and marshalling it all yield
// "<secret>". Convert it with string(s) where the value is really needed.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so that %#v redacts too.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON redacts the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML redacts the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// SecretURL is a URL whose path or query carries a credential (a robot's
// access_token, key or hook id). It prints as scheme://host/<secret> so
// logs still say where a notification went without saying how to send one.
type SecretURL string

// String implements fmt.Stringer.
func (u SecretURL) String() string { return RedactURL(string(u)) }

// GoString implements fmt.GoStringer so that %#v redacts too.
func (u SecretURL) GoString() string { return u.String() }

// LogValue implements slog.LogValuer.
func (u SecretURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalJSON redacts the URL.
func (u SecretURL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// MarshalYAML redacts the URL.
func (u SecretURL) MarshalYAML() (any, error) { return u.String(), nil }

// RedactURL keeps only the scheme and host of raw; user info, path, query
// and fragment are replaced by "<secret>". An unparsable value is redacted
// whole.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return redacted
	}
	out := u.Scheme + "://" + u.Host
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		out += "/" + redacted
	}
	return out
}
