package chstore

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// CredentialsFile is the name of the credentials file in the store's data
// directory.
const CredentialsFile = "credentials.json"

// Credentials are the two accounts of the endpoint: the product's own
// (everything the guard allows) and a read-only one for people who query
// the store by hand.
type Credentials struct {
	User             string `json:"user"`
	Password         string `json:"password"`
	ReadOnlyUser     string `json:"readonly_user"`
	ReadOnlyPassword string `json:"readonly_password"`
}

// Validate reports whether c can guard an endpoint.
func (c Credentials) Validate() error {
	if c.User == "" || c.Password == "" || c.ReadOnlyUser == "" || c.ReadOnlyPassword == "" {
		return errors.New("chstore: credentials need a user, a password, a read-only user and its password")
	}
	if c.User == c.ReadOnlyUser {
		return errors.New("chstore: the read-only user must differ from the user")
	}
	return nil
}

// DSN is the clickhouse-go DSN of the product's account on the endpoint at
// addr (host:port), bound to database ("" = the default).
func (c Credentials) DSN(addr, database string) string {
	u := url.URL{Scheme: "http", User: url.UserPassword(c.User, c.Password), Host: addr, Path: "/" + database}
	return u.String()
}

// LoadOrCreateCredentials reads the credentials file of the data directory
// dir, or creates it with fresh random passwords (mode 0600) on first start;
// created reports the latter. A file readable by others is refused.
func LoadOrCreateCredentials(dir string) (c Credentials, created bool, err error) {
	path := filepath.Join(dir, CredentialsFile)
	c, err = ReadCredentials(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, false, fmt.Errorf("cannot create the store's data directory: %w", err)
	}
	c = Credentials{User: "cockpit", Password: randomSecret(), ReadOnlyUser: "reader", ReadOnlyPassword: randomSecret()}
	data, _ := json.MarshalIndent(c, "", "  ")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		c, err = ReadCredentials(path)
		return c, false, err
	}
	if err != nil {
		return c, false, fmt.Errorf("cannot create %s: %w", path, err)
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return c, false, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return c, true, nil
}

// ReadCredentials reads a credentials file written by
// LoadOrCreateCredentials. A file that others may read is refused.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	info, err := os.Stat(path)
	if err != nil {
		return c, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("%s is readable by other users (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func randomSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// account is who a request authenticated as.
type account int

const (
	accountNone account = iota
	accountWriter
	accountReader
)

// authenticate reads the credentials of r the ways ClickHouse's HTTP
// interface takes them: Basic authentication, the X-ClickHouse-User and
// X-ClickHouse-Key headers, or the user and password URL parameters.
func (c Credentials) authenticate(r *http.Request) account {
	user, pass, ok := r.BasicAuth()
	if !ok {
		if u := r.Header.Get("X-ClickHouse-User"); u != "" {
			user, pass, ok = u, r.Header.Get("X-ClickHouse-Key"), true
		} else if q := r.URL.Query(); q.Has("user") {
			user, pass, ok = q.Get("user"), q.Get("password"), true
		}
	}
	if !ok {
		return accountNone
	}
	// Both comparisons always run, so timing tells nothing of which
	// account a guess came near.
	w := equal(user, c.User) & equal(pass, c.Password)
	rd := equal(user, c.ReadOnlyUser) & equal(pass, c.ReadOnlyPassword)
	switch {
	case w == 1:
		return accountWriter
	case rd == 1:
		return accountReader
	}
	return accountNone
}

func equal(a, b string) int { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) }

// browserRequest reports whether r carries the headers a web browser adds
// to a page's requests; the endpoint refuses them, so no web page can use
// the store through the browser of someone on this machine.
func browserRequest(r *http.Request) (string, bool) {
	for _, h := range []string{"Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest"} {
		if r.Header.Get(h) != "" {
			return h, true
		}
	}
	return "", false
}
