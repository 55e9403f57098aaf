package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"
)

// A session cookie is opaque: it names the token it was signed in with by a
// fingerprint only, carries its expiry, and is sealed with an HMAC keyed by
// every configured token, so every instance with the same tokens accepts
// it and rotating any token ends every session. Signing out revokes the
// session on the instance that answers it (until it would have expired).
//
//	value = base64url(fingerprint[8] | expires unix[8] | nonce[8]) "." base64url(hmac[32])
type sessions struct {
	key []byte

	mu      sync.Mutex
	revoked map[uint64]time.Time // nonce -> expiry
}

// maxRevoked bounds the revocation list; the oldest entries go first.
const maxRevoked = 100_000

func newSessions(tokens []Token) *sessions {
	all := make([]string, 0, len(tokens))
	for _, t := range tokens {
		all = append(all, t.Token)
	}
	slices.Sort(all)
	mac := hmac.New(sha256.New, []byte("cockpit session v1"))
	for _, t := range all {
		mac.Write([]byte(t))
		mac.Write([]byte{0})
	}
	return &sessions{key: mac.Sum(nil), revoked: map[uint64]time.Time{}}
}

func fingerprint(token string) [8]byte {
	sum := sha256.Sum256([]byte("cockpit token " + token))
	return [8]byte(sum[:8])
}

// issue returns a session value for token, valid until expires.
func (s *sessions) issue(token string, expires time.Time) string {
	var payload [24]byte
	fp := fingerprint(token)
	copy(payload[:8], fp[:])
	binary.BigEndian.PutUint64(payload[8:16], uint64(expires.Unix()))
	_, _ = rand.Read(payload[16:])
	return base64.RawURLEncoding.EncodeToString(payload[:]) + "." + base64.RawURLEncoding.EncodeToString(s.seal(payload[:]))
}

func (s *sessions) seal(payload []byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write(payload)
	return mac.Sum(nil)
}

// open checks a session value: sealed here, not expired, not revoked. It
// returns the token fingerprint and the nonce.
func (s *sessions) open(value string, now time.Time) (fp [8]byte, nonce uint64, expires time.Time, ok bool) {
	p64, m64, found := strings.Cut(value, ".")
	if !found || len(value) > 128 {
		return fp, 0, expires, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || len(payload) != 24 || !hmac.Equal(mac, s.seal(payload)) {
		return fp, 0, expires, false
	}
	expires = time.Unix(int64(binary.BigEndian.Uint64(payload[8:16])), 0)
	if !now.Before(expires) {
		return fp, 0, expires, false
	}
	nonce = binary.BigEndian.Uint64(payload[16:])
	s.mu.Lock()
	_, gone := s.revoked[nonce]
	s.mu.Unlock()
	if gone {
		return fp, 0, expires, false
	}
	return [8]byte(payload[:8]), nonce, expires, true
}

// revoke ends a session before its expiry.
func (s *sessions) revoke(nonce uint64, expires, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revoked) >= maxRevoked {
		for n, exp := range s.revoked {
			if !now.Before(exp) || len(s.revoked) >= maxRevoked {
				delete(s.revoked, n)
			}
		}
	}
	s.revoked[nonce] = expires
}

// tokenFor returns the configured token whose fingerprint is fp; every
// token is compared, so timing does not say which.
func (a *authenticator) tokenFor(fp [8]byte) (Token, bool) {
	found := -1
	for i, t := range a.tokens {
		f := fingerprint(t.Token)
		if subtle.ConstantTimeCompare(f[:], fp[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found], true
}
