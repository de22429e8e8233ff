// Package session keeps the dashboard's logins: the users of the config,
// their password checks, and server-side sessions named by an HttpOnly
// cookie, persisted in the data directory so that a kiosk browser
// restarted at night, or an agent restarted (even killed), comes back
// logged in.
//
// A session id is 32 random bytes; the cookie carries it, the file keeps
// only its SHA-256, so the file cannot be replayed as cookies. Sessions
// slide: each use (a request, an open WebSocket) renews the expiry to
// now + TTL. They end on logout, on expiry, and when their user is removed
// from the config or gets another id or password.
//
// Manager.Authenticate is the one way the hub's front ends, the history API
// and the chat authenticate a request: by the session cookie, else by a
// bearer JWT; both give an auth.Identity (user, numeric id, role). See
// docs/hub.md, "Login".
package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/floorhub/floorhub/auth"
)

// CookieName is the session cookie's name.
const CookieName = "floorhub_session"

// File is the sessions' file in the data directory.
const File = "sessions.json"

// Errors of Authenticate and Check. Token errors are auth's (ErrMissing,
// ErrExpired, ErrInvalid, ...).
var (
	// ErrNoSession: the request carries neither a session cookie nor a
	// token.
	ErrNoSession = auth.ErrNoSession
	// ErrExpired: the cookie names no live session (it expired, was
	// logged out, or its user was removed or changed).
	ErrExpired = auth.ErrSessionExpired
	// ErrOptions is wrapped by the errors of Options.Validate.
	ErrOptions = errors.New("session: invalid options")
)

// User is one configured user.
type User struct {
	// Name logs in; it is the sessions' user and a token's sub.
	Name string
	// ID is the user's number (the chat's userId), positive.
	ID int64
	// Role is what the user may do.
	Role auth.Role
	// PasswordHash is a hash that auth.HashPassword made.
	PasswordHash string
}

// TokenVerifier checks a bearer JWT; *auth.Verifier satisfies it.
type TokenVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// Options configures a Manager. The zero value of each field but Dir means
// its default.
type Options struct {
	// Dir is the data directory that keeps File. Required.
	Dir string
	// TTL is how long a session lives unused: each use renews it to now +
	// TTL. Default 12 h.
	TTL time.Duration
	// MaxPerUser caps one user's sessions; a login beyond it ends that
	// user's least recently used one. Default 20.
	MaxPerUser int
	// MaxSessions caps the sessions of all users; a login beyond it ends
	// the least recently used one. Default 1000.
	MaxSessions int
	// LoginsPerMinute caps login attempts per client address (HTTP 429
	// beyond), with a burst of the same. Default 10.
	LoginsPerMinute int
	// MaxChecks caps the password checks running at once, over all
	// addresses (each is 600,000 PBKDF2 rounds: half a second of a Pi 4's
	// core). A login beyond it is answered at once with 429 rate_limited
	// and Retry-After: 1, rather than queued: a queue would hold the
	// flood's connections open. Default 2.
	MaxChecks int
	// Verifier checks bearer tokens; nil: only cookies authenticate.
	Verifier TokenVerifier
	// Logger receives logins, logouts and failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of expiries and the login rate. Default time.Now.
	Now func() time.Time
	// TrustOrigin tells whether a browser's request came from a page the
	// gateway trusts with its cookie, by its Origin header (a request
	// without one is no page's). Logout refuses the others. Default: the
	// request's own host only; the agent adds hub.allowed_origins.
	TrustOrigin func(r *http.Request) bool
}

// Validate reports the first field of o that cannot mean anything.
func (o *Options) Validate() error {
	switch {
	case o.TTL < 0 || (o.TTL > 0 && o.TTL < time.Second) || o.TTL > 366*24*time.Hour:
		return fmt.Errorf("%w: TTL %v: want 1s to 366 days", ErrOptions, o.TTL)
	case o.MaxPerUser < 0:
		return fmt.Errorf("%w: MaxPerUser %d is negative", ErrOptions, o.MaxPerUser)
	case o.MaxSessions < 0:
		return fmt.Errorf("%w: MaxSessions %d is negative", ErrOptions, o.MaxSessions)
	case o.LoginsPerMinute < 0:
		return fmt.Errorf("%w: LoginsPerMinute %d is negative", ErrOptions, o.LoginsPerMinute)
	case o.MaxChecks < 0:
		return fmt.Errorf("%w: MaxChecks %d is negative", ErrOptions, o.MaxChecks)
	}
	return nil
}

// record is one session, as kept in memory and in the file.
type record struct {
	Key     string    `json:"key"` // hex SHA-256 of the cookie's value
	User    string    `json:"user"`
	UID     int64     `json:"uid"`
	Pass    string    `json:"pass"` // auth.HashFingerprint of the user's hash at login
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used"`

	saved time.Time // Expires as last written to the file; guarded by Manager.mu
}

// Manager holds the users and the sessions. Its methods are safe for
// concurrent use.
type Manager struct {
	o    Options
	path string
	log  *slog.Logger

	mu       sync.Mutex
	users    map[string]User
	decoy    string             // checked for a login naming no user: as slow as a real check
	sessions map[string]*record // by key
	dirty    bool               // renewals not written yet

	saveMu sync.Mutex // one writer of the file at a time

	limit  limiter
	checks chan struct{} // a slot per password check running (ServeLogin)
}

// Open reads the sessions kept in o.Dir (a missing file is none; a
// corrupt one is moved aside and logged) and returns a Manager for users.
// Sessions of users that are no longer configured, or whose id or password
// changed, are dropped.
func Open(o Options, users []User) (*Manager, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is required", ErrOptions)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.TTL == 0 {
		o.TTL = 12 * time.Hour
	}
	if o.MaxPerUser == 0 {
		o.MaxPerUser = 20
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 1000
	}
	if o.LoginsPerMinute == 0 {
		o.LoginsPerMinute = 10
	}
	if o.MaxChecks == 0 {
		o.MaxChecks = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{o: o, path: filepath.Join(o.Dir, File), log: o.Logger, sessions: map[string]*record{},
		limit: limiter{perMinute: o.LoginsPerMinute, now: o.Now}, checks: make(chan struct{}, o.MaxChecks)}
	recs, err := load(m.path, m.log)
	if err != nil {
		return nil, err
	}
	now := o.Now()
	for _, r := range recs {
		if now.Before(r.Expires) {
			r.saved = r.Expires
			m.sessions[r.Key] = r
		}
	}
	dropped := m.setUsersLocked(users)
	if dropped > 0 || len(m.sessions) != len(recs) {
		if err := m.save(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SetUsers replaces the users (a reloaded config). The sessions of users
// removed, or whose id or password changed, end at once (an open
// WebSocket of theirs is closed at the hub's next check); a changed role
// applies to the open sessions. It returns how many sessions ended.
func (m *Manager) SetUsers(users []User) (int, error) {
	m.mu.Lock()
	n := m.setUsersLocked(users)
	m.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	m.log.Info("sessions ended: their users were removed or changed", "sessions", n)
	return n, m.save()
}

func (m *Manager) setUsersLocked(users []User) int {
	m.users = make(map[string]User, len(users))
	m.decoy = auth.DecoyHash("")
	for i, u := range users {
		m.users[u.Name] = u
		if i == 0 {
			m.decoy = auth.DecoyHash(u.PasswordHash)
		}
	}
	n := 0
	for k, r := range m.sessions {
		if !m.validLocked(r) {
			delete(m.sessions, k)
			n++
		}
	}
	return n
}

// validLocked tells whether r's user still exists as it was at login.
func (m *Manager) validLocked(r *record) bool {
	u, ok := m.users[r.User]
	return ok && u.ID == r.UID && auth.HashFingerprint(u.PasswordHash) == r.Pass
}

// TTL is the sessions' sliding lifetime.
func (m *Manager) TTL() time.Duration { return m.o.TTL }

// Lookup finds a configured user (for auth.TokenIdentity).
func (m *Manager) Lookup(name string) (int64, auth.Role, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[name]
	return u.ID, u.Role, ok
}

// KnownUser tells whether id is a configured user's, and whether any user
// is configured (the chat's check of a receiver, hub/chat.Directory).
func (m *Manager) KnownUser(id int64) (known, configured bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.ID == id {
			return true, true
		}
	}
	return false, len(m.users) > 0
}

// key is what the file keeps of a cookie value.
func key(cookie string) string {
	s := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(s[:])
}

// Login checks a user's password (in constant time; a login naming no
// user is checked against a decoy hash as costly as the first user's, so
// it takes as long as a wrong password) and starts a session.
// It returns the cookie's value and the identity; ok is false for bad
// credentials. The login rate is the HTTP handler's to check.
func (m *Manager) Login(user string, password []byte) (cookie string, id auth.Identity, ok bool, err error) {
	m.mu.Lock()
	u, known := m.users[user]
	if !known {
		u.PasswordHash = m.decoy
	}
	m.mu.Unlock()
	if !auth.CheckPassword(u.PasswordHash, password) || !known {
		return "", auth.Identity{}, false, nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", auth.Identity{}, false, fmt.Errorf("session: %w", err)
	}
	cookie = base64.RawURLEncoding.EncodeToString(raw[:])
	now := m.o.Now()
	r := &record{Key: key(cookie), User: u.Name, UID: u.ID, Pass: auth.HashFingerprint(u.PasswordHash),
		Created: now, Expires: now.Add(m.o.TTL), Used: now, saved: now.Add(m.o.TTL)}
	m.mu.Lock()
	if cur, still := m.users[user]; !still || cur.PasswordHash != u.PasswordHash {
		m.mu.Unlock() // changed by a reload meanwhile
		return "", auth.Identity{}, false, nil
	}
	m.sessions[r.Key] = r
	m.evictLocked(u.Name)
	id = m.identityLocked(r)
	m.mu.Unlock()
	return cookie, id, true, m.save()
}

// evictLocked ends the least recently used sessions beyond the caps.
func (m *Manager) evictLocked(user string) {
	var mine, all []*record
	for _, r := range m.sessions {
		all = append(all, r)
		if r.User == user {
			mine = append(mine, r)
		}
	}
	lru := func(x, y *record) int { return x.Used.Compare(y.Used) }
	if over := len(mine) - m.o.MaxPerUser; over > 0 {
		slices.SortFunc(mine, lru)
		for _, r := range mine[:over] {
			delete(m.sessions, r.Key)
		}
	}
	if over := len(m.sessions) - m.o.MaxSessions; over > 0 {
		all = slices.DeleteFunc(all, func(r *record) bool { return m.sessions[r.Key] == nil })
		slices.SortFunc(all, lru)
		for _, r := range all[:over] {
			delete(m.sessions, r.Key)
		}
	}
}

func (m *Manager) identityLocked(r *record) auth.Identity {
	u := m.users[r.User]
	return auth.Identity{User: r.User, ID: r.UID, Role: u.Role, Expires: r.Expires, Session: r.Key}
}

// Logout ends the session of cookie; it reports whether there was one.
func (m *Manager) Logout(cookie string) (bool, error) {
	k := key(cookie)
	m.mu.Lock()
	_, ok := m.sessions[k]
	delete(m.sessions, k)
	m.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, m.save()
}

// Cookie authenticates a session cookie's value and renews the session.
func (m *Manager) Cookie(cookie string) (auth.Identity, error) {
	return m.use(key(cookie))
}

// use renews the session with key k and returns its identity.
func (m *Manager) use(k string) (auth.Identity, error) {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.sessions[k]
	switch {
	case r == nil:
		return auth.Identity{}, ErrExpired
	case !now.Before(r.Expires) || !m.validLocked(r):
		delete(m.sessions, k)
		m.dirty = true
		return auth.Identity{}, ErrExpired
	}
	r.Used, r.Expires = now, now.Add(m.o.TTL)
	// A renewal reaches the file (Run) only once it moved the expiry by a
	// tenth of the TTL: an open dashboard renews every second, and the SD
	// card should not take a write a minute for it. After a crash the
	// expiry read back is at most that much (plus SaveEvery) early.
	if r.Expires.Sub(r.saved) >= m.o.TTL/10 {
		m.dirty = true
	}
	return m.identityLocked(r), nil
}

// Check tells whether an identity that authenticated earlier still holds:
// a session must still be live (it is renewed: an open connection is a
// use), a token must not have expired (no leeway here: the caller adds
// its own). It returns the identity with its current role and expiry.
func (m *Manager) Check(id auth.Identity) (auth.Identity, error) {
	if id.Session == "" {
		if !id.Expires.IsZero() && m.o.Now().After(id.Expires) {
			return id, auth.ErrExpired
		}
		return id, nil
	}
	return m.use(id.Session)
}

// Token authenticates a bearer JWT: its identity (auth.TokenIdentity with
// the configured users).
func (m *Manager) Token(token string) (auth.Identity, error) {
	if m.o.Verifier == nil {
		return auth.Identity{}, fmt.Errorf("%w: this gateway takes no tokens", auth.ErrInvalid)
	}
	c, err := m.o.Verifier.Verify(token)
	if err != nil {
		return auth.Identity{}, err
	}
	return auth.TokenIdentity(c, m.Lookup), nil
}

// Authenticate authenticates a request: by its bearer token when it has
// one (Authorization: Bearer; never from the URL, where tokens end up in
// logs and history), else by its session cookie.
// The error is ErrNoSession (neither), ErrExpired (a cookie naming no live
// session) or a token error of package auth.
func (m *Manager) Authenticate(r *http.Request) (auth.Identity, error) {
	if tok := BearerToken(r); tok != "" {
		return m.Token(tok)
	}
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return auth.Identity{}, ErrNoSession
	}
	return m.Cookie(c.Value)
}

// HasCookie tells whether r carries a session cookie.
func HasCookie(r *http.Request) bool {
	c, err := r.Cookie(CookieName)
	return err == nil && c.Value != ""
}

// BearerToken returns the token of Authorization: Bearer, or "".
func BearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
