package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// principalKey is the gin context key of the authenticated Token.
const principalKey = "api.principal"

// authenticator checks bearer tokens against the configured ones.
type authenticator struct {
	tokens   []Token
	sessions *sessions
	// sums are SHA-256 of the tokens: comparing fixed-length digests in
	// constant time does not reveal a token's length or a prefix.
	sums [][32]byte
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{tokens: tokens, sessions: newSessions(tokens)}
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

// SessionCookie is the cookie a browser signs in with (POST
// /api/v1/session): the pages cannot send an Authorization header with an
// EventSource, so they present a session this way. The value is an opaque,
// expiring session (see sessions), never the token; the cookie is
// HttpOnly, SameSite=Strict, and Secure over TLS.
const SessionCookie = "cockpit_session"

// sessionMaxAge is how long a browser stays signed in: a wall display is
// signed in once and left alone.
const sessionMaxAge = 30 * 24 * time.Hour

// require lets a request through when its token's role includes need.
// The token comes from "Authorization: Bearer …" or, for the pages, the
// session cookie. With no tokens configured everything is allowed (the
// server listens on loopback only; see CheckListen).
func (s *Server) require(need Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.auth.tokens) == 0 {
			c.Set(principalKey, Token{Role: RoleAdmin, Name: "local"})
			c.Next()
			return
		}
		t, ok := s.authenticate(c)
		if !ok {
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

// authenticate finds the request's token, or answers 401 and returns
// false.
func (s *Server) authenticate(c *gin.Context) (Token, bool) {
	h := c.GetHeader("Authorization")
	if h == "" {
		if ck, err := c.Request.Cookie(SessionCookie); err == nil && ck.Value != "" {
			// A cookie rides along with requests the page did not make
			// itself; SameSite=Strict keeps other sites from sending it, and
			// a change must also come from this origin.
			if !safeMethod(c.Request.Method) && !sameOrigin(c.Request) {
				writeError(c, http.StatusForbidden, "forbidden", "a change signed in by cookie must come from the cockpit's own pages")
				return Token{}, false
			}
			fp, _, _, ok := s.auth.sessions.open(ck.Value, s.now())
			var t Token
			if ok {
				t, ok = s.auth.tokenFor(fp)
			}
			if !ok {
				writeError(c, http.StatusUnauthorized, "unauthorized", "the session is no longer valid: sign in again")
				return Token{}, false
			}
			return t, true
		}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		c.Header("WWW-Authenticate", `Bearer realm="cockpit"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
		return Token{}, false
	}
	t, ok := s.auth.lookup(strings.TrimSpace(tok))
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="cockpit", error="invalid_token"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
		return Token{}, false
	}
	return t, true
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sessionJSON says who is signed in.
type sessionJSON struct {
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Required bool   `json:"auth_required"`
}

// GET /api/v1/session: who the request is signed in as; 401 when tokens
// are configured and it presents none.
func (s *Server) getSession(c *gin.Context) {
	if len(s.auth.tokens) == 0 {
		c.JSON(http.StatusOK, sessionJSON{Name: "local", Role: RoleAdmin})
		return
	}
	t, ok := s.authenticate(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, sessionJSON{Name: t.Name, Role: t.Role, Required: true})
}

// POST /api/v1/session {"token": "…"}: checks the token and sets the
// session cookie.
func (s *Server) signIn(c *gin.Context) {
	var body struct {
		Token string `json:"token"`
	}
	if err := decodeBody(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if len(s.auth.tokens) == 0 {
		c.JSON(http.StatusOK, sessionJSON{Name: "local", Role: RoleAdmin})
		return
	}
	if !sameOrigin(c.Request) {
		writeError(c, http.StatusForbidden, "forbidden", "sign in from the cockpit's own pages")
		return
	}
	t, ok := s.auth.lookup(strings.TrimSpace(body.Token))
	if !ok || body.Token == "" {
		writeError(c, http.StatusUnauthorized, "unauthorized", "the token is not valid")
		return
	}
	session := s.auth.sessions.issue(t.Token, s.now().Add(sessionMaxAge))
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: session, Path: "/", MaxAge: int(sessionMaxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(c.Request)})
	s.logger.Info("signed in", "name", t.Name, "role", t.Role, "remote", c.ClientIP())
	c.JSON(http.StatusOK, sessionJSON{Name: t.Name, Role: t.Role, Required: true})
}

// DELETE /api/v1/session: signs out: the session is revoked and the
// cookie cleared.
func (s *Server) signOut(c *gin.Context) {
	if ck, err := c.Request.Cookie(SessionCookie); err == nil {
		if _, nonce, expires, ok := s.auth.sessions.open(ck.Value, s.now()); ok {
			s.auth.sessions.revoke(nonce, expires, s.now())
		}
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(c.Request)})
	c.Status(http.StatusNoContent)
}

// isHTTPS says whether the browser reached us over TLS, directly or
// through a proxy that says so.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
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
