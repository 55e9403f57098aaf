package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// principalKey is the gin context key of the authenticated Token.
const principalKey = "api.principal"

// authenticator checks bearer tokens against the configured ones.
type authenticator struct {
	tokens []Token
	// sums are SHA-256 of the tokens: comparing fixed-length digests in
	// constant time does not reveal a token's length or a prefix.
	sums [][32]byte
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{tokens: tokens}
	for _, t := range tokens {
		a.sums = append(a.sums, sha256.Sum256([]byte(t.Token)))
	}
	return a
}

// lookup returns the token matching presented. Every configured token is
// compared, so the time taken does not say which one matched.
func (a *authenticator) lookup(presented string) (Token, bool) {
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range a.sums {
		if subtle.ConstantTimeCompare(sum[:], a.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found], true
}

// require lets a request through when its token's role includes need.
// With no tokens configured everything is allowed (the server listens on
// loopback only; see CheckListen).
func (s *Server) require(need Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.auth.tokens) == 0 {
			c.Set(principalKey, Token{Role: RoleAdmin, Name: "local"})
			c.Next()
			return
		}
		h := c.GetHeader("Authorization")
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			c.Header("WWW-Authenticate", `Bearer realm="cockpit"`)
			writeError(c, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
			return
		}
		t, ok := s.auth.lookup(strings.TrimSpace(tok))
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="cockpit", error="invalid_token"`)
			writeError(c, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
			return
		}
		if !t.Role.allows(need) {
			writeError(c, http.StatusForbidden, "forbidden", "role "+string(t.Role)+" may not do this; it needs "+string(need))
			return
		}
		c.Set(principalKey, t)
		c.Next()
	}
}

// principal returns who made the request.
func principal(c *gin.Context) Token {
	if v, ok := c.Get(principalKey); ok {
		if t, ok := v.(Token); ok {
			return t
		}
	}
	return Token{}
}
