package session

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/auth"
)

// The endpoints' paths; mount ServeLogin with POST, ServeLogout with POST
// and ServeSession with GET.
const (
	LoginPath   = "/api/v1/login"
	LogoutPath  = "/api/v1/logout"
	SessionPath = "/api/v1/session"
)

// Error codes of the endpoints' JSON errors {"error", "message"}.
const (
	CodeBadRequest     = "bad_request"
	CodeBadCredentials = "bad_credentials"
	CodeRateLimited    = "rate_limited"
	CodeNoSession      = "no_session"
	CodeSessionExpired = "session_expired"
	CodeForbidden      = "forbidden"
	CodeInternal       = "internal_error"
)

// cookieMaxAge is how long the browser keeps the cookie: 400 days, the most
// browsers keep. The server decides whether the session it names is live
// (TTL, sliding); a browser-side expiry only lost kiosks their sessions
// when the page had stayed open, renewing the session over its WebSocket,
// longer than the cookie's last Max-Age.
const cookieMaxAge = 400 * 24 * time.Hour

// maxLoginBody caps a login request's body, in bytes.
const maxLoginBody = 4096

// Answer is the JSON of a successful login and of GET /api/v1/session.
type Answer struct {
	User string `json:"user"`
	// ID is the user's number from the config (the chat's user id).
	ID      int64     `json:"id,omitempty"`
	Role    auth.Role `json:"role"`
	Expires string    `json:"expires"` // RFC 3339, UTC
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}

func answer(id auth.Identity) Answer {
	return Answer{User: id.User, ID: id.ID, Role: id.Role, Expires: id.Expires.UTC().Format(time.RFC3339)}
}

// setCookie gives the browser the session's cookie: HttpOnly (no script
// reads it), SameSite=Strict (no other site's page sends it), Path=/, and
// Secure when the request came over TLS.
func setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: CookieName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// ServeLogin serves POST /api/v1/login: {"user","password"} as JSON.
func (m *Manager) ServeLogin(w http.ResponseWriter, r *http.Request) {
	addr := r.RemoteAddr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	if ok, wait := m.limit.allow(limitKey(r.RemoteAddr)); !ok {
		secs := int(wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "too many login attempts from this address: try again in "+strconv.Itoa(secs)+" s")
		return
	}
	// JSON only: a cross-site HTML form cannot send it without the
	// browser asking first (CORS), so no other site logs a browser in.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, CodeBadRequest, "send the credentials as application/json: {\"user\":\"...\",\"password\":\"...\"}")
		return
	}
	var req struct {
		User     *string `json:"user"`
		Password *string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody)).Decode(&req); err != nil || req.User == nil || req.Password == nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "want a JSON object {\"user\":\"...\",\"password\":\"...\"}")
		return
	}
	select {
	case m.checks <- struct{}{}:
	default: // MaxChecks running: refuse now rather than queue
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "too many logins being checked: try again in 1 s")
		return
	}
	cookie, id, ok, err := m.Login(*req.User, []byte(*req.Password))
	<-m.checks
	if err != nil {
		m.log.Error("login failed", m.logUser(*req.User), "err", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, "the session could not be stored")
		return
	}
	if !ok {
		m.log.Warn("login refused: bad credentials", m.logUser(*req.User), "remote", addr)
		writeError(w, http.StatusUnauthorized, CodeBadCredentials, "wrong user name or password")
		return
	}
	m.log.Info("login", "user", id.User, "role", id.Role, "remote", addr)
	setCookie(w, r, cookie, cookieMaxAge)
	writeJSON(w, http.StatusOK, answer(id))
}

// logUser is how a login's user name is logged: as typed only when it
// names a configured user; else "unknown user" and its length, since a
// password typed into the user box must not end up in the journal.
func (m *Manager) logUser(name string) slog.Attr {
	if _, _, ok := m.Lookup(name); ok {
		return slog.String("user", name)
	}
	return slog.String("user", "unknown user ("+strconv.Itoa(len(name))+" bytes)")
}

// ServeLogout serves POST /api/v1/logout: the session ends, the cookie is
// cleared; 204 whether or not there was a session. From another origin's
// page (its Origin header): 403 forbidden, and nothing ends.
func (m *Manager) ServeLogout(w http.ResponseWriter, r *http.Request) {
	// A plain form POST needs no CORS preflight: another site's page
	// could clear the cookie, or from a sibling host (whose requests
	// carry the SameSite=Strict cookie) end the session itself.
	if !m.trustOrigin(r) {
		writeError(w, http.StatusForbidden, CodeForbidden, "log out from the gateway's own page")
		return
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		if _, err := m.Logout(c.Value); err != nil {
			m.log.Error("logout: writing the sessions failed", "err", err)
		}
	}
	setCookie(w, r, "", -1)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// trustOrigin applies Options.TrustOrigin, or ownOrigin without one.
func (m *Manager) trustOrigin(r *http.Request) bool {
	if m.o.TrustOrigin != nil {
		return m.o.TrustOrigin(r)
	}
	return ownOrigin(r)
}

// ownOrigin tells whether r came from the gateway's own page, or from no
// page at all: browsers name the page's origin on every POST, other
// clients name none.
func ownOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// ServeSession serves GET /api/v1/session: the session's user, role and
// expiry (renewed), or 401 no_session / session_expired.
func (m *Manager) ServeSession(w http.ResponseWriter, r *http.Request) {
	id, err := m.Authenticate(r)
	switch {
	case errors.Is(err, ErrNoSession):
		writeError(w, http.StatusUnauthorized, CodeNoSession, "not logged in")
		return
	case errors.Is(err, ErrExpired):
		setCookie(w, r, "", -1)
		writeError(w, http.StatusUnauthorized, CodeSessionExpired, "the session expired or was ended: log in again")
		return
	case errors.Is(err, auth.ErrExpired):
		writeError(w, http.StatusUnauthorized, "token_expired", "the token expired")
		return
	case err != nil:
		writeError(w, http.StatusUnauthorized, "invalid_token", "invalid token")
		return
	}
	if id.Session != "" {
		c, _ := r.Cookie(CookieName)
		setCookie(w, r, c.Value, cookieMaxAge) // the browser keeps it as long again
	}
	writeJSON(w, http.StatusOK, answer(id))
}
